use serde::{Deserialize, Serialize};
use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "payment", key = payment_id)]
pub struct PaymentCompleted {
    payment_id: PaymentId,
}

fn main() {}
