//! Data modules in other processes: commands travel on the log as always, and their outcomes come
//! back on `<module>.replies`.
//!
//! A gateway marks each command with the topic to answer on ([`REPLY_TO`]), also when the module
//! runs in its own process: another instance of the module, in another process, may own the
//! command's partition. Once its atomic write is committed, the instance that owns it answers a
//! caller of its own process in memory and publishes the outcome for any other on the reply
//! topic, keyed by the command id; a [`ReplyListener`] in the caller's process hands it to the
//! caller waiting for that id. Commands nobody waits for (a reaction's) carry no reply topic, so
//! a module in one process publishes nothing there. A reply lost in a crash between the commit
//! and the publication is never lost work: the caller times out and sends the same command
//! again, which the module recognises by its id and answers as a duplicate.
//!
//! A command may also carry positions ([`AFTER`]): the module decides it only once its own
//! projections have read them, so that a command caused by another module's events is decided on
//! a read model that has seen those events, wherever the two modules run.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::gateway::{Accepted, CommandError, Outcome, Replies};
use super::processor::Processor;
use crate::log::{GroupMember, Headers, OutRecord, Record, StartFrom, TopicPartition};
use crate::model::{Aggregate, Envelope, Position};

/// The header naming the topic a command's outcome is published on.
pub(crate) const REPLY_TO: &str = "tramline_replyto";
/// The header listing the positions the module's projections must have read before it decides
/// the command (`topic/partition@offset`, comma-separated).
pub(crate) const AFTER: &str = "tramline_after";

/// The topic where a module publishes the outcomes of commands sent from other processes.
pub(crate) fn replies_topic(module: &str) -> &'static str {
    intern(format!("{module}.replies"))
}

/// A topic name that lives as long as the program; there is one per module, so few.
fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
    match names.get(name.as_str()) {
        Some(name) => name,
        None => {
            let name: &'static str = name.leak();
            names.insert(name);
            name
        }
    }
}

/// Adds the reply topic and the positions to wait for to a command record.
pub(crate) fn mark(mut record: OutRecord, reply_to: &str, after: &[Position]) -> OutRecord {
    let mut headers = record.headers.to_builder(64 + after.len() * 32);
    headers.push(REPLY_TO, reply_to.as_bytes());
    if !after.is_empty() {
        let list: Vec<String> = after.iter().map(Position::to_string).collect();
        headers.push(AFTER, list.join(",").as_bytes());
    }
    record.headers = headers.build();
    record
}

/// The positions a command asks to wait for; unreadable entries are skipped (the command is then
/// decided at once, as one without the header).
pub(crate) fn after_of(record: &Record) -> Vec<Position> {
    let Some(list) = record.header(AFTER).and_then(|v| std::str::from_utf8(v).ok()) else {
        return Vec::new();
    };
    list.split(',')
        .filter_map(|entry| {
            let (rest, offset) = entry.rsplit_once('@')?;
            let (topic, partition) = rest.rsplit_once('/')?;
            Some(Position { topic: Arc::from(topic), partition: partition.parse().ok()?, offset: offset.parse().ok()? })
        })
        .collect()
}

/// Sets `reply_to` to the reply topic a command names, where its outcome goes if its caller
/// does not wait in the deciding process; `None` for a command nobody waits for. The topic of
/// the command before is kept when it is the same (every command names one: no allocation per
/// command).
pub(crate) fn read_reply_to(record: &Record, reply_to: &mut Option<Arc<str>>) {
    let named = record.header(REPLY_TO).and_then(|v| std::str::from_utf8(v).ok());
    if reply_to.as_deref() != named {
        *reply_to = named.map(Arc::from);
    }
}

/// An outcome as published on `<module>.replies`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[serde(bound(serialize = "E: Serialize, R: Serialize", deserialize = "E: DeserializeOwned, R: DeserializeOwned"))]
pub(crate) enum Reply<E, R> {
    Accepted { events: Vec<ReplyEvent<E>>, duplicate: bool },
    Rejected { error: R },
    Failed { reason: String },
    NotCaughtUp { reason: String },
}

