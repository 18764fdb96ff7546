//! How far each processor has got, per partition: what "wait until caught up" and
//! [`App::settle`](super::App::settle) wait on.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{Notify, oneshot};

use crate::log::TopicPartition;

/// Next offset to process, per group and partition.
#[derive(Default)]
pub(crate) struct ProgressBoard {
    positions: Mutex<HashMap<String, HashMap<TopicPartition, u64>>>,
    /// Callers waiting for one group to reach one position, woken only when it does (a
    /// read-your-writes wait per command would otherwise wake every waiter on every commit).
    waiting: Mutex<HashMap<(String, TopicPartition), Vec<(u64, oneshot::Sender<()>)>>>,
    changed: Notify,
}

impl ProgressBoard {
    pub(crate) fn advance(&self, group_name: &str, partition: TopicPartition, next: u64) {
        let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        let group = match positions.get_mut(group_name) {
            Some(group) => group,
            None => positions.entry(group_name.to_owned()).or_default(),
        };
        let slot = group.entry(partition.clone()).or_default();
        *slot = (*slot).max(next);
        let reached = *slot;
        drop(positions);
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(callers) = waiting.get_mut(&(group_name.to_owned(), partition)) {
            callers.retain_mut(|(wanted, _)| *wanted > reached);
        }
        drop(waiting);
        self.changed.notify_waiters();
    }

    /// Waits until `group` has processed `partition` up to `next` (exclusive).
    pub(crate) async fn reached(&self, group: &str, partition: &TopicPartition, next: u64) {
        let reached = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if self.position(group, partition).is_some_and(|at| at >= next) {
                return;
            }
            let (sender, reached) = oneshot::channel();
            waiting.entry((group.to_owned(), partition.clone())).or_default().push((next, sender));
            reached
        };
        // Dropping the sender (the position was reached) is the signal.
        let _ = reached.await;
    }

    pub(crate) fn forget(&self, group: &str, partitions: &[TopicPartition]) {
        let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(group) = positions.get_mut(group) {
            for tp in partitions {
                group.remove(tp);
            }
        }
    }

    /// The next offset `group` will process on `partition`, if it holds that partition.
    pub(crate) fn position(&self, group: &str, partition: &TopicPartition) -> Option<u64> {
        let positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        positions.get(group).and_then(|g| g.get(partition)).copied()
    }

    /// Waits until `reached` holds. Checks again on every change.
    pub(crate) async fn wait_until(&self, mut reached: impl FnMut(&Self) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if reached(self) {
                return;
            }
            // A position can also move through a path that does not notify (a new end offset
            // on the log), so look again now and then.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), changed).await;
        }
    }
}
