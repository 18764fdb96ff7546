//! How far each processor has got, per partition: what "wait until caught up" and
//! [`App::settle`](super::App::settle) wait on.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::log::TopicPartition;

/// Next offset to process, per group and partition.
#[derive(Default)]
pub(crate) struct ProgressBoard {
    positions: Mutex<HashMap<String, HashMap<TopicPartition, u64>>>,
    changed: Notify,
}

impl ProgressBoard {
    pub(crate) fn advance(&self, group: &str, partition: TopicPartition, next: u64) {
        let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        let group = match positions.get_mut(group) {
            Some(group) => group,
            None => positions.entry(group.to_owned()).or_default(),
        };
        let slot = group.entry(partition).or_default();
        *slot = (*slot).max(next);
        drop(positions);
        self.changed.notify_waiters();
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
