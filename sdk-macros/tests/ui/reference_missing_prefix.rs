use tramline::ReferenceId;

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderId(uuid::Uuid);

fn main() {}
