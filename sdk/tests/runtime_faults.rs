//! Faults the runtime contains: module code that panics, a command on another partition than
//! its key's, dead letters of a projection rebuilt on restart, and registrations that cannot be
//! served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod faults;

use faults::FaultyLog;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::export::{Export, PublicEvent};
use tramline::log::{EventLog, LogError, OutRecord, Record, TopicPartition, partition_for};
use tramline::model::Position;
use tramline::runtime::{CommandError, RuntimeError, Settings, dead_letter};
use tramline::{
    Aggregate, App, Command, Envelope, Event, Handle, MemoryLog, Message, Projection, React, Reaction, ReferenceId,
    codec,
};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "tap")]
pub struct TapId(uuid::Uuid);

#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[command(module = "tap", key = id)]
pub enum TapCommand {
    Pour {
        id: TapId,
    },
    Break {
        id: TapId,
    },
    /// Pours, then spills: `evolve` panics on the spill.
    Spill {
        id: TapId,
    },
    /// Tells how many pours the tap has seen.
    Count {
        id: TapId,
    },
    /// Pours, then leaks: the leak cannot be written.
    Leak {
        id: TapId,
    },
    /// Jams the tap: its state no longer serialises.
    Jam {
        id: TapId,
    },
    /// Pours, then meters the flow per pour of the pours before: NaN, which JSON cannot hold.
    Meter {
        id: TapId,
    },
}

#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "tap", key = id)]
pub enum TapEvent {
    Poured { id: TapId },
    Spilled { id: TapId },
    Leaked { id: TapId, drops: Unwritable },
    Counted { id: TapId, pours: u32 },
    Jammed { id: TapId },
    Metered { id: TapId, flow: f64 },
}

#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
#[error("never")]
pub struct Never;

/// A value whose serialisation fails, like a custom `Serialize` with a bug.
#[derive(Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct Unwritable;

impl Serialize for Unwritable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("unwritable"))
    }
}

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Tap {
    pours: u32,
    jam: Option<Unwritable>,
}

impl Aggregate for Tap {
    type Command = TapCommand;
    type Event = TapEvent;
    type Error = Never;
    type Services = ();

    fn decide(&self, command: &TapCommand, _: &()) -> Result<Vec<TapEvent>, Never> {
        match *command {
            TapCommand::Pour { id } => Ok(vec![TapEvent::Poured { id }]),
            TapCommand::Break { .. } => panic!("the tap broke"),
            TapCommand::Spill { id } => Ok(vec![TapEvent::Poured { id }, TapEvent::Spilled { id }]),
            TapCommand::Count { id } => Ok(vec![TapEvent::Counted { id, pours: self.pours }]),
            TapCommand::Leak { id } => Ok(vec![TapEvent::Poured { id }, TapEvent::Leaked { id, drops: Unwritable }]),
            TapCommand::Jam { id } => Ok(vec![TapEvent::Poured { id }, TapEvent::Jammed { id }]),
            TapCommand::Meter { id } => Ok(vec![TapEvent::Poured { id }, TapEvent::Metered { id, flow: f64::NAN }]),
        }
    }

    fn evolve(&mut self, event: &TapEvent) {
        match event {
            TapEvent::Poured { .. } => self.pours += 1,
            TapEvent::Spilled { .. } => panic!("the tap spilled"),
            TapEvent::Jammed { .. } => self.jam = Some(Unwritable),
            TapEvent::Counted { .. } | TapEvent::Leaked { .. } | TapEvent::Metered { .. } => {}
        }
    }
}

/// Panics on every event, like a reaction with a bug.
#[derive(Reaction)]
#[reaction(module = "tap", commands = TapCommand, subscribe(TapEvent))]
pub struct Faulty;

impl React<TapEvent> for Faulty {
    async fn react(&self, _: &Envelope<TapEvent>) -> Result<Vec<TapCommand>, Self::Error> {
        panic!("a bug in the reaction")
    }
}

/// Panics on every event, like a projection with a bug.
#[derive(Projection, Default)]
#[projection(subscribe(TapEvent))]
pub struct Gauge;

impl Handle<TapEvent> for Gauge {
    fn handle(&mut self, _: &Envelope<TapEvent>) {
        panic!("a bug in the projection")
    }
}

/// Counts the pours, as a module's own read model.
#[derive(Projection, Default)]
#[projection(module = "tap", subscribe(TapEvent))]
pub struct PourCount(u32);

impl Handle<TapEvent> for PourCount {
    fn handle(&mut self, _: &Envelope<TapEvent>) {
        self.0 += 1;
    }
}

/// Every append is refused for good: the topic is gone.
fn topic_gone(records: &[OutRecord]) -> Option<LogError> {
    Some(LogError::UnknownTopic(records.first().map(|r| r.topic.to_string()).unwrap_or_default()))
}

fn settings() -> Settings {
    Settings {
        poll_timeout: Duration::from_millis(20),
        command_timeout: Duration::from_secs(10),
        ..Settings::default()
    }
}

async fn letters(log: &dyn EventLog, group: &str) -> u64 {
    letters_of(log, group).await.len() as u64
}

/// The letters on a group's dead-letter topic.
async fn letters_of(log: &dyn EventLog, group: &str) -> Vec<Record> {
    let topic = dead_letter::topic_of(group);
    let mut letters = Vec::new();
    for partition in 0..log.partition_count(&topic).await.unwrap().unwrap_or(0) {
        letters.extend(log.read(&TopicPartition::new(topic.as_str(), partition), 0, 100).await.unwrap());
    }
    letters
}

