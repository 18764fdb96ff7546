//! Virtual time: a clock that moves only when the test says so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use crate::model::Clock;

/// A clock under the test's control. Clones share the same time.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl Default for VirtualClock {
    /// Starts at 2026-01-01T00:00:00Z.
    fn default() -> Self {
        VirtualClock::at(Timestamp::from_second(1_767_225_600).expect("a valid timestamp"))
    }
}

impl VirtualClock {
    /// A clock showing `time`.
    pub fn at(time: Timestamp) -> Self {
        VirtualClock { now: Arc::new(Mutex::new(time)) }
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now.checked_add(by).expect("virtual time stays within jiff's range");
    }

    /// Sets the time.
    pub fn set(&self, time: Timestamp) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = time;
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
