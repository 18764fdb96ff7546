//! Stream queries on the processor loop. Two processors run a [`Plan`]:
//!
//! - `<query>.rekey` reads the source topic, keeps the records of the plan's event types that
//!   pass WHERE, and writes each to `<query>-repartition` keyed by its GROUP BY key, so that
//!   every key's records meet on one partition whatever instance owns it;
//! - `<query>.aggregate` reads `<query>-repartition`, folds each partition's records into its
//!   windows ([`PartitionState`]), and writes the rows to the sink `<query>`, the changed
//!   windows and the stream time to the compacted `<query>-changelog` (same partition), and
//!   its input positions, in one atomic write. A restart restores the partition from the
//!   changelog: nothing lost, nothing counted twice.
//!
//! A stateless query (no GROUP BY: [`Plan::is_stateless`]) has one processor, `<query>.select`,
//! which writes the row of each record that passes WHERE to the sink, under the record's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::aggregate::for_each_record;
use super::processor::Processor;
use super::{App, DeadLetters, Phase, ProcessorInfo, ProcessorKind, Registration, RuntimeError, dead_letter};
use crate::codec::{self, DecodeError, headers as ce};
use crate::log::{Cleanup, EventLog, Headers, LogError, OutRecord, Record, StartFrom, TopicPartition, TopicSpec};
use crate::model::{Position, Subscription};
use crate::stream::wire;
use crate::stream::{
    ChangeRef, Emitted, Keyed, OutputKind, PartitionState, Plan, StoredWindow, Value, Window, WindowKind, Windowing,
    pascal_case, write_key,
};

/// The topic a query re-keys its records onto.
pub fn repartition_topic(query: &str) -> String {
    format!("{query}-repartition")
}

/// The compacted topic that holds a query's windows.
pub fn changelog_topic(query: &str) -> String {
    format!("{query}-changelog")
}

/// What [`reset_query`] deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryReset {
    /// The query's consumer groups, deleted with their positions (whether they had any or not).
    pub groups: Vec<String>,
    /// The topics that existed and were deleted.
    pub topics: Vec<String>,
}

/// Starts a stream query over, as Kafka Streams' application reset tool does: deletes its
/// consumer groups (`<query>.rekey` and `<query>.aggregate`, or `<query>.select`) and its
/// internal topics (`<query>-repartition`, `<query>-changelog`), and with `sink` its sink topic
/// too, so that the query, registered again, reads its source from the beginning into a new
/// sink. Run it while no app runs the query (Kafka refuses to delete a group with members). The
/// dead-letter topics stay, with the records that failed. A reset that stops after it deleted
/// something is [`RuntimeError::ResetIncomplete`]: run it again before an app runs the query,
/// which would otherwise count records twice.
pub async fn reset_query(log: &dyn EventLog, query: &str, sink: Option<&str>) -> Result<QueryReset, RuntimeError> {
    let groups: Vec<String> = ["rekey", "aggregate", "select"].iter().map(|kind| format!("{query}.{kind}")).collect();
    let mut done = QueryReset { groups: Vec::new(), topics: Vec::new() };
    let stopped = |done: &QueryReset, failed: &str, error: LogError| match done.groups.is_empty() {
        true => RuntimeError::Log(error),
        false => RuntimeError::ResetIncomplete {
            query: query.to_owned(),
            failed: failed.to_owned(),
            deleted: [&done.groups[..], &done.topics[..]].concat(),
            error: Box::new(error),
        },
    };
    // The groups first: a group that still has members stops the reset before any topic goes.
    for group in groups {
        log.delete_group(&group).await.map_err(|e| stopped(&done, &group, e))?;
        done.groups.push(group);
    }
    for topic in [changelog_topic(query), repartition_topic(query)].into_iter().chain(sink.map(str::to_owned)) {
        if log.partition_count(&topic).await.map_err(|e| stopped(&done, &topic, e))?.is_some() {
            log.delete_topic(&topic).await.map_err(|e| stopped(&done, &topic, e))?;
            done.topics.push(topic);
        }
    }
    Ok(done)
}

/// How a user starts `plan` over (with the app stopped): the command line, and the function.
fn reset_command(plan: &Plan) -> String {
    let sink = match plan.sink_topic() == plan.name {
        true => String::new(),
        false => format!(" --sink {}", plan.sink_topic()),
    };
    format!(
        "`tramline reset-query --name {} --delete-sink{sink} --data DIR` (or `--brokers HOST:PORT`; \
         `tramline::runtime::reset_query` in code)",
        plan.name
    )
}

