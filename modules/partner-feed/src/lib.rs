//! The partner feed, a function module: every confirmed order, with what a transport operator
//! needs to process the reservation (product, quantity, prices, time), exported to one public
//! feed per operator, `public.orders.<operator>`.
//!
//! The public event [`OrderConfirmed`] is a contract of its own: no customer, no internal id
//! beyond the order and product references, no correlation ids. Which operator carries an
//! order is decided by its product's name ([`Operator::products`]); an order of a product no
//! operator carries is not exported.

use std::collections::HashMap;
use std::sync::Arc;

use order_contract::{OrderEvent, OrderId};
use product_contract::{Money, ProductEvent, ProductId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::App;
use tramline::export::{Export, PublicEvent};
use tramline::log::EventLog;
use tramline::runtime::RuntimeError;
use tramline::schema::FeedSchema;

/// The module's name: the `ce_source` of its feeds and the prefix of its consumer groups.
pub const MODULE: &str = "partner-feed";

/// A transport operator that receives a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Its id in feed names (`citybus` -> `public.orders.citybus`).
    pub id: &'static str,
    /// The names of the products it carries.
    pub products: &'static [&'static str],
}

impl Operator {
    /// The feed of this operator: `orders.<id>`.
    pub fn feed(&self) -> String {
        format!("orders.{}", self.id)
    }
}

/// The operators of the reference platform, by the products of the simulation.
pub const OPERATORS: &[Operator] = &[
    Operator { id: "citybus", products: &["Single ride", "Day pass"] },
    Operator { id: "airlink", products: &["Airport shuttle"] },
    Operator { id: "metro", products: &["Week pass", "Month pass"] },
];

/// A confirmed order, as a transport operator receives it: a reservation to honour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "OrderConfirmed")]
pub struct OrderConfirmed {
    /// The reservation's reference (the order).
    pub order_id: OrderId,
    /// The operator that carries it.
    pub operator: String,
    /// The product's reference.
    pub product_id: ProductId,
    /// The product's name.
    pub product: String,
    /// How many.
    pub quantity: u32,
    /// The price of one, in euro cents.
    pub unit_price_cents: i64,
    /// What the order cost in all, in euro cents.
    pub total_cents: i64,
    /// When the order was confirmed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub confirmed_at: String,
}

impl PublicEvent for OrderConfirmed {
    const NAME: &'static str = "OrderConfirmed";
    const VERSION: u32 = 1;
    type Key = OrderId;
    fn key(&self) -> &OrderId {
        &self.order_id
    }
}

/// What the export looks up: the products, folded from the product module's events.
#[derive(Debug, Default)]
pub struct Products {
    names: HashMap<ProductId, String>,
}

impl Products {
    fn fold(&mut self, event: &tramline::Envelope<ProductEvent>) {
        if let ProductEvent::Created { product_id, name, .. } = &event.payload {
            self.names.insert(*product_id, name.clone());
        }
    }

    /// Whether the order's product is carried by `operator`; an unknown product is let through
    /// so that the mapping dead-letters it rather than drop it.
    fn carried_by(&self, operator: &Operator, product_id: &ProductId) -> bool {
        self.names.get(product_id).is_none_or(|name| operator.products.contains(&name.as_str()))
    }
}

/// The export of one operator's feed.
pub fn export(operator: &Operator) -> Export<Products> {
    let description = format!(
        "Every confirmed order of a product that {} carries: the reservation to honour. Records are keyed by order; deduplicate by `ce_id`.",
        operator.id
    );
    let filter_operator = operator.clone();
    let map_operator = operator.id;
    Export::with_state(MODULE, operator.feed(), description, Products::default())
        .table::<ProductEvent>(Products::fold)
        .publish::<OrderEvent, OrderConfirmed>(
            move |products, event| match &event.payload {
                OrderEvent::Confirmed { product_id, .. } => products.carried_by(&filter_operator, product_id),
                _ => false,
            },
            move |products, event| {
                let OrderEvent::Confirmed { order_id, product_id, quantity, total, .. } = &event.payload else {
                    return Err("only confirmed orders are exported".to_owned());
                };
                let product = products
                    .names
                    .get(product_id)
                    .ok_or_else(|| format!("product {product_id} is not among the products created so far"))?;
                Ok(OrderConfirmed {
                    order_id: *order_id,
                    operator: map_operator.to_owned(),
                    product_id: *product_id,
                    product: product.clone(),
                    quantity: *quantity,
                    unit_price_cents: unit_price(*total, *quantity).as_cents(),
                    total_cents: total.as_cents(),
                    confirmed_at: event.time.to_string(),
                })
            },
        )
}

fn unit_price(total: Money, quantity: u32) -> Money {
    Money::cents(total.as_cents() / i64::from(quantity.max(1)))
}

/// Adds the partner feed to an app: one export per operator, written to `public` when given
/// (another log), else to the app's log.
pub async fn register(app: &mut App, public: Option<Arc<dyn EventLog>>) -> Result<(), RuntimeError> {
    for operator in OPERATORS {
        let export = export(operator);
        let export = match &public {
            Some(log) => export.to_log(log.clone()),
            None => export,
        };
        app.export(export).await?;
    }
    Ok(())
}

/// The feeds' contracts, for the catalog and the AsyncAPI document.
pub fn feeds(partitions: u32) -> Vec<FeedSchema> {
    OPERATORS.iter().map(|operator| export(operator).schema(partitions)).collect()
}
