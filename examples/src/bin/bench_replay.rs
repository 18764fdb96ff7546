//! Benchmark: a projection added late, replaying every event since the beginning, against a raw
//! rdkafka consumer reading the same topic. The projection is the platform's own accounting
//! (sales per product and per day) over confirmed orders. Prints one JSON object per
//! measurement:
//!
//! - `raw-rdkafka-consumer`: a plain consumer in a group of its own (`read_committed`, as the
//!   projection's), from subscribing until it has read every record's value;
//! - `raw-rdkafka-consumer-with-headers`: the same, reading every record's key, value and
//!   headers, as any reader of these records must (their event type is a header);
//! - `late-projection`: accounting in an app, from its start until it is caught up, decoding
//!   every envelope and event; checked against the events written;
//! - without `--brokers`, only `late-projection` on the memory log.
//!
//! ```text
//! cargo run --release --bin bench-replay -- --events 1000000 --brokers 127.0.0.1:9092
//! ```
//!
//! Each run writes to a namespace of its own (`bench-replay-<uuid>`), so runs on a shared broker
//! do not meet.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use customer_contract::CustomerId;
use order_contract::{OrderEvent, OrderId};
use product_contract::{Money, ProductId};
use tramline::log::kafka::{KafkaConfig, KafkaLog};
use tramline::log::{EventLog, Namespaced, OutRecord, TopicSpec};
use tramline::runtime::Settings;
use tramline::{App, Envelope, MemoryLog, Message, ReferenceId, codec};
use tramline_examples::RawRead;

