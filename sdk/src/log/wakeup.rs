//! Waking the group members that wait for records, and only those: each member has a waker,
//! registered for the topics it reads and for its group. An append wakes the members that read
//! the topics written to; a join or leave wakes the group's members (a rebalance).
//!
//! A waker is a `Notify` woken with `notify_one`, which keeps a permit when the member is not
//! waiting yet: a member that looks at the log and then waits cannot miss what came in between.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// The wakers of one log's members.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    by_topic: HashMap<Arc<str>, Vec<Weak<Notify>>>,
    by_group: HashMap<String, Vec<Weak<Notify>>>,
}

impl Wakeups {
    /// A waker for a member of `group` reading `topics`. It is forgotten when dropped.
    pub(crate) fn register(&self, group: &str, topics: &[Arc<str>]) -> Arc<Notify> {
        let waker = Arc::new(Notify::new());
        let mut registry = self.lock();
        for topic in topics {
            registry.by_topic.entry(topic.clone()).or_default().push(Arc::downgrade(&waker));
        }
        registry.by_group.entry(group.to_owned()).or_default().push(Arc::downgrade(&waker));
        waker
    }

    /// Records were written to these topics.
    pub(crate) fn records_written<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        let mut registry = self.lock();
        let mut woken: Vec<&str> = Vec::new();
        for topic in topics {
            if !woken.contains(&topic) {
                woken.push(topic);
                if let Some(wakers) = registry.by_topic.get_mut(topic) {
                    wake(wakers);
                }
            }
        }
    }

    /// A member joined or left `group`.
    pub(crate) fn group_changed(&self, group: &str) {
        if let Some(wakers) = self.lock().by_group.get_mut(group) {
            wake(wakers);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wakes every live waker and forgets the dropped ones.
fn wake(wakers: &mut Vec<Weak<Notify>>) {
    wakers.retain(|waker| match waker.upgrade() {
        Some(waker) => {
            waker.notify_one();
            true
        }
        None => false,
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wakes_the_readers_of_a_topic_and_keeps_a_permit_for_a_member_not_yet_waiting() {
        let wakeups = Wakeups::default();
        let orders: Arc<str> = Arc::from("order.events");
        let reader = wakeups.register("g", std::slice::from_ref(&orders));
        let other = wakeups.register("h", &[Arc::from("payment.events")]);
        wakeups.records_written(["order.events", "order.events"]);
        tokio::time::timeout(Duration::from_secs(1), reader.notified()).await.expect("the reader is woken");
        assert!(tokio::time::timeout(Duration::from_millis(20), other.notified()).await.is_err(), "not the other");
        wakeups.group_changed("h");
        tokio::time::timeout(Duration::from_secs(1), other.notified())
            .await
            .expect("a group change wakes it");
        drop(reader);
        wakeups.records_written(["order.events"]);
        assert!(wakeups.lock().by_topic[&orders].is_empty(), "a dropped waker is forgotten");
    }
}
