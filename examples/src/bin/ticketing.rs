//! The whole ticketing platform in one process: simulated customers buy tickets, every module
//! reacts, accounting joins at the end and replays the log; a summary checks the invariants.
//!
//! ```text
//! cargo run --release --bin ticketing -- --orders 2000 --seed 7        # durable, ./tramline-data
//! cargo run --release --bin ticketing -- --json --orders 2000 --seed 7 --memory
//! cargo run --release --bin ticketing -- topology
//! cargo run --release --bin ticketing -- catalog --asyncapi
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use comfy_table::{Cell, Color, Table};
use indicatif::{ProgressBar, ProgressStyle};
use product_contract::Money;
use ticketing_platform::{Platform, Services, Simulation, Summary};
use tramline::MemoryLog;
use tramline::runtime::Settings;
use tramline_examples::{LogArgs, init_logging, start_platform};

/// Runs the reference ticketing platform with simulated customers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Seed of the simulation: the same seed makes the same customers, orders and declines.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many orders to place.
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// How many customers register.
    #[arg(long, default_value_t = 200)]
    customers: usize,
    /// How many reservations are in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// The share of payments the simulated provider declines, in percent.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=100))]
    decline_percent: u64,
    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the modules and the event flows between them as a Mermaid diagram.
    Topology,
    /// Print the JSON Schema of every event and public event, or the AsyncAPI document of the
    /// public feeds (`--asyncapi`); `--out DIR` writes them as files.
    Catalog(tramline_examples::catalog::CatalogArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Topology) => topology().await,
        Some(Command::Catalog(ref args)) => tramline_examples::catalog::run(args).map(|()| ExitCode::SUCCESS),
        None => run(&cli).await,
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

async fn topology() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let simulation = Simulation::default();
    let services = Services {
        provider: Arc::new(simulation.provider()),
        mailer: Arc::new(ticketing_platform::CountingMailer::default()),
    };
    let mut platform = Platform::register(MemoryLog::shared(), Settings::default(), services).await?;
    platform.add_accounting().await?;
    print!("{}", platform.topology());
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: &Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let simulation = Simulation {
        seed: cli.seed,
        customers: cli.customers,
        orders: cli.orders,
        concurrency: cli.concurrency,
        decline_percent: cli.decline_percent,
    };
    let log = cli.log.open().await?;
    if !cli.json {
        eprintln!("tramline ticketing: {} orders, seed {}, {}", cli.orders, cli.seed, cli.log.describe());
    }
    let (mut platform, mailer) = start_platform(log, &simulation).await?;
    let bar = if cli.json { ProgressBar::hidden() } else { ProgressBar::new(cli.orders as u64) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} orders {bar:40} {pos}/{len} {per_sec} eta {eta}")
            .expect("a valid template"),
    );
    let summary = simulation.run(&mut platform, &mailer, |done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    platform.app.shutdown().await?;

    if cli.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(if summary.holds() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_summary(summary: &Summary) {
    let mut figures = Table::new();
    figures.set_header(["figure", "value"]);
    let money = |cents: i64| Money::cents(cents).to_string();
    let rows: [(&str, String); 14] = [
        ("orders placed (whole log)", summary.orders_placed.to_string()),
        ("of which this run", summary.reservations.to_string()),
        ("reservations refused", summary.reservations_rejected.to_string()),
        ("payments completed", summary.payments_completed.to_string()),
        ("payments cancelled", summary.payments_cancelled.to_string()),
        ("orders confirmed", summary.orders_confirmed.to_string()),
        ("orders cancelled", summary.orders_cancelled.to_string()),
        ("tickets issued", summary.tickets_issued.to_string()),
        ("tickets mailed", summary.tickets_mailed.to_string()),
        ("confirmed revenue", money(summary.confirmed_revenue)),
        ("accounting revenue (joined late)", money(summary.accounting_revenue)),
        ("dead letters", summary.dead_letters.to_string()),
        ("elapsed", format!("{:.3} s", summary.elapsed_s)),
        ("orders per second", format!("{:.0}", summary.orders_per_s)),
    ];
    for (name, value) in rows {
        figures.add_row([name.to_owned(), value]);
    }
    println!("{figures}");

    let mut checks = Table::new();
    checks.set_header(["invariant", "figures", "holds"]);
    for invariant in summary.invariants() {
        let (text, color) = if invariant.holds { ("yes", Color::Green) } else { ("NO", Color::Red) };
        checks.add_row(vec![Cell::new(invariant.name), Cell::new(invariant.detail), Cell::new(text).fg(color)]);
    }
    println!("{checks}");
}
