//! A transport operator's mailer, built as a partner would build it: it knows the public feeds'
//! contract (`schemas/public/partner-feed/OrderConfirmed.v1.json`) and nothing of the platform's
//! modules (this crate depends on no module crate). For every confirmed order on `public.orders.<operator>` it writes one branded
//! confirmation e-mail, a file `<out>/<operator>/<ce_id>.eml` from the operator's template.
//!
//! Idempotent by event id: an e-mail is written to a temporary file and renamed to its final
//! name only when complete, and an e-mail whose file exists is not written again; the feed's
//! positions are committed after the e-mails are on disk. Killed at any point and restarted, it
//! sends every e-mail once: what it wrote but did not commit is read again and skipped.
//!
//! A record that breaks the contract (another type, an unknown schema version, a payload the
//! schema rejects) goes to `partner-mailer.dlq` with the reason, in the same atomic write as
//! the positions.
//!
//! ```text
//! cargo run -p partner-mailer -- --data ./tramline-data --out ./mail --until-caught-up
//! cargo run -p partner-mailer -- --brokers 127.0.0.1:9092 --out ./mail --operators airlink
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use serde_json::Value;
use tramline::log::embedded::{EmbeddedLog, EmbeddedOptions};
use tramline::log::kafka::{KafkaConfig, KafkaLog};
use tramline::log::{EventLog, Record, StartFrom, TopicPartition, TopicSpec};
use tramline::runtime::dead_letter;

/// The contract, as published by the platform (`ticketing catalog --out schemas`).
const SCHEMA: &str = include_str!("../../../schemas/public/partner-feed/OrderConfirmed.v1.json");
/// The event type and schema version this mailer reads.
const TYPE: &str = "OrderConfirmed";
const VERSION: &str = "1";

/// Writes one confirmation e-mail per confirmed order of the operators' public feeds.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The embedded log directory the feeds are on.
    #[arg(long, value_name = "DIR", conflicts_with = "brokers", required_unless_present = "brokers")]
    data: Option<PathBuf>,
    /// Kafka bootstrap servers the feeds are on.
    #[arg(long, value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// The namespace the platform's topics are in (its `--namespace`); empty for none.
    #[arg(long, env = "TRAMLINE_NAMESPACE")]
    namespace: Option<String>,
    /// Where the e-mails go: one folder per operator, one file per e-mail.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The operators whose feeds to read (`public.orders.<operator>`).
    #[arg(long, value_delimiter = ',', default_values_t = ["citybus".to_owned(), "airlink".to_owned(), "metro".to_owned()])]
    operators: Vec<String>,
    /// A folder of templates `<operator>.eml` that replace the built-in ones: RFC 5322 messages
    /// with `{{event_id}}`, `{{date}}`, `{{order_id}}`, `{{operator}}`, `{{product}}`,
    /// `{{quantity}}`, `{{unit_price}}`, `{{total}}` and `{{confirmed_at}}` in them.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// The consumer group: its committed positions are where a restart resumes.
    #[arg(long, default_value = "partner-mailer")]
    group: String,
    /// Stop once every feed has been read to its end.
    #[arg(long)]
    until_caught_up: bool,
    /// Fault injection for tests: abort the process, without committing, right after writing
    /// this many e-mails.
    #[arg(long, hide = true)]
    crash_after: Option<u64>,
}

/// The public event, as the contract describes it; fields this mailer does not use are ignored.
#[derive(Debug, Deserialize)]
struct OrderConfirmed {
    order_id: String,
    operator: String,
    product: String,
    quantity: u32,
    unit_price_cents: i64,
    total_cents: i64,
    confirmed_at: String,
}

/// Why one record cannot become an e-mail.
#[derive(Debug, thiserror::Error)]
enum Rejected {
    #[error("{0}")]
    Contract(String),
    #[error("no template for operator `{0}`")]
    NoTemplate(String),
}

