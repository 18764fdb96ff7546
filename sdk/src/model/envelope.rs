//! A message with its metadata: id, time, version, correlation and causation, and where it sits
//! on the log.

use std::ops::Deref;
use std::sync::Arc;

use jiff::Timestamp;
use uuid::Uuid;

use super::Message;

/// Where a record sits on the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition within the topic.
    pub partition: u32,
    /// The record's offset within the partition.
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// A message (event or command) with its metadata. Dereferences to the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<M> {
    /// The message's unique id (UUIDv7): the CloudEvents `id`, and the idempotency key for side
    /// effects performed in reaction to it.
    pub id: Uuid,
    /// When it happened (event time).
    pub time: Timestamp,
    /// The schema version it was written with.
    pub version: u32,
    /// The id shared by every message of one business flow (the first message's id).
    pub correlation_id: Uuid,
    /// The id of the message that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// Where it was read from; `None` for a message not yet on the log.
    pub position: Option<Position>,
    /// The message itself.
    pub payload: M,
}

impl<M: Message> Envelope<M> {
    /// A new envelope that starts a flow: fresh id, correlation id = its own id.
    pub fn new(payload: M, time: Timestamp) -> Self {
        let id = Uuid::now_v7();
        Envelope { id, time, version: M::VERSION, correlation_id: id, causation_id: None, position: None, payload }
    }

    /// A new envelope caused by another message: same correlation id, causation = its id.
    pub fn caused_by<C>(payload: M, cause: &Envelope<C>, time: Timestamp) -> Self {
        Envelope::new(payload, time).in_flow_of(cause)
    }

    /// Makes this message part of the flow of `cause`: its correlation id, caused by its id.
    pub fn in_flow_of<C>(mut self, cause: &Envelope<C>) -> Self {
        self.correlation_id = cause.correlation_id;
        self.causation_id = Some(cause.id);
        self
    }

    /// Sets the id, for a message whose id derives from something stable (a command that must
    /// be recognised when repeated). A message that starts a flow is its own correlation id.
    pub fn with_id(mut self, id: Uuid) -> Self {
        if self.causation_id.is_none() {
            self.correlation_id = id;
        }
        self.id = id;
        self
    }
}

impl<M> Deref for Envelope<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.payload
    }
}
