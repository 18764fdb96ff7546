//! Kafka adapter throughput against a real broker, side by side with raw rdkafka on the same
//! settings: producing and consuming (100-byte and 1 KiB values), and back-to-back transactions.
//! Prints one JSON document.
//!
//! Run: `cargo bench -p tramline --features kafka --bench kafka_log`
//! (broker: `TRAMLINE_KAFKA_BOOTSTRAP`, else `scripts/kafka start`). Sizes scale with the
//! environment variable `TRAMLINE_BENCH_SCALE` (default 1.0); arguments pick groups: `-- consume`.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tramline::log::kafka::{KafkaConfig, KafkaLog};
use tramline::log::{EventLog, OutRecord, StartFrom, TopicPartition, TopicSpec};

const PARTITIONS: u32 = 4;
const BATCH: usize = 1000;

/// Repetitions of each scenario, interleaved with the other scenarios of its group; the median
/// is reported (the broker shares the machine's cores, single runs vary a lot).
const REPEAT: usize = 3;

fn bootstrap() -> String {
    if let Ok(address) = std::env::var("TRAMLINE_KAFKA_BOOTSTRAP")
        && !address.trim().is_empty()
    {
        return address.trim().to_owned();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka");
    let output = Command::new("bash").arg(&script).arg("start").output().expect("run scripts/kafka start");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scripts/kafka start failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()).expect("the address").to_owned()
}

/// This run's id: in the name of every topic and group it makes, which go when it ends.
fn run_id() -> &'static str {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| uuid::Uuid::now_v7().simple().to_string())
}

fn unique(name: &str) -> String {
    format!("bench-{}-{name}-{}", run_id(), uuid::Uuid::now_v7().simple())
}

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("TRAMLINE_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(BATCH)
}

/// The append producer's settings, as `KafkaLog` sets them.
fn raw_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("socket.nagle.disable", "true")
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("a producer")
}

fn records(topic: &Arc<str>, count: usize, size: usize) -> Vec<OutRecord> {
    let value = Bytes::from(vec![b'x'; size]);
    (0..count)
        .map(|i| OutRecord {
            topic: topic.clone(),
            partition: None,
            key: Some(Bytes::from(format!("key-{}", i % 10_000))),
            value: Some(value.clone()),
            headers: Default::default(),
            timestamp: None,
        })
        .collect()
}

fn result(name: &str, size: usize, count: usize, mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let per_sec = |d: &Duration| (count as f64 / d.as_secs_f64()).round();
    let median = samples[samples.len() / 2];
    json!({
        "name": name,
        "value_bytes": size,
        "records": count,
        "median_seconds": (median.as_secs_f64() * 1000.0).round() / 1000.0,
        "records_per_sec": per_sec(&median),
        "mb_per_sec": ((count * size) as f64 / median.as_secs_f64() / 1e6 * 100.0).round() / 100.0,
        "records_per_sec_samples": samples.iter().rev().map(per_sec).collect::<Vec<_>>(),
    })
}

async fn create(log: &KafkaLog, name: &str) -> Arc<str> {
    let name = unique(name);
    log.create_topic(&TopicSpec::keep(&name, PARTITIONS)).await.expect("create topic");
    Arc::from(name)
}

/// Raw rdkafka: `batch` records in flight at a time, waiting for their delivery reports.
async fn raw_produce(producer: &FutureProducer, records: &[OutRecord], batch: usize) -> Duration {
    let started = Instant::now();
    for chunk in records.chunks(batch) {
        let mut pending = VecDeque::with_capacity(chunk.len());
        for record in chunk {
            let mut message = FutureRecord::<[u8], [u8]>::to(&record.topic)
                .key(record.key.as_deref().unwrap())
                .payload(record.value.as_deref().unwrap());
            loop {
                match producer.send_result(message) {
                    Ok(delivery) => {
                        pending.push_back(delivery);
                        break;
                    }
                    Err((_, back)) => {
                        message = back;
                        pending.pop_front().expect("queue full with nothing in flight").await.unwrap().unwrap();
                    }
                }
            }
        }
        for delivery in pending {
            delivery.await.unwrap().expect("delivered");
        }
    }
    started.elapsed()
}

