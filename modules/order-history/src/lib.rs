//! Order history, a function module: each customer's orders with their status, by customer ID.
//! It combines the customer and order modules by listening to both.

use std::collections::HashMap;

use customer_contract::{CustomerEvent, CustomerId};
use jiff::Timestamp;
use order_contract::{OrderEvent, OrderId};
use product_contract::{Money, ProductId};
use tramline::runtime::{ProjectionHandle, RuntimeError};
use tramline::{App, Envelope, Handle, Projection};

/// Where an order stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed, waiting for its payment.
    AwaitingPayment,
    /// Paid and confirmed.
    Confirmed,
    /// Cancelled, for this reason.
    Cancelled(String),
}

/// One line of a customer's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    /// The order.
    pub order_id: OrderId,
    /// What was ordered.
    pub product_id: ProductId,
    /// How many.
    pub quantity: u32,
    /// What it costs.
    pub total: Money,
    /// Where it stands.
    pub status: OrderStatus,
    /// When it was placed.
    pub placed_at: Timestamp,
}

/// A customer's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The customer's name, once the customer module has told it.
    pub name: Option<String>,
    /// Orders, oldest first.
    pub orders: Vec<OrderSummary>,
}

/// Every customer's orders.
#[derive(Debug, Default, Projection)]
#[projection(name = "order-history", subscribe(CustomerEvent, OrderEvent))]
pub struct OrderHistory {
    customers: HashMap<CustomerId, History>,
    /// Where each order sits: its customer and index.
    orders: HashMap<OrderId, (CustomerId, usize)>,
}

impl OrderHistory {
    /// A customer's history (empty for a customer without orders).
    pub fn of(&self, customer_id: &CustomerId) -> Option<&History> {
        self.customers.get(customer_id)
    }

    /// One order.
    pub fn order(&self, order_id: &OrderId) -> Option<&OrderSummary> {
        let (customer, index) = self.orders.get(order_id)?;
        self.customers.get(customer)?.orders.get(*index)
    }

    /// The sum of the totals of all confirmed orders.
    pub fn confirmed_revenue(&self) -> Money {
        self.customers
            .values()
            .flat_map(|h| &h.orders)
            .filter(|o| o.status == OrderStatus::Confirmed)
            .map(|o| o.total)
            .sum()
    }

    fn set_status(&mut self, order_id: &OrderId, status: OrderStatus) {
        if let Some((customer, index)) = self.orders.get(order_id)
            && let Some(order) = self.customers.get_mut(customer).and_then(|h| h.orders.get_mut(*index))
        {
            order.status = status;
        }
    }
}

impl Handle<CustomerEvent> for OrderHistory {
    fn handle(&mut self, event: &Envelope<CustomerEvent>) {
        match &event.payload {
            // An erased name (the customer was forgotten) shows as `<erased>`.
            CustomerEvent::Registered { customer_id, name, .. } | CustomerEvent::Updated { customer_id, name, .. } => {
                self.customers.entry(*customer_id).or_default().name = Some(name.to_string());
            }
            // The orders stay, under the customer's ID.
            CustomerEvent::Forgotten { customer_id } => {
                // A customer never registered has no history to show.
                if let Some(customer) = self.customers.get_mut(customer_id) {
                    customer.name = Some(tramline::privacy::ERASED.to_owned());
                }
            }
        }
    }
}

impl Handle<OrderEvent> for OrderHistory {
    fn handle(&mut self, event: &Envelope<OrderEvent>) {
        match &event.payload {
            OrderEvent::Placed { order_id, customer_id, product_id, quantity, total } => {
                let history = self.customers.entry(*customer_id).or_default();
                self.orders.insert(*order_id, (*customer_id, history.orders.len()));
                history.orders.push(OrderSummary {
                    order_id: *order_id,
                    product_id: *product_id,
                    quantity: *quantity,
                    total: *total,
                    status: OrderStatus::AwaitingPayment,
                    placed_at: event.time,
                });
            }
            OrderEvent::Confirmed { order_id, .. } => self.set_status(order_id, OrderStatus::Confirmed),
            OrderEvent::Cancelled { order_id, reason, .. } => {
                self.set_status(order_id, OrderStatus::Cancelled(reason.clone()))
            }
        }
    }
}

/// Adds order history to an app.
pub async fn register(app: &mut App) -> Result<ProjectionHandle<OrderHistory>, RuntimeError> {
    app.projection(OrderHistory::default()).await
}

#[cfg(test)]
mod tests {
    use tramline::ReferenceId;
    use tramline::testing::ProjectionTest;

    use super::*;

    #[test]
    fn lists_a_customers_orders_with_their_status() {
        let customer_id = CustomerId::generate();
        let (first, second) = (OrderId::generate(), OrderId::generate());
        let product_id = ProductId::generate();
        let placed =
            |order_id| OrderEvent::Placed { order_id, customer_id, product_id, quantity: 1, total: Money::cents(300) };
        ProjectionTest::new(OrderHistory::default())
            .given(CustomerEvent::Registered { customer_id, name: "Ada".into(), email: "ada@example.org".into() })
            .given(placed(first))
            .given(placed(second))
            .given(OrderEvent::Confirmed {
                order_id: first,
                customer_id,
                product_id,
                quantity: 1,
                total: Money::cents(300),
            })
            .given(OrderEvent::Cancelled { order_id: second, customer_id, reason: "declined".into() })
            .then(|history| {
                let ada = history.of(&customer_id).expect("Ada has a history");
                assert_eq!(ada.name.as_deref(), Some("Ada"));
                let statuses: Vec<_> = ada.orders.iter().map(|o| (o.order_id, o.status.clone())).collect();
                assert_eq!(
                    statuses,
                    [(first, OrderStatus::Confirmed), (second, OrderStatus::Cancelled("declined".into()))]
                );
                assert_eq!(history.confirmed_revenue(), Money::cents(300));
                assert!(history.of(&CustomerId::generate()).is_none());
            });
    }
}
