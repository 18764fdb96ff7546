//! The product data module: the range of tickets on sale and their prices.

use product_contract::{Money, ProductCommand, ProductEvent, ProductId};
use serde::{Deserialize, Serialize};
use tramline::runtime::{CommandGateway, RuntimeError};
use tramline::{Aggregate, App};

pub use product_contract as contract;

/// One product.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    price: Option<Money>,
}

/// Why the product module rejects a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProductError {
    /// Create for an ID that is taken.
    #[error("product {0} already exists")]
    AlreadyExists(ProductId),
    /// A command for a product that does not exist.
    #[error("product {0} does not exist")]
    Unknown(ProductId),
    /// A price of zero or less.
    #[error("a price must be positive, not {0}")]
    InvalidPrice(Money),
    /// A blank name.
    #[error("a product's name cannot be blank")]
    BlankName,
}

fn valid_price(price: Money) -> Result<(), ProductError> {
    if price.as_cents() > 0 { Ok(()) } else { Err(ProductError::InvalidPrice(price)) }
}

impl Aggregate for Product {
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;
    type Services = ();

    fn decide(&self, command: &ProductCommand, _: &()) -> Result<Vec<ProductEvent>, ProductError> {
        match (command, self.price) {
            (ProductCommand::Create { product_id, .. }, Some(_)) => Err(ProductError::AlreadyExists(*product_id)),
            (ProductCommand::Create { product_id, name, price }, None) => {
                if name.trim().is_empty() {
                    return Err(ProductError::BlankName);
                }
                valid_price(*price)?;
                Ok(vec![ProductEvent::Created { product_id: *product_id, name: name.clone(), price: *price }])
            }
            (ProductCommand::ChangePrice { product_id, .. }, None) => Err(ProductError::Unknown(*product_id)),
            (ProductCommand::ChangePrice { price, .. }, Some(current)) if *price == current => Ok(Vec::new()),
            (ProductCommand::ChangePrice { product_id, price }, Some(_)) => {
                valid_price(*price)?;
                Ok(vec![ProductEvent::Priced { product_id: *product_id, price: *price }])
            }
        }
    }

    fn evolve(&mut self, event: &ProductEvent) {
        match event {
            ProductEvent::Created { price, .. } | ProductEvent::Priced { price, .. } => self.price = Some(*price),
        }
    }
}

/// Adds the product module to an app.
pub async fn register(app: &mut App) -> Result<CommandGateway<Product>, RuntimeError> {
    app.aggregate::<Product>(()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tramline::ReferenceId;
    use tramline::testing::AggregateTest;

    fn created(id: ProductId) -> ProductEvent {
        ProductEvent::Created { product_id: id, name: "Day pass".into(), price: Money::cents(800) }
    }

    #[test]
    fn creates_and_prices_a_product() {
        let id = ProductId::generate();
        AggregateTest::<Product>::new()
            .when(ProductCommand::Create { product_id: id, name: "Day pass".into(), price: Money::cents(800) })
            .then_events([created(id)])
            .and_when(ProductCommand::ChangePrice { product_id: id, price: Money::cents(900) })
            .then_events([ProductEvent::Priced { product_id: id, price: Money::cents(900) }])
            .and_when(ProductCommand::ChangePrice { product_id: id, price: Money::cents(900) })
            .then_events([]);
    }

    #[test]
    fn rejects_invalid_products() {
        let id = ProductId::generate();
        AggregateTest::<Product>::new()
            .when(ProductCommand::Create { product_id: id, name: "Ride".into(), price: Money::cents(0) })
            .then_rejected_with(ProductError::InvalidPrice(Money::cents(0)));
        AggregateTest::<Product>::new()
            .given([created(id)])
            .when(ProductCommand::Create { product_id: id, name: "Ride".into(), price: Money::cents(1) })
            .then_rejected_with(ProductError::AlreadyExists(id));
        AggregateTest::<Product>::new()
            .when(ProductCommand::ChangePrice { product_id: id, price: Money::cents(1) })
            .then_rejected_with(ProductError::Unknown(id));
    }
}
