//! `tramline`: runs a stream query written in ksqlDB's SQL over events, and prints the rows;
//! starts an app's query over; lists a processor's dead letters.
//!
//! ```text
//! tramline query --sql suspicious_sales.sql --input events.jsonl --until-end
//! cat events.jsonl | tramline query --sql q.sql
//! tramline query --sql q.sql --data ./tramline-data --topic order.events --until-end
//! tramline query --sql q.sql --brokers 127.0.0.1:9092 --topic order.events --until-end
//! tramline dead-letters --group accounting --brokers kafka:9093 --kafka-set security.protocol=SSL
//! tramline reset-query --name suspicious_sales --data ./tramline-data --delete-sink
//! tramline dead-letters --group accounting --data ./tramline-data
//! ```
//!
//! Events are CloudEvents 1.0 in structured JSON, one a line (`specversion`, `id`, `source`,
//! `type`, `time` and `data` or `data_base64`), or the records of a topic; the rows come
//! out as JSON objects, one a line, on stdout. A line that cannot be read is reported on stderr
//! with its number and counted, the others go on, and the exit status is 1. A query that does
//! not parse or plan is reported with its line and column, and the exit status is 2.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tramline::codec;
use tramline::log::embedded::EmbeddedLog;
use tramline::log::kafka::{KafkaConfig, KafkaLog, parse_setting, read_settings};
use tramline::log::{EventLog, Namespaced, Record, TopicPartition};
use tramline::stream::{Catalog, Emitted, PartitionState, Plan, SqlType, Value, Window, sql};

#[derive(Debug, Parser)]
#[command(name = "tramline", version, about = "tramline: event-sourced modules on a log")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a stream query (CREATE STREAM | TABLE ... AS SELECT) and prints its rows as JSON lines.
    Query(QueryArgs),
    /// Starts a stream query of an app over: deletes its consumer groups and internal topics
    /// (and with --delete-sink its sink), so that it reads its source again from the beginning
    /// when the app next runs. Stop the app first.
    ResetQuery(ResetArgs),
    /// Lists the dead letters of a processor as JSON lines: where each failed record came
    /// from, and why it failed.
    DeadLetters(DeadLetterArgs),
}

/// Where an app's log is, for the commands that work on it.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("log").required(true).args(["data", "brokers"])))]
struct AppLog {
    /// The embedded log's directory.
    #[arg(long, value_name = "DIR", conflicts_with = "brokers")]
    data: Option<PathBuf>,
    /// The Kafka cluster.
    #[arg(long, value_name = "HOST:PORT")]
    brokers: Option<String>,
    #[command(flatten)]
    kafka: KafkaClient,
    /// The namespace of the app's topics and groups (`tramline::log::Namespaced`), if it has one.
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
}

/// How the Kafka clients are set up, as a secured cluster needs.
#[derive(Debug, clap::Args)]
struct KafkaClient {
    /// A file of librdkafka settings, `KEY=VALUE` a line (Kafka's `client.properties`), read
    /// before --kafka-set: secrets (`sasl.password`) stay out of the command line.
    #[arg(long = "kafka-config", value_name = "FILE", requires = "brokers")]
    file: Option<PathBuf>,
    /// A librdkafka setting for the Kafka clients (`security.protocol=SASL_SSL`,
    /// `sasl.mechanism=PLAIN`...); repeatable.
    #[arg(long = "kafka-set", value_name = "KEY=VALUE", value_parser = parse_setting, requires = "brokers")]
    settings: Vec<(String, String)>,
}

impl KafkaClient {
    fn is_empty(&self) -> bool {
        self.file.is_none() && self.settings.is_empty()
    }
}

#[derive(Debug, clap::Args)]
struct DeadLetterArgs {
    /// The processor's consumer group (`order.aggregate`, `accounting`,
    /// `suspicious_sales.aggregate`...): its letters are on the topic `<group>.dlq`.
    #[arg(long)]
    group: String,
    /// The log, read-only beside the app that runs on it.
    #[command(flatten)]
    log: AppLog,
    /// Prints each failed record's value too: as text when it is UTF-8, else as base64.
    #[arg(long)]
    values: bool,
}