struct Mailer {
    out: PathBuf,
    templates: HashMap<String, String>,
    validator: jsonschema::Validator,
    written: u64,
    crash_after: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let log: Arc<dyn EventLog> = match (&cli.brokers, &cli.data) {
        // A mailer killed without leaving its group holds its partitions until its session
        // times out: keep that short (the broker's minimum), so a restart takes over quickly.
        (Some(brokers), _) => {
            Arc::new(KafkaLog::connect(KafkaConfig::new(brokers.as_str()).set("session.timeout.ms", "6000")).await?)
        }
        (None, Some(dir)) => Arc::new(EmbeddedLog::open_async(dir, EmbeddedOptions::default()).await?),
        (None, None) => unreachable!("clap requires --data or --brokers"),
    };
    let log: Arc<dyn EventLog> = match cli.namespace.as_deref().filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => Arc::new(tramline::log::Namespaced::new(log, namespace)?),
        None => log,
    };
    let schema: Value = serde_json::from_str(SCHEMA)?;
    let mut mailer = Mailer {
        out: cli.out.clone(),
        templates: templates(&cli.operators, cli.templates.as_deref())?,
        validator: jsonschema::validator_for(&schema)?,
        written: 0,
        crash_after: cli.crash_after,
    };
    let topics: Vec<String> = cli.operators.iter().map(|operator| format!("public.orders.{operator}")).collect();
    for topic in &topics {
        if log.partition_count(topic).await?.is_none() {
            return Err(format!("feed `{topic}` does not exist (yet): is the platform's partner-feed running?").into());
        }
    }
    let dead_letters: Arc<str> = Arc::from(dead_letter::topic_of(&cli.group));
    log.create_topic(&TopicSpec::keep(dead_letters.to_string(), 1)).await?;
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut member = log.join(&cli.group, &topics, StartFrom::Beginning).await?;
    let (mut sent, mut skipped, mut lettered) = (0u64, 0u64, 0u64);
    loop {
        let polled = member.poll(512, Duration::from_millis(200)).await?;
        if polled.records.is_empty() {
            if cli.until_caught_up && member.has_assignment() && caught_up(&*log, &*member).await? {
                break;
            }
            continue;
        }
        let mut letters = Vec::new();
        let mut positions: Vec<(TopicPartition, u64)> = Vec::new();
        for record in &polled.records {
            match mailer.mail(record) {
                Ok(true) => sent += 1,
                Ok(false) => skipped += 1,
                Err(rejected) => {
                    lettered += 1;
                    tracing::warn!(topic = %record.topic, offset = record.offset, %rejected, "record dead-lettered");
                    letters.push(dead_letter::letter(&dead_letters, &cli.group, record, &rejected));
                }
            }
            let tp = TopicPartition::new(record.topic.clone(), record.partition);
            match positions.iter_mut().find(|(p, _)| *p == tp) {
                Some((_, next)) => *next = record.offset + 1,
                None => positions.push((tp, record.offset + 1)),
            }
        }
        member.commit(letters, positions).await?;
    }
    member.leave().await?;
    eprintln!("partner-mailer: {sent} e-mails written, {skipped} already written, {lettered} records dead-lettered");
    Ok(())
}

