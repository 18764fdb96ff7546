//! When an event, then commands.

use std::fmt::Debug;

use super::{VirtualClock, record_of};
use crate::model::{Clock, DispatchError, Envelope, Event, Reaction};

/// A test of one reaction, fed events through the codec.
pub struct ReactionTest<R: Reaction> {
    reaction: R,
    clock: VirtualClock,
    offset: u64,
}

impl<R: Reaction> ReactionTest<R> {
    /// Tests this reaction, at virtual time. Panics, as `App::reaction` refuses it, when the
    /// reaction subscribes to two event enums carried on one topic or sends another module's
    /// commands.
    #[track_caller]
    pub fn new(reaction: R) -> Self {
        use crate::runtime::RuntimeError;
        let refused = RuntimeError::check_topics(R::NAME, &R::subscriptions())
            .and_then(|()| RuntimeError::check_own_commands::<R>());
        if let Err(error) = refused {
            panic!("{error}");
        }
        ReactionTest { reaction, clock: VirtualClock::default(), offset: 0 }
    }

    /// The virtual clock that stamps the events.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// The reaction under test.
    pub fn reaction(&self) -> &R {
        &self.reaction
    }

    /// Dispatches one event, as the runtime would.
    pub async fn when<E: Event>(&mut self, event: E) -> Reacted<R> {
        let envelope = Envelope::new(event, self.clock.now());
        self.when_envelope(&envelope).await
    }

    /// Dispatches one event in a given envelope (its ids, times and lineage; the record says
    /// the event's current version, whatever the envelope's `version`).
    pub async fn when_envelope<E: Event>(&mut self, envelope: &Envelope<E>) -> Reacted<R> {
        let record = record_of(envelope, self.offset);
        self.offset += 1;
        Reacted { result: super::keys().clone().scope_async(self.reaction.dispatch(&record)).await }
    }
}

/// What a reaction returned, to check.
pub struct Reacted<R: Reaction> {
    result: Result<Vec<R::Command>, DispatchError<R::Error>>,
}

impl<R: Reaction> Reacted<R> {
    /// Asserts that the reaction issued exactly these commands.
    #[track_caller]
    pub fn then_commands(self, expected: impl IntoIterator<Item = R::Command>) -> Self
    where
        R::Command: PartialEq,
    {
        let expected: Vec<R::Command> = expected.into_iter().collect();
        match &self.result {
            Ok(commands) => assert_eq!(commands, &expected, "the reaction issued other commands"),
            Err(error) => panic!("expected commands {expected:?}, but the reaction failed: {error}"),
        }
        self
    }

    /// Asserts that the reaction issued nothing.
    #[track_caller]
    pub fn then_nothing(self) -> Self {
        match &self.result {
            Ok(commands) => assert!(commands.is_empty(), "expected no commands, got {commands:?}"),
            Err(error) => panic!("expected no commands, but the reaction failed: {error}"),
        }
        self
    }

    /// Asserts that the handler failed.
    #[track_caller]
    pub fn then_failed(self) -> Self
    where
        R::Error: Debug,
    {
        match &self.result {
            Err(DispatchError::Handler(_)) => {}
            Ok(commands) => panic!("expected the handler to fail, but it issued {commands:?}"),
            Err(error) => panic!("expected the handler to fail, but the event was not dispatched: {error}"),
        }
        self
    }

    /// The raw result.
    pub fn into_result(self) -> Result<Vec<R::Command>, DispatchError<R::Error>> {
        self.result
    }
}
