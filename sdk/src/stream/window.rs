//! Windows on event time, as Kafka Streams and ksqlDB define them: tumbling and hopping windows
//! aligned to the epoch, each `[start, end)`; session windows that grow while records come
//! within an inactivity gap and merge when a record bridges two of them.
//!
//! Times are milliseconds since the Unix epoch.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// ksqlDB's grace period when a query gives none: 24 hours.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// One window of one key. Tumbling and hopping windows are `[start, end)`; a session's `start`
/// and `end` are the times of its first and last record (both inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// The first millisecond inside.
    pub start: i64,
    /// The first millisecond after a time window; the last record's time of a session.
    pub end: i64,
}

/// The shape of the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// Back-to-back windows of one size.
    Tumbling {
        /// The size.
        size: Duration,
    },
    /// Windows of one size starting every `advance`; they overlap when `advance < size`.
    Hopping {
        /// The size.
        size: Duration,
        /// The distance between two window starts.
        advance: Duration,
    },
    /// One window per burst of activity of a key, closed by `gap` without records.
    Session {
        /// The inactivity gap.
        gap: Duration,
    },
}

/// Windows with the grace period that late records get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Windowing {
    /// The shape.
    pub kind: WindowKind,
    /// How long after a window's end a late record is still counted.
    pub grace: Duration,
}

/// Why windows cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// A size, advance or gap of zero (or below a millisecond).
    #[error("the window {0} must be at least one millisecond")]
    Empty(&'static str),
    /// A hopping window advancing by more than its size would leave gaps no window covers.
    #[error("a hopping window's ADVANCE BY ({advance:?}) must not exceed its SIZE ({size:?})")]
    AdvanceExceedsSize {
        /// The size.
        size: Duration,
        /// The advance.
        advance: Duration,
    },
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Windowing {
    /// Tumbling windows of `size` with a grace period.
    pub fn tumbling(size: Duration, grace: Duration) -> Result<Self, WindowError> {
        Windowing { kind: WindowKind::Tumbling { size }, grace }.checked()
    }

    /// Hopping windows of `size` starting every `advance`, with a grace period.
    pub fn hopping(size: Duration, advance: Duration, grace: Duration) -> Result<Self, WindowError> {
        Windowing { kind: WindowKind::Hopping { size, advance }, grace }.checked()
    }

    /// Session windows closed by `gap` without records, with a grace period.
    pub fn session(gap: Duration, grace: Duration) -> Result<Self, WindowError> {
        Windowing { kind: WindowKind::Session { gap }, grace }.checked()
    }

    fn checked(self) -> Result<Self, WindowError> {
        match self.kind {
            WindowKind::Tumbling { size } if millis(size) < 1 => Err(WindowError::Empty("SIZE")),
            WindowKind::Hopping { size, .. } if millis(size) < 1 => Err(WindowError::Empty("SIZE")),
            WindowKind::Hopping { advance, .. } if millis(advance) < 1 => Err(WindowError::Empty("ADVANCE BY")),
            WindowKind::Hopping { size, advance } if advance > size => {
                Err(WindowError::AdvanceExceedsSize { size, advance })
            }
            WindowKind::Session { gap } if millis(gap) < 1 => Err(WindowError::Empty("session gap")),
            _ => Ok(self),
        }
    }

    /// The time windows (tumbling or hopping) a record at `time` belongs to, earliest first.
    /// Empty for session windows, which [`merge_session`] assigns.
    pub fn windows_for(&self, time: i64) -> impl Iterator<Item = Window> + use<> {
        let (size, advance) = match self.kind {
            WindowKind::Tumbling { size } => (millis(size), millis(size)),
            WindowKind::Hopping { size, advance } => (millis(size), millis(advance)),
            WindowKind::Session { .. } => (0, 1),
        };
        // The latest window start at or before `time`, aligned to the epoch; earlier starts
        // whose window still reaches past `time` hold it too.
        let last = time.div_euclid(advance) * advance;
        let first = last - ((size - 1).max(0) / advance) * advance;
        (0..)
            .map(move |i| first + i * advance)
            .take_while(move |start| *start <= last)
            .filter(move |start| start + size > time)
            .map(move |start| Window { start, end: start + size })
    }

    /// When a window stops taking records and closes: `end + grace` for time windows,
    /// `last record + gap + grace` for a session.
    pub fn close_time(&self, window: Window) -> i64 {
        let open = match self.kind {
            WindowKind::Session { gap } => window.end.saturating_add(millis(gap)),
            _ => window.end,
        };
        open.saturating_add(millis(self.grace))
    }

    /// Whether a window has closed at this stream time (DESIGN.md: dropped and closed when
    /// `window end + grace <= stream time`).
    pub fn is_closed(&self, window: Window, stream_time: i64) -> bool {
        self.close_time(window) <= stream_time
    }
}

/// What adding a record at one time does to a key's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMerge {
    /// The session the record belongs to now.
    pub merged: Window,
    /// The earlier sessions it absorbed (their aggregates fold into `merged`).
    pub absorbed: Vec<Window>,
}

