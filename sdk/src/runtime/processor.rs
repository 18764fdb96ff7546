//! The one processor loop every processor runs (DESIGN.md, "The processor loop"):
//! poll a batch, decode and handle each record (failures go to the dead-letter topic), write the
//! outputs and the input positions atomically, repeat; on shutdown finish the batch, commit and
//! leave the group.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::dead_letter;
use super::progress::ProgressBoard;
use super::{RuntimeError, Settings};
use crate::log::{EventLog, GroupMember, LogError, OutRecord, Record, StartFrom, TopicPartition};
use crate::model::Position;
use crate::privacy::KeyStore;

/// What the loop needs from a processor: which group it is, and how it handles a batch.
pub(crate) trait Processor: Send + 'static {
    /// The consumer group.
    fn group(&self) -> &str;
    /// The topics it reads.
    fn topics(&self) -> Vec<&'static str>;
    /// Where it starts when the group has no committed position.
    fn start(&self) -> StartFrom;

    /// The input positions to commit with a batch whose records end at `batch`: those, by
    /// default. None for a projection rebuilt from the beginning on every start (its one-off
    /// group would only leave rows behind); a checkpointed one commits every partition it holds
    /// (`member`'s) with each checkpoint, and nothing between.
    fn positions_to_commit(
        &self,
        batch: &[(TopicPartition, u64)],
        _member: &dyn GroupMember,
    ) -> Vec<(TopicPartition, u64)> {
        batch.to_vec()
    }

    /// The partitions where `member` stands past the processor's state, with the positions
    /// where that state ends: the member is moved back there. None but for a checkpointed
    /// projection whose group another incarnation (under the same instance id) committed past.
    fn behind(&self, _member: &dyn GroupMember) -> Vec<(TopicPartition, u64)> {
        Vec::new()
    }

    /// The log refused a write as too large, an output of `topic`: whether it is an output the
    /// processor does without from now on (a projection's checkpoint), so that the batch is
    /// taken again without it instead of being blamed on a record.
    fn drops_too_large(&mut self, _topic: &str) -> bool {
        false
    }

    /// Partitions were given to this instance: restore their state before their records come.
    fn assigned(
        &mut self,
        _log: &dyn EventLog,
        _partitions: &[TopicPartition],
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        async { Ok(()) }
    }

    /// Outputs that `assigned` left to write and that belong to no record (snapshots of a
    /// partition rebuilt from its events): written on their own, so that a refusal is never
    /// blamed on a record. Dropped if the log refuses them.
    fn upkeep(&mut self) -> Vec<OutRecord> {
        Vec::new()
    }

    /// Partitions were taken away, or a write failed: drop their state.
    fn revoked(&mut self, _partitions: &[TopicPartition]) {}

    /// Handles a batch, pushing output records (events, commands, dead letters) to `outputs`.
    fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) -> impl Future<Output = ()> + Send;

    /// The batch's outputs are committed at these positions (in the order pushed); `read` are
    /// the positions after its records (what [`positions_to_commit`](Self::positions_to_commit)
    /// chose went with them): outcomes may be revealed now.
    fn committed(
        &mut self,
        _log: &dyn EventLog,
        _written: Vec<Position>,
        _read: &[(TopicPartition, u64)],
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The log refused the outputs of `record` for good (one was too large): its dead letter
    /// goes to `outputs`, with whatever the processor tells of it (a command's caller hears that
    /// it failed). `false` when the processor has no dead-letter topic: it stops with the error.
    fn dead_letter(&mut self, record: &Record, reason: String, outputs: &mut Vec<OutRecord>) -> bool {
        let Some(topic) = self.dead_letters() else { return false };
        outputs.push(dead_letter::letter(topic, self.group(), record, &reason));
        true
    }

    /// Whether its group is this instance's alone, a new one at each start: deleted when it
    /// leaves, so that the log does not keep one per start.
    fn one_off_group(&self) -> bool {
        false
    }

    /// Its dead-letter topic, if it has one.
    fn dead_letters(&self) -> Option<&Arc<str>> {
        None
    }

    /// An error met in `process` that no retry mends (the processor's own log calls): the
    /// batch is not written and the processor stops with it.
    fn failure(&mut self) -> Option<RuntimeError> {
        None
    }

    /// A last write as the processor stops, with the input positions it goes with (for the
    /// partitions in `assigned`): a projection's checkpoint, so that the next start goes on
    /// from here.
    fn closing(&mut self, _assigned: &[TopicPartition]) -> Option<LastWrite> {
        None
    }

    /// The app is shutting down: given once, before the first batch, to a processor whose
    /// `process` waits on something of its own (another log), so that it can give its batch up.
    fn watch_shutdown(&mut self, _shutdown: watch::Receiver<bool>) {}

    /// Whether `process` gave its batch up because the app shuts down: nothing of it is
    /// written, and the next start does it again.
    fn gave_up(&mut self) -> bool {
        false
    }
}

