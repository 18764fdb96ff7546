//! The order data module: places orders, confirms them when their payment completes and
//! cancels them when it is cancelled.

use customer_contract::CustomerId;
use order_contract::{OrderCommand, OrderEvent, OrderId};
use payment_contract::PaymentEvent;
use product_contract::{Money, ProductId};
use serde::{Deserialize, Serialize};
use tramline::runtime::{CommandGateway, RuntimeError};
use tramline::{Aggregate, App, Envelope, React, Reaction};

pub use order_contract as contract;

/// One order.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    /// Not placed yet.
    #[default]
    New,
    /// Placed, waiting for its payment.
    Placed(Line),
    /// Paid.
    Confirmed(Line),
    /// Cancelled.
    Cancelled(Line),
}

/// What an order is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    customer_id: CustomerId,
    product_id: ProductId,
    quantity: u32,
    total: Money,
}

/// Why the order module rejects a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum OrderError {
    /// Place for an ID that is taken.
    #[error("order {0} already exists")]
    AlreadyExists(OrderId),
    /// A command for an order that does not exist.
    #[error("order {0} does not exist")]
    Unknown(OrderId),
    /// Zero tickets.
    #[error("an order is for at least one ticket")]
    NoQuantity,
    /// A unit price of zero or less.
    #[error("a unit price must be positive, not {0}")]
    InvalidPrice(Money),
    /// A total too large to count.
    #[error("{quantity} tickets at {unit_price} each is more money than an order can hold")]
    TotalTooLarge {
        /// The price of one.
        unit_price: Money,
        /// How many.
        quantity: u32,
    },
    /// Confirm or cancel a cancelled order.
    #[error("order {0} is cancelled")]
    Cancelled(OrderId),
    /// Confirm or cancel a confirmed order.
    #[error("order {0} is already confirmed")]
    AlreadyConfirmed(OrderId),
}

impl Aggregate for Order {
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    fn decide(&self, command: &OrderCommand, _: &()) -> Result<Vec<OrderEvent>, OrderError> {
        use Order::*;
        match (command, self) {
            (OrderCommand::Place { order_id, customer_id, product_id, quantity, unit_price }, New) => {
                if *quantity == 0 {
                    return Err(OrderError::NoQuantity);
                }
                if unit_price.as_cents() <= 0 {
                    return Err(OrderError::InvalidPrice(*unit_price));
                }
                Ok(vec![OrderEvent::Placed {
                    order_id: *order_id,
                    customer_id: *customer_id,
                    product_id: *product_id,
                    quantity: *quantity,
                    total: unit_price
                        .checked_times(*quantity)
                        .ok_or(OrderError::TotalTooLarge { unit_price: *unit_price, quantity: *quantity })?,
                }])
            }
            (OrderCommand::Place { order_id, .. }, _) => Err(OrderError::AlreadyExists(*order_id)),
            (OrderCommand::Confirm { order_id } | OrderCommand::Cancel { order_id, .. }, New) => {
                Err(OrderError::Unknown(*order_id))
            }
            (OrderCommand::Confirm { order_id }, Placed(line)) => Ok(vec![OrderEvent::Confirmed {
                order_id: *order_id,
                customer_id: line.customer_id,
                product_id: line.product_id,
                quantity: line.quantity,
                total: line.total,
            }]),
            (OrderCommand::Cancel { order_id, reason }, Placed(line)) => Ok(vec![OrderEvent::Cancelled {
                order_id: *order_id,
                customer_id: line.customer_id,
                reason: reason.clone(),
            }]),
            (OrderCommand::Confirm { order_id } | OrderCommand::Cancel { order_id, .. }, Confirmed(_)) => {
                Err(OrderError::AlreadyConfirmed(*order_id))
            }
            (OrderCommand::Confirm { order_id } | OrderCommand::Cancel { order_id, .. }, Cancelled(_)) => {
                Err(OrderError::Cancelled(*order_id))
            }
        }
    }

    fn evolve(&mut self, event: &OrderEvent) {
        let line = match std::mem::take(self) {
            Order::Placed(line) | Order::Confirmed(line) | Order::Cancelled(line) => Some(line),
            Order::New => None,
        };
        *self = match (event, line) {
            (OrderEvent::Placed { customer_id, product_id, quantity, total, .. }, _) => Order::Placed(Line {
                customer_id: *customer_id,
                product_id: *product_id,
                quantity: *quantity,
                total: *total,
            }),
            (OrderEvent::Confirmed { .. }, Some(line)) => Order::Confirmed(line),
            (OrderEvent::Cancelled { .. }, Some(line)) => Order::Cancelled(line),
            // An event for an order never placed cannot come from this module's decide.
            (_, None) => Order::New,
        };
    }
}

/// Confirms an order when its payment completes, cancels it when its payment is cancelled.
#[derive(Reaction)]
#[reaction(module = "order", commands = OrderCommand, subscribe(PaymentEvent))]
pub struct FollowPayments;

