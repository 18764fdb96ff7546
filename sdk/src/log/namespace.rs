//! A namespace on a shared log: every topic and consumer group of the wrapped log gets a prefix,
//! so that several platforms (tenants, test runs, a staging copy) share one Kafka cluster without
//! seeing each other's records or joining each other's groups. The runtime and the modules keep
//! their topic names; only the log below sees `<namespace>.<topic>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{EventLog, GroupMember, LogError, OutRecord, Polled, Record, StartFrom, TopicPartition, TopicSpec};
use crate::model::Position;

/// A log whose topics and groups all carry a prefix (`<namespace>.<name>` on the log below), so
/// that several platforms share one cluster without seeing each other's records or joining each
/// other's groups. The runtime and the modules keep their names; the runtime's logs carry the
/// namespace ([`EventLog::namespace`]).
///
/// ```
/// # use tramline::log::{EventLog, Namespaced, TopicSpec};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tramline::log::LogError> {
/// let shared = tramline::MemoryLog::shared();
/// let staging = Namespaced::new(shared.clone(), "staging").expect("a namespace");
/// staging.create_topic(&TopicSpec::keep("order.events", 2)).await?;
/// assert_eq!(shared.partition_count("staging.order.events").await?, Some(2));
/// assert_eq!(shared.partition_count("order.events").await?, None);
/// # Ok(()) }
/// ```
pub struct Namespaced {
    inner: Arc<dyn EventLog>,
    rename: Rename,
    /// The whole prefix on the backend, with the namespaces of the logs below.
    namespace: String,
}

/// Inside and outside names of the topics seen so far: records coming out are renamed without
/// an allocation each.
#[derive(Default)]
struct Names {
    inside: Mutex<HashMap<Arc<str>, Arc<str>>>,
}

impl Names {
    fn inside(&self, prefix: &str, outside: &Arc<str>) -> Arc<str> {
        let mut names = self.inside.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(inside) = names.get(outside) {
            return inside.clone();
        }
        let inside: Arc<str> = Arc::from(outside.strip_prefix(prefix).unwrap_or(outside));
        names.insert(outside.clone(), inside.clone());
        inside
    }
}

/// A name that cannot be a namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` cannot be a namespace: use ASCII letters, digits, `_` and `-` (with a `.`, namespace `a` and topic `b.t` \
     would meet namespace `a.b` and topic `t` on `a.b.t`)"
)]
pub struct InvalidNamespace(pub String);

impl Namespaced {
    /// `inner`, with every topic and group inside `namespace` (`<namespace>.<name>` below).
    pub fn new(inner: Arc<dyn EventLog>, namespace: &str) -> Result<Self, InvalidNamespace> {
        Self::check(namespace)?;
        let rename = Rename { prefix: Arc::from(format!("{namespace}.")), names: Arc::default() };
        let namespace = match inner.namespace() {
            Some(below) => format!("{below}.{namespace}"),
            None => namespace.to_owned(),
        };
        Ok(Namespaced { inner, rename, namespace })
    }

    /// Whether `namespace` can be one: ASCII letters, digits, `_` and `-`, not empty. Topic names
    /// also take `.`, but a namespace ends at the first one, so that two never share a topic.
    pub fn check(namespace: &str) -> Result<(), InvalidNamespace> {
        let allowed = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-');
        match !namespace.is_empty() && namespace.bytes().all(allowed) {
            true => Ok(()),
            false => Err(InvalidNamespace(namespace.to_owned())),
        }
    }

    fn outside(&self, name: &str) -> String {
        format!("{}{name}", self.rename.prefix)
    }
}

impl std::fmt::Debug for Namespaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespaced").field("prefix", &self.rename.prefix).finish()
    }
}

/// The renaming both the log and its members do.
#[derive(Clone)]
struct Rename {
    prefix: Arc<str>,
    names: Arc<Names>,
}

impl Rename {
    fn out_tp(&self, tp: &TopicPartition) -> TopicPartition {
        TopicPartition { topic: Arc::from(format!("{}{}", self.prefix, tp.topic)), partition: tp.partition }
    }

    fn in_tp(&self, tp: TopicPartition) -> TopicPartition {
        TopicPartition { topic: self.names.inside(&self.prefix, &tp.topic), partition: tp.partition }
    }

    fn in_record(&self, mut record: Record) -> Record {
        record.topic = self.names.inside(&self.prefix, &record.topic);
        record
    }

    fn in_position(&self, mut position: Position) -> Position {
        position.topic = self.names.inside(&self.prefix, &position.topic);
        position
    }

    fn out_record(&self, mut record: OutRecord) -> OutRecord {
        record.topic = Arc::from(format!("{}{}", self.prefix, record.topic));
        record
    }