async fn log_append(log: &KafkaLog, records: Vec<OutRecord>, batch: usize) -> Duration {
    let started = Instant::now();
    for chunk in records.chunks(batch) {
        log.append(chunk.to_vec()).await.expect("append");
    }
    started.elapsed()
}

async fn produce(log: &KafkaLog, producer: &FutureProducer, size: usize, count: usize) -> Vec<serde_json::Value> {
    let mut samples: [Vec<Duration>; 4] = Default::default();
    for _ in 0..REPEAT {
        let topic = create(log, "raw").await;
        samples[0].push(raw_produce(producer, &records(&topic, count, size), count).await);
        let topic = create(log, "append").await;
        samples[1].push(log_append(log, records(&topic, count, size), count).await);
        let topic = create(log, "raw-batched").await;
        samples[2].push(raw_produce(producer, &records(&topic, count, size), BATCH).await);
        let topic = create(log, "append-batched").await;
        samples[3].push(log_append(log, records(&topic, count, size), BATCH).await);
    }
    let [raw, append, raw_batched, append_batched] = samples;
    vec![
        result("produce/raw_rdkafka/all_in_flight", size, count, raw),
        result("produce/kafka_log_append/one_call", size, count, append),
        result("produce/raw_rdkafka/batches_of_1000", size, count, raw_batched),
        result("produce/kafka_log_append/calls_of_1000", size, count, append_batched),
    ]
}

