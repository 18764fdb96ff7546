//! How far each processor has got, per partition: what "wait until caught up" and
//! [`App::settle`](super::App::settle) wait on.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, oneshot};

use crate::log::TopicPartition;

/// Next offset to process, per group and partition.
#[derive(Default)]
pub(crate) struct ProgressBoard {
    groups: Mutex<HashMap<String, Group>>,
    /// Groups whose processor has stopped.
    stopped: Mutex<HashSet<String>>,
    changed: Notify,
    /// Whether [`App::start`](super::App::start) was called: before it nothing runs, so nothing
    /// can be waited for.
    started: AtomicBool,
}

#[derive(Default)]
struct Group {
    positions: HashMap<TopicPartition, u64>,
    /// Callers waiting for one position, woken only when it is reached (a read-your-writes
    /// wait per command would otherwise wake every waiter on every commit).
    waiting: HashMap<TopicPartition, Vec<(u64, oneshot::Sender<()>)>>,
}

/// The group being waited for has stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupStopped;

impl ProgressBoard {
    pub(crate) fn start(&self) {
        self.started.store(true, Ordering::Release);
    }

    pub(crate) fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn advance(&self, group: &str, partition: TopicPartition, next: u64) {
        let mut groups = self.lock();
        let group = match groups.get_mut(group) {
            Some(group) => group,
            None => groups.entry(group.to_owned()).or_default(),
        };
        if let Some(callers) = group.waiting.get_mut(&partition) {
            // Dropping a caller's sender is its signal.
            callers.retain(|(wanted, _)| *wanted > next);
        }
        let slot = group.positions.entry(partition).or_default();
        *slot = (*slot).max(next);
        drop(groups);
        self.changed.notify_waiters();
    }

    pub(crate) fn forget(&self, group: &str, partitions: &[TopicPartition]) {
        if let Some(group) = self.lock().get_mut(group) {
            for tp in partitions {
                group.positions.remove(tp);
            }
        }
    }

    /// The group's processor has stopped: its waiters are released (and told so by
    /// [`ProgressBoard::reached`]).
    pub(crate) fn stopped(&self, group: &str) {
        // Recorded before the waiters are released: `reached` checks it under the groups' lock,
        // so a caller either sees it or is released below.
        self.stopped_groups().insert(group.to_owned());
        if let Some(group) = self.lock().get_mut(group) {
            group.waiting.clear();
        }
        self.changed.notify_waiters();
    }

    /// Whether the group's processor has stopped.
    pub(crate) fn is_stopped(&self, group: &str) -> bool {
        self.stopped_groups().contains(group)
    }

    fn stopped_groups(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next offset `group` will process on `partition`, if it holds that partition.
    pub(crate) fn position(&self, group: &str, partition: &TopicPartition) -> Option<u64> {
        self.lock().get(group).and_then(|g| g.positions.get(partition)).copied()
    }

    /// Waits until `group` has processed `partition` up to `next` (exclusive).
    pub(crate) async fn reached(&self, group: &str, partition: &TopicPartition, next: u64) -> Result<(), GroupStopped> {
        let reached = {
            let mut groups = self.lock();
            if self.stopped_groups().contains(group) {
                return Err(GroupStopped);
            }
            let entry = groups.entry(group.to_owned()).or_default();
            if entry.positions.get(partition).is_some_and(|at| *at >= next) {
                return Ok(());
            }
            let (sender, reached) = oneshot::channel();
            entry.waiting.entry(partition.clone()).or_default().push((next, sender));
            reached
        };
        // The sender is dropped when the position is reached, or when the group stops.
        let _ = reached.await;
        match self.position(group, partition).is_some_and(|at| at >= next) {
            true => Ok(()),
            false => Err(GroupStopped),
        }
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
