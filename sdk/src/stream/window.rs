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

impl Window {
    /// All time: the one window of an aggregation without windows ([`WindowKind::Global`]).
    pub const ALL: Window = Window { start: i64::MIN, end: i64::MAX };
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
    /// No windows: one aggregate per key over all time, never closed ([`Window::ALL`]); an
    /// aggregation without `WINDOW`, as ksqlDB's tables and Kafka Streams' `KGroupedStream::count`.
    Global,
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
    /// A duration longer than `i64::MAX` milliseconds, the range of event times.
    #[error("the window {0} is too large: at most {max} milliseconds (about 292 million years)", max = i64::MAX)]
    TooLarge(&'static str),
    /// A hopping window advancing by more than its size would leave gaps no window covers.
    #[error("a hopping window's ADVANCE BY ({advance:?}) must not exceed its SIZE ({size:?})")]
    AdvanceExceedsSize {
        /// The size.
        size: Duration,
        /// The advance.
        advance: Duration,
    },
    /// Hopping windows so overlapping that each record would count in more than
    /// [`MAX_WINDOWS_PER_RECORD`] of them (one day advancing by a millisecond: 86,400,000), whose
    /// state no machine holds.
    #[error(
        "a hopping window of SIZE {size:?} advancing by {advance:?} puts each record in {windows} windows; \
         at most {max} are allowed: advance by at least {least:?}",
        max = MAX_WINDOWS_PER_RECORD,
        least = Duration::from_millis(size.as_millis().div_ceil(MAX_WINDOWS_PER_RECORD as u128) as u64)
    )]
    TooManyWindows {
        /// The size.
        size: Duration,
        /// The advance.
        advance: Duration,
        /// Windows per record.
        windows: u64,
    },
}

