use tramline::ReferenceId;

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "ord")]
pub struct OrderId(uuid::Uuid, u32);

fn main() {}