/// Measures how fast a late projection catches up.
#[derive(Debug, Parser)]
struct Cli {
    /// Events to replay.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Partitions of the order module's topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Kafka bootstrap servers; without, the memory log.
    #[arg(long, value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// Runs of each measurement (interleaved); every run is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// `count` confirmed orders of 20 products over 100 days.
fn events(count: usize) -> (Vec<OutRecord>, Money) {
    let start = jiff::Timestamp::from_second(1_893_456_000).expect("2030");
    let products: Vec<ProductId> = (0..20).map(|_| ProductId::generate()).collect();
    let mut revenue = Money::cents(0);
    let records = (0..count)
        .map(|i| {
            let quantity = 1 + (i % 4) as u32;
            let total = Money::cents(250 * i64::from(quantity));
            revenue += total;
            let event = OrderEvent::Confirmed {
                order_id: OrderId::generate(),
                customer_id: CustomerId::generate(),
                product_id: products[i % products.len()],
                quantity,
                total,
            };
            let time = start + jiff::SignedDuration::from_millis((i as i64) * 8_640);
            codec::encode(&Envelope::new(event, time))
        })
        .collect();
    (records, revenue)
}

fn report(bench: &str, backend: &str, events: usize, elapsed: Duration, extra: serde_json::Value) {
    let mut line = serde_json::json!({
        "bench": bench,
        "backend": backend,
        "events": events,
        "elapsed_s": elapsed.as_secs_f64(),
        "events_per_s": (events as f64 / elapsed.as_secs_f64()).round(),
    });
    if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
        line.extend(extra.clone());
    }
    println!("{line}");
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The order module's topic in a fresh namespace, with `records` written to it.
async fn write(log: Arc<dyn EventLog>, partitions: u32, records: &[OutRecord]) -> Result<(), BoxError> {
    log.create_topic(&TopicSpec::keep(OrderEvent::TOPIC, partitions)).await?;
    for chunk in records.chunks(50_000) {
        log.append(chunk.to_vec()).await?;
    }
    Ok(())
}

/// Accounting, started late: from its start until it has read everything. Checks the books.
async fn late_projection(log: Arc<dyn EventLog>, partitions: u32, revenue: Money) -> Result<Duration, BoxError> {
    let settings = Settings { partitions, poll_timeout: Duration::from_millis(20), ..Settings::default() };
    let mut app = App::new(log).with_settings(settings);
    let books = accounting::register(&mut app).await?;
    let started = Instant::now();
    app.start().await?;
    books.caught_up().await?;
    let elapsed = started.elapsed();
    let total = books.read(|books| books.total());
    app.shutdown().await?;
    if total.revenue != revenue {
        return Err(format!("accounting counted {:?} of revenue, the events hold {revenue:?}", total.revenue).into());
    }
    Ok(elapsed)
}

async fn kafka(cli: &Cli, brokers: &str, records: &[OutRecord], revenue: Money) -> Result<(), BoxError> {
    let kafka: Arc<dyn EventLog> =
        Arc::new(KafkaLog::connect(KafkaConfig::new(brokers).with_instance_id("bench-replay")).await?);
    let namespace = format!("bench-replay-{}", uuid::Uuid::now_v7().simple());
    let log: Arc<dyn EventLog> = Arc::new(Namespaced::new(kafka, &namespace)?);
    write(log.clone(), cli.partitions, records).await?;
    let topic = format!("{namespace}.{}", OrderEvent::TOPIC);
    let count = records.len();
    let (mut raw_runs, mut whole_runs, mut projection_runs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cli.runs {
        let mut raw = [Duration::ZERO; 2];
        for (elapsed, read) in raw.iter_mut().zip([RawRead::Value, RawRead::Whole]) {
            *elapsed = tramline_examples::raw_consume(brokers, &topic, count, read).await?;
            report(read.bench(), "kafka", count, *elapsed, serde_json::json!({ "partitions": cli.partitions }));
        }
        let projection = late_projection(log.clone(), cli.partitions, revenue).await?;
        report(
            "late-projection",
            "kafka",
            count,
            projection,
            serde_json::json!({
                "partitions": cli.partitions,
                "ratio_to_raw_consumer": raw[0].as_secs_f64() / projection.as_secs_f64(),
                "ratio_to_raw_consumer_with_headers": raw[1].as_secs_f64() / projection.as_secs_f64(),
            }),
        );
        raw_runs.push(raw[0]);
        whole_runs.push(raw[1]);
        projection_runs.push(projection);
    }
    let median = |runs: &mut Vec<Duration>| {
        runs.sort();
        runs[runs.len() / 2]
    };
    let (raw, whole, projection) = (median(&mut raw_runs), median(&mut whole_runs), median(&mut projection_runs));
    let per_s = |elapsed: Duration| (count as f64 / elapsed.as_secs_f64()).round();
    println!(
        "{}",
        serde_json::json!({
            "bench": "late-projection-vs-raw-median",
            "events": count,
            "raw_events_per_s": per_s(raw),
            "raw_with_headers_events_per_s": per_s(whole),
            "projection_events_per_s": per_s(projection),
            "ratio_to_raw_consumer": raw.as_secs_f64() / projection.as_secs_f64(),
            "ratio_to_raw_consumer_with_headers": whole.as_secs_f64() / projection.as_secs_f64(),
        })
    );
    let prefix = format!("{namespace}.");
    tramline::testing::kafka::delete_leftovers(brokers, |name| name.starts_with(&prefix)).await?;
    Ok(())
}

async fn memory(cli: &Cli, records: &[OutRecord], revenue: Money) -> Result<(), BoxError> {
    let log = MemoryLog::shared();
    write(log.clone(), cli.partitions, records).await?;
    for _ in 0..cli.runs {
        let elapsed = late_projection(log.clone(), cli.partitions, revenue).await?;
        report(
            "late-projection",
            "memory",
            records.len(),
            elapsed,
            serde_json::json!({ "partitions": cli.partitions }),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    tramline_examples::init_logging();
    let cli = Cli::parse();
    if cli.runs == 0 || cli.events == 0 {
        eprintln!("error: --runs and --events must be at least 1");
        return ExitCode::FAILURE;
    }
    let (records, revenue) = events(cli.events);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let outcome = runtime.block_on(async {
        match &cli.brokers {
            Some(brokers) => kafka(&cli, brokers, &records, revenue).await,
            None => memory(&cli, &records, revenue).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
