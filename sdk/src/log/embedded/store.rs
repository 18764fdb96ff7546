//! The SQLite side of the embedded log: the lock file, the schema, the connections, and every
//! operation that touches the disk. Everything here blocks; the async side runs it on tokio's
//! blocking pool.
//!
//! Locks, always taken in this order and never held across an `.await`:
//! `writer` (the one connection that writes; held for a whole write transaction) ->
//! `groups` (membership; held only to read or bump a generation) ->
//! `catalog` (topics and end offsets in memory; held only for in-memory work).
//! The async side takes `groups` and `catalog` on their own, for in-memory work only.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension, params};

use super::{Durability, EmbeddedOptions};
use crate::log::group::{Coordinator, Fence};
use crate::log::partitioner::destination;
use crate::log::wakeup::Wakeups;
use crate::log::{Cleanup, Headers, LogError, OutRecord, Record, TopicPartition, TopicSpec};
use crate::model::Position;

/// The database file inside the directory.
pub(super) const DATABASE: &str = "log.sqlite3";
/// The lock file inside the directory: it names the process that holds the directory.
pub(super) const LOCK: &str = "tramline.lock";
/// `PRAGMA user_version` of the schema below (1: without `compaction_marks`). `pending_vacuum`
/// and `topic_retention` came later within version 2: a writer adds them on open; readers never
/// read the first, and read the second where it is.
const SCHEMA_VERSION: i64 = 2;
/// `PRAGMA application_id` of a tramline log ("trln"): tells its database from any other.
const APPLICATION_ID: i64 = 0x7472_6c6e;
/// The tables of the schema's version 1, to recognise a log made before the application id was
/// set (in version 1).
const TABLES_V1: [&str; 3] = ["committed", "records", "topics"];
/// How long emptying the write-ahead log after a compaction waits for readers of the database
/// (other processes: this one's readers hold no transaction between reads). Writers wait too.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);
/// How long opening waits for the holder of the directory (an instance of this process being
/// dropped, a process being killed) to let go of it.
const CLOSING_GRACE: Duration = Duration::from_secs(2);
/// Idle read connections kept for reuse.
const IDLE_READERS: usize = 4;
/// Database calls that run at once, each on a thread of tokio's blocking pool: the idle
/// readers and the writer, and one to spare. The others wait as tasks, not as threads blocked
/// on the writer's lock (a platform's 256 reservations in flight held 200 to 340 threads).
pub(super) const CALLS_AT_ONCE: usize = IDLE_READERS + 2;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS topics (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    partitions  INTEGER NOT NULL CHECK (partitions > 0),
    cleanup     TEXT    NOT NULL CHECK (cleanup IN ('keep', 'compact'))
);
CREATE TABLE IF NOT EXISTS records (
    topic       INTEGER NOT NULL REFERENCES topics (id),
    "partition" INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    key         BLOB,
    value       BLOB,
    headers     BLOB,
    timestamp   INTEGER NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE TABLE IF NOT EXISTS committed (
    group_name  TEXT    NOT NULL,
    topic       INTEGER NOT NULL REFERENCES topics (id),
    "partition" INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic, "partition")
) WITHOUT ROWID;
"#;

/// Each compacted partition's end when a compaction ran: a tombstone below a mark taken at least
/// the tombstone retention ago has been on the log that long (whatever its record's timestamp).
const COMPACTION_MARKS: &str = r#"
CREATE TABLE IF NOT EXISTS compaction_marks (
    topic       INTEGER NOT NULL REFERENCES topics (id),
    "partition" INTEGER NOT NULL,
    taken_ms    INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    PRIMARY KEY (topic, "partition", taken_ms)
) WITHOUT ROWID;
"#;

/// A row while a compaction has removed keys of forgotten subjects and the database has not been
/// vacuumed since (see [`Store::compact`]). Written in the deletion's transaction, it outlives a
/// process killed before its vacuum, and the next compaction (on open, too) vacuums. Made on
/// every open for writing: a log written before it has none.
const PENDING_VACUUM: &str = r#"
CREATE TABLE IF NOT EXISTS pending_vacuum (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    since_ms    INTEGER NOT NULL
);
"#;

/// The retention of each topic compacted and expired ([`Cleanup::CompactAndExpire`]); the
/// topic's `cleanup` is `compact`. Made on every open for writing: a log written before it has
/// none (and an earlier tramline, which does not know it, compacts such a topic only).
const TOPIC_RETENTION: &str = r#"
CREATE TABLE IF NOT EXISTS topic_retention (
    topic        INTEGER PRIMARY KEY REFERENCES topics (id),
    retention_ms INTEGER NOT NULL CHECK (retention_ms >= 0)
);
"#;

const INSERT_RECORD: &str = r#"INSERT INTO records (topic, "partition", "offset", key, value, headers, timestamp)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"#;
const UPSERT_COMMITTED: &str = r#"INSERT INTO committed (group_name, topic, "partition", "offset") VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (group_name, topic, "partition") DO UPDATE SET "offset" = excluded."offset""#;
const SELECT_COMMITTED: &str =
    r#"SELECT "offset" FROM committed WHERE group_name = ?1 AND topic = ?2 AND "partition" = ?3"#;
const SELECT_RECORDS: &str = r#"SELECT "offset", key, value, headers, timestamp FROM records
WHERE topic = ?1 AND "partition" = ?2 AND "offset" >= ?3 ORDER BY "offset" LIMIT ?4"#;
const DELETE_BEFORE: &str = r#"DELETE FROM records WHERE topic = ?1 AND "partition" = ?2 AND "offset" < ?3"#;
const SELECT_END: &str = r#"SELECT MAX("offset") FROM records WHERE topic = ?1 AND "partition" = ?2"#;
/// Deletes every record of a topic that a later record with the same key supersedes. Records
/// without a key are kept; tombstones are kept (they are the latest of their key).
const COMPACT: &str = r#"DELETE FROM records WHERE topic = ?1 AND rowid IN (
    SELECT rowid FROM (
        SELECT rowid, row_number() OVER (PARTITION BY "partition", key ORDER BY "offset" DESC) AS newer
        FROM records WHERE topic = ?1 AND key IS NOT NULL
    ) WHERE newer > 1
)"#;

