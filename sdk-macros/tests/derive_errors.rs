//! Misuses of the derives: each fails to compile with a readable message at the user's token.
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p tramline-macros --test derive_errors`.

#[test]
fn derive_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
