//! The settings of the Kafka log: where the brokers are, who this instance is, and the client
//! settings passed through to every librdkafka client the log creates.

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The environment variable that gives the default [instance id](KafkaConfig::instance_id).
pub const INSTANCE_ID_ENV: &str = "TRAMLINE_INSTANCE_ID";

/// Settings of a [`KafkaLog`](super::KafkaLog).
///
/// ```
/// use std::time::Duration;
/// use tramline::log::kafka::KafkaConfig;
///
/// let config = KafkaConfig::new("broker-1:9092,broker-2:9092")
///     .with_instance_id("ticketing-3")
///     .set("security.protocol", "SASL_SSL")
///     .set("sasl.mechanisms", "SCRAM-SHA-512")
///     .set("sasl.username", "tramline")
///     .set("sasl.password", "secret")
///     .with_transaction_timeout(Duration::from_secs(10));
/// assert_eq!(config.instance_id, "ticketing-3");
/// assert!(!format!("{config:?}").contains("secret"), "secrets are not printed");
/// ```
#[derive(Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: a comma-separated list of `host:port`.
    pub bootstrap_servers: String,
    /// A stable name of this process among the instances of the application (`ticketing-3`, a
    /// pod ordinal, a host name): never random. A group member's transactional id is
    /// `<group>.<instance id>`, so an instance that restarts after a crash fences its previous
    /// incarnation and aborts the transaction it left open, instead of waiting out the
    /// transaction timeout. Two live processes must not share an instance id: they would fence
    /// each other's transactions in turn. Default: the environment variable
    /// [`TRAMLINE_INSTANCE_ID`](INSTANCE_ID_ENV), else the host's name, which tells instances on
    /// different hosts (pods) apart; processes of one module on the same host need the variable.
    pub instance_id: String,
    /// The replication factor of the topics [`create_topic`](crate::log::EventLog::create_topic)
    /// creates; `-1` (the default) takes the cluster's `default.replication.factor`, which is 1
    /// on a single-node broker.
    pub replication_factor: i32,
    /// `max.compaction.lag.ms` of the compacted topics the log creates: how long a record that a
    /// newer one (or a tombstone) replaces may stay on the brokers' disks. Kafka never compacts
    /// the segment it writes to, and by default rolls it only after a week and cleans a topic
    /// only once half of it is stale; this bound is what makes a forgotten subject's deleted key
    /// (`tramline.keys`) leave the cluster in a known time. Default: one day.
    pub max_compaction_lag: Duration,
    /// librdkafka settings applied to every client the log creates (`security.protocol`,
    /// `sasl.*`, `ssl.*`, `client.rack`, tuning such as `linger.ms`), after the log's own defaults
    /// so they can override them. The settings the log's guarantees rest on (`isolation.level`,
    /// `enable.auto.commit`, `enable.idempotence`, `transactional.id`, `group.id`,
    /// `partitioner`) cannot be overridden.
    pub client: Vec<(String, String)>,
    /// How long [`KafkaLog::connect`](super::KafkaLog::connect) waits for the brokers to answer.
    pub connect_timeout: Duration,
    /// The timeout of one request to the cluster: metadata, topic creation, offsets,
    /// transaction calls.
    pub request_timeout: Duration,
    /// `transaction.timeout.ms` of the group members' transactional producers: how long the
    /// broker keeps the transaction of a crashed member open (blocking `read_committed`
    /// readers) when no instance with the same transactional id comes back. Keep it short.
    pub transaction_timeout: Duration,
    /// How long a [`read`](crate::log::EventLog::read) waits for a transaction that is still
    /// open below the high watermark (a restore reads up to the high watermark) before it fails.
    /// Should exceed the transaction timeout of every producer of the topics read.
    pub read_timeout: Duration,
}

/// The host's name, or `0` where it cannot be read.
fn host_name() -> String {
    let name = gethostname::gethostname().to_string_lossy().trim().to_owned();
    if name.is_empty() { "0".to_owned() } else { name }
}

impl KafkaConfig {
    /// Settings for the brokers at `bootstrap_servers`, with every other setting at its default.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        let instance_id = std::env::var(INSTANCE_ID_ENV)
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(host_name);
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            instance_id,
            replication_factor: -1,
            max_compaction_lag: Duration::from_secs(24 * 60 * 60),
            client: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            transaction_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }

    /// The same settings with another [instance id](Self::instance_id).
    pub fn with_instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = instance_id.into();
        self
    }

    /// The same settings with another [replication factor](Self::replication_factor).
    pub fn with_replication_factor(mut self, replication_factor: i32) -> Self {
        self.replication_factor = replication_factor;
        self
    }

    /// The same settings with another [compaction bound](Self::max_compaction_lag).
    pub fn with_max_compaction_lag(mut self, lag: Duration) -> Self {
        self.max_compaction_lag = lag;
        self
    }

    /// The same settings plus one librdkafka setting for every client (see [`client`](Self::client)).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.client.retain(|(k, _)| *k != key);
        self.client.push((key, value.into()));
        self
    }

    /// The same settings plus several librdkafka settings, in order (see [`set`](Self::set)).
    pub fn set_all<K: Into<String>, V: Into<String>>(self, settings: impl IntoIterator<Item = (K, V)>) -> Self {
        settings.into_iter().fold(self, |config, (key, value)| config.set(key, value))
    }

    /// The same settings with another [connect timeout](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The same settings with another [request timeout](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The same settings with another [transaction timeout](Self::transaction_timeout).
    pub fn with_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// The same settings with another [read timeout](Self::read_timeout).
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }
}