/// Deletes the tombstones of a topic that lie below the newest mark taken at or before ?2 (they
/// have been there for the retention). Run after `COMPACT`: each is the only record of its key.
/// A partition's last record stays: opening finds the partition's end from it.
const EXPIRE_TOMBSTONES: &str = r#"DELETE FROM records WHERE topic = ?1 AND key IS NOT NULL AND value IS NULL
AND "offset" < (
    SELECT m."offset" FROM compaction_marks m
    WHERE m.topic = ?1 AND m."partition" = records."partition" AND m.taken_ms <= ?2
    ORDER BY m.taken_ms DESC LIMIT 1
)
AND "offset" < (SELECT MAX(r."offset") FROM records r WHERE r.topic = ?1 AND r."partition" = records."partition")"#;
/// Deletes the records of a topic whose timestamp is below ?2 (they are older than its
/// retention), but each partition's last record: opening finds the partition's end from it.
const EXPIRE_OLD_RECORDS: &str = r#"DELETE FROM records WHERE topic = ?1 AND timestamp < ?2
AND "offset" < (SELECT MAX(r."offset") FROM records r WHERE r.topic = ?1 AND r."partition" = records."partition")"#;
/// Forgets the marks older than the one `EXPIRE_TOMBSTONES` used (taken at or before ?2).
const PRUNE_MARKS: &str = r#"DELETE FROM compaction_marks WHERE topic = ?1 AND taken_ms < (
    SELECT MAX(m.taken_ms) FROM compaction_marks m
    WHERE m.topic = ?1 AND m."partition" = compaction_marks."partition" AND m.taken_ms <= ?2
)"#;
const INSERT_MARK: &str =
    r#"INSERT OR REPLACE INTO compaction_marks (topic, "partition", taken_ms, "offset") VALUES (?1, ?2, ?3, ?4)"#;

/// Whether `topic` holds the keys of personal data, whose deleted records must leave no byte
/// in the files (on a namespaced log it is `<namespace>.tramline.keys`).
fn holds_keys(topic: &str) -> bool {
    use crate::privacy::KEYS_TOPIC;
    topic.strip_suffix(KEYS_TOPIC).is_some_and(|prefix| prefix.is_empty() || prefix.ends_with('.'))
}

/// One open embedded log: everything the async side and the members share.
pub(super) struct Store {
    dir: PathBuf,
    database: PathBuf,
    // The readers are declared (so dropped) before the writer: SQLite checkpoints the
    // write-ahead log into the database when its last connection closes, and the readers
    // close without checkpointing.
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Connection>,
    catalog: Mutex<Catalog>,
    /// Consumer-group membership (in memory: one process owns the directory).
    pub(super) groups: Mutex<Coordinator>,
    /// The members waiting for records or rebalances.
    pub(super) wakeups: Wakeups,
    /// The write-ahead log may hold copies of deleted records: from the first deletion of a
    /// compaction (or an earlier process) until a checkpoint empties it. A compaction that
    /// removes nothing still empties it then.
    unemptied_wal: AtomicBool,
    /// Dropped with the store, which stops the compaction thread, if any.
    stop_compactor: OnceLock<mpsc::Sender<()>>,
    /// How long a compaction keeps a tombstone ([`EmbeddedOptions::tombstone_retention`]).
    tombstone_retention: Option<Duration>,
    /// Opened by [`Store::open_read_only`]: writes, groups and compaction are refused.
    read_only: bool,
    /// Admits [`CALLS_AT_ONCE`] database calls at a time.
    pub(super) calls: Arc<tokio::sync::Semaphore>,
    /// Held for the life of the store; closing it releases the `flock`. A read-only store
    /// takes none.
    _lock: Option<File>,
}

/// What a compaction did.
pub(super) struct Compacted {
    /// Records deleted.
    pub(super) removed: u64,
    /// Why the files may still hold copies of deleted records, if they may: the write-ahead
    /// log could not be emptied, or the database vacuumed.
    pub(super) incomplete: Option<LogError>,
}

/// The topics, with their end offsets, mirrored in memory. Changed only by the holder of the
/// writer connection, after its transaction committed.
#[derive(Default)]
struct Catalog {
    topics: HashMap<Arc<str>, TopicMeta>,
    /// Round-robin counter for records with neither key nor partition.
    unkeyed: u32,
}

struct TopicMeta {
    id: i64,
    name: Arc<str>,
    partitions: u32,
    cleanup: Cleanup,
    /// The offset the next record of each partition gets.
    ends: Vec<u64>,
}

/// Where a member's partitions start: the group's committed positions, and the partitions' ends.
#[derive(Debug, Default)]
pub(super) struct StartingPoints {
    /// The committed position per partition, where the group has one.
    pub(super) committed: HashMap<TopicPartition, u64>,
    /// The end offset per partition.
    pub(super) ends: HashMap<TopicPartition, u64>,
}

/// A partition located in the catalog.
#[derive(Debug, Clone)]
pub(super) struct Located {
    /// The topic's name, shared by the records read.
    pub(super) name: Arc<str>,
    /// The topic's row id.
    pub(super) id: i64,
    /// The partition.
    pub(super) partition: u32,
    /// The partition's end offset.
    pub(super) end: u64,
}

/// A database error, with the database's path and what was being done.
fn sql_error(database: &Path, doing: &str, error: rusqlite::Error) -> LogError {
    LogError::Backend(format!("embedded log {}: {doing}: {error}", database.display()))
}

