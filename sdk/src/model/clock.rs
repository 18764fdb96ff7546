//! Where "now" comes from: the system clock in production, virtual time in tests.

use jiff::Timestamp;

/// A source of the current time. The runtime stamps envelopes with it; tests use
/// [`VirtualClock`](crate::testing::VirtualClock) to control time.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
