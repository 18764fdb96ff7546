use serde::{Deserialize, Serialize};
use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "cus")]
pub struct CustomerId(uuid::Uuid);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "customer", key = customer_id)]
pub enum CustomerEvent {
    #[event(rename = "customer/moved v2")]
    Moved { customer_id: CustomerId },
    #[event(rename = "2faEnabled")]
    TwoFactorEnabled { customer_id: CustomerId },
    #[event(rename = "CustomerRenamed_v2")]
    Renamed { customer_id: CustomerId },
}

fn main() {}
