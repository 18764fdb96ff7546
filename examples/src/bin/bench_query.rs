//! Benchmark: the reference query (suspicious sales) over confirmed orders. Prints one JSON
//! object per measurement:
//!
//! - `query-engine`: WHERE, re-keying and the windowed aggregate per record, without a log;
//! - `query-memory`: the query in an app on the memory log, both processors and the
//!   repartition topic included, on one core (a current-thread runtime);
//! - with `--brokers`: `raw-rdkafka-consumer` reading the source topic (the values only), and
//!   `raw-rdkafka-consumer-with-headers` (keys, values and headers, as any reader of these
//!   records must), and `query-kafka`, the query in an app on Kafka over the same topic, with
//!   its ratio to both.
//!
//! ```text
//! cargo run --release --bin bench-query -- --events 1000000
//! cargo run --release --bin bench-query -- --events 1000000 --brokers 127.0.0.1:9092
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::log::{EventLog, OutRecord, Record, TopicSpec};
use tramline::runtime::Settings;
use tramline::stream::{Catalog, PartitionState, Plan, sql};
use tramline::{App, Envelope, Event, MemoryLog, Message, ReferenceId, codec};
use tramline_examples::RawRead;

/// Measures the reference query's throughput.
#[derive(Debug, Parser)]
struct Cli {
    /// Events per measurement.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    events: usize,
    /// Distinct customers.
    #[arg(long, default_value_t = 100_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    customers: usize,
    /// Event time between two events, in milliseconds. With the defaults the customers order
    /// about once in three hours, except five bulk buyers who order every 100 seconds (flagged).
    #[arg(long, default_value_t = 100)]
    spacing_ms: i64,
    /// Partitions of the topics.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Measure the engine only (for profiling).
    #[arg(long)]
    engine_only: bool,
    /// Also measure on Kafka at these bootstrap servers.
    #[arg(long, value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// The most records a processor of the app handles in one batch (one atomic write).
    #[arg(long, default_value_t = Settings::default().batch_size)]
    batch_size: usize,
}

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "ord")]
struct OrderId(uuid::Uuid);

/// Orders as the order module confirms them, on a topic of their own (`bench.events`).
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
#[event(module = "bench", key = order_id)]
enum OrderEvent {
    Confirmed { order_id: OrderId, customer_id: String, product_id: String, quantity: u32, total: i64 },
}

const REFERENCE: &str = "CREATE STREAM suspicious_sales AS
SELECT customer_id, count(*)
FROM order_confirmed
WINDOW TUMBLING (SIZE 10 MINUTE)
GROUP BY customer_id
HAVING count(*) > 4";

fn plan(name: &str) -> Plan {
    let sql = REFERENCE.replacen("suspicious_sales", name, 1);
    sql::plan(&sql, &Catalog::new().with::<OrderEvent>()).expect("the reference query plans")
}

/// `events` confirmed orders, `spacing` milliseconds apart, by customers spread evenly; every
/// 200th by one of five bulk buyers.
fn events(events: usize, customers: usize, spacing: i64) -> Vec<OutRecord> {
    let start = jiff::Timestamp::from_second(1_893_456_000).expect("2030");
    (0..events)
        .map(|i| {
            let event = OrderEvent::Confirmed {
                order_id: OrderId::generate(),
                customer_id: match i % 200 {
                    0 => format!("cus_bulk_{}", (i / 200) % 5),
                    _ => format!("cus_{:08}", (i * 7919 + i / 3) % customers),
                },
                product_id: "prd_single_ride".into(),
                quantity: 1 + (i % 4) as u32,
                total: 250,
            };
            codec::encode(&Envelope::new(event, start + jiff::SignedDuration::from_millis(i as i64 * spacing)))
        })
        .collect()
}

/// The CPU time this thread has run so far (Linux: `/proc/thread-self/schedstat`, in
/// nanoseconds), to report a figure that other load on the machine disturbs less than the
/// elapsed time.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
}

/// Elapsed and CPU time of a measurement.
struct Timer {
    started: Instant,
    cpu: Option<Duration>,
}

impl Timer {
    fn start() -> Self {
        Timer { started: Instant::now(), cpu: thread_cpu() }
    }

    fn stop(&self) -> Measured {
        let cpu = thread_cpu().zip(self.cpu).map(|(now, then)| now.saturating_sub(then));
        Measured { elapsed: self.started.elapsed(), cpu }
    }
}

struct Measured {
    elapsed: Duration,
    cpu: Option<Duration>,
}

fn report(bench: &str, events: usize, measured: Measured, extra: serde_json::Value) {
    let Measured { elapsed, cpu } = measured;
    let mut line = serde_json::json!({
        "bench": bench,
        "events": events,
        "elapsed_s": elapsed.as_secs_f64(),
        "events_per_s": events as f64 / elapsed.as_secs_f64(),
    });
    if let (Some(line), Some(cpu)) = (line.as_object_mut(), cpu) {
        // On one thread: events per second of this thread's CPU time.
        line.insert("cpu_s".into(), cpu.as_secs_f64().into());
        line.insert("events_per_cpu_s".into(), (events as f64 / cpu.as_secs_f64()).into());
    }
    if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
        line.extend(extra.clone());
    }
    println!("{line}");
}

