//! librdkafka's error reports and log lines, told through `tracing` without flooding it; and
//! the [`Throttle`] that group members tell their consumer errors through too.
//!
//! While a broker is away every client reports every failed connection attempt, as an error
//! ("Global error: BrokerTransportFailure", "AllBrokersDown") and as a log line ("FAIL ...
//! Connection refused"): a platform of 20 groups logged over 3,000 lines in a 20-second outage,
//! and 300,000 in a longer one, whose CPU slowed the broker's own restart. librdkafka recovers
//! from them by itself, so one line per kind every [`TELL_EVERY`], process-wide, says all there
//! is to say. Log lines below `Warning` (`debug=...` asks for them) are not held back.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::lock;

/// How often one kind of error is told while it keeps coming.
pub(super) const TELL_EVERY: Duration = Duration::from_secs(10);

/// How many kinds a throttle remembers; past that it starts afresh (lines that name changing
/// things, topics say, must not grow it for ever).
const KINDS: usize = 1024;

/// The context of the log's clients (all but the group members', which add rebalances).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ClientLogs;

/// What has been told lately, for the whole process.
static TOLD: LazyLock<Throttle> = LazyLock::new(|| Throttle::new(TELL_EVERY));

impl ClientContext for ClientLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, line: &str) {
        log_line(&TOLD, level, facility, line);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tell(&TOLD, &error, reason);
    }
}

impl ConsumerContext for ClientLogs {}

/// Tells `error` unless one of its kind was told less than the throttle's period ago.
/// Fatal errors are all told: each ends a client, and only its reason tells which.
pub(super) fn tell(throttle: &Throttle, error: &KafkaError, reason: &str) {
    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
        tracing::error!(target: "librdkafka", %error, reason, "kafka: client error");
        return;
    }
    let Some(held_back) = throttle.admit(&error.to_string()) else { return };
    tracing::warn!(target: "librdkafka", %error, reason, held_back, "kafka: client error (librdkafka retries)");
}

/// Tells a librdkafka log line; warnings and errors are held back like [`tell`]'s errors, by
/// their shape (the line without its digits: "after 0ms" and "after 3ms" are one kind).
pub(super) fn log_line(throttle: &Throttle, level: RDKafkaLogLevel, facility: &str, line: &str) {
    use RDKafkaLogLevel::*;
    let held_back = || {
        let mut kind = format!("{level:?} {facility} ");
        kind.extend(line.chars().filter(|c| !c.is_ascii_digit()));
        throttle.admit(&kind)
    };
    match level {
        Emerg | Alert | Critical | Error => {
            let Some(held_back) = held_back() else { return };
            tracing::error!(target: "librdkafka", held_back, "librdkafka: {facility} {line}");
        }
        Warning => {
            let Some(held_back) = held_back() else { return };
            tracing::warn!(target: "librdkafka", held_back, "librdkafka: {facility} {line}");
        }
        Notice | Info => tracing::info!(target: "librdkafka", "librdkafka: {facility} {line}"),
        Debug => tracing::debug!(target: "librdkafka", "librdkafka: {facility} {line}"),
    }
}

/// At most one report per kind in each period; the ones held back are counted.
pub(super) struct Throttle {
    every: Duration,
    /// Per kind: when it was last told, and how many of it came since.
    told: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Throttle {
    pub(super) fn new(every: Duration) -> Self {
        Throttle { every, told: Mutex::default() }
    }

    /// Whether a report of `kind` is to be told now; if so, how many of its kind were held back
    /// since the last one told.
    pub(super) fn admit(&self, kind: &str) -> Option<u64> {
        let mut told = lock(&self.told);
        let now = Instant::now();
        match told.get_mut(kind) {
            Some((at, held_back)) if now.duration_since(*at) < self.every => {
                *held_back += 1;
                None
            }
            Some((at, held_back)) => {
                *at = now;
                Some(std::mem::take(held_back))
            }
            None => {
                if told.len() >= KINDS {
                    told.clear();
                }
                told.insert(kind.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_kind_is_told_once_per_period_with_how_many_were_held_back() {
        let throttle = Throttle::new(Duration::from_millis(200));
        assert_eq!(throttle.admit("down"), Some(0));
        assert_eq!(throttle.admit("down"), None);
        assert_eq!(throttle.admit("down"), None);
        assert_eq!(throttle.admit("refused"), Some(0), "another kind has its own period");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.admit("down"), Some(2));
        assert_eq!(throttle.admit("down"), None);
    }

    /// The lines written by a subscriber, shared with the test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_flood_of_one_kind_of_client_error_or_warning_is_one_line() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let throttle = Throttle::new(Duration::from_secs(60));
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..1000 {
                let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
                tell(&throttle, &down, "1/1 brokers are down");
            }
            tell(&throttle, &KafkaError::Global(RDKafkaErrorCode::Fatal), "the producer is fenced");
            tell(&throttle, &KafkaError::Global(RDKafkaErrorCode::Fatal), "another producer is fenced");
            for after in 0..1000 {
                let line = format!("127.0.0.1:9092/1: Connect failed: Connection refused (after {after}ms)");
                log_line(&throttle, RDKafkaLogLevel::Error, "FAIL", &line);
            }
            log_line(&throttle, RDKafkaLogLevel::Warning, "CONFWARN", "a setting is ignored");
            for _ in 0..3 {
                log_line(&throttle, RDKafkaLogLevel::Info, "CGRPOP", "joining the group");
            }
        });
        let text = String::from_utf8(lock(&lines.0).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8, "{text}");
        assert!(lines[0].contains("WARN") && lines[0].contains("All broker connections are down"), "{text}");
        assert!(lines[1].contains("ERROR") && lines[1].contains("the producer is fenced"), "{text}");
        assert!(
            lines[2].contains("ERROR") && lines[2].contains("another producer is fenced"),
            "every fatal one: {text}"
        );
        assert!(lines[3].contains("ERROR") && lines[3].contains("FAIL") && lines[3].contains("after 0ms"), "{text}");
        assert!(lines[4].contains("WARN") && lines[4].contains("CONFWARN"), "{text}");
        assert!(lines[5..].iter().all(|line| line.contains("INFO") && line.contains("joining")), "{text}");
    }
}
