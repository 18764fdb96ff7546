use serde::{Deserialize, Serialize};
use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "Payment", key = payment_id)]
pub enum PaymentEvent<T> {
    Created { id: PaymentId },
    Completed(PaymentId, T),
    Refunded,
}

fn main() {}
