//! The processor loop when the log is away or the app is wrong: shutdown returns while a log
//! stays away, a reaction's start is pinned before anything else, two processors cannot share
//! a group, and a panic while restoring names its record.

mod faults;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use faults::FaultyLog;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::export::{Export, PublicEvent};
use tramline::log::{EventLog, LogError, TopicPartition, TopicSpec};
use tramline::runtime::{RuntimeError, Settings};
use tramline::{Aggregate, App, Command, Envelope, Event, MemoryLog, Message, React, Reaction, ReferenceId, codec};

fn settings() -> Settings {
    Settings { poll_timeout: Duration::from_millis(20), command_timeout: Duration::from_secs(5), ..Settings::default() }
}

// ---------------------------------------------------------------------------------------------
// A jar.

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "jar")]
pub struct JarId(uuid::Uuid);

#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[command(module = "jar", key = id)]
pub enum JarCommand {
    Fill { id: JarId },
    Crack { id: JarId },
}

#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "jar", key = id)]
pub enum JarEvent {
    Filled {
        id: JarId,
    },
    Cracked {
        id: JarId,
    },
    /// Never decided; its `evolve` panics (a bug shipped in a later version of the module).
    Shattered {
        id: JarId,
    },
}

#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
#[error("never")]
pub struct Never;

#[derive(Default, Clone, Deserialize)]
pub struct Jar {
    fills: u32,
    cracked: bool,
}

impl Serialize for Jar {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if self.cracked {
            return Err(serde::ser::Error::custom("a cracked jar cannot be written"));
        }
        let mut s = serializer.serialize_struct("Jar", 2)?;
        s.serialize_field("fills", &self.fills)?;
        s.serialize_field("cracked", &self.cracked)?;
        s.end()
    }
}

impl Aggregate for Jar {
    type Command = JarCommand;
    type Event = JarEvent;
    type Error = Never;
    type Services = ();

    fn decide(&self, command: &JarCommand, _: &()) -> Result<Vec<JarEvent>, Never> {
        match *command {
            JarCommand::Fill { id } => Ok(vec![JarEvent::Filled { id }]),
            JarCommand::Crack { id } => Ok(vec![JarEvent::Cracked { id }]),
        }
    }

    fn evolve(&mut self, event: &JarEvent) {
        match event {
            JarEvent::Filled { .. } => self.fills += 1,
            JarEvent::Cracked { .. } => self.cracked = true,
            JarEvent::Shattered { .. } => panic!("evolve cannot take a shattered jar"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A partner log that is away: every append fails (a broker down, a network partition).

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug)]
pub struct PublicFill {
    id: JarId,
}

impl PublicEvent for PublicFill {
    const NAME: &'static str = "Filled";
    const VERSION: u32 = 1;
    type Key = JarId;
    fn key(&self) -> &JarId {
        &self.id
    }
}

/// An export whose feed log stays away gives its batch up when the app shuts down: nothing of
/// it is committed, so the next start does it again.
#[tokio::test]
async fn shutdown_returns_while_an_export_feed_log_is_away() {
    let log = MemoryLog::shared();
    let mut app = App::new(log.clone()).with_settings(settings());
    let jars = app.aggregate::<Jar>(()).await.unwrap();
    let export = Export::new("jar", "fills", "Fills.")
        .publish(
            |_, event: &Envelope<JarEvent>| matches!(event.payload, JarEvent::Filled { .. }),
            |_, event| match event.payload {
                JarEvent::Filled { id } | JarEvent::Cracked { id } | JarEvent::Shattered { id } => {
                    Ok(PublicFill { id })
                }
            },
        )
        .to_log(Arc::new(
            FaultyLog::over(MemoryLog::shared())
                .append_fails(|_| Some(LogError::Backend("the partner's broker is away".into()))),
        ));
    app.export(export).await.unwrap();
    app.start().await.unwrap();
    jars.send(JarCommand::Fill { id: JarId::generate() }).await.unwrap();
    // Let the export take the batch and start retrying.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shutdown = tokio::time::timeout(Duration::from_secs(15), app.shutdown()).await;
    assert!(shutdown.is_ok(), "App::shutdown did not return within 15 s while the feed's log is away");
    for partition in 0..log.partition_count(JarEvent::TOPIC).await.unwrap().unwrap() {
        let tp = TopicPartition::new(JarEvent::TOPIC, partition);
        let committed = log.committed("jar.export.fills", &tp).await.unwrap();
        assert_eq!(committed, None, "the given-up batch is not committed: the next start does it again");
    }
}

// ---------------------------------------------------------------------------------------------
// A reaction (start = end) whose starting position could not be pinned once.

#[derive(Reaction)]
#[reaction(module = "jar", commands = JarCommand, subscribe(JarEvent))]
pub struct CountFills(Arc<AtomicU32>);

impl React<JarEvent> for CountFills {
    async fn react(&self, _: &Envelope<JarEvent>) -> Result<Vec<JarCommand>, Self::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::new())
    }
}

