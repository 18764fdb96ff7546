//! The key store: the data subjects' keys, kept on the compacted topic `tramline.keys` and
//! cached in memory.
//!
//! Records on the topic, all of one subject on the partition of the subject's ID (Kafka's
//! partitioner), in order:
//!
//! | record key | value | meaning |
//! | --- | --- | --- |
//! | `<subject>/<key id>` | 32 bytes | a key of the subject |
//! | `<subject>/<key id>` | none (tombstone) | that key is deleted |
//! | `<subject>` | `forgotten` | the subject is forgotten: none of its keys counts any more |
//!
//! A subject may have several keys (two processes that seal for a new subject at once each make
//! one); every sealed value names its key. The marker is a value, not a tombstone, so that
//! compaction keeps it: a key written after it (by a process that had not seen it yet) is void,
//! and whoever reads such a key, or a key that precedes the marker without its tombstone, writes
//! the missing tombstone.
//!
//! A new key is written in the same write as the first record sealed with it (the processor's
//! atomic write, the gateway's append), and again with every later record until a write has
//! carried it: it is on the log before, or with, anything that needs it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::cipher::{self, Key, Parsed};
use super::scope::{KEY_IDS_HEADER, KEYS};
use crate::codec::{self, DecodeError};
use crate::log::{EventLog, Headers, LogError, OutRecord, Record, TopicPartition, TopicSpec, partition_for};
use crate::model::{Envelope, Message};

/// The compacted topic of the data subjects' keys.
pub const KEYS_TOPIC: &str = "tramline.keys";

/// The value of the marker of a forgotten subject.
const FORGOTTEN: &[u8] = b"forgotten";

/// How long a reader waits for a key that a record names and the topic does not show yet (on
/// Kafka the parts of one transaction become visible one partition at a time).
const KEY_WAIT: Duration = Duration::from_secs(10);

/// How stale this process's view of the keys topic may be when it opens personal data: a
/// subject forgotten by another process (whose marker and tombstones are on the topic) stops
/// opening here at most this long after. One read of the topic's ends per interval, when
/// records are about to be decoded.
const KEY_REFRESH: Duration = Duration::from_secs(1);

/// The keys of the data subjects, on the log (see the [module docs](crate::privacy)). Cheap to
/// clone; an [`App`](crate::App) has one ([`App::keys`](crate::App::keys)).
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for a store that keeps its keys in memory only.
    log: Option<Arc<dyn EventLog>>,
    topic: Arc<str>,
    ring: Mutex<Ring>,
    /// One catch-up at a time.
    reading: tokio::sync::Mutex<()>,
    /// Catch-ups started so far, and the number of the last one that succeeded: a caller needs
    /// no catch-up of its own once one that started after its call has succeeded.
    catch_ups_started: AtomicU64,
    catch_up_succeeded: AtomicU64,
}

#[derive(Default)]
struct Ring {
    /// The topic's partition count; 0 until the topic is known.
    partitions: u32,
    /// The next offset to read, per partition.
    read: Vec<u64>,
    subjects: HashMap<String, Subject>,
    /// Keys made here and not yet seen written: (subject, key id).
    pending: Vec<(String, Uuid)>,
    /// Keys waited for in vain: what they sealed reads as erased until they show up.
    given_up: HashSet<Uuid>,
    /// When the topic was last read to its end.
    read_at: Option<tokio::time::Instant>,
    /// Tombstones of keys that should be gone, to write at the end of the catch-up.
    sweep: Vec<OutRecord>,
}

#[derive(Default)]
struct Subject {
    keys: Vec<(Uuid, Key)>,
    forgotten: bool,
}

/// What sealing a value gave.
pub(crate) enum Sealed {
    /// The sealed text, and the key it names.
    Text { text: String, key: Uuid },
    /// The subject is forgotten: the value is written erased.
    Forgotten,
}

/// What opening a sealed value gave.
pub(crate) enum Opened {
    /// The value's JSON.
    Plain(Vec<u8>),
    /// Its subject is forgotten (or it was written erased).
    Erased,
    /// Its key was waited for in vain: it reads as erased until the key shows up.
    Late,
}

/// Why [`KeyStore::decode`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The keys could not be read from the log.
    #[error("cannot read the keys of `{KEYS_TOPIC}`: {0}")]
    Log(#[from] LogError),
    /// The record is not a message of the type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.ring();
        f.debug_struct("KeyStore")
            .field("topic", &self.inner.topic)
            .field("subjects", &ring.subjects.len())
            .field("pending", &ring.pending.len())
            .finish()
    }
}

