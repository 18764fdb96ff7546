use tramline::ReferenceId;

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "Order_")]
pub struct OrderId(uuid::Uuid);

fn main() {}