/// Marks the group stopped on the board however the task ends (a panic included), so that
/// nobody waits for it forever.
struct StopSignal {
    board: Arc<ProgressBoard>,
    group: String,
}

impl Drop for StopSignal {
    fn drop(&mut self) {
        self.board.stopped(&self.group);
    }
}

/// The longest pause between two attempts of a write that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Errors that no retry will mend: the processor stops with them.
pub(crate) fn permanent(error: &LogError) -> bool {
    matches!(
        error,
        LogError::UnknownTopic(_)
            | LogError::UnknownPartition { .. }
            | LogError::InvalidTopic { .. }
            | LogError::KeyRequired { .. }
            | LogError::TooLarge { .. }
            | LogError::NoTopics { .. }
            | LogError::Closed
    )
}

/// After the log refused a batch's output for good (too large), the records up to the end of
/// that batch are taken one at a time: the one whose outputs are refused again goes to the
/// dead-letter topic instead, and the others are written as usual.
struct Narrowing {
    /// Per partition, the position after the refused batch.
    until: Vec<(TopicPartition, u64)>,
    /// The record whose write was refused alone, and what is done with it instead.
    refused: Option<(TopicPartition, u64, Instead)>,
}

/// What is written for a record whose write the log refused alone.
#[derive(Default)]
struct Instead {
    /// Its outputs were refused: a letter with this error instead.
    letter: Option<LogError>,
    /// A letter was refused: letters go without the record's bytes.
    stripped: bool,
}

impl Narrowing {
    fn new(until: Vec<(TopicPartition, u64)>) -> Self {
        Narrowing { until, refused: None }
    }

    /// What is written instead, when `records` is the refused record.
    fn instead(&self, records: &[Record]) -> Option<&Instead> {
        let (tp, offset, instead) = self.refused.as_ref()?;
        let [record] = records else { return None };
        (record.offset == *offset && record.partition == tp.partition && record.topic == tp.topic).then_some(instead)
    }

    /// The log refused `records`' write as too large (`error`, for `topic`); `dead_letters` is
    /// the processor's letters' topic. `Err` when nothing is left to try.
    fn refused(
        &mut self,
        records: &[Record],
        error: LogError,
        dead_letters: Option<&Arc<str>>,
    ) -> Result<(), LogError> {
        let [record] = records else { return Ok(()) };
        let letter_refused =
            matches!(&error, LogError::TooLarge { topic, .. } if dead_letters.is_some_and(|d| **d == **topic));
        if self.instead(records).is_none() {
            let tp = TopicPartition { topic: record.topic.clone(), partition: record.partition };
            self.refused = Some((tp, record.offset, Instead::default()));
        }
        let Some((.., instead)) = &mut self.refused else { unreachable!("set just above") };
        match letter_refused {
            // Its letter was refused, stripped already: nothing smaller to write.
            true if instead.stripped => return Err(error),
            true => instead.stripped = true,
            // A letter in the place of outputs is refused as an output, not as a letter.
            false if instead.letter.is_some() => return Err(error),
            false => instead.letter = Some(error),
        }
        Ok(())
    }

