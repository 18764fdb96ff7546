use serde::{Deserialize, Serialize};
use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "payment", key = payment_id)]
pub enum PaymentEvent {
    Completed { payment_id: PaymentId },
    #[event(rename = "PaymentCompleted")]
    Settled { payment_id: PaymentId },
}

fn main() {}
