use serde::{Deserialize, Serialize};
use tramline::{Envelope, Event, React, Reaction, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "payment", key = payment_id)]
pub enum PaymentEvent {
    Completed { payment_id: PaymentId },
}

#[derive(Reaction)]
#[reaction(module = "order", subscribe(PaymentEvent, String))]
pub struct ConfirmPaidOrders;

impl React<PaymentEvent> for ConfirmPaidOrders {
    async fn react(&self, _: &Envelope<PaymentEvent>) -> Result<Vec<tramline::NoCommand>, Self::Error> {
        Ok(vec![])
    }
}

fn main() {}
