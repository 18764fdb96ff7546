//! Benchmark: orders per second through the full chain (order placed, payment created and
//! completed or cancelled, order confirmed, ticket issued and mailed) in one process, on the
//! memory log, the embedded log (`--data DIR`) or Kafka (`--brokers HOST:PORT`, a fresh
//! namespace per run). Each run also measures the latency from PaymentCompleted to TicketIssued
//! as a projection of this process sees them (committed and readable); `--paced-orders N` adds a
//! run at a tenth of the rate the last run reached, where latency is measured without queueing.
//! Prints one JSON object per run.
//!
//! ```text
//! cargo run --release --bin bench-chain -- --orders 100000 --runs 3
//! cargo run --release --bin bench-chain -- --brokers 127.0.0.1:9092 --orders 20000 --runs 2 --paced-orders 2000
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use order_contract::OrderId;
use payment_contract::PaymentEvent;
use ticket_contract::TicketEvent;
use ticketing_platform::{Simulation, Summary};
use tramline::log::embedded::{EmbeddedLog, EmbeddedOptions};
use tramline::log::kafka::KafkaLog;
use tramline::log::{EventLog, Namespaced};
use tramline::{Envelope, Handle, MemoryLog, Projection};
use tramline_examples::{init_logging, start_platform};

/// Measures orders per second through the whole chain.
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
    #[arg(long, default_value_t = 3, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    runs: usize,
    /// Seed of the first run; run i uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run on the durable embedded log in this directory (a fresh subdirectory per run).
    #[arg(long, value_name = "DIR", conflicts_with = "brokers")]
    data: Option<std::path::PathBuf>,
    /// Run on Kafka at these bootstrap servers (a fresh namespace per run).
    #[arg(long, value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// After the runs, one more with this many orders at a tenth of the last run's rate.
    #[arg(long, value_name = "N")]
    paced_orders: Option<usize>,
    /// How the Kafka clients are set up (`--kafka-set`, to try a tuning).
    #[command(flatten)]
    kafka: tramline_examples::KafkaClientArgs,
}

/// When this process saw each order's PaymentCompleted, and how long its TicketIssued took.
#[derive(Debug, Default, Projection)]
#[projection(module = "bench", name = "chain-latency", subscribe(PaymentEvent, TicketEvent))]
struct ChainLatency {
    completed: HashMap<OrderId, Instant>,
    latencies: Vec<Duration>,
}

impl Handle<PaymentEvent> for ChainLatency {
    fn handle(&mut self, event: &Envelope<PaymentEvent>) {
        if let PaymentEvent::Completed { order_id, .. } = event.payload {
            self.completed.insert(order_id, Instant::now());
        }
    }
}

impl Handle<TicketEvent> for ChainLatency {
    fn handle(&mut self, event: &Envelope<TicketEvent>) {
        if let TicketEvent::Issued { order_id, .. } = event.payload
            && let Some(seen) = self.completed.remove(&order_id)
        {
            self.latencies.push(seen.elapsed());
        }
    }
}

impl ChainLatency {
    /// The latency below which `share` of the samples lie, in milliseconds.
    fn percentile_ms(&self, share: f64) -> Option<f64> {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 * share).ceil() as usize).checked_sub(1)?;
        sorted.get(index).map(|d| d.as_secs_f64() * 1000.0)
    }
}

impl Cli {
    /// The log of run `run`, and its namespace on Kafka.
    async fn log(&self, run: usize) -> Result<(Arc<dyn EventLog>, Option<String>), Box<dyn std::error::Error>> {
        Ok(match (&self.data, &self.brokers) {
            (Some(dir), _) => {
                let dir = dir.join(format!("run-{run}"));
                let _ = std::fs::remove_dir_all(&dir);
                (Arc::new(EmbeddedLog::open_async(dir, EmbeddedOptions::default()).await?), None)
            }
            (None, Some(brokers)) => {
                let config = self.kafka.config(brokers)?;
                let kafka: Arc<dyn EventLog> = Arc::new(KafkaLog::connect(config).await?);
                let namespace = format!("bench-{}", uuid::Uuid::now_v7().simple());
                (Arc::new(Namespaced::new(kafka, &namespace)?), Some(namespace))
            }
            (None, None) => (MemoryLog::shared(), None),
        })
    }

