//! `ticketing catalog`: the JSON Schema of every event and public event, or the AsyncAPI
//! document of the public feeds, printed or written to a directory.

use std::path::PathBuf;

use tramline::runtime::Settings;

/// What `ticketing catalog` prints or writes.
#[derive(Debug, Clone, clap::Args)]
pub struct CatalogArgs {
    /// Write one file per schema under DIR (`events/<module>/<Type>.v<N>.json`,
    /// `public/<module>/<Type>.v<N>.json`, and `asyncapi.json` with `--asyncapi`) instead of
    /// printing.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The AsyncAPI 3.0 document of the public feeds instead of the schemas.
    #[arg(long)]
    pub asyncapi: bool,
    /// Kafka bootstrap servers to name in the AsyncAPI document.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Vec<String>,
}

/// Runs `ticketing catalog`.
pub fn run(args: &CatalogArgs) -> Result<(), Box<dyn std::error::Error>> {
    let catalog = ticketing_platform::catalog(Settings::default().partitions);
    let asyncapi = args.asyncapi.then(|| ticketing_platform::asyncapi(&catalog, args.server.clone()));
    match &args.out {
        Some(dir) => {
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
