//! The platform's contract with the world: the schema of every event, and the public feeds.

use customer_contract::CustomerEvent;
use order_contract::OrderEvent;
use payment_contract::PaymentEvent;
use product_contract::ProductEvent;
use ticket_contract::TicketEvent;
use tramline::schema::Catalog;
use tramline::schema::asyncapi::{self, Info};

/// Every event of the platform's modules and every public event of its feeds.
pub fn catalog(partitions: u32) -> Catalog {
    let mut catalog = Catalog::new();
    catalog
        .event::<CustomerEvent>()
        .event::<ProductEvent>()
        .event::<OrderEvent>()
        .event::<PaymentEvent>()
        .event::<TicketEvent>();
    for feed in partner_feed::feeds(partitions) {
        catalog.feed(feed);
    }
    catalog
}

/// The AsyncAPI 3.0 document of the public feeds.
pub fn asyncapi(catalog: &Catalog, servers: Vec<String>) -> serde_json::Value {
    let info = Info {
        title: "Ticketing platform: partner feeds".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Confirmed orders for transport operators, one feed per operator. Records are CloudEvents in Kafka binary mode; the payload is JSON; deduplicate by `ce_id`.".into(),
        servers,
    };
    asyncapi::document(catalog, &info)
}
