//! The embedded log: durable on one machine, on SQLite (through `rusqlite`, SQLite bundled), with
//! the same semantics as every other backend of the port. Behind the cargo feature `embedded`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tramline::log::LogError> {
//! use std::sync::Arc;
//! use tramline::log::embedded::EmbeddedLog;
//! use tramline::log::{EventLog, TopicSpec};
//!
//! let log = Arc::new(EmbeddedLog::open("data/log")?);
//! log.create_topic(&TopicSpec::keep("payment.events", 4)).await?;
//! # Ok(()) }
//! ```
//!
//! # Storage
//!
//! One directory holds one log: the database `log.sqlite3` (with SQLite's `-wal` and `-shm` files
//! beside it) and the lock file `tramline.lock` (the holder's process id). The schema
//! (`PRAGMA user_version` 2; a log of version 1, or one made before `pending_vacuum` or
//! `topic_retention`, gets the tables it lacks when it is opened for writing):
//!
//! | table | columns | key |
//! | --- | --- | --- |
//! | `topics` | `id`, `name`, `partitions`, `cleanup` (`keep` / `compact`) | `id`; `name` unique |
//! | `records` | `topic` (the topic's `id`), `partition`, `offset`, `key`, `value`, `headers`, `timestamp` | (`topic`, `partition`, `offset`) |
//! | `committed` | `group_name`, `topic`, `partition`, `offset` (the next offset to read) | (`group_name`, `topic`, `partition`) |
//! | `compaction_marks` | `topic`, `partition`, `taken_ms`, `offset` (the partition's end when a compaction ran) | (`topic`, `partition`, `taken_ms`) |
//! | `topic_retention` | `topic`, `retention_ms`: the retention of a topic compacted and expired (its `cleanup` is `compact`) | `topic` |
//! | `pending_vacuum` | `id` (always 1), `since_ms`: a row while keys of forgotten subjects were deleted and the database not vacuumed since | `id` |
//!
//! `key` and `value` are blobs (`NULL` for none; a `NULL` value is a tombstone), `timestamp` is
//! milliseconds since the Unix epoch, and `headers` is one compact blob: each header as
//! `varint(len(name)) name varint(len(value)) value` with LEB128 varints, in order; `NULL` for
//! none. Header values round-trip exactly, whatever their bytes.
//!
//! # Writes, durability and threads
//!
//! Every [`append`](EventLog::append) and every [`GroupMember::commit`] is one SQLite transaction:
//! a commit checks the member's fence (its generation and assignment), inserts the output records
//! and upserts the committed positions, and then commits; if anything fails, nothing of it is
//! visible. That is the port's atomic write, and exactly-once read-process-write on one machine.
//!
//! The database runs in WAL mode. With the default [`Durability::Normal`]
//! (`synchronous=NORMAL`) a returned write survives a crash or kill of the process; a power loss
//! or an operating-system crash may lose the most recent writes (those the WAL had not yet synced
//! to disk at a checkpoint), but never tears a transaction or corrupts the database, so outputs
//! and positions still survive together or not at all: the log comes back as it was a moment
//! earlier, and consumers redo that moment's work. What left the process in that moment (a reply
//! to a caller, an e-mail) may then describe a write that is gone. [`Durability::Full`]
//! (`synchronous=FULL`) syncs the WAL on every commit: writes survive a power loss too, at the
//! price of one `fsync` per write; choose it where that matters.
//!
//! SQLite calls block, so they run on tokio's blocking pool (`spawn_blocking`), never on an async
//! worker. One connection writes (one transaction at a time); reads use a small pool of other
//! connections, which WAL lets run beside the writer. Topic metadata and end offsets are mirrored
//! in memory, so `partition_count`, `end_offset` and an idle `poll` do not touch the disk.
//! Prepared statements are cached per connection.
//!
//! # One process
//!
//! Consumer-group membership and assignment live in memory, within the process (eager rebalance
//! and generation fencing as in the memory log); committed positions live in the database. So one
//! process owns a directory: opening takes an exclusive `flock` on the directory (on Unix; on
//! the lock file `tramline.lock` elsewhere) and writes its process id into `tramline.lock`, and a
//! second open (from another process, or a second [`EmbeddedLog::open`] of the same directory in
//! this one) fails with a [`LogError::Backend`] that names the holder. Deleting the lock file does
//! not lift the lock. Share one `EmbeddedLog`
//! (it is `Clone`) within a process. The lock goes when the last clone and member are dropped
//! and their last database tasks have finished, or when the process ends; an open waits up to
//! two seconds for that (a killed process with a large heap takes a moment to be torn down)
//! before it fails.
//!
//! # Compacted topics
//!
//! [`Cleanup::Compact`](crate::log::Cleanup::Compact) promises only that the latest record per key
//! is kept. This log compacts when it opens (see [`EmbeddedOptions::with_compact_on_open`]),
//! every [`EmbeddedOptions::compaction_interval`] while it is open (a day by default), and when
//! [`EmbeddedLog::compact`] is called: every
//! keyed record that a later record with the same key supersedes is deleted, and records without
//! a key stay. A tombstone stays at least [`EmbeddedOptions::tombstone_retention`] (a day by
//! default, Kafka's `delete.retention.ms`), so that a reader that is behind still sees the
//! deletion; then a compaction deletes it, and its key is gone from the topic. Its age is told by
//! the marks each compaction leaves (where each partition ended then), not by the record's
//! timestamp, which its writer chose: the first compaction after the tombstone marks it, and
//! the first one a retention after that mark deletes it (so with compaction every interval, it
//! goes within a retention plus two intervals). A partition's last record stays whatever it is:
//! opening finds the partition's end from it. Offsets never change; a reader simply skips the
//! gaps. Deleted records
//! are overwritten on disk (`PRAGMA secure_delete`, and a compaction that removed anything empties
//! the write-ahead log). A page rebalance can leave old bytes of the records it moved in a page's
//! unused space, which `secure_delete` does not reach: after a compaction that removed keys of
//! forgotten subjects (`tramline.keys`) the database is vacuumed (rewritten, at the cost of a
//! copy of it), so that such a key leaves no byte in the files. The deletion notes the vacuum in
//! its own transaction (`pending_vacuum`): a process killed before it vacuumed leaves it to the
//! next compaction (on open, by default). Records of other topics may leave such fragments.
//!
//! A topic of [`Cleanup::CompactAndExpire`](crate::log::Cleanup::CompactAndExpire) is compacted
//! so, and each compaction also deletes its records whose timestamp is older than the retention
//! (a partition's last record stays), as Kafka deletes a segment whose newest record is that old.
//! [`EventLog::delete_before`] deletes a partition's records below an offset at once, but the
//! partition's last record.

mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use self::store::{Located, Store};
use super::group::Cursor;
use super::{EventLog, GroupMember, LogError, OutRecord, Polled, Record, StartFrom, TopicPartition, TopicSpec};
use crate::model::Position;

/// How durable a returned write is. Both keep every write atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: survives a crash of the process; a power loss or OS crash may lose
    /// the most recent writes (whole transactions, never part of one). The default.
    #[default]
    Normal,
    /// `synchronous=FULL`: the WAL is synced on every commit, so writes survive a power loss.
    /// Slower: one `fsync` per write.
    Full,
}

/// Options of [`EmbeddedLog::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmbeddedOptions {
    /// How durable a returned write is.
    pub durability: Durability,
    /// Whether opening compacts the compacted topics.
    pub compact_on_open: bool,
    /// How often the compacted topics are compacted while the log is open (`None`: only on
    /// open and by [`EmbeddedLog::compact`]). A day by default, the bound the Kafka adapter
    /// sets on its compacted topics (`max.compaction.lag.ms`).
    pub compaction_interval: Option<Duration>,
    /// How long a tombstone stays on a compacted topic before a compaction deletes it (`None`:
    /// for ever). A day by default, as Kafka's `delete.retention.ms`: a reader that falls
    /// further behind than that may miss a deletion. A tombstone is deleted by the first
    /// compaction a retention after the first compaction that followed it (within a retention
    /// and two compaction intervals), unless it is its partition's last record.
    pub tombstone_retention: Option<Duration>,
}

