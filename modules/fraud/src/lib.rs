//! Fraud, a function module: suspicious sales. The case study's query runs as written: a
//! customer with more than four confirmed orders within one ten-minute window is flagged, on
//! the stream `suspicious_sales`.
//!
//! ```sql
#![doc = include_str!("suspicious_sales.sql")]
//! ```

use std::collections::BTreeSet;

use customer_contract::CustomerId;
use order_contract::OrderEvent;
use tramline::App;
use tramline::runtime::RuntimeError;
use tramline::stream::sql::{self, SqlError};
use tramline::stream::{Catalog, Plan, QueryHandle};

/// The query, exactly as the case study writes it.
pub const SUSPICIOUS_SALES: &str = include_str!("suspicious_sales.sql");

/// The name the query creates (its sink topic, and the module its processors belong to).
pub const QUERY: &str = "suspicious_sales";

/// The query's plan over the order module's events.
pub fn plan() -> Result<Plan, SqlError> {
    sql::plan(SUSPICIOUS_SALES, &Catalog::new().with::<OrderEvent>())
}

/// The running query.
#[derive(Debug, Clone)]
pub struct SuspiciousSales {
    handle: QueryHandle,
}

/// Registers the query in an app (with the order module, or where its topic exists).
pub async fn register(app: &mut App) -> Result<SuspiciousSales, RuntimeError> {
    let plan = plan()
        .unwrap_or_else(|error| panic!("the fraud query is a constant that plans: {}", error.render(SUSPICIOUS_SALES)));
    Ok(SuspiciousSales { handle: app.query(plan).await? })
}

impl SuspiciousSales {
    /// The query's handle: its topic, rows and late records.
    pub fn handle(&self) -> &QueryHandle {
        &self.handle
    }

    /// The customers flagged so far (each once, however many windows flagged them).
    pub async fn flagged_customers(&self) -> Result<BTreeSet<CustomerId>, RuntimeError> {
        let rows = self.handle.rows().await?;
        Ok(rows.iter().filter_map(|row| row.key.parse().ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;
    use order_contract::OrderId;
    use product_contract::{Money, ProductId};
    use tramline::log::{EventLog, TopicSpec};
    use tramline::runtime::Settings;
    use tramline::{Envelope, MemoryLog, Message, ReferenceId, codec};

    use super::*;

    fn confirmed(customer_id: CustomerId, at: Timestamp) -> tramline::log::OutRecord {
        let event = OrderEvent::Confirmed {
            order_id: OrderId::generate(),
            customer_id,
            product_id: ProductId::generate(),
            quantity: 1,
            total: Money::cents(250),
        };
        codec::encode(&Envelope::new(event, at))
    }

    #[test]
    fn a_misspelt_column_is_named_with_the_order_events_fields() {
        let sql = SUSPICIOUS_SALES.replace("GROUP BY customer_id", "GROUP BY custmer_id");
        let error = sql::plan(&sql, &Catalog::new().with::<OrderEvent>()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 5, column 10: stream `order_confirmed` has no column `custmer_id`; its columns: customer_id, order_id, product_id, quantity, total, ROWTIME"
        );
    }

    #[tokio::test]
    async fn flags_a_customer_with_five_confirmed_orders_in_ten_minutes_and_no_one_else() {
        let log = MemoryLog::shared();
        log.create_topic(&TopicSpec::keep(OrderEvent::TOPIC, 2)).await.unwrap();
        let settings = Settings { partitions: 2, poll_timeout: Duration::from_millis(20), ..Settings::default() };
        let mut app = App::new(log.clone()).with_settings(settings);
        let fraud = register(&mut app).await.unwrap();
        app.start().await.unwrap();

        let t0: Timestamp = "2030-01-01T10:00:00Z".parse().unwrap();
        let minute = jiff::SignedDuration::from_mins(1);
        let (bulk, regular, spread) = (CustomerId::generate(), CustomerId::generate(), CustomerId::generate());
        let mut records = Vec::new();
        records.extend((0..5).map(|i| confirmed(bulk, t0 + minute * i)));
        records.extend((0..4).map(|i| confirmed(regular, t0 + minute * i)));
        // Five orders, but across two windows (9:58..10:02 is split at 10:00).
        records.extend((0..5).map(|i| confirmed(spread, t0 - minute * 2 + minute * i)));
        log.append(records).await.unwrap();
        app.settle().await.unwrap();

        assert_eq!(fraud.flagged_customers().await.unwrap(), BTreeSet::from([bulk]));
        app.shutdown().await.unwrap();
    }
}
