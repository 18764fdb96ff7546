//! Events and commands: enums whose variants are message types, each keyed by a reference ID.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ReferenceId;

/// One message type of a message enum: `PaymentCompleted` is the variant `Completed` of
/// `PaymentEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// The type name on the log (the CloudEvents `type`): `PaymentCompleted`.
    pub name: &'static str,
    /// The enum variant it is carried by: `Completed`.
    pub variant: &'static str,
}

/// What events and commands have in common: an enum of message types owned by one module,
/// carried on one topic, each message keyed by the reference ID of the entity it is about.
///
/// Implemented by `#[derive(Event)]` and `#[derive(Command)]`; not written by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tramline message (an event or command enum)",
    note = "derive `tramline::Event` or `tramline::Command` on the module's message enum"
)]
pub trait Message: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The owning module (`payment`).
    const MODULE: &'static str;
    /// The topic the messages are carried on (`payment.events`, `payment.commands`).
    const TOPIC: &'static str;
    /// The Rust name of the enum (`PaymentEvent`), for messages and diagrams.
    const NAME: &'static str;
    /// The schema version written with every message; raised when the payload changes shape.
    const VERSION: u32;
    /// Whether a field holds personal data (`#[pii]`): the codec then seals and opens it with
    /// the key of the message's subject, its key (see [`crate::privacy`]).
    const PERSONAL: bool = false;
    /// Every message type of the enum, in declaration order.
    const TYPES: &'static [MessageType];

    /// The reference ID that keys the messages (and so picks their partition).
    type Key: ReferenceId;

    /// The type name of this message (`PaymentCompleted`).
    fn type_name(&self) -> &'static str;

    /// The entity this message is about.
    fn key(&self) -> &Self::Key;

    /// Turns the JSON payload of a record written by an older schema `version` into the current
    /// shape (an upcaster), before it is deserialised. Generated from
    /// `#[event(upcast = path::to::fn)]`; without one, older records are refused.
    fn upcast(message_type: &str, version: u32, payload: serde_json::Value) -> Result<serde_json::Value, String> {
        let _ = payload;
        Err(format!(
            "{} has no upcaster from version {version} of `{message_type}` to version {}: declare #[event(upcast = ...)]",
            Self::NAME,
            Self::VERSION
        ))
    }

    /// Whether this message forgets its entity as a data subject (`#[event(forgets)]`): its
    /// keys are deleted in the same write, and its personal data reads as erased from then on.
    fn forgets(&self) -> bool {
        false
    }

    /// The message type with this name, if the enum has one.
    fn message_type(name: &str) -> Option<&'static MessageType> {
        Self::TYPES.iter().find(|t| t.name == name)
    }
}

/// An immutable fact, in the past tense, owned by one module and published on
/// `<module>.events`.
///
/// ```
/// use tramline::{Event, ReferenceId};
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
/// #[reference(prefix = "pay")]
/// pub struct PaymentId(uuid::Uuid);
///
/// #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
/// #[event(module = "payment", key = payment_id)]
/// pub enum PaymentEvent {
///     Completed { payment_id: PaymentId },
///     #[event(rename = "PaymentVoided")]
///     Cancelled { payment_id: PaymentId, reason: String },
/// }
///
/// use tramline::Message;
/// let id = PaymentId::generate();
/// assert_eq!(PaymentEvent::Completed { payment_id: id }.type_name(), "PaymentCompleted");
/// assert_eq!(PaymentEvent::TOPIC, "payment.events");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tramline event, so nothing publishes it",
    note = "derive it on the owning module's event enum: `#[derive(tramline::Event)] #[event(module = \"...\", key = id_field)]`",
    note = "a command enum is not subscribed to: a reaction sends its module's commands, named with `commands = ...`"
)]
pub trait Event: Message {}

/// A request to a module to change one entity, sent on `<module>.commands`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tramline command",
    note = "derive it on the module's command enum: `#[derive(tramline::Command)] #[command(module = \"...\", key = id_field)]`"
)]
pub trait Command: Message {}

/// A processor's declared interest in one event enum, hence one topic. Two are equal when
/// they name the same enum (its types and upcaster come with it).
#[derive(Debug, Clone, Copy)]
pub struct Subscription {
    /// The module that publishes the events.
    pub module: &'static str,
    /// The topic they are carried on.
    pub topic: &'static str,
    /// The Rust name of the event enum.
    pub event: &'static str,
    /// The event types of the enum.
    pub types: &'static [MessageType],
    /// The schema version the enum writes ([`Message::VERSION`]).
    pub version: u32,
    /// The enum's [upcaster](Message::upcast), for a reader that does not decode into the enum.
    pub upcast: Upcaster,
    /// Whether the events carry personal data ([`Message::PERSONAL`]).
    pub personal: bool,
}

impl Subscription {
    fn identity(&self) -> (&'static str, &'static str, &'static str, u32) {
        (self.module, self.topic, self.event, self.version)
    }
}

impl PartialEq for Subscription {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for Subscription {}

impl std::hash::Hash for Subscription {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

/// A payload of an older schema version to the current shape: [`Message::upcast`] of an enum.
pub type Upcaster = fn(&str, u32, serde_json::Value) -> Result<serde_json::Value, String>;

impl Subscription {
    /// Two different event enums carried on one topic, if `subscriptions` name any: a reader
    /// takes each record of a topic as one enum, so it could not read the other's.
    pub(crate) fn sharing_a_topic(subscriptions: &[Subscription]) -> Option<(&Subscription, &Subscription)> {
        subscriptions.iter().enumerate().find_map(|(i, first)| {
            let second = subscriptions[i + 1..].iter().find(|s| s.topic == first.topic && *s != first)?;
            Some((first, second))
        })
    }

    /// The subscription to every event type of `E`.
    pub fn of<E: Event>() -> Self {
        Subscription {
            module: E::MODULE,
            topic: E::TOPIC,
            event: E::NAME,
            types: E::TYPES,
            version: E::VERSION,
            upcast: E::upcast,
            personal: E::PERSONAL,
        }
    }
}