/// Header names on a query's output rows, besides the CloudEvents ones (only on the rows of a
/// query with windows).
pub mod headers {
    /// The window's start, milliseconds since the epoch.
    pub const WINDOW_START: &str = "windowstart";
    /// The window's end.
    pub const WINDOW_END: &str = "windowend";
}

/// The changelog key of a partition's stream time and late count.
const PROGRESS_KEY: &[u8] = b"progress";

/// A running query: its sink topic, its rows and its late records.
#[derive(Clone)]
pub struct QueryHandle {
    name: String,
    topic: String,
    log: Arc<dyn EventLog>,
    late: Arc<Mutex<HashMap<u32, u64>>>,
}

impl std::fmt::Debug for QueryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryHandle").field("name", &self.name).field("topic", &self.topic).finish()
    }
}

/// One row of a query's sink topic.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRow {
    /// The group key.
    pub key: String,
    /// The window; `None` for a query without windows (GROUP BY without WINDOW).
    pub window: Option<Window>,
    /// The row's columns, in `SELECT` order; `None` where a TABLE deletes the row (a tombstone
    /// on the sink: it stopped passing HAVING, or its session merged into another).
    pub columns: Option<Columns>,
}

/// A row's columns by name, in `SELECT` order (as on the sink; a `serde_json::Map` would sort
/// them). `columns["spent"]` is `null` for a column the row does not have.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns(Vec<(String, serde_json::Value)>);

impl Columns {
    /// The column named `name`.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(column, _)| column == name).map(|(_, value)| value)
    }

    /// The columns in `SELECT` order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &serde_json::Value)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }

    /// How many columns.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<&str> for Columns {
    type Output = serde_json::Value;

    fn index(&self, name: &str) -> &serde_json::Value {
        static NULL: serde_json::Value = serde_json::Value::Null;
        self.get(name).unwrap_or(&NULL)
    }
}

impl serde::Serialize for Columns {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Columns {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;

        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = Columns;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a row: an object of columns")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Columns, A::Error> {
                let mut columns = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(column) = map.next_entry()? {
                    columns.push(column);
                }
                Ok(Columns(columns))
            }
        }

        deserializer.deserialize_map(InOrder)
    }
}

impl QueryHandle {
    /// The query's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sink topic: the query's name, unless its plan names another ([`Plan::sink_topic`]).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Records dropped as late by the partitions this instance owns (restored with them).
    pub fn late_records(&self) -> u64 {
        self.late.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }

    /// Every row on the sink topic so far, partition by partition, deletions of a TABLE's rows
    /// included (in order: the last row of a key and window is the current one). A TABLE's
    /// sink is compacted: once the log has compacted it, earlier rows of a key and window are
    /// gone, and the latest remains.
    pub async fn rows(&self) -> Result<Vec<QueryRow>, RuntimeError> {
        let mut rows = Vec::new();
        let partitions = self.log.partition_count(&self.topic).await?.unwrap_or(0);
        for partition in 0..partitions {
            let tp = TopicPartition::new(self.topic.as_str(), partition);
            for_each_record(&*self.log, None, &tp, |record| {
                rows.push(row_of(record).ok_or_else(|| RuntimeError::Restore {
                    position: codec::position_of(record),
                    reason: "not a row of a stream query".into(),
                })?);
                Ok(())
            })
            .await?;
        }
        Ok(rows)
    }
}

fn row_of(record: &Record) -> Option<QueryRow> {
    let number = |name| std::str::from_utf8(record.header(name)?).ok()?.parse::<i64>().ok();
    // A stateless query's row of a record without a key has none.
    let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
    let key = match key.rsplit_once('@') {
        Some((key, _)) if record.header(ce::SUBJECT) == Some(key.as_bytes()) => key.to_owned(),
        _ => key,
    };
    // A query without windows writes no window headers.
    let window = match (record.header(headers::WINDOW_START), record.header(headers::WINDOW_END)) {
        (None, None) => None,
        _ => Some(Window { start: number(headers::WINDOW_START)?, end: number(headers::WINDOW_END)? }),
    };
    Some(QueryRow {
        key,
        window,
        columns: match &record.value {
            Some(value) => Some(serde_json::from_slice(value).ok()?),
            None => None,
        },
    })
}

