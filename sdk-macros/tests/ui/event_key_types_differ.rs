use serde::{Deserialize, Serialize};
use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "ord")]
pub struct OrderId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "payment", key = payment_id)]
pub enum PaymentEvent {
    Created { payment_id: PaymentId },
    Completed { payment_id: OrderId },
}

fn main() {}