/// How often an open embedded log compacts by default.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// How long a tombstone stays by default (Kafka's `delete.retention.ms` default).
pub const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(24 * 3600);

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            durability: Durability::Normal,
            compact_on_open: true,
            compaction_interval: Some(DEFAULT_COMPACTION_INTERVAL),
            tombstone_retention: Some(DEFAULT_TOMBSTONE_RETENTION),
        }
    }
}

impl EmbeddedOptions {
    /// The options with this durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The options with compaction on open turned on (the default) or off.
    pub fn with_compact_on_open(mut self, compact: bool) -> Self {
        self.compact_on_open = compact;
        self
    }

    /// The options with compaction every `interval` while the log is open, or none (`None`).
    pub fn with_compaction_interval(mut self, interval: Option<Duration>) -> Self {
        self.compaction_interval = interval;
        self
    }

    /// The options with tombstones kept for `retention`, or for ever (`None`).
    pub fn with_tombstone_retention(mut self, retention: Option<Duration>) -> Self {
        self.tombstone_retention = retention;
        self
    }
}

/// The durable embedded log: SQLite in one directory. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct EmbeddedLog {
    store: StoreHandle,
}

/// A shared handle on the store. The last one to go closes the database, which checkpoints
/// the write-ahead log (I/O and `fsync`s): dropped on a worker of a multi-threaded runtime, it
/// closes there as blocking work (`block_in_place`, the worker's other tasks move on), and still
/// before the drop returns, so that the directory is free for another process at once (unless a
/// database task of a cancelled call, or the compaction thread, holds the store a moment longer:
/// then that thread closes it).
#[derive(Clone)]
struct StoreHandle(Option<Arc<Store>>);

impl std::ops::Deref for StoreHandle {
    type Target = Arc<Store>;

    fn deref(&self) -> &Arc<Store> {
        self.0.as_ref().expect("the store leaves its handle only when the handle is dropped")
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        let Some(store) = self.0.take() else { return };
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if Arc::strong_count(&store) == 1 && multi_threaded {
            tokio::task::block_in_place(move || drop(store));
        }
    }
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog").field("database", &self.store.database()).finish()
    }
}

/// Runs `work` on tokio's blocking pool, once the store admits another call.
async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    work: impl FnOnce(&Store) -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    let admitted = store.calls.clone().acquire_owned().await;
    let admitted = admitted.map_err(|e| store.error("the database calls were closed", e))?;
    let shared = store.clone();
    tokio::task::spawn_blocking(move || {
        let done = work(&shared);
        // Held until the call ends, which it does even if this future is dropped.
        drop(admitted);
        done
    })
    .await
    .map_err(|e| store.error("a database task did not finish", e))?
}

impl EmbeddedLog {
    /// Opens the log in `dir`, creating the directory and the database when needed, with the
    /// default options. Fails when another process (or another open `EmbeddedLog`) has it.
    ///
    /// This blocks on disk I/O (and compacts the compacted topics): call it at start-up, or use
    /// [`open_async`](Self::open_async) from async code.
    pub fn open(dir: impl AsRef<Path>) -> Result<EmbeddedLog, LogError> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<EmbeddedLog, LogError> {
        let store = Arc::new(Store::open(dir.as_ref(), &options)?);
        if let Some(interval) = options.compaction_interval {
            store.compact_every(interval)?;
        }
        Ok(EmbeddedLog { store: StoreHandle(Some(store)) })
    }

    /// [`open`](Self::open) for a log that exists: a directory without one is an error, not a
    /// new log (the mistyped directory of a tool that changes a log, say).
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<EmbeddedLog, LogError> {
        let database = store::database_in(dir.as_ref());
        if !database.is_file() {
            let dir = dir.as_ref().display();
            return Err(LogError::Backend(format!(
                "embedded log {dir}: holds no embedded log (no {})",
                database.display()
            )));
        }
        Self::open(dir)
    }

