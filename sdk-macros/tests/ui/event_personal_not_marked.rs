use tramline::privacy::Personal;
use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "cus")]
pub struct CustomerId(uuid::Uuid);

#[derive(Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[event(module = "customer", key = customer_id)]
pub enum CustomerEvent {
    Registered {
        customer_id: CustomerId,
        #[pii]
        name: Personal<String>,
        email: Option<Personal<String>>,
    },
    #[event(forgets)]
    Forgotten { customer_id: CustomerId },
}

fn main() {}
