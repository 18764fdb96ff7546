//! Reserve, a function module: one call that checks the customer and the product, places the
//! order and starts its payment, and says clearly which step refused.
//!
//! It owns no entities. It knows customers and prices from its own read model ([`Catalog`]),
//! folded from the customer and product modules' events, and sends commands to the order and
//! payment modules.

use std::collections::{HashMap, HashSet};

use customer_contract::{CustomerEvent, CustomerId};
use order::{Order, OrderError};
use order_contract::{OrderCommand, OrderId};
use payment::{PaymentError, Payments};
use payment_contract::PaymentId;
use product_contract::{Money, ProductEvent, ProductId};
use tramline::runtime::{CommandError, CommandGateway, ProjectionHandle, RuntimeError};
use tramline::{App, Envelope, Handle, Projection, ReferenceId};
use uuid::Uuid;

/// The customers and prices reserve knows.
#[derive(Debug, Default, Projection)]
#[projection(module = "reserve", name = "catalog", subscribe(CustomerEvent, ProductEvent))]
pub struct Catalog {
    customers: HashSet<CustomerId>,
    prices: HashMap<ProductId, Money>,
}

impl Handle<CustomerEvent> for Catalog {
    fn handle(&mut self, event: &Envelope<CustomerEvent>) {
        match event.payload {
            CustomerEvent::Registered { customer_id, .. } => {
                self.customers.insert(customer_id);
            }
            // A forgotten customer has no e-mail to send tickets to: reserve no longer knows it.
            CustomerEvent::Forgotten { customer_id } => {
                self.customers.remove(&customer_id);
            }
            CustomerEvent::Updated { .. } => {}
        }
    }
}

impl Handle<ProductEvent> for Catalog {
    fn handle(&mut self, event: &Envelope<ProductEvent>) {
        match event.payload {
            ProductEvent::Created { product_id, price, .. } | ProductEvent::Priced { product_id, price } => {
                self.prices.insert(product_id, price);
            }
        }
    }
}

/// A request to reserve tickets. The order ID is the caller's, so that a retry is recognised;
/// its payment's derives from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The order to place.
    pub order_id: OrderId,
    /// Who.
    pub customer_id: CustomerId,
    /// What.
    pub product_id: ProductId,
    /// How many.
    pub quantity: u32,
}

impl Request {
    /// A request with a new order ID.
    pub fn new(customer_id: CustomerId, product_id: ProductId, quantity: u32) -> Self {
        Request { order_id: OrderId::generate(), customer_id, product_id, quantity }
    }

    /// The ID of its order's payment ([`PaymentId::of_order`]).
    pub fn payment_id(&self) -> PaymentId {
        PaymentId::of_order(self.order_id)
    }
}

/// A reservation whose payment has started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The placed order.
    pub order_id: OrderId,
    /// Its payment, waiting for the payment service provider.
    pub payment_id: PaymentId,
    /// What it costs.
    pub total: Money,
}

/// Which step refused a reservation.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// The customer is not registered.
    #[error("cannot reserve: customer {0} is not registered")]
    UnknownCustomer(CustomerId),
    /// The product is not on sale.
    #[error("cannot reserve: product {0} is not on sale")]
    UnknownProduct(ProductId),
    /// The order module refused the order.
    #[error("cannot reserve: the order was not placed: {0}")]
    Order(CommandError<OrderError>),
    /// The payment module refused the payment; the order stays unpaid.
    #[error("cannot reserve: order {order_id} was placed but its payment was not started: {error}")]
    Payment {
        /// The order that was placed.
        order_id: OrderId,
        /// Why the payment was refused.
        error: CommandError<PaymentError>,
    },
}

impl ReserveError {
    /// Whether the same request may succeed when tried again: an outcome did not arrive (a
    /// module or the log was away). The request's commands keep their ids, so nothing is
    /// applied twice.
    pub fn is_transient(&self) -> bool {
        match self {
            ReserveError::Order(error) => error.is_transient(),
            ReserveError::Payment { error, .. } => error.is_transient(),
            ReserveError::UnknownCustomer(_) | ReserveError::UnknownProduct(_) => false,
        }
    }
}

/// The id of a request's place command: the same request gives the same id, another request
/// for the same order ID another one (which the order module then refuses).
fn request_id(request: &Request) -> Uuid {
    let mut name = Vec::with_capacity(36);
    name.extend_from_slice(request.customer_id.as_uuid().as_bytes());
    name.extend_from_slice(request.product_id.as_uuid().as_bytes());
    name.extend_from_slice(&request.quantity.to_le_bytes());
    Uuid::new_v5(request.order_id.as_uuid(), &name)
}

/// The reserve function.
#[derive(Debug, Clone)]
pub struct Reserve {
    catalog: ProjectionHandle<Catalog>,
    orders: CommandGateway<Order>,
    payments: Payments,
}

impl Reserve {
    /// Reserves: checks, places the order, starts the payment. The commands' ids derive from
    /// the request's IDs, so a retried request is recognised and answers the same reservation.
    pub async fn reserve(&self, request: Request) -> Result<Reservation, ReserveError> {
        let payment_id = request.payment_id();
        let Request { order_id, customer_id, product_id, quantity } = request;
        let price = self.catalog.read(|catalog| {
            if !catalog.customers.contains(&customer_id) {
                return Err(ReserveError::UnknownCustomer(customer_id));
            }
            catalog.prices.get(&product_id).copied().ok_or(ReserveError::UnknownProduct(product_id))
        })?;
        let total = price.checked_times(quantity).ok_or(ReserveError::Order(CommandError::Rejected(
            OrderError::TotalTooLarge { unit_price: price, quantity },
        )))?;
        let place = OrderCommand::Place { order_id, customer_id, product_id, quantity, unit_price: price };
        let place = self.orders.envelope(place).with_id(request_id(&request));
        let placed = self.orders.send_envelope(place.clone()).await.map_err(ReserveError::Order)?;
        self.payments
            .start(order_id, total, &place, &placed.positions())
            .await
            .map_err(|error| ReserveError::Payment { order_id, error })?;
        Ok(Reservation { order_id, payment_id, total })
    }

    /// The read model of customers and prices.
    pub fn catalog(&self) -> &ProjectionHandle<Catalog> {
        &self.catalog
    }
}

/// Adds reserve to an app, on top of the order and payment modules.
pub async fn register(
    app: &mut App,
    orders: CommandGateway<Order>,
    payments: Payments,
) -> Result<Reserve, RuntimeError> {
    let catalog = app.projection(Catalog::default()).await?;
    Ok(Reserve { catalog, orders, payments })
}

#[cfg(test)]
mod tests {
    use tramline::testing::ProjectionTest;

    use super::*;

    #[test]
    fn the_catalog_knows_registered_customers_and_current_prices() {
        let (customer_id, product_id) = (CustomerId::generate(), ProductId::generate());
        ProjectionTest::new(Catalog::default())
            .given(CustomerEvent::Registered { customer_id, name: "Ada".into(), email: "ada@example.org".into() })
            .given(ProductEvent::Created { product_id, name: "Ride".into(), price: Money::cents(300) })
            .given(ProductEvent::Priced { product_id, price: Money::cents(350) })
            .then(|catalog| {
                assert!(catalog.customers.contains(&customer_id));
                assert_eq!(catalog.prices[&product_id], Money::cents(350));
            });
    }
}
