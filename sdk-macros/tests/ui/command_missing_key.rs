use serde::{Deserialize, Serialize};
use tramline::{Command, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
#[command(module = "payment")]
pub enum PaymentCommand {
    Create { payment_id: PaymentId },
}

fn main() {}
