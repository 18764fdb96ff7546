//! Given events, when a command, then events or a rejection.

use std::fmt::Debug;

use crate::model::{Aggregate, Message};

/// A test of one entity: its history, then one command.
pub struct AggregateTest<A: Aggregate> {
    state: A,
    services: A::Services,
}

impl<A: Aggregate> AggregateTest<A>
where
    A::Services: Default,
{
    /// A fresh entity with default services.
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
    /// A fresh entity with these services.
    pub fn with_services(services: A::Services) -> Self {
        AggregateTest { state: A::default(), services }
    }

    /// The entity's history.
    pub fn given(mut self, events: impl IntoIterator<Item = A::Event>) -> Self {
        for event in events {
            self.state.evolve(&event);
        }
        self
    }

    /// Decides one command. Like the runtime, it refuses events for another entity than the
    /// command's.
    #[track_caller]
    pub fn when(self, command: A::Command) -> Decided<A> {
        let result = self.state.decide(&command, &self.services);
        if let Ok(events) = &result
            && let Some(stray) = events.iter().find(|e| e.key() != command.key())
        {
            panic!(
                "decide returned an event for {} while handling a command for {}: an entity may only change itself (the runtime dead-letters such a command)",
                stray.key(),
                command.key()
            );
        }
        let mut state = self.state;
        if let Ok(events) = &result {
            for event in events {
                state.evolve(event);
            }
        }
        Decided { result, state, services: self.services }
    }
}

/// What `decide` returned, to check.
pub struct Decided<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
    state: A,
    services: A::Services,
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

    /// Checks the entity's state after the events were applied.
    pub fn then_state(self, check: impl FnOnce(&A)) -> Self {
        check(&self.state);
        self
    }

    /// Continues with another command on the resulting state.
    pub fn and_when(self, command: A::Command) -> Decided<A> {
        AggregateTest { state: self.state, services: self.services }.when(command)
    }

    /// The raw result.
    pub fn into_result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