/// Whether every assigned partition has been read to its end.
async fn caught_up(
    log: &dyn EventLog,
    member: &dyn tramline::log::GroupMember,
) -> Result<bool, tramline::log::LogError> {
    for tp in member.assignment() {
        if member.position(&tp).unwrap_or(0) < log.end_offset(&tp).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Mailer {
    /// Writes the e-mail of one record; `false` when it was written before.
    fn mail(&mut self, record: &Record) -> Result<bool, Rejected> {
        let text = |name: &str| record.header(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let kind = text("ce_type").unwrap_or_default();
        if kind != TYPE {
            return Err(Rejected::Contract(format!("type `{kind}` is not `{TYPE}`, the one type this mailer reads")));
        }
        // A record without a version is of version 1, as tramline reads it.
        let version = text("ce_schemaversion").unwrap_or_else(|| "1".into());
        if version != VERSION {
            return Err(Rejected::Contract(format!(
                "{TYPE} version `{version}` is unknown; this mailer reads version {VERSION}"
            )));
        }
        let id = text("ce_id")
            .filter(|id| uuid_like(id))
            .ok_or_else(|| Rejected::Contract("no valid `ce_id`".into()))?;
        let value = record.value.as_deref().ok_or_else(|| Rejected::Contract("no payload".into()))?;
        let json: Value =
            serde_json::from_slice(value).map_err(|e| Rejected::Contract(format!("payload is not JSON: {e}")))?;
        let problems: Vec<String> =
            self.validator.iter_errors(&json).map(|e| format!("{e} at `{}`", e.instance_path())).collect();
        if !problems.is_empty() {
            return Err(Rejected::Contract(format!(
                "payload breaks the {TYPE} v{VERSION} schema: {}",
                problems.join("; ")
            )));
        }
        let order: OrderConfirmed =
            serde_json::from_value(json).map_err(|e| Rejected::Contract(format!("payload does not read: {e}")))?;
        // The operator picks the folder and the template: it must be the feed's own.
        if record.topic.strip_prefix("public.orders.") != Some(order.operator.as_str()) {
            return Err(Rejected::Contract(format!(
                "the order is for operator `{}`, but it is on `{}`",
                order.operator, record.topic
            )));
        }
        // The texts go into the e-mail's headers: a line break there would add headers.
        for (field, value) in
            [("order_id", &order.order_id), ("product", &order.product), ("confirmed_at", &order.confirmed_at)]
        {
            if value.chars().any(char::is_control) {
                return Err(Rejected::Contract(format!("`{field}` holds a control character (a line break, say)")));
            }
        }
        let confirmed_at: jiff::Timestamp = order
            .confirmed_at
            .parse()
            .map_err(|e| Rejected::Contract(format!("`confirmed_at` is not an RFC 3339 time: {e}")))?;
        let template =
            self.templates.get(&order.operator).ok_or_else(|| Rejected::NoTemplate(order.operator.clone()))?;
        let folder = self.out.join(&order.operator);
        let path = folder.join(format!("{id}.eml"));
        if path.exists() {
            return Ok(false);
        }
        let mail = render(template, &order, confirmed_at, &id);
        write_atomically(&folder, &path, mail.as_bytes())
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        self.written += 1;
        if self.crash_after == Some(self.written) {
            eprintln!("partner-mailer: crashing on purpose after {} e-mails", self.written);
            std::process::abort();
        }
        Ok(true)
    }
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Writes a temporary file, syncs it, and renames it into place: the e-mail is there whole or
/// not at all.
fn write_atomically(folder: &Path, path: &Path, content: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    let temporary = path.with_extension("eml.partial");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(content)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(folder)?.sync_all()
}

fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}€{}.{:02}", cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

/// The e-mail of `order` from `template`, with the line endings of RFC 5322 (CRLF).
fn render(template: &str, order: &OrderConfirmed, confirmed_at: jiff::Timestamp, id: &str) -> String {
    // The `Date:` header: the time of the confirmation, in RFC 5322's form.
    let date = jiff::fmt::rfc2822::to_string(&confirmed_at.to_zoned_datetime(jiff::tz::TimeZone::UTC))
        .unwrap_or_else(|_| confirmed_at.to_string());
    let text = [
        ("{{event_id}}", id.to_owned()),
        ("{{date}}", date),
        ("{{order_id}}", order.order_id.clone()),
        ("{{operator}}", order.operator.clone()),
        ("{{product}}", order.product.clone()),
        ("{{quantity}}", order.quantity.to_string()),
        ("{{unit_price}}", euros(order.unit_price_cents)),
        ("{{total}}", euros(order.total_cents)),
        ("{{confirmed_at}}", order.confirmed_at.clone()),
    ]
    .iter()
    .fold(template.to_owned(), |text, (placeholder, value)| text.replace(placeholder, value));
    text.lines().flat_map(|line| [line, "\r\n"]).collect()
}

/// The operators' templates: the built-in ones, or `<dir>/<operator>.eml`.
fn templates(operators: &[String], dir: Option<&Path>) -> Result<HashMap<String, String>, Box<dyn std::error::Error>> {
    let mut templates = HashMap::new();
    for operator in operators {
        let template = match dir {
            Some(dir) => {
                let path = dir.join(format!("{operator}.eml"));
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => match operator.as_str() {
                "citybus" => include_str!("../templates/citybus.eml").to_owned(),
                "airlink" => include_str!("../templates/airlink.eml").to_owned(),
                "metro" => include_str!("../templates/metro.eml").to_owned(),
                other => {
                    return Err(format!("no built-in template for operator `{other}`: pass --templates DIR").into());
                }
            },
        };
        templates.insert(operator.clone(), template);
    }
    Ok(templates)
}

#[cfg(test)]
mod tests {
    use super::euros;

    #[test]
    fn amounts_keep_their_sign() {
        assert_eq!(euros(1_250), "€12.50");
        assert_eq!(euros(-50), "-€0.50");
        assert_eq!(euros(-150), "-€1.50");
        assert_eq!(euros(0), "€0.00");
        assert_eq!(euros(i64::MIN), "-€92233720368547758.08");
    }
}
