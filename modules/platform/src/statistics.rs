//! Counts of what happened on the platform, for the summary and its invariants.

use std::collections::{HashMap, HashSet};

use order_contract::{OrderEvent, OrderId};
use payment_contract::PaymentEvent;
use product_contract::Money;
use ticket_contract::TicketEvent;
use tramline::{Envelope, Handle, Projection};

/// Counts of events by type, and tickets per order.
#[derive(Debug, Default, Projection)]
#[projection(module = "platform", name = "statistics", subscribe(OrderEvent, PaymentEvent, TicketEvent))]
pub struct Statistics {
    /// OrderPlaced events.
    pub orders_placed: u64,
    /// OrderConfirmed events.
    pub orders_confirmed: u64,
    /// OrderCancelled events.
    pub orders_cancelled: u64,
    /// PaymentCreated events.
    pub payments_created: u64,
    /// PaymentCompleted events.
    pub payments_completed: u64,
    /// PaymentCancelled events.
    pub payments_cancelled: u64,
    /// TicketIssued events.
    pub tickets_issued: u64,
    /// The sum of the totals of OrderConfirmed events.
    pub confirmed_revenue: Money,
    /// Tickets issued per order.
    pub tickets_per_order: HashMap<OrderId, u32>,
    /// Orders placed whose payment was not created (yet): a reservation in flight, or one a
    /// killed process left between its two steps. Their placement, by order.
    pub awaiting_payment: HashMap<OrderId, Envelope<OrderEvent>>,
    /// Orders whose payment this projection read before their placement (another topic).
    paid_before_placed: HashSet<OrderId>,
}

impl Statistics {
    /// Orders that got more than one ticket.
    pub fn orders_with_several_tickets(&self) -> usize {
        self.tickets_per_order.values().filter(|n| **n > 1).count()
    }
}

impl Handle<OrderEvent> for Statistics {
    fn handle(&mut self, event: &Envelope<OrderEvent>) {
        match event.payload {
            OrderEvent::Placed { order_id, .. } => {
                self.orders_placed += 1;
                if !self.paid_before_placed.remove(&order_id) {
                    self.awaiting_payment.insert(order_id, event.clone());
                }
            }
            OrderEvent::Confirmed { total, .. } => {
                self.orders_confirmed += 1;
                self.confirmed_revenue += total;
            }
            OrderEvent::Cancelled { .. } => self.orders_cancelled += 1,
        }
    }
}

impl Handle<PaymentEvent> for Statistics {
    fn handle(&mut self, event: &Envelope<PaymentEvent>) {
        match event.payload {
            PaymentEvent::Created { order_id, .. } => {
                self.payments_created += 1;
                if self.awaiting_payment.remove(&order_id).is_none() {
                    self.paid_before_placed.insert(order_id);
                }
            }
            PaymentEvent::Completed { .. } => self.payments_completed += 1,
            PaymentEvent::Cancelled { .. } => self.payments_cancelled += 1,
        }
    }
}

impl Handle<TicketEvent> for Statistics {
    fn handle(&mut self, event: &Envelope<TicketEvent>) {
        let TicketEvent::Issued { order_id, .. } = event.payload;
        self.tickets_issued += 1;
        *self.tickets_per_order.entry(order_id).or_default() += 1;
    }
}