/// An event of an accepted command, with where it was written.
#[derive(Serialize, Deserialize)]
pub(crate) struct ReplyEvent<E> {
    id: Uuid,
    time: Timestamp,
    version: u32,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    position: Option<(String, u32, u64)>,
    payload: E,
}

impl<E: Clone> From<&Envelope<E>> for ReplyEvent<E> {
    fn from(e: &Envelope<E>) -> Self {
        ReplyEvent {
            id: e.id,
            time: e.time,
            version: e.version,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            position: e.position.as_ref().map(|p| (p.topic.to_string(), p.partition, p.offset)),
            payload: e.payload.clone(),
        }
    }
}

impl<E> From<ReplyEvent<E>> for Envelope<E> {
    fn from(e: ReplyEvent<E>) -> Self {
        Envelope {
            id: e.id,
            time: e.time,
            version: e.version,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            position: e.position.map(|(topic, partition, offset)| Position {
                topic: Arc::from(topic),
                partition,
                offset,
            }),
            payload: e.payload,
        }
    }
}

/// The record that carries `reply` for command `id` to `topic`.
pub(crate) fn reply_record<E: Serialize, R: Serialize>(topic: Arc<str>, id: Uuid, reply: &Reply<E, R>) -> OutRecord {
    let value =
        serde_json::to_vec(reply).unwrap_or_else(|error| panic!("cannot serialise the outcome of {id}: {error}"));
    OutRecord {
        topic,
        partition: None,
        key: Some(id.to_string().into_bytes().into()),
        value: Some(value.into()),
        headers: Headers::new(),
        timestamp: None,
    }
}

/// Hands the outcomes published on a module's reply topic to the callers of this process.
pub(crate) struct ReplyListener<A: Aggregate> {
    group: String,
    topic: &'static str,
    replies: Arc<Replies<A>>,
}

impl<A: Aggregate> ReplyListener<A> {
    pub(crate) fn new(group: String, topic: &'static str, replies: Arc<Replies<A>>) -> Self {
        ReplyListener { group, topic, replies }
    }

    fn deliver(&self, record: &Record) -> Result<(), String> {
        let id: Uuid = record.key_text().parse().map_err(|e| format!("key is not a command id: {e}"))?;
        let value = record.value.as_deref().ok_or("no value")?;
        let reply: Reply<A::Event, A::Error> = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        self.replies.reply(&id, || -> Outcome<A> {
            match reply {
                Reply::Accepted { events, duplicate } => {
                    Ok(Accepted { events: events.into_iter().map(Envelope::from).collect(), duplicate })
                }
                Reply::Rejected { error } => Err(CommandError::Rejected(error)),
                Reply::Failed { reason } => Err(CommandError::Failed { id, reason }),
                Reply::NotCaughtUp { reason } => Err(CommandError::NotCaughtUp { id, reason }),
            }
        });
        Ok(())
    }
}

impl<A: Aggregate> Drop for ReplyListener<A> {
    fn drop(&mut self) {
        // Nobody will hear the outcomes any more: callers waiting learn it now.
        self.replies.close();
    }
}

impl<A: Aggregate> Processor for ReplyListener<A> {
    fn group(&self) -> &str {
        &self.group
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![self.topic]
    }

    /// Only outcomes of commands sent from now on concern this process.
    fn start(&self) -> StartFrom {
        StartFrom::End
    }

    fn positions_to_commit(&self, _: &[(TopicPartition, u64)], _: &dyn GroupMember) -> Vec<(TopicPartition, u64)> {
        Vec::new()
    }

    fn one_off_group(&self) -> bool {
        true
    }

    async fn process(&mut self, records: &[Record], _outputs: &mut Vec<OutRecord>) {
        for record in records {
            if let Err(reason) = self.deliver(record) {
                // Not this process's data to dead-letter: the caller, if any, times out.
                tracing::warn!(topic = self.topic, position = %crate::codec::position_of(record), reason, "unreadable reply");
            }
        }
    }
}
