//! The product module's contract: what is sold, at which price.

use std::fmt;
use std::ops::{Add, AddAssign};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::{Command, Event, ReferenceId};
use uuid::Uuid;

/// A reference to a product (a ticket type: a single ride, a day pass...).
#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "prd")]
pub struct ProductId(Uuid);

/// An amount of money in euro cents. Integer, so sums are exact.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    /// An amount in cents.
    pub const fn cents(cents: i64) -> Self {
        Money(cents)
    }

    /// The amount in cents.
    pub const fn as_cents(self) -> i64 {
        self.0
    }

    /// `quantity` times this amount, or `None` when that does not fit.
    pub fn checked_times(self, quantity: u32) -> Option<Money> {
        self.0.checked_mul(i64::from(quantity)).map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}€{}.{:02}", self.0.abs() / 100, self.0.abs() % 100)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        self.0 += other.0;
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::default(), Add::add)
    }
}

/// What can be asked of the product module.
#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[command(module = "product", key = product_id)]
pub enum ProductCommand {
    /// Adds a product to the range.
    Create {
        /// The new product.
        product_id: ProductId,
        /// Its name.
        name: String,
        /// Its price.
        price: Money,
    },
    /// Changes a product's price.
    ChangePrice {
        /// The product.
        product_id: ProductId,
        /// The new price.
        price: Money,
    },
}

/// What happened to products.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[event(module = "product", key = product_id)]
pub enum ProductEvent {
    /// A product was added, with its first price.
    Created {
        /// The product.
        product_id: ProductId,
        /// Its name.
        name: String,
        /// Its price.
        price: Money,
    },
    /// A product's price changed.
    Priced {
        /// The product.
        product_id: ProductId,
        /// The new price.
        price: Money,
    },
}