impl KeyStore {
    /// A store on `log`'s topic [`KEYS_TOPIC`], to read records with personal data outside an
    /// app (tools, tests): it reads the topic when a record needs it. An app has its own
    /// ([`App::keys`](crate::App::keys)), which creates the topic.
    pub fn on(log: Arc<dyn EventLog>) -> Self {
        Self::with(Some(log))
    }

    /// A store that keeps its keys in memory only, for tests without a log.
    pub fn in_memory() -> Self {
        Self::with(None)
    }

    fn with(log: Option<Arc<dyn EventLog>>) -> Self {
        KeyStore {
            inner: Arc::new(Inner {
                log,
                topic: Arc::from(KEYS_TOPIC),
                ring: Mutex::default(),
                reading: tokio::sync::Mutex::new(()),
                catch_ups_started: AtomicU64::new(0),
                catch_up_succeeded: AtomicU64::new(0),
            }),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // Every change to the ring is complete before the lock is released.
        self.inner.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates the keys topic with `partitions` partitions unless it exists (then its own count
    /// holds), and reads it.
    pub(crate) async fn load(&self, partitions: u32) -> Result<(), LogError> {
        let Some(log) = &self.inner.log else { return Ok(()) };
        let partitions = log.partition_count(&self.inner.topic).await?.unwrap_or(partitions);
        // An existing topic is checked too: one that deletes old records (a broker's default
        // retention) would lose the keys, and all personal data with them.
        log.create_topic(&TopicSpec::compact(KEYS_TOPIC, partitions)).await?;
        self.catch_up().await
    }

    /// Reads what the keys topic gained since the last call, and writes the tombstones of keys
    /// that should be gone (of forgotten subjects).
    pub async fn catch_up(&self) -> Result<(), LogError> {
        let Some(log) = &self.inner.log else { return Ok(()) };
        // Many callers at once (commands for new subjects) share catch-ups: one that started
        // after this call and has finished read everything this call would.
        let before = self.inner.catch_ups_started.load(Ordering::Acquire);
        let _one = self.inner.reading.lock().await;
        if self.inner.catch_up_succeeded.load(Ordering::Acquire) > before {
            return Ok(());
        }
        let number = self.inner.catch_ups_started.fetch_add(1, Ordering::AcqRel) + 1;
        self.read_new(log).await?;
        self.inner.catch_up_succeeded.store(number, Ordering::Release);
        Ok(())
    }

    /// [`KeyStore::catch_up`]'s work, under its lock.
    async fn read_new(&self, log: &Arc<dyn EventLog>) -> Result<(), LogError> {
        if self.ring().partitions == 0 {
            // Made by another app, or not at all yet (looked for again after the refresh).
            let Some(count) = log.partition_count(&self.inner.topic).await? else {
                self.ring().read_at = Some(tokio::time::Instant::now());
                return Ok(());
            };
            let mut ring = self.ring();
            ring.partitions = count;
            ring.read = vec![0; count as usize];
        }
        let partitions = self.ring().partitions;
        let tps: Vec<TopicPartition> =
            (0..partitions).map(|partition| TopicPartition::new(self.inner.topic.clone(), partition)).collect();
        let ends = futures::future::try_join_all(tps.iter().map(|tp| log.end_offset(tp))).await?;
        for ((partition, tp), end) in (0..partitions).zip(tps).zip(ends) {
            let mut from = self.ring().read[partition as usize];
            while from < end {
                let records = log.read(&tp, from, 1024).await?;
                // Nothing readable before the end: transaction markers, or a transaction that is
                // not committed yet; the next catch-up looks again.
                let Some(last) = records.last() else { break };
                from = last.offset + 1;
                let mut ring = self.ring();
                for record in &records {
                    ring.apply(&self.inner.topic, record);
                }
                ring.read[partition as usize] = from;
            }
        }
        self.ring().read_at = Some(tokio::time::Instant::now());
        let sweep = std::mem::take(&mut self.ring().sweep);
        if !sweep.is_empty() {
            tracing::info!(tombstones = sweep.len(), "deleting keys of forgotten subjects");
            if let Err(error) = log.append(sweep.clone()).await {
                // The records that called for them are read already: keep the tombstones for
                // the next catch-up.
                self.ring().sweep.extend(sweep);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Whether `subject` (a reference ID's text) is forgotten, as far as this store has read.
    pub fn is_forgotten(&self, subject: &str) -> bool {
        self.ring().subjects.get(subject).is_some_and(|s| s.forgotten)
    }

    /// Whether this store has read a key of `subject`, or its marker.
    pub(crate) fn knows(&self, subject: &str) -> bool {
        self.ring().subjects.get(subject).is_some_and(|s| s.forgotten || !s.keys.is_empty())
    }

    /// Seals a value of personal data (its JSON) for `subject`, making a key if it has none.
    pub(crate) fn seal(&self, subject: &str, plain: &[u8]) -> Sealed {
        let (id, key) = {
            let mut ring = self.ring();
            let ring = &mut *ring;
            let entry = match ring.subjects.get_mut(subject) {
                Some(entry) => entry,
                None => ring.subjects.entry(subject.to_owned()).or_default(),
            };
            if entry.forgotten {
                return Sealed::Forgotten;
            }
            match entry.keys.first() {
                Some((id, key)) => (*id, key.clone()),
                None => {
                    let (id, key) = (Uuid::now_v7(), Key::generate());
                    entry.keys.push((id, key.clone()));
                    ring.pending.push((subject.to_owned(), id));
                    (id, key)
                }
            }
        };
        Sealed::Text { text: cipher::seal(&key, id, subject, plain), key: id }
    }

    /// Opens a sealed value of `subject`.
    pub(crate) fn open(&self, subject: &str, text: &str) -> Result<Opened, String> {
        let Parsed::Sealed { key: id, sealed } = cipher::parse(text)? else { return Ok(Opened::Erased) };
        let key = {
            let ring = self.ring();
            let entry = ring.subjects.get(subject);
            if entry.is_some_and(|s| s.forgotten) {
                return Ok(Opened::Erased);
            }
            if ring.given_up.contains(&id) {
                return Ok(Opened::Late);
            }
            match entry.and_then(|s| s.keys.iter().find(|(k, _)| *k == id)) {
                Some((_, key)) => key.clone(),
                None => {
                    return Err(format!(
                        "key {id} of {subject} is neither on `{KEYS_TOPIC}` as far as this process has read nor deleted; \
                         read records through KeyStore::decode or a processor, which load the keys they name first"
                    ));
                }
            }
        };
        cipher::open(&key, subject, sealed).map(Opened::Plain)
    }

    /// Loads the keys that these records' personal data is sealed with, waiting for keys the
    /// topic does not show yet (up to a bound, after which their values read as erased).
    pub(crate) async fn prepare(&self, records: &[Record]) -> Result<(), LogError> {
        let named: Vec<(String, Uuid)> = records
            .iter()
            .filter_map(|record| Some((record, record.header(KEY_IDS_HEADER)?)))
            .flat_map(|(record, ids)| {
                let subject = record.key_text().into_owned();
                let ids = std::str::from_utf8(ids).unwrap_or_default();
                ids.split(',').filter_map(|id| Uuid::try_parse(id).ok()).map(move |id| (subject.clone(), id))
            })
            .collect();
        // Keys known here may be deleted since (a subject forgotten by another process, whose
        // plain values then read as erased too), and keys given up on may have arrived: look at
        // the topic again now and then, whether the records name keys or hold plain text.
        if self.ring().read_at.is_none_or(|at| at.elapsed() >= KEY_REFRESH) {
            match self.catch_up().await {
                // Records without sealed data do not wait for a log that is away: a subject
                // forgotten meanwhile reads as erased once the topic is read again.
                Err(error) if named.is_empty() => tracing::debug!(%error, "the keys topic could not be read again"),
                caught_up => caught_up?,
            }
        }
        if named.is_empty() {
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        loop {
            let missing = self.missing(&named);
            if missing.is_empty() {
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= KEY_WAIT {
                let mut ring = self.ring();
                for (subject, id) in missing {
                    tracing::warn!(
                        %subject,
                        key = %id,
                        ?waited,
                        "key {id} of {subject}, named by a record, is not on `{KEYS_TOPIC}` after {waited:?}: \
                         what it sealed reads as erased until the key shows up (check the process that wrote the record)"
                    );
                    ring.given_up.insert(id);
                }
                return Ok(());
            }
            self.catch_up().await?;
            if !self.missing(&named).is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    fn missing(&self, named: &[(String, Uuid)]) -> Vec<(String, Uuid)> {
        let ring = self.ring();
        named
            .iter()
            .filter(|(subject, id)| {
                let entry = ring.subjects.get(subject);
                !(entry.is_some_and(|s| s.forgotten || s.keys.iter().any(|(k, _)| k == id))
                    || ring.given_up.contains(id))
            })
            .cloned()
            .collect()
    }

    /// The records of the keys made here and not yet seen written, to write with the records
    /// sealed with them; and their ids, for [`KeyStore::written`].
    pub(crate) fn pending(&self) -> Option<(Vec<OutRecord>, Vec<Uuid>)> {
        self.pending_where(|_| true)
    }

    /// [`KeyStore::pending`], only the keys of `subject`: what a command about it carries (the
    /// other subjects' keys go with their own records).
    pub(crate) fn pending_of(&self, subject: &str) -> Option<(Vec<OutRecord>, Vec<Uuid>)> {
        self.pending_where(|s| s == subject)
    }

    fn pending_where(&self, wanted: impl Fn(&str) -> bool) -> Option<(Vec<OutRecord>, Vec<Uuid>)> {
        let ring = self.ring();
        let pending: Vec<&(String, Uuid)> = ring.pending.iter().filter(|(subject, _)| wanted(subject)).collect();
        if pending.is_empty() {
            return None;
        }
        let records = pending
            .iter()
            .filter_map(|(subject, id)| {
                let (_, key) = ring.subjects.get(subject)?.keys.iter().find(|(k, _)| k == id)?;
                Some(ring.record(&self.inner.topic, subject, Some(*id), Some(Bytes::copy_from_slice(&key.0))))
            })
            .collect();
        Some((records, pending.iter().map(|(_, id)| *id).collect()))
    }

    /// These keys are on the log now.
    pub(crate) fn written(&self, ids: &[Uuid]) {
        self.ring().pending.retain(|(_, id)| !ids.contains(id));
    }

    /// The records that forget `subject`: tombstones of its keys, then the marker. Written in the
    /// same atomic write as the event that forgets it; [`KeyStore::forgotten`] once committed.
    pub(crate) fn forget(&self, subject: &str) -> Vec<OutRecord> {
        let ring = self.ring();
        let ids: Vec<Uuid> =
            ring.subjects.get(subject).map(|s| s.keys.iter().map(|(id, _)| *id).collect()).unwrap_or_default();
        let mut records: Vec<_> =
            ids.into_iter().map(|id| ring.record(&self.inner.topic, subject, Some(id), None)).collect();
        records.push(ring.record(&self.inner.topic, subject, None, Some(Bytes::from_static(FORGOTTEN))));
        records
    }

    /// `subject` is forgotten on the log (this process wrote the forgetting event, or decoded
    /// it): drop its keys here too.
    pub(crate) fn forgotten(&self, subject: &str) {
        let mut ring = self.ring();
        ring.pending.retain(|(s, _)| s != subject);
        let entry = ring.subjects.entry(subject.to_owned()).or_default();
        entry.forgotten = true;
        entry.keys.clear();
    }

    /// Encodes an envelope with its personal data sealed by this store; the keys it needs that
    /// are not yet on the log are in [`KeyStore::pending`].
    pub(crate) fn encode<M: Message>(&self, envelope: &Envelope<M>, topic: Arc<str>) -> OutRecord {
        KEYS.sync_scope(self.clone(), || codec::encode_to(envelope, topic))
    }

    /// Decodes a record whose personal data this store opens, loading the keys it names first.
    /// The values of a forgotten subject read as erased.
    pub async fn decode<M: Message>(&self, record: &Record) -> Result<Envelope<M>, ReadError> {
        self.prepare(std::slice::from_ref(record)).await?;
        Ok(KEYS.sync_scope(self.clone(), || codec::decode::<M>(record))?)
    }

    /// Runs `f` with this store in scope, for code that encodes or decodes records itself.
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        KEYS.sync_scope(self.clone(), f)
    }

    /// Runs a future with this store in scope (a processor task).
    pub(crate) async fn scope_async<F: std::future::Future>(self, future: F) -> F::Output {
        KEYS.scope(self, future).await
    }
}

impl Ring {
    fn partition_of(&self, subject: &str) -> Option<u32> {
        (self.partitions > 0).then(|| partition_for(subject.as_bytes(), self.partitions))
    }

    /// A record of the keys topic: a key (`id` and `value`), its tombstone (`id`, no value) or a
    /// marker (no `id`).
    fn record(&self, topic: &Arc<str>, subject: &str, id: Option<Uuid>, value: Option<Bytes>) -> OutRecord {
        let key = match id {
            Some(id) => format!("{subject}/{}", id.hyphenated()),
            None => subject.to_owned(),
        };
        OutRecord {
            topic: topic.clone(),
            // All of a subject's records on one partition, in order; the key alone would spread
            // them by key id.
            partition: self.partition_of(subject),
            key: Some(Bytes::from(key)),
            value,
            headers: Headers::new(),
            timestamp: None,
        }
    }

    fn apply(&mut self, topic: &Arc<str>, record: &Record) {
        let Some(key) = record.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else { return };
        match key.split_once('/') {
            Some((subject, id)) => {
                let Ok(id) = Uuid::try_parse(id) else { return };
                self.pending.retain(|(_, pending)| *pending != id);
                let entry = self.subjects.entry(subject.to_owned()).or_default();
                match record.value.as_deref().map(Key::from_slice) {
                    // A key written after its subject was forgotten is void.
                    Some(Some(_)) if entry.forgotten => {
                        let tombstone = self.record(topic, subject, Some(id), None);
                        self.sweep.push(tombstone);
                    }
                    Some(Some(key)) => {
                        if !entry.keys.iter().any(|(k, _)| *k == id) {
                            entry.keys.push((id, key));
                        }
                        if self.given_up.remove(&id) {
                            tracing::info!(%subject, key = %id, "key {id} of {subject} arrived late: what it sealed reads again");
                        }
                    }
                    Some(None) => tracing::warn!(key, "a record of `{KEYS_TOPIC}` is not a key; skipped"),
                    // Keys are deleted only for a forgotten subject, just before its marker: a
                    // read that ends between the two must not leave its data unopenable.
                    None => {
                        entry.keys.retain(|(k, _)| *k != id);
                        entry.forgotten = true;
                    }
                }
            }
            None if record.value.as_deref() == Some(FORGOTTEN) => {
                let entry = self.subjects.entry(key.to_owned()).or_default();
                entry.forgotten = true;
                let stragglers: Vec<Uuid> = entry.keys.drain(..).map(|(id, _)| id).collect();
                self.pending.retain(|(subject, _)| subject != key);
                for id in stragglers {
                    let tombstone = self.record(topic, key, Some(id), None);
                    self.sweep.push(tombstone);
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::log::memory::MemoryLog;
    use crate::log::memory::flaky::{Fails, Flaky};
    use crate::privacy::Personal;
    use crate::{Event, ReferenceId};

    #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[reference(prefix = "cus")]
    pub struct CustomerId(Uuid);

    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(module = "customer", key = id)]
    pub enum CustomerEvent {
        Named {
            id: CustomerId,
            #[pii]
            name: Personal<String>,
        },
        #[event(forgets)]
        Forgotten { id: CustomerId },
        Rated {
            id: CustomerId,
            #[pii]
            name: Personal<String>,
            nickname: Option<String>,
            stars: f64,
        },
    }

    /// A process on `log`: its own key store, with the keys topic read.
    async fn process(log: &Arc<MemoryLog>) -> KeyStore {
        let keys = KeyStore::on(log.clone());
        keys.load(2).await.expect("the keys topic");
        keys
    }

    /// Writes `event` as `keys`' process would, with the keys it made unless `with_keys` is
    /// false (a write that lost them); returns the record as read back.
    async fn write(log: &Arc<MemoryLog>, keys: &KeyStore, event: CustomerEvent, with_keys: bool) -> Record {
        let topic = Arc::<str>::from(CustomerEvent::TOPIC);
        if log.partition_count(&topic).await.unwrap().is_none() {
            log.create_topic(&TopicSpec::keep(CustomerEvent::TOPIC, 1)).await.unwrap();
        }
        let mut records = vec![keys.encode(&Envelope::new(event, jiff::Timestamp::now()), topic.clone())];
        if with_keys && let Some((new_keys, ids)) = keys.pending() {
            records.extend(new_keys);
            keys.written(&ids);
        }
        let position = log.append(records).await.unwrap().remove(0);
        log.read(&TopicPartition::new(topic, 0), position.offset, 1).await.unwrap().remove(0)
    }

    async fn name_in(keys: &KeyStore, record: &Record) -> Personal<String> {
        match keys.decode::<CustomerEvent>(record).await.expect("decodes").payload {
            CustomerEvent::Named { name, .. } => name,
            other => panic!("not a name: {other:?}"),
        }
    }

    fn ada(id: CustomerId) -> CustomerEvent {
        CustomerEvent::Named { id, name: "Ada".into() }
    }

    /// The check before an event is written reads a personal event back (its JSON holds a
    /// `null`) with the key it was just sealed with, which is not on the log yet.
    #[tokio::test]
    async fn a_personal_event_is_read_back_with_the_key_it_was_just_sealed_with() {
        let keys = process(&MemoryLog::shared()).await;
        let rated =
            |stars| CustomerEvent::Rated { id: CustomerId::generate(), name: "Ada".into(), nickname: None, stars };
        let checked = |event: CustomerEvent| {
            let record =
                keys.encode(&Envelope::new(event.clone(), jiff::Timestamp::now()), Arc::from(CustomerEvent::TOPIC));
            keys.scope(|| crate::codec::check_reads_back(&event, &record))
        };
        checked(rated(4.5)).expect("reads back");
        let refused = checked(rated(f64::NAN)).expect_err("NaN is written as null");
        assert!(refused.contains("Rated of CustomerEvent does not read back"), "{refused}");
    }

    /// A read of the keys topic that ends between a forgetting's key deletions and its marker.
    #[tokio::test]
    async fn a_subject_whose_keys_are_deleted_reads_as_erased_before_its_marker_is_read() {
        let log = MemoryLog::shared();
        let (forgetter, other) = (process(&log).await, process(&log).await);
        let id = CustomerId::generate();
        let named = write(&log, &forgetter, ada(id), true).await;
        assert_eq!(name_in(&other, &named).await.get().map(String::as_str), Some("Ada"));

        let mut forgetting = forgetter.forget(&id.to_string());
        let marker = forgetting.pop().expect("the marker comes last");
        assert!(marker.value.as_deref() == Some(FORGOTTEN) && !forgetting.is_empty());
        log.append(forgetting).await.unwrap();
        // Another task's read of the topic: this one found the key loaded, and opens after it.
        other.catch_up().await.expect("read");
        let value: serde_json::Value = serde_json::from_slice(named.value.as_deref().unwrap()).unwrap();
        let sealed = value["name"].as_str().expect("the sealed name");
        let opened = other.open(&id.to_string(), sealed);
        assert!(matches!(opened, Ok(Opened::Erased)), "its key is deleted: erased, not {:?}", opened.err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_subject_forgotten_elsewhere_stops_opening_once_the_keys_topic_is_read_again() {
        let log = MemoryLog::shared();
        let (forgetter, other) = (process(&log).await, process(&log).await);
        let id = CustomerId::generate();
        let named = write(&log, &forgetter, ada(id), true).await;
        assert_eq!(name_in(&other, &named).await.get().map(String::as_str), Some("Ada"));

        log.append(forgetter.forget(&id.to_string())).await.unwrap();
        forgetter.forgotten(&id.to_string());
        tokio::time::advance(KEY_REFRESH).await;
        assert!(name_in(&other, &named).await.is_erased(), "the other process read the marker");
    }

    #[tokio::test(start_paused = true)]
    async fn decoding_the_forgetting_event_drops_the_subjects_keys_at_once() {
        let log = MemoryLog::shared();
        let (forgetter, other) = (process(&log).await, process(&log).await);
        let id = CustomerId::generate();
        let named = write(&log, &forgetter, ada(id), true).await;
        assert_eq!(name_in(&other, &named).await.get().map(String::as_str), Some("Ada"));

        // Within the refresh interval: only the event tells the other process.
        let forgotten = write(&log, &forgetter, CustomerEvent::Forgotten { id }, true).await;
        other.decode::<CustomerEvent>(&forgotten).await.expect("decodes");
        assert!(other.is_forgotten(&id.to_string()));
        assert!(name_in(&other, &named).await.is_erased());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_given_up_on_is_taken_up_when_it_arrives_late() {
        let log = MemoryLog::shared();
        let (writer, reader) = (process(&log).await, process(&log).await);
        let id = CustomerId::generate();
        let named = write(&log, &writer, ada(id), false).await;
        let late_name = name_in(&reader, &named).await;
        assert!(late_name.is_erased(), "given up after the wait");
        // Written meanwhile (into a snapshot, say), it stays sealed as it was, not erased.
        let subject = id.to_string();
        let (snapshot, used) =
            reader.scope(|| crate::privacy::scope::sealing(&subject, || serde_json::to_string(&late_name)));
        let snapshot = snapshot.expect("written");
        assert_ne!(snapshot, format!("\"{}\"", cipher::ERASED_FORM));
        assert_eq!(used.len(), 1, "the record names the key it needs");

        let (late, ids) = writer.pending().expect("the key not written yet");
        log.append(late).await.unwrap();
        writer.written(&ids);
        tokio::time::advance(KEY_REFRESH).await;
        assert_eq!(name_in(&reader, &named).await.get().map(String::as_str), Some("Ada"));
        let read = reader.scope(|| {
            crate::privacy::scope::opening_state(&subject, || serde_json::from_str::<Personal<String>>(&snapshot))
        });
        assert_eq!(read.expect("reads").get().map(String::as_str), Some("Ada"), "the snapshot kept it");
    }

    /// A keys topic made before (by an operator, by a broker's auto-creation) that deletes old
    /// records would lose every key after its retention, and with them all personal data.
    #[tokio::test]
    async fn a_keys_topic_that_is_not_compacted_is_refused() {
        let log = MemoryLog::shared();
        log.create_topic(&TopicSpec::keep(KEYS_TOPIC, 3)).await.unwrap();
        let error = KeyStore::on(log.clone()).load(2).await.expect_err("a keys topic that is not compacted");
        assert!(matches!(error, LogError::CleanupMismatch { .. }), "{error}");
    }

    /// A value read while its key is late, copied into another subject's record (a reaction
    /// that puts a customer's name into an order's command): its sealed text opens for its own
    /// subject only, so the copy must not carry it.
    #[tokio::test(start_paused = true)]
    async fn a_late_value_copied_to_another_subject_does_not_make_an_unreadable_record() {
        let log = MemoryLog::shared();
        let (writer, reader) = (process(&log).await, process(&log).await);
        let named = write(&log, &writer, ada(CustomerId::generate()), false).await;
        let late_name = name_in(&reader, &named).await;
        assert!(late_name.is_erased(), "given up after the wait");
        let other = CustomerId::generate().to_string();
        let (copy, _) = reader.scope(|| crate::privacy::scope::sealing(&other, || serde_json::to_string(&late_name)));
        let copy = copy.expect("written");

        let (late, ids) = writer.pending().expect("the key not written yet");
        log.append(late).await.unwrap();
        writer.written(&ids);
        tokio::time::advance(KEY_REFRESH).await;
        reader.catch_up().await.expect("the key arrives");
        let read = reader
            .scope(|| crate::privacy::scope::opening_state(&other, || serde_json::from_str::<Personal<String>>(&copy)));
        assert!(read.expect("the copy reads").is_erased(), "nothing of the other subject's opens in the copy");
    }

    #[tokio::test]
    async fn tombstones_whose_write_failed_are_written_by_the_next_catch_up() {
        let memory = MemoryLog::shared();
        let writer = process(&memory).await;
        let subject = CustomerId::generate().to_string();
        // A key written after its subject's marker (by a process that had not seen it): void,
        // and whoever reads it writes its tombstone.
        writer.seal(&subject, b"\"Ada\"");
        let (key, _) = writer.pending().expect("a new key");
        let marker = writer.ring().record(&writer.inner.topic, &subject, None, Some(Bytes::from_static(FORGOTTEN)));
        memory.append(vec![marker]).await.unwrap();
        memory.append(key).await.unwrap();

        let flaky = Flaky::over(memory.clone(), Fails::Appends, true);
        let reader = KeyStore::on(flaky.clone());
        assert!(reader.catch_up().await.is_err(), "the tombstone's write fails");
        flaky.set_failing(false);
        reader.catch_up().await.expect("written now");

        let tp = TopicPartition::new(KEYS_TOPIC, partition_for(subject.as_bytes(), 2));
        let records = memory.read(&tp, 0, 10).await.unwrap();
        let last = records.last().expect("records");
        assert!(last.value.is_none() && last.key_text().starts_with(&format!("{subject}/")), "the tombstone");
    }
}
