//! The ticket module's contract: tickets issued for confirmed orders.

use customer_contract::CustomerId;
use order_contract::OrderId;
use product_contract::ProductId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::{Command, Event, ReferenceId};
use uuid::Uuid;

/// A reference to a ticket. A ticket is issued once per order: its ID derives from the order's.
#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "tkt")]
pub struct TicketId(Uuid);

/// What can be asked of the ticket module.
#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[command(module = "ticket", key = ticket_id)]
pub enum TicketCommand {
    /// Issues the ticket of a confirmed order.
    Issue {
        /// The new ticket.
        ticket_id: TicketId,
        /// The order it fulfils.
        order_id: OrderId,
        /// The holder.
        customer_id: CustomerId,
        /// What it is valid for.
        product_id: ProductId,
        /// For how many travellers.
        quantity: u32,
    },
}

/// What happened to tickets.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[event(module = "ticket", key = ticket_id)]
pub enum TicketEvent {
    /// A ticket was issued.
    Issued {
        /// The ticket.
        ticket_id: TicketId,
        /// The order it fulfils.
        order_id: OrderId,
        /// The holder.
        customer_id: CustomerId,
        /// What it is valid for.
        product_id: ProductId,
        /// For how many travellers.
        quantity: u32,
    },
}
