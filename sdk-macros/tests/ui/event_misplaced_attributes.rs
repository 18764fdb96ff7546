use serde::{Deserialize, Serialize};
use tramline::privacy::Personal;
use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "cus")]
pub struct CustomerId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "customer", key = customer_id)]
#[pii]
pub enum CustomerEvent {
    #[pii]
    Registered {
        customer_id: CustomerId,
        #[event(rename = "Name")]
        #[pii]
        name: Personal<String>,
    },
}

fn main() {}
