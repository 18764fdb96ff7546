//! The dead-letter topic `<group>.dlq`: a record a processor could not handle, with the error
//! in its headers. Written in the same atomic write as the input position, so nothing is lost
//! and nothing blocks the partition.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use crate::log::{Header, OutRecord, Record};

/// Header names on dead letters.
pub mod headers {
    /// Why the record failed.
    pub const ERROR: &str = "dlq_error";
    /// The processor (consumer group) that failed.
    pub const PROCESSOR: &str = "dlq_processor";
    /// Where the record came from: topic.
    pub const TOPIC: &str = "dlq_topic";
    /// Where the record came from: partition.
    pub const PARTITION: &str = "dlq_partition";
    /// Where the record came from: offset.
    pub const OFFSET: &str = "dlq_offset";
}

/// The dead-letter topic of a consumer group.
pub fn topic_of(group: &str) -> String {
    format!("{group}.dlq")
}

/// A dead letter for `record`: its key, value and headers, plus the error and origin.
pub(crate) fn letter(dlq: &Arc<str>, group: &str, record: &Record, error: &dyn std::fmt::Display) -> OutRecord {
    let mut headers: Vec<Header> = record.headers.iter().cloned().collect();
    let mut add =
        |key: &'static str, value: String| headers.push(Header { key: Cow::Borrowed(key), value: Bytes::from(value) });
    add(headers::ERROR, error.to_string());
    add(headers::PROCESSOR, group.to_owned());
    add(headers::TOPIC, record.topic.to_string());
    add(headers::PARTITION, record.partition.to_string());
    add(headers::OFFSET, record.offset.to_string());
    tracing::warn!(group, topic = %record.topic, partition = record.partition, offset = record.offset, %error, "record dead-lettered");
    OutRecord {
        topic: dlq.clone(),
        partition: None,
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
        timestamp: Some(record.timestamp),
    }
}
