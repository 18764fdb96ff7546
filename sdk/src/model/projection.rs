//! Projections: read models folded from one or more topics, rebuildable from the beginning.

use super::{Envelope, Event, Subscription};
use crate::codec::DecodeError;
use crate::log::Record;

/// A read model folded from events.
///
/// Derive it, naming the subscriptions once, and implement [`Handle<E>`] for each subscribed
/// event enum. A projection starts at the beginning of the log and can be rebuilt at any time;
/// the runtime gives read access and "wait until caught up" through a handle.
///
/// ```
/// # use tramline::{Event, ReferenceId, Handle, Projection, Envelope};
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "ord")] pub struct OrderId(uuid::Uuid);
/// # #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)] #[event(module = "order", key = order_id)]
/// # pub enum OrderEvent { Confirmed { order_id: OrderId } }
/// #[derive(Projection, Default)]
/// #[projection(name = "confirmed-orders", subscribe(OrderEvent))]
/// pub struct ConfirmedOrders { count: u64 }
///
/// impl Handle<OrderEvent> for ConfirmedOrders {
///     fn handle(&mut self, event: &Envelope<OrderEvent>) {
///         match &event.payload { OrderEvent::Confirmed { .. } => self.count += 1 }
///     }
/// }
/// ```
pub trait Projection: Send + Sync + 'static {
    /// The projection's name, unique within its module.
    const NAME: &'static str;
    /// The module it belongs to (`#[projection(module = "payment")]`); a projection declared
    /// without one is a function module of its own name (`order-history`).
    const MODULE: &'static str;

    /// The event enums it folds.
    fn subscriptions() -> Vec<Subscription>;

    /// Decodes a record of a subscribed topic and calls the matching [`Handle`] impl. Generated.
    fn apply(&mut self, record: &Record) -> Result<(), DecodeError>;
}

/// How a [`Projection`] folds one subscribed event enum.
pub trait Handle<E: Event> {
    /// Folds one event into the read model.
    fn handle(&mut self, event: &Envelope<E>);
}
