//! The payment service provider (PSP): the outside party that decides whether the money is
//! taken. Behind a trait, so that tests and the simulation can stand in for it.

use async_trait::async_trait;
use order_contract::OrderId;
use payment_contract::PaymentId;
use product_contract::Money;
use uuid::Uuid;

/// A request to take money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The payment.
    pub payment_id: PaymentId,
    /// The order it pays.
    pub order_id: OrderId,
    /// How much.
    pub amount: Money,
    /// The same key for every retry of one charge: the PSP charges it once.
    pub idempotency_key: Uuid,
}

/// The PSP's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeDecision {
    /// The money was taken.
    Approved,
    /// It was not, for this reason.
    Declined {
        /// Why (as the PSP says it).
        reason: String,
    },
}

/// The PSP could not be reached or failed; the charge is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment service provider failed: {0}")]
pub struct ProviderError(pub String);

/// A payment service provider.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Tries to take the money.
    async fn charge(&self, charge: &Charge) -> Result<ChargeDecision, ProviderError>;
}
