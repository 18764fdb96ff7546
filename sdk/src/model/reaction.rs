//! Reactions: listen to events (any module's) and issue commands to their own module, or perform
//! a side effect.

use std::future::Future;

use super::{Command, Envelope, Event, Message, MessageType, Subscription};
use crate::codec::DecodeError;
use crate::log::Record;

pub use crate::log::StartFrom;

/// A policy of a module: events in, commands out.
///
/// Derive it, naming the module, the command type and the subscriptions once, and implement
/// [`React<E>`] for each subscribed event enum:
///
/// ```
/// # use tramline::{Command, Event, ReferenceId, React, Reaction, Envelope};
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "ord")] pub struct OrderId(uuid::Uuid);
/// # #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)] #[event(module = "payment", key = order_id)]
/// # pub enum PaymentEvent { Completed { order_id: OrderId } }
/// # #[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug)] #[command(module = "order", key = order_id)]
/// # pub enum OrderCommand { Confirm { order_id: OrderId } }
/// #[derive(Reaction)]
/// #[reaction(module = "order", commands = OrderCommand, subscribe(PaymentEvent))]
/// pub struct ConfirmPaidOrders;
///
/// impl React<PaymentEvent> for ConfirmPaidOrders {
///     async fn react(&self, event: &Envelope<PaymentEvent>) -> Result<Vec<OrderCommand>, Self::Error> {
///         let PaymentEvent::Completed { order_id } = &event.payload;
///         Ok(vec![OrderCommand::Confirm { order_id: *order_id }])
///     }
/// }
/// ```
///
/// On its first start a reaction begins at the end of the log (a late-joining module does not
/// re-send old e-mails) unless it declares `start = beginning`; afterwards it resumes from its
/// committed position. Commands it returns are written atomically with its input position.
pub trait Reaction: Send + Sync + 'static {
    /// The reaction's name, unique within its module (`confirm-paid-orders`).
    const NAME: &'static str;
    /// The module it belongs to; its consumer group is `<module>.<name>`.
    const MODULE: &'static str;
    /// Where it starts on its first run.
    const START: StartFrom;
    /// The commands it issues ([`NoCommand`] for side effects only).
    type Command: Command;
    /// Why handling an event failed (retried, then dead-lettered).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The event enums it listens to.
    fn subscriptions() -> Vec<Subscription>;

    /// Decodes a record of a subscribed topic and calls the matching [`React`] impl. Generated.
    fn dispatch(
        &self,
        record: &Record,
    ) -> impl Future<Output = Result<Vec<Self::Command>, DispatchError<Self::Error>>> + Send;
}

/// How a [`Reaction`] handles one subscribed event enum.
pub trait React<E: Event>: Reaction {
    /// Handles one event. `event.id` is the idempotency key for side effects.
    fn react(&self, event: &Envelope<E>) -> impl Future<Output = Result<Vec<Self::Command>, Self::Error>> + Send;
}

/// Why a record could not be dispatched to a handler.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError<E> {
    /// The record could not be decoded; it is dead-lettered at once.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The handler failed; it is retried, then dead-lettered.
    #[error("handler failed: {0}")]
    Handler(E),
}

/// The command type of a reaction that only performs side effects: it has no values.
///
/// It is what `#[derive(Reaction)]` declares when the attribute names no `commands = ...`. A
/// compile error that expected `NoCommand` where your reaction returns commands means that the
/// attribute does not name them: `#[reaction(module = "order", commands = OrderCommand, ...)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NoCommand {}

/// The key type of [`NoCommand`]; it is never constructed.
///
/// Its `ReferenceId` is written out rather than derived, to be marked `do_not_recommend`: a
/// compile error about a key that is not a reference ID would otherwise offer it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoKey(uuid::Uuid);

#[diagnostic::do_not_recommend]
impl crate::ReferenceId for NoKey {
    const PREFIX: &'static str = "none";
    const NAME: &'static str = "NoKey";

    fn from_uuid(uuid: uuid::Uuid) -> Self {
        NoKey(uuid)
    }

    fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }
}

impl std::fmt::Display for NoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::reference_id::format_id("none", &self.0, f)
    }
}

impl std::fmt::Debug for NoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for NoKey {
    type Err = super::ParseIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        super::reference_id::parse_id("NoKey", "none", text).map(NoKey)
    }
}

impl serde::Serialize for NoKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for NoKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for NoKey {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NoKey".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        super::reference_id::id_schema("NoKey", "none")
    }
}

#[diagnostic::do_not_recommend]
impl Message for NoCommand {
    const MODULE: &'static str = "none";
    const TOPIC: &'static str = "none.commands";
    const NAME: &'static str = "NoCommand";
    const VERSION: u32 = 1;
    const TYPES: &'static [MessageType] = &[];
    type Key = NoKey;
    fn type_name(&self) -> &'static str {
        match *self {}
    }
    fn key(&self) -> &NoKey {
        match *self {}
    }
}

#[diagnostic::do_not_recommend]
impl Command for NoCommand {}
