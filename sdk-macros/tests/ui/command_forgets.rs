use tramline::{Command, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "cus")]
pub struct CustomerId(uuid::Uuid);

#[derive(Command, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[command(module = "customer", key = customer_id)]
pub enum CustomerCommand {
    #[command(forgets)]
    Forget { customer_id: CustomerId },
}

fn main() {}
