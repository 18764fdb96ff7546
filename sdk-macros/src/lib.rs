//! Derive macros of `tramline`: reference IDs, events, commands,
//! reactions and projections. Use them through `tramline` (`use tramline::prelude::*`), whose
//! paths the generated code names.
//!
//! | derive | on | attribute |
//! |---|---|---|
//! | [`ReferenceId`] | `struct OrderId(Uuid);` | `#[reference(prefix = "ord")]` |
//! | [`Event`] | an enum with named fields | `#[event(module = "order", key = order_id)]` |
//! | [`Command`] | an enum with named fields | `#[command(module = "order", key = order_id)]` |
//! | [`Reaction`] | a struct | `#[reaction(module = "order", subscribe(PaymentEvent))]` |
//! | [`Projection`] | a struct | `#[projection(subscribe(OrderEvent))]` |
//!
//! A misuse is a compile error at the offending token that says what to write instead.
//!
//! The generated code finds tramline under the name the user's Cargo.toml gives it (also when
//! renamed with `package = "tramline"`). A crate that reaches tramline only through another
//! crate's re-export names the path in any of the attributes: `crate = "my_sdk::tramline"`,
//! as serde's `#[serde(crate = "...")]`.
#![warn(missing_docs)]

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::DeriveInput;

use crate::ast::Kind;

/// Implements `tramline::ReferenceId` on a newtype over `uuid::Uuid`, with its text form
/// `<prefix>_<32 lowercase hex digits>` as `Display`, `Debug`, `FromStr`, serde (a string) and
/// JSON Schema (a string with that pattern).
///
/// `prefix` (required) is 1 to 8 lowercase letters or digits, starting with a letter. Derive
/// `Clone`, `Copy`, `PartialEq`, `Eq`, `Hash` (required by the trait), `PartialOrd` and `Ord`
/// yourself.
///
/// ```
/// use tramline::ReferenceId;
///
/// #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
/// #[reference(prefix = "ord")]
/// pub struct OrderId(uuid::Uuid);
///
/// let id: OrderId = "ord_0193b1a2c3d47e8f9a0b1c2d3e4f5a6b".parse().unwrap();
/// assert_eq!(id.to_string(), "ord_0193b1a2c3d47e8f9a0b1c2d3e4f5a6b");
/// assert!("pay_0193b1a2c3d47e8f9a0b1c2d3e4f5a6b".parse::<OrderId>().is_err());
/// ```
#[proc_macro_derive(ReferenceId, attributes(reference))]
pub fn derive_reference_id(input: TokenStream) -> TokenStream {
    derive(input, ast::ReferenceId::from_syn, valid::reference_id, expand::reference_id, |id| id.krate.as_ref())
}

/// Implements `tramline::Message` and `tramline::Event` on a module's event enum: one variant,
/// with named fields, per event type.
///
/// - `module` (required): the owning module; the events go on the topic `<module>.events`.
/// - `key` (required): the field, present in every variant with the same `ReferenceId` type, that
///   names the entity the event is about.
/// - `version` (default 1): the payload's schema version.
/// - `upcast` (optional): a `fn(message_type: &str, version: u32, payload: serde_json::Value) ->
///   Result<serde_json::Value, String>` that turns the JSON payload of an older version into the
///   current shape when a record is read. Without it, a record of an older version is not read
///   (it is dead-lettered with the reason).
///
/// Personal data: a field that holds `tramline::privacy::Personal<T>` is marked `#[pii]`; its
/// personal data is sealed with the key of the message's subject, the entity it is keyed by,
/// whenever it is written. A field whose type shows `Personal` without the marker is an error;
/// mark also a field whose `Personal` data the derive cannot see (a type alias; a struct of
/// yours holding it, which implements `tramline::privacy::HoldsPersonal`), or encoding it
/// panics. A marked field whose type holds no personal data is an error too. `#[event(forgets)]` on a variant makes that event
/// forget its subject: its keys are deleted in the same write, and its personal data reads as
/// erased from then on (see `tramline::privacy`).
///
/// An event type is named after the enum without its `Event` suffix, then the variant
/// (`PaymentEvent::Completed` is `PaymentCompleted`); `#[event(rename = "...")]` on a variant
/// names it otherwise, with a letter, then letters, digits or `_`. Do not rename, tag, skip or
/// convert variants with serde (a compile error): the codec writes a variant's fields only and
/// finds the variant by its Rust name.
///
/// ```
/// use tramline::{Event, Message, ReferenceId};
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
/// # #[reference(prefix = "pay")]
/// # pub struct PaymentId(uuid::Uuid);
///
/// #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
/// #[event(module = "payment", key = payment_id, version = 2)]
/// pub enum PaymentEvent {
///     Completed { payment_id: PaymentId, cents: u64 },
///     #[event(rename = "PaymentVoided")]
///     Cancelled { payment_id: PaymentId, reason: String },
/// }
///
/// assert_eq!(PaymentEvent::TOPIC, "payment.events");
/// assert_eq!(PaymentEvent::TYPES[1].name, "PaymentVoided");
/// ```
#[proc_macro_derive(Event, attributes(event, pii))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    derive(
        input,
        |input| ast::Message::from_syn(input, Kind::Event),
        valid::message,
        expand::message,
        |message| message.krate.as_ref(),
    )
}