/// An error while opening the database; a read-only one says where the write was refused (a
/// read-only file system answers "unable to open", as SQLite cannot create its files there).
fn open_error(database: &Path, doing: &str, error: rusqlite::Error) -> LogError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => LogError::Backend(format!(
            "embedded log {}: {doing}: {error}; SQLite creates `{DATABASE}-wal` and `{DATABASE}-shm` next \
             to the database, so the directory must be writable too",
            database.display()
        )),
        _ => sql_error(database, doing, error),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before it can panic (a write updates the
    // catalog only after its transaction committed), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A duration in milliseconds as SQLite stores an integer (saturated).
fn to_sql_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating when needed) the log in `dir`. Blocks.
    pub(super) fn open(dir: &Path, options: &EmbeddedOptions) -> Result<Store, LogError> {
        let io = |doing: &str, path: &Path, e: std::io::Error| {
            LogError::Backend(format!("embedded log {}: {doing} {}: {e}", dir.display(), path.display()))
        };
        if dir.exists() && !dir.is_dir() {
            return Err(LogError::Backend(format!(
                "embedded log {}: not a directory (the log is a directory of files)",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory", dir, e))?;
        let lock_path = dir.join(LOCK);
        let mut lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io("cannot open the lock file", &lock_path, e))?;
        // The `flock` is on the directory itself where it can be: a lock file deleted under a
        // running log (it looks stale) would let the next process lock a new one.
        #[cfg(unix)]
        let held = File::open(dir).map_err(|e| io("cannot open the directory to lock it", dir, e))?;
        #[cfg(not(unix))]
        let held = lock_file.try_clone().map_err(|e| io("cannot open the lock file", &lock_path, e))?;
        let started = Instant::now();
        loop {
            let holder = match fs4::FileExt::try_lock(&held) {
                Ok(()) => break,
                Err(fs4::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = lock_file.rewind().and_then(|()| lock_file.read_to_string(&mut holder));
                    holder.trim().to_owned()
                }
                Err(fs4::TryLockError::Error(e)) => return Err(io("cannot lock", dir, e)),
            };
            // An instance of this process that is being dropped lets go once its last database
            // tasks (still running after their callers went away) finish, and a process that
            // was killed once the kernel has torn it down (a large heap takes a while): moments.
            if started.elapsed() < CLOSING_GRACE {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let holder = match holder.as_str() {
                "" => String::new(),
                pid => format!(" (by process {pid})"),
            };
            return Err(LogError::Backend(format!(
                "embedded log {}: the directory is already open{holder}, as its lock file {} says \
                 (the lock is on the directory: deleting the file does not lift it). One \
                 EmbeddedLog in one process at a time may open a directory; share that one (it is \
                 Clone), stop the other process, or only read the directory beside it \
                 (EmbeddedLog::open_read_only)",
                dir.display(),
                lock_path.display()
            )));
        }
        // For the message above, in the process that fails to get the lock.
        let _ = lock_file.set_len(0).and_then(|()| lock_file.rewind());
        let _ = write!(lock_file, "{}", std::process::id()).and_then(|()| lock_file.flush());
        drop(lock_file);

        let database = database_in(dir);
        let err = |doing: &str| {
            let database = database.clone();
            let doing = doing.to_owned();
            move |e| sql_error(&database, &doing, e)
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer = Connection::open_with_flags(&database, flags).map_err(err("cannot open the database"))?;
        writer.busy_timeout(Duration::from_secs(5)).map_err(err("cannot set the busy timeout"))?;
        // Before anything writes to the file: it must be ours (or new) and writable.
        let found = identify(&writer, &database)?;
        if writer.is_readonly(MAIN_DB).map_err(err("cannot tell whether the database is writable"))? {
            return Err(LogError::Backend(format!(
                "embedded log {}: the database file is read-only for this process; the log needs to \
                 write it (check the file's permissions and owner)",
                database.display()
            )));
        }
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| open_error(&database, "cannot switch to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LogError::Backend(format!(
                "embedded log {}: the database refused WAL mode (journal mode is `{mode}`)",
                database.display()
            )));
        }
        let synchronous = match options.durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        writer.pragma_update(None, "synchronous", synchronous).map_err(err("cannot set `synchronous`"))?;
        // Deleted records (superseded keys of forgotten data subjects among them) are
        // overwritten, not left in free pages.
        writer.pragma_update(None, "secure_delete", "ON").map_err(err("cannot set `secure_delete`"))?;
        migrate(&mut writer, &database, found)?;
        let catalog = load_catalog(&writer).map_err(err("cannot load the topics"))?;
        let store = Store {
            dir: dir.to_owned(),
            database,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            catalog: Mutex::new(catalog),
            groups: Mutex::new(Coordinator::default()),
            wakeups: Wakeups::default(),
            // A WAL left by an earlier process may hold copies of what it deleted.
            unemptied_wal: AtomicBool::new(true),
            stop_compactor: OnceLock::new(),
            tombstone_retention: options.tombstone_retention,
            read_only: false,
            calls: Arc::new(tokio::sync::Semaphore::new(CALLS_AT_ONCE)),
            _lock: Some(held),
        };
        if options.compact_on_open {
            // Housekeeping: the log is usable without it (a full disk can refuse the
            // checkpoint), and the copies go with the next compaction that can empty the WAL.
            match store.compact() {
                Ok(Compacted { incomplete: Some(error), .. }) | Err(error) => {
                    tracing::warn!(%error, "embedded log: compaction on open did not complete; the log opens without it");
                }
                Ok(_) => {}
            }
        }
        Ok(store)
    }

    /// Opens the log in `dir` to read it beside the process that has it open: no lock, nothing
    /// created, upgraded or compacted; the topics as they are now. Blocks.
    pub(super) fn open_read_only(dir: &Path) -> Result<Store, LogError> {
        let database = database_in(dir);
        if !database.is_file() {
            return Err(LogError::Backend(format!(
                "embedded log {}: holds no embedded log (no {})",
                dir.display(),
                database.display()
            )));
        }
        let err = |doing: &'static str| {
            let database = database.clone();
            move |e| open_error(&database, doing, e)
        };
        // SQLite's write-ahead log lets readers in beside the writer of another process.
        let reader = open_reader(&database).map_err(err("cannot open the database"))?;
        match identify(&reader, &database)? {
            Found::Log { version: SCHEMA_VERSION } => {}
            Found::Nothing => {
                return Err(LogError::Backend(format!("embedded log {}: holds no embedded log", dir.display())));
            }
            Found::Log { .. } | Found::UnmarkedLog { .. } => {
                return Err(LogError::Backend(format!(
                    "embedded log {}: written by an earlier tramline; open it once for writing to bring it to \
                     this version, then read it",
                    dir.display()
                )));
            }
        }
        let catalog = load_catalog(&reader).map_err(err("cannot load the topics"))?;
        Ok(Store {
            dir: dir.to_owned(),
            database,
            writer: Mutex::new(reader),
            readers: Mutex::new(Vec::new()),
            catalog: Mutex::new(catalog),
            groups: Mutex::new(Coordinator::default()),
            wakeups: Wakeups::default(),
            unemptied_wal: AtomicBool::new(false),
            stop_compactor: OnceLock::new(),
            tombstone_retention: None,
            read_only: true,
            calls: Arc::new(tokio::sync::Semaphore::new(CALLS_AT_ONCE)),
            _lock: None,
        })
    }

    /// Refuses what a read-only store cannot do.
    pub(super) fn writable(&self, doing: &str) -> Result<(), LogError> {
        match self.read_only {
            false => Ok(()),
            true => Err(LogError::Backend(format!(
                "embedded log {}: opened read-only (EmbeddedLog::open_read_only), it cannot {doing}",
                self.dir.display()
            ))),
        }
    }

    /// The directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub(super) fn database(&self) -> &Path {
        &self.database
    }

    /// A backend error about this log.
    pub(super) fn error(&self, doing: &str, error: impl std::fmt::Display) -> LogError {
        LogError::Backend(format!("embedded log {}: {doing}: {error}", self.database.display()))
    }

    fn sql(&self, doing: &'static str) -> impl Fn(rusqlite::Error) -> LogError + '_ {
        move |e| sql_error(&self.database, doing, e)
    }

    pub(super) fn groups(&self) -> MutexGuard<'_, Coordinator> {
        lock(&self.groups)
    }

    fn catalog(&self) -> MutexGuard<'_, Catalog> {
        lock(&self.catalog)
    }

    /// The partition count of a topic. In memory.
    pub(super) fn partition_count(&self, topic: &str) -> Option<u32> {
        self.catalog().topics.get(topic).map(|t| t.partitions)
    }

    /// The topic's name as the catalog shares it, or an error when it does not exist. In memory.
    pub(super) fn topic_name(&self, topic: &str) -> Result<Arc<str>, LogError> {
        self.catalog()
            .topics
            .get(topic)
            .map(|t| t.name.clone())
            .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))
    }

    /// Finds a partition, or says why it does not exist. In memory.
    pub(super) fn locate(&self, tp: &TopicPartition) -> Result<Located, LogError> {
        locate(&self.catalog(), tp)
    }

    /// Whether an existing topic matches `spec` (`Some(Ok)`), conflicts with it (`Some(Err)`), or
    /// does not exist (`None`). In memory.
    pub(super) fn existing(&self, spec: &TopicSpec) -> Option<Result<(), LogError>> {
        existing(&self.catalog(), spec)
    }

    /// Creates a topic, or checks an existing one. Blocks.
    pub(super) fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        spec.check_partitions(crate::log::LOCAL_MAX_PARTITIONS, "the embedded log")?;
        let writer = lock(&self.writer);
        if let Some(result) = self.existing(spec) {
            return result;
        }
        let (cleanup, retention) = match spec.cleanup {
            Cleanup::Keep => ("keep", None),
            Cleanup::Compact => ("compact", None),
            Cleanup::CompactAndExpire { retention } => ("compact", Some(to_sql_millis(retention))),
        };
        let id = writer
            .unchecked_transaction()
            .and_then(|tx| {
                tx.prepare_cached("INSERT INTO topics (name, partitions, cleanup) VALUES (?1, ?2, ?3)")?
                    .execute(params![spec.name, spec.partitions, cleanup])?;
                let id = tx.last_insert_rowid();
                if let Some(retention) = retention {
                    tx.prepare_cached("INSERT INTO topic_retention (topic, retention_ms) VALUES (?1, ?2)")?
                        .execute(params![id, retention])?;
                }
                tx.commit().map(|()| id)
            })
            .map_err(|e| self.error(&format!("cannot create topic `{}`", spec.name), e))?;
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let ends = vec![0; spec.partitions as usize];
        let meta = TopicMeta { id, name: name.clone(), partitions: spec.partitions, cleanup: spec.cleanup, ends };
        self.catalog().topics.insert(name, meta);
        Ok(())
    }

    /// Appends `records` and, for a group member, commits `positions` after checking its fence:
    /// one transaction, all or nothing. Blocks.
    pub(super) fn write(
        &self,
        records: Vec<OutRecord>,
        commit: Option<(Fence, Vec<(TopicPartition, u64)>)>,
    ) -> Result<Vec<Position>, LogError> {
        let now = jiff::Timestamp::now().as_millisecond();

        let mut writer = lock(&self.writer);
        let (group, positions) = match commit {
            Some((fence, positions)) => {
                self.groups().check_fence(&fence, &positions)?;
                (fence.group().to_owned(), positions)
            }
            None => (String::new(), Vec::new()),
        };

        // Where every record goes, checked before anything is written.
        let (written, ends, committed) = {
            let mut catalog = self.catalog();
            let Catalog { topics, unkeyed } = &mut *catalog;
            let mut next: HashMap<(Arc<str>, u32), u64> = HashMap::new();
            let mut written = Vec::with_capacity(records.len());
            let mut ids = Vec::with_capacity(records.len());
            for record in &records {
                let meta =
                    topics.get(&*record.topic).ok_or_else(|| LogError::UnknownTopic(record.topic.to_string()))?;
                let partition = destination(record, meta.partitions, meta.cleanup, unkeyed)?;
                let slot = next.entry((meta.name.clone(), partition)).or_insert(meta.ends[partition as usize]);
                written.push(Position { topic: meta.name.clone(), partition, offset: *slot });
                ids.push(meta.id);
                *slot += 1;
            }
            let mut committed = Vec::with_capacity(positions.len());
            for (tp, offset) in &positions {
                let meta = topics.get(&*tp.topic).ok_or_else(|| LogError::UnknownTopic(tp.topic.to_string()))?;
                committed.push((meta.id, tp.partition, *offset));
            }
            (written.into_iter().zip(ids).collect::<Vec<_>>(), next, committed)
        };
        if written.is_empty() && committed.is_empty() {
            return Ok(Vec::new());
        }

        let tx = writer.transaction().map_err(self.sql("cannot begin a write transaction"))?;
        {
            let mut insert = tx.prepare_cached(INSERT_RECORD).map_err(self.sql("cannot prepare the insert"))?;
            for ((position, id), record) in written.iter().zip(&records) {
                insert
                    .execute(params![
                        id,
                        position.partition,
                        to_sql(position.offset),
                        record.key.as_deref(),
                        record.value.as_deref(),
                        // Stored in the log's own encoding; no headers is NULL.
                        Some(&record.headers.encoded()[..]).filter(|h| !h.is_empty()),
                        record.timestamp.unwrap_or(now),
                    ])
                    .map_err(|e| match e.sqlite_error_code() {
                        // Over SQLite's SQLITE_MAX_LENGTH: the transaction is rolled back.
                        Some(rusqlite::ErrorCode::TooBig) => LogError::TooLarge {
                            topic: position.topic.to_string(),
                            reason: format!(
                                "{} bytes of key, value and headers, and the embedded log (SQLite) takes at most \
                                 1,000,000,000 per record",
                                record.key.as_ref().map_or(0, |k| k.len())
                                    + record.value.as_ref().map_or(0, |v| v.len())
                                    + record.headers.encoded().len()
                            ),
                        },
                        _ => self.error(&format!("cannot write a record to {position}"), e),
                    })?;
            }
        }
        if !committed.is_empty() {
            let mut upsert = tx.prepare_cached(UPSERT_COMMITTED).map_err(self.sql("cannot prepare the commit"))?;
            for (id, partition, offset) in &committed {
                upsert
                    .execute(params![group, id, partition, to_sql(*offset)])
                    .map_err(|e| self.error(&format!("cannot commit the position of group `{group}`"), e))?;
            }
        }
        tx.commit().map_err(self.sql("cannot commit the write transaction"))?;

        // Visible now: publish the new ends, then wake the pollers.
        {
            let mut catalog = self.catalog();
            for ((topic, partition), end) in ends {
                if let Some(meta) = catalog.topics.get_mut(&topic) {
                    meta.ends[partition as usize] = end;
                }
            }
        }
        drop(writer);
        self.wakeups.records_written(written.iter().map(|(position, _)| &*position.topic));
        Ok(written.into_iter().map(|(position, _)| position).collect())
    }

    /// Reads up to `max` records of each partition from its offset on, `max` in all. Blocks.
    pub(super) fn read(&self, reads: &[(Located, u64)], max: usize) -> Result<Vec<Record>, LogError> {
        self.with_reader(|conn| {
            let mut records = Vec::new();
            for (at, offset) in reads {
                if records.len() >= max {
                    break;
                }
                read_partition(conn, at, *offset, max - records.len(), &mut records)
                    .map_err(|e| self.error(&format!("cannot read {}/{}", at.name, at.partition), e))?;
            }
            Ok(records)
        })
    }

    /// Forgets a group's committed positions. Blocks.
    pub(super) fn delete_group(&self, group: &str) -> Result<(), LogError> {
        let writer = lock(&self.writer);
        // Held until the positions are gone: no member joins in between.
        let groups = self.groups();
        groups.check_deletable(group)?;
        writer
            .execute("DELETE FROM committed WHERE group_name = ?1", [group])
            .map(drop)
            .map_err(|e| self.error(&format!("cannot delete group `{group}`"), e))
    }

    /// Deletes a topic: its records, the positions committed on it, its compaction marks and
    /// retention, and the topic itself, in one transaction. Blocks.
    pub(super) fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let writer = lock(&self.writer);
        let Some(id) = self.catalog().topics.get(topic).map(|meta| meta.id) else { return Ok(()) };
        writer
            .unchecked_transaction()
            .and_then(|tx| {
                for table in ["records", "committed", "compaction_marks", "topic_retention"] {
                    tx.execute(&format!("DELETE FROM {table} WHERE topic = ?1"), [id])?;
                }
                tx.execute("DELETE FROM topics WHERE id = ?1", [id])?;
                tx.commit()
            })
            .map_err(|e| self.error(&format!("cannot delete topic `{topic}`"), e))?;
        self.catalog().topics.remove(topic);
        Ok(())
    }

    /// Deletes a partition's records below `offset`, but its last record: opening finds the
    /// partition's end from it. Blocks.
    pub(super) fn delete_before(&self, tp: &TopicPartition, offset: u64) -> Result<(), LogError> {
        let writer = lock(&self.writer);
        // Under the writer lock: the end is that of every write committed.
        let at = self.locate(tp)?;
        if offset > at.end {
            let (topic, partition, end) = (tp.topic.to_string(), tp.partition, at.end);
            return Err(LogError::OffsetPastEnd { topic, partition, offset, end });
        }
        let below = offset.min(at.end.saturating_sub(1));
        writer
            .prepare_cached(DELETE_BEFORE)
            .and_then(|mut delete| delete.execute(params![at.id, at.partition, to_sql(below)]))
            .map(drop)
            .map_err(|e| self.error(&format!("cannot delete the records of {tp} below offset {offset}"), e))
    }

    /// The position a group committed for a partition. Blocks. Read under the writer lock: a
    /// write's positions and its outputs' end offsets become visible together (a reader
    /// connection would see the positions of a write whose ends are not published yet).
    pub(super) fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        let Some(id) = self.catalog().topics.get(&*tp.topic).map(|t| t.id) else {
            return Ok(None);
        };
        let writer = lock(&self.writer);
        select_committed(&writer, group, id, tp.partition)
            .map_err(|e| self.error(&format!("cannot read the position of group `{group}` on {tp}"), e))
    }

    /// For a rebalance or a rewind: the group's committed positions and the end offsets of these
    /// partitions. Read under the writer lock, so that a write that passed its fence check before
    /// the rebalance is seen. Blocks.
    pub(super) fn starting_points(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<StartingPoints, LogError> {
        let writer = lock(&self.writer);
        let located: Vec<Option<Located>> = {
            let catalog = self.catalog();
            partitions.iter().map(|tp| locate(&catalog, tp).ok()).collect()
        };
        let mut points = StartingPoints::default();
        for (tp, at) in partitions.iter().zip(located) {
            let Some(at) = at else { continue };
            if let Some(offset) = select_committed(&writer, group, at.id, at.partition)
                .map_err(|e| self.error(&format!("cannot read the position of group `{group}` on {tp}"), e))?
            {
                points.committed.insert(tp.clone(), offset);
            }
            points.ends.insert(tp.clone(), at.end);
        }
        Ok(points)
    }

    /// Compacts every compacted topic: only the latest record per key stays (and every record
    /// without a key), and tombstones go once they have been on the log for the retention;
    /// then vacuums when keys of forgotten subjects went, and empties the write-ahead log, so
    /// that no copy of a deleted record stays in the files. Blocks.
    pub(super) fn compact(&self) -> Result<Compacted, LogError> {
        let writer = lock(&self.writer);
        let removed = self.remove_superseded(&writer)?;
        let unvacuumed = self.vacuum_if_pending(&writer).err();
        let unemptied_wal = self.empty_wal(&writer)?.err();
        Ok(Compacted { removed, incomplete: unvacuumed.or(unemptied_wal) })
    }

    /// The deletions of [`Store::compact`], each topic's committed on its own. Returns how many
    /// records went.
    fn remove_superseded(&self, writer: &Connection) -> Result<u64, LogError> {
        let compacted: Vec<(i64, String, Option<i64>)> = writer
            .prepare_cached(
                "SELECT id, name, retention_ms FROM topics LEFT JOIN topic_retention ON topic = id \
                 WHERE cleanup = 'compact'",
            )
            .and_then(|mut select| select.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?.collect())
            .map_err(self.sql("cannot list the compacted topics"))?;
        let now = jiff::Timestamp::now().as_millisecond();
        let mut removed = 0u64;
        for (id, name, retention) in compacted {
            // Superseded key records hold key material (expired tombstones hold none): the
            // vacuum they call for is noted in their deletion's transaction.
            let superseded = writer
                .unchecked_transaction()
                .and_then(|tx| {
                    let superseded = tx.prepare_cached(COMPACT)?.execute([id])?;
                    if superseded > 0 && holds_keys(&name) {
                        tx.prepare_cached("INSERT OR IGNORE INTO pending_vacuum (id, since_ms) VALUES (1, ?1)")?
                            .execute([now])?;
                    }
                    tx.commit().map(|()| superseded as u64)
                })
                .map_err(|e| self.error(&format!("cannot compact topic `{name}`"), e))?;
            let deleted = superseded
                + self.expire_tombstones(writer, id, now).map_err(|e| {
                    self.error(&format!("cannot delete the tombstones of topic `{name}` older than the retention"), e)
                })?;
            // Expired records hold no key material (keys topics do not expire).
            let expired = match retention {
                Some(retention) => writer
                    .prepare_cached(EXPIRE_OLD_RECORDS)
                    .and_then(|mut expire| expire.execute(params![id, now.saturating_sub(retention)]))
                    .map_err(|e| {
                        self.error(&format!("cannot delete the records of topic `{name}` older than its retention"), e)
                    })? as u64,
                None => 0,
            };
            let deleted = deleted + expired;
            // From here the WAL has copies.
            if deleted > 0 {
                self.unemptied_wal.store(true, Ordering::Relaxed);
            }
            removed += deleted;
        }
        Ok(removed)
    }

    /// Vacuums the database if a compaction removed keys of forgotten subjects since the last
    /// vacuum, in this process or an earlier one.
    ///
    /// `secure_delete` zeroes a deleted record, but a page rebalance that moved other records
    /// leaves their old bytes in the page's unused space (a few in a thousand keys stayed):
    /// vacuuming rewrites every page, so no byte of a forgotten subject's key is left. It costs
    /// a copy of the database (in the write-ahead log and in SQLite's temporary directory) and
    /// holds the writer meanwhile, so only when keys went. A failure is told after the
    /// write-ahead log is emptied, and the next compaction tries again.
    fn vacuum_if_pending(&self, writer: &Connection) -> Result<(), LogError> {
        writer
            .query_row("SELECT EXISTS (SELECT 1 FROM pending_vacuum)", [], |row| row.get::<_, bool>(0))
            .and_then(|pending| match pending {
                true => writer.execute_batch("VACUUM; DELETE FROM pending_vacuum").map(|()| {
                    // The rewritten pages are in the write-ahead log: the database file gets
                    // them at the checkpoint that follows.
                    self.unemptied_wal.store(true, Ordering::Relaxed);
                }),
                false => Ok(()),
            })
            .map_err(|error| {
                self.error(
                    "cannot vacuum the database after compaction removed keys of forgotten subjects \
                     (bytes of them may stay in unused space of its pages until a compaction vacuums it)",
                    error,
                )
            })
    }

    /// Empties the write-ahead log if it may hold copies of deleted records; the inner error
    /// says that a reader kept it.
    fn empty_wal(&self, writer: &Connection) -> Result<Result<(), LogError>, LogError> {
        if !self.unemptied_wal.load(Ordering::Relaxed) {
            return Ok(Ok(()));
        }
        // The WAL still holds the pages as they were before: copy the deletions into the
        // database and empty it, so that what compaction removed is gone from the disk. A
        // reader of another process in the middle of a read transaction keeps the WAL: SQLite
        // then says so in `busy` instead of failing.
        let checkpoint = writer
            .busy_timeout(CHECKPOINT_WAIT)
            .and_then(|()| writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0)));
        writer.busy_timeout(Duration::from_secs(5)).map_err(self.sql("cannot set the busy timeout"))?;
        let busy = checkpoint.map_err(self.sql("cannot checkpoint the write-ahead log after compacting"))? != 0;
        if !busy {
            self.unemptied_wal.store(false, Ordering::Relaxed);
            return Ok(Ok(()));
        }
        Ok(Err(LogError::Backend(format!(
            "embedded log {}: compaction could not empty the write-ahead log `{DATABASE}-wal`: \
             another connection to the database was reading, so it still holds copies of records \
             deleted by this or an earlier compaction; the next compaction empties it once that \
             reader has finished",
            self.database.display()
        ))))
    }

    /// Deletes the topic's tombstones that have been on the log for the retention, as Kafka
    /// does after `delete.retention.ms`, and marks where the partitions end now. Returns how
    /// many it deleted. With the writer held, after `COMPACT`.
    fn expire_tombstones(&self, writer: &Connection, topic: i64, now: i64) -> rusqlite::Result<u64> {
        let Some(retention) = self.tombstone_retention else { return Ok(0) };
        let horizon = now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let deleted = writer.prepare_cached(EXPIRE_TOMBSTONES)?.execute(params![topic, horizon])?;
        writer.prepare_cached(PRUNE_MARKS)?.execute(params![topic, horizon])?;
        let ends = self.catalog().topics.values().find(|meta| meta.id == topic).map(|meta| meta.ends.clone());
        let mut mark = writer.prepare_cached(INSERT_MARK)?;
        for (partition, end) in ends.unwrap_or_default().into_iter().enumerate() {
            mark.execute(params![topic, partition as i64, now, end as i64])?;
        }
        Ok(deleted as u64)
    }

    /// Compacts every `interval` on a thread of its own while the store lives, so that a
    /// long-running process does not keep superseded records (a forgotten subject's key) until
    /// its next start. The thread holds no reference that keeps the store open.
    pub(super) fn compact_every(self: &Arc<Self>, interval: Duration) -> Result<(), LogError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let store = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("tramline-compactor".into())
            .spawn(move || {
                // Woken by the interval, or for good when the store (and its sender) is dropped.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let Some(store) = store.upgrade() else { return };
                    match store.compact() {
                        Ok(Compacted { removed, incomplete: None }) => {
                            tracing::debug!(removed, "embedded log: compacted");
                        }
                        Ok(Compacted { incomplete: Some(error), .. }) | Err(error) => {
                            tracing::warn!(%error, "embedded log: periodic compaction did not complete");
                        }
                    }
                }
            })
            .map_err(|e| self.error("cannot start the compaction thread", e))?;
        let _ = self.stop_compactor.set(stop);
        Ok(())
    }

    /// The names of the topics.
    pub(super) fn topic_names(&self) -> Vec<String> {
        self.catalog().topics.keys().map(|name| name.to_string()).collect()
    }

    /// Runs `f` on an idle read connection (opening one when none is idle).
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, LogError>) -> Result<T, LogError> {
        let idle = lock(&self.readers).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.database).map_err(self.sql("cannot open a read connection"))?,
        };
        let result = f(&conn);
        let mut readers = lock(&self.readers);
        if readers.len() < IDLE_READERS {
            readers.push(conn);
        }
        result
    }
}