    fn backend(&self) -> &'static str {
        match (&self.data, &self.brokers) {
            (Some(_), _) => "embedded",
            (None, Some(_)) => "kafka",
            (None, None) => "memory",
        }
    }

    async fn run(
        &self,
        run: usize,
        orders: usize,
        rate: Option<f64>,
    ) -> Result<(Summary, ChainLatency, Option<String>), Box<dyn std::error::Error>> {
        let simulation = Simulation {
            seed: self.seed + run as u64,
            customers: self.customers,
            orders,
            concurrency: self.concurrency,
            decline_percent: 10,
        };
        let (log, namespace) = self.log(run).await?;
        let (mut platform, mailer) = start_platform(log, &simulation).await?;
        let latency = platform.app.projection(ChainLatency::default()).await?;
        let summary = simulation.run_paced(&mut platform, &*mailer, rate, |_| {}).await?;
        latency.caught_up().await?;
        let latency = latency.read(|l| ChainLatency { completed: HashMap::new(), latencies: l.latencies.clone() });
        platform.app.shutdown().await?;
        Ok((summary, latency, namespace))
    }
}

fn report(cli: &Cli, run: usize, orders: usize, rate: Option<f64>, summary: &Summary, latency: &ChainLatency) {
    println!(
        "{}",
        serde_json::json!({
            "bench": format!("chain-{}", cli.backend()),
            "run": run,
            "orders": orders,
            "concurrency": cli.concurrency,
            "paced_orders_per_s": rate,
            "elapsed_s": summary.elapsed_s,
            "orders_per_s": summary.orders_per_s,
            "payment_completed_to_ticket_issued_ms": {
                "samples": latency.latencies.len(),
                "p50": latency.percentile_ms(0.5),
                "p90": latency.percentile_ms(0.9),
                "p99": latency.percentile_ms(0.99),
                "max": latency.percentile_ms(1.0),
            },
            "invariants_hold": summary.holds(),
        })
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    if let Err(misuse) = cli.kafka.check(cli.brokers.as_deref()) {
        tramline_examples::usage_error::<Cli>(misuse);
    }
    let mut last_rate = None;
    let mut namespaces = Vec::new();
    let mut failed = false;
    for run in 0..cli.runs {
        match cli.run(run, cli.orders, None).await {
            Ok((summary, latency, namespace)) => {
                report(&cli, run, cli.orders, None, &summary, &latency);
                last_rate = Some(summary.orders_per_s);
                namespaces.extend(namespace);
            }
            Err(error) => {
                eprintln!("error: {error}");
                failed = true;
                break;
            }
        }
    }
    if let (Some(orders), Some(rate), false) = (cli.paced_orders, last_rate, failed) {
        let rate = rate / 10.0;
        match cli.run(cli.runs, orders, Some(rate)).await {
            Ok((summary, latency, namespace)) => {
                report(&cli, cli.runs, orders, Some(rate), &summary, &latency);
                namespaces.extend(namespace);
            }
            Err(error) => {
                eprintln!("error: {error}");
                failed = true;
            }
        }
    }
    // Only now: deleting hundreds of partitions keeps the broker busy for a while.
    if let Some(brokers) = &cli.brokers
        && !namespaces.is_empty()
    {
        let prefixes: Vec<String> = namespaces.iter().map(|namespace| format!("{namespace}.")).collect();
        let ours = |name: &str| prefixes.iter().any(|prefix| name.starts_with(prefix));
        if let Err(error) = tramline::testing::kafka::delete_leftovers(brokers, ours).await {
            eprintln!("warning: the runs' topics stay on the broker: {error}");
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