    /// Notes the written positions; `true` once past the refused batch on every partition.
    fn passed(&mut self, positions: &[(TopicPartition, u64)]) -> bool {
        self.until.retain(|(tp, end)| !positions.iter().any(|(p, next)| p == tp && next >= end));
        self.until.is_empty()
    }
}

/// Runs a processor until `shutdown` turns true or the log fails for good.
/// What a processor writes as it stops: outputs, and the input positions they go with.
pub(crate) struct LastWrite {
    pub(crate) outputs: Vec<OutRecord>,
    pub(crate) positions: Vec<(TopicPartition, u64)>,
}

pub(crate) async fn run<P: Processor>(
    mut processor: P,
    log: Arc<dyn EventLog>,
    keys: KeyStore,
    settings: Settings,
    board: Arc<ProgressBoard>,
    mut shutdown: watch::Receiver<bool>,
    ready: oneshot::Sender<()>,
) -> Result<(), RuntimeError> {
    let group = processor.group().to_owned();
    let _stop = StopSignal { board: board.clone(), group: group.clone() };
    let topics = processor.topics();
    processor.watch_shutdown(shutdown.clone());
    let mut member = log.join(&group, &topics, processor.start()).await?;
    let mut outputs = Vec::new();
    let mut ready = Some(ready);
    let mut failures = 0;
    let mut narrowing: Option<Narrowing> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let polled = tokio::select! {
            polled = member.poll(if narrowing.is_some() { 1 } else { settings.batch_size }, settings.poll_timeout) => match polled {
                Ok(polled) => polled,
                Err(error) if permanent(&error) => return Err(error.into()),
                Err(error) => {
                    // The log is away for a while (a broker restarting): wait and ask again.
                    failures += 1;
                    tracing::warn!(group, %error, failures, "poll failed; trying again");
                    tokio::time::sleep(backoff(&settings, failures)).await;
                    continue;
                }
            },
            // A dropped App stops its processors as a shutdown does.
            changed = shutdown.changed() => match changed {
                Ok(()) => continue,
                Err(_) => break,
            },
        };
        if !polled.revoked.is_empty() {
            tracing::info!(group, partitions = ?polled.revoked, "partitions revoked");
            processor.revoked(&polled.revoked);
            board.forget(&group, &polled.revoked);
            if let Some(narrowing) = &mut narrowing {
                // Another member takes those records up, from the committed positions.
                narrowing.until.retain(|(tp, _)| !polled.revoked.contains(tp));
            }
        }
        if !polled.assigned.is_empty() {
            tracing::info!(group, partitions = ?polled.assigned, "partitions assigned");
            match take_up(&mut processor, &mut *member, &*log, &polled.assigned, &group).await {
                Ok(()) => write_upkeep(&mut processor, &mut *member, &group).await,
                Err(RuntimeError::Log(error)) if !permanent(&error) => {
                    tracing::warn!(group, %error, "cannot restore the assigned partitions yet; trying again");
                    if !recover(&mut processor, &mut *member, &*log, &settings, &group, &shutdown).await? {
                        // Not restored, and shutting down: nothing more is processed.
                        break;
                    }
                }
                Err(error) => return Err(error),
            }
            let positions: Vec<(TopicPartition, u64)> =
                polled.assigned.iter().filter_map(|tp| Some((tp.clone(), member.position(tp)?))).collect();
            if processor.start() == StartFrom::End {
                match pin(&mut *member, &positions, &settings, &group, &shutdown).await? {
                    Pinned::Done => {}
                    // Another member joined meanwhile: the next poll hands out the new assignment.
                    Pinned::Fenced => continue,
                    // Shutting down: the next start pins the end again.
                    Pinned::GaveUp => break,
                }
            }
            for (tp, position) in positions {
                board.advance(&group, tp, position);
            }
        }
        if member.has_assignment()
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(());
        }
        if polled.records.is_empty() {
            // Nothing left to handle: the member may stand past records it never hands out
            // (Kafka's transaction markers), which is where "caught up" must look.
            for tp in member.assignment() {
                if let Some(position) = member.position(&tp) {
                    board.advance(&group, tp, position);
                }
            }
            continue;
        }
        warm(&polled.records);
        let positions = next_positions(&polled.records);
        // The keys the batch's personal data is sealed with, before it is decoded.
        let mut failures_keys = 0;
        let mut prepared = true;
        while let Err(error) = keys.prepare(&polled.records).await {
            if permanent(&error) {
                return Err(error.into());
            }
            failures_keys += 1;
            tracing::warn!(group, %error, failures = failures_keys, "cannot read the keys of the batch yet; trying again");
            if !pause(&settings, failures_keys, &shutdown).await {
                prepared = false;
                break;
            }
        }
        if !prepared {
            // Shutting down: the batch is done again at the next start.
            break;
        }
        let instead = narrowing.as_ref().and_then(|n| n.instead(&polled.records));
        let (letter, stripped) =
            instead.map_or((None, false), |i| (i.letter.as_ref().map(|e| e.to_string()), i.stripped));
        match letter {
            None => {
                processor.process(&polled.records, &mut outputs).await;
                if processor.gave_up() {
                    outputs.clear();
                    break;
                }
                if let Some(error) = processor.failure() {
                    tracing::error!(group, %error, "the processor stops");
                    return Err(error);
                }
            }
            Some(error) => {
                let reason = format!("the log refused this record's outputs: {error}");
                if !processor.dead_letter(&polled.records[0], reason, &mut outputs) {
                    tracing::error!(group, %error, "atomic write failed for good, and the processor has no dead-letter topic; it stops");
                    let refused = narrowing.take().and_then(|n| n.refused?.2.letter);
                    return Err(refused.expect("the refused record's error").into());
                }
            }
        }
        if stripped && let Some(dead_letters) = processor.dead_letters() {
            let letters = outputs.iter_mut().filter(|output| output.topic == *dead_letters);
            letters.for_each(dead_letter::without_record);
        }
        // Keys made for this batch's personal data go out in the same write as what they seal,
        // before the outputs: a forget among them tombstones these keys after they are written.
        // The processor hears the positions of its own outputs only.
        let new_keys = match outputs.is_empty() {
            true => None,
            false => keys.pending().map(|(records, ids)| {
                let count = records.len();
                outputs.splice(0..0, records);
                (ids, count)
            }),
        };
        let commit = processor.positions_to_commit(&positions, &*member);
        let written = match (outputs.is_empty(), commit.is_empty()) {
            (true, true) => Ok(Vec::new()),
            _ => member.commit(std::mem::take(&mut outputs), commit).await,
        };
        match written {
            Ok(mut written) => {
                failures = 0;
                if narrowing.as_mut().is_some_and(|n| n.passed(&positions)) {
                    narrowing = None;
                    tracing::info!(group, "past the batch the log refused; records are taken in batches again");
                }
                if let Some((ids, count)) = new_keys {
                    keys.written(&ids);
                    written.drain(..count.min(written.len()));
                }
                processor.committed(&*log, written, &positions).await;
                for (tp, offset) in positions {
                    board.advance(&group, tp, offset);
                }
            }
            Err(LogError::TooLarge { topic, .. }) if processor.drops_too_large(&topic) => {
                outputs.clear();
                processor.revoked(&member.assignment());
                if !recover(&mut processor, &mut *member, &*log, &settings, &group, &shutdown).await? {
                    break;
                }
            }
            Err(error @ LogError::TooLarge { .. }) => {
                outputs.clear();
                let narrowed = narrowing.get_or_insert_with(|| Narrowing::new(positions.clone()));
                match &polled.records[..] {
                    [record] => {
                        tracing::warn!(group, %error, topic = %record.topic, partition = record.partition, offset = record.offset, "the log refused this record's write for good; its letter goes instead (without the record's bytes if a letter was refused)")
                    }
                    _ => {
                        tracing::warn!(group, %error, records = polled.records.len(), "the log refused an output of the batch for good; its records are taken again one at a time to find whose")
                    }
                }
                if let Err(error) = narrowed.refused(&polled.records, error, processor.dead_letters()) {
                    tracing::error!(group, %error, "even a letter without the record was refused; the processor stops");
                    return Err(error.into());
                }
                processor.revoked(&member.assignment());
                if !recover(&mut processor, &mut *member, &*log, &settings, &group, &shutdown).await? {
                    break;
                }
            }
            Err(error) if permanent(&error) => {
                tracing::error!(group, %error, "atomic write failed for good; the processor stops");
                return Err(error.into());
            }
            Err(error) => {
                // Fenced (another instance owns some of these partitions now) or a passing
                // failure: forget what the batch did and take the partitions up again from the
                // log; the next poll hands out any new assignment.
                outputs.clear();
                failures += 1;
                let fenced = matches!(error, LogError::Fenced { .. });
                tracing::warn!(group, %error, failures, "atomic write failed; the batch will be processed again");
                processor.revoked(&member.assignment());
                if !fenced {
                    tokio::time::sleep(backoff(&settings, failures)).await;
                }
                // Until the member is back at the committed positions, polling again could skip
                // the records of the batch that was not written.
                if !recover(&mut processor, &mut *member, &*log, &settings, &group, &shutdown).await? {
                    // Given up to shut down (or the app is gone): nothing more is processed.
                    break;
                }
            }
        }
    }
    if let Some(LastWrite { outputs, positions }) = processor.closing(&member.assignment()) {
        match member.commit(outputs, positions.clone()).await {
            Ok(written) => processor.committed(&*log, written, &positions).await,
            Err(error) => {
                tracing::warn!(group, %error, "the last write as the processor stops failed; the next start goes on from the write before")
            }
        }
    }
    member.leave().await?;
    if processor.one_off_group()
        && let Err(error) = log.delete_group(&group).await
    {
        tracing::warn!(group, %error, "the group of this instance alone stays on the log");
    }
    Ok(())
}