/// A reaction starts at the end on its first start, and resumes from its committed position
/// after that: its start is pinned before anything else, also when the first try fails, so an
/// event of a later restart's downtime reaches it.
#[tokio::test]
async fn a_reaction_whose_first_pin_fails_still_sees_what_happens_after_its_start() {
    let memory = MemoryLog::shared();
    let failed = Arc::new(AtomicBool::new(false));
    // The first write without outputs (the pin of a start-at-end reaction) fails once.
    let log = Arc::new(FaultyLog::over(memory.clone()).of_group("jar.count-fills").commit_fails({
        let failed = failed.clone();
        move |outputs, positions| {
            (outputs.is_empty() && !positions.is_empty() && !failed.swap(true, Ordering::SeqCst))
                .then(|| LogError::Backend("the write failed this once".into()))
        }
    }));
    let count = Arc::new(AtomicU32::new(0));
    // Run 1: the reaction starts at the end; its pin fails once; nothing happens; shut down.
    {
        let mut app = App::new(log.clone()).with_settings(settings());
        app.aggregate::<Jar>(()).await.unwrap();
        app.reaction(CountFills(count.clone())).await.unwrap();
        app.start().await.unwrap();
        app.settle().await.unwrap();
        app.shutdown().await.unwrap();
    }
    assert!(failed.load(Ordering::SeqCst), "the pin failed once");
    // While the process is down, a fill happens (another process of the module wrote it).
    let fill = codec::encode(&Envelope::new(JarEvent::Filled { id: JarId::generate() }, jiff::Timestamp::now()));
    memory.append(vec![fill]).await.unwrap();
    // Run 2: the reaction should see the fill.
    let mut app = App::new(log.clone()).with_settings(settings());
    app.aggregate::<Jar>(()).await.unwrap();
    app.reaction(CountFills(count.clone())).await.unwrap();
    app.start().await.unwrap();
    app.settle().await.unwrap();
    app.shutdown().await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1, "the fill that happened after the reaction's first run was skipped");
}

// ---------------------------------------------------------------------------------------------
// A log that is away for one group's member: its writes and its rewinds fail (a broker down).

