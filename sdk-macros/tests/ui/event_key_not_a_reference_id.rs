use serde::{Deserialize, Serialize};
use tramline::Event;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "payment", key = payment_id)]
pub enum PaymentEvent {
    Completed { payment_id: String },
}

fn main() {}