/// The database of the log in `dir`, beside its lock. SQLite may read a name that begins with
/// `file:` as a URI (its `?` and `#` cutting it short): such a relative directory is named from
/// `.`, so that the database is never elsewhere than the lock that guards it.
pub(super) fn database_in(dir: &Path) -> PathBuf {
    let database = dir.join(DATABASE);
    match database.to_str().is_some_and(|path| path.starts_with("file:")) {
        true => Path::new(".").join(database),
        false => database,
    }
}

fn open_reader(database: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(database, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", true)?;
    // The writer checkpoints; a reader closing last (a read-only opening of a directory whose
    // writer was killed) would otherwise fold the write-ahead log into the database.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(conn)
}

/// What an opened database file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Nothing yet: a new log.
    Nothing,
    /// A tramline log of this schema version, or an earlier one.
    Log { version: i64 },
    /// A tramline log made before the application id was set.
    UnmarkedLog { version: i64 },
}

/// Tells a tramline log of this schema from any other database, before anything writes to the
/// file; anything else is an error and the file stays as it was.
fn identify(writer: &Connection, database: &Path) -> Result<Found, LogError> {
    let err = |doing: &'static str| move |e| open_error(database, doing, e);
    let application_id: i64 = writer
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(err("cannot read the database"))?;
    let version: i64 = writer
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(err("cannot read the database"))?;
    let tables: Vec<String> = writer
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .and_then(|mut select| select.query_map([], |row| row.get(0))?.collect())
        .map_err(err("cannot read the database"))?;
    let refused = |why: String| {
        Err(LogError::Backend(format!(
            "embedded log {}: {why}; the file was left unchanged: give the log a directory of its own",
            database.display()
        )))
    };
    let ours = application_id == APPLICATION_ID || (application_id == 0 && version == 1 && tables == TABLES_V1);
    match (ours, version) {
        (false, 0) if application_id == 0 && tables.is_empty() => Ok(Found::Nothing),
        (false, _) => refused(format!(
            "this database is not a tramline log (application id {application_id:#x}, schema version \
             {version}, tables: {})",
            tables.join(", ")
        )),
        (true, 1..=SCHEMA_VERSION) if application_id == 0 => Ok(Found::UnmarkedLog { version }),
        (true, 1..=SCHEMA_VERSION) => Ok(Found::Log { version }),
        (true, version) if version > SCHEMA_VERSION => refused(format!(
            "the database has schema version {version}, this tramline knows version {SCHEMA_VERSION}: \
             it was written by a newer tramline"
        )),
        (true, version) => refused(format!("the database has tramline's tables but schema version {version}")),
    }
}

