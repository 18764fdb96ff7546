//! The payment module's contract: payments of orders.

use order_contract::OrderId;
use product_contract::Money;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::{Command, Event, ReferenceId};
use uuid::Uuid;

/// A reference to a payment.
#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "pay")]
pub struct PaymentId(Uuid);

/// What can be asked of the payment module.
#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[command(module = "payment", key = payment_id)]
pub enum PaymentCommand {
    /// Starts the payment of an order.
    Create {
        /// The new payment.
        payment_id: PaymentId,
        /// The order it pays.
        order_id: OrderId,
        /// The amount; must equal the order's total.
        amount: Money,
    },
    /// Records that the payment service provider took the money.
    Complete {
        /// The payment.
        payment_id: PaymentId,
    },
    /// Cancels a payment that has not completed.
    Cancel {
        /// The payment.
        payment_id: PaymentId,
        /// Why.
        reason: String,
    },
}

/// What happened to payments.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[event(module = "payment", key = payment_id)]
pub enum PaymentEvent {
    /// A payment was started.
    Created {
        /// The payment.
        payment_id: PaymentId,
        /// The order it pays.
        order_id: OrderId,
        /// The amount.
        amount: Money,
    },
    /// The money was taken.
    Completed {
        /// The payment.
        payment_id: PaymentId,
        /// The order it paid.
        order_id: OrderId,
        /// The amount.
        amount: Money,
    },
    /// The payment was cancelled (declined, or called off).
    Cancelled {
        /// The payment.
        payment_id: PaymentId,
        /// The order it was for.
        order_id: OrderId,
        /// Why.
        reason: String,
    },
}