    /// An error of the log below, naming topics and groups as the caller does. (A backend's
    /// message is its own text, left as it is.)
    fn in_error(&self, error: LogError) -> LogError {
        let inside = |name: String| match name.strip_prefix(&*self.prefix) {
            Some(inside) => inside.to_owned(),
            None => name,
        };
        match error {
            LogError::UnknownTopic(topic) => LogError::UnknownTopic(inside(topic)),
            LogError::UnknownPartition { topic, partition, partitions } => {
                LogError::UnknownPartition { topic: inside(topic), partition, partitions }
            }
            LogError::PartitionMismatch { topic, existing, requested } => {
                LogError::PartitionMismatch { topic: inside(topic), existing, requested }
            }
            LogError::CleanupMismatch { topic, existing, requested } => {
                LogError::CleanupMismatch { topic: inside(topic), existing, requested }
            }
            LogError::KeyRequired { topic } => LogError::KeyRequired { topic: inside(topic) },
            LogError::OffsetPastEnd { topic, partition, offset, end } => {
                LogError::OffsetPastEnd { topic: inside(topic), partition, offset, end }
            }
            LogError::TooLarge { topic, reason } => LogError::TooLarge { topic: inside(topic), reason },
            // Named whole: the name on the backend is the one that breaks its rule.
            LogError::Fenced { group, reason } => LogError::Fenced { group: inside(group), reason },
            LogError::NoTopics { group } => LogError::NoTopics { group: inside(group) },
            other => other,
        }
    }
}

#[async_trait]
impl EventLog for Namespaced {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        let mut spec = spec.clone();
        spec.name = self.outside(&spec.name);
        self.inner.create_topic(&spec).await.map_err(|e| self.rename.in_error(e))
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<u32>, LogError> {
        self.inner.partition_count(&self.outside(topic)).await.map_err(|e| self.rename.in_error(e))
    }

    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<Position>, LogError> {
        let rename = &self.rename;
        let records = records.into_iter().map(|r| rename.out_record(r)).collect();
        let positions = self.inner.append(records).await.map_err(|e| rename.in_error(e))?;
        Ok(positions.into_iter().map(|p| rename.in_position(p)).collect())
    }

