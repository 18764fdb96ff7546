//! The README's diagram of the platform's event flows is the one `ticketing topology` derives
//! from the declarations: a module or processor added without updating it fails here.

use std::process::Command;

#[test]
fn the_readmes_diagram_is_the_derived_topology() {
    let output = Command::new(env!("CARGO_BIN_EXE_ticketing")).arg("topology").output().expect("ticketing runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let derived = String::from_utf8(output.stdout).expect("text");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("the README");
    assert!(
        readme.contains(derived.trim()),
        "README.md's diagram differs from `ticketing topology`; paste this into README.md:\n{derived}"
    );
}