impl React<PaymentEvent> for FollowPayments {
    async fn react(&self, event: &Envelope<PaymentEvent>) -> Result<Vec<OrderCommand>, Self::Error> {
        Ok(match &event.payload {
            PaymentEvent::Created { .. } => Vec::new(),
            PaymentEvent::Completed { order_id, .. } => vec![OrderCommand::Confirm { order_id: *order_id }],
            PaymentEvent::Cancelled { order_id, reason, .. } => {
                vec![OrderCommand::Cancel { order_id: *order_id, reason: format!("payment cancelled: {reason}") }]
            }
        })
    }
}

/// Adds the order module to an app: the orders and the reaction to payments.
pub async fn register(app: &mut App) -> Result<CommandGateway<Order>, RuntimeError> {
    let orders = app.aggregate::<Order>(()).await?;
    app.reaction(FollowPayments).await?;
    Ok(orders)
}

#[cfg(test)]
mod tests {
    use super::*;
    use payment_contract::PaymentId;
    use tramline::ReferenceId;
    use tramline::testing::{AggregateTest, ReactionTest};

    struct Ids {
        order: OrderId,
        customer: CustomerId,
        product: ProductId,
    }

    fn ids() -> Ids {
        Ids { order: OrderId::generate(), customer: CustomerId::generate(), product: ProductId::generate() }
    }

    fn place(ids: &Ids) -> OrderCommand {
        OrderCommand::Place {
            order_id: ids.order,
            customer_id: ids.customer,
            product_id: ids.product,
            quantity: 3,
            unit_price: Money::cents(250),
        }
    }

    fn placed(ids: &Ids) -> OrderEvent {
        OrderEvent::Placed {
            order_id: ids.order,
            customer_id: ids.customer,
            product_id: ids.product,
            quantity: 3,
            total: Money::cents(750),
        }
    }

    #[test]
    fn places_and_confirms_an_order() {
        let ids = ids();
        AggregateTest::<Order>::new().when(place(&ids)).then_events([placed(&ids)]);
        AggregateTest::<Order>::new()
            .given([placed(&ids)])
            .when(OrderCommand::Confirm { order_id: ids.order })
            .then_events([OrderEvent::Confirmed {
                order_id: ids.order,
                customer_id: ids.customer,
                product_id: ids.product,
                quantity: 3,
                total: Money::cents(750),
            }])
            .and_when(OrderCommand::Cancel { order_id: ids.order, reason: "late".into() })
            .then_rejected_with(OrderError::AlreadyConfirmed(ids.order));
    }

    #[test]
    fn cancels_a_placed_order_and_then_refuses_to_confirm_it() {
        let ids = ids();
        AggregateTest::<Order>::new()
            .given([placed(&ids)])
            .when(OrderCommand::Cancel { order_id: ids.order, reason: "declined".into() })
            .then_events([OrderEvent::Cancelled {
                order_id: ids.order,
                customer_id: ids.customer,
                reason: "declined".into(),
            }])
            .then_state(|order| assert!(matches!(order, Order::Cancelled(_))))
            .and_when(OrderCommand::Confirm { order_id: ids.order })
            .then_rejected_with(OrderError::Cancelled(ids.order));
    }

    #[test]
    fn rejects_invalid_orders() {
        let ids = ids();
        AggregateTest::<Order>::new()
            .when(OrderCommand::Confirm { order_id: ids.order })
            .then_rejected_with(OrderError::Unknown(ids.order));
        AggregateTest::<Order>::new()
            .given([placed(&ids)])
            .when(place(&ids))
            .then_rejected_with(OrderError::AlreadyExists(ids.order));
        let mut zero = place(&ids);
        if let OrderCommand::Place { quantity, .. } = &mut zero {
            *quantity = 0;
        }
        AggregateTest::<Order>::new().when(zero).then_rejected_with(OrderError::NoQuantity);
        let mut huge = place(&ids);
        if let OrderCommand::Place { unit_price, .. } = &mut huge {
            *unit_price = Money::cents(i64::MAX / 2);
        }
        AggregateTest::<Order>::new()
            .when(huge)
            .then_rejected_with(OrderError::TotalTooLarge { unit_price: Money::cents(i64::MAX / 2), quantity: 3 });
    }

    #[tokio::test]
    async fn follows_payments() {
        let order_id = OrderId::generate();
        let payment_id = PaymentId::generate();
        let mut test = ReactionTest::new(FollowPayments);
        test.when(PaymentEvent::Completed { payment_id, order_id, amount: Money::cents(1) })
            .await
            .then_commands([OrderCommand::Confirm { order_id }]);
        test.when(PaymentEvent::Cancelled { payment_id, order_id, reason: "card declined".into() })
            .await
            .then_commands([OrderCommand::Cancel { order_id, reason: "payment cancelled: card declined".into() }]);
        test.when(PaymentEvent::Created { payment_id, order_id, amount: Money::cents(1) })
            .await
            .then_nothing();
    }
}
