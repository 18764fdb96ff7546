//! Records as the log stores them: bytes, headers, a timestamp, and a position.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use super::Headers;

/// A record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// The offset within the partition.
    pub offset: u64,
    /// The key; records with the same key are on the same partition, in order.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// The headers, in the order written.
    pub headers: Headers,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl Record {
    /// The value of the first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// The key as text, lossily, for messages.
    pub fn key_text(&self) -> Cow<'_, str> {
        match &self.key {
            Some(key) => String::from_utf8_lossy(key),
            None => Cow::Borrowed("<no key>"),
        }
    }
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// An explicit partition; `None` picks the key's partition (murmur2).
    pub partition: Option<u32>,
    /// The key.
    pub key: Option<Bytes>,
    /// The value; `None` writes a tombstone.
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Headers,
    /// Milliseconds since the Unix epoch; `None` takes the time of the append.
    pub timestamp: Option<i64>,
}

impl OutRecord {
    /// The same record directed to an explicit partition.
    pub fn to_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// The value of the first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }
}
