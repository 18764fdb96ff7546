//! Checkpointed projections, on every backend: a restart restores the last checkpoint and reads
//! only what came after it; another version of the read model, or a checkpoint that does not
//! read as its state, is rebuilt from the beginning; events with personal data are refused.
//!
//! Memory and embedded always; Kafka with the `kafka` feature (`scripts/test` runs it).

use std::sync::Arc;
use std::time::Duration;

mod faults;

use bytes::Bytes;
use faults::FaultyLog;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::log::{EventLog, Headers, LogError, OutRecord, TopicPartition, TopicSpec};
use tramline::privacy::Personal;
use tramline::runtime::ProjectionHandle;
use tramline::runtime::{Checkpoints, RuntimeError, Settings};
use tramline::{App, Envelope, Event, Handle, MemoryLog, Message, Projection, ReferenceId, codec};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "mtr")]
pub struct MeterId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "meter", key = id)]
pub enum ReadingEvent {
    Taken { id: MeterId, kwh: i64 },
}

/// The read model: what it folded, and (not checkpointed) how many events this process handled.
#[derive(Debug, Default, Serialize, Deserialize, Projection)]
#[projection(name = "totals", subscribe(ReadingEvent))]
pub struct Totals {
    kwh: i64,
    readings: u64,
    #[serde(skip)]
    handled_here: u64,
}

impl Handle<ReadingEvent> for Totals {
    fn handle(&mut self, event: &Envelope<ReadingEvent>) {
        let ReadingEvent::Taken { kwh, .. } = event.payload;
        self.kwh += kwh;
        self.readings += 1;
        self.handled_here += 1;
    }
}

const PATIENCE: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn settings() -> Settings {
    Settings { poll_timeout: Duration::from_millis(20), batch_size: 8, ..Settings::default() }
}

async fn append(log: &dyn EventLog, kwh: std::ops::RangeInclusive<i64>) {
    let meters: Vec<MeterId> = (0..5).map(|_| MeterId::generate()).collect();
    let records = kwh
        .map(|kwh| {
            codec::encode(&Envelope::new(
                ReadingEvent::Taken { id: meters[kwh as usize % 5], kwh },
                jiff::Timestamp::now(),
            ))
        })
        .collect();
    log.create_topic(&TopicSpec::keep(ReadingEvent::TOPIC, 3)).await.expect("the topic");
    log.append(records).await.expect("appended");
}

/// Runs an app with the checkpointed projection until it has read everything, and stops it:
/// `(kwh, readings, handled here)`.
async fn run(log: Arc<dyn EventLog>, version: u32) -> (i64, u64, u64) {
    // A checkpoint with every batch: each restart goes on exactly where the last one stopped.
    run_with(log, Checkpoints::version(version).every(Duration::ZERO)).await
}

async fn run_with(log: Arc<dyn EventLog>, checkpoints: Checkpoints) -> (i64, u64, u64) {
    let read = run_app(log.clone(), checkpoints).await;
    // The input positions went with the last checkpoint: a restart reads nothing again.
    let group = match log.instance_id() {
        Some(instance) => format!("totals@{instance}"),
        None => "totals@checkpointed".to_owned(),
    };
    for partition in 0..3 {
        let tp = TopicPartition::new(ReadingEvent::TOPIC, partition);
        let end = log.end_offset(&tp).await.expect("an end");
        let committed = log.committed(&group, &tp).await.expect("a position");
        assert!(end == 0 || committed == Some(end), "{tp}: committed {committed:?}, end {end}");
    }
    read
}

/// Runs an app with the checkpointed projection until it has read everything, and stops it.
async fn run_app(log: Arc<dyn EventLog>, checkpoints: Checkpoints) -> (i64, u64, u64) {
    let mut app = App::new(log).with_settings(settings());
    let totals: ProjectionHandle<Totals> =
        app.checkpointed_projection(Totals::default(), checkpoints).await.expect("registered");
    within("the app to start", app.start()).await.expect("started");
    within("the projection", totals.caught_up()).await.expect("caught up");
    let read = totals.read(|t| (t.kwh, t.readings, t.handled_here));
    within("the app to stop", app.shutdown()).await.expect("a clean shutdown");
    read
}

