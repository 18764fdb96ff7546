//! Sending tickets by e-mail: an outside service behind a trait.

use async_trait::async_trait;
use customer_contract::CustomerId;
use order_contract::OrderId;
use ticket_contract::TicketId;
use uuid::Uuid;

/// A ticket to mail to its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketMail {
    /// The same for every retry of one mail: the service sends it once.
    pub idempotency_key: Uuid,
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its order.
    pub order_id: OrderId,
    /// The holder; the mail service looks up the address with the customer module.
    pub customer_id: CustomerId,
}

/// The mail service failed; the mail is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mail service failed: {0}")]
pub struct MailError(pub String);

/// A mail service.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MailSender: Send + Sync + 'static {
    /// Sends one ticket mail.
    async fn send(&self, mail: &TicketMail) -> Result<(), MailError>;
}
