//! Benchmark: orders per second through the full chain (order placed, payment created and
//! completed or cancelled, order confirmed, ticket issued and mailed) in one process on the
//! memory log (or the embedded log with `--data DIR`). Prints one JSON object per run.
//!
//! ```text
//! cargo run --release --bin bench-chain -- --orders 100000 --runs 3
//! ```

use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;
use ticketing_platform::Simulation;

use tramline::MemoryLog;
use tramline::log::EventLog;
use tramline::log::embedded::{EmbeddedLog, EmbeddedOptions};
use tramline_examples::{init_logging, start_platform};

/// Measures orders per second through the whole chain on the memory log.
#[derive(Debug, Parser)]
struct Cli {
    /// Orders per run.
    #[arg(long, default_value_t = 100_000)]
    orders: usize,
    /// Customers.
    #[arg(long, default_value_t = 1_000)]
    customers: usize,
    /// Reservations in flight at once.
    #[arg(long, default_value_t = 1_024)]
    concurrency: usize,
    /// Runs, each on a fresh log.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seed of the first run; run i uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run on the durable embedded log in this directory (a fresh subdirectory per run)
    /// instead of the memory log.
    #[arg(long, value_name = "DIR")]
    data: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    for run in 0..cli.runs {
        let simulation = Simulation {
            seed: cli.seed + run as u64,
            customers: cli.customers,
            orders: cli.orders,
            concurrency: cli.concurrency,
            decline_percent: 10,
        };
        let outcome = async {
            let log: Arc<dyn EventLog> = match &cli.data {
                None => MemoryLog::shared(),
                Some(dir) => {
                    let dir = dir.join(format!("run-{run}"));
                    let _ = std::fs::remove_dir_all(&dir);
                    Arc::new(EmbeddedLog::open_async(dir, EmbeddedOptions::default()).await?)
                }
            };
            let (mut platform, mailer) = start_platform(log, &simulation).await?;
            let summary = simulation.run(&mut platform, &*mailer, |_| {}).await?;
            platform.app.shutdown().await?;
            Ok::<_, Box<dyn std::error::Error>>(summary)
        }
        .await;
        match outcome {
            Ok(summary) => println!(
                "{}",
                serde_json::json!({
                    "bench": if cli.data.is_some() { "chain-embedded" } else { "chain-memory" },
                    "run": run,
                    "orders": cli.orders,
                    "concurrency": cli.concurrency,
                    "elapsed_s": summary.elapsed_s,
                    "orders_per_s": summary.orders_per_s,
                    "invariants_hold": summary.holds(),
                })
            ),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
