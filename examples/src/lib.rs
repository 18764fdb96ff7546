//! Shared set-up of the example binaries.

/// The binaries allocate through jemalloc: the runtime allocates and frees many small records,
/// which glibc's allocator handles with much more CPU (measured in the README).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod catalog;

use std::path::PathBuf;
use std::sync::Arc;

use ticketing_platform::{CountingMailer, Platform, Services, Simulation};
use tramline::MemoryLog;
use tramline::log::embedded::{EmbeddedLog, EmbeddedOptions};
use tramline::log::kafka::{KafkaConfig, KafkaLog, parse_setting, read_settings};
use tramline::log::{EventLog, Namespaced};
use tramline::runtime::{RuntimeError, Settings};

/// Which log the platform runs on.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// The directory of the durable embedded log; a second run continues where the last left off.
    #[arg(long, value_name = "DIR", default_value = "./tramline-data")]
    pub data: PathBuf,
    /// Run on an in-memory log instead: nothing is kept.
    #[arg(long, conflicts_with_all = ["data", "brokers"])]
    pub memory: bool,
    /// Run on Apache Kafka at these bootstrap servers (`127.0.0.1:9092`; `scripts/kafka start`
    /// runs a broker here).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "data", value_parser = brokers)]
    pub brokers: Option<String>,
    /// Put every topic and consumer group under this prefix (`<namespace>.order.events`), so
    /// that several platforms share one cluster without meeting; empty for none.
    #[arg(long, env = "TRAMLINE_NAMESPACE", value_parser = namespace)]
    pub namespace: Option<String>,
    /// How the Kafka clients are set up.
    #[command(flatten)]
    pub kafka: KafkaClientArgs,
}

/// The settings of every Kafka client, as a secured cluster (or a tuning) needs.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaClientArgs {
    /// A file of librdkafka settings, `KEY=VALUE` a line (Kafka's `client.properties`), read
    /// before `--kafka-set`: secrets (`sasl.password`) stay out of the command line.
    #[arg(long = "kafka-config", value_name = "FILE", requires = "brokers")]
    pub file: Option<PathBuf>,
    /// A librdkafka setting for every Kafka client (`security.protocol=SASL_SSL`,
    /// `sasl.mechanism=PLAIN`, `debug=cgrp`...); repeatable.
    #[arg(long = "kafka-set", value_name = "KEY=VALUE", value_parser = parse_setting, requires = "brokers")]
    pub settings: Vec<(String, String)>,
}

impl KafkaClientArgs {
    /// Checked where clap cannot: it skips a `requires` when an argument that conflicts with
    /// the required one is given (`--kafka-set` with `--memory`).
    pub fn check(&self, brokers: Option<&str>) -> Result<(), String> {
        match (self.file.is_none() && self.settings.is_empty()) || brokers.is_some() {
            true => Ok(()),
            false => Err("`--kafka-config` and `--kafka-set` set up Kafka clients: they need `--brokers`".into()),
        }
    }

    /// The client configuration for `brokers`: the file's settings, then `--kafka-set`'s.
    pub fn config(&self, brokers: &str) -> Result<KafkaConfig, String> {
        let from_file = self.file.as_ref().map(read_settings).transpose()?.unwrap_or_default();
        Ok(KafkaConfig::new(brokers).set_all(from_file).set_all(self.settings.iter().cloned()))
    }
}

/// Bootstrap servers: `HOST:PORT`, comma-separated, none empty.
fn brokers(list: &str) -> Result<String, String> {
    match list.split(',').all(|server| !server.trim().is_empty()) {
        true => Ok(list.to_owned()),
        false => Err(format!("`{list}` names no broker: give HOST:PORT[,HOST:PORT...]")),
    }
}

/// A namespace prefixes topic names ([`Namespaced::check`]). An empty one is none, so that
/// `TRAMLINE_NAMESPACE=` unsets it as it would any other setting.
fn namespace(name: &str) -> Result<String, String> {
    match name.is_empty() {
        true => Ok(String::new()),
        false => Namespaced::check(name).map(|()| name.to_owned()).map_err(|invalid| invalid.to_string()),
    }
}

/// Exits as clap does on a usage error (status 2), with `message`. For the rules clap cannot
/// check: it skips a `requires` when an argument that conflicts with the required one is given
/// (`--kafka-set` with `--memory`).
pub fn usage_error<Cli: clap::CommandFactory>(message: impl std::fmt::Display) -> ! {
    Cli::command().error(clap::error::ErrorKind::MissingRequiredArgument, message).exit()
}

impl LogArgs {
    /// The rules between the log's arguments that clap does not check.
    pub fn check(&self) -> Result<(), String> {
        self.kafka.check(self.brokers.as_deref())
    }

    /// Opens the chosen log.
    pub async fn open(&self) -> Result<Arc<dyn EventLog>, Box<dyn std::error::Error>> {
        let log: Arc<dyn EventLog> = match (&self.brokers, self.memory) {
            (Some(brokers), _) => Arc::new(KafkaLog::connect(self.kafka.config(brokers)?).await?),
            (None, true) => MemoryLog::shared(),
            (None, false) => Arc::new(EmbeddedLog::open_async(&self.data, EmbeddedOptions::default()).await?),
        };
        Ok(match self.namespace() {
            Some(namespace) => Arc::new(Namespaced::new(log, namespace)?),
            None => log,
        })
    }