/// How pinning the starting positions ended.
enum Pinned {
    Done,
    /// The member lost the partitions meanwhile.
    Fenced,
    /// The app shuts down.
    GaveUp,
}

/// Pins "the end" to now, before anything else is processed: a restart or a rebalance must not
/// skip what arrives meanwhile (a partition without records in the first batch would otherwise
/// stay unpinned). Retried while the log refuses.
async fn pin(
    member: &mut dyn GroupMember,
    positions: &[(TopicPartition, u64)],
    settings: &Settings,
    group: &str,
    shutdown: &watch::Receiver<bool>,
) -> Result<Pinned, RuntimeError> {
    let mut failures = 0;
    loop {
        match member.commit(Vec::new(), positions.to_vec()).await {
            Ok(_) => return Ok(Pinned::Done),
            Err(LogError::Fenced { .. }) => return Ok(Pinned::Fenced),
            Err(error) if permanent(&error) => return Err(error.into()),
            Err(error) => {
                failures += 1;
                tracing::warn!(group, %error, failures, "cannot pin the starting positions yet; trying again");
                if !pause(settings, failures, shutdown).await {
                    return Ok(Pinned::GaveUp);
                }
            }
        }
    }
}

/// The pause before attempt `failures + 1`: doubling, capped.
pub(crate) fn backoff(settings: &Settings, failures: u32) -> Duration {
    settings.retry_backoff.saturating_mul(1 << failures.min(8)).min(MAX_BACKOFF)
}