/// Implements `tramline::Message` and `tramline::Command` on a module's command enum: one
/// variant, with named fields, per command type.
///
/// The attribute is the one of [`Event`] (`module`, `key`, `version`, `upcast`, `rename` on a
/// variant, and `#[pii]` on fields; only events take `forgets`); the commands go on the topic `<module>.commands`, and a command type is named after
/// the variant, then the enum without its `Command` suffix (`PaymentCommand::Create` is
/// `CreatePayment`).
///
/// ```
/// use tramline::{Command, Message, ReferenceId};
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
/// # #[reference(prefix = "pay")]
/// # pub struct PaymentId(uuid::Uuid);
///
/// #[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug)]
/// #[command(module = "payment", key = payment_id)]
/// pub enum PaymentCommand {
///     Create { payment_id: PaymentId, cents: u64 },
/// }
///
/// assert_eq!(PaymentCommand::TOPIC, "payment.commands");
/// assert_eq!(PaymentCommand::TYPES[0].name, "CreatePayment");
/// ```
#[proc_macro_derive(Command, attributes(command, pii))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    derive(
        input,
        |input| ast::Message::from_syn(input, Kind::Command),
        valid::message,
        expand::message,
        |message| message.krate.as_ref(),
    )
}

/// Implements `tramline::Reaction` on a struct; implement `tramline::React<E>` for each
/// subscribed event enum `E`.
///
/// - `module` (required): the module the reaction belongs to.
/// - `subscribe(E, ...)` (required): the event enums it reacts to.
/// - `commands` (default `tramline::NoCommand`): the command enum of the commands it issues.
/// - `error` (default `std::convert::Infallible`): the error of its `React` impls.
/// - `name` (default: the struct's name in kebab case): unique within the module.
/// - `start = beginning` or `start = end` (the default): where it starts on its first run.
///
/// ```
/// use tramline::{Envelope, React, Reaction};
/// # use tramline::{Command, Event, ReferenceId};
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "ord")] pub struct OrderId(uuid::Uuid);
/// # #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)] #[event(module = "payment", key = order_id)]
/// # pub enum PaymentEvent { Completed { order_id: OrderId } }
/// # #[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug)] #[command(module = "order", key = order_id)]
/// # pub enum OrderCommand { Confirm { order_id: OrderId } }
/// # #[derive(Debug, thiserror::Error)] #[error("provider down")] pub struct ProviderError;
///
/// #[derive(Reaction)]
/// #[reaction(
///     module = "order",
///     commands = OrderCommand,
///     error = ProviderError,
///     name = "confirm-paid-orders",
///     start = beginning,
///     subscribe(PaymentEvent),
/// )]
/// pub struct ConfirmPaidOrders;
///
/// impl React<PaymentEvent> for ConfirmPaidOrders {
///     async fn react(&self, event: &Envelope<PaymentEvent>) -> Result<Vec<OrderCommand>, ProviderError> {
///         let PaymentEvent::Completed { order_id } = event.payload;
///         Ok(vec![OrderCommand::Confirm { order_id }])
///     }
/// }
/// ```
#[proc_macro_derive(Reaction, attributes(reaction))]
pub fn derive_reaction(input: TokenStream) -> TokenStream {
    derive(input, ast::Reaction::from_syn, valid::reaction, expand::reaction, |reaction| reaction.krate.as_ref())
}

/// Implements `tramline::Projection` on a read model; implement `tramline::Handle<E>` for each
/// subscribed event enum `E`.
///
/// - `subscribe(E, ...)` (required): the event enums it folds.
/// - `name` (default: the struct's name in kebab case): its name, unique within its module;
///   with the module it names its dead-letter topic. (Each instance reads every partition from
///   the beginning, in a consumer group of its own: the name followed by `@` and a fresh id.)
/// - `module` (default: none, the projection is a function module of its own name): the module
///   it belongs to, whose commands wait for it (`CommandGateway::send_after`).
/// - `crate`: the path to tramline, for a crate that reaches it through a re-export.
///
/// ```
/// use tramline::{Envelope, Handle, Projection};
/// # use tramline::{Event, ReferenceId};
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "ord")] pub struct OrderId(uuid::Uuid);
/// # #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)] #[event(module = "order", key = order_id)]
/// # pub enum OrderEvent { Placed { order_id: OrderId } }
///
/// #[derive(Projection, Default)]
/// #[projection(subscribe(OrderEvent))]
/// pub struct OrderCount(u64);
///
/// impl Handle<OrderEvent> for OrderCount {
///     fn handle(&mut self, _: &Envelope<OrderEvent>) {
///         self.0 += 1;
///     }
/// }
///
/// assert_eq!(OrderCount::NAME, "order-count");
/// ```
#[proc_macro_derive(Projection, attributes(projection))]
pub fn derive_projection(input: TokenStream) -> TokenStream {
    derive(input, ast::Projection::from_syn, valid::projection, expand::projection, |projection| {
        projection.krate.as_ref()
    })
}

/// Parses, validates and expands; a failure becomes `compile_error!`s at the offending tokens.
fn derive<T>(
    input: TokenStream,
    parse: fn(&DeriveInput) -> syn::Result<T>,
    validate: fn(&T) -> syn::Result<()>,
    expand: fn(&T) -> proc_macro2::TokenStream,
    krate: fn(&T) -> Option<&syn::Path>,
) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    parse(&input)
        .and_then(|parsed| validate(&parsed).map(|()| expand::with_tramline(krate(&parsed), expand(&parsed))))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