/// `purged`: whether the log deletes the older checkpoints at once (the memory log frees whole
/// segments only).
async fn a_restart_goes_on_from_the_last_checkpoint(open: impl AsyncFn() -> Arc<dyn EventLog>, purged: bool) {
    let log = open().await;
    append(&*log, 1..=30).await;
    assert_eq!(run(log, 1).await, (465, 30, 30), "the first run reads everything");

    let log = open().await;
    append(&*log, 31..=35).await;
    assert_eq!(run(log, 1).await, (630, 35, 5), "the second run restores the checkpoint and reads the rest only");

    let log = open().await;
    assert_eq!(run(log, 2).await, (630, 35, 35), "another version rebuilds the read model from the beginning");
    let log = open().await;
    assert_eq!(run(log.clone(), 2).await, (630, 35, 0), "and checkpoints it anew");
    if purged {
        let topic = match log.instance_id() {
            Some(instance) => format!("totals.checkpoint.{instance}"),
            None => "totals.checkpoint".to_owned(),
        };
        let left = log.read(&TopicPartition::new(topic, 0), 0, 100).await.expect("read");
        let offsets: Vec<u64> = left.iter().map(|r| r.offset).collect();
        assert_eq!(offsets.len(), 1, "the older checkpoints are deleted: {offsets:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_restart_goes_on_from_the_last_checkpoint() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    a_restart_goes_on_from_the_last_checkpoint(async || log.clone(), false).await;
}

/// An app that stops writes a last checkpoint, however long the interval: its next start reads
/// nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_clean_stop_checkpoints_everything_applied() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    let hourly = Checkpoints::version(1).every(Duration::from_secs(3600));
    append(&*log, 1..=30).await;
    assert_eq!(run_with(log.clone(), hourly).await, (465, 30, 30));
    append(&*log, 31..=35).await;
    assert_eq!(run_with(log.clone(), hourly).await, (630, 35, 5), "the checkpoint written as the first run stopped");
    assert_eq!(run_with(log, hourly).await, (630, 35, 0));
}

/// The state is restored when the projection is registered, the positions are the group's when
/// it starts: where an earlier incarnation (not fenced yet) committed past the restored state
/// in between, the records since are read again, and none is lost. `new_version`: the new one
/// rebuilds its read model while the old one still writes checkpoints of its own version.
async fn an_earlier_incarnation_that_writes_after_the_restore_loses_no_record(new_version: u32, handled: u64) {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    append(&*log, 1..=30).await;
    let mut old = App::new(log.clone()).with_settings(settings());
    let every_batch = |version| Checkpoints::version(version).every(Duration::ZERO);
    let old_totals = old.checkpointed_projection(Totals::default(), every_batch(1)).await.expect("registered");
    within("the old app to start", old.start()).await.expect("started");
    within("the old projection", old_totals.caught_up()).await.expect("caught up");
    let mut new = App::new(log.clone()).with_settings(settings());
    let new_totals =
        new.checkpointed_projection(Totals::default(), every_batch(new_version)).await.expect("registered");
    append(&*log, 31..=40).await;
    within("the old projection", old_totals.caught_up()).await.expect("caught up");
    within("the old app to stop", old.shutdown()).await.expect("stopped");
    within("the new app to start", new.start()).await.expect("started");
    within("the new projection", new_totals.caught_up()).await.expect("caught up");
    let read = new_totals.read(|t| (t.kwh, t.readings, t.handled_here));
    within("the new app to stop", new.shutdown()).await.expect("stopped");
    assert_eq!(read, (820, 40, handled), "every reading applied once");
    // And the next start restores what the new one checkpointed.
    append(&*log, 41..=50).await;
    assert_eq!(run(log, new_version).await, (1275, 50, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_an_earlier_incarnation_that_writes_after_the_restore_loses_no_record() {
    an_earlier_incarnation_that_writes_after_the_restore_loses_no_record(1, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_an_earlier_incarnation_of_another_version_that_writes_after_the_restore_loses_no_record() {
    an_earlier_incarnation_that_writes_after_the_restore_loses_no_record(2, 40).await;
}

/// A log that refuses the checkpoint as too large (a broker's or client's limit below
/// tramline's): the projection goes on without checkpoints, and no record is blamed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_checkpoint_refused_as_too_large_stops_the_checkpoints_and_letters_nothing() {
    let memory = MemoryLog::shared();
    append(&*memory, 1..=30).await;
    let faulty = FaultyLog::over(memory.clone()).commit_fails(|outputs, _| {
        outputs.iter().any(|o| &*o.topic == "totals.checkpoint").then(|| LogError::TooLarge {
            topic: "totals.checkpoint".into(),
            reason: "larger than message.max.bytes".into(),
        })
    });
    let every_batch = Checkpoints::version(1).every(Duration::ZERO);
    assert_eq!(run_app(Arc::new(faulty), every_batch).await, (465, 30, 30), "the read model is whole");
    for partition in 0..memory.partition_count("totals.dlq").await.unwrap().unwrap_or(0) {
        let letters = memory.end_offset(&TopicPartition::new("totals.dlq", partition)).await.unwrap();
        assert_eq!(letters, 0, "no record dead-lettered for the checkpoint's size");
    }
}

/// A checkpoint that does not read as the state (written by other code under the same
/// version): the read model is rebuilt from the beginning, not left empty or half-read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_checkpoint_that_does_not_read_as_the_state_is_rebuilt_from_the_beginning() {
    let log: Arc<dyn EventLog> = MemoryLog::shared();
    append(&*log, 1..=10).await;
    assert_eq!(run(log.clone(), 1).await, (55, 10, 10));
    let foreign = OutRecord {
        topic: "totals.checkpoint".into(),
        partition: Some(0),
        key: Some(Bytes::from_static(b"totals@checkpointed")),
        value: Some(Bytes::from_static(br#"{"version":1,"applied":[],"state":{"kwh":"many"}}"#)),
        headers: Headers::new(),
        timestamp: None,
    };
    log.append(vec![foreign]).await.expect("appended");
    assert_eq!(run(log, 1).await, (55, 10, 10), "rebuilt from the beginning");
}

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "per")]
pub struct PersonId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(module = "person", key = id)]
pub enum PersonEvent {
    Named {
        id: PersonId,
        #[pii]
        name: Personal<String>,
    },
}

#[derive(Debug, Default, Serialize, Deserialize, Projection)]
#[projection(name = "names", subscribe(PersonEvent))]
pub struct Names {
    names: Vec<String>,
}

impl Handle<PersonEvent> for Names {
    fn handle(&mut self, event: &Envelope<PersonEvent>) {
        let PersonEvent::Named { name, .. } = &event.payload;
        self.names.extend(name.get().cloned());
    }
}

/// Checkpoints of personal data would outlive a forgotten subject's key: refused, with what
/// to do instead.
#[tokio::test]
async fn a_projection_of_personal_data_is_not_checkpointed() {
    let mut app = App::new(MemoryLog::shared());
    match app.checkpointed_projection(Names::default(), Checkpoints::version(1)).await {
        Err(error @ RuntimeError::PersonalCheckpoint { .. }) => {
            let message = error.to_string();
            assert!(message.contains("`PersonEvent`, which carries personal data"), "{message}");
            assert!(message.contains("App::projection"), "{message}");
        }
        other => panic!("expected PersonalCheckpoint, got {:?}", other.map(|_| ())),
    }
}

#[cfg(feature = "embedded")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_restart_goes_on_from_the_last_checkpoint() {
    use tramline::log::embedded::EmbeddedLog;
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().to_owned();
    // Each run opens the directory anew, as a new process would.
    a_restart_goes_on_from_the_last_checkpoint(
        async || {
            let log = EmbeddedLog::open_async(path.clone(), Default::default()).await.expect("opened");
            Arc::new(log) as Arc<dyn EventLog>
        },
        true,
    )
    .await;
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_restart_goes_on_from_the_last_checkpoint() {
    use tramline::log::Namespaced;
    use tramline::log::kafka::{KafkaConfig, KafkaLog};
    let namespace = format!("checkpoints-{}", uuid::Uuid::now_v7().simple());
    a_restart_goes_on_from_the_last_checkpoint(
        async || {
            let config = KafkaConfig::new(tramline::testing::kafka::bootstrap()).with_instance_id("checkpoints-1");
            let kafka: Arc<dyn EventLog> = Arc::new(KafkaLog::connect(config).await.expect("connected"));
            Arc::new(Namespaced::new(kafka, &namespace).expect("a namespace")) as Arc<dyn EventLog>
        },
        true,
    )
    .await;
}