impl App {
    /// Runs a stream query: creates `<query>-repartition`, `<query>-changelog` and the sink
    /// topic (`<query>` unless the plan names another, of the plan's partitions or the app's;
    /// compacted for a TABLE), and registers its two processors. It starts with the app (or at once,
    /// if the app runs already) and reads its source from the beginning the first time.
    ///
    /// A [stateless](Plan::is_stateless) query (no GROUP BY) has one processor, `<query>.select`,
    /// which writes each row to the sink under its record's key (or its PARTITION BY values),
    /// and no internal topics.
    pub async fn query(&mut self, plan: Plan) -> Result<QueryHandle, RuntimeError> {
        let Some(subscription) = plan.source.subscription else {
            return Err(RuntimeError::NoSource { query: plan.name.clone(), stream: plan.source.stream.clone() });
        };
        plan.check().map_err(|reason| RuntimeError::InvalidPlan { query: plan.name.clone(), reason })?;
        self.refuse_another_kind(&plan, subscription.topic).await?;
        if plan.is_stateless() {
            return self.stateless_query(plan, subscription).await;
        }
        let partitions = self.settings.partitions;
        // The loop names topics as `&'static str`; a query is registered once per app, so its
        // topic's name lives as long as the program at the cost of a few bytes.
        let repartition: &'static str = Box::leak(repartition_topic(&plan.name).into_boxed_str());
        self.create(TopicSpec::keep(repartition, partitions)).await?;
        self.create(TopicSpec::compact(changelog_topic(&plan.name), partitions)).await?;
        self.create_sink(&plan).await?;

        let plan = Arc::new(plan);
        let late = Arc::new(Mutex::new(HashMap::new()));
        let handle = QueryHandle {
            name: plan.name.clone(),
            topic: plan.sink_topic().to_owned(),
            log: self.log.clone(),
            late: late.clone(),
        };
        let rekey_group = format!("{}.rekey", plan.name);
        let aggregate_group = format!("{}.aggregate", plan.name);
        let info = |name: &str, reads: Vec<(String, String)>| ProcessorInfo {
            kind: ProcessorKind::Query,
            module: plan.name.clone(),
            name: name.to_owned(),
            reads,
            commands: None,
        };
        let source_info = info(&rekey_group, vec![(subscription.module.to_owned(), subscription.event.to_owned())]);
        let window_info = info(&aggregate_group, Vec::new());
        if !self.runs_here(&plan.name) {
            // Another process runs it (App::run_only): its rows are read from the log here.
            for (group, info, reads) in
                [(rekey_group, source_info, subscription.topic), (aggregate_group, window_info, repartition)]
            {
                self.declare_elsewhere(group, info, vec![reads]).await?;
            }
            return Ok(handle);
        }
        let output = Selected::Repartition(Arc::from(repartition));
        let rekey = SourceProcessor::new(plan.clone(), rekey_group, subscription, output);
        self.register_source(rekey, source_info).await?;
        let purge = Purge::every(self.settings.repartition_purge_interval);
        let aggregate = WindowProcessor::new(plan.clone(), aggregate_group.clone(), repartition, late, purge);
        self.register(Registration {
            group: aggregate_group.clone(),
            subscriptions: Vec::new(),
            writes: None,
            info: Some(window_info),
            phase: Phase::Process,
            reads: vec![repartition],
            dead_letters: Some(DeadLetters::of(&aggregate_group)),
            spawn: Box::new(move |app: &App| app.spawn(aggregate)),
        })
        .await?;
        Ok(handle)
    }

    /// Refuses a query that ran as the other kind under its name: the group that reads the
    /// source for that kind (`<query>.rekey` of an aggregation, `<query>.select` of a query
    /// without GROUP BY) has positions. (A changed aggregation is told by its changelog's state
    /// shape, when its partitions are restored.)
    async fn refuse_another_kind(&self, plan: &Plan, source: &str) -> Result<(), RuntimeError> {
        const AGGREGATION: &str = "an aggregation";
        const SELECTION: &str = "a query without GROUP BY";
        let (other, was, now) = match plan.is_stateless() {
            true => ("rekey", AGGREGATION, SELECTION),
            false => ("select", SELECTION, AGGREGATION),
        };
        let (name, sink) = (&plan.name, plan.sink_topic());
        let group = format!("{name}.{other}");
        let leftovers = match plan.is_stateless() {
            true => format!(
                "groups `{name}.rekey` and `{name}.aggregate`, topics `{}`, `{}` and `{sink}`; with the app \
                 stopped, {} deletes them",
                repartition_topic(name),
                changelog_topic(name),
                reset_command(plan)
            ),
            false => format!(
                "group `{name}.select`, topic `{sink}`; with the app stopped, {} deletes them",
                reset_command(plan)
            ),
        };
        for partition in 0..self.log.partition_count(source).await?.unwrap_or(0) {
            if self.log.committed(&group, &TopicPartition::new(source, partition)).await?.is_some() {
                return Err(RuntimeError::QueryKindChanged { query: name.clone(), was, now, group, leftovers });
            }
        }
        Ok(())
    }

