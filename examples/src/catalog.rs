//! `ticketing catalog`: the JSON Schema of every event and public event, or the AsyncAPI
//! document of the public feeds, printed or written to a directory.

use std::path::PathBuf;

use tramline::runtime::Settings;

/// What `ticketing catalog` prints or writes.
#[derive(Debug, Clone, clap::Args)]
pub struct CatalogArgs {
    /// Write one file per schema under DIR (`events/<module>/<Type>.v<N>.json`,
    /// `public/<module>/<Type>.v<N>.json`, and `asyncapi.json` with `--asyncapi`) instead of
    /// printing. Refuses, writing nothing, when a schema breaks the one committed there for its
    /// type and version: raise the type's version instead.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The AsyncAPI 3.0 document of the public feeds instead of the schemas.
    #[arg(long)]
    pub asyncapi: bool,
    /// Kafka bootstrap servers to name in the AsyncAPI document.
    #[arg(long, value_name = "HOST:PORT", requires = "asyncapi")]
    pub server: Vec<String>,
}

/// Runs `ticketing catalog`.
pub fn run(args: &CatalogArgs) -> Result<(), Box<dyn std::error::Error>> {
    let catalog = ticketing_platform::catalog(Settings::default().partitions);
    let asyncapi = args.asyncapi.then(|| ticketing_platform::asyncapi(&catalog, args.server.clone()));
    match &args.out {
        Some(dir) => {
            // Refuses before writing anything (asyncapi.json included) when a committed
            // snapshot would be overwritten by a schema that breaks it.
            for path in catalog.write_to(dir)? {
                eprintln!("wrote {}", path.display());
            }
            if let Some(document) = asyncapi {
                let path = dir.join("asyncapi.json");
                std::fs::write(&path, serde_json::to_string_pretty(&document)? + "\n")?;
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            let document = asyncapi.unwrap_or_else(|| catalog.to_json());
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_dir(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }

    /// What `ticketing catalog` prints is what `--out` writes: the committed files, `x-key`
    /// included.
    #[test]
    fn the_printed_catalog_is_the_committed_files() {
        let catalog = ticketing_platform::catalog(Settings::default().partitions);
        let printed = catalog.to_json();
        let printed = printed.as_object().expect("an object");
        let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        assert!(!printed.is_empty());
        for (file, document) in printed {
            let committed = std::fs::read_to_string(schemas.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
            assert!(document.get("x-key").is_some(), "{file} has its key");
            assert_eq!(document, &committed, "{file}");
        }
    }

    #[test]
    fn out_refuses_to_overwrite_a_snapshot_that_the_catalog_breaks() {
        let scratch = std::env::temp_dir().join(format!("tramline-catalog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas"), &scratch);
        std::fs::remove_file(scratch.join("asyncapi.json")).unwrap();
        // As if the committed contract had a field that the current public event dropped.
        let file = scratch.join("public/partner-feed/OrderConfirmed.v1.json");
        let mut snapshot: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        snapshot["properties"]["platform"] = serde_json::json!({"type": "string"});
        let committed = serde_json::to_string_pretty(&snapshot).unwrap();
        std::fs::write(&file, &committed).unwrap();

        let args = CatalogArgs { out: Some(scratch.clone()), asyncapi: true, server: Vec::new() };
        let error = run(&args).unwrap_err().to_string();
        assert!(error.contains("field `platform` was removed or renamed"), "{error}");
        assert!(error.contains("raise the type's version"), "{error}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), committed, "the evidence stays");
        assert!(!scratch.join("asyncapi.json").exists(), "nothing is written");

        // Without the tampering, it writes.
        std::fs::remove_file(&file).unwrap();
        run(&args).unwrap();
        assert!(file.exists() && scratch.join("asyncapi.json").exists());
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}