/// Creates the schema in a new database, marks a log made before the application id, and
/// brings a log of an earlier schema version to this one.
fn migrate(writer: &mut Connection, database: &Path, found: Found) -> Result<(), LogError> {
    let err = |doing: &'static str| move |e| sql_error(database, doing, e);
    match found {
        Found::Nothing => {
            let tx = writer.transaction().map_err(err("cannot begin the schema transaction"))?;
            tx.execute_batch(SCHEMA).map_err(err("cannot create the schema"))?;
            tx.execute_batch(COMPACTION_MARKS).map_err(err("cannot create the schema"))?;
            tx.execute_batch(PENDING_VACUUM).map_err(err("cannot create the schema"))?;
            tx.execute_batch(TOPIC_RETENTION).map_err(err("cannot create the schema"))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err("cannot set the schema version"))?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(err("cannot set the application id"))?;
            tx.commit().map_err(err("cannot commit the schema"))
        }
        Found::Log { version } | Found::UnmarkedLog { version } => {
            let tx = writer.transaction().map_err(err("cannot begin the schema transaction"))?;
            if matches!(found, Found::UnmarkedLog { .. }) {
                tx.pragma_update(None, "application_id", APPLICATION_ID)
                    .map_err(err("cannot set the application id"))?;
            }
            tx.execute_batch(PENDING_VACUUM).map_err(err("cannot add the table of pending vacuums"))?;
            tx.execute_batch(TOPIC_RETENTION).map_err(err("cannot add the table of topics' retentions"))?;
            if version < SCHEMA_VERSION {
                // Version 1 had no compaction marks: its tombstones start aging now.
                tx.execute_batch(COMPACTION_MARKS).map_err(err("cannot add the compaction marks"))?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(err("cannot set the schema version"))?;
            }
            tx.commit().map_err(err("cannot commit the schema"))
        }
    }
}