    /// Creates the sink topic, of the plan's partitions or the app's: a STREAM's keeps every
    /// row; a TABLE's is compacted, as ksqlDB's are, so that it keeps the latest row of each
    /// key and window, and a windowed TABLE's rows also expire ([`sink_retention`]), as
    /// ksqlDB's (`cleanup.policy=compact,delete`). A TABLE's sink made otherwise (by an earlier
    /// tramline, or by hand) is used as it is, with a warning: its rows are the same, only kept
    /// longer.
    async fn create_sink(&self, plan: &Plan) -> Result<(), RuntimeError> {
        let partitions = plan.sink.partitions.unwrap_or(self.settings.partitions);
        let (topic, table) = (plan.sink_topic(), plan.output == OutputKind::Table);
        let cleanup = match (table, sink_retention(&plan.windowing)) {
            (false, _) => Cleanup::Keep,
            (true, None) => Cleanup::Compact,
            (true, Some(retention)) => Cleanup::CompactAndExpire { retention },
        };
        let refused = |mismatch| RuntimeError::SinkMismatch {
            query: plan.name.clone(),
            mismatch: Box::new(mismatch),
            reset: reset_command(plan),
        };
        let mismatch = match self.log.create_topic(&TopicSpec { name: topic.to_owned(), partitions, cleanup }).await {
            Err(mismatch @ LogError::CleanupMismatch { .. }) if table => mismatch,
            Err(mismatch @ LogError::CleanupMismatch { .. }) => return Err(refused(mismatch)),
            created => return Ok(created?),
        };
        // The policies that keep at least as much, longest last.
        let kept_longer = [Cleanup::Compact, Cleanup::Keep].into_iter().filter(|kept| kept.keeps_longer_than(cleanup));
        for existing in kept_longer {
            match self.log.create_topic(&TopicSpec { name: topic.to_owned(), partitions, cleanup: existing }).await {
                Ok(()) => {
                    tracing::warn!(
                        query = plan.name,
                        topic,
                        %existing,
                        wanted = %cleanup,
                        "the TABLE's sink topic keeps its rows longer than a TABLE's does now (made by an earlier \
                         tramline, by hand, or for a STREAM of this name): it is used as it is; on Kafka, its \
                         cleanup.policy and retention.ms can be changed"
                    );
                    return Ok(());
                }
                Err(LogError::CleanupMismatch { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        // None of them: the first mismatch says what was asked.
        Err(refused(mismatch))
    }

    async fn stateless_query(&mut self, plan: Plan, subscription: Subscription) -> Result<QueryHandle, RuntimeError> {
        self.create_sink(&plan).await?;
        let handle = QueryHandle {
            name: plan.name.clone(),
            topic: plan.sink_topic().to_owned(),
            log: self.log.clone(),
            late: Arc::default(),
        };
        let group = format!("{}.select", plan.name);
        let info = ProcessorInfo {
            kind: ProcessorKind::Query,
            module: plan.name.clone(),
            name: group.clone(),
            reads: vec![(subscription.module.to_owned(), subscription.event.to_owned())],
            commands: None,
        };
        if !self.runs_here(&plan.name) {
            self.declare_elsewhere(group, info, vec![subscription.topic]).await?;
            return Ok(handle);
        }
        let plan = Arc::new(plan);
        let output = Selected::Rows(RowWriter::new(plan.clone()));
        self.register_source(SourceProcessor::new(plan, group, subscription, output), info).await?;
        Ok(handle)
    }

    /// Registers the processor that reads a query's source.
    async fn register_source(&mut self, processor: SourceProcessor, info: ProcessorInfo) -> Result<(), RuntimeError> {
        let (group, subscription) = (processor.group.clone(), processor.subscription);
        self.register(Registration {
            group: group.clone(),
            subscriptions: vec![subscription],
            writes: None,
            info: Some(info),
            phase: Phase::Process,
            reads: vec![subscription.topic],
            dead_letters: Some(DeadLetters::of(&group)),
            spawn: Box::new(move |app: &App| app.spawn(processor)),
        })
        .await
    }
}

/// The keys and values of a processor's output records, cut from shared chunks: one
/// allocation per chunk rather than one per key and per value, and a clone of a record (as a
/// log hands it to a reader) only counts a reference.
#[derive(Default)]
struct OutputBuffer {
    chunk: BytesMut,
}

impl OutputBuffer {
    const CHUNK: usize = 64 * 1024;

    fn bytes(&mut self, data: &[u8]) -> Bytes {
        if self.chunk.capacity() - self.chunk.len() < data.len() {
            self.chunk = BytesMut::with_capacity(Self::CHUNK.max(data.len()));
        }
        self.chunk.extend_from_slice(data);
        self.chunk.split().freeze()
    }
}

/// Where a query's first processor writes what passes WHERE.
enum Selected {
    /// Re-keyed onto the repartition topic, for the aggregate.
    Repartition(Arc<str>),
    /// A stateless query's rows, onto the sink.
    Rows(RowWriter),
}

/// Reads a query's source: filters it, and re-keys it onto the repartition topic or writes a
/// stateless query's rows to its sink.
struct SourceProcessor {
    plan: Arc<Plan>,
    group: String,
    source: &'static str,
    /// The source enum: the schema version it writes, and its upcaster.
    subscription: Subscription,
    output: Selected,
    dead_letters: Arc<str>,
    columns: Vec<Value>,
    /// The re-keyed record's group and aggregate arguments (or a stateless query's row), its
    /// key text and its encoding.
    values: (Vec<Value>, Vec<Value>),
    key: String,
    encoded: Vec<u8>,
    buffer: OutputBuffer,
}

impl SourceProcessor {
    fn new(plan: Arc<Plan>, group: String, subscription: Subscription, output: Selected) -> Self {
        let dead_letters = Arc::from(dead_letter::topic_of(&group));
        SourceProcessor {
            plan,
            group,
            source: subscription.topic,
            subscription,
            output,
            dead_letters,
            columns: Vec::new(),
            values: (Vec::new(), Vec::new()),
            key: String::new(),
            encoded: Vec::new(),
            buffer: OutputBuffer::default(),
        }
    }
}

impl Processor for SourceProcessor {
    fn group(&self) -> &str {
        &self.group
    }

    fn dead_letters(&self) -> Option<&Arc<str>> {
        Some(&self.dead_letters)
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![self.source]
    }

    fn start(&self) -> StartFrom {
        StartFrom::Beginning
    }

    async fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) {
        outputs.reserve(records.len());
        for record in records {
            // Other event types of the topic are not the query's: skipped, not failed.
            let found = codec::AttributeHeaders::of(record);
            let type_name = match found.event_type(record) {
                Ok(type_name) if self.plan.reads_type(type_name) => type_name,
                Ok(_) => continue,
                Err(error) => {
                    outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &error));
                    continue;
                }
            };
            // What every other reader of the topic refuses, the query refuses too.
            let type_name = String::from_utf8_lossy(type_name);
            let Subscription { version: current, upcast, .. } = self.subscription;
            let payload = found.check(record, &type_name, current).and_then(|attributes| {
                let value = record
                    .value
                    .as_deref()
                    .ok_or_else(|| DecodeError::Tombstone { position: codec::position_of(record) })?;
                codec::current_payload(record, value, &type_name, attributes.version, current, upcast)
            });
            let payload = match payload {
                Ok(payload) => payload,
                Err(error) => {
                    outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &error));
                    continue;
                }
            };
            let selected = match &self.output {
                Selected::Repartition(repartition) => {
                    let (group, args) = &mut self.values;
                    self.plan.rekey_into(record.timestamp, &payload, &mut self.columns, group, args).map(|passed| {
                        if passed {
                            self.key.clear();
                            write_key(group, &mut self.key);
                            self.encoded.clear();
                            wire::encode_keyed(record.timestamp, group, args, &mut self.encoded);
                            outputs.push(OutRecord {
                                topic: repartition.clone(),
                                partition: None,
                                key: Some(self.buffer.bytes(self.key.as_bytes())),
                                value: Some(self.buffer.bytes(&self.encoded)),
                                headers: Headers::new(),
                                timestamp: Some(record.timestamp),
                            })
                        }
                    })
                }
                // A row per record, under the record's own key (as ksqlDB keeps a stream's key)
                // unless PARTITION BY gives it another.
                Selected::Rows(rows) => {
                    let row = &mut self.values.0;
                    self.plan.select_into(record.timestamp, &payload, &mut self.columns, row).map(|passed| {
                        if passed {
                            let key = match self.plan.partition_by.is_empty() {
                                true => record.key.as_deref(),
                                false => self
                                    .plan
                                    .partition_key(record.timestamp, &self.columns, &mut self.key)
                                    .then_some(self.key.as_bytes()),
                            };
                            outputs.push(rows.row(key, Window::ALL, Some(row), record.timestamp));
                        }
                    })
                }
            };
            match selected {
                Ok(()) => {}
                Err(error) => {
                    let reason = format!("the payload cannot be read as the query's columns: {error}");
                    outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &reason));
                }
            }
        }
    }
}

