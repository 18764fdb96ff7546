//! A memory log with the faults a test chooses, shared by the runtime's fault suites.
// Each suite uses some of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tramline::MemoryLog;
use tramline::log::{EventLog, GroupMember, LogError, OutRecord, Polled, Record, StartFrom, TopicPartition, TopicSpec};
use tramline::model::Position;

/// Whether deleting a topic (or a group) fails, and how.
pub type TopicFault = Box<dyn Fn(&str) -> Option<LogError> + Send + Sync>;

/// Whether a write (outputs and positions) fails, and how.
pub type WriteFault = Box<dyn Fn(&[OutRecord], &[(TopicPartition, u64)]) -> Option<LogError> + Send + Sync>;

/// A memory log whose appends, and whose members' commits and rewinds, fail as the test says;
/// everything else goes to the memory log.
pub struct FaultyLog {
    pub log: Arc<MemoryLog>,
    /// Fails `append` (the positions are empty).
    pub append: Option<WriteFault>,
    /// The groups whose members get `commit` and `rewind` faults (all when `None`).
    pub groups: Option<Vec<&'static str>>,
    /// Fails a member's `commit`.
    pub commit: Option<Arc<WriteFault>>,
    /// Fails a member's `rewind`.
    pub rewind: Option<LogError>,
    /// Fails `end_offset`.
    pub end_offset: Option<Box<dyn Fn() -> Option<LogError> + Send + Sync>>,
    /// Fails `delete_topic` of the topics it answers for.
    pub delete_topic: Option<TopicFault>,
    /// Fails `delete_group` of the groups it answers for.
    pub delete_group: Option<TopicFault>,
}

impl FaultyLog {
    /// A log without faults yet.
    pub fn over(log: Arc<MemoryLog>) -> Self {
        FaultyLog {
            log,
            append: None,
            groups: None,
            commit: None,
            rewind: None,
            end_offset: None,
            delete_topic: None,
            delete_group: None,
        }
    }

    /// `append` fails as `fault` says.
    pub fn append_fails(mut self, fault: impl Fn(&[OutRecord]) -> Option<LogError> + Send + Sync + 'static) -> Self {
        self.append = Some(Box::new(move |outputs, _| fault(outputs)));
        self
    }

    /// The members' `commit` fails as `fault` says.
    pub fn commit_fails(
        mut self,
        fault: impl Fn(&[OutRecord], &[(TopicPartition, u64)]) -> Option<LogError> + Send + Sync + 'static,
    ) -> Self {
        self.commit = Some(Arc::new(Box::new(fault)));
        self
    }

    /// The members' `rewind` always fails with `error`.
    pub fn rewind_fails(mut self, error: LogError) -> Self {
        self.rewind = Some(error);
        self
    }

    /// `end_offset` fails as `fault` says.
    pub fn end_offset_fails(mut self, fault: impl Fn() -> Option<LogError> + Send + Sync + 'static) -> Self {
        self.end_offset = Some(Box::new(fault));
        self
    }

    /// `delete_topic` fails as `fault` says.
    pub fn delete_topic_fails(mut self, fault: impl Fn(&str) -> Option<LogError> + Send + Sync + 'static) -> Self {
        self.delete_topic = Some(Box::new(fault));
        self
    }

    /// `delete_group` fails as `fault` says.
    pub fn delete_group_fails(mut self, fault: impl Fn(&str) -> Option<LogError> + Send + Sync + 'static) -> Self {
        self.delete_group = Some(Box::new(fault));
        self
    }

    /// Only the members of `group` get the member faults.
    pub fn of_group(mut self, group: &'static str) -> Self {
        self.groups.get_or_insert_with(Vec::new).push(group);
        self
    }
}

/// A member whose writes and rewinds fail as its log says.
struct FaultyMember {
    member: Box<dyn GroupMember>,
    commit: Option<Arc<WriteFault>>,
    rewind: Option<LogError>,
}

/// A copy of an error to return again (`LogError` is not `Clone`).
fn again(error: &LogError) -> LogError {
    LogError::Backend(error.to_string())
}

#[async_trait::async_trait]
impl EventLog for FaultyLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        self.log.create_topic(spec).await
    }
    async fn partition_count(&self, topic: &str) -> Result<Option<u32>, LogError> {
        self.log.partition_count(topic).await
    }
    async fn append(&self, records: Vec<OutRecord>) -> Result<Vec<Position>, LogError> {
        match self.append.as_ref().and_then(|fault| fault(&records, &[])) {
            Some(error) => Err(error),
            None => self.log.append(records).await,
        }
    }
    async fn read(&self, partition: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError> {
        self.log.read(partition, offset, max).await
    }
    async fn end_offset(&self, partition: &TopicPartition) -> Result<u64, LogError> {
        match self.end_offset.as_ref().and_then(|fault| fault()) {
            Some(error) => Err(error),
            None => self.log.end_offset(partition).await,
        }
    }
    async fn committed(&self, group: &str, partition: &TopicPartition) -> Result<Option<u64>, LogError> {
        self.log.committed(group, partition).await
    }
    async fn delete_before(&self, partition: &TopicPartition, offset: u64) -> Result<(), LogError> {
        self.log.delete_before(partition, offset).await
    }
    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        match self.delete_topic.as_ref().and_then(|fault| fault(topic)) {
            Some(error) => Err(error),
            None => self.log.delete_topic(topic).await,
        }
    }
    async fn delete_group(&self, group: &str) -> Result<(), LogError> {
        match self.delete_group.as_ref().and_then(|fault| fault(group)) {
            Some(error) => Err(error),
            None => self.log.delete_group(group).await,
        }
    }
    async fn join(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<Box<dyn GroupMember>, LogError> {
        let member = self.log.join(group, topics, start).await?;
        let faulty = self.groups.as_ref().is_none_or(|groups| groups.contains(&group));
        Ok(match faulty && (self.commit.is_some() || self.rewind.is_some()) {
            true => {
                Box::new(FaultyMember { member, commit: self.commit.clone(), rewind: self.rewind.as_ref().map(again) })
            }
            false => member,
        })
    }
}

#[async_trait::async_trait]
impl GroupMember for FaultyMember {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled, LogError> {
        self.member.poll(max, timeout).await
    }
    fn assignment(&self) -> Vec<TopicPartition> {
        self.member.assignment()
    }
    fn has_assignment(&self) -> bool {
        self.member.has_assignment()
    }
    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.member.position(partition)
    }
    async fn rewind(&mut self) -> Result<(), LogError> {
        match &self.rewind {
            Some(error) => Err(again(error)),
            None => self.member.rewind().await,
        }
    }
    async fn commit(
        &mut self,
        outputs: Vec<OutRecord>,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<Vec<Position>, LogError> {
        match self.commit.as_ref().and_then(|fault| fault(&outputs, &positions)) {
            Some(error) => Err(error),
            None => self.member.commit(outputs, positions).await,
        }
    }
    async fn leave(self: Box<Self>) -> Result<(), LogError> {
        self.member.leave().await
    }
}
