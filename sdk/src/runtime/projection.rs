//! The projection processor and the handle that reads a projection.
//!
//! A projection's state lives in memory and is rebuilt from the beginning of the log when the
//! process starts: each instance uses a consumer group of its own and reads every partition.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};

use super::processor::Processor;
use super::progress::ProgressBoard;
use super::{RuntimeError, dead_letter};
use crate::log::{EventLog, OutRecord, Record, StartFrom, TopicPartition};
use crate::model::{Position, Projection};

/// The projection's name within the platform: `payment.orders`, or `order-history` for a
/// function module's projection of the same name.
pub(crate) fn id_of<P: Projection>() -> String {
    match P::MODULE == P::NAME {
        true => P::NAME.to_owned(),
        false => format!("{}.{}", P::MODULE, P::NAME),
    }
}

pub(crate) struct ProjectionProcessor<P: Projection> {
    state: Arc<RwLock<P>>,
    group: String,
    id: String,
    dead_letters: Arc<str>,
    /// Records already dead-lettered by an earlier instance: a projection replays from the
    /// beginning on every start, and must not letter them again.
    lettered: Option<HashSet<(String, u32, u64)>>,
    /// Dead letters handed to a write that has not been committed yet. The records they are
    /// about count as applied (the read model keeps them), so a batch written again after a
    /// failed write skips those records: these letters go with it instead.
    unwritten: Vec<OutRecord>,
    /// The next offset to apply per topic and partition. A projection commits no positions, so
    /// partitions it gets back after losing them (Kafka's group session lost in a broker
    /// restart) start from the beginning again: what it applied already is skipped.
    applied: Vec<(Arc<str>, Vec<u64>)>,
}

impl<P: Projection> ProjectionProcessor<P> {
    /// Whether the record is new to the projection; notes it as applied.
    fn first_time(&mut self, record: &Record) -> bool {
        let index = match self.applied.iter().position(|(t, _)| Arc::ptr_eq(t, &record.topic) || *t == record.topic) {
            Some(index) => index,
            None => {
                self.applied.push((record.topic.clone(), Vec::new()));
                self.applied.len() - 1
            }
        };
        let partitions = &mut self.applied[index].1;
        let partition = record.partition as usize;
        if partitions.len() <= partition {
            partitions.resize(partition + 1, 0);
        }
        let fresh = record.offset >= partitions[partition];
        if fresh {
            partitions[partition] = record.offset + 1;
        }
        fresh
    }
}

impl<P: Projection> ProjectionProcessor<P> {
    pub(crate) fn new(state: Arc<RwLock<P>>, group: String) -> Self {
        let id = id_of::<P>();
        ProjectionProcessor {
            state,
            group,
            dead_letters: Arc::from(dead_letter::topic_of(&id)),
            id,
            lettered: None,
            unwritten: Vec::new(),
            applied: Vec::new(),
        }
    }
}

impl<P: Projection> Processor for ProjectionProcessor<P> {
    fn group(&self) -> &str {
        &self.group
    }

    fn topics(&self) -> Vec<&'static str> {
        P::subscriptions().iter().map(|s| s.topic).collect()
    }

    fn start(&self) -> StartFrom {
        StartFrom::Beginning
    }

    fn commits_positions(&self) -> bool {
        false
    }

    fn one_off_group(&self) -> bool {
        true
    }

    fn dead_letters(&self) -> Option<&Arc<str>> {
        Some(&self.dead_letters)
    }

    async fn assigned(&mut self, log: &dyn EventLog, _: &[TopicPartition]) -> Result<(), RuntimeError> {
        if self.lettered.is_none() {
            self.lettered = Some(dead_letter::origins(log, &self.dead_letters).await?);
        }
        Ok(())
    }

    async fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) {
        outputs.extend(self.unwritten.iter().cloned());
        let state = self.state.clone();
        let mut state = state.write().unwrap_or_else(|p| p.into_inner());
        for record in records {
            if !self.first_time(record) {
                continue;
            }
            // A panicking handler is contained like a record that cannot be decoded; the read
            // model keeps what the handler did before it panicked.
            let error = match std::panic::catch_unwind(AssertUnwindSafe(|| state.apply(record))) {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error.to_string(),
                Err(panic) => format!("the handler panicked: {}", super::aggregate::panic_message(&*panic)),
            };
            let origin = (record.topic.to_string(), record.partition, record.offset);
            if self.lettered.as_mut().is_none_or(|lettered| lettered.insert(origin)) {
                let letter = dead_letter::letter(&self.dead_letters, &self.id, record, &error);
                self.unwritten.push(letter.clone());
                outputs.push(letter);
            }
        }
    }

    async fn committed(&mut self, _: &dyn EventLog, _: Vec<Position>, _: &[(TopicPartition, u64)]) {
        self.unwritten.clear();
    }
}