/// `memory`, whose members' writes refuse every letter that carries its record's value as
/// too large.
fn refusing_whole_letters(memory: &Arc<MemoryLog>) -> Arc<FaultyLog> {
    Arc::new(FaultyLog::over(memory.clone()).commit_fails(|outputs, _| {
        let letter = outputs.iter().find(|o| o.topic.ends_with(".dlq") && o.value.is_some())?;
        Some(LogError::TooLarge { topic: letter.topic.to_string(), reason: "1000100 bytes".into() })
    }))
}

#[tokio::test]
async fn a_panicking_decide_is_dead_lettered_and_the_module_goes_on() {
    let log = MemoryLog::shared();
    let mut app = App::new(log.clone()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    let id = TapId::generate();
    taps.send(TapCommand::Pour { id }).await.expect("poured");
    match taps.send(TapCommand::Break { id }).await {
        Err(CommandError::Failed { reason, .. }) => assert!(reason.contains("the tap broke"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    // The entity still has its one pour, and goes on.
    let accepted = taps.send(TapCommand::Pour { id }).await.expect("the module goes on");
    assert_eq!(accepted.events.len(), 1);
    assert_eq!(letters(&*log, "tap.aggregate").await, 1);
    app.shutdown().await.unwrap();
}

/// A start given up half-way (a process told to stop while it starts) is followed by a clean
/// shutdown, and the next app on the log takes the partitions up.
#[tokio::test]
async fn a_start_given_up_half_way_is_shut_down_cleanly() {
    let log = MemoryLog::shared();
    let mut app = App::new(log.clone()).with_settings(settings());
    app.aggregate::<Tap>(()).await.unwrap();
    // Polled once: the processors are spawned, and the start waits for them when it is dropped.
    {
        let start = std::pin::pin!(app.start());
        assert!(futures::poll!(start).is_pending(), "the processors have not run yet");
    }
    tokio::time::timeout(Duration::from_secs(10), app.shutdown())
        .await
        .expect("no wait")
        .expect("stopped cleanly");

    let mut again = App::new(log).with_settings(settings());
    let taps = again.aggregate::<Tap>(()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), again.start())
        .await
        .expect("the partitions are free")
        .unwrap();
    taps.send(TapCommand::Pour { id: TapId::generate() }).await.expect("decided");
    again.shutdown().await.unwrap();
}

/// The runtime names topics and groups inside the namespace; each of its logs carries the
/// namespace, for finding them with the backend's own tools.
#[tokio::test(flavor = "current_thread")]
async fn a_namespaced_apps_logs_name_the_namespace() {
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    // The default of this thread: the test's runtime runs every task on it.
    let _default = tracing::subscriber::set_default(subscriber);

    let log: Arc<dyn EventLog> = Arc::new(tramline::log::Namespaced::new(MemoryLog::shared(), "night-shift").unwrap());
    let mut app = App::new(log).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    let id = TapId::generate();
    taps.send(TapCommand::Pour { id }).await.expect("poured");
    taps.send(TapCommand::Break { id }).await.expect_err("the tap broke");
    app.shutdown().await.unwrap();

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let dead_lettered = text.lines().find(|line| line.contains("record dead-lettered"));
    let dead_lettered = dead_lettered.unwrap_or_else(|| panic!("a warning: {text}"));
    assert!(dead_lettered.contains("tramline{namespace=night-shift}"), "{dead_lettered}");
    assert!(dead_lettered.contains("topic=tap.commands"), "names inside the namespace: {dead_lettered}");
}

/// A pour, then `failing` on the same entity, in one batch: `failing` is dead-lettered with a
/// reason that says `why`, and the entity keeps the pour and nothing of `failing`, in memory and
/// in the batch's snapshot (a restart restores it), and goes on.
async fn a_failing_command_leaves_the_entity_as_it_was(failing: fn(TapId) -> TapCommand, why: &str) {
    let log = MemoryLog::shared();
    let id = TapId::generate();
    let mut app = App::new(log.clone()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    // Both commands on the log before the module starts: one batch.
    let command = |c| codec::encode(&Envelope::new(c, jiff::Timestamp::now()));
    log.append(vec![command(TapCommand::Pour { id }), command(failing(id))]).await.unwrap();
    app.start().await.unwrap();
    app.settle().await.unwrap();
    assert_eq!(letters(&*log, "tap.aggregate").await, 1, "the failing command is dead-lettered");
    match taps.send(failing(id)).await {
        Err(CommandError::Failed { reason, .. }) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    let counted = taps.send(TapCommand::Count { id }).await.expect("the module goes on");
    assert_eq!(counted.events[0].payload, TapEvent::Counted { id, pours: 1 });
    app.shutdown().await.unwrap();
    // A restart restores the batch's snapshot.
    let mut app = App::new(log.clone()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    let counted = taps.send(TapCommand::Count { id }).await.expect("counted");
    assert_eq!(counted.events[0].payload, TapEvent::Counted { id, pours: 1 });
    app.shutdown().await.unwrap();
}

/// `evolve` panics half-way through the command's events.
#[tokio::test]
async fn a_panicking_evolve_leaves_the_entity_as_it_was_before_the_command() {
    a_failing_command_leaves_the_entity_as_it_was(|id| TapCommand::Spill { id }, "the tap spilled").await;
}

/// The state after the command does not serialise for its snapshot (a map with keys that are
/// not text, a custom `Serialize` that fails): that command fails alone.
#[tokio::test]
async fn a_command_whose_state_cannot_be_snapshotted_fails_alone() {
    let why = "cannot be serialised as JSON for its snapshot";
    a_failing_command_leaves_the_entity_as_it_was(|id| TapCommand::Jam { id }, why).await;
}

/// An event holding a float JSON cannot hold (NaN, written as `null`) would be read by no one,
/// the entity's own rebuild from its events included: that command fails alone.
#[tokio::test]
async fn a_command_whose_events_would_not_read_back_fails_alone() {
    let why = "Metered of TapEvent does not read back from the JSON it is written as (invalid type: null, expected f64";
    a_failing_command_leaves_the_entity_as_it_was(|id| TapCommand::Meter { id }, why).await;
}

/// With a window of no remembered commands, a command whose snapshot failed is not remembered
/// either: the same envelope again is decided again (and fails again), not taken for a duplicate.
#[tokio::test]
async fn a_command_whose_snapshot_failed_is_not_remembered_with_no_window() {
    let settings = Settings { seen_commands: 0, ..settings() };
    let mut app = App::new(MemoryLog::shared()).with_settings(settings);
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    let id = TapId::generate();
    taps.send(TapCommand::Pour { id }).await.expect("poured");
    let jam = Envelope::new(TapCommand::Jam { id }, jiff::Timestamp::now());
    for attempt in 0..2 {
        match taps.send_envelope(jam.clone()).await {
            Err(CommandError::Failed { reason, .. }) => assert!(reason.contains("snapshot"), "{reason}"),
            other => panic!("attempt {attempt}: expected Failed, got {other:?}"),
        }
    }
    app.shutdown().await.unwrap();
}

/// A command whose events cannot be encoded (a custom `Serialize` that fails) changes nothing:
/// the entity keeps its state, and a repeat of the envelope is decided again, not taken for a
/// duplicate of a command that was applied.
#[tokio::test]
async fn a_command_whose_events_cannot_be_written_changes_nothing() {
    let log = MemoryLog::shared();
    let mut app = App::new(log.clone()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    let id = TapId::generate();
    let leak = Envelope::new(TapCommand::Leak { id }, jiff::Timestamp::now());
    for attempt in 0..2 {
        match taps.send_envelope(leak.clone()).await {
            Err(CommandError::Failed { reason, .. }) => assert!(reason.contains("unwritable"), "{reason}"),
            other => panic!("attempt {attempt}: expected Failed, got {other:?}"),
        }
    }
    let counted = taps.send(TapCommand::Count { id }).await.expect("counted");
    assert_eq!(counted.events[0].payload, TapEvent::Counted { id, pours: 0 });
    app.shutdown().await.unwrap();
}

/// A command that names positions the module's projections do not read in time is not decided
/// on what they show: its caller hears so, well within its own timeout, and may send it again.
#[tokio::test]
async fn a_command_whose_positions_are_not_read_in_time_is_not_decided() {
    let log = MemoryLog::shared();
    let settings = Settings { command_timeout: Duration::from_secs(2), ..settings() };
    let mut app = App::new(log.clone()).with_settings(settings);
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.projection(PourCount::default()).await.unwrap();
    app.start().await.unwrap();
    let id = TapId::generate();
    let pour = Envelope::new(TapCommand::Pour { id }, jiff::Timestamp::now());
    let never = Position { topic: Arc::from(TapEvent::TOPIC), partition: 0, offset: 1_000_000 };
    match taps.send_after(pour.clone(), &[never]).await {
        Err(error @ CommandError::NotCaughtUp { .. }) => {
            assert!(error.is_transient() && error.to_string().contains("send it again"), "{error}");
        }
        other => panic!("expected NotCaughtUp, got {other:?}"),
    }
    let accepted = taps.send_envelope(pour).await.expect("decided when sent again");
    assert!(!accepted.duplicate, "the first copy was not applied");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_command_on_another_partition_than_its_keys_is_dead_lettered() {
    let log = MemoryLog::shared();
    let mut app = App::new(log.clone()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    let id = TapId::generate();
    let right = partition_for(id.to_string().as_bytes(), 4);
    let record: OutRecord = codec::encode(&Envelope::new(TapCommand::Pour { id }, jiff::Timestamp::now()));
    log.append(vec![record.to_partition((right + 1) % 4)]).await.unwrap();
    taps.send(TapCommand::Pour { id }).await.expect("the right partition still works");
    app.settle().await.unwrap();
    assert_eq!(letters(&*log, "tap.aggregate").await, 1);
    let events = log.end_offset(&TopicPartition::new(TapEvent::TOPIC, right)).await.unwrap();
    assert_eq!(events, 1, "one writer: only the command on its key's partition was applied");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn panicking_handlers_are_dead_lettered_once_even_when_a_projection_is_rebuilt() {
    let log = MemoryLog::shared();
    for run in 0..2 {
        let mut app = App::new(log.clone()).with_settings(settings());
        let taps = app.aggregate::<Tap>(()).await.unwrap();
        app.reaction(Faulty).await.unwrap();
        app.projection(Gauge).await.unwrap();
        app.start().await.unwrap();
        if run == 0 {
            taps.send(TapCommand::Pour { id: TapId::generate() }).await.unwrap();
        }
        app.settle().await.unwrap();
        assert_eq!(letters(&*log, "tap.faulty").await, 1, "run {run}: the reaction's letter");
        assert_eq!(letters(&*log, "gauge").await, 1, "run {run}: the projection replays, but letters once");
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_dead_letter_whose_write_failed_is_written_again() {
    for reaction in [false, true] {
        let memory = MemoryLog::shared();
        let failed = Arc::new(AtomicBool::new(false));
        let log = Arc::new(FaultyLog::over(memory.clone()).commit_fails({
            let failed = failed.clone();
            // The first write carrying a dead letter fails (a broker away for a moment).
            move |outputs, _| {
                let letter = outputs.iter().any(|o| o.topic.ends_with(".dlq"));
                (letter && !failed.swap(true, Ordering::SeqCst))
                    .then(|| LogError::Backend("the write failed this once".into()))
            }
        }));
        let mut app = App::new(log).with_settings(settings());
        let taps = app.aggregate::<Tap>(()).await.unwrap();
        match reaction {
            true => app.reaction(Faulty).await.unwrap(),
            false => app.projection(Gauge).await.map(drop).unwrap(),
        }
        app.start().await.unwrap();
        taps.send(TapCommand::Pour { id: TapId::generate() }).await.unwrap();
        app.settle().await.unwrap();
        assert!(failed.load(Ordering::SeqCst), "the first letter's write failed");
        let group = if reaction { "tap.faulty" } else { "gauge" };
        assert_eq!(letters(&*memory, group).await, 1, "{group}: the letter was written on the second try");
        app.shutdown().await.unwrap();
    }
}

/// A command whose outputs the log refuses for good (an event over Kafka's size limit) fails
/// alone: it goes to the dead-letter topic, its caller hears why, and the commands around it are
/// written. A letter that is too large itself goes without the command's bytes.
#[tokio::test]
async fn a_command_whose_outputs_are_too_large_for_the_log_is_dead_lettered_alone() {
    for letter_too_large in [false, true] {
        let memory = MemoryLog::shared();
        let log = Arc::new(FaultyLog::over(memory.clone()).commit_fails(move |outputs, _| {
            let too_large = |output: &&OutRecord| {
                let counted =
                    output.headers.iter().any(|(name, value)| name == "ce_type" && value.ends_with(b"Counted"));
                counted || (letter_too_large && output.topic.ends_with(".dlq") && output.value.is_some())
            };
            let output = outputs.iter().find(too_large)?;
            Some(LogError::TooLarge { topic: output.topic.to_string(), reason: "2000000 bytes".into() })
        }));
        let mut app = App::new(log).with_settings(settings());
        let taps = app.aggregate::<Tap>(()).await.unwrap();
        app.start().await.unwrap();
        let (a, b) = (TapId::generate(), TapId::generate());
        let (before, count, beside) = tokio::join!(
            taps.send(TapCommand::Pour { id: a }),
            taps.send(TapCommand::Count { id: a }),
            taps.send(TapCommand::Pour { id: b }),
        );
        before.expect("the pour before the count is written");
        beside.expect("the pour beside the count is written");
        match count {
            Err(error @ CommandError::Failed { .. }) => {
                assert!(error.to_string().contains("larger than the log accepts"), "{error}");
                assert!(!error.is_transient(), "sending it again cannot help");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        taps.send(TapCommand::Pour { id: a }).await.expect("the module goes on");

        let letters = letters_of(&*memory, "tap.aggregate").await;
        let [letter] = &letters[..] else { panic!("one letter, got {}", letters.len()) };
        let error = String::from_utf8_lossy(letter.header(dead_letter::headers::ERROR).unwrap()).into_owned();
        assert!(error.contains("tap.events") && error.contains("2000000 bytes"), "{error}");
        let value = String::from_utf8_lossy(letter.value.as_deref().unwrap_or_default()).into_owned();
        match letter_too_large {
            false => {
                let count = letter.header("ce_type").is_some_and(|t| String::from_utf8_lossy(t).contains("Count"));
                assert!(count && !value.is_empty(), "the letter carries the command: {value}");
            }
            true => {
                assert!(letter.value.is_none(), "the letter goes without the command: {value}");
                assert!(letter.header(dead_letter::headers::OMITTED).is_some());
                assert!(letter.header(dead_letter::headers::OFFSET).is_some(), "it names where the command is");
            }
        }
        app.shutdown().await.unwrap();
    }
}

/// A letter too large for the log goes without the record's bytes but with its own error: a
/// command on the wrong partition is lettered for that, not for the size of its letter.
#[tokio::test]
async fn a_letter_too_large_for_the_log_keeps_why_the_record_failed() {
    let memory = MemoryLog::shared();
    let log = refusing_whole_letters(&memory);
    let mut app = App::new(log).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    let id = TapId::generate();
    let right = partition_for(id.to_string().as_bytes(), 4);
    let record: OutRecord = codec::encode(&Envelope::new(TapCommand::Pour { id }, jiff::Timestamp::now()));
    memory.append(vec![record.to_partition((right + 1) % 4)]).await.unwrap();
    taps.send(TapCommand::Pour { id }).await.expect("the right partition still works");
    app.settle().await.unwrap();
    let dlq = dead_letter::topic_of("tap.aggregate");
    let letter = memory.read(&TopicPartition::new(dlq.as_str(), right), 0, 10).await.unwrap();
    let [letter] = &letter[..] else {
        panic!("one letter, on its key's partition, got {}", letter.len())
    };
    let error = String::from_utf8_lossy(letter.header(dead_letter::headers::ERROR).unwrap()).into_owned();
    assert!(error.contains("arrived on partition"), "the record's own error: {error}");
    assert!(letter.value.is_none() && letter.header(dead_letter::headers::OMITTED).is_some());
    app.shutdown().await.unwrap();
}

/// A projection's letter too large for the log goes without the record's bytes, and the
/// projection goes on.
#[tokio::test]
async fn a_projections_letter_too_large_for_the_log_goes_without_the_record() {
    let memory = MemoryLog::shared();
    let log = refusing_whole_letters(&memory);
    let mut app = App::new(log).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.projection(Gauge).await.unwrap();
    app.start().await.unwrap();
    for _ in 0..2 {
        taps.send(TapCommand::Pour { id: TapId::generate() }).await.unwrap();
        app.settle().await.expect("the projection goes on");
    }
    let letters = letters_of(&*memory, "gauge").await;
    assert_eq!(letters.len(), 2);
    for letter in &letters {
        let error = String::from_utf8_lossy(letter.header(dead_letter::headers::ERROR).unwrap()).into_owned();
        assert!(error.contains("a bug in the projection"), "{error}");
        assert!(letter.value.is_none() && letter.header(dead_letter::headers::OMITTED).is_some());
    }
    app.shutdown().await.unwrap();
}

/// The snapshots of a partition rebuilt from its events are written on their own: one the log
/// refuses is not blamed on the next command, which is decided and written as usual.
#[tokio::test]
async fn a_rebuilt_snapshot_the_log_refuses_is_blamed_on_no_command() {
    let memory = MemoryLog::shared();
    let (a, b) = (TapId::generate(), TapId::generate());
    let mut app = App::new(memory.clone()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    taps.send(TapCommand::Pour { id: a }).await.unwrap();
    taps.send(TapCommand::Pour { id: b }).await.unwrap();
    app.shutdown().await.unwrap();
    // A snapshot that cannot be read (as after a change of the state): the partition is rebuilt.
    let unreadable = OutRecord {
        topic: Arc::from("tap.state"),
        partition: Some(partition_for(a.to_string().as_bytes(), 4)),
        key: Some(a.to_string().into_bytes().into()),
        value: Some(b"not a snapshot".to_vec().into()),
        headers: Default::default(),
        timestamp: None,
    };
    memory.append(vec![unreadable]).await.unwrap();
    // `a`'s snapshot is now too large for the log.
    let a_key = a.to_string();
    let log = Arc::new(FaultyLog::over(memory.clone()).commit_fails(move |outputs, _| {
        let a_snapshot =
            outputs.iter().find(|o| o.topic.ends_with(".state") && o.key.as_deref() == Some(a_key.as_bytes()))?;
        Some(LogError::TooLarge { topic: a_snapshot.topic.to_string(), reason: "2000000 bytes".into() })
    }));
    let mut app = App::new(log).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    for _ in 0..3 {
        taps.send(TapCommand::Pour { id: b }).await.expect("a command on another entity is written");
    }
    let counted = taps.send(TapCommand::Count { id: b }).await.expect("counted");
    assert_eq!(counted.events[0].payload, TapEvent::Counted { id: b, pours: 4 });
    assert_eq!(app.dead_letters().await.unwrap(), 0, "no command was blamed");
    app.shutdown().await.unwrap();
}

/// The groups an app makes for its own run (its reply listener's, its projections') are
/// deleted when it stops: the log does not keep one per start.
#[cfg(feature = "embedded")]
#[tokio::test]
async fn an_apps_one_off_groups_are_deleted_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let log = Arc::new(tramline::log::embedded::EmbeddedLog::open(dir.path()).unwrap());
        let mut app = App::new(log).with_settings(settings());
        let taps = app.aggregate::<Tap>(()).await.unwrap();
        app.projection(PourCount::default()).await.unwrap();
        app.start().await.unwrap();
        taps.send(TapCommand::Pour { id: TapId::generate() }).await.unwrap();
        app.shutdown().await.unwrap();
    }
    let db = rusqlite::Connection::open(dir.path().join("log.sqlite3")).unwrap();
    let mut select = db.prepare("SELECT DISTINCT group_name FROM committed ORDER BY group_name").unwrap();
    let groups: Vec<String> = select.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(groups, ["tap.aggregate"], "only the module's own group stays");
}

/// Pours these taps through a writer app that stops again: their events wait on the log for
/// an app started after it, which takes them in one batch.
async fn poured(log: &Arc<MemoryLog>, taps: &[TapId]) {
    let mut writer = App::new(log.clone()).with_settings(settings());
    let aggregate = writer.aggregate::<Tap>(()).await.unwrap();
    writer.start().await.unwrap();
    for id in taps {
        aggregate.send(TapCommand::Pour { id: *id }).await.unwrap();
    }
    writer.shutdown().await.unwrap();
}

/// An export of the pours to partners.
fn pours_export() -> Export<()> {
    Export::new("tap", "pours", "Pours.").publish(is_pour, public_pour)
}

/// The pours route's filter.
fn is_pour(_: &(), event: &Envelope<TapEvent>) -> bool {
    matches!(event.payload, TapEvent::Poured { .. })
}

/// The pours route's mapping.
fn public_pour(_: &(), event: &Envelope<TapEvent>) -> Result<PublicPour, String> {
    match event.payload {
        TapEvent::Poured { id } => Ok(PublicPour { id }),
        _ => unreachable!("filtered"),
    }
}

/// An app of the taps running `export` on `log`, settled once started.
async fn settled_with(log: &Arc<MemoryLog>, export: Export<()>) -> App {
    let mut app = App::new(log.clone()).with_settings(settings());
    app.aggregate::<Tap>(()).await.unwrap();
    app.export(export).await.unwrap();
    app.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), app.settle()).await.expect("settles in time").unwrap();
    app
}

/// A feed's log that refuses, as too large, every batch that holds a record of pour `refused`.
fn feed_refusing(refused: TapId) -> (Arc<MemoryLog>, FaultyLog) {
    let feed = MemoryLog::shared();
    let key = refused.to_string();
    let refusing = FaultyLog::over(feed.clone()).append_fails(move |records| {
        let refused = records.iter().find(|r| r.key.as_deref() == Some(key.as_bytes()))?;
        Some(LogError::TooLarge { topic: refused.topic.to_string(), reason: "2000000 bytes".into() })
    });
    (feed, refusing)
}

/// The keys of the records on the feed `public.pours`, partition by partition.
async fn published_keys(log: &MemoryLog) -> Vec<String> {
    let mut keys = Vec::new();
    for partition in 0..log.partition_count("public.pours").await.unwrap().unwrap() {
        for record in log.read(&TopicPartition::new("public.pours", partition), 0, 100).await.unwrap() {
            keys.push(String::from_utf8(record.key.unwrap().to_vec()).unwrap());
        }
    }
    keys
}

/// What a feed publishes of a pour.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug)]
pub struct PublicPour {
    id: TapId,
}

impl PublicEvent for PublicPour {
    const NAME: &'static str = "Poured";
    const VERSION: u32 = 1;
    type Key = TapId;
    fn key(&self) -> &TapId {
        &self.id
    }
}

#[tokio::test]
async fn an_export_whose_feed_topic_is_gone_stops_with_the_error_instead_of_retrying_forever() {
    let mut app = App::new(MemoryLog::shared()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    let export = Export::new("tap", "pours", "Pours.")
        .publish(
            |_, _: &Envelope<TapEvent>| true,
            |_, event| match event.payload {
                TapEvent::Poured { id }
                | TapEvent::Spilled { id }
                | TapEvent::Counted { id, .. }
                | TapEvent::Leaked { id, .. }
                | TapEvent::Jammed { id }
                | TapEvent::Metered { id, .. } => Ok(PublicPour { id }),
            },
        )
        .to_log(Arc::new(FaultyLog::over(MemoryLog::shared()).append_fails(topic_gone)));
    app.export(export).await.unwrap();
    app.start().await.unwrap();
    taps.send(TapCommand::Pour { id: TapId::generate() }).await.unwrap();
    let settled = tokio::time::timeout(Duration::from_secs(30), app.settle()).await.expect("settles or fails in time");
    assert!(settled.is_err(), "the export stopped: {settled:?}");
    let error = app.shutdown().await.expect_err("the export's error");
    let message = error.to_string();
    assert!(message.contains("tap.export.pours") && message.contains("public.pours"), "{message}");
}

/// An export to another log that refuses one public record as too large dead-letters the event
/// it came from, and the other events of its batch still reach the feed.
#[tokio::test]
async fn an_export_whose_feed_log_refuses_a_record_as_too_large_dead_letters_its_event() {
    let log = MemoryLog::shared();
    let (small, big, other) = (TapId::generate(), TapId::generate(), TapId::generate());
    poured(&log, &[small, big, other]).await;

    let (feed, refusing) = feed_refusing(big);
    let app = settled_with(&log, pours_export().to_log(Arc::new(refusing))).await;

    let mut published = published_keys(&feed).await;
    published.sort();
    published.dedup();
    let mut expected = vec![small.to_string(), other.to_string()];
    expected.sort();
    assert_eq!(published, expected, "the other pours reached the feed");
    let letters = letters_of(&*log, "tap.export.pours").await;
    assert_eq!(letters.len(), 1, "the refused pour is dead-lettered");
    assert_eq!(letters[0].key.as_deref(), Some(big.to_string().as_bytes()));
    let error = String::from_utf8_lossy(letters[0].header(dead_letter::headers::ERROR).unwrap()).into_owned();
    assert!(error.contains("larger than the log accepts") && error.contains("public.pours"), "{error}");
    app.shutdown().await.expect("the export goes on");
}

/// An event that one route publishes and another refuses publishes nothing: it goes to the
/// dead letters whole, and taken again later it publishes each of its records once.
#[tokio::test]
async fn an_event_that_one_route_refuses_is_not_published_by_the_others() {
    let log = MemoryLog::shared();
    let mut app = App::new(log.clone()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    let (fine, refused) = (TapId::generate(), TapId::generate());
    let poured = |_: &(), event: &Envelope<TapEvent>| matches!(event.payload, TapEvent::Poured { .. });
    let pour_of = |event: &Envelope<TapEvent>| match event.payload {
        TapEvent::Poured { id } => id,
        _ => unreachable!("filtered"),
    };
    let export = Export::new("tap", "pours", "Pours.")
        .publish(poured, move |_, event| Ok(PublicPour { id: pour_of(event) }))
        .publish(poured, move |_, event| match pour_of(event) {
            id if id == refused => Err(format!("pour {id} has no tap")),
            id => Ok(PublicPour { id }),
        });
    app.export(export).await.unwrap();
    app.start().await.unwrap();
    for id in [fine, refused] {
        taps.send(TapCommand::Pour { id }).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), app.settle()).await.expect("settles in time").unwrap();
    let published = published_keys(&log).await;
    assert_eq!(published, [fine.to_string(), fine.to_string()], "both routes' records of the fine pour only");
    let letters = letters_of(&*log, "tap.export.pours").await;
    assert_eq!(letters.len(), 1, "the refused pour is dead-lettered");
    assert_eq!(letters[0].key.as_deref(), Some(refused.to_string().as_bytes()));
    app.shutdown().await.expect("the export goes on");
}

/// An event of two routes whose records the feed's log refuses is dead-lettered once, and the
/// other events' records, both routes', reach the feed.
#[tokio::test]
async fn an_event_whose_records_the_feed_refuses_is_dead_lettered_once() {
    let log = MemoryLog::shared();
    let (small, big, other) = (TapId::generate(), TapId::generate(), TapId::generate());
    poured(&log, &[small, big, other]).await;
    let (feed, refusing) = feed_refusing(big);
    let twice = pours_export().publish(is_pour, public_pour);
    let app = settled_with(&log, twice.to_log(Arc::new(refusing))).await;

    let mut published = published_keys(&feed).await;
    published.sort();
    let mut expected = vec![small.to_string(), small.to_string(), other.to_string(), other.to_string()];
    expected.sort();
    assert_eq!(published, expected, "both records of the other pours, once each");
    let letters = letters_of(&*log, "tap.export.pours").await;
    assert_eq!(letters.len(), 1, "the refused pour is dead-lettered once");
    app.shutdown().await.expect("the export goes on");
}

/// A batch of one public record that the feed's log refuses is that record's refusal: the
/// event is dead-lettered without appending it again alone.
#[tokio::test]
async fn a_single_public_record_the_feed_refuses_is_tried_once() {
    let log = MemoryLog::shared();
    poured(&log, &[TapId::generate()]).await;

    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = tries.clone();
    let refusing = FaultyLog::over(MemoryLog::shared()).append_fails(move |records| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(LogError::TooLarge { topic: records[0].topic.to_string(), reason: "2000000 bytes".into() })
    });
    let app = settled_with(&log, pours_export().to_log(Arc::new(refusing))).await;
    assert_eq!(letters_of(&*log, "tap.export.pours").await.len(), 1, "the refused pour is dead-lettered");
    assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 1, "appended once");
    app.shutdown().await.expect("the export goes on");
}

/// An export's module and feed name its topic and group as the derives' names do: a space, a
/// capital, a `/` or nothing is refused when it is registered.
#[tokio::test]
async fn an_export_named_outside_the_naming_rule_is_refused() {
    let mut app = App::new(MemoryLog::shared());
    app.aggregate::<Tap>(()).await.unwrap();
    let pours = |module, feed: &str| {
        Export::new(module, feed, "Pours.").publish(
            |_, event: &Envelope<TapEvent>| matches!(event.payload, TapEvent::Poured { .. }),
            |_, event| match event.payload {
                TapEvent::Poured { id } => Ok(PublicPour { id }),
                _ => unreachable!("filtered"),
            },
        )
    };
    for (module, feed, what) in [
        ("Tap Room", "pours", "export module `Tap Room`"),
        ("tap", "Tap Pours", "export feed `Tap Pours`"),
        ("tap", "", "export feed ``"),
        ("tap", "pours/daily", "export feed `pours/daily`"),
        ("tap", "pours.", "export feed `pours.`"),
    ] {
        match app.export(pours(module, feed)).await {
            Err(error @ RuntimeError::InvalidName { .. }) => assert!(error.to_string().starts_with(what), "{error}"),
            other => panic!("{module:?}/{feed:?}: expected InvalidName, got {other:?}"),
        }
    }
    app.export(pours("tap", "pours.daily-2")).await.expect("a valid name");
}

/// A processor named like the module's data module is told which one has the name.
#[tokio::test]
async fn a_processor_named_aggregate_is_told_the_data_module_has_that_group() {
    #[derive(Projection, Default)]
    #[projection(module = "tap", name = "aggregate", subscribe(TapEvent))]
    pub struct Aggregated;
    impl Handle<TapEvent> for Aggregated {
        fn handle(&mut self, _: &Envelope<TapEvent>) {}
    }
    let mut app = App::new(MemoryLog::shared());
    app.aggregate::<Tap>(()).await.unwrap();
    let Err(error) = app.projection(Aggregated).await else { panic!("refused") };
    let error = error.to_string();
    assert!(error.contains("`tap.aggregate`") && error.contains("the module's data module, App::aggregate"), "{error}");
}

/// A command the log refuses says which command and module it was; refused for good (its topic
/// gone), it is not worth sending again.
#[tokio::test]
async fn a_command_the_log_refuses_names_its_id_and_module() {
    let log = Arc::new(FaultyLog::over(MemoryLog::shared()).append_fails(topic_gone));
    let mut app = App::new(log).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    let pour = taps.envelope(TapCommand::Pour { id: TapId::generate() });
    let id = pour.id;
    match taps.send_envelope(pour).await {
        Err(error @ CommandError::Log { .. }) => {
            let message = error.to_string();
            assert!(!error.is_transient(), "{message}");
            assert!(message.contains(&id.to_string()) && message.contains("`tap` module"), "{message}");
            assert!(std::error::Error::source(&error).is_some_and(|e| e.to_string().contains("tap.commands")));
        }
        other => panic!("expected the log's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reaction_needs_its_modules_commands_topic_and_its_own_module() {
    let log: Arc<MemoryLog> = MemoryLog::shared();
    let mut app = App::new(log.clone()).with_settings(settings());
    app.reaction(Faulty).await.unwrap();
    // The events topic exists (created by another process, say), the commands topic does not.
    log.create_topic(&tramline::log::TopicSpec::keep(TapEvent::TOPIC, 4)).await.unwrap();
    match app.start().await {
        Err(RuntimeError::NoModule { processor, topic, .. }) => {
            assert_eq!((processor.as_str(), topic), ("tap.faulty", "tap.commands"));
        }
        other => panic!("expected NoModule, got {other:?}"),
    }

    // Written by hand: the derive refuses it at compile time.
    pub struct Meddler;
    impl Reaction for Meddler {
        const NAME: &'static str = "meddler";
        const MODULE: &'static str = "meter";
        const START: tramline::StartFrom = tramline::StartFrom::End;
        type Command = TapCommand;
        type Error = std::convert::Infallible;
        fn subscriptions() -> Vec<tramline::Subscription> {
            vec![tramline::Subscription::of::<TapEvent>()]
        }
        async fn dispatch(&self, _: &Record) -> Result<Vec<TapCommand>, tramline::DispatchError<Self::Error>> {
            Ok(Vec::new())
        }
    }
    let mut app = App::new(MemoryLog::shared());
    assert!(matches!(
        app.reaction(Meddler).await,
        Err(RuntimeError::ForeignCommands { reaction: "meddler", module: "meter", commands: "tap" })
    ));
}

#[tokio::test]
async fn callers_hear_at_once_that_a_module_stopped() {
    let mut app = App::new(MemoryLog::shared()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    app.start().await.unwrap();
    app.shutdown().await.unwrap();
    let started = std::time::Instant::now();
    let outcome = taps.send(TapCommand::Pour { id: TapId::generate() }).await;
    assert!(matches!(outcome, Err(CommandError::Stopped { module: "tap", .. })), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "not after the 10 s command timeout");
}

/// Before `App::start` nothing runs: commands, projections and `settle` say so at once instead
/// of waiting for a module that never answers, and no command is left on the log to be applied
/// later.
#[tokio::test]
async fn an_app_not_started_says_so_at_once() {
    let log = MemoryLog::shared();
    let mut app = App::new(log.clone()).with_settings(settings());
    let taps = app.aggregate::<Tap>(()).await.unwrap();
    let pours = app.projection(PourCount::default()).await.unwrap();

    let outcome = taps.send(TapCommand::Pour { id: TapId::generate() }).await;
    match outcome {
        Err(ref error @ CommandError::NotStarted { module: "tap", .. }) => {
            assert!(!error.is_transient(), "sending again cannot help: {error}");
            assert!(error.to_string().contains("App::start"), "{error}");
        }
        other => panic!("expected NotStarted, got {other:?}"),
    }
    let mut written = 0;
    for partition in 0..log.partition_count(TapCommand::TOPIC).await.unwrap().unwrap_or(0) {
        written += log.end_offset(&TopicPartition::new(TapCommand::TOPIC, partition)).await.unwrap();
    }
    assert_eq!(written, 0, "nothing was sent");
    // Bounded, so that a wait that never ends fails the test rather than hanging it.
    async fn at_once<T>(wait: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), wait).await.expect("answered at once")
    }
    let event = TopicPartition::new(TapEvent::TOPIC, 0).at(0);
    for waited in [
        at_once(app.settle()).await,
        at_once(pours.caught_up()).await,
        at_once(pours.wait_for(std::slice::from_ref(&event))).await,
    ] {
        match waited {
            Err(error @ RuntimeError::NotStarted(_)) => assert!(error.to_string().contains("App::start"), "{error}"),
            other => panic!("expected NotStarted, got {other:?}"),
        }
    }

    app.start().await.unwrap();
    let accepted = taps.send(TapCommand::Pour { id: TapId::generate() }).await.expect("accepted once started");
    pours.wait_for(&accepted.positions()).await.unwrap();
    assert_eq!(pours.read(|count| count.0), 1);
    app.settle().await.unwrap();
    app.shutdown().await.unwrap();
}

/// Two event enums of one module share its events topic: a processor that subscribes to both
/// could read that topic's records as only one of them, so it is refused, by the app and by the
/// test harnesses.
#[tokio::test]
async fn a_processor_subscribed_to_two_enums_of_one_topic_is_refused() {
    /// Events of the tap module that its aggregate does not write.
    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[event(module = "tap", key = id)]
    pub enum TapAuditEvent {
        Inspected { id: TapId },
    }
    #[derive(Default, Projection)]
    #[projection(name = "tap-inspections", subscribe(TapEvent, TapAuditEvent))]
    pub struct Inspections;
    impl Handle<TapEvent> for Inspections {
        fn handle(&mut self, _: &Envelope<TapEvent>) {}
    }
    impl Handle<TapAuditEvent> for Inspections {
        fn handle(&mut self, _: &Envelope<TapAuditEvent>) {}
    }
    let mut app = App::new(MemoryLog::shared());
    match app.projection(Inspections).await {
        Err(error @ RuntimeError::SharedTopic { processor: "tap-inspections", topic: "tap.events", .. }) => {
            let message = error.to_string();
            assert!(message.contains("TapEvent") && message.contains("TapAuditEvent"), "{message}");
        }
        Err(other) => panic!("expected SharedTopic, got {other}"),
        Ok(_) => panic!("expected SharedTopic, the projection was registered"),
    }
    let harness = std::panic::catch_unwind(|| tramline::testing::ProjectionTest::new(Inspections));
    let panic = harness.err().expect("the harness refuses it too");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("both carried on `tap.events`"), "{message}");
}
