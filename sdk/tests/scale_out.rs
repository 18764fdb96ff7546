//! One data module in two processes, each an instance of its consumer group that owns some of its
//! partitions (DESIGN.md, "Scaling out"), simulated by two apps on one memory log: every caller
//! hears its outcome whichever instance owns the command's partition, and both apps start and
//! settle. A module in one process publishes no replies.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::log::{EventLog, TopicPartition, partition_for};
use tramline::runtime::{CommandError, CommandGateway, Settings};
use tramline::{Aggregate, App, Command, Envelope, Event, MemoryLog, React, Reaction, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "ctr")]
pub struct CounterId(uuid::Uuid);

#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[command(module = "counter", key = id)]
pub enum CounterCommand {
    Add {
        id: CounterId,
    },
    /// Always rejected.
    Refuse {
        id: CounterId,
    },
}

#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "counter", key = id)]
pub enum CounterEvent {
    Added { id: CounterId, count: u32 },
}

#[derive(Debug, thiserror::Error, Serialize, Deserialize, PartialEq)]
#[error("refused")]
pub struct Refused;

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Counter {
    count: u32,
}

impl Aggregate for Counter {
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = Refused;
    type Services = ();

    fn decide(&self, command: &CounterCommand, _: &()) -> Result<Vec<CounterEvent>, Refused> {
        match *command {
            CounterCommand::Add { id } => Ok(vec![CounterEvent::Added { id, count: self.count + 1 }]),
            CounterCommand::Refuse { .. } => Err(Refused),
        }
    }

    fn evolve(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Added { count, .. } => self.count = *count,
        }
    }
}

/// Sends a command nobody waits for on every addition (the module rejects it).
#[derive(Reaction)]
#[reaction(module = "counter", commands = CounterCommand, subscribe(CounterEvent))]
pub struct Echo;

impl React<CounterEvent> for Echo {
    async fn react(&self, event: &Envelope<CounterEvent>) -> Result<Vec<CounterCommand>, Self::Error> {
        let CounterEvent::Added { id, .. } = event.payload;
        Ok(vec![CounterCommand::Refuse { id }])
    }
}

const PARTITIONS: u32 = 4;

fn settings() -> Settings {
    Settings {
        partitions: PARTITIONS,
        poll_timeout: Duration::from_millis(20),
        // An outcome that never comes fails the test in seconds rather than 30.
        command_timeout: Duration::from_secs(5),
        ..Settings::default()
    }
}

/// Fails the test instead of hanging.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A process that runs the counter module (not started).
async fn process(log: &Arc<MemoryLog>) -> (App, CommandGateway<Counter>) {
    let mut app = App::new(log.clone()).with_settings(settings()).run_only(["counter"]);
    let counters = app.aggregate::<Counter>(()).await.expect("registered");
    app.reaction(Echo).await.expect("registered");
    (app, counters)
}

/// One counter per partition of the commands topic, so that each instance owns some.
fn one_per_partition() -> Vec<CounterId> {
    let mut ids: Vec<Option<CounterId>> = vec![None; PARTITIONS as usize];
    while ids.iter().any(Option::is_none) {
        let id = CounterId::generate();
        ids[partition_for(id.to_string().as_bytes(), PARTITIONS) as usize].get_or_insert(id);
    }
    ids.into_iter().flatten().collect()
}

/// Adds one to each counter through `gateway` and checks each outcome.
async fn add_to_each(gateway: &CommandGateway<Counter>, ids: &[CounterId], count: u32) {
    let outcomes = join_all(ids.iter().map(|&id| gateway.send(CounterCommand::Add { id }))).await;
    for (id, outcome) in ids.iter().zip(outcomes) {
        let accepted = outcome.unwrap_or_else(|error| panic!("adding to {id}: {error}"));
        assert_eq!(accepted.events.len(), 1, "the event of {id}");
        assert_eq!(accepted.events[0].payload, CounterEvent::Added { id: *id, count });
    }
}

async fn records_on(log: &dyn EventLog, topic: &str) -> u64 {
    let mut count = 0;
    for partition in 0..log.partition_count(topic).await.unwrap().unwrap_or(0) {
        count += log.end_offset(&TopicPartition::new(topic, partition)).await.unwrap();
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_hears_its_outcome_whichever_instance_owns_the_partition() {
    let log = MemoryLog::shared();
    let (mut first, first_counters) = process(&log).await;
    within("the first instance to start", first.start()).await.expect("started");
    let (mut second, second_counters) = process(&log).await;
    within("the second instance to start", second.start()).await.expect("started");
    let ids = one_per_partition();

    // Each process's callers: half of their commands are decided by the other process.
    add_to_each(&first_counters, &ids, 1).await;
    add_to_each(&second_counters, &ids, 2).await;

    // A repeat is answered as a duplicate, and a rejection with the module's error, wherever.
    for gateway in [&first_counters, &second_counters] {
        for &id in &ids {
            let envelope = gateway.envelope(CounterCommand::Add { id });
            assert!(!gateway.send_envelope(envelope.clone()).await.expect("accepted").duplicate);
            assert!(gateway.send_envelope(envelope).await.expect("a duplicate").duplicate);
            match gateway.send(CounterCommand::Refuse { id }).await {
                Err(CommandError::Rejected(Refused)) => {}
                other => panic!("expected a rejection for {id}, got {other:?}"),
            }
        }
    }

    within("the first instance to settle", first.settle()).await.expect("settled");
    within("the second instance to settle", second.settle()).await.expect("settled");
    second.shutdown().await.expect("a clean shutdown");
    first.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_starts_and_both_settle() {
    let log = MemoryLog::shared();
    let (mut first, first_counters) = process(&log).await;
    within("the first instance to start", first.start()).await.expect("started");
    let ids = one_per_partition();
    add_to_each(&first_counters, &ids, 1).await;

    // Every partition has commands now, and the second instance gets only some of them.
    let (mut second, second_counters) = process(&log).await;
    within("the second instance to start", second.start()).await.expect("started");
    within("the first instance to settle", first.settle()).await.expect("settled");
    within("the second instance to settle", second.settle()).await.expect("settled");

    add_to_each(&second_counters, &ids, 2).await;
    within("the first instance to settle again", first.settle()).await.expect("settled");
    within("the second instance to settle again", second.settle()).await.expect("settled");
    second.shutdown().await.expect("a clean shutdown");
    first.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_in_one_process_publishes_no_replies() {
    let log = MemoryLog::shared();
    let (mut app, counters) = process(&log).await;
    within("the app to start", app.start()).await.expect("started");
    let ids = one_per_partition();
    add_to_each(&counters, &ids, 1).await;
    let envelope = counters.envelope(CounterCommand::Add { id: ids[0] });
    counters.send_envelope(envelope.clone()).await.expect("accepted");
    assert!(counters.send_envelope(envelope).await.expect("a duplicate").duplicate);
    assert!(counters.send(CounterCommand::Refuse { id: ids[0] }).await.is_err());
    within("the app to settle", app.settle()).await.expect("settled");

    // Seven commands from callers, and five the reaction sent (one per addition) with nobody
    // waiting, which the module rejected.
    assert_eq!(records_on(&*log, "counter.commands").await, 7 + 5);
    assert_eq!(records_on(&*log, "counter.replies").await, 0, "every caller was answered in memory");
    app.shutdown().await.expect("a clean shutdown");
}