/// A failed write followed by a log that stays away: the rewind is retried until the app shuts
/// down, and then shutdown returns.
#[tokio::test]
async fn shutdown_returns_while_a_failed_write_cannot_be_rewound() {
    let away = || LogError::Backend("the broker is away".into());
    let log = Arc::new(
        FaultyLog::over(MemoryLog::shared())
            .of_group("jar.aggregate")
            .commit_fails(move |_, _| Some(away()))
            .rewind_fails(away()),
    );
    let mut app = App::new(log).with_settings(settings());
    let jars = app.aggregate::<Jar>(()).await.unwrap();
    app.start().await.unwrap();
    let sent = tokio::spawn(async move { jars.send(JarCommand::Fill { id: JarId::generate() }).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shutdown = tokio::time::timeout(Duration::from_secs(15), app.shutdown()).await;
    sent.abort();
    assert!(shutdown.is_ok(), "App::shutdown did not return within 15 s");
}

// ---------------------------------------------------------------------------------------------
// Two reactions of one module with the same name (two `Notify` structs in different Rust
// modules, say): one consumer group, so each sees only part of the events.

mod mail {
    use super::*;
    #[derive(Reaction)]
    #[reaction(module = "jar", name = "notify", commands = JarCommand, subscribe(JarEvent), start = beginning)]
    pub struct Notify(pub Arc<AtomicU32>);
    impl React<JarEvent> for Notify {
        async fn react(&self, _: &Envelope<JarEvent>) -> Result<Vec<JarCommand>, Self::Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
    }
}

mod sms {
    use super::*;
    #[derive(Reaction)]
    #[reaction(module = "jar", name = "notify", commands = JarCommand, subscribe(JarEvent), start = beginning)]
    pub struct Notify(pub Arc<AtomicU32>);
    impl React<JarEvent> for Notify {
        async fn react(&self, _: &Envelope<JarEvent>) -> Result<Vec<JarCommand>, Self::Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
    }
}

/// A log whose `end_offset` fails as a broker away would while `failures`, counting every call,
/// is below 5.
fn away_while_failures_below_five(failures: &Arc<AtomicU32>) -> Arc<FaultyLog> {
    let failures = failures.clone();
    Arc::new(FaultyLog::over(MemoryLog::shared()).end_offset_fails(move || {
        (failures.fetch_add(1, Ordering::SeqCst) < 5)
            .then(|| LogError::Backend("kafka: end offset of jar.commands/0: OperationTimedOut".into()))
    }))
}

/// `settle` waits for a log that does not answer for a while (a broker restarting), as the
/// processors do, instead of failing the caller at the first timeout.
#[tokio::test]
async fn settle_waits_for_a_log_that_is_away_for_a_while() {
    // No failure until the count is reset, after the start.
    let failures = Arc::new(AtomicU32::new(u32::MAX / 2));
    let log = away_while_failures_below_five(&failures);
    let mut app = App::new(log.clone()).with_settings(settings());
    let jars = app.aggregate::<Jar>(()).await.unwrap();
    app.start().await.unwrap();
    jars.send(JarCommand::Fill { id: JarId::generate() }).await.unwrap();
    failures.store(0, Ordering::SeqCst);
    let settled = tokio::time::timeout(Duration::from_secs(20), app.settle()).await;
    assert!(matches!(settled, Ok(Ok(()))), "{settled:?}");
    assert!(failures.load(Ordering::SeqCst) > 5, "the log failed five times first");
    app.shutdown().await.unwrap();
}

/// The start, too, waits for a log that does not answer for a while (a broker restarting while
/// a module process starts) rather than failing at its first error.
#[tokio::test]
async fn start_waits_for_a_log_that_is_away_for_a_while() {
    let failures = Arc::new(AtomicU32::new(0));
    let log = away_while_failures_below_five(&failures);
    let mut app = App::new(log.clone()).with_settings(settings());
    let jars = app.aggregate::<Jar>(()).await.unwrap();
    let started = tokio::time::timeout(Duration::from_secs(20), app.start()).await;
    assert!(matches!(started, Ok(Ok(()))), "{started:?}");
    assert!(failures.load(Ordering::SeqCst) > 5, "the log failed five times first");
    jars.send(JarCommand::Fill { id: JarId::generate() }).await.unwrap();
    app.shutdown().await.unwrap();
}

/// Two processors of one module and name would share a consumer group and split its events:
/// the second is refused.
#[tokio::test]
async fn a_second_reaction_of_the_same_module_and_name_is_refused() {
    let mut app = App::new(MemoryLog::shared()).with_settings(settings());
    app.aggregate::<Jar>(()).await.unwrap();
    app.reaction(mail::Notify(Arc::new(AtomicU32::new(0)))).await.expect("the first one");
    let second = app.reaction(sms::Notify(Arc::new(AtomicU32::new(0)))).await;
    match second {
        Err(RuntimeError::DuplicateGroup(group)) => assert_eq!(group, "jar.notify"),
        other => panic!("expected DuplicateGroup, got {other:?}"),
    }
}

/// A projection of the module's with the reaction's name.
#[derive(tramline::Projection, Default)]
#[projection(module = "jar", name = "notify", subscribe(JarEvent))]
pub struct NotifiedJars(u64);

impl tramline::Handle<JarEvent> for NotifiedJars {
    fn handle(&mut self, _: &Envelope<JarEvent>) {
        self.0 += 1;
    }
}

/// A projection and a reaction of one module and name have groups of their own, but would
/// share `jar.notify.dlq`, each taking the other's letters for its own: the second is refused.
/// Two instances of one projection share it, as they fail on the same records.
#[tokio::test]
async fn a_projection_with_a_reactions_name_is_refused() {
    let mut app = App::new(MemoryLog::shared()).with_settings(settings());
    app.aggregate::<Jar>(()).await.unwrap();
    app.projection(NotifiedJars::default()).await.expect("a projection");
    app.projection(NotifiedJars::default()).await.expect("another instance of it");
    match app.reaction(mail::Notify(Arc::new(AtomicU32::new(0)))).await {
        Err(RuntimeError::DuplicateGroup(name)) => assert_eq!(name, "jar.notify"),
        other => panic!("expected DuplicateGroup, got {other:?}"),
    }
    let mut app = App::new(MemoryLog::shared()).with_settings(settings());
    app.aggregate::<Jar>(()).await.unwrap();
    app.reaction(mail::Notify(Arc::new(AtomicU32::new(0)))).await.expect("the reaction");
    match app.projection(NotifiedJars::default()).await {
        Err(RuntimeError::DuplicateGroup(name)) => assert_eq!(name, "jar.notify"),
        other => panic!("expected DuplicateGroup, got {:?}", other.err()),
    }
}

/// An `evolve` that panics on an event of the log while a partition is restored stops the
/// module with an error that says why and which record.
#[tokio::test]
async fn a_panic_while_restoring_names_its_reason_and_record() {
    let log = MemoryLog::shared();
    log.create_topic(&TopicSpec::keep(JarEvent::TOPIC, 4)).await.unwrap();
    let shattered =
        codec::encode(&Envelope::new(JarEvent::Shattered { id: JarId::generate() }, jiff::Timestamp::now()));
    log.append(vec![shattered]).await.unwrap();
    let mut app = App::new(log.clone()).with_settings(settings());
    app.aggregate::<Jar>(()).await.unwrap();
    let message = app.start().await.expect_err("the restore fails").to_string();
    assert!(
        message.contains("shattered") && message.contains("jar.events"),
        "the error should say why and which record: {message}"
    );
}
