//! The aggregate of one partition: stream time, the open windows of every key (one window over
//! all time per key without `WINDOW`), late records, and what changed since the last write (for
//! the changelog).
//!
//! Pure and synchronous: the processor feeds it records and writes what it emits; the CLI and
//! the tests drive it directly.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::aggregate::Accumulator;
use super::expr::Scope;
use super::plan::{Emit, Keyed, OutputKind, Plan};
use super::value::Value;
use super::window::{Window, WindowKind, merge_session};

/// A row the query emits.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// The group key as text.
    pub key: String,
    /// The window.
    pub window: Window,
    /// The time of the row: on an update, the latest event time among the window's records, as
    /// Kafka Streams stamps it (an out-of-order record does not take a window's time back); a
    /// final row too, as Kafka Streams' suppression emits the window's last update.
    pub time: i64,
    /// The SELECT values; `None` when a TABLE's row is deleted (a tombstone): it stopped
    /// passing HAVING, or its session merged into another.
    pub values: Option<Vec<Value>>,
    /// Whether the window closed with it (EMIT FINAL).
    pub is_final: bool,
}

/// One window of one key as the changelog stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredWindow {
    /// The group's key values.
    pub group: Vec<Value>,
    /// The window.
    pub window: Window,
    /// The aggregates so far.
    pub accumulators: Vec<Accumulator>,
    /// The latest event time among its records (absent from changelogs of earlier versions:
    /// then the window's start stands for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<i64>,
}

/// A change to write to the changelog, borrowed from the state ([`PartitionState::drain_changes`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChangeRef<'a> {
    /// A window now holds this.
    Put {
        /// The group key as text.
        key: &'a str,
        /// The group's key values.
        group: &'a [Value],
        /// The window.
        window: Window,
        /// The aggregates so far.
        accumulators: &'a [Accumulator],
        /// The latest event time among its records.
        latest: i64,
    },
    /// The window of this key starting then is gone.
    Delete {
        /// The group key as text.
        key: &'a str,
        /// The window's start.
        start: i64,
    },
}

/// A change to write to the changelog.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A window now holds this.
    Put(String, StoredWindow),
    /// The window of this key starting then is gone (closed, or merged into another session).
    Delete(String, i64),
}

#[derive(Debug)]
struct Group {
    /// The key it is filed under (shared with the indexes of its windows).
    key: Key,
    values: Vec<Value>,
    /// Open windows by start.
    windows: Windows,
}

impl Group {
    fn new(key: Key) -> Self {
        Group { key, values: Vec::new(), windows: Windows::default() }
    }
}

/// A key's open windows, by start: a sorted `Vec`, as a key has few open at once (one or two
/// time windows, a few sessions; more only with a long grace period).
#[derive(Debug, Default)]
struct Windows(Vec<(i64, Slot)>);