/// Session assignment: the sessions a record at `time` touches are those whose
/// `[start - gap, end + gap]` holds it; they and the record become one session.
pub fn merge_session(sessions: impl IntoIterator<Item = Window>, time: i64, gap: Duration) -> SessionMerge {
    let gap = millis(gap);
    let mut merged = Window { start: time, end: time };
    let mut absorbed = Vec::new();
    for session in sessions {
        if session.start.saturating_sub(gap) <= time && time <= session.end.saturating_add(gap) {
            merged.start = merged.start.min(session.start);
            merged.end = merged.end.max(session.end);
            absorbed.push(session);
        }
    }
    absorbed.sort();
    SessionMerge { merged, absorbed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    fn tumbling(minutes: u64) -> Windowing {
        Windowing::tumbling(Duration::from_secs(minutes * 60), Duration::ZERO).unwrap()
    }

    #[test]
    fn a_record_at_exactly_a_window_end_belongs_to_the_next_window() {
        let w = tumbling(10);
        assert_eq!(w.windows_for(10 * MIN - 1).collect::<Vec<_>>(), [Window { start: 0, end: 10 * MIN }]);
        assert_eq!(w.windows_for(10 * MIN).collect::<Vec<_>>(), [Window { start: 10 * MIN, end: 20 * MIN }]);
    }

    #[test]
    fn windows_align_to_the_epoch_before_it_too() {
        let w = tumbling(10);
        assert_eq!(w.windows_for(-1).collect::<Vec<_>>(), [Window { start: -10 * MIN, end: 0 }]);
    }

    #[test]
    fn hopping_windows_overlap() {
        let w = Windowing::hopping(Duration::from_secs(600), Duration::from_secs(300), Duration::ZERO).unwrap();
        let windows: Vec<_> = w.windows_for(7 * MIN).collect();
        assert_eq!(windows, [Window { start: 0, end: 10 * MIN }, Window { start: 5 * MIN, end: 15 * MIN }]);
        // At a hop boundary the window that ends there is out, the one that starts there in.
        let windows: Vec<_> = w.windows_for(10 * MIN).collect();
        assert_eq!(windows, [Window { start: 5 * MIN, end: 15 * MIN }, Window { start: 10 * MIN, end: 20 * MIN }]);
    }

    #[test]
    fn bad_windows_are_refused() {
        assert_eq!(Windowing::tumbling(Duration::ZERO, Duration::ZERO), Err(WindowError::Empty("SIZE")));
        assert!(matches!(
            Windowing::hopping(Duration::from_secs(1), Duration::from_secs(2), Duration::ZERO),
            Err(WindowError::AdvanceExceedsSize { .. })
        ));
    }

    #[test]
    fn a_record_between_two_sessions_within_the_gap_merges_them() {
        let gap = Duration::from_secs(60);
        let sessions = [Window { start: 0, end: 10_000 }, Window { start: 100_000, end: 120_000 }];
        let merge = merge_session(sessions, 60_000, gap);
        assert_eq!(merge.merged, Window { start: 0, end: 120_000 });
        assert_eq!(merge.absorbed.len(), 2);
        // Beyond the gap of both: a session of its own.
        let merge = merge_session(sessions, 200_000, gap);
        assert_eq!((merge.merged, merge.absorbed.len()), (Window { start: 200_000, end: 200_000 }, 0));
    }

    #[test]
    fn a_session_closes_a_gap_and_a_grace_after_its_last_record() {
        let w = Windowing::session(Duration::from_secs(60), Duration::from_secs(30)).unwrap();
        let session = Window { start: 0, end: 10_000 };
        assert!(!w.is_closed(session, 99_999));
        assert!(w.is_closed(session, 100_000));
    }

    proptest! {
        #[test]
        fn every_time_window_holds_the_record_and_is_aligned(
            time in -1_000_000_000i64..1_000_000_000,
            size in 1u64..100_000,
            hops in 1u64..8,
        ) {
            let advance = (size / hops).max(1);
            let w = Windowing::hopping(Duration::from_millis(size), Duration::from_millis(advance), Duration::ZERO).unwrap();
            let windows: Vec<_> = w.windows_for(time).collect();
            // Exactly the windows whose start is a multiple of the advance and that hold `time`.
            let size = size as i64;
            let advance = advance as i64;
            let expected = (0..=size / advance + 1)
                .map(|i| (time.div_euclid(advance) - i) * advance)
                .filter(|start| *start <= time && time < start + size)
                .count();
            prop_assert_eq!(windows.len(), expected);
            for pair in windows.windows(2) {
                prop_assert!(pair[0].start < pair[1].start);
            }
            for window in windows {
                prop_assert!(window.start <= time && time < window.end);
                prop_assert_eq!(window.start.rem_euclid(advance), 0);
                prop_assert_eq!(window.end - window.start, size);
            }
        }

        #[test]
        fn a_tumbling_window_is_the_one_window_of_a_record(time in any::<i32>(), size in 1u64..10_000_000) {
            let w = Windowing::tumbling(Duration::from_millis(size), Duration::ZERO).unwrap();
            let windows: Vec<_> = w.windows_for(i64::from(time)).collect();
            prop_assert_eq!(windows.len(), 1);
            prop_assert!(windows[0].start <= i64::from(time) && i64::from(time) < windows[0].end);
        }

        #[test]
        fn merged_sessions_never_overlap_and_cover_every_record(times in proptest::collection::vec(0i64..1_000_000, 1..60), gap in 1u64..50_000) {
            let gap_d = Duration::from_millis(gap);
            let mut sessions: Vec<Window> = Vec::new();
            for time in &times {
                let merge = merge_session(sessions.iter().copied(), *time, gap_d);
                sessions.retain(|s| !merge.absorbed.contains(s));
                sessions.push(merge.merged);
                sessions.sort();
            }
            for pair in sessions.windows(2) {
                // Two sessions apart by more than the gap: otherwise they would have merged.
                prop_assert!(pair[0].end + gap as i64 <= pair[1].start);
            }
            for time in &times {
                prop_assert!(sessions.iter().any(|s| s.start <= *time && *time <= s.end));
            }
        }
    }
}