fn load_catalog(writer: &Connection) -> rusqlite::Result<Catalog> {
    // A reader of a log whose writer is of an earlier tramline finds no retentions.
    let retentions: bool = writer.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'topic_retention')",
        [],
        |row| row.get(0),
    )?;
    let select = match retentions {
        true => {
            "SELECT id, name, partitions, cleanup, retention_ms FROM topics LEFT JOIN topic_retention ON topic = id"
        }
        false => "SELECT id, name, partitions, cleanup, NULL FROM topics",
    };
    let topics: Vec<(i64, String, u32, String, Option<i64>)> = writer
        .prepare(select)?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut catalog = Catalog::default();
    let mut end = writer.prepare(SELECT_END)?;
    for (id, name, partitions, cleanup, retention) in topics {
        let cleanup = match (cleanup.as_str(), retention) {
            ("compact", None) => Cleanup::Compact,
            ("compact", Some(ms)) => Cleanup::CompactAndExpire { retention: Duration::from_millis(ms.max(0) as u64) },
            _ => Cleanup::Keep,
        };
        let ends = (0..partitions)
            .map(|partition| {
                let last: Option<i64> = end.query_row(params![id, partition], |row| row.get(0))?;
                Ok(last.map_or(0, |last| last as u64 + 1))
            })
            .collect::<rusqlite::Result<_>>()?;
        let name: Arc<str> = Arc::from(name);
        catalog.topics.insert(name.clone(), TopicMeta { id, name, partitions, cleanup, ends });
    }
    Ok(catalog)
}