    /// [`open_with`](Self::open_with) on tokio's blocking pool.
    pub async fn open_async(dir: impl Into<PathBuf>, options: EmbeddedOptions) -> Result<EmbeddedLog, LogError> {
        let dir = dir.into();
        let shown = dir.display().to_string();
        tokio::task::spawn_blocking(move || Self::open_with(dir, options))
            .await
            .map_err(|e| LogError::Backend(format!("embedded log {shown}: opening did not finish: {e}")))?
    }

    /// Opens the log in `dir` only to read it, beside the process that has it open (SQLite's
    /// write-ahead log lets readers in): `tramline query` over a running platform's log, say.
    /// It takes no lock, and creates, upgrades, checkpoints and compacts nothing (SQLite's shared
    /// memory file `log.sqlite3-shm` aside, which readers need). Its topics and their ends
    /// are those at the call; appends, consumer groups and compaction are refused. Blocks
    /// briefly.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<EmbeddedLog, LogError> {
        let store = Arc::new(Store::open_read_only(dir.as_ref())?);
        Ok(EmbeddedLog { store: StoreHandle(Some(store)) })
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// The database file.
    pub fn database(&self) -> &Path {
        self.store.database()
    }

    /// The names of the topics, in no particular order.
    pub fn topics(&self) -> Vec<String> {
        self.store.topic_names()
    }

    /// Compacts the compacted topics now: only the latest record per key stays (plus records
    /// without a key), and tombstones older than the retention go. Deleted records are
    /// overwritten on disk (`secure_delete`, and the write-ahead log is emptied), and the
    /// database is vacuumed when keys of forgotten subjects went, so that such a key is really
    /// gone (see the module docs). Returns how many records were deleted.
    ///
    /// Fails if another process was reading the database, so that the write-ahead log could
    /// not be emptied, or if the database could not be vacuumed (it needs about its own size
    /// free in SQLite's temporary directory): the records are deleted, but copies stay in the
    /// files until a later compaction completes. The vacuum holds the writer: the log's writes
    /// wait for it.
    pub async fn compact(&self) -> Result<u64, LogError> {
        self.store.writable("compact")?;
        let compacted = blocking(&self.store, |store| store.compact()).await?;
        match compacted.incomplete {
            Some(error) => Err(error),
            None => Ok(compacted.removed),
        }
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        if let Some(result) = self.store.existing(spec) {
            return result;
        }
        self.store.writable(&format!("create topic `{}`", spec.name))?;
        let spec = spec.clone();
        blocking(&self.store, move |store| store.create_topic(&spec)).await
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<u32>, LogError> {
        Ok(self.store.partition_count(topic))
    }

    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<Position>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.store.writable("append")?;
        blocking(&self.store, move |store| store.write(records, None)).await
    }

