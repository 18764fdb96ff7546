use serde::{Deserialize, Serialize};
use tramline::{Event, Reaction, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "payment", key = payment_id)]
pub enum PaymentEvent {
    Completed { payment_id: PaymentId },
}

#[derive(Reaction)]
#[reaction(module = "order", subscribe(PaymentEvent))]
pub struct ConfirmPaidOrders;

fn main() {}