/// A raw consumer (group, `read_committed`, as a member's) reading `count` records.
fn raw_consume(bootstrap: &str, topic: &str, count: usize) -> Duration {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("socket.nagle.disable", "true")
        .set("group.id", unique("raw"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("a consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    // The clock starts with the first record, after the group join (as for the member).
    let mut started = None;
    let mut seen = 0;
    let mut bytes = 0usize;
    while seen < count {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            bytes += message.expect("a message").payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    assert!(bytes > 0);
    started.expect("records came").elapsed()
}

/// A group member's poll loop; with `commit`, each batch's positions are committed (one
/// transaction per batch), with `output` also one output per input.
async fn member_consume(
    log: &KafkaLog,
    topic: &Arc<str>,
    output: Option<&Arc<str>>,
    commit: bool,
    count: usize,
) -> Duration {
    let mut member = log.join(&unique("member"), &[&**topic], StartFrom::Beginning).await.expect("join");
    // The clock starts with the first records, after the group join (as for the raw consumer).
    let mut started = None;
    let mut seen = 0;
    while seen < count {
        let polled = member.poll(BATCH, Duration::from_millis(100)).await.expect("poll");
        if polled.records.is_empty() {
            continue;
        }
        started.get_or_insert_with(Instant::now);
        seen += polled.records.len();
        if commit {
            let mut next: Vec<(TopicPartition, u64)> = Vec::new();
            for r in &polled.records {
                let tp = TopicPartition::new(r.topic.clone(), r.partition);
                match next.iter_mut().find(|(t, _)| *t == tp) {
                    Some((_, o)) => *o = (*o).max(r.offset + 1),
                    None => next.push((tp, r.offset + 1)),
                }
            }
            let outputs = match output {
                Some(out) => polled
                    .records
                    .iter()
                    .map(|r| OutRecord {
                        topic: out.clone(),
                        partition: Some(r.partition),
                        key: r.key.clone(),
                        value: r.value.clone(),
                        headers: Default::default(),
                        timestamp: None,
                    })
                    .collect(),
                None => Vec::new(),
            };
            member.commit(outputs, next).await.expect("commit");
        }
    }
    let elapsed = started.expect("records came").elapsed();
    member.leave().await.expect("leave");
    elapsed
}

async fn consume(log: &KafkaLog, bootstrap: &str, size: usize, count: usize) -> Vec<serde_json::Value> {
    let topic = create(log, "consume").await;
    log_append(log, records(&topic, count, size), 10 * BATCH).await;
    let output = create(log, "consume-out").await;
    let mut samples: [Vec<Duration>; 4] = Default::default();
    for _ in 0..REPEAT {
        let (address, name) = (bootstrap.to_owned(), topic.to_string());
        samples[0].push(tokio::task::spawn_blocking(move || raw_consume(&address, &name, count)).await.unwrap());
        samples[1].push(member_consume(log, &topic, None, false, count).await);
        samples[2].push(member_consume(log, &topic, None, true, count).await);
        samples[3].push(member_consume(log, &topic, Some(&output), true, count).await);
    }
    let [raw, poll, positions, outputs] = samples;
    vec![
        result("consume/raw_rdkafka/poll", size, count, raw),
        result("consume/group_member/poll", size, count, poll),
        result("consume/group_member/poll_commit_positions_per_batch", size, count, positions),
        result("consume/group_member/poll_commit_one_output_per_input_per_batch", size, count, outputs),
    ]
}

/// The latency of back-to-back small transactions: poll one record, commit one output and its
/// position, `count` times.
async fn commit_latency(log: &KafkaLog, count: usize) -> serde_json::Value {
    let input = create(log, "latency-in").await;
    let output = create(log, "latency-out").await;
    log.append(records(&input, count, 100)).await.expect("append");
    let mut member = log.join(&unique("latency"), &[&*input], StartFrom::Beginning).await.expect("join");
    let mut latencies = Vec::with_capacity(count);
    let mut started = None;
    while latencies.len() < count {
        let polled = member.poll(1, Duration::from_millis(100)).await.expect("poll");
        let Some(r) = polled.records.first() else { continue };
        started.get_or_insert_with(Instant::now);
        let out = OutRecord {
            topic: output.clone(),
            partition: Some(r.partition),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: Default::default(),
            timestamp: None,
        };
        let position = (TopicPartition::new(r.topic.clone(), r.partition), r.offset + 1);
        let at = Instant::now();
        member.commit(vec![out], vec![position]).await.expect("commit");
        latencies.push(at.elapsed());
    }
    let elapsed = started.expect("records came").elapsed();
    member.leave().await.expect("leave");
    latencies.sort();
    let ms = |q: f64| (latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e5).round() / 100.0;
    json!({
        "name": "transaction/one_output_one_position/back_to_back",
        "transactions": count,
        "transactions_per_sec": (count as f64 / elapsed.as_secs_f64()).round(),
        "commit_ms_p50": ms(0.5),
        "commit_ms_p90": ms(0.9),
        "commit_ms_p99": ms(0.99),
        "commit_ms_max": ms(1.0),
    })
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments pick groups (`produce`, `consume`,
    // `transaction`), all of them by default.
    let groups: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |group: &str| groups.is_empty() || groups.iter().any(|g| g == group);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let bootstrap = bootstrap();
        let log = KafkaLog::connect(KafkaConfig::new(&bootstrap).with_instance_id("bench")).await.expect("connect");
        let producer = raw_producer(&bootstrap);
        let mut results = Vec::new();
        if wanted("produce") {
            results.extend(produce(&log, &producer, 100, scaled(200_000)).await);
            results.extend(produce(&log, &producer, 1024, scaled(50_000)).await);
        }
        if wanted("consume") {
            results.extend(consume(&log, &bootstrap, 1024, scaled(50_000)).await);
            results.extend(consume(&log, &bootstrap, 100, scaled(200_000)).await);
        }
        if wanted("transaction") {
            results.push(commit_latency(&log, scaled(1000).min(2000)).await);
        }
        let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
        let report = json!({
            "bench": "kafka_log",
            "broker": bootstrap,
            "librdkafka": librdkafka,
            "partitions": PARTITIONS,
            "repeat": REPEAT,
            "machine_cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        let ours = format!("bench-{}-", run_id());
        if let Err(error) = tramline::testing::kafka::delete_leftovers(&bootstrap, |name| name.starts_with(&ours)).await
        {
            eprintln!("warning: the run's topics stay on the broker: {error}");
        }
    });
}