fn locate(catalog: &Catalog, tp: &TopicPartition) -> Result<Located, LogError> {
    let meta = catalog.topics.get(&*tp.topic).ok_or_else(|| LogError::UnknownTopic(tp.topic.to_string()))?;
    let end = meta.ends.get(tp.partition as usize).ok_or_else(|| LogError::UnknownPartition {
        topic: tp.topic.to_string(),
        partition: tp.partition,
        partitions: meta.partitions,
    })?;
    Ok(Located { name: meta.name.clone(), id: meta.id, partition: tp.partition, end: *end })
}

fn existing(catalog: &Catalog, spec: &TopicSpec) -> Option<Result<(), LogError>> {
    let meta = catalog.topics.get(spec.name.as_str())?;
    Some(spec.check(meta.partitions, meta.cleanup))
}

/// The partition a record goes to, as the memory log picks it.
fn select_committed(conn: &Connection, group: &str, topic: i64, partition: u32) -> rusqlite::Result<Option<u64>> {
    let mut select = conn.prepare_cached(SELECT_COMMITTED)?;
    let offset: Option<i64> = select.query_row(params![group, topic, partition], |row| row.get(0)).optional()?;
    Ok(offset.map(|o| o as u64))
}

fn read_partition(
    conn: &Connection,
    at: &Located,
    offset: u64,
    max: usize,
    out: &mut Vec<Record>,
) -> rusqlite::Result<()> {
    let mut select = conn.prepare_cached(SELECT_RECORDS)?;
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let mut rows = select.query(params![at.id, at.partition, to_sql(offset), limit])?;
    while let Some(row) = rows.next()? {
        let offset = row.get::<_, i64>(0)? as u64;
        let headers = match row.get_ref(3)?.as_blob_or_null()? {
            None => Headers::new(),
            Some(blob) => Headers::from_encoded(Bytes::copy_from_slice(blob)).map_err(|e| {
                let damaged = format!("the record at offset {offset} is damaged: {e}");
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Blob, damaged.into())
            })?,
        };
        let key: Option<Vec<u8>> = row.get(1)?;
        let value: Option<Vec<u8>> = row.get(2)?;
        out.push(Record {
            topic: at.name.clone(),
            partition: at.partition,
            offset,
            key: key.map(Bytes::from),
            value: value.map(Bytes::from),
            headers,
            timestamp: row.get(4)?,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, value: Vec<u8>) -> OutRecord {
        OutRecord {
            topic: Arc::from(topic),
            partition: Some(0),
            key: Some(b"k".to_vec().into()),
            value: Some(value.into()),
            headers: Headers::new(),
            timestamp: None,
        }
    }

    /// A log closed after reads (whose connections close without checkpointing) leaves its
    /// records in the database file, not only in the write-ahead log: a copy of a stopped log's
    /// `log.sqlite3` holds them.
    #[test]
    fn a_closed_log_leaves_its_records_in_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        store.create_topic(&TopicSpec::keep("t", 1)).unwrap();
        store.write((0..50).map(|i| record("t", vec![i; 100])).collect(), None).unwrap();
        let at = store.locate(&TopicPartition::new("t", 0)).unwrap();
        assert_eq!(store.read(&[(at, 0)], 100).unwrap().len(), 50);
        drop(store);
        let wal = std::fs::metadata(dir.path().join(format!("{DATABASE}-wal"))).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the write-ahead log is folded into the database as the log closes");
        let db = Connection::open(dir.path().join(DATABASE)).unwrap();
        let records: i64 = db.query_row("SELECT count(*) FROM records", [], |row| row.get(0)).unwrap();
        assert_eq!(records, 50);
    }

    /// A record over SQLite's largest value is `TooLarge` (which a processor dead-letters), not a
    /// backend failure (which it retries for ever); nothing of the write is applied. The value's
    /// pages are never touched: SQLite refuses it by its length.
    #[test]
    fn a_record_sqlite_cannot_hold_is_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        store.create_topic(&TopicSpec::keep("t", 1)).unwrap();
        let records = vec![record("t", vec![1]), record("t", vec![0; 1_000_000_001])];
        let refused = store.write(records, None);
        assert!(matches!(&refused, Err(LogError::TooLarge { topic, .. }) if topic == "t"), "{refused:?}");
        assert_eq!(store.locate(&TopicPartition::new("t", 0)).unwrap().end, 0, "nothing written");
    }

    /// 2,000 keys of forgotten subjects, each superseded by its tombstone.
    fn forgotten_keys(store: &Store) {
        use crate::privacy::KEYS_TOPIC;
        store.create_topic(&TopicSpec::compact(KEYS_TOPIC, 1)).unwrap();
        let key = |i: u32, value: Option<Vec<u8>>| OutRecord {
            topic: Arc::from(KEYS_TOPIC),
            partition: Some(0),
            key: Some(format!("subject-{i}").into_bytes().into()),
            value: value.map(Into::into),
            headers: Headers::new(),
            timestamp: None,
        };
        store.write((0..2_000).map(|i| key(i, Some(vec![7; 64]))).collect(), None).unwrap();
        store.write((0..2_000).map(|i| key(i, None)).collect(), None).unwrap();
    }

    /// A process killed after a compaction deleted keys and before its vacuum: the next one
    /// vacuums on open.
    #[test]
    fn a_vacuum_cut_short_by_a_kill_is_done_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions::default();
        let store = Store::open(dir.path(), &options).unwrap();
        forgotten_keys(&store);
        // The compaction's deletions, and then the kill.
        assert_eq!(store.remove_superseded(&lock(&store.writer)).unwrap(), 2_000);
        drop(store);

        let database = dir.path().join(DATABASE);
        let state = || {
            let db = Connection::open(&database).unwrap();
            let pending: i64 = db.query_row("SELECT count(*) FROM pending_vacuum", [], |row| row.get(0)).unwrap();
            let free: i64 = db.pragma_query_value(None, "freelist_count", |row| row.get(0)).unwrap();
            (pending, free)
        };
        let (pending, free) = state();
        assert_eq!(pending, 1, "the vacuum is noted with the deletions");
        assert!(free > 0, "the deleted keys' pages are free, not yet vacuumed away");
        drop(Store::open(dir.path(), &options).unwrap());
        assert_eq!(state(), (0, 0), "the open's compaction vacuumed");
    }

    /// A vacuum that failed is done by the next compaction of the process, even one that deletes
    /// nothing, and reaches the database file itself, not only its write-ahead log.
    #[test]
    fn a_vacuum_done_again_reaches_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        forgotten_keys(&store);
        {
            // The deletions, and a vacuum that failed: the write-ahead log is emptied all the same.
            let writer = lock(&store.writer);
            assert_eq!(store.remove_superseded(&writer).unwrap(), 2_000);
            store.empty_wal(&writer).unwrap().unwrap();
        }
        // The free-page count in the header of the file itself.
        let free_in_file = || {
            let file = std::fs::read(dir.path().join(DATABASE)).unwrap();
            u32::from_be_bytes(file[36..40].try_into().unwrap())
        };
        assert!(free_in_file() > 0, "the deleted keys' pages are free in the file");
        let compacted = store.compact().unwrap();
        assert!(compacted.incomplete.is_none());
        assert_eq!((compacted.removed, free_in_file()), (0, 0), "vacuumed into the file");
    }

    #[test]
    fn a_directory_named_like_a_uri_keeps_its_database_beside_its_lock() {
        assert_eq!(database_in(Path::new("file:q#x")), Path::new("./file:q#x/log.sqlite3"));
        assert_eq!(database_in(Path::new("data")), Path::new("data/log.sqlite3"));
        assert_eq!(database_in(Path::new("/srv/file:q")), Path::new("/srv/file:q/log.sqlite3"));
    }
}