/// Waits before attempt `failures + 1`; `false` when the app shuts down (meanwhile or before):
/// then stop trying, as nothing that was not written is lost.
pub(crate) async fn pause(settings: &Settings, failures: u32, shutdown: &watch::Receiver<bool>) -> bool {
    let mut shutdown = shutdown.clone();
    if *shutdown.borrow_and_update() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(backoff(settings, failures)) => !*shutdown.borrow(),
        // Shutdown, or the app dropped.
        _ = shutdown.changed() => false,
    }
}

/// Moves the member back to the committed positions and restores the processor's state,
/// retrying while the log is away; `false` when it gave up because the app shuts down (then the
/// loop leaves without processing anything more).
async fn recover<P: Processor>(
    processor: &mut P,
    member: &mut dyn GroupMember,
    log: &dyn EventLog,
    settings: &Settings,
    group: &str,
    shutdown: &watch::Receiver<bool>,
) -> Result<bool, RuntimeError> {
    let mut failures = 0;
    loop {
        let step = match member.rewind().await {
            Ok(()) => {
                let assigned = member.assignment();
                take_up(processor, member, log, &assigned, group).await
            }
            Err(error) => Err(error.into()),
        };
        match step {
            Ok(()) => {
                write_upkeep(processor, member, group).await;
                return Ok(true);
            }
            Err(RuntimeError::Log(error)) if !permanent(&error) => {
                failures += 1;
                tracing::warn!(group, %error, failures, "cannot take the partitions up again yet; trying again");
                if !pause(settings, failures, shutdown).await {
                    return Ok(false);
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// Takes `partitions` up: the processor restores their state, and the member moves back to where
/// that state ends where it stands past it ([`Processor::behind`]).
async fn take_up<P: Processor>(
    processor: &mut P,
    member: &mut dyn GroupMember,
    log: &dyn EventLog,
    partitions: &[TopicPartition],
    group: &str,
) -> Result<(), RuntimeError> {
    processor.assigned(log, partitions).await?;
    let back = processor.behind(&*member);
    if !back.is_empty() {
        tracing::warn!(group, partitions = ?back, "the group's positions are past this instance's state (another instance under its name wrote meanwhile); reading again from where the state ends");
        member.commit(Vec::new(), back).await?;
        member.rewind().await?;
    }
    Ok(())
}

/// Writes the processor's [upkeep](Processor::upkeep), alone. Not written (the log refused it,
/// or the group rebalanced), it is done again when the partitions are next taken up.
async fn write_upkeep<P: Processor>(processor: &mut P, member: &mut dyn GroupMember, group: &str) {
    let outputs = processor.upkeep();
    if outputs.is_empty() {
        return;
    }
    let count = outputs.len();
    if let Err(error) = member.commit(outputs, Vec::new()).await {
        tracing::warn!(group, %error, count, "the snapshots of partitions rebuilt from their events were not written; they are rebuilt again when next taken up");
    }
}

/// Reads a byte of every cache line of the batch's headers and values, so that they come into
/// the cache together (the loads do not wait for one another) rather than one miss at a time as
/// each record is decoded: a log that holds many records (the memory log) hands out buffers
/// that are rarely in the cache. Small values only: a large one is not worth the cache.
fn warm(records: &[Record]) {
    const LINE: usize = 64;
    const MAX: usize = 1024;
    let mut sum = 0u8;
    let mut touch = |bytes: &[u8]| {
        if bytes.len() <= MAX {
            for line in bytes.chunks(LINE) {
                sum ^= line[0];
            }
        }
    };
    for record in records {
        touch(record.headers.encoded());
        touch(record.value.as_deref().unwrap_or_default());
    }
    std::hint::black_box(sum);
}

/// The next offset to read per partition after this batch (records of a partition come in
/// offset order).
fn next_positions(records: &[Record]) -> Vec<(TopicPartition, u64)> {
    let mut next: Vec<(TopicPartition, u64)> = Vec::new();
    for record in records {
        match next.iter_mut().find(|(tp, _)| tp.partition == record.partition && tp.topic == record.topic) {
            Some((_, offset)) => *offset = (*offset).max(record.offset + 1),
            None => next
                .push((TopicPartition { topic: record.topic.clone(), partition: record.partition }, record.offset + 1)),
        }
    }
    next
}