/// One dead letter as `tramline dead-letters` prints it.
#[derive(Serialize)]
struct Letter {
    /// The letter: `<group>.dlq/<partition>@<offset>`.
    letter: String,
    /// The failed record: `<topic>/<partition>@<offset>`.
    origin: Option<String>,
    processor: Option<String>,
    error: Option<String>,
    /// The failed record's key, as text (lossy).
    key: Option<String>,
    /// Its CloudEvents type (`ce_type`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// When it was written (the record's timestamp).
    time: Option<String>,
    /// How many bytes of the record the letter left out (a letter too large for the log).
    #[serde(skip_serializing_if = "Option::is_none")]
    omitted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

impl Letter {
    /// The letter `record`, with the failed record's value if `values`.
    fn of(record: &Record, values: bool) -> Letter {
        use tramline::runtime::dead_letter::headers;
        let text = |name: &str| record.header(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let origin = match (text(headers::TOPIC), text(headers::PARTITION), text(headers::OFFSET)) {
            (Some(topic), Some(partition), Some(offset)) => Some(format!("{topic}/{partition}@{offset}")),
            _ => None,
        };
        let value = record.value.as_deref().filter(|_| values);
        let (value, value_base64) = match value.map(std::str::from_utf8) {
            Some(Ok(text)) => (Some(text.to_owned()), None),
            Some(Err(_)) => {
                use base64::Engine;
                (None, value.map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)))
            }
            None => (None, None),
        };
        Letter {
            letter: format!("{}/{}@{}", record.topic, record.partition, record.offset),
            origin,
            processor: text(headers::PROCESSOR),
            error: text(headers::ERROR),
            key: record.key.as_deref().map(|key| String::from_utf8_lossy(key).into_owned()),
            event_type: text(codec::headers::TYPE),
            time: jiff::Timestamp::from_millisecond(record.timestamp).ok().map(|t| t.to_string()),
            omitted: text(headers::OMITTED).and_then(|n| n.parse().ok()),
            value,
            value_base64,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ResetArgs {
    /// The query's name (CREATE STREAM | TABLE <name>).
    #[arg(long)]
    name: String,
    /// The log, opened for writing: the app must be stopped.
    #[command(flatten)]
    log: AppLog,
    /// Deletes the sink topic too, so that the query starts over into an empty one.
    #[arg(long)]
    delete_sink: bool,
    /// The sink topic, when the query names another (WITH (KAFKA_TOPIC = ...)); the query's name by default.
    #[arg(long, value_name = "TOPIC", requires = "delete_sink")]
    sink: Option<String>,
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// The file holding the query.
    #[arg(long, value_name = "FILE")]
    sql: PathBuf,
    /// CloudEvents JSON lines to read (`-` for stdin); stdin when neither this nor --topic is given.
    #[arg(long, value_name = "FILE", conflicts_with = "topic")]
    input: Option<PathBuf>,
    /// Read this topic (every partition, in event-time order) instead of JSON lines.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// The embedded log's directory that holds --topic.
    #[arg(long, value_name = "DIR", requires = "topic", conflicts_with = "brokers")]
    data: Option<PathBuf>,
    /// The Kafka cluster that holds --topic.
    #[arg(long, value_name = "HOST:PORT", requires = "topic")]
    brokers: Option<String>,
    #[command(flatten)]
    kafka: KafkaClient,
    /// Close every window at the end of the input, so that EMIT FINAL rows come out.
    #[arg(long)]
    until_end: bool,
}

/// One event as CloudEvents structured JSON: the required attributes, and what a query needs.
#[derive(Deserialize)]
struct CloudEvent<'a> {
    specversion: Option<String>,
    id: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    time: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    /// The data as base64, which the CloudEvents JSON format allows instead of `data`.
    data_base64: Option<String>,
}

/// A TABLE's deleted row, as ksqlDB's CLI marks it: its key and window (none without windows).
#[derive(Serialize)]
#[serde(rename_all = "UPPERCASE")]
struct Tombstone<'a> {
    #[serde(rename = "key")]
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    windowstart: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    windowend: Option<i64>,
    tombstone: bool,
}

/// What a run counted, for the closing line on stderr.
#[derive(Debug, Default)]
struct Counts {
    events: u64,
    skipped: u64,
    bad: u64,
    rows: u64,
    /// Per column the query reads, whether any event read had a value in it.
    filled: Vec<bool>,
}

struct Run<'a> {
    plan: &'a Plan,
    state: PartitionState,
    columns: Vec<Value>,
    /// Per column the query reads, the type its values have had: the command knows no schema,
    /// and a column has one type (a GROUP BY would merge the keys `1` and `"1"`).
    types: Vec<Option<SqlType>>,
    emitted: Vec<Emitted>,
    counts: Counts,
    out: BufWriter<std::io::StdoutLock<'static>>,
}