    /// Where the log lives, for messages.
    pub fn describe(&self) -> String {
        let log = match (&self.brokers, self.memory) {
            (Some(brokers), _) => format!("Kafka at {brokers}"),
            (None, true) => "in memory".to_owned(),
            (None, false) => format!("embedded log in {}", self.data.display()),
        };
        match self.namespace() {
            Some(namespace) => format!("{log}, namespace `{namespace}`"),
            None => log,
        }
    }

    /// The namespace, if one is given and not empty.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|namespace| !namespace.is_empty())
    }
}

/// Starts the whole platform on `log` with the simulation's services ([`register_platform`]).
pub async fn start_platform(
    log: Arc<dyn EventLog>,
    simulation: &Simulation,
) -> Result<(Platform, Arc<CountingMailer>), RuntimeError> {
    let (mut platform, mailer) = register_platform(log, simulation).await?;
    platform.app.start().await?;
    Ok((platform, mailer))
}

/// Registers the whole platform on `log` with the simulation's services, its clock where the
/// simulated timeline of earlier runs on the log left off ([`Platform::resume_timeline`]); not
/// started.
pub async fn register_platform(
    log: Arc<dyn EventLog>,
    simulation: &Simulation,
) -> Result<(Platform, Arc<CountingMailer>), RuntimeError> {
    let mailer = Arc::new(CountingMailer::default());
    let services = Services { provider: Arc::new(simulation.provider()), mailer: mailer.clone() };
    let platform = Platform::register(log, Settings::default(), services).await?;
    platform.resume_timeline().await?;
    Ok((platform, mailer))
}

/// Logs to stderr, filtered by `RUST_LOG` (warnings by default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// How much of each record the raw consumer of the benchmarks reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawRead {
    /// The value's length only: librdkafka's floor.
    Value,
    /// The key, the value and every header, as any consumer of tramline's records must (a
    /// record's event type, id and time are headers, CloudEvents' binary mode).
    Whole,
}

impl RawRead {
    /// The benchmark's name of the raw consumer reading this much.
    pub fn bench(self) -> &'static str {
        match self {
            RawRead::Value => "raw-rdkafka-consumer",
            RawRead::Whole => "raw-rdkafka-consumer-with-headers",
        }
    }
}

/// What the benchmarks compare tramline with: a plain rdkafka consumer in a group of its own
/// (`read_committed`, as tramline's members) reading every record of `topic`, timed from
/// subscribing until it has read `expected` records. It polls on a thread of tokio's blocking
/// pool, off the executor.
pub async fn raw_consume(
    brokers: &str,
    topic: &str,
    expected: usize,
    read: RawRead,
) -> Result<std::time::Duration, Box<dyn std::error::Error + Send + Sync>> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || raw_consume_blocking(&brokers, &topic, expected, read)).await?
}

fn raw_consume_blocking(
    brokers: &str,
    topic: &str,
    expected: usize,
    read: RawRead,
) -> Result<std::time::Duration, Box<dyn std::error::Error + Send + Sync>> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use std::time::{Duration, Instant};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}.raw-{}", uuid::Uuid::now_v7().simple())) // gone with the topic's leftovers
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let started = Instant::now();
    consumer.subscribe(&[topic])?;
    let (mut seen, mut bytes, mut last) = (0, 0, Instant::now());
    while seen < expected {
        // Short polls: a long one does not serve the group's join in time.
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                seen += 1;
                bytes += message.payload().map_or(0, <[u8]>::len);
                if read == RawRead::Whole {
                    bytes += message.key().map_or(0, <[u8]>::len);
                    for header in message.headers().iter().flat_map(|headers| headers.iter()) {
                        bytes += header.key.len() + header.value.map_or(0, <[u8]>::len);
                    }
                }
                last = Instant::now();
            }
            Some(Err(error)) => return Err(error.into()),
            None if last.elapsed() > Duration::from_secs(30) => {
                return Err(format!("the raw consumer stalled after {seen} of {expected} records").into());
            }
            None => {}
        }
    }
    let elapsed = started.elapsed();
    std::hint::black_box(bytes);
    Ok(elapsed)
}

/// The README's code blocks, compiled and run as doctests so that the walkthrough stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_file_comes_first_and_kafka_set_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.properties");
        std::fs::write(&file, "security.protocol=SASL_SSL\nacks=1\n").unwrap();
        let args = KafkaClientArgs { file: Some(file), settings: vec![("acks".into(), "all".into())] };
        let config = args.config("broker:9092").unwrap();
        let set = |key: &str| config.client.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!((set("security.protocol"), set("acks")), (Some("SASL_SSL"), Some("all")));
        let missing = KafkaClientArgs { file: Some(dir.path().join("none")), settings: Vec::new() };
        assert!(missing.config("broker:9092").unwrap_err().starts_with("cannot read"));
    }
}
