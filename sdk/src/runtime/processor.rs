//! The one processor loop every processor runs (DESIGN.md, "The processor loop"):
//! poll a batch, decode and handle each record (failures go to the dead-letter topic), write the
//! outputs and the input positions atomically, repeat; on shutdown finish the batch, commit and
//! leave the group.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use super::progress::ProgressBoard;
use super::{RuntimeError, Settings};
use crate::log::{EventLog, LogError, OutRecord, Record, StartFrom, TopicPartition};
use crate::model::Position;

/// What the loop needs from a processor: which group it is, and how it handles a batch.
pub(crate) trait Processor: Send + 'static {
    /// The consumer group.
    fn group(&self) -> &str;
    /// The topics it reads.
    fn topics(&self) -> Vec<&'static str>;
    /// Where it starts when the group has no committed position.
    fn start(&self) -> StartFrom;

    /// Partitions were given to this instance: restore their state before their records come.
    fn assigned(
        &mut self,
        log: &dyn EventLog,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Partitions were taken away, or a write failed: drop their state.
    fn revoked(&mut self, partitions: &[TopicPartition]);

    /// Handles a batch, pushing output records (events, commands, dead letters) to `outputs`.
    fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) -> impl Future<Output = ()> + Send;

    /// The batch's outputs are committed at these positions (in the order pushed).
    fn committed(&mut self, written: Vec<Position>);
}

/// Runs a processor until `shutdown` turns true or the log fails for good.
pub(crate) async fn run<P: Processor>(
    mut processor: P,
    log: Arc<dyn EventLog>,
    settings: Settings,
    board: Arc<ProgressBoard>,
    mut shutdown: watch::Receiver<bool>,
    ready: oneshot::Sender<()>,
) -> Result<(), RuntimeError> {
    let group = processor.group().to_owned();
    let topics = processor.topics();
    let mut member = log.join(&group, &topics, processor.start()).await?;
    let mut outputs = Vec::new();
    let mut ready = Some(ready);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let polled = tokio::select! {
            polled = member.poll(settings.batch_size, settings.poll_timeout) => polled?,
            // A dropped App stops its processors as a shutdown does.
            changed = shutdown.changed() => match changed {
                Ok(()) => continue,
                Err(_) => break,
            },
        };
        if !polled.revoked.is_empty() {
            processor.revoked(&polled.revoked);
            board.forget(&group, &polled.revoked);
        }
        if !polled.assigned.is_empty() {
            processor.assigned(&*log, &polled.assigned).await?;
            let positions: Vec<(TopicPartition, u64)> =
                polled.assigned.iter().filter_map(|tp| Some((tp.clone(), member.position(tp)?))).collect();
            if processor.start() == StartFrom::End {
                // Pin "the end" to now: a rebalance later must not skip what arrives meanwhile.
                member.commit(Vec::new(), positions.clone()).await?;
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
            continue;
        }
        let positions = next_positions(&polled.records);
        processor.process(&polled.records, &mut outputs).await;
        match member.commit(std::mem::take(&mut outputs), positions.clone()).await {
            Ok(written) => {
                processor.committed(written);
                for (tp, offset) in positions {
                    board.advance(&group, tp, offset);
                }
            }
            Err(error @ LogError::Fenced { .. }) => {
                // Another instance owns (some of) these partitions now: forget everything and
                // let the next poll hand out the new assignment.
                tracing::warn!(group, %error, "write fenced; dropping state");
                processor.revoked(&member.assignment());
                member.rewind().await?;
                let assignment = member.assignment();
                processor.assigned(&*log, &assignment).await?;
            }
            Err(error) => {
                tracing::error!(group, %error, "atomic write failed; the batch will be processed again");
                processor.revoked(&member.assignment());
                member.rewind().await?;
                let assignment = member.assignment();
                processor.assigned(&*log, &assignment).await?;
                tokio::time::sleep(settings.retry_backoff).await;
            }
        }
    }
    member.leave().await?;
    Ok(())
}

/// The next offset to read per partition after this batch.
fn next_positions(records: &[Record]) -> Vec<(TopicPartition, u64)> {
    let mut next: HashMap<(&str, u32), u64> = HashMap::new();
    for record in records {
        let slot = next.entry((&record.topic, record.partition)).or_default();
        *slot = (*slot).max(record.offset + 1);
    }
    let by_topic: HashMap<&str, &Arc<str>> = records.iter().map(|r| (&*r.topic, &r.topic)).collect();
    next.into_iter()
        .map(|((topic, partition), offset)| (TopicPartition { topic: by_topic[topic].clone(), partition }, offset))
        .collect()
}