/// The per-record work of both processors, without a log.
fn engine(records: &[OutRecord]) -> (Measured, usize) {
    let plan = plan("suspicious_sales");
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            topic: r.topic.clone(),
            partition: 0,
            offset: i as u64,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: r.timestamp.unwrap_or_default(),
        })
        .collect();
    let timer = Timer::start();
    let mut state = PartitionState::default();
    let (mut columns, mut out, mut rows) = (Vec::new(), Vec::new(), 0);
    for (i, record) in records.iter().enumerate() {
        // As the processor does after each batch.
        if i % 2048 == 0 {
            state.take_changes();
        }
        if !codec::type_of(record).is_some_and(|t| plan.reads_type(t.as_bytes())) {
            continue;
        }
        let payload = record.value.as_deref().unwrap_or_default();
        if let Some(keyed) = plan.rekey(record.timestamp, payload, &mut columns).expect("a payload") {
            state.apply(&plan, &keyed, &mut out);
            rows += out.len();
            out.clear();
        }
    }
    (timer.stop(), rows)
}

/// The query in an app over a source topic already written: from start until settled.
async fn in_app(
    log: Arc<dyn EventLog>,
    partitions: u32,
    name: &str,
) -> Result<(Measured, usize), Box<dyn std::error::Error>> {
    let settings = Settings { partitions, poll_timeout: Duration::from_millis(20), ..Settings::default() };
    let mut app = App::new(log).with_settings(settings);
    let handle = app.query(plan(name)).await?;
    let timer = Timer::start();
    app.start().await?;
    app.settle().await?;
    let measured = timer.stop();
    let rows = handle.rows().await?.len();
    app.shutdown().await?;
    Ok((measured, rows))
}

async fn memory(cli: &Cli, records: Vec<OutRecord>) -> Result<(Measured, usize), Box<dyn std::error::Error>> {
    let log = MemoryLog::shared();
    log.create_topic(&TopicSpec::keep(OrderEvent::TOPIC, cli.partitions)).await?;
    for chunk in records.chunks(10_000) {
        log.append(chunk.to_vec()).await?;
    }
    in_app(log, cli.partitions, "suspicious_sales").await
}

async fn kafka(cli: &Cli, brokers: &str, records: Vec<OutRecord>) -> Result<(), Box<dyn std::error::Error>> {
    use tramline::log::kafka::{KafkaConfig, KafkaLog};
    let log: Arc<dyn EventLog> =
        Arc::new(KafkaLog::connect(KafkaConfig::new(brokers).with_instance_id("bench-query")).await?);
    // A fresh source topic per run: both readers read exactly these records.
    let run = uuid::Uuid::now_v7().simple().to_string();
    let topic: Arc<str> = Arc::from(format!("bench.events.{run}"));
    log.create_topic(&TopicSpec::keep(topic.to_string(), cli.partitions)).await?;
    let count = records.len();
    for chunk in records.chunks(50_000) {
        let chunk = chunk.iter().cloned().map(|r| OutRecord { topic: topic.clone(), ..r }).collect();
        log.append(chunk).await?;
    }
    let mut raw = [Duration::ZERO; 2];
    for (elapsed, read) in raw.iter_mut().zip([RawRead::Value, RawRead::Whole]) {
        *elapsed = tramline_examples::raw_consume(brokers, &topic, count, read)
            .await
            .map_err(|error| error.to_string())?;
        // Other threads (librdkafka's) do part of the work: no CPU time of one thread to report.
        let measured = Measured { elapsed: *elapsed, cpu: None };
        report(read.bench(), count, measured, serde_json::json!({ "partitions": cli.partitions }));
    }
    // The query reads `bench.events`: point its plan at the fresh topic instead.
    let name = format!("suspicious_sales_{run}");
    let mut plan = plan(&name);
    let source: &'static str = Box::leak(topic.to_string().into_boxed_str());
    if let Some(subscription) = plan.source.subscription.as_mut() {
        subscription.topic = source;
    }
    let settings = Settings {
        partitions: cli.partitions,
        batch_size: cli.batch_size,
        poll_timeout: Duration::from_millis(20),
        ..Settings::default()
    };
    let mut app = App::new(log).with_settings(settings);
    let handle = app.query(plan).await?;
    let started = Instant::now();
    app.start().await?;
    app.settle().await?;
    let elapsed = started.elapsed();
    let rows = handle.rows().await?.len();
    app.shutdown().await?;
    report(
        "query-kafka",
        count,
        Measured { elapsed, cpu: None },
        serde_json::json!({
            "rows": rows,
            "partitions": cli.partitions,
            "ratio_to_raw_consumer": raw[0].as_secs_f64() / elapsed.as_secs_f64(),
            "ratio_to_raw_consumer_with_headers": raw[1].as_secs_f64() / elapsed.as_secs_f64(),
        }),
    );
    tramline::testing::kafka::delete_leftovers(brokers, |name| name.contains(&run))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    tramline_examples::init_logging();
    let cli = Cli::parse();
    let records = events(cli.events, cli.customers, cli.spacing_ms);
    let (elapsed, rows) = engine(&records);
    report("query-engine", cli.events, elapsed, serde_json::json!({ "rows": rows, "threads": 1 }));
    if cli.engine_only {
        return ExitCode::SUCCESS;
    }
    // One core: every processor of the app runs on this one thread.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let outcome = runtime.block_on(async {
        let (elapsed, rows) = memory(&cli, records.clone()).await?;
        report(
            "query-memory",
            cli.events,
            elapsed,
            serde_json::json!({ "rows": rows, "partitions": cli.partitions, "threads": 1 }),
        );
        if let Some(brokers) = &cli.brokers {
            kafka(&cli, brokers, records).await?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