/// A window as the changelog stores it, with its key.
#[derive(Serialize, Deserialize)]
struct Progress<'a> {
    stream_time: Option<i64>,
    late: u64,
    /// The plan's [state shape](Plan::state_shape) (absent in changelogs of earlier versions).
    #[serde(default, borrow)]
    shape: Option<std::borrow::Cow<'a, str>>,
}

/// Aggregates the repartitioned records per key and window.
struct WindowProcessor {
    plan: Arc<Plan>,
    group: String,
    repartition: &'static str,
    changelog: Arc<str>,
    rows: RowWriter,
    dead_letters: Arc<str>,
    /// The plan's state shape, written with the progress so that a changed query is noticed.
    shape: String,
    partitions: HashMap<u32, PartitionState>,
    late: Arc<Mutex<HashMap<u32, u64>>>,
    emitted: Vec<Emitted>,
    /// The record being folded in (its room reused from one to the next).
    keyed: Keyed,
    /// A changelog record's key and value as they are written.
    scratch: (Vec<u8>, Vec<u8>),
    buffer: OutputBuffer,
    purge: Purge,
}

/// What the aggregation has committed past on its repartition topic, deleted every interval:
/// the records there are copies, needed only until they are counted.
struct Purge {
    interval: std::time::Duration,
    last: std::time::Instant,
    /// Per partition, the position committed and not purged yet.
    committed: HashMap<TopicPartition, u64>,
}

