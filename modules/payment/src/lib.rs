//! The payment data module: starts the payment of an order, has the payment service provider
//! (PSP) charge it, and records whether the money was taken.
//!
//! A payment may only be created for an order the module knows to be waiting for payment, with
//! the order's total. An order has one payment, whose ID derives from the order's
//! ([`PaymentId::of_order`]): paying an order twice, from two places or after a crash, meets
//! on that one payment instead of charging the customer twice. The module learns orders by listening to the order module's events
//! ([`OrdersToPay`]); [`Payments::start`] waits until that view has seen the order before it
//! sends the command, so a caller who has just placed the order reads its own write.

mod orders_to_pay;
mod provider;

use std::sync::Arc;

use order_contract::{OrderEvent, OrderId};
use payment_contract::{PaymentCommand, PaymentEvent, PaymentId};
use product_contract::Money;
use serde::{Deserialize, Serialize};
use tramline::runtime::{CommandError, CommandGateway, Outcome, RuntimeError};
use tramline::{Aggregate, App, Envelope, Message, Position, React, Reaction, ReferenceId};
use uuid::Uuid;

#[cfg(any(test, feature = "mocks"))]
pub use orders_to_pay::MockOrderLookup;
pub use orders_to_pay::{KnownOrder, OrderLookup, OrderStatus, OrdersToPay};
pub use payment_contract as contract;
#[cfg(any(test, feature = "mocks"))]
pub use provider::MockPaymentProvider;
pub use provider::{Charge, ChargeDecision, PaymentProvider, ProviderError};

/// One payment.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payment {
    /// Not created yet.
    #[default]
    New,
    /// Waiting for the PSP.
    Created {
        /// The order it pays.
        order_id: OrderId,
        /// The amount.
        amount: Money,
    },
    /// The money was taken.
    Completed {
        /// The order it paid.
        order_id: OrderId,
    },
    /// Called off.
    Cancelled {
        /// The order it was for.
        order_id: OrderId,
    },
}

/// Why the payment module rejects a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PaymentError {
    /// Create for an ID that is taken.
    #[error("payment {0} already exists")]
    AlreadyExists(PaymentId),
    /// A command for a payment that does not exist.
    #[error("payment {0} does not exist")]
    Unknown(PaymentId),
    /// A payment whose ID is not its order's ([`PaymentId::of_order`]): an order has one
    /// payment.
    #[error("cannot pay order {order_id} with payment {payment_id}: the payment of that order is {expected}")]
    NotTheOrdersPayment {
        /// The payment ID offered.
        payment_id: PaymentId,
        /// The order.
        order_id: OrderId,
        /// The ID of the order's payment.
        expected: PaymentId,
    },
    /// A payment for an order nobody placed.
    #[error("cannot pay order {0}: no such order")]
    UnknownOrder(OrderId),
    /// A payment for a cancelled order.
    #[error("cannot pay order {0}: it is cancelled")]
    OrderCancelled(OrderId),
    /// A payment for an order that is paid already.
    #[error("cannot pay order {0}: it is already paid")]
    OrderAlreadyPaid(OrderId),
    /// An amount other than the order's total.
    #[error("cannot pay order {order_id} with {offered}: its total is {total}")]
    WrongAmount {
        /// The order.
        order_id: OrderId,
        /// Its total.
        total: Money,
        /// The amount offered.
        offered: Money,
    },
    /// Complete or cancel a completed payment.
    #[error("payment {0} is already completed")]
    AlreadyCompleted(PaymentId),
    /// Complete or cancel a cancelled payment.
    #[error("payment {0} is cancelled")]
    Cancelled(PaymentId),
}

impl Aggregate for Payment {
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
    type Services = Arc<dyn OrderLookup>;