    async fn read(&self, partition: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError> {
        let at = self.store.locate(partition)?;
        if offset >= at.end || max == 0 {
            return Ok(Vec::new());
        }
        blocking(&self.store, move |store| store.read(&[(at, offset)], max)).await
    }

    async fn end_offset(&self, partition: &TopicPartition) -> Result<u64, LogError> {
        Ok(self.store.locate(partition)?.end)
    }

    async fn committed(&self, group: &str, partition: &TopicPartition) -> Result<Option<u64>, LogError> {
        let (group, partition) = (group.to_owned(), partition.clone());
        blocking(&self.store, move |store| store.committed(&group, &partition)).await
    }

    async fn delete_before(&self, partition: &TopicPartition, offset: u64) -> Result<(), LogError> {
        self.store.writable(&format!("delete the records of {partition} below offset {offset}"))?;
        let partition = partition.clone();
        blocking(&self.store, move |store| store.delete_before(&partition, offset)).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        self.store.writable(&format!("delete topic `{topic}`"))?;
        let topic = topic.to_owned();
        blocking(&self.store, move |store| store.delete_topic(&topic)).await
    }

    async fn delete_group(&self, group: &str) -> Result<(), LogError> {
        self.store.writable(&format!("delete group `{group}`"))?;
        let group = group.to_owned();
        blocking(&self.store, move |store| store.delete_group(&group)).await
    }

    async fn join(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<Box<dyn GroupMember>, LogError> {
        self.store.writable(&format!("join group `{group}`"))?;
        super::check_subscription(group, topics)?;
        let topics: Vec<Arc<str>> = topics.iter().map(|t| self.store.topic_name(t)).collect::<Result<_, _>>()?;
        let waker = self.store.wakeups.register(group, &topics);
        let id = self.store.groups().join(group, topics);
        self.store.wakeups.group_changed(group);
        Ok(Box::new(EmbeddedMember { store: self.store.clone(), cursor: Cursor::new(id, group, start), waker }))
    }
}

/// A member of a consumer group on the embedded log.
struct EmbeddedMember {
    store: StoreHandle,
    cursor: Cursor,
    /// Woken when records arrive on its topics or its group changes.
    waker: Arc<Notify>,
}

impl EmbeddedMember {
    /// The group's generation when it differs from this member's (a rebalance is due), with the
    /// new assignment.
    fn rebalance_due(&self) -> Result<Option<(u64, Vec<TopicPartition>)>, LogError> {
        let groups = self.store.groups();
        let generation = groups
            .generation(&self.cursor.group, self.cursor.id)
            .ok_or_else(|| self.cursor.fenced("this member has left the group"))?;
        if generation == self.cursor.generation() {
            return Ok(None);
        }
        let assignment = groups
            .assignment(&self.cursor.group, self.cursor.id, |topic| self.store.partition_count(topic).unwrap_or(0));
        Ok(Some((generation, assignment)))
    }

    /// The assigned partitions that have records past this member's position.
    fn pending_reads(&mut self) -> Vec<(Located, u64)> {
        self.cursor
            .reads()
            .into_iter()
            .filter_map(|(tp, position)| {
                let at = self.store.locate(&tp).ok()?;
                (position < at.end).then_some((at, position))
            })
            .collect()
    }
}

#[async_trait]
impl GroupMember for EmbeddedMember {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled, LogError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let store = self.store.clone();
        let waker = self.waker.clone();
        loop {
            if let Some((generation, assignment)) = self.rebalance_due()? {
                let (group, partitions) = (self.cursor.group.clone(), assignment.clone());
                let points = blocking(&store, move |store| store.starting_points(&group, &partitions)).await?;
                return Ok(self.cursor.rebalance(
                    generation,
                    assignment,
                    |tp| points.committed.get(tp).copied(),
                    // A read below the first record left starts at it (a partition's last record
                    // is always kept).
                    |tp| (0, points.ends.get(tp).copied().unwrap_or(0)),
                ));
            }
            let reads = self.pending_reads();
            if !reads.is_empty() && max > 0 {
                let records = blocking(&store, move |store| store.read(&reads, max)).await?;
                if !records.is_empty() {
                    self.cursor.consumed(&records);
                    return Ok(Polled { records, ..Polled::default() });
                }
            }
            if tokio::time::timeout_at(deadline, waker.notified()).await.is_err() {
                return Ok(Polled::default());
            }
        }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.cursor.assigned().to_vec()
    }

    fn has_assignment(&self) -> bool {
        self.cursor.has_assignment()
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.cursor.position(partition)
    }

    async fn rewind(&mut self) -> Result<(), LogError> {
        if self.store.groups().generation(&self.cursor.group, self.cursor.id).is_none() {
            return Err(self.cursor.fenced("this member has left the group"));
        }
        let (group, partitions) = (self.cursor.group.clone(), self.cursor.assigned().to_vec());
        let points = blocking(&self.store, move |store| store.starting_points(&group, &partitions)).await?;
        self.cursor.rewind(|tp| points.committed.get(tp).copied(), |_| 0);
        Ok(())
    }

    async fn commit(
        &mut self,
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<Position>, LogError> {
        let fence = self.cursor.fence();
        blocking(&self.store, move |store| store.write(outputs, Some((fence, positions)))).await
    }

    async fn leave(self: Box<Self>) -> Result<(), LogError> {
        Ok(()) // Drop does the work, so a member that panics also leaves.
    }
}

impl Drop for EmbeddedMember {
    fn drop(&mut self) {
        self.store.groups().leave(&self.cursor.group, self.cursor.id);
        self.store.wakeups.group_changed(&self.cursor.group);
    }
}