impl Purge {
    fn every(interval: std::time::Duration) -> Self {
        Purge { interval, last: std::time::Instant::now(), committed: HashMap::new() }
    }

    /// A batch was written with its input positions, `read`; deletes what is committed at the
    /// first commit after each interval (an aggregation with nothing to do deletes nothing, as
    /// Kafka Streams). A failure is told and tried again after the next interval: nothing
    /// depends on it but the topic's size.
    async fn committed(&mut self, log: &dyn EventLog, read: &[(TopicPartition, u64)], group: &str) {
        for (tp, next) in read {
            Self::note(&mut self.committed, tp.clone(), *next);
        }
        if self.last.elapsed() < self.interval || self.committed.is_empty() {
            return;
        }
        self.last = std::time::Instant::now();
        let due: Vec<(TopicPartition, u64)> = self.committed.drain().collect();
        for (tp, offset) in due {
            if let Err(error) = log.delete_before(&tp, offset).await {
                tracing::warn!(group, %error, "cannot delete the repartition topic's records counted already; trying again later");
                Self::note(&mut self.committed, tp, offset);
            }
        }
    }

    fn note(committed: &mut HashMap<TopicPartition, u64>, tp: TopicPartition, next: u64) {
        let slot = committed.entry(tp).or_default();
        *slot = (*slot).max(next);
    }

    /// Partitions taken away, or a write that failed: what was read of them is not ours to
    /// delete.
    fn revoked(&mut self, partitions: &[TopicPartition]) {
        self.committed.retain(|tp, _| !partitions.contains(tp));
    }
}

impl WindowProcessor {
    fn new(
        plan: Arc<Plan>,
        group: String,
        repartition: &'static str,
        late: Arc<Mutex<HashMap<u32, u64>>>,
        purge: Purge,
    ) -> Self {
        WindowProcessor {
            changelog: Arc::from(changelog_topic(&plan.name)),
            rows: RowWriter::new(plan.clone()),
            dead_letters: Arc::from(dead_letter::topic_of(&group)),
            shape: plan.state_shape(),
            plan,
            group,
            repartition,
            partitions: HashMap::new(),
            late,
            emitted: Vec::new(),
            keyed: Keyed { time: 0, group: Vec::new(), args: Vec::new() },
            scratch: (Vec::new(), Vec::new()),
            buffer: OutputBuffer::default(),
            purge,
        }
    }