    fn decide(
        &self,
        command: &PaymentCommand,
        orders: &Arc<dyn OrderLookup>,
    ) -> Result<Vec<PaymentEvent>, PaymentError> {
        use PaymentCommand::*;
        match (command, self) {
            (Create { payment_id, order_id, amount }, Payment::New) => {
                let expected = PaymentId::of_order(*order_id);
                if *payment_id != expected {
                    return Err(PaymentError::NotTheOrdersPayment {
                        payment_id: *payment_id,
                        order_id: *order_id,
                        expected,
                    });
                }
                let order = orders.order(order_id).ok_or(PaymentError::UnknownOrder(*order_id))?;
                match order.status {
                    OrderStatus::Cancelled => return Err(PaymentError::OrderCancelled(*order_id)),
                    OrderStatus::Confirmed => return Err(PaymentError::OrderAlreadyPaid(*order_id)),
                    OrderStatus::AwaitingPayment => {}
                }
                if order.total != *amount {
                    return Err(PaymentError::WrongAmount {
                        order_id: *order_id,
                        total: order.total,
                        offered: *amount,
                    });
                }
                Ok(vec![PaymentEvent::Created { payment_id: *payment_id, order_id: *order_id, amount: *amount }])
            }
            (Create { payment_id, .. }, _) => Err(PaymentError::AlreadyExists(*payment_id)),
            (Complete { payment_id } | Cancel { payment_id, .. }, Payment::New) => {
                Err(PaymentError::Unknown(*payment_id))
            }
            (Complete { payment_id }, Payment::Created { order_id, amount }) => {
                Ok(vec![PaymentEvent::Completed { payment_id: *payment_id, order_id: *order_id, amount: *amount }])
            }
            (Cancel { payment_id, reason }, Payment::Created { order_id, .. }) => Ok(vec![PaymentEvent::Cancelled {
                payment_id: *payment_id,
                order_id: *order_id,
                reason: reason.clone(),
            }]),
            (Complete { payment_id } | Cancel { payment_id, .. }, Payment::Completed { .. }) => {
                Err(PaymentError::AlreadyCompleted(*payment_id))
            }
            (Complete { payment_id } | Cancel { payment_id, .. }, Payment::Cancelled { .. }) => {
                Err(PaymentError::Cancelled(*payment_id))
            }
        }
    }

    fn evolve(&mut self, event: &PaymentEvent) {
        *self = match event {
            PaymentEvent::Created { order_id, amount, .. } => Payment::Created { order_id: *order_id, amount: *amount },
            PaymentEvent::Completed { order_id, .. } => Payment::Completed { order_id: *order_id },
            PaymentEvent::Cancelled { order_id, .. } => Payment::Cancelled { order_id: *order_id },
        }
    }
}

/// Has the PSP charge each new payment, then completes or cancels it. The event id is the
/// PSP's idempotency key, so a retried charge is not taken twice.
#[derive(Reaction)]
#[reaction(module = "payment", commands = PaymentCommand, error = ProviderError, subscribe(PaymentEvent))]
pub struct ChargePayments {
    provider: Arc<dyn PaymentProvider>,
}

impl ChargePayments {
    /// Charges through this provider.
    pub fn new(provider: Arc<dyn PaymentProvider>) -> Self {
        ChargePayments { provider }
    }
}

impl React<PaymentEvent> for ChargePayments {
    async fn react(&self, event: &Envelope<PaymentEvent>) -> Result<Vec<PaymentCommand>, ProviderError> {
        let PaymentEvent::Created { payment_id, order_id, amount } = &event.payload else {
            return Ok(Vec::new());
        };
        let charge =
            Charge { payment_id: *payment_id, order_id: *order_id, amount: *amount, idempotency_key: event.id };
        Ok(vec![match self.provider.charge(&charge).await? {
            ChargeDecision::Approved => PaymentCommand::Complete { payment_id: *payment_id },
            ChargeDecision::Declined { reason } => PaymentCommand::Cancel { payment_id: *payment_id, reason },
        }])
    }
}

/// The payment module as other modules use it.
#[derive(Debug, Clone)]
pub struct Payments {
    gateway: CommandGateway<Payment>,
}

impl Payments {
    /// Starts the payment of an order whose events sit at `placed`, as part of the flow of
    /// `cause`: the payment module creates the payment ([`PaymentId::of_order`]) once its view
    /// of orders has seen the order (wherever it runs). The command's id derives from the
    /// payment, so starting the payment of the same order again is recognised as a repeat.
    pub async fn start<C>(
        &self,
        order_id: OrderId,
        amount: Money,
        cause: &Envelope<C>,
        placed: &[Position],
    ) -> Outcome<Payment> {
        let payment_id = PaymentId::of_order(order_id);
        let create = PaymentCommand::Create { payment_id, order_id, amount };
        let id = Uuid::new_v5(payment_id.as_uuid(), order_id.as_uuid().as_bytes());
        // A repeated placement carries no positions: then after everything on the order log.
        let after = match placed.is_empty() {
            true => self.gateway.last_positions(OrderEvent::TOPIC).await.map_err(|error| CommandError::Log {
                id,
                module: <PaymentCommand as Message>::MODULE,
                error,
            })?,
            false => placed.to_vec(),
        };
        self.gateway.send_after(self.gateway.envelope(create).with_id(id).in_flow_of(cause), &after).await
    }

    /// Sends any payment command.
    pub fn gateway(&self) -> &CommandGateway<Payment> {
        &self.gateway
    }
}

/// Adds the payment module to an app: the payments, their view of orders, and the PSP reaction.
pub async fn register(app: &mut App, provider: Arc<dyn PaymentProvider>) -> Result<Payments, RuntimeError> {
    let orders = app.projection(OrdersToPay::default()).await?;
    let gateway = app.aggregate::<Payment>(Arc::new(orders.clone())).await?;
    app.reaction(ChargePayments::new(provider)).await?;
    Ok(Payments { gateway })
}

#[cfg(test)]
mod tests;
