//! Accounting, the module added "later": sales per product and per day.
//!
//! It is built only by listening to the order module's events from the beginning of the log.
//! Adding it changed no other module: it is one more consumer group.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use order_contract::OrderEvent;
use product_contract::{Money, ProductId};
use serde::Serialize;
use tramline::runtime::{ProjectionHandle, RuntimeError};
use tramline::{App, Envelope, Handle, Projection};

/// Sales over some period or product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sales {
    /// Confirmed orders.
    pub orders: u64,
    /// Tickets in them.
    pub tickets: u64,
    /// Their value.
    pub revenue: Money,
}

impl Sales {
    fn add(&mut self, quantity: u32, total: Money) {
        self.orders += 1;
        self.tickets += u64::from(quantity);
        self.revenue += total;
    }
}

/// The books: confirmed sales per product and per day (UTC).
#[derive(Debug, Default, Projection)]
#[projection(name = "accounting", subscribe(OrderEvent))]
pub struct Accounting {
    by_product: BTreeMap<ProductId, Sales>,
    by_day: BTreeMap<Date, Sales>,
    total: Sales,
}

impl Accounting {
    /// Sales per product.
    pub fn by_product(&self) -> &BTreeMap<ProductId, Sales> {
        &self.by_product
    }

    /// Sales per day.
    pub fn by_day(&self) -> &BTreeMap<Date, Sales> {
        &self.by_day
    }

    /// All sales.
    pub fn total(&self) -> Sales {
        self.total
    }
}

impl Handle<OrderEvent> for Accounting {
    fn handle(&mut self, event: &Envelope<OrderEvent>) {
        if let OrderEvent::Confirmed { product_id, quantity, total, .. } = event.payload {
            let day = event.time.to_zoned_datetime(TimeZone::UTC).date();
            self.by_product.entry(product_id).or_default().add(quantity, total);
            self.by_day.entry(day).or_default().add(quantity, total);
            self.total.add(quantity, total);
        }
    }
}

/// Adds accounting to an app; it reads from the beginning of the log.
pub async fn register(app: &mut App) -> Result<ProjectionHandle<Accounting>, RuntimeError> {
    app.projection(Accounting::default()).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use customer_contract::CustomerId;
    use order_contract::OrderId;
    use tramline::ReferenceId;
    use tramline::testing::ProjectionTest;

    use super::*;

    #[test]
    fn books_confirmed_orders_per_product_and_day() {
        let (ride, pass) = (ProductId::generate(), ProductId::generate());
        let confirmed = |product_id, quantity, cents| OrderEvent::Confirmed {
            order_id: OrderId::generate(),
            customer_id: CustomerId::generate(),
            product_id,
            quantity,
            total: Money::cents(cents),
        };
        let test = ProjectionTest::new(Accounting::default()).given(confirmed(ride, 2, 500));
        test.clock().advance(Duration::from_secs(86_400));
        test.given(confirmed(pass, 1, 800))
            .given(OrderEvent::Cancelled {
                order_id: OrderId::generate(),
                customer_id: CustomerId::generate(),
                reason: "x".into(),
            })
            .then(|books| {
                assert_eq!(books.total(), Sales { orders: 2, tickets: 3, revenue: Money::cents(1300) });
                assert_eq!(books.by_product()[&ride], Sales { orders: 1, tickets: 2, revenue: Money::cents(500) });
                let days: Vec<_> = books.by_day().values().map(|s| s.revenue).collect();
                assert_eq!(days, [Money::cents(500), Money::cents(800)]);
            });
    }
}
