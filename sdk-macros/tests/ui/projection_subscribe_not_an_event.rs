use tramline::Projection;

#[derive(Projection, Default)]
#[projection(subscribe(u64))]
pub struct OrderCount(u64);

fn main() {}