/// The most hopping windows one record may fall in (`SIZE` / `ADVANCE BY`): one day advancing by
/// ten seconds is 8,640.
pub const MAX_WINDOWS_PER_RECORD: u64 = 10_000;

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Whether a duration has more milliseconds than event times can hold.
pub(crate) fn too_large(duration: Duration) -> bool {
    duration.as_millis() > i64::MAX as u128
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

    /// No windows: one aggregate per key over all time ([`WindowKind::Global`]). No record is
    /// ever late.
    pub const fn global() -> Self {
        Windowing { kind: WindowKind::Global, grace: Duration::ZERO }
    }

    /// Whether records are aggregated per window (not [`WindowKind::Global`]): the rows then
    /// carry their window.
    pub fn is_windowed(&self) -> bool {
        self.kind != WindowKind::Global
    }

    pub(crate) fn checked(self) -> Result<Self, WindowError> {
        let fits = |duration: Duration, what| match too_large(duration) {
            true => Err(WindowError::TooLarge(what)),
            false => Ok(()),
        };
        match self.kind {
            WindowKind::Tumbling { size } => fits(size, "SIZE")?,
            WindowKind::Hopping { size, advance } => fits(size, "SIZE").and(fits(advance, "ADVANCE BY"))?,
            WindowKind::Session { gap } => fits(gap, "session gap")?,
            WindowKind::Global => {}
        }
        fits(self.grace, "GRACE PERIOD")?;
        match self.kind {
            WindowKind::Tumbling { size } if millis(size) < 1 => Err(WindowError::Empty("SIZE")),
            WindowKind::Hopping { size, .. } if millis(size) < 1 => Err(WindowError::Empty("SIZE")),
            WindowKind::Hopping { advance, .. } if millis(advance) < 1 => Err(WindowError::Empty("ADVANCE BY")),
            WindowKind::Hopping { size, advance } if advance > size => {
                Err(WindowError::AdvanceExceedsSize { size, advance })
            }
            WindowKind::Hopping { size, advance }
                if (millis(size) as u64).div_ceil(millis(advance) as u64) > MAX_WINDOWS_PER_RECORD =>
            {
                let windows = (millis(size) as u64).div_ceil(millis(advance) as u64);
                Err(WindowError::TooManyWindows { size, advance, windows })
            }
            WindowKind::Session { gap } if millis(gap) < 1 => Err(WindowError::Empty("session gap")),
            _ => Ok(self),
        }
    }

    /// The time windows (tumbling or hopping) a record at `time` belongs to, earliest first;
    /// [`Window::ALL`] without windows. Empty for session windows, which [`merge_session`]
    /// assigns.
    ///
    /// Never overflows: a window that would start before `i64::MIN` starts there, one that would
    /// end after `i64::MAX` ends there.
    pub fn windows_for(&self, time: i64) -> impl Iterator<Item = Window> + use<> {
        let (size, advance) = match self.kind {
            WindowKind::Tumbling { size } => (millis(size), millis(size)),
            WindowKind::Hopping { size, advance } => (millis(size), millis(advance)),
            WindowKind::Session { .. } | WindowKind::Global => (0, 1),
        };
        // Windows are epoch-aligned: the latest starts `offset` before `time`, each earlier one
        // `advance` before the next, as long as it still reaches past `time`. Distances from
        // `time` stay below `size`, so they never overflow where absolute starts might.
        let offset = time.rem_euclid(advance);
        let count = if size > offset { (size - offset - 1) / advance + 1 } else { 0 };
        let starts_too_early = move |distance: i64| time.checked_sub(distance).is_none();
        (0..count)
            .rev()
            .map(move |hops| offset + hops * advance)
            // Of the windows that would start before i64::MIN, only the latest is kept (starting
            // there): two windows of one key must not share a start.
            .filter(move |&distance| {
                !(starts_too_early(distance) && distance >= advance && starts_too_early(distance - advance))
            })
            .map(move |distance| Window {
                start: time.checked_sub(distance).unwrap_or(i64::MIN),
                end: time.saturating_add(size - distance),
            })
            .chain((self.kind == WindowKind::Global).then_some(Window::ALL))
    }

    /// The stream time at which a window stops taking records and closes. A time window's end
    /// is outside it: it closes at `end + grace`. A session's end is its last record, inside
    /// it: as in Kafka Streams, it is late only once `end + gap + grace` is behind the stream
    /// time, so it closes a millisecond after that.
    ///
    /// [`Window::ALL`] closes at `i64::MAX`, which no stream time reaches: only the end of a
    /// bounded input closes it.
    pub fn close_time(&self, window: Window) -> i64 {
        let open = match self.kind {
            WindowKind::Session { gap } => window.end.saturating_add(millis(gap)).saturating_add(1),
            _ => window.end,
        };
        open.saturating_add(millis(self.grace))
    }

    /// Whether a window has closed at this stream time (DESIGN.md: dropped and closed when
    /// `window end + grace <= stream time`; `< stream time` for a session, see
    /// [`Windowing::close_time`]). Never without windows.
    pub fn is_closed(&self, window: Window, stream_time: i64) -> bool {
        self.kind != WindowKind::Global && self.close_time(window) <= stream_time
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
        let day = Duration::from_secs(86_400);
        assert!(Windowing::hopping(day, Duration::from_secs(9), Duration::ZERO).is_ok(), "9,600 windows");
        let refused = Windowing::hopping(day, Duration::from_millis(1), Duration::ZERO).unwrap_err();
        assert_eq!(
            refused,
            WindowError::TooManyWindows { size: day, advance: Duration::from_millis(1), windows: 86_400_000 }
        );
        assert!(refused.to_string().contains("advance by at least 8.64s"), "{refused}");
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
    fn a_session_closes_strictly_after_a_gap_and_a_grace_after_its_last_record() {
        let w = Windowing::session(Duration::from_secs(60), Duration::from_secs(30)).unwrap();
        let session = Window { start: 0, end: 10_000 };
        // Its end is its last record, inside it: a record at 70s may still join it at 100s.
        assert!(!w.is_closed(session, 100_000));
        assert!(w.is_closed(session, 100_001));
        // A time window's end is outside it: closed at exactly end + grace.
        let tumbling = Windowing::tumbling(Duration::from_secs(10), Duration::from_secs(30)).unwrap();
        assert!(!tumbling.is_closed(session, 39_999));
        assert!(tumbling.is_closed(session, 40_000));
    }

    #[test]
    fn windows_at_the_ends_of_time_do_not_overflow() {
        // The reviewer's: SIZE 106751991167 DAYS, ADVANCE BY 53375995583 DAYS, a record at -1 ms.
        let day = 86_400_000;
        let size = Duration::from_millis(106_751_991_167 * day);
        let w = Windowing::hopping(size, Duration::from_millis(53_375_995_583 * day), Duration::ZERO).unwrap();
        assert_eq!(w.windows_for(-1).count(), 2);
        let size = Duration::from_millis(i64::MAX as u64);
        let w = Windowing::hopping(size, size / 2, Duration::ZERO).unwrap();
        for time in [-1, 0, i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            let windows: Vec<_> = w.windows_for(time).collect();
            assert!(!windows.is_empty(), "{time}");
            assert!(windows.iter().all(|w| w.start <= time && (time < w.end || w.end == i64::MAX)), "{windows:?}");
        }
        let at_min: Vec<_> = Windowing::tumbling(size, Duration::ZERO).unwrap().windows_for(i64::MIN).collect();
        assert_eq!(at_min, [Window { start: i64::MIN, end: i64::MIN + 1 }]);
        let session = Windowing::session(size, size).unwrap();
        assert_eq!(session.close_time(Window { start: 0, end: i64::MAX }), i64::MAX);
    }

    #[test]
    fn durations_beyond_i64_milliseconds_are_refused() {
        let too_large = Duration::from_millis(i64::MAX as u64) + Duration::from_millis(1);
        let second = Duration::from_secs(1);
        assert_eq!(Windowing::tumbling(too_large, second), Err(WindowError::TooLarge("SIZE")));
        assert_eq!(Windowing::hopping(too_large, too_large, second), Err(WindowError::TooLarge("SIZE")));
        assert_eq!(Windowing::session(second, too_large), Err(WindowError::TooLarge("GRACE PERIOD")));
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
        fn any_time_has_its_windows_without_overflow(
            time in any::<i64>(),
            size in 1i64..=i64::MAX,
            hops in 1i64..8,
        ) {
            let advance = (size / hops).max(1);
            let w = Windowing::hopping(Duration::from_millis(size as u64), Duration::from_millis(advance as u64), Duration::ZERO).unwrap();
            let windows: Vec<_> = w.windows_for(time).collect();
            prop_assert!(!windows.is_empty());
            prop_assert!(windows.len() as i64 <= hops + 1);
            for pair in windows.windows(2) {
                prop_assert!(pair[0].start < pair[1].start);
            }
            for window in &windows {
                // Clamped at the ends of time; otherwise `[start, end)` holds the record.
                prop_assert!(window.start <= time);
                prop_assert!(time < window.end || window.end == i64::MAX);
                prop_assert!(window.start == i64::MIN || window.end == i64::MAX || window.end - window.start == size);
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