    async fn restore(&self, log: &dyn EventLog, partition: u32) -> Result<PartitionState, RuntimeError> {
        let mut state = PartitionState::default();
        let changelog = TopicPartition::new(self.changelog.clone(), partition);
        let plan = &self.plan;
        // The last record of each window wins: folded first, so that each window is restored
        // once, in the order the windows first appeared (replacing a window restored already
        // costs a search of its close time's schedule, quadratic over a changelog not yet
        // compacted).
        let mut windows: Vec<(String, i64, Option<StoredWindow>)> = Vec::new();
        let mut index: HashMap<(String, i64), usize> = HashMap::new();
        for_each_record(log, None, &changelog, |record| {
            let broken = |reason: &dyn std::fmt::Display| RuntimeError::Restore {
                position: codec::position_of(record),
                reason: reason.to_string(),
            };
            let key = record.key.as_deref().unwrap_or_default();
            if key == PROGRESS_KEY {
                let value = record.value.as_deref().unwrap_or_default();
                let progress: Progress = serde_json::from_slice(value).map_err(|e| broken(&e))?;
                if let Some(written) = progress.shape.as_deref().filter(|written| *written != self.shape) {
                    return Err(broken(&format!(
                        "query `{}` changed since its changelog was written (aggregates|windows|group: `{written}`, now \
                         `{}`): its stored windows do not fit the new query; give the changed query a new name, or \
                         delete the topics `{}`, `{}` and `{}` and its groups to start it over (with the app \
                         stopped, {} deletes them)",
                        plan.name,
                        self.shape,
                        self.changelog,
                        self.repartition,
                        plan.sink_topic(),
                        reset_command(plan)
                    )));
                }
                state.restore_progress(progress.stream_time, progress.late);
                return Ok(());
            }
            let (start, group) = window_key(key).ok_or_else(|| broken(&"not a window key"))?;
            let stored = match &record.value {
                None => None,
                Some(value) => Some(wire::decode_window(value).map_err(|e| broken(&format!("not a window: {e}")))?),
            };
            match index.get(&(group.clone(), start)) {
                Some(&at) => windows[at].2 = stored,
                None => {
                    index.insert((group.clone(), start), windows.len());
                    windows.push((group, start, stored));
                }
            }
            Ok(())
        })
        .await?;
        for (group, _, stored) in windows {
            if let Some(stored) = stored {
                state.restore_window(plan, group, stored);
            }
        }
        Ok(state)
    }

    fn changelog_record(changelog: &Arc<str>, partition: u32, key: Bytes, value: Option<Bytes>) -> OutRecord {
        OutRecord {
            topic: changelog.clone(),
            partition: Some(partition),
            key: Some(key),
            value,
            headers: Headers::new(),
            timestamp: None,
        }
    }
}

/// How long a windowed TABLE's sink keeps a row at least, from its time: Kafka's default
/// retention (a week, which ksqlDB's windowed tables get), and never less than a window stays
/// open plus a day (Kafka Streams' margin for windowed changelogs). `None` without windows: a
/// key's row is kept until it is replaced or deleted.
fn sink_retention(windowing: &Windowing) -> Option<std::time::Duration> {
    const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);
    let open = match windowing.kind {
        WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => size,
        WindowKind::Session { gap } => gap,
        WindowKind::Global => return None,
    };
    Some((7 * DAY).max(open.saturating_add(windowing.grace).saturating_add(DAY)))
}

/// Writes a query's rows to its sink, as CloudEvents in binary mode.
struct RowWriter {
    plan: Arc<Plan>,
    sink: Arc<str>,
    /// `ce_source` and `ce_type` of every row: the query's name, and it in Pascal case.
    source_name: String,
    row_type: String,
}

impl RowWriter {
    fn new(plan: Arc<Plan>) -> Self {
        RowWriter {
            sink: Arc::from(plan.sink_topic()),
            source_name: plan.name.clone(),
            row_type: pascal_case(&plan.name),
            plan,
        }
    }

    /// The row of a window (or a record, for a stateless query) keyed by `key` (a stateless
    /// query's record may have none); `None` values delete a TABLE's row.
    fn row(&self, key: Option<&[u8]>, window: Window, values: Option<&[Value]>, time: i64) -> OutRecord {
        // A table's row is a key's (and window's, when windowed): compaction of the sink, where
        // it is compacted, keeps the latest.
        let windowed = self.plan.windowing.is_windowed();
        let record_key = key.map(|key| match self.plan.output {
            OutputKind::Table if windowed => [key, format!("@{}", window.start).as_bytes()].concat(),
            _ => key.to_vec(),
        });
        let value = values
            .map(|values| Bytes::from(serde_json::to_vec(&self.plan.row_json(values)).expect("values serialise")));
        let stamp = jiff::Timestamp::from_millisecond(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut headers = Headers::builder(320);
        headers.push(ce::SPEC_VERSION, b"1.0");
        headers.push(ce::ID, Uuid::now_v7().hyphenated().to_string().as_bytes());
        headers.push(ce::SOURCE, self.source_name.as_bytes());
        headers.push(ce::TYPE, self.row_type.as_bytes());
        headers.push(ce::TIME, stamp.to_string().as_bytes());
        // A subject is a non-empty string, when there is one.
        if let Some(subject) = key.filter(|key| !key.is_empty() && std::str::from_utf8(key).is_ok()) {
            headers.push(ce::SUBJECT, subject);
        }
        headers.push(ce::CONTENT_TYPE, b"application/json");
        if windowed {
            headers.push(headers::WINDOW_START, window.start.to_string().as_bytes());
            headers.push(headers::WINDOW_END, window.end.to_string().as_bytes());
        }
        OutRecord {
            topic: self.sink.clone(),
            partition: None,
            key: record_key.map(Bytes::from),
            value,
            headers: headers.build(),
            timestamp: Some(time),
        }
    }
}

/// `w/<start>/<key>`: one changelog key per window of a key.
fn window_key_of(key: &str, start: i64, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "w/{start}/");
    out.extend_from_slice(key.as_bytes());
}

