//! The ticket data module: issues one ticket per confirmed order and mails it.

mod mail;

use std::sync::Arc;

use order_contract::OrderEvent;
use serde::{Deserialize, Serialize};
use ticket_contract::{TicketCommand, TicketEvent, TicketId};
use tramline::runtime::{CommandGateway, RuntimeError};
use tramline::{Aggregate, App, Envelope, React, Reaction, ReferenceId};

#[cfg(any(test, feature = "mocks"))]
pub use mail::MockMailSender;
pub use mail::{MailError, MailSender, TicketMail};
pub use ticket_contract as contract;

/// One ticket.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    issued: bool,
}

/// Why the ticket module rejects a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum TicketError {
    /// A second Issue for the same ticket (hence the same order).
    #[error("ticket {0} is already issued")]
    AlreadyIssued(TicketId),
    /// A ticket for nobody.
    #[error("a ticket is for at least one traveller")]
    NoQuantity,
}

impl Aggregate for Ticket {
    type Command = TicketCommand;
    type Event = TicketEvent;
    type Error = TicketError;
    type Services = ();

    fn decide(&self, command: &TicketCommand, _: &()) -> Result<Vec<TicketEvent>, TicketError> {
        let TicketCommand::Issue { ticket_id, order_id, customer_id, product_id, quantity } = *command;
        if self.issued {
            return Err(TicketError::AlreadyIssued(ticket_id));
        }
        if quantity == 0 {
            return Err(TicketError::NoQuantity);
        }
        Ok(vec![TicketEvent::Issued { ticket_id, order_id, customer_id, product_id, quantity }])
    }

    fn evolve(&mut self, event: &TicketEvent) {
        match event {
            TicketEvent::Issued { .. } => self.issued = true,
        }
    }
}

/// Issues the ticket of each confirmed order. The ticket's ID derives from the order's, so an
/// order can never get two tickets.
#[derive(Reaction)]
#[reaction(module = "ticket", commands = TicketCommand, subscribe(OrderEvent))]
pub struct IssueTickets;

impl React<OrderEvent> for IssueTickets {
    async fn react(&self, event: &Envelope<OrderEvent>) -> Result<Vec<TicketCommand>, Self::Error> {
        Ok(match event.payload {
            OrderEvent::Confirmed { order_id, customer_id, product_id, quantity, .. } => vec![TicketCommand::Issue {
                ticket_id: TicketId::derived_from(&order_id),
                order_id,
                customer_id,
                product_id,
                quantity,
            }],
            OrderEvent::Placed { .. } | OrderEvent::Cancelled { .. } => Vec::new(),
        })
    }
}

/// Mails each issued ticket to its holder: a side effect, at least once, with the event id as
/// the idempotency key so that the mail service sends it once.
#[derive(Reaction)]
#[reaction(module = "ticket", error = MailError, subscribe(TicketEvent))]
pub struct MailTickets {
    mailer: Arc<dyn MailSender>,
}

impl MailTickets {
    /// Mails through this sender.
    pub fn new(mailer: Arc<dyn MailSender>) -> Self {
        MailTickets { mailer }
    }
}

impl React<TicketEvent> for MailTickets {
    async fn react(&self, event: &Envelope<TicketEvent>) -> Result<Vec<tramline::NoCommand>, MailError> {
        let TicketEvent::Issued { ticket_id, order_id, customer_id, .. } = event.payload;
        let mail = TicketMail { idempotency_key: event.id, ticket_id, order_id, customer_id };
        self.mailer.send(&mail).await?;
        Ok(Vec::new())
    }
}

/// Adds the ticket module to an app: the tickets, issuing, and mailing.
pub async fn register(app: &mut App, mailer: Arc<dyn MailSender>) -> Result<CommandGateway<Ticket>, RuntimeError> {
    let tickets = app.aggregate::<Ticket>(()).await?;
    app.reaction(IssueTickets).await?;
    app.reaction(MailTickets::new(mailer)).await?;
    Ok(tickets)
}

#[cfg(test)]
mod tests {
    use customer_contract::CustomerId;
    use order_contract::OrderId;
    use product_contract::{Money, ProductId};
    use tramline::testing::{AggregateTest, ReactionTest};

    use super::*;

    fn issue(ticket_id: TicketId, order_id: OrderId) -> TicketCommand {
        TicketCommand::Issue {
            ticket_id,
            order_id,
            customer_id: CustomerId::generate(),
            product_id: ProductId::generate(),
            quantity: 2,
        }
    }

    #[test]
    fn issues_a_ticket_once() {
        let (ticket_id, order_id) = (TicketId::generate(), OrderId::generate());
        let decided = AggregateTest::<Ticket>::new().when(issue(ticket_id, order_id));
        let events = decided.into_result().expect("issued");
        assert!(matches!(events[..], [TicketEvent::Issued { ticket_id: t, .. }] if t == ticket_id));
        AggregateTest::<Ticket>::new()
            .given(events)
            .when(issue(ticket_id, order_id))
            .then_rejected_with(TicketError::AlreadyIssued(ticket_id));
    }

    #[tokio::test]
    async fn issues_the_ticket_of_a_confirmed_order_only() {
        let (order_id, customer_id, product_id) = (OrderId::generate(), CustomerId::generate(), ProductId::generate());
        let mut test = ReactionTest::new(IssueTickets);
        test.when(OrderEvent::Confirmed { order_id, customer_id, product_id, quantity: 2, total: Money::cents(400) })
            .await
            .then_commands([TicketCommand::Issue {
                ticket_id: TicketId::derived_from(&order_id),
                order_id,
                customer_id,
                product_id,
                quantity: 2,
            }]);
        test.when(OrderEvent::Cancelled { order_id, customer_id, reason: "declined".into() })
            .await
            .then_nothing();
    }

    #[tokio::test]
    async fn mails_issued_tickets_with_the_event_id_as_key() {
        let (ticket_id, order_id, customer_id) = (TicketId::generate(), OrderId::generate(), CustomerId::generate());
        let event = Envelope::new(
            TicketEvent::Issued { ticket_id, order_id, customer_id, product_id: ProductId::generate(), quantity: 1 },
            jiff::Timestamp::UNIX_EPOCH,
        );
        let key = event.id;
        let mut mailer = MockMailSender::new();
        mailer
            .expect_send()
            .withf(move |mail| mail.idempotency_key == key && mail.ticket_id == ticket_id)
            .times(1)
            .returning(|_| Ok(()));
        ReactionTest::new(MailTickets::new(Arc::new(mailer))).when_envelope(&event).await.then_nothing();
    }
}
