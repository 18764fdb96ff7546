//! The platform's clock: the system's, unless a simulation pins it to simulated time, so that
//! event times (and the windows of stream queries over them) follow the simulation's timeline
//! instead of how fast the machine runs it.

use std::sync::Mutex;

use jiff::Timestamp;
use tramline::Clock;

/// The system clock, or a pinned instant.
#[derive(Debug, Default)]
pub struct ShopClock {
    pinned: Mutex<Option<Timestamp>>,
}

impl ShopClock {
    /// From now on, `now()` is `at`.
    pub fn pin(&self, at: Timestamp) {
        *self.pinned.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// Back to the system clock.
    pub fn release(&self) {
        *self.pinned.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Clock for ShopClock {
    fn now(&self) -> Timestamp {
        self.pinned.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or_else(Timestamp::now)
    }
}
