//! The order module's contract: orders of products by customers.

use customer_contract::CustomerId;
use product_contract::{Money, ProductId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::{Command, Event, ReferenceId};
use uuid::Uuid;

/// A reference to an order.
#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "ord")]
pub struct OrderId(Uuid);

/// What can be asked of the order module.
#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[command(module = "order", key = order_id)]
pub enum OrderCommand {
    /// Places an order; it waits for its payment.
    Place {
        /// The new order.
        order_id: OrderId,
        /// Who orders.
        customer_id: CustomerId,
        /// What.
        product_id: ProductId,
        /// How many.
        quantity: u32,
        /// The price of one, as quoted to the customer.
        unit_price: Money,
    },
    /// Confirms a placed order (its payment completed).
    Confirm {
        /// The order.
        order_id: OrderId,
    },
    /// Cancels a placed order.
    Cancel {
        /// The order.
        order_id: OrderId,
        /// Why.
        reason: String,
    },
}

/// What happened to orders.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[event(module = "order", key = order_id)]
pub enum OrderEvent {
    /// An order was placed and waits for payment.
    Placed {
        /// The order.
        order_id: OrderId,
        /// Who ordered.
        customer_id: CustomerId,
        /// What.
        product_id: ProductId,
        /// How many.
        quantity: u32,
        /// What it costs in all.
        total: Money,
    },
    /// An order was paid and is confirmed.
    Confirmed {
        /// The order.
        order_id: OrderId,
        /// Who ordered.
        customer_id: CustomerId,
        /// What.
        product_id: ProductId,
        /// How many.
        quantity: u32,
        /// What it cost in all.
        total: Money,
    },
    /// An order was cancelled.
    Cancelled {
        /// The order.
        order_id: OrderId,
        /// Who ordered.
        customer_id: CustomerId,
        /// Why.
        reason: String,
    },
}
