use serde::{Deserialize, Serialize};
use tramline::{Command, Envelope, Event, React, Reaction, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "ord")]
pub struct OrderId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "payment", key = order_id)]
pub enum PaymentEvent {
    Completed { order_id: OrderId },
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
#[command(module = "order", key = order_id)]
pub enum OrderCommand {
    Confirm { order_id: OrderId },
}

/// Confirms orders, but does not declare `commands = OrderCommand`.
#[derive(Reaction)]
#[reaction(module = "order", subscribe(PaymentEvent))]
pub struct ConfirmPaidOrders;

impl React<PaymentEvent> for ConfirmPaidOrders {
    async fn react(&self, event: &Envelope<PaymentEvent>) -> Result<Vec<OrderCommand>, std::convert::Infallible> {
        let PaymentEvent::Completed { order_id } = event.payload;
        Ok(vec![OrderCommand::Confirm { order_id }])
    }
}

fn main() {}
