use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "cus")]
pub struct CustomerId(uuid::Uuid);

/// Marked, but nothing in it would be sealed.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Contact {
    email: String,
}

#[derive(Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[event(module = "customer", key = customer_id)]
pub enum CustomerEvent {
    Registered {
        customer_id: CustomerId,
        #[pii]
        email: String,
        #[pii]
        contact: Contact,
    },
}

fn main() {}
