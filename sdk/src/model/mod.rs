//! The pure domain layer: events, commands, reference IDs, envelopes, aggregates, reactions and
//! projections. Nothing here does I/O; the runtime connects these to a log.

mod aggregate;
mod clock;
mod envelope;
mod message;
mod projection;
mod reaction;
mod reference_id;

#[doc(hidden)]
pub mod reference_id_support {
    //! Functions the `ReferenceId` derive calls.
    pub use super::reference_id::{format_id, id_schema, parse_id};
}

pub use aggregate::Aggregate;
pub use clock::{Clock, SystemClock};
pub use envelope::{Envelope, Position};
pub use message::{Command, Event, Message, MessageType, Subscription, Upcaster};
pub use projection::{Handle, Projection};
pub use reaction::{DispatchError, NoCommand, NoKey, React, Reaction, StartFrom};
pub use reference_id::{ParseIdError, ReferenceId};

#[cfg(feature = "mocks")]
pub use clock::MockClock;
