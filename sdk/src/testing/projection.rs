//! Given events, then the read model.

use super::{VirtualClock, record_of};
use crate::codec::DecodeError;
use crate::model::{Clock, Envelope, Event, Projection};

/// A test of one projection, fed events through the codec.
pub struct ProjectionTest<P: Projection> {
    projection: P,
    clock: VirtualClock,
    offset: u64,
}

impl<P: Projection + Default> Default for ProjectionTest<P> {
    fn default() -> Self {
        Self::new(P::default())
    }
}

impl<P: Projection> ProjectionTest<P> {
    /// Tests this projection, at virtual time. Panics, as `App::projection` refuses it, when the
    /// projection subscribes to two event enums carried on one topic.
    #[track_caller]
    pub fn new(projection: P) -> Self {
        if let Err(error) = crate::runtime::RuntimeError::check_topics(P::NAME, &P::subscriptions()) {
            panic!("{error}");
        }
        ProjectionTest { projection, clock: VirtualClock::default(), offset: 0 }
    }

    /// The virtual clock that stamps the events.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Folds one event.
    #[track_caller]
    pub fn given<E: Event>(mut self, event: E) -> Self {
        let envelope = Envelope::new(event, self.clock.now());
        if let Err(error) = self.try_given(&envelope) {
            panic!("the projection could not take the event: {error}");
        }
        self
    }

    /// Folds one event in a given envelope (its ids, times and lineage; the record says the
    /// event's current version, whatever the envelope's `version`: an upcaster is tested on its
    /// own, as a function of JSON); returns the decode error if the record is rejected.
    pub fn try_given<E: Event>(&mut self, envelope: &Envelope<E>) -> Result<(), DecodeError> {
        let record = record_of(envelope, self.offset);
        self.offset += 1;
        super::keys().scope(|| self.projection.apply(&record))
    }

    /// Checks the read model.
    pub fn then(self, check: impl FnOnce(&P)) -> Self {
        check(&self.projection);
        self
    }

    /// The read model.
    pub fn into_inner(self) -> P {
        self.projection
    }
}
