//! Given events, when a command, then events or a rejection.

use std::collections::HashMap;
use std::fmt::Debug;
use std::panic::AssertUnwindSafe;

use super::keys;
use crate::codec;
use crate::model::{Aggregate, Envelope, Message};
use crate::privacy;

/// The key of the entities of `A`.
type Key<A> = <<A as Aggregate>::Command as Message>::Key;

/// A test of an aggregate: the history of its entities, then commands, each decided as the
/// runtime decides it: on its own entity's state, its events encoded by the codec, and the
/// entity's state afterwards as its snapshot restores it.
pub struct AggregateTest<A: Aggregate> {
    entities: HashMap<Key<A>, A>,
    services: A::Services,
}

impl<A: Aggregate> AggregateTest<A>
where
    A::Services: Default,
{
    /// Fresh entities with default services. Panics, as `App::aggregate` refuses it, when the
    /// commands and events name different modules.
    #[track_caller]
    pub fn new() -> Self {
        Self::with_services(A::Services::default())
    }
}

impl<A: Aggregate> Default for AggregateTest<A>
where
    A::Services: Default,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Aggregate> AggregateTest<A> {
    /// Fresh entities with these services. Panics as [`AggregateTest::new`] does.
    #[track_caller]
    pub fn with_services(services: A::Services) -> Self {
        if let Err(error) = crate::runtime::RuntimeError::check_one_module::<A>() {
            panic!("{error}");
        }
        AggregateTest { entities: HashMap::new(), services }
    }

    /// The history: each event is applied to the state of its own entity, which is then kept
    /// as its snapshot restores it (as after the command that made the event).
    #[track_caller]
    pub fn given(mut self, events: impl IntoIterator<Item = A::Event>) -> Self {
        for event in events {
            let key = event.key().clone();
            let state = self.entities.entry(key.clone()).or_default();
            state.evolve(&event);
            *state = snapshotted(&key, state, "after the given event");
        }
        self
    }

    /// Decides one command on the state of its entity. Like the runtime, it refuses events for
    /// another entity than the command's, events the codec cannot encode, and a state that
    /// cannot be snapshotted: the runtime dead-letters such a command, so the test panics.
    #[track_caller]
    pub fn when(mut self, command: A::Command) -> Decided<A> {
        let key = command.key().clone();
        let state = self.entities.remove(&key).unwrap_or_default();
        let result = state.decide(&command, &self.services);
        let mut next = state.clone();
        if let Ok(events) = &result {
            if let Some(stray) = events.iter().find(|e| e.key() != &key) {
                panic!(
                    "decide returned an event for {} while handling a command for {key}: an entity may only change itself (the runtime dead-letters such a command)",
                    stray.key()
                );
            }
            for event in events {
                encoded(event);
                next.evolve(event);
            }
            next = snapshotted(&key, &next, "after the command");
        }
        self.entities.insert(key.clone(), next);
        Decided { result, key, test: self }
    }
}

/// Encodes an event as the runtime writes it, or panics saying why it cannot be.
#[track_caller]
fn encoded<E: crate::model::Event + Clone>(event: &E) {
    let envelope = Envelope::new(event.clone(), jiff::Timestamp::UNIX_EPOCH);
    let encoding = std::panic::catch_unwind(AssertUnwindSafe(|| {
        keys().scope(|| {
            let record = codec::encode(&envelope);
            codec::check_reads_back(event, &record)
        })
    }));
    let problem = match encoding {
        Ok(Ok(())) => return,
        Ok(Err(reason)) => reason,
        Err(panic) => crate::runtime::panic_message(&*panic).to_string(),
    };
    panic!("the codec cannot encode the event {event:?} (the runtime dead-letters the command): {problem}");
}

/// The state as its snapshot restores it (JSON, personal data sealed), or a panic saying why
/// it cannot be snapshotted.
#[track_caller]
fn snapshotted<A: Aggregate>(key: &Key<A>, state: &A, when: &str) -> A {
    let subject = key.to_string();
    let restored = keys().scope(|| {
        let (json, _) = privacy::sealing(&subject, || serde_json::to_vec(state));
        json.and_then(|json| privacy::opening_state(&subject, || serde_json::from_slice(&json)))
    });
    restored.unwrap_or_else(|error| {
        panic!(
            "the state of {key} {when} cannot be snapshotted as JSON (the runtime dead-letters a command that leaves it so): {error}"
        )
    })
}

/// What `decide` returned, to check.
pub struct Decided<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
    /// The entity of the command.
    key: Key<A>,
    test: AggregateTest<A>,
}

impl<A: Aggregate> Decided<A> {
    /// Asserts that the command was accepted with exactly these events.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = A::Event>) -> Self
    where
        A::Event: PartialEq,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match &self.result {
            Ok(events) => assert_eq!(events, &expected, "the command produced other events"),
            Err(error) => panic!("expected events {expected:?}, but the command was rejected: {error}"),
        }
        self
    }

    /// Asserts that the command was rejected with this error.
    #[track_caller]
    pub fn then_rejected_with(self, expected: A::Error) -> Self
    where
        A::Error: PartialEq + Debug,
    {
        match &self.result {
            Ok(events) => panic!("expected the rejection {expected:?}, but the command produced {events:?}"),
            Err(error) => assert_eq!(error, &expected, "the command was rejected with another error"),
        }
        self
    }

    /// Asserts that the command was rejected, and that the error's message contains `text`.
    #[track_caller]
    pub fn then_rejected_saying(self, text: &str) -> Self {
        match &self.result {
            Ok(events) => panic!("expected a rejection saying {text:?}, but the command produced {events:?}"),
            Err(error) => {
                let message = error.to_string();
                assert!(message.contains(text), "the rejection says {message:?}, not {text:?}");
            }
        }
        self
    }

    /// Checks the state of the command's entity after its events were applied (as its
    /// snapshot restores it).
    pub fn then_state(self, check: impl FnOnce(&A)) -> Self {
        check(&self.test.entities[&self.key]);
        self
    }

    /// Continues with another command, on the state of its own entity.
    #[track_caller]
    pub fn and_when(self, command: A::Command) -> Decided<A> {
        self.test.when(command)
    }

    /// The raw result.
    pub fn into_result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
