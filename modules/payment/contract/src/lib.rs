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

/// The namespace of [`PaymentId::of_order`]'s name-based UUIDs.
const PAYMENT_OF_ORDER: Uuid = Uuid::from_u128(0x1f5a_c761_0c8f_430b_90d2_b1e6_352e_9723);

impl PaymentId {
    /// The payment of an order. An order has one payment, whose ID derives from the order's (a
    /// UUID v5): two attempts to pay one order meet on one payment, wherever they come from,
    /// and the payment module refuses any other ID.
    pub fn of_order(order_id: OrderId) -> PaymentId {
        PaymentId(Uuid::new_v5(&PAYMENT_OF_ORDER, order_id.as_uuid().as_bytes()))
    }
}

/// What can be asked of the payment module.
#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[command(module = "payment", key = payment_id)]
pub enum PaymentCommand {
    /// Starts the payment of an order.
    Create {
        /// The new payment: [`PaymentId::of_order`] of its order.
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