impl Windows {
    fn find(&self, start: i64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&start, |(s, _)| *s)
    }

    fn get(&self, start: &i64) -> Option<&Slot> {
        let i = self.find(*start).ok()?;
        Some(&self.0[i].1)
    }

    fn get_mut(&mut self, start: &i64) -> Option<&mut Slot> {
        let i = self.find(*start).ok()?;
        Some(&mut self.0[i].1)
    }

    /// The window starting then, made by `make` if there is none yet (`true` when made).
    fn get_or_insert_with(&mut self, start: i64, make: impl FnOnce() -> Slot) -> (&mut Slot, bool) {
        match self.find(start) {
            Ok(i) => (&mut self.0[i].1, false),
            Err(i) => {
                self.0.insert(i, (start, make()));
                (&mut self.0[i].1, true)
            }
        }
    }

    fn insert(&mut self, start: i64, slot: Slot) {
        match self.find(start) {
            Ok(i) => self.0[i].1 = slot,
            Err(i) => self.0.insert(i, (start, slot)),
        }
    }

    fn remove(&mut self, start: &i64) -> Option<Slot> {
        let i = self.find(*start).ok()?;
        Some(self.0.remove(i).1)
    }

    fn iter(&self) -> impl Iterator<Item = (&i64, &Slot)> {
        self.0.iter().map(|(start, slot)| (start, slot))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Slot {
    end: i64,
    /// The latest event time among its records: the time of its updates.
    latest: i64,
    /// Whether the window changed since the last write of the changes (it is in `dirty`).
    dirty: bool,
    /// A boxed slice, not a `Vec`: with its two times the slot stays 40 bytes, and the state,
    /// bound by cache misses, keeps as many slots per cache line.
    accumulators: Box<[Accumulator]>,
}

/// Keys are shared between the maps that index a window: one allocation per key.
type Key = Arc<str>;

/// A changed window: its key, its start, and where its group was in the table when it changed
/// (a hint that saves a lookup: checked, as the table may have moved or reused it since).
#[derive(Debug)]
struct Dirty {
    key: Key,
    start: i64,
    bucket: usize,
}

/// The groups by key, in a table whose buckets the changed windows point at.
#[derive(Debug, Default)]
struct Groups {
    table: HashTable<Group>,
    hasher: Hasher,
}

impl Groups {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn get(&self, key: &str) -> Option<&Group> {
        self.table.find(self.hash(key), |group| *group.key == *key)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Group> {
        self.table.find_mut(self.hash(key), |group| *group.key == *key)
    }

    /// The group of `key` and its bucket, made if there is none (`make` gives its shared key).
    fn entry(&mut self, key: &str, make: impl FnOnce() -> Key) -> (&mut Group, usize) {
        let hasher = &self.hasher;
        let entry =
            self.table
                .entry(hasher.hash_one(key), |group| *group.key == *key, |group| hasher.hash_one(&*group.key));
        let occupied = match entry {
            Entry::Occupied(occupied) => occupied,
            Entry::Vacant(vacant) => vacant.insert(Group::new(make())),
        };
        let bucket = occupied.bucket_index();
        (occupied.into_mut(), bucket)
    }

    /// The group of a changed window: at its bucket if it is still there, else looked up.
    fn get_at(&mut self, key: &Key, bucket: usize) -> Option<&mut Group> {
        let hit = self.table.get_bucket(bucket).is_some_and(|group| Arc::ptr_eq(&group.key, key));
        match hit {
            true => self.table.get_bucket_mut(bucket),
            false => self.get_mut(key),
        }
    }

    fn remove(&mut self, key: &str) {
        if let Ok(entry) = self.table.find_entry(self.hash(key), |group| *group.key == *key) {
            entry.remove();
        }
    }
}

/// No bucket hint: the group is looked up.
const NO_BUCKET: usize = usize::MAX;

/// Keys are group keys chosen by the data, not by an attacker: a fast hasher serves.
type Hasher = foldhash::fast::RandomState;

/// The state of one partition of a query.
#[derive(Debug, Default)]
pub struct PartitionState {
    stream_time: Option<i64>,
    late: u64,
    groups: Groups,
    /// Open windows by the stream time that closes them.
    closing: Schedule,
    /// Windows changed since the last [`PartitionState::drain_changes`], in the order they
    /// first changed: a window still open is listed once (its slot's `dirty` flag), one that
    /// closed or merged away is listed where it went.
    dirty: Vec<Dirty>,
    /// The aggregates' values of the window being emitted (reused: one allocation).
    values: Vec<Value>,
}

impl PartitionState {
    /// The largest event time seen so far, if any.
    pub fn stream_time(&self) -> Option<i64> {
        self.stream_time
    }

    /// Records dropped because a window they belong to had closed.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// How many windows are open.
    pub fn open_windows(&self) -> usize {
        self.closing.open
    }

    /// Adds one re-keyed record: updates its windows, emits on EMIT CHANGES, then closes the
    /// windows the new stream time has passed (emitting them on EMIT FINAL).
    pub fn apply(&mut self, plan: &Plan, row: &Keyed, out: &mut Vec<Emitted>) {
        let stream_time = self.stream_time.map_or(row.time, |t| t.max(row.time));
        self.stream_time = Some(stream_time);
        let text = row.key_text();
        let windowing = plan.windowing;
        let mut dropped = false;
        match windowing.kind {
            WindowKind::Session { gap } => {
                let key: Key = match self.groups.get(&text) {
                    Some(group) => group.key.clone(),
                    None => Key::from(&*text),
                };
                let sessions = self.groups.get(&key).into_iter().flat_map(|group| {
                    group.windows.iter().map(|(start, slot)| Window { start: *start, end: slot.end })
                });
                let merge = merge_session(sessions, row.time, gap);
                if windowing.is_closed(merge.merged, stream_time) {
                    dropped = true;
                } else {
                    let (group, _) = self.groups.entry(&key, || key.clone());
                    let mut accumulators: Vec<Accumulator> =
                        plan.aggregates.iter().map(|a| a.function.start()).collect();
                    let mut latest = row.time;
                    // The rows of the merged sessions that a TABLE shows, to delete.
                    let mut shown = Vec::new();
                    for old in &merge.absorbed {
                        if let Some(slot) = group.windows.remove(&old.start) {
                            if deletes_rows(plan)
                                && passes(plan, &group.values, *old, &slot.accumulators, &mut self.values)
                            {
                                shown.push(*old);
                            }
                            for (acc, other) in accumulators.iter_mut().zip(&slot.accumulators) {
                                acc.merge(other);
                            }
                            latest = latest.max(slot.latest);
                            self.closing.unschedule(windowing.close_time(*old), &key, old.start);
                            if !slot.dirty {
                                self.dirty.push(Dirty { key: key.clone(), start: old.start, bucket: NO_BUCKET });
                            }
                        }
                    }
                    if group.values.is_empty() {
                        group.values = row.group.clone();
                    }
                    let window = merge.merged;
                    let accumulators = accumulators.into_boxed_slice();
                    group.windows.insert(window.start, Slot { end: window.end, latest, dirty: false, accumulators });
                    self.closing.schedule(windowing.close_time(window), key.clone(), window.start);
                    self.update(plan, &key, window, row, out);
                    if !shown.is_empty() {
                        let group = self.groups.get(&key).expect("the group was just updated");
                        let slot = group.windows.get(&window.start).expect("the window was just updated");
                        let kept = passes(plan, &group.values, window, &slot.accumulators, &mut self.values);
                        for old in shown.into_iter().filter(|old| old.start != window.start || !kept) {
                            out.push(Emitted {
                                key: key.to_string(),
                                window: old,
                                time: slot.latest,
                                values: None,
                                is_final: false,
                            });
                        }
                    }
                }
            }
            _ => {
                // The group is looked up (or made) once, if a window of the record is still open.
                let mut open = windowing
                    .windows_for(row.time)
                    .filter(|window| {
                        let closed = windowing.is_closed(*window, stream_time);
                        dropped |= closed;
                        !closed
                    })
                    .peekable();
                if open.peek().is_some() {
                    let (group, bucket) = self.groups.entry(&text, || Key::from(&*text));
                    if group.values.is_empty() {
                        group.values = row.group.clone();
                    }
                    for window in open {
                        let (slot, made) = group.windows.get_or_insert_with(window.start, || Slot {
                            end: window.end,
                            latest: row.time,
                            dirty: false,
                            accumulators: plan.aggregates.iter().map(|a| a.function.start()).collect(),
                        });
                        if made {
                            self.closing.schedule(windowing.close_time(window), group.key.clone(), window.start);
                        }
                        let (dirty, values) = (&mut self.dirty, &mut self.values);
                        let shown = !made
                            && deletes_rows(plan)
                            && passes(plan, &group.values, window, &slot.accumulators, values);
                        add(plan, &group.key, bucket, window, row, slot, &group.values, dirty, values, out);
                        if shown && !passes(plan, &group.values, window, &slot.accumulators, values) {
                            // The TABLE showed the row; the update does not pass HAVING: it goes.
                            out.push(Emitted {
                                key: group.key.to_string(),
                                window,
                                time: slot.latest,
                                values: None,
                                is_final: false,
                            });
                        }
                    }
                }
            }
        }
        if dropped {
            self.late += 1;
            tracing::debug!(query = plan.name, key = &*text, time = row.time, stream_time, "late record dropped");
        }
        self.close(plan, stream_time, out);
    }

    /// Adds the record to one open window and emits the update on EMIT CHANGES.
    fn update(&mut self, plan: &Plan, key: &Key, window: Window, row: &Keyed, out: &mut Vec<Emitted>) {
        let group = self.groups.get_mut(key).expect("the group was just made");
        let slot = group.windows.get_mut(&window.start).expect("the window was just made");
        add(plan, key, NO_BUCKET, window, row, slot, &group.values, &mut self.dirty, &mut self.values, out);
    }

    /// Closes every window whose close time the stream time has reached.
    fn close(&mut self, plan: &Plan, stream_time: i64, out: &mut Vec<Emitted>) {
        // Without windows nothing closes, not even at the stream time `i64::MAX`.
        if !plan.windowing.is_windowed() {
            return;
        }
        while let Some(bucket) = self.closing.pop_until(stream_time) {
            for (key, start) in bucket {
                self.remove(plan, key, start, out);
            }
        }
    }

    fn remove(&mut self, plan: &Plan, key: Key, start: i64, out: &mut Vec<Emitted>) {
        let Some(group) = self.groups.get_mut(&key) else { return };
        let Some(slot) = group.windows.remove(&start) else { return };
        let window = Window { start, end: slot.end };
        let row = match plan.emit {
            Emit::Final => output(plan, &group.values, window, &slot.accumulators, &mut self.values),
            Emit::Changes => None,
        };
        if group.windows.is_empty() {
            self.groups.remove(&key);
        }
        if let Some(values) = row {
            out.push(Emitted { key: key.to_string(), window, time: slot.latest, values: Some(values), is_final: true });
        }
        if !slot.dirty {
            self.dirty.push(Dirty { key, start, bucket: NO_BUCKET });
        }
    }

    /// Closes every open window, as if the stream time had passed them all (the end of a
    /// bounded input): EMIT FINAL rows come out for each. Without windows nothing closes: each
    /// key's aggregate stays.
    pub fn close_all(&mut self, plan: &Plan, out: &mut Vec<Emitted>) {
        self.close(plan, i64::MAX, out);
    }

    /// The windows changed since the last call, as changelog entries (owned; see
    /// [`PartitionState::drain_changes`]).
    pub fn take_changes(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        self.drain_changes(|change| {
            changes.push(match change {
                ChangeRef::Put { key, group, window, accumulators, latest } => Change::Put(
                    key.to_owned(),
                    StoredWindow {
                        group: group.to_vec(),
                        window,
                        accumulators: accumulators.to_vec(),
                        latest: Some(latest),
                    },
                ),
                ChangeRef::Delete { key, start } => Change::Delete(key.to_owned(), start),
            })
        });
        changes
    }

    /// Hands each window changed since the last call to `write`, once, with its latest state:
    /// however often a window changed in between, one entry says where it stands. The order
    /// is the order in which the windows first changed, so the same records write the same
    /// changelog.
    pub fn drain_changes(&mut self, mut write: impl FnMut(ChangeRef<'_>)) {
        for Dirty { key, start, bucket } in self.dirty.drain(..) {
            let slot = self.groups.get_at(&key, bucket).and_then(|group| {
                let slot = group.windows.get_mut(&start)?;
                Some((&group.values, slot))
            });
            match slot {
                // Listed twice (it closed or merged away, then opened again): written once.
                Some((_, slot)) if !slot.dirty => {}
                Some((group, slot)) => {
                    slot.dirty = false;
                    write(ChangeRef::Put {
                        key: &key,
                        group,
                        window: Window { start, end: slot.end },
                        accumulators: &slot.accumulators,
                        latest: slot.latest,
                    });
                }
                None => write(ChangeRef::Delete { key: &key, start }),
            }
        }
    }

    /// Stream time and late count, as stored in the changelog.
    pub fn progress(&self) -> (Option<i64>, u64) {
        (self.stream_time, self.late)
    }

    /// Restores stream time and late count from the changelog.
    pub fn restore_progress(&mut self, stream_time: Option<i64>, late: u64) {
        self.stream_time = stream_time;
        self.late = late;
    }

    /// Restores one window from the changelog.
    pub fn restore_window(&mut self, plan: &Plan, key: String, stored: StoredWindow) {
        self.restore_delete(plan, &key, stored.window.start);
        let key = Key::from(key);
        let (group, _) = self.groups.entry(&key, || key.clone());
        group.values = stored.group;
        group.windows.insert(
            stored.window.start,
            Slot {
                end: stored.window.end,
                latest: stored.latest.unwrap_or(stored.window.start),
                dirty: false,
                accumulators: stored.accumulators.into_boxed_slice(),
            },
        );
        self.closing.schedule(plan.windowing.close_time(stored.window), key, stored.window.start);
    }

    /// Forgets a window the changelog deleted.
    pub fn restore_delete(&mut self, plan: &Plan, key: &str, start: i64) {
        if let Some(group) = self.groups.get_mut(key)
            && let Some(slot) = group.windows.remove(&start)
        {
            let window = Window { start, end: slot.end };
            self.closing.unschedule(plan.windowing.close_time(window), key, start);
            if group.windows.is_empty() {
                self.groups.remove(key);
            }
        }
    }
}

/// Windows (key, start) by close time: one bucket per close time, as the time windows of many
/// keys close together (a set ordered by (time, key) compared keys on every insert).
#[derive(Debug, Default)]
struct Schedule {
    buckets: BTreeMap<i64, Vec<(Key, i64)>>,
    open: usize,
}

impl Schedule {
    fn schedule(&mut self, close: i64, key: Key, start: i64) {
        self.buckets.entry(close).or_default().push((key, start));
        self.open += 1;
    }

    /// Takes a window out (a session absorbed by another, a window the changelog deleted).
    fn unschedule(&mut self, close: i64, key: &str, start: i64) {
        if let Some(bucket) = self.buckets.get_mut(&close)
            && let Some(i) = bucket.iter().position(|(k, s)| *s == start && **k == *key)
        {
            bucket.swap_remove(i);
            self.open -= 1;
            if bucket.is_empty() {
                self.buckets.remove(&close);
            }
        }
    }

    /// The earliest bucket, if it closes at or before `time`.
    fn pop_until(&mut self, time: i64) -> Option<Vec<(Key, i64)>> {
        let entry = self.buckets.first_entry()?;
        if *entry.key() > time {
            return None;
        }
        let bucket = entry.remove();
        self.open -= bucket.len();
        Some(bucket)
    }
}

/// Adds the record to one open window, marks it changed and emits the update on EMIT CHANGES.
#[allow(clippy::too_many_arguments)]
fn add(
    plan: &Plan,
    key: &Key,
    bucket: usize,
    window: Window,
    row: &Keyed,
    slot: &mut Slot,
    group: &[Value],
    dirty: &mut Vec<Dirty>,
    values: &mut Vec<Value>,
    out: &mut Vec<Emitted>,
) {
    for ((acc, call), arg) in slot.accumulators.iter_mut().zip(&plan.aggregates).zip(&row.args) {
        acc.add(call.function, arg);
    }
    slot.latest = slot.latest.max(row.time);
    if !slot.dirty {
        slot.dirty = true;
        dirty.push(Dirty { key: key.clone(), start: window.start, bucket });
    }
    if plan.emit == Emit::Changes
        && let Some(values) = output(plan, group, window, &slot.accumulators, values)
    {
        out.push(Emitted { key: key.to_string(), window, time: slot.latest, values: Some(values), is_final: false });
    }
}

/// Whether the query deletes rows it showed: a TABLE emitting changes, whose rows can stop
/// passing HAVING or merge (sessions). A STREAM is the rows that pass; EMIT FINAL emits once.
fn deletes_rows(plan: &Plan) -> bool {
    plan.output == OutputKind::Table
        && plan.emit == Emit::Changes
        && (plan.having.is_some() || matches!(plan.windowing.kind, WindowKind::Session { .. }))
}

/// Whether a window's row passes HAVING; leaves the aggregates' values in `aggregates`.
fn passes(
    plan: &Plan,
    group: &[Value],
    window: Window,
    accumulators: &[Accumulator],
    aggregates: &mut Vec<Value>,
) -> bool {
    aggregates.clear();
    aggregates.extend(accumulators.iter().map(Accumulator::value));
    let scope = Scope { group, aggregates, window: Some(window), ..Scope::default() };
    plan.having.as_ref().is_none_or(|having| having.holds(&scope))
}

/// The SELECT values of a window, if it passes HAVING.
fn output(
    plan: &Plan,
    group: &[Value],
    window: Window,
    accumulators: &[Accumulator],
    aggregates: &mut Vec<Value>,
) -> Option<Vec<Value>> {
    if !passes(plan, group, window, accumulators, aggregates) {
        return None;
    }
    let scope = Scope { group, aggregates, window: Some(window), ..Scope::default() };
    Some(plan.select.iter().map(|named| named.expr.eval(&scope)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{Catalog, sql};

    const S: i64 = 1_000;

    fn plan(sql: &str) -> Plan {
        sql::plan(sql, &Catalog::open()).unwrap_or_else(|e| panic!("{}", e.render(sql)))
    }

    /// Feeds `(time, key)` records; returns what was emitted, as (key, window start, n).
    fn feed(plan: &Plan, state: &mut PartitionState, records: &[(i64, &str)]) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        let mut columns = Vec::new();
        for (time, key) in records {
            let payload = format!(r#"{{"k":"{key}","amount":{time}}}"#);
            let keyed = plan.rekey(*time, payload.as_bytes(), &mut columns).unwrap().unwrap();
            state.apply(plan, &keyed, &mut out);
        }
        rows(out)
    }

    /// The count of a deleted row (a TABLE's tombstone) in [`rows`].
    const DELETED: i64 = -1;

    fn rows(out: Vec<Emitted>) -> Vec<(String, i64, i64)> {
        out.into_iter()
            .map(|e| {
                let n = match e.values.as_deref() {
                    Some([_, Value::Int(n), ..]) => *n,
                    None => DELETED,
                    Some(values) => panic!("a count: {values:?}"),
                };
                (e.key, e.window.start, n)
            })
            .collect()
    }

    fn row(key: &str, start: i64, n: i64) -> (String, i64, i64) {
        (key.to_owned(), start, n)
    }

    const TUMBLING_FINAL: &str = "CREATE TABLE t AS SELECT k, count(*) AS n FROM e
        WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 5 SECONDS) GROUP BY k EMIT FINAL";

    /// The times of the rows emitted for `(time, key)` records.
    fn times(plan: &Plan, state: &mut PartitionState, records: &[(i64, &str)]) -> Vec<i64> {
        let (mut out, mut columns) = (Vec::new(), Vec::new());
        for (time, key) in records {
            let payload = format!(r#"{{"k":"{key}"}}"#);
            let keyed = plan.rekey(*time, payload.as_bytes(), &mut columns).unwrap().unwrap();
            state.apply(plan, &keyed, &mut out);
        }
        out.iter().map(|emitted| emitted.time).collect()
    }

    /// As Kafka Streams stamps a window's update: with the latest time among its records, so
    /// that an out-of-order record does not take the window's time back; kept across a restore
    /// and a session merge.
    #[test]
    fn an_update_is_stamped_with_the_latest_time_of_its_window() {
        let tumbling =
            plan("CREATE TABLE t AS SELECT k, count(*) AS n FROM e WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k");
        let mut state = PartitionState::default();
        assert_eq!(times(&tumbling, &mut state, &[(5 * S, "a"), (2 * S, "a"), (7 * S, "a")]), [5 * S, 5 * S, 7 * S]);

        let mut restored = PartitionState::default();
        for change in state.take_changes() {
            if let Change::Put(key, stored) = change {
                assert_eq!(stored.latest, Some(7 * S));
                restored.restore_window(&tumbling, key, stored);
            }
        }
        assert_eq!(times(&tumbling, &mut restored, &[(S, "a")]), [7 * S], "after a restore");

        let sessions = plan("CREATE TABLE t AS SELECT k, count(*) AS n FROM e WINDOW SESSION (10 SECONDS) GROUP BY k");
        let mut state = PartitionState::default();
        // 0s and 20s are two sessions; 10s bridges them: the merged one's time is 20s.
        let times = times(&sessions, &mut state, &[(0, "a"), (20 * S, "a"), (10 * S, "a")]);
        assert_eq!(times.last(), Some(&(20 * S)), "{times:?}");
    }

    /// Kafka Streams' suppression emits a closed window's last update, stamped as updates are.
    #[test]
    fn a_final_row_is_stamped_with_the_latest_time_of_its_window() {
        let plan = plan(
            "CREATE STREAM t AS SELECT k, count(*) AS n FROM e \
             WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY k EMIT FINAL",
        );
        let mut state = PartitionState::default();
        // 7s, then an out-of-order 2s; 25s closes [0s, 10s).
        assert_eq!(times(&plan, &mut state, &[(7 * S, "a"), (2 * S, "a"), (25 * S, "b")]), [7 * S]);
    }

    #[test]
    fn a_record_at_exactly_the_window_end_opens_the_next_window() {
        let plan = plan(
            "CREATE STREAM t AS SELECT k, count(*) AS n FROM e WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY k",
        );
        let mut state = PartitionState::default();
        let out = feed(&plan, &mut state, &[(0, "a"), (10 * S - 1, "a"), (10 * S, "a")]);
        assert_eq!(out, [row("a", 0, 1), row("a", 0, 2), row("a", 10 * S, 1)]);
    }

    #[test]
    fn late_records_count_within_grace_and_are_dropped_and_counted_after_it() {
        let plan = plan(TUMBLING_FINAL);
        let mut state = PartitionState::default();
        // Window [0, 10s) closes at stream time 15s.
        let out = feed(&plan, &mut state, &[(S, "a"), (14 * S, "b"), (9 * S, "a")]);
        assert_eq!((out, state.late()), (vec![], 0), "within grace: counted, nothing closed yet");
        let out = feed(&plan, &mut state, &[(15 * S, "b"), (9 * S, "a")]);
        assert_eq!(out, [row("a", 0, 2)], "closed at exactly end + grace, with both records");
        assert_eq!(state.late(), 1, "the record after the close is dropped and counted");
    }

    #[test]
    fn emit_final_emits_each_window_exactly_once_and_close_all_flushes_the_rest() {
        let plan = plan(TUMBLING_FINAL);
        let mut state = PartitionState::default();
        let out = feed(&plan, &mut state, &[(0, "a"), (S, "a"), (12 * S, "a"), (40 * S, "b"), (41 * S, "b")]);
        assert_eq!(out, [row("a", 0, 2), row("a", 10 * S, 1)]);
        // Nothing closes twice, even as stream time goes on.
        let out = feed(&plan, &mut state, &[(42 * S, "b")]);
        assert!(out.is_empty());
        let mut rest = Vec::new();
        state.close_all(&plan, &mut rest);
        assert_eq!(rows(rest), [row("b", 40 * S, 3)]);
        assert_eq!(state.open_windows(), 0);
    }

    #[test]
    fn hopping_windows_count_a_record_in_every_window_that_holds_it() {
        let plan = plan(
            "CREATE TABLE t AS SELECT k, count(*) AS n FROM e
             WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY k EMIT FINAL",
        );
        let mut state = PartitionState::default();
        let mut out = feed(&plan, &mut state, &[(3 * S, "a"), (7 * S, "a"), (12 * S, "a")]);
        let mut rest = Vec::new();
        state.close_all(&plan, &mut rest);
        out.extend(rows(rest));
        out.sort();
        // [-5,5): 3s; [0,10): 3s, 7s; [5,15): 7s, 12s; [10,20): 12s.
        assert_eq!(out, [row("a", -5 * S, 1), row("a", 0, 2), row("a", 5 * S, 2), row("a", 10 * S, 1)]);
    }

    #[test]
    fn sessions_grow_merge_and_close_after_gap_and_grace() {
        let plan = plan(
            "CREATE TABLE t AS SELECT k, count(*) AS n, WINDOWSTART, WINDOWEND FROM e
             WINDOW SESSION (10 SECONDS, GRACE PERIOD 30 SECONDS) GROUP BY k EMIT FINAL",
        );
        let mut state = PartitionState::default();
        // Two sessions 0..2s and 20s..21s, then a record at 11s bridges them (within 10s of both).
        let out = feed(&plan, &mut state, &[(0, "a"), (2 * S, "a"), (20 * S, "a"), (21 * S, "a")]);
        assert!(out.is_empty(), "nothing closed: the first session takes records until 2s + 10s + 30s");
        assert_eq!(state.open_windows(), 2);
        let mut emitted = Vec::new();
        let mut columns = Vec::new();
        let keyed = plan.rekey(11 * S, br#"{"k":"a"}"#, &mut columns).unwrap().unwrap();
        state.apply(&plan, &keyed, &mut emitted);
        assert_eq!(state.open_windows(), 1, "the bridge merged both sessions");
        let keyed = plan.rekey(61 * S, br#"{"k":"b"}"#, &mut columns).unwrap().unwrap();
        state.apply(&plan, &keyed, &mut emitted);
        assert!(emitted.is_empty(), "open until 21s + 10s + 30s, that instant included");
        let keyed = plan.rekey(61 * S + 1, br#"{"k":"b"}"#, &mut columns).unwrap().unwrap();
        state.apply(&plan, &keyed, &mut emitted);
        assert_eq!(emitted.len(), 1, "the merged session closes just after 21s + 10s + 30s");
        assert_eq!(emitted[0].values, Some(vec![Value::from("a"), Value::Int(5), Value::Int(0), Value::Int(21 * S)]));
    }

    #[test]
    fn a_record_at_a_sessions_end_plus_gap_joins_it_after_other_keys_moved_stream_time_there() {
        let plan = plan(
            "CREATE TABLE s AS SELECT k, COUNT(*) AS n FROM e
             WINDOW SESSION (10 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY k EMIT FINAL",
        );
        // Kafka Streams: late only when the merged session ends before stream time - gap - grace.
        let mut state = PartitionState::default();
        let mut out = feed(&plan, &mut state, &[(0, "a"), (10 * S, "b"), (10 * S, "a")]);
        assert_eq!((out.len(), state.late()), (0, 0), "stream time 10s closes nothing yet");
        let mut rest = Vec::new();
        state.close_all(&plan, &mut rest);
        out.extend(rows(rest));
        out.sort();
        assert_eq!(out, [row("a", 0, 2), row("b", 10 * S, 1)]);
    }

    #[test]
    fn records_at_the_ends_of_time_in_the_largest_windows_neither_overflow_nor_stay_open() {
        for window in [
            "HOPPING (SIZE 106751991167 DAYS, ADVANCE BY 53375995583 DAYS)",
            "SESSION (106751991167 DAYS, GRACE PERIOD 106751991167 DAYS)",
            "TUMBLING (SIZE 9223372036854775807 MILLISECONDS)",
        ] {
            let plan = plan(&format!("CREATE TABLE h AS SELECT k, COUNT(*) AS n FROM e WINDOW {window} GROUP BY k"));
            let mut state = PartitionState::default();
            let out = feed(&plan, &mut state, &[(-1, "a"), (i64::MIN, "a"), (0, "b"), (i64::MAX, "a")]);
            assert!(!out.is_empty(), "{window}");
            state.close_all(&plan, &mut Vec::new());
            assert_eq!(state.open_windows(), 0, "{window}");
        }
    }

    #[test]
    fn emit_changes_emits_every_update_that_passes_having() {
        let plan = plan(
            "CREATE STREAM s AS SELECT k, count(*) AS n FROM e WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY k HAVING count(*) > 2",
        );
        let mut state = PartitionState::default();
        let out = feed(&plan, &mut state, &[(0, "a"), (S, "a"), (2 * S, "b"), (3 * S, "a"), (4 * S, "a")]);
        assert_eq!(out, [row("a", 0, 3), row("a", 0, 4)]);
    }

    #[test]
    fn a_table_deletes_a_row_that_stops_passing_having() {
        let sql = |kind| {
            format!(
                "CREATE {kind} t AS SELECT k, count(*) AS n FROM e WINDOW TUMBLING (SIZE 10 MINUTES) GROUP BY k HAVING count(*) < 3"
            )
        };
        let records = [(0, "a"), (S, "a"), (2 * S, "b"), (3 * S, "a"), (4 * S, "a"), (5 * S, "b")];
        let out = feed(&plan(&sql("TABLE")), &mut PartitionState::default(), &records);
        // Deleted once, when the third order fails HAVING; the fourth has nothing to delete.
        assert_eq!(out, [row("a", 0, 1), row("a", 0, 2), row("b", 0, 1), row("a", 0, DELETED), row("b", 0, 2)]);
        // A STREAM is the rows that pass: nothing to delete.
        let out = feed(&plan(&sql("STREAM")), &mut PartitionState::default(), &records);
        assert_eq!(out, [row("a", 0, 1), row("a", 0, 2), row("b", 0, 1), row("b", 0, 2)]);
    }

    /// GROUP BY without WINDOW: one row per key over all time; no record is late however far
    /// behind the stream time, and the end of the input closes nothing into a row.
    #[test]
    fn without_windows_a_key_aggregates_over_all_time_and_nothing_is_late() {
        let plan = plan("CREATE TABLE t AS SELECT k, count(*) AS n FROM e GROUP BY k HAVING count(*) < 3");
        let year = 365 * 24 * 3_600 * S;
        let mut state = PartitionState::default();
        let records = [(10 * year, "a"), (-year, "a"), (i64::MAX, "b"), (i64::MIN, "a"), (0, "b")];
        let out = feed(&plan, &mut state, &records);
        let all = Window::ALL.start;
        assert_eq!(
            out,
            [row("a", all, 1), row("a", all, 2), row("b", all, 1), row("a", all, DELETED), row("b", all, 2)]
        );
        assert_eq!((state.late(), state.open_windows()), (0, 2));

        let mut restored = PartitionState::default();
        for change in state.take_changes() {
            if let Change::Put(key, stored) = change {
                restored.restore_window(&plan, key, stored);
            }
        }
        assert_eq!(feed(&plan, &mut restored, &[(0, "b")]), [row("b", all, DELETED)], "a third after a restore");
        restored.take_changes();
        let mut out = Vec::new();
        restored.close_all(&plan, &mut out);
        assert!(out.is_empty(), "no final rows: {out:?}");
        assert_eq!((restored.open_windows(), restored.take_changes()), (2, Vec::new()), "the aggregates stay");
    }

    #[test]
    fn a_table_deletes_the_rows_of_sessions_merged_into_another() {
        let plan = plan(
            "CREATE TABLE t AS SELECT k, count(*) AS n FROM e
             WINDOW SESSION (10 SECONDS, GRACE PERIOD 1 MINUTE) GROUP BY k",
        );
        // 0s and 20s are two sessions; 10s bridges them into one that starts at 0s.
        let out = feed(&plan, &mut PartitionState::default(), &[(0, "a"), (20 * S, "a"), (10 * S, "a")]);
        assert_eq!(out, [row("a", 0, 1), row("a", 20 * S, 1), row("a", 0, 3), row("a", 20 * S, DELETED)]);
        // A merge that keeps the start updates the row in place: nothing to delete.
        let out = feed(&plan, &mut PartitionState::default(), &[(0, "a"), (5 * S, "a")]);
        assert_eq!(out, [row("a", 0, 1), row("a", 0, 2)]);
    }

    /// Restores a state from the changes written every `every` records (as the processor
    /// writes them per batch) after `cut` records, and feeds it the rest.
    fn restarted(plan: &Plan, records: &[(i64, &str)], cut: usize, every: usize) -> (Vec<(String, i64, i64)>, u64) {
        let mut first = PartitionState::default();
        let mut restored = PartitionState::default();
        let mut out = Vec::new();
        // Each batch's changes, as the processor writes them.
        for batch in records[..cut].chunks(every) {
            out.extend(feed(plan, &mut first, batch));
            for change in first.take_changes() {
                match change {
                    Change::Put(key, stored) => restored.restore_window(plan, key, stored),
                    Change::Delete(key, start) => restored.restore_delete(plan, &key, start),
                }
            }
        }
        let (time, late) = first.progress();
        restored.restore_progress(time, late);
        out.extend(feed(plan, &mut restored, &records[cut..]));
        let mut rest = Vec::new();
        restored.close_all(plan, &mut rest);
        out.extend(rows(rest));
        // Windows of different keys that close at the same stream time may come out in another
        // order after a restart (the restore schedules them in changelog order): compared as sets.
        out.sort();
        (out, restored.late())
    }

    #[test]
    fn sessions_restored_from_their_changes_go_on_as_if_never_stopped() {
        let plan = plan(
            "CREATE TABLE t AS SELECT k, count(*) AS n FROM e
             WINDOW SESSION (10 SECONDS, GRACE PERIOD 5 SECONDS) GROUP BY k EMIT FINAL",
        );
        // Sessions that grow, merge (11s bridges 0-2s and 20-21s), close and open again at the
        // same start, and a late record.
        let records: Vec<(i64, &str)> = vec![
            (0, "a"),
            (2 * S, "a"),
            (S, "b"),
            (20 * S, "a"),
            (21 * S, "a"),
            (11 * S, "a"),
            (12 * S, "b"),
            (60 * S, "b"),
            (61 * S, "a"),
            (3 * S, "a"),
            (62 * S, "a"),
            (100 * S, "c"),
        ];
        let (expected, late) = restarted(&plan, &records, 0, 1);
        assert!(late > 0, "the record at 3s comes after its session closed");
        for every in [1, 2, 3, 5] {
            for cut in 0..=records.len() {
                assert_eq!(
                    restarted(&plan, &records, cut, every),
                    (expected.clone(), late),
                    "cut {cut}, every {every}"
                );
            }
        }
    }

    #[test]
    fn a_state_restored_from_its_changes_goes_on_as_if_never_stopped() {
        let plan = plan(TUMBLING_FINAL);
        let records: Vec<(i64, &str)> =
            vec![(0, "a"), (S, "b"), (4 * S, "a"), (11 * S, "a"), (16 * S, "b"), (3 * S, "a"), (30 * S, "a")];
        let batched = restarted(&plan, &records, 0, 1);
        for every in [1, 2, 4] {
            for cut in 0..=records.len() {
                assert_eq!(restarted(&plan, &records, cut, every), batched, "cut {cut}, every {every}");
            }
        }
        let mut whole = PartitionState::default();
        let expected = feed(&plan, &mut whole, &records);

        for cut in 0..records.len() {
            let mut first = PartitionState::default();
            let mut out = feed(&plan, &mut first, &records[..cut]);
            let mut restored = PartitionState::default();
            let (time, late) = first.progress();
            restored.restore_progress(time, late);
            for change in first.take_changes() {
                match change {
                    Change::Put(key, stored) => restored.restore_window(&plan, key, stored),
                    Change::Delete(key, start) => restored.restore_delete(&plan, &key, start),
                }
            }
            out.extend(feed(&plan, &mut restored, &records[cut..]));
            assert_eq!(out, expected, "restart after {cut} records");
            assert_eq!(restored.late(), whole.late());
        }
    }
}
