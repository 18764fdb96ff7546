//! The dead-letter topic `<group>.dlq`: a record a processor could not handle, with the error
//! in its headers. Written in the same atomic write as the input position, so nothing is lost
//! and nothing blocks the partition.

use std::sync::Arc;

use bytes::BytesMut;

use std::collections::HashSet;

use crate::log::{EventLog, Headers, LogError, OutRecord, Record, TopicPartition};

/// Header names on dead letters.
pub mod headers {
    /// What every dead-letter header's name starts with.
    pub const PREFIX: &str = "dlq_";
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
    /// On a letter without the record's value and headers (the whole letter was too large for
    /// the log): how many bytes of them were left out. The record stays at its origin.
    pub const OMITTED: &str = "dlq_omitted";
}

/// The dead-letter topic of a consumer group.
pub fn topic_of(group: &str) -> String {
    format!("{group}.dlq")
}

/// A dead letter for `record`, for the topic `dlq`: its key, value and headers, plus the error,
/// the processor (`group`) and the record's origin in `dlq_*` headers. Processors outside the
/// runtime (a partner's consumer) write their letters with it too.
pub fn letter(dlq: &Arc<str>, group: &str, record: &Record, error: &dyn std::fmt::Display) -> OutRecord {
    // A record that was a letter itself (copied back to its topic to be tried again) is
    // lettered afresh: the old letter's headers go, so that readers find this failure's.
    let mut headers = Headers::builder(record.headers.encoded().len() + 160);
    for (name, value) in record.headers.iter().filter(|(name, _)| !name.starts_with(headers::PREFIX)) {
        headers.push(name, value);
    }
    headers.push_with(headers::ERROR, |b| write(b, error));
    headers.push(headers::PROCESSOR, group.as_bytes());
    headers.push(headers::TOPIC, record.topic.as_bytes());
    headers.push_with(headers::PARTITION, |b| write(b, &record.partition));
    headers.push_with(headers::OFFSET, |b| write(b, &record.offset));
    tracing::warn!(group, topic = %record.topic, partition = record.partition, offset = record.offset, %error, "record dead-lettered");
    OutRecord {
        topic: dlq.clone(),
        partition: None,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: headers.build(),
        timestamp: Some(record.timestamp),
    }
}

/// `letter` without the failed record's value and headers (the `dlq_*` ones stay), for a letter
/// the log refused as too large: the record stays at its origin, which the letter names.
pub(crate) fn without_record(letter: &mut OutRecord) {
    let mut omitted = letter.value.take().map_or(0, |value| value.len());
    let mut kept = Headers::builder(256);
    for (name, value) in letter.headers.iter() {
        if name.starts_with(headers::PREFIX) {
            kept.push(name, value);
        } else {
            omitted += name.len() + value.len();
        }
    }
    kept.push_with(headers::OMITTED, |b| write(b, &omitted));
    letter.headers = kept.build();
}

fn write(buffer: &mut BytesMut, value: &dyn std::fmt::Display) {
    use std::fmt::Write;
    write!(buffer, "{value}").expect("writing to memory cannot fail");
}

/// Where the letters on a dead-letter topic came from: (topic, partition, offset).
pub(crate) async fn origins(log: &dyn EventLog, dead_letters: &str) -> Result<HashSet<(String, u32, u64)>, LogError> {
    let mut origins = HashSet::new();
    read_all(log, dead_letters, |letters| origins.extend(letters.iter().filter_map(origin))).await?;
    Ok(origins)
}

/// How many letters a dead-letter topic holds. Read, not taken from the ends of its partitions:
/// on Kafka those count transaction markers and the letters of aborted writes too.
pub(crate) async fn count(log: &dyn EventLog, dead_letters: &str) -> Result<u64, LogError> {
    let mut count = 0;
    read_all(log, dead_letters, |letters| count += letters.len() as u64).await?;
    Ok(count)
}

/// Hands every page of the topic's (committed) records to `page`.
pub(crate) async fn read_all(log: &dyn EventLog, topic: &str, mut page: impl FnMut(&[Record])) -> Result<(), LogError> {
    for partition in 0..log.partition_count(topic).await?.unwrap_or(0) {
        let tp = TopicPartition::new(topic, partition);
        let end = log.end_offset(&tp).await?;
        let mut offset = 0;
        while offset < end {
            let records = log.read(&tp, offset, 1024).await?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            page(&records);
        }
    }
    Ok(())
}

fn origin(letter: &Record) -> Option<(String, u32, u64)> {
    let [topic, partition, offset] = letter.headers.get_all([headers::TOPIC, headers::PARTITION, headers::OFFSET]);
    let text = |value: Option<&[u8]>| std::str::from_utf8(value?).ok().map(str::to_owned);
    Some((text(topic)?, text(partition)?.parse().ok()?, text(offset)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_of_a_letter_carries_only_the_new_failure() {
        let record = |headers: Headers, offset| Record {
            topic: Arc::from("shop.events"),
            partition: 1,
            offset,
            key: None,
            value: None,
            headers,
            timestamp: 0,
        };
        let mut original = Headers::builder(64);
        original.push("ce_type", b"Placed");
        let dlq: Arc<str> = Arc::from("shop.dlq");
        let first = letter(&dlq, "shop", &record(original.build(), 7), &"first failure");
        // Copied back to its topic, it fails again at another offset.
        let second = letter(&dlq, "shop", &record(first.headers, 9), &"second failure");
        let names: Vec<&str> = second.headers.iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            ["ce_type", headers::ERROR, headers::PROCESSOR, headers::TOPIC, headers::PARTITION, headers::OFFSET]
        );
        assert_eq!(second.headers.get(headers::ERROR), Some(&b"second failure"[..]));
        assert_eq!(second.headers.get(headers::OFFSET), Some(&b"9"[..]));
    }
}