impl Run<'_> {
    /// Feeds one event; `Err` is why its data cannot be read.
    fn feed(&mut self, event_type: &str, time: i64, data: &[u8]) -> Result<(), Unreadable> {
        if !self.plan.reads_type(event_type.as_bytes()) {
            self.counts.skipped += 1;
            return Ok(());
        }
        if self.plan.is_stateless() {
            let mut values = Vec::new();
            let passed = self.plan.select_into(time, data, &mut self.columns, &mut values).map_err(Unreadable::Data)?;
            self.read()?;
            if passed {
                self.emitted.push(Emitted {
                    key: String::new(),
                    window: Window::ALL,
                    time,
                    values: Some(values),
                    is_final: false,
                });
                self.flush();
            }
            return Ok(());
        }
        let keyed = self.plan.rekey(time, data, &mut self.columns).map_err(Unreadable::Data)?;
        self.read()?;
        if let Some(keyed) = keyed {
            self.state.apply(self.plan, &keyed, &mut self.emitted);
            self.flush();
        }
        Ok(())
    }

    /// Checks the types of the columns just read and counts the event.
    fn read(&mut self) -> Result<(), Unreadable> {
        self.check_types()?;
        // Counted once read: an event that cannot be read is counted as bad instead.
        self.counts.events += 1;
        for (filled, value) in self.counts.filled.iter_mut().zip(&self.columns) {
            *filled |= !value.is_null();
        }
        Ok(())
    }

    /// Refuses an event whose column holds a value of another type than the same column of the
    /// events before it (a whole number is a DOUBLE too), as a typed stream refuses it.
    fn check_types(&mut self) -> Result<(), Unreadable> {
        for ((value, seen), column) in self.columns.iter().zip(&self.types).zip(&self.plan.columns) {
            let (Some(found), Some(seen)) = (value.sql_type(), *seen) else { continue };
            let widened = seen == SqlType::Bigint && found == SqlType::Double;
            if !value.fits(seen) && !widened {
                let name = &column.name;
                let (found, seen) = (found.name(), seen.name());
                return Err(Unreadable::Type(format!(
                    "field `{name}` holds a {found}, where the events before gave it {seen} values (a column has one type)"
                )));
            }
        }
        for (seen, value) in self.types.iter_mut().zip(&self.columns) {
            // A DOUBLE stays one: a whole number fits it.
            if seen.is_none_or(|seen| seen == SqlType::Bigint) {
                *seen = value.sql_type().or(*seen);
            }
        }
        Ok(())
    }

    fn flush(&mut self) {
        let windowed = self.plan.windowing.is_windowed();
        for emitted in self.emitted.drain(..) {
            let written = match &emitted.values {
                // Columns in SELECT order.
                Some(values) => serde_json::to_writer(&mut self.out, &self.plan.row_json(values)),
                None => serde_json::to_writer(
                    &mut self.out,
                    &Tombstone {
                        key: &emitted.key,
                        windowstart: windowed.then_some(emitted.window.start),
                        windowend: windowed.then_some(emitted.window.end),
                        tombstone: true,
                    },
                ),
            };
            // A closed stdout (a pipe into `head`) ends the output, not the count.
            let _ = written.map(|()| self.out.write_all(b"\n"));
            self.counts.rows += 1;
        }
    }

    fn line(&mut self, number: u64, line: &str) {
        // Editors on Windows open a UTF-8 file with a byte order mark.
        let line = if number == 1 { line.strip_prefix('\u{feff}').unwrap_or(line) } else { line };
        if line.trim().is_empty() {
            return;
        }
        if let Err(BadLine { column, message }) = self.parse_line(line) {
            self.counts.bad += 1;
            match column {
                Some(column) => eprintln!("input line {number}, column {column}: {message}"),
                None => eprintln!("input line {number}: {message}"),
            }
        }
    }

    fn parse_line(&mut self, line: &str) -> Result<(), BadLine> {
        // serde would read a struct from a JSON array too, by position.
        if !line.trim_start().starts_with('{') {
            return Err("not a CloudEvent in structured JSON: expected a JSON object".into());
        }
        let event: CloudEvent<'_> = serde_json::from_str(line).map_err(|e| json_error(line, &e))?;
        check_required(&event)?;
        if !self.plan.reads_type(event.event_type.as_bytes()) {
            self.counts.skipped += 1;
            return Ok(());
        }
        let time =
            event.time.ok_or("no `time` attribute: a query needs each event's time (its ROWTIME and windows)")?;
        let time: jiff::Timestamp = time
            .parse()
            .map_err(|e| format!("`time` cannot be read as an RFC 3339 timestamp (`{time}`): {e}"))?;
        // Where inline data starts in the line (serde borrowed it from there), for the column of
        // an error in it.
        let data_at = event.data.and_then(|data| (data.get().as_ptr() as usize).checked_sub(line.as_ptr() as usize));
        let decoded;
        let data = match (event.data, &event.data_base64) {
            (Some(data), None) => data.get().as_bytes(),
            (None, Some(base64)) => {
                use base64::Engine;
                decoded = base64::engine::general_purpose::STANDARD
                    .decode(base64)
                    .map_err(|e| format!("`data_base64` is not base64: {e}"))?;
                &decoded[..]
            }
            (Some(_), Some(_)) => return Err("both `data` and `data_base64`: a CloudEvent carries one".into()),
            (None, None) => {
                return Err("no `data` (nor `data_base64`), or a null one: the event's fields are missing".into());
            }
        };
        self.feed(&event.event_type, epoch_millis(time), data).map_err(|error| match (error, data_at) {
            (Unreadable::Data(error), Some(start)) => located(line, start, &error, DATA_ERROR),
            // Decoded from base64: the position is in bytes the line does not show.
            (Unreadable::Data(error), None) => format!("{DATA_ERROR}: {error}").into(),
            (Unreadable::Type(message), _) => message.into(),
        })
    }

    fn record(&mut self, record: &Record) {
        let at = format!("{}/{}@{}", record.topic, record.partition, record.offset);
        // What every reader of the topic refuses, the query refuses too (but a newer schema
        // version: the command knows no event types, only their fields).
        let found = codec::AttributeHeaders::of(record);
        let checked = found.event_type(record).and_then(|event_type| {
            let event_type = String::from_utf8_lossy(event_type).into_owned();
            if self.plan.reads_type(event_type.as_bytes()) {
                found.check(record, &event_type, u32::MAX)?;
            }
            Ok(event_type)
        });
        let event_type = match checked {
            Ok(event_type) => event_type,
            Err(error) => {
                self.counts.bad += 1;
                eprintln!("{error}");
                return;
            }
        };
        let data = record.value.clone().unwrap_or_default();
        if let Err(error) = self.feed(&event_type, record.timestamp, &data) {
            self.counts.bad += 1;
            match error {
                Unreadable::Data(error) => eprintln!("record {at}: {DATA_ERROR}: {error}"),
                Unreadable::Type(message) => eprintln!("record {at}: {message}"),
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let command = Cli::parse().command;
    if let Some(message) = misuse(&command) {
        <Cli as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, message)
            .exit();
    }
    let args = match command {
        Command::Query(args) => args,
        Command::ResetQuery(args) => return exit(reset(args).await),
        Command::DeadLetters(args) => return exit(dead_letters(args).await),
    };
    match query(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// What is wrong with flags that clap lets through: it skips a `requires` when a flag that
/// conflicts with the required one is given (`--data` with `--input`, `--kafka-set` with `--data`).
fn misuse(command: &Command) -> Option<&'static str> {
    let (brokers, kafka) = match command {
        Command::Query(args) if args.topic.is_none() && (args.data.is_some() || args.brokers.is_some()) => {
            return Some("--data and --brokers name where --topic is read: give --topic, or leave them out");
        }
        Command::Query(args) => (&args.brokers, &args.kafka),
        Command::ResetQuery(ResetArgs { log, .. }) | Command::DeadLetters(DeadLetterArgs { log, .. }) => {
            (&log.brokers, &log.kafka)
        }
    };
    (brokers.is_none() && !kafka.is_empty())
        .then_some("--kafka-config and --kafka-set set up Kafka clients: they need --brokers")
}

async fn query(args: QueryArgs) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(&args.sql).map_err(|e| format!("cannot read {}: {e}", args.sql.display()))?;
    let plan = sql::plan(&text, &Catalog::open())
        .map_err(|error| format!("{}: {}", args.sql.display(), error.render(&text)))?;
    let mut run = Run {
        plan: &plan,
        state: PartitionState::default(),
        columns: Vec::new(),
        types: vec![None; plan.columns.len()],
        emitted: Vec::new(),
        counts: Counts { filled: vec![false; plan.columns.len()], ..Counts::default() },
        out: BufWriter::new(std::io::stdout().lock()),
    };
    match (&args.topic, &args.input) {
        (Some(topic), _) => {
            let log: Arc<dyn EventLog> = match (&args.data, &args.brokers) {
                (_, Some(brokers)) => kafka_log(brokers, &args.kafka).await?,
                // Read-only: beside a process that runs on the log, making and changing nothing.
                (Some(dir), None) => Arc::new(EmbeddedLog::open_read_only(dir).map_err(|e| e.to_string())?),
                (None, None) => {
                    return Err("--topic needs --data DIR (embedded log) or --brokers HOST:PORT (Kafka)".into());
                }
            };
            for record in read_topic(&*log, topic).await? {
                run.record(&record);
            }
        }
        (None, Some(path)) if path.as_os_str() == "-" => read_lines(&mut run, std::io::stdin().lock())?,
        (None, Some(path)) => {
            let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            read_lines(&mut run, std::io::BufReader::new(file))?;
        }
        (None, None) => read_lines(&mut run, std::io::stdin().lock())?,
    }
    if args.until_end {
        run.state.close_all(&plan, &mut run.emitted);
        run.flush();
    }
    go_on(run.out.flush())?;
    let Counts { events, skipped, bad, rows, filled } = run.counts;
    let late = run.state.late();
    eprintln!("{events} events read, {skipped} of other types skipped, {bad} bad, {late} late (dropped), {rows} rows");
    // The CLI knows no schema: a misspelt name shows only as nothing read.
    let stream = &plan.source.stream;
    if events == 0 && skipped > 0 {
        eprintln!("warning: no event of the query's stream `{stream}` among the {skipped} read: is its name right?");
    }
    for (column, _) in plan.columns.iter().zip(filled).filter(|(_, filled)| !filled) {
        if events > 0 {
            let name = &column.name;
            eprintln!(
                "warning: column `{name}` is missing or NULL in all {events} `{stream}` events: is its name right?"
            );
        }
    }
    Ok(if bad > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The exit status of a command other than `query`: 2 with the reason when it could not run.
fn exit(done: Result<(), String>) -> ExitCode {
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// An app's log, as `--data` or `--brokers` and `--namespace` name it: read-only, or for
/// writing (refused while the app holds an embedded log).
async fn app_log(app: &AppLog, writing: bool) -> Result<Arc<dyn EventLog>, String> {
    let AppLog { data, brokers, kafka, namespace } = app;
    let log: Arc<dyn EventLog> = match (data, brokers) {
        (_, Some(brokers)) => kafka_log(brokers, kafka).await?,
        (Some(dir), None) if writing => Arc::new(EmbeddedLog::open_existing(dir).map_err(|e| e.to_string())?),
        (Some(dir), None) => Arc::new(EmbeddedLog::open_read_only(dir).map_err(|e| e.to_string())?),
        (None, None) => return Err("--data DIR (embedded log) or --brokers HOST:PORT (Kafka) names the log".into()),
    };
    match namespace {
        Some(namespace) => Ok(Arc::new(Namespaced::new(log, namespace).map_err(|e| e.to_string())?)),
        None => Ok(log),
    }
}

/// The Kafka cluster at `brokers`, its clients set up with `--kafka-config` and `--kafka-set`.
async fn kafka_log(brokers: &str, client: &KafkaClient) -> Result<Arc<dyn EventLog>, String> {
    let from_file = client.file.as_ref().map(read_settings).transpose()?.unwrap_or_default();
    let config = KafkaConfig::new(brokers).set_all(from_file).set_all(client.settings.iter().cloned());
    Ok(Arc::new(KafkaLog::connect(config).await.map_err(|e| e.to_string())?))
}

/// Whether to go on writing to stdout: a closed pipe (into `head`) ends the output quietly,
/// any other failure (a full disk) is an error.
fn go_on(written: std::io::Result<()>) -> Result<bool, String> {
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(format!("cannot write to stdout: {error}")),
    }
}

async fn dead_letters(args: DeadLetterArgs) -> Result<(), String> {
    use tramline::runtime::dead_letter::topic_of;
    let log = app_log(&args.log, false).await?;
    let topic = topic_of(&args.group);
    let partitions = log.partition_count(&topic).await.map_err(|e| e.to_string())?.ok_or_else(|| {
        format!("topic `{topic}` does not exist: is `{}` the name of a processor's consumer group?", args.group)
    })?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut count = 0;
    let listed = each_page(&*log, &topic, partitions, |letters| {
        for record in letters {
            let letter = Letter::of(&record, args.values);
            let written = serde_json::to_writer(&mut out, &letter)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            if !go_on(written)? {
                return Ok(false);
            }
            count += 1;
        }
        Ok(true)
    })
    .await?;
    if !listed {
        return Ok(());
    }
    if go_on(out.flush())? {
        eprintln!("{count} dead letters on `{topic}`");
    }
    Ok(())
}

async fn reset(args: ResetArgs) -> Result<(), String> {
    let log = app_log(&args.log, true).await?;
    let sink = args.delete_sink.then(|| args.sink.as_deref().unwrap_or(&args.name));
    let reset = tramline::runtime::reset_query(&*log, &args.name, sink).await.map_err(|e| e.to_string())?;
    let topics = match reset.topics.is_empty() {
        true => "no topic (none existed)".to_owned(),
        false => format!("topics {}", reset.topics.join(", ")),
    };
    eprintln!("query `{}` reset: deleted groups {} and {topics}", args.name, reset.groups.join(", "));
    Ok(())
}

/// Milliseconds since the epoch, rounded down as Java's `Instant.toEpochMilli` does (jiff's
/// `as_millisecond` rounds toward zero, which moves a time before 1970 a millisecond later).
/// Why an input line was not read, and where in it when that is known.
struct BadLine {
    /// 1-based, in characters.
    column: Option<usize>,
    message: String,
}

impl From<String> for BadLine {
    fn from(message: String) -> Self {
        BadLine { column: None, message }
    }
}

impl From<&str> for BadLine {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// Why an event of the query's stream is not read.
enum Unreadable {
    /// Its data is not the JSON of an object.
    Data(serde_json::Error),
    /// A column holds a value of another type than before.
    Type(String),
}

/// What an event whose data cannot be read is told.
const DATA_ERROR: &str = "`data` cannot be read as the event's fields";

/// The attributes CloudEvents 1.0 requires of every event besides `type` (which serde
/// requires): a line without them is not a CloudEvent, whatever its type.
fn check_required(event: &CloudEvent<'_>) -> Result<(), BadLine> {
    match event.specversion.as_deref() {
        Some("1.0") => {}
        Some(other) => return Err(format!("`specversion` is `{other}`: this command reads CloudEvents 1.0").into()),
        None => return Err("no `specversion` attribute: a CloudEvent names its version (`1.0`)".into()),
    }
    let required =
        [("id", event.id.as_deref()), ("source", event.source.as_deref()), ("type", Some(&*event.event_type))];
    for (name, value) in required {
        if value.is_none_or(str::is_empty) {
            return Err(format!("no `{name}` attribute, or an empty one: CloudEvents requires it").into());
        }
    }
    Ok(())
}

/// serde's error for one input line, at its column in characters.
fn json_error(line: &str, error: &serde_json::Error) -> BadLine {
    located(line, 0, error, "not a CloudEvent in structured JSON")
}

/// serde's error in JSON that starts at byte `start` of an input line, at its column of the line
/// in characters (serde counts bytes, and its "line 1" is the first of what it was given).
fn located(line: &str, start: usize, error: &serde_json::Error, context: &str) -> BadLine {
    let text = error.to_string();
    let what = text.rsplit_once(" at line ").map_or(text.as_str(), |(what, _)| what);
    let mut byte = (start + error.column().saturating_sub(1)).min(line.len());
    while !line.is_char_boundary(byte) {
        byte -= 1;
    }
    let column = line[..byte].chars().count() + 1;
    BadLine { column: Some(column), message: format!("{context}: {what}") }
}

fn epoch_millis(time: jiff::Timestamp) -> i64 {
    // jiff's times (years -9999 to 9999) are well within i64 milliseconds.
    time.as_nanosecond().div_euclid(1_000_000) as i64
}

fn read_lines(run: &mut Run<'_>, input: impl BufRead) -> Result<(), String> {
    for (number, line) in input.lines().enumerate() {
        match line {
            Ok(line) => run.line(number as u64 + 1, &line),
            // Not UTF-8: this line is bad, the next ones may be fine.
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                run.counts.bad += 1;
                eprintln!("input line {}: {error}", number + 1);
            }
            Err(error) => return Err(format!("reading the input failed at line {}: {error}", number + 1)),
        }
    }
    Ok(())
}

/// Every record of a topic, in event-time order across its partitions (stream time is the
/// query's: reading partition after partition would make the later ones late).
async fn read_topic(log: &dyn EventLog, topic: &str) -> Result<Vec<Record>, String> {
    let partitions = log
        .partition_count(topic)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("topic `{topic}` does not exist"))?;
    let mut records = Vec::new();
    each_page(log, topic, partitions, |page| {
        records.extend(page);
        Ok(true)
    })
    .await?;
    records.sort_by_key(|r| (r.timestamp, r.partition, r.offset));
    Ok(records)
}

/// Hands the records of a topic's partitions, one partition after the other, up to the ends they
/// had when each was started, a page at a time to `page`, until it says to stop (`Ok(false)`).
/// Whether every page was read.
async fn each_page(
    log: &dyn EventLog,
    topic: &str,
    partitions: u32,
    mut page: impl FnMut(Vec<Record>) -> Result<bool, String>,
) -> Result<bool, String> {
    for partition in 0..partitions {
        let tp = TopicPartition::new(topic, partition);
        let end = log.end_offset(&tp).await.map_err(|e| e.to_string())?;
        let mut offset = 0;
        while offset < end {
            let records = log.read(&tp, offset, 4096).await.map_err(|e| e.to_string())?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            if !page(records.into_iter().filter(|r| r.offset < end).collect())? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