    async fn read(&self, partition: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError> {
        let rename = &self.rename;
        let records = self.inner.read(&rename.out_tp(partition), offset, max).await.map_err(|e| rename.in_error(e))?;
        Ok(records.into_iter().map(|r| rename.in_record(r)).collect())
    }

    async fn end_offset(&self, partition: &TopicPartition) -> Result<u64, LogError> {
        let rename = &self.rename;
        self.inner.end_offset(&rename.out_tp(partition)).await.map_err(|e| rename.in_error(e))
    }

    async fn committed(&self, group: &str, partition: &TopicPartition) -> Result<Option<u64>, LogError> {
        let rename = &self.rename;
        self.inner
            .committed(&self.outside(group), &rename.out_tp(partition))
            .await
            .map_err(|e| rename.in_error(e))
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        self.inner.delete_topic(&self.outside(topic)).await.map_err(|e| self.rename.in_error(e))
    }

    async fn delete_before(&self, partition: &TopicPartition, offset: u64) -> Result<(), LogError> {
        let rename = &self.rename;
        self.inner.delete_before(&rename.out_tp(partition), offset).await.map_err(|e| rename.in_error(e))
    }

    async fn delete_group(&self, group: &str) -> Result<(), LogError> {
        self.inner.delete_group(&self.outside(group)).await.map_err(|e| self.rename.in_error(e))
    }

    async fn join(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<Box<dyn GroupMember>, LogError> {
        let topics: Vec<String> = topics.iter().map(|t| self.outside(t)).collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let rename = &self.rename;
        let member = self.inner.join(&self.outside(group), &topics, start).await.map_err(|e| rename.in_error(e))?;
        Ok(Box::new(NamespacedMember { inner: member, rename: rename.clone() }))
    }

    fn namespace(&self) -> Option<&str> {
        Some(&self.namespace)
    }

    fn instance_id(&self) -> Option<&str> {
        self.inner.instance_id()
    }
}

struct NamespacedMember {
    inner: Box<dyn GroupMember>,
    rename: Rename,
}

#[async_trait]
impl GroupMember for NamespacedMember {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled, LogError> {
        let rename = &self.rename;
        let Polled { revoked, assigned, records } =
            self.inner.poll(max, timeout).await.map_err(|e| rename.in_error(e))?;
        Ok(Polled {
            revoked: revoked.into_iter().map(|tp| rename.in_tp(tp)).collect(),
            assigned: assigned.into_iter().map(|tp| rename.in_tp(tp)).collect(),
            records: records.into_iter().map(|r| rename.in_record(r)).collect(),
        })
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.inner.assignment().into_iter().map(|tp| self.rename.in_tp(tp)).collect()
    }

    fn has_assignment(&self) -> bool {
        self.inner.has_assignment()
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.inner.position(&self.rename.out_tp(partition))
    }

    async fn rewind(&mut self) -> Result<(), LogError> {
        self.inner.rewind().await.map_err(|e| self.rename.in_error(e))
    }

    async fn commit(
        &mut self,
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<Position>, LogError> {
        let rename = &self.rename;
        let outputs = outputs.into_iter().map(|r| rename.out_record(r)).collect();
        let positions = positions.into_iter().map(|(tp, next)| (rename.out_tp(&tp), next)).collect();
        let written = self.inner.commit(outputs, positions).await.map_err(|e| rename.in_error(e))?;
        Ok(written.into_iter().map(|p| self.rename.in_position(p)).collect())
    }

    async fn leave(self: Box<Self>) -> Result<(), LogError> {
        let rename = self.rename.clone();
        self.inner.leave().await.map_err(|e| rename.in_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryLog;
    use crate::log::Headers;

    #[tokio::test]
    async fn two_namespaces_on_one_log_do_not_meet() {
        let shared = MemoryLog::shared();
        let (a, b) = (Namespaced::new(shared.clone(), "a").unwrap(), Namespaced::new(shared.clone(), "b").unwrap());
        for log in [&a, &b] {
            log.create_topic(&TopicSpec::keep("t", 1)).await.expect("created");
        }
        let record = OutRecord {
            topic: Arc::from("t"),
            partition: None,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Headers::new(),
            timestamp: None,
        };
        let written = a.append(vec![record]).await.expect("appended");
        assert_eq!(&*written[0].topic, "t");
        assert_eq!(shared.end_offset(&TopicPartition::new("a.t", 0)).await.expect("end"), 1);
        assert_eq!(b.end_offset(&TopicPartition::new("t", 0)).await.expect("end"), 0);
        let read = a.read(&TopicPartition::new("t", 0), 0, 10).await.expect("read");
        assert_eq!(&*read[0].topic, "t");
    }

    #[tokio::test]
    async fn errors_name_topics_and_groups_as_the_caller_does() {
        let log = Namespaced::new(MemoryLog::shared(), "tenant").unwrap();
        log.create_topic(&TopicSpec::keep("t", 1)).await.expect("created");
        let unknown = log.read(&TopicPartition::new("missing", 0), 0, 1).await;
        assert!(matches!(&unknown, Err(LogError::UnknownTopic(topic)) if topic == "missing"), "{unknown:?}");
        let partition = log.read(&TopicPartition::new("t", 5), 0, 1).await;
        assert!(matches!(&partition, Err(LogError::UnknownPartition { topic, .. }) if topic == "t"), "{partition:?}");
        let count = log.create_topic(&TopicSpec::keep("t", 2)).await;
        assert!(matches!(&count, Err(LogError::PartitionMismatch { topic, .. }) if topic == "t"), "{count:?}");
        let cleanup = log.create_topic(&TopicSpec::compact("t", 1)).await;
        assert!(matches!(&cleanup, Err(LogError::CleanupMismatch { topic, .. }) if topic == "t"), "{cleanup:?}");
        let fenced = log.rename.in_error(LogError::Fenced { group: "tenant.g".into(), reason: "gone".into() });
        assert!(matches!(&fenced, LogError::Fenced { group, .. } if group == "g"), "{fenced:?}");
        let no_topics = log.join("g", &[], StartFrom::Beginning).await.err();
        assert!(matches!(&no_topics, Some(LogError::NoTopics { group }) if group == "g"), "{no_topics:?}");
        // A name outside the namespace (a backend's own) is left as it is.
        let other = log.rename.in_error(LogError::UnknownTopic("other.t".into()));
        assert!(matches!(&other, LogError::UnknownTopic(topic) if topic == "other.t"), "{other:?}");
    }

    #[test]
    fn a_namespace_ends_at_its_first_dot() {
        let shared = MemoryLog::shared();
        for name in ["staging", "test-0193", "tenant_7"] {
            assert!(Namespaced::new(shared.clone(), name).is_ok(), "{name}");
        }
        // `a` + `b.t` and `a.b` + `t` would both be `a.b.t`.
        for name in ["a.b", "", "a b", "é", "a/b"] {
            assert_eq!(Namespaced::new(shared.clone(), name).err(), Some(InvalidNamespace(name.into())), "{name}");
        }
    }
}
