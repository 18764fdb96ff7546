//! The payment module's view of orders: which exist, what they cost, whether they still wait
//! for payment. Folded from the order module's events; holds references and amounts only.

use std::collections::HashMap;

use order_contract::{OrderEvent, OrderId};
use product_contract::Money;
use tramline::runtime::ProjectionHandle;
use tramline::{Envelope, Handle, Projection};

/// Where an order stands, as far as paying it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed; it can be paid.
    AwaitingPayment,
    /// Paid and confirmed.
    Confirmed,
    /// Cancelled; it cannot be paid.
    Cancelled,
}

/// An order as the payment module knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownOrder {
    /// What it costs.
    pub total: Money,
    /// Where it stands.
    pub status: OrderStatus,
}

/// What `decide` consults to check a payment's order.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait OrderLookup: Send + Sync + 'static {
    /// The order, if the module has seen it placed.
    fn order(&self, order_id: &OrderId) -> Option<KnownOrder>;
}

/// The orders the payment module has seen.
#[derive(Debug, Default, Projection)]
#[projection(module = "payment", name = "orders", subscribe(OrderEvent))]
pub struct OrdersToPay {
    orders: HashMap<OrderId, KnownOrder>,
}

impl Handle<OrderEvent> for OrdersToPay {
    fn handle(&mut self, event: &Envelope<OrderEvent>) {
        match &event.payload {
            OrderEvent::Placed { order_id, total, .. } => {
                self.orders.insert(*order_id, KnownOrder { total: *total, status: OrderStatus::AwaitingPayment });
            }
            OrderEvent::Confirmed { order_id, .. } => self.set(order_id, OrderStatus::Confirmed),
            OrderEvent::Cancelled { order_id, .. } => self.set(order_id, OrderStatus::Cancelled),
        }
    }
}

impl OrdersToPay {
    fn set(&mut self, order_id: &OrderId, status: OrderStatus) {
        if let Some(order) = self.orders.get_mut(order_id) {
            order.status = status;
        }
    }
}

impl OrderLookup for OrdersToPay {
    fn order(&self, order_id: &OrderId) -> Option<KnownOrder> {
        self.orders.get(order_id).copied()
    }
}

impl OrderLookup for ProjectionHandle<OrdersToPay> {
    fn order(&self, order_id: &OrderId) -> Option<KnownOrder> {
        self.read(|orders| orders.order(order_id))
    }
}
