//! Throughput of the embedded log: appends of batches of 100 records of 100 bytes and of 1 KiB,
//! as plain `append`s and as a group member's atomic `commit` (outputs plus a position), with
//! `synchronous=NORMAL` (the default) and `FULL`. Prints one JSON object per case, one a line.
//!
//! ```text
//! cargo bench -p tramline --features embedded --bench embedded_append
//! TRAMLINE_BENCH_SECONDS=5 cargo bench -p tramline --features embedded --bench embedded_append
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tramline::log::embedded::{Durability, EmbeddedLog, EmbeddedOptions};
use tramline::log::{EventLog, GroupMember, Headers, OutRecord, StartFrom, TopicPartition, TopicSpec};

const BATCH: usize = 100;
const PARTITIONS: u32 = 8;

#[derive(Clone, Copy)]
enum Mode {
    Append,
    Commit,
}

fn batch(topic: &Arc<str>, size: usize, seq: &mut u64) -> Vec<OutRecord> {
    (0..BATCH)
        .map(|_| {
            *seq += 1;
            let mut value = vec![b'x'; size];
            let stamp = seq.to_le_bytes();
            value[..stamp.len()].copy_from_slice(&stamp);
            OutRecord {
                topic: topic.clone(),
                partition: None,
                key: Some(Bytes::from(format!("entity-{}", *seq % 1000))),
                value: Some(Bytes::from(value)),
                headers: Headers::new(),
                timestamp: None,
            }
        })
        .collect()
}

async fn run(durability: Durability, mode: Mode, size: usize, seconds: f64) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = EmbeddedLog::open_with(dir.path(), EmbeddedOptions::default().with_durability(durability))
        .expect("open the embedded log");
    let topic: Arc<str> = Arc::from("bench.events");
    log.create_topic(&TopicSpec::keep(&*topic, PARTITIONS)).await.unwrap();
    log.create_topic(&TopicSpec::keep("bench.commands", 1)).await.unwrap();
    let mut member: Option<Box<dyn GroupMember>> = None;
    let input = TopicPartition::new("bench.commands", 0);
    if let Mode::Commit = mode {
        let mut joined = log.join("bench", &["bench.commands"], StartFrom::Beginning).await.unwrap();
        while !joined.has_assignment() {
            joined.poll(1, Duration::from_millis(100)).await.unwrap();
        }
        member = Some(joined);
    }

    let mut seq = 0u64;
    let mut latencies = Vec::new();
    let mut write = async |records: Vec<OutRecord>, seq: u64| match member.as_mut() {
        Some(member) => member.commit(records, vec![(input.clone(), seq)]).await.unwrap(),
        None => log.append(records).await.unwrap(),
    };
    for _ in 0..10 {
        let records = batch(&topic, size, &mut seq);
        write(records, seq).await;
    }
    let started = Instant::now();
    let mut batches = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let records = batch(&topic, size, &mut seq);
        let at = Instant::now();
        write(records, seq).await;
        latencies.push(at.elapsed());
        batches += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    let records = batches * BATCH as u64;
    let on_disk = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>();
    serde_json::json!({
        "bench": "embedded_append",
        "mode": match mode { Mode::Append => "append", Mode::Commit => "commit" },
        "durability": match durability { Durability::Normal => "normal", Durability::Full => "full" },
        "record_bytes": size,
        "batch_records": BATCH,
        "partitions": PARTITIONS,
        "batches": batches,
        "seconds": (elapsed * 1000.0).round() / 1000.0,
        "records_per_sec": (records as f64 / elapsed).round(),
        "batches_per_sec": (batches as f64 / elapsed * 10.0).round() / 10.0,
        "mib_per_sec": (records as f64 * size as f64 / elapsed / (1024.0 * 1024.0) * 10.0).round() / 10.0,
        "batch_latency_us": { "p50": percentile(0.5).round(), "p99": percentile(0.99).round() },
        "bytes_on_disk": on_disk,
    })
}

fn main() {
    let seconds = std::env::var("TRAMLINE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        for durability in [Durability::Normal, Durability::Full] {
            for mode in [Mode::Append, Mode::Commit] {
                for size in [100, 1024] {
                    println!("{}", run(durability, mode, size, seconds).await);
                }
            }
        }
    });
}
