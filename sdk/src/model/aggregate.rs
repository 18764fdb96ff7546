//! The write side of a data module: `decide` and `evolve`, pure and synchronous.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Command, Event, Message};

/// The state of one entity of a data module and the rules that change it.
///
/// `decide` turns a command into events (or a rejection) without changing anything; `evolve`
/// applies an event. Both are pure: no I/O, no clock, no log. The runtime keeps one writer per
/// entity, so `decide` always sees the latest state.
///
/// `Services` is what `decide` may consult besides the entity (a read model of another module's
/// references, say); use `()` when there is nothing. What it reads is part of the decision's
/// input but not of the log: a command decided again (after a failed write) may be decided
/// differently if the read model moved meanwhile. Keep services to facts that only grow, such
/// as "this order exists and is not cancelled".
///
/// Keep all of the state in its snapshot (JSON): the runtime holds the state in memory, but
/// restores it from the snapshot after a restart, where a field serde skips comes back as its
/// default; [`AggregateTest`](crate::testing::AggregateTest) decides on the state as its
/// snapshot restores it, so that a test shows such a loss. A snapshot written for another shape
/// of the state (a field added, removed or renamed, as the default state shows them) or another
/// [`STATE_VERSION`](Aggregate::STATE_VERSION) is not used: the entities are rebuilt from their
/// events, so a new `#[serde(default)]` field gets what the events say. The shape is read from
/// the default state only: a change inside a field that is `None` or empty there, or in an enum
/// variant other than the default one, shows in no shape; raise `STATE_VERSION` for those.
pub trait Aggregate: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The commands the module accepts.
    type Command: Command;
    /// The events the module publishes, keyed by the same reference ID as its commands.
    type Event: Event<Key = <Self::Command as Message>::Key>;
    /// Why a command is rejected.
    ///
    /// Serialisable, because a caller in another process hears the rejection through the log.
    type Error: std::error::Error + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Read-only context for `decide`.
    type Services: Send + Sync + 'static;

    /// The version of what `evolve` keeps. Raise it when `evolve` changes what it makes of the
    /// events without the state's fields changing (a total now counted in cents), so that
    /// snapshots written before are not used.
    const STATE_VERSION: u32 = 1;

    /// Decides what happens when `command` arrives at this entity in its current state.
    fn decide(&self, command: &Self::Command, services: &Self::Services) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies an event that happened to this entity.
    fn evolve(&mut self, event: &Self::Event);
}