/// A client setting written `KEY=VALUE`, as a command line's `--kafka-set` takes it: split at
/// the first `=` (a value may hold more, as `sasl.jaas.config` does), both sides trimmed.
///
/// ```
/// use tramline::log::kafka::parse_setting;
///
/// assert_eq!(parse_setting("sasl.mechanism=PLAIN"), Ok(("sasl.mechanism".into(), "PLAIN".into())));
/// assert!(parse_setting("PLAIN").is_err());
/// ```
pub fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.trim().to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// Client settings from a file of `KEY=VALUE` lines, as Kafka's `client.properties` (the file
/// Kafka's own tools take with `--command-config`): blank lines and lines that start with `#`
/// or `!` are skipped, `:` separates as `=` does, both sides are trimmed. A command line's
/// `--kafka-config FILE` reads it, so that secrets (`sasl.password`) stay out of the
/// arguments, which every user of the machine can read (`ps`). A line continued with `\` is
/// refused rather than misread.
///
/// ```
/// use tramline::log::kafka::read_settings;
///
/// let file = std::env::temp_dir().join(format!("tramline-doc-{}.properties", std::process::id()));
/// std::fs::write(&file, "# the cluster\nsecurity.protocol=SASL_SSL\nsasl.mechanism: PLAIN\n")?;
/// let settings = read_settings(&file)?;
/// assert_eq!(settings[1], ("sasl.mechanism".to_owned(), "PLAIN".to_owned()));
/// std::fs::remove_file(&file)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_settings(path: impl AsRef<Path>) -> Result<Vec<(String, String)>, String> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let at = |number: usize, problem: String| format!("`{}` line {number}: {problem}", path.display());
    let mut settings = Vec::new();
    for (number, line) in (1..).zip(text.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', '!']) {
            continue;
        }
        if line.ends_with('\\') {
            return Err(at(
                number,
                "a line continued with `\\` is not read here: write the setting on one line".into(),
            ));
        }
        match line.split_once(['=', ':']) {
            Some((key, value)) if !key.trim().is_empty() => {
                settings.push((key.trim().to_owned(), value.trim().to_owned()))
            }
            // Not quoted: the line may hold a secret.
            _ => return Err(at(number, "not KEY=VALUE (the line is not shown: it may hold a secret)".into())),
        }
    }
    Ok(settings)
}

/// Whether a client setting holds a secret that must not be printed.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key.pem", "keystore", "ssl.key", "token", "jaas"]
        .iter()
        .any(|s| key.contains(s))
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client: Vec<(&str, &str)> = self
            .client
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("instance_id", &self.instance_id)
            .field("replication_factor", &self.replication_factor)
            .field("max_compaction_lag", &self.max_compaction_lag)
            .field("client", &client)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("transaction_timeout", &self.transaction_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settings_file_reads_as_kafka_reads_client_properties() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.properties");
        let read = |text: &str| {
            std::fs::write(&file, text).unwrap();
            read_settings(&file)
        };
        let settings = read(
            "# a comment\n! another\n\n  security.protocol = SASL_SSL\nsasl.mechanism:PLAIN\n\
             sasl.jaas.config=org.Module required username=\"u\" password=\"p:w\";\n",
        )
        .unwrap();
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.jaas.config", "org.Module required username=\"u\" password=\"p:w\";"),
            ]
        );
        let name = file.display();
        assert_eq!(
            read("a=1\nsasl.password hunter2\n"),
            Err(format!("`{name}` line 2: not KEY=VALUE (the line is not shown: it may hold a secret)"))
        );
        assert!(read("sasl.jaas.config=a \\\n  b\n").unwrap_err().contains("line 1: a line continued with `\\`"));
        let missing = read_settings(dir.path().join("none")).unwrap_err();
        assert!(missing.starts_with("cannot read `"), "{missing}");
    }

    #[test]
    fn a_setting_splits_at_its_first_equals_sign() {
        assert_eq!(parse_setting("sasl.jaas.config=a=b"), Ok(("sasl.jaas.config".into(), "a=b".into())));
        assert_eq!(parse_setting(" debug = cgrp "), Ok(("debug".into(), "cgrp".into())));
        assert!(parse_setting("debug").is_err());
        assert!(parse_setting("=cgrp").is_err());
    }

    #[test]
    fn the_default_instance_id_is_the_host_name_unless_the_environment_names_one() {
        let expected = match std::env::var(INSTANCE_ID_ENV) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => gethostname::gethostname().to_string_lossy().into_owned(),
        };
        assert_eq!(KafkaConfig::new("broker:9092").instance_id, expected);
        assert_ne!(expected, "", "an empty transactional id suffix");
    }
}