/// Read access to a running projection, and "wait until caught up".
pub struct ProjectionHandle<P> {
    pub(crate) state: Arc<RwLock<P>>,
    pub(crate) group: String,
    /// Whether it is built in this process (see `App::run_only`).
    pub(crate) here: bool,
    pub(crate) topics: Vec<&'static str>,
    pub(crate) board: Arc<ProgressBoard>,
    pub(crate) log: Arc<dyn EventLog>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        ProjectionHandle {
            state: self.state.clone(),
            group: self.group.clone(),
            here: self.here,
            topics: self.topics.clone(),
            board: self.board.clone(),
            log: self.log.clone(),
        }
    }
}

impl<P> std::fmt::Debug for ProjectionHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionHandle").field("group", &self.group).finish()
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// Whether waiting for the projection can end: it is built here, by a started app.
    fn is_running_here(&self) -> Result<(), RuntimeError> {
        if !self.here {
            return Err(RuntimeError::Elsewhere(self.group.clone()));
        }
        match self.board.is_started() {
            true => Ok(()),
            false => Err(RuntimeError::NotStarted(format!("waiting for projection `{}`", id_of::<P>()))),
        }
    }

    /// Reads the projection's current state (its initial state when it runs in another process).
    pub fn read<T>(&self, read: impl FnOnce(&P) -> T) -> T {
        read(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until the projection has processed every record up to and including these
    /// positions (read-your-writes after a command: pass `accepted.positions()`). Positions
    /// of topics the projection does not read are ignored.
    /// Fails when the projection's processor has stopped, and at once when it runs in another
    /// process or its app has not been started.
    pub async fn wait_for(&self, positions: &[Position]) -> Result<(), RuntimeError> {
        self.is_running_here()?;
        for position in positions.iter().filter(|p| self.topics.iter().any(|t| **t == *p.topic)) {
            let tp = TopicPartition { topic: position.topic.clone(), partition: position.partition };
            self.board
                .reached(&self.group, &tp, position.offset + 1)
                .await
                .map_err(|_| RuntimeError::Stopped(self.group.clone()))?;
        }
        Ok(())
    }

    /// Waits until the projection has processed everything on its topics at the time of the
    /// call. What the app's other processors write after it (a reaction's commands turned into
    /// events) is not waited for: [`App::settle`](crate::App::settle) waits until the whole app
    /// is quiet. Fails as [`ProjectionHandle::wait_for`] does.
    pub async fn caught_up(&self) -> Result<(), RuntimeError> {
        self.is_running_here()?;
        let mut ends = HashMap::new();
        for topic in &self.topics {
            let partitions = self.log.partition_count(topic).await?.unwrap_or(0);
            for partition in 0..partitions {
                let tp = TopicPartition::new(*topic, partition);
                let end = self.log.end_offset(&tp).await?;
                ends.insert(tp, end);
            }
        }
        self.board
            .wait_until(|board| {
                board.is_stopped(&self.group)
                    || ends
                        .iter()
                        .all(|(tp, end)| *end == 0 || board.position(&self.group, tp).is_some_and(|p| p >= *end))
            })
            .await;
        match self.board.is_stopped(&self.group) {
            true => Err(RuntimeError::Stopped(self.group.clone())),
            false => Ok(()),
        }
    }
}