fn window_key(key: &[u8]) -> Option<(i64, String)> {
    let text = std::str::from_utf8(key.strip_prefix(b"w/")?).ok()?;
    let (start, group) = text.split_once('/')?;
    Some((start.parse().ok()?, group.to_owned()))
}

impl Processor for WindowProcessor {
    fn group(&self) -> &str {
        &self.group
    }

    fn dead_letters(&self) -> Option<&Arc<str>> {
        Some(&self.dead_letters)
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![self.repartition]
    }

    fn start(&self) -> StartFrom {
        StartFrom::Beginning
    }

    async fn assigned(&mut self, log: &dyn EventLog, partitions: &[TopicPartition]) -> Result<(), RuntimeError> {
        for tp in partitions {
            let state = self.restore(log, tp.partition).await?;
            self.late.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.partition, state.late());
            self.partitions.insert(tp.partition, state);
        }
        Ok(())
    }

    fn revoked(&mut self, partitions: &[TopicPartition]) {
        let mut late = self.late.lock().unwrap_or_else(|p| p.into_inner());
        for tp in partitions {
            self.partitions.remove(&tp.partition);
            late.remove(&tp.partition);
        }
        self.purge.revoked(partitions);
    }

    async fn committed(&mut self, log: &dyn EventLog, _written: Vec<Position>, read: &[(TopicPartition, u64)]) {
        self.purge.committed(log, read, &self.group).await;
    }

    async fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) {
        let mut touched: Vec<u32> = Vec::new();
        // About a changed window per record, and the progress.
        outputs.reserve(records.len() + 8);
        let mut emitted = std::mem::take(&mut self.emitted);
        for record in records {
            match record.value.as_deref().map(|value| wire::decode_keyed_into(value, &mut self.keyed)) {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    let reason = format!("not a re-keyed row of query `{}`: {error}", self.plan.name);
                    outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &reason));
                    continue;
                }
                None => {
                    outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &"a tombstone"));
                    continue;
                }
            }
            let state = self.partitions.entry(record.partition).or_default();
            state.apply(&self.plan, &self.keyed, &mut emitted);
            if !touched.contains(&record.partition) {
                touched.push(record.partition);
            }
            outputs.extend(
                emitted.iter().map(|e| self.rows.row(Some(e.key.as_bytes()), e.window, e.values.as_deref(), e.time)),
            );
            emitted.clear();
        }
        self.emitted = emitted;
        // The changed windows and the progress go in the same atomic write as the rows and
        // the positions.
        // Each changed window once, as it stands at the end of the batch.
        let WindowProcessor { partitions, changelog, scratch: (key, value), buffer, late, shape, .. } = self;
        let mut late = late.lock().unwrap_or_else(|p| p.into_inner());
        for partition in touched {
            let Some(state) = partitions.get_mut(&partition) else { continue };
            state.drain_changes(|change| {
                let value = match change {
                    ChangeRef::Put { key: group_key, group, window, accumulators, latest } => {
                        window_key_of(group_key, window.start, key);
                        value.clear();
                        wire::encode_window(group, window, accumulators, latest, value);
                        Some(buffer.bytes(value))
                    }
                    ChangeRef::Delete { key: group_key, start } => {
                        window_key_of(group_key, start, key);
                        None
                    }
                };
                outputs.push(Self::changelog_record(changelog, partition, buffer.bytes(key), value));
            });
            let (stream_time, dropped) = state.progress();
            late.insert(partition, dropped);
            let shape = Some(std::borrow::Cow::Borrowed(shape.as_str()));
            let progress =
                serde_json::to_vec(&Progress { stream_time, late: dropped, shape }).expect("progress serialises");
            let progress = Some(Bytes::from(progress));
            outputs.push(Self::changelog_record(changelog, partition, Bytes::from_static(PROGRESS_KEY), progress));
        }
    }
}
