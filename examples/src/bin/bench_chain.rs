//! Benchmark: orders per second through the full chain (order placed, payment created and
//! completed or cancelled, order confirmed, ticket issued and mailed) in one process on the
//! memory log. Prints one JSON object per run.
//!
//! ```text
//! cargo run --release --bin bench-chain -- --orders 100000 --runs 3
//! ```

use std::process::ExitCode;

use clap::Parser;
use ticketing_platform::Simulation;
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
            let (mut platform, mailer) = start_platform(&simulation).await?;
            let summary = simulation.run(&mut platform, &mailer, |_| {}).await?;
            platform.app.shutdown().await?;
            Ok::<_, Box<dyn std::error::Error>>(summary)
        }
        .await;
        match outcome {
            Ok(summary) => println!(
                "{}",
                serde_json::json!({
                    "bench": "chain-memory",
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
