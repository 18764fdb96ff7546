//! Given/when/then for aggregates, reactions, projections and exports, with virtual time and no
//! log.
//!
//! Reactions, projections and exports are fed real records made by the codec, so a test runs the same
//! decode-and-dispatch path as production.
//!
//! ```
//! # use tramline::prelude::*;
//! # use tramline::testing::AggregateTest;
//! # use serde::{Deserialize, Serialize};
//! # use schemars::JsonSchema;
//! # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "lmp")] pub struct LampId(uuid::Uuid);
//! # #[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug)] #[command(module = "lamp", key = id)]
//! # pub enum LampCommand { SwitchOn { id: LampId } }
//! # #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)] #[event(module = "lamp", key = id)]
//! # pub enum LampEvent { SwitchedOn { id: LampId } }
//! # #[derive(Debug, thiserror::Error, PartialEq, serde::Serialize, serde::Deserialize)] #[error("already on")] pub struct AlreadyOn;
//! # #[derive(Default, Clone, Serialize, Deserialize)] pub struct Lamp { on: bool }
//! # impl Aggregate for Lamp {
//! #     type Command = LampCommand; type Event = LampEvent; type Error = AlreadyOn; type Services = ();
//! #     fn decide(&self, c: &LampCommand, _: &()) -> Result<Vec<LampEvent>, AlreadyOn> {
//! #         let LampCommand::SwitchOn { id } = *c;
//! #         if self.on { Err(AlreadyOn) } else { Ok(vec![LampEvent::SwitchedOn { id }]) }
//! #     }
//! #     fn evolve(&mut self, _: &LampEvent) { self.on = true }
//! # }
//! let id = LampId::generate();
//! AggregateTest::<Lamp>::new()
//!     .given([LampEvent::SwitchedOn { id }])
//!     .when(LampCommand::SwitchOn { id })
//!     .then_rejected_with(AlreadyOn);
//! ```

mod aggregate;
mod clock;
pub mod conformance;
mod export;
#[cfg(feature = "kafka")]
pub mod kafka;
mod projection;
mod reaction;

pub use aggregate::{AggregateTest, Decided};
pub use clock::VirtualClock;
pub use export::{ExportTest, Exported};
pub use projection::ProjectionTest;
pub use reaction::{Reacted, ReactionTest};

use std::sync::{Arc, OnceLock};

use crate::codec;
use crate::log::Record;
use crate::model::{Envelope, Message};
use crate::privacy::KeyStore;

/// The key store of the test harnesses: keys in memory, shared by every test of the process, so
/// that what [`record_of`] seals the harnesses open.
pub fn keys() -> &'static KeyStore {
    static KEYS: OnceLock<KeyStore> = OnceLock::new();
    KEYS.get_or_init(KeyStore::in_memory)
}

/// The record the codec makes of an envelope, as if read at `offset` of partition 0. Personal
/// data is sealed with the harnesses' [`keys`].
pub fn record_of<M: Message>(envelope: &Envelope<M>, offset: u64) -> Record {
    let out = keys().scope(|| codec::encode(envelope));
    Record {
        topic: Arc::clone(&out.topic),
        partition: out.partition.unwrap_or(0),
        offset,
        key: out.key,
        value: out.value,
        headers: out.headers,
        timestamp: out.timestamp.unwrap_or_default(),
    }
}
