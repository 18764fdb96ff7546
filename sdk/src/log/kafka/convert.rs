//! Conversions between tramline's records and librdkafka's messages, and error mapping.
//!
//! Headers are converted in exactly two places, [`headers_to_kafka`] and [`RecordBatch::push`],
//! so a change of the record's header type is a one-place edit.

use std::collections::VecDeque;
use std::fmt::Display;
use std::ops::Range;
use std::sync::Arc;

use bytes::BytesMut;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header as KafkaHeader, Headers as KafkaHeaders, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};

use super::Producer;
use crate::log::{Headers, LogError, OutRecord, Record};

/// tramline -> Kafka: the headers of a record to write, in order (duplicates kept); `None` when
/// there are none.
pub(super) fn headers_to_kafka(record: &OutRecord) -> Option<OwnedHeaders> {
    if record.headers.is_empty() {
        return None;
    }
    let headers = record
        .headers
        .iter()
        .fold(OwnedHeaders::new_with_capacity(record.headers.len()), |headers, (key, value)| {
            headers.insert(KafkaHeader { key, value: Some(value) })
        });
    Some(headers)
}

/// Records read from Kafka, their keys, values and headers copied into one buffer as they come:
/// one allocation per poll instead of up to three per record. A record kept after the others
/// are dropped keeps the buffer of its whole poll alive (at most `max` records of the poll).
#[derive(Default)]
pub(super) struct RecordBatch {
    buffer: BytesMut,
    records: Vec<Copied>,
}

/// A record whose bytes sit in its batch's buffer.
struct Copied {
    topic: Arc<str>,
    partition: u32,
    offset: u64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
    timestamp: i64,
}

impl RecordBatch {
    /// Copies the message read from `topic` (the caller's shared name of the message's topic).
    pub(super) fn push(&mut self, message: &BorrowedMessage<'_>, topic: Arc<str>) {
        let at = (topic, message.partition() as u32, message.offset() as u64);
        // A null header value reads as an empty one (tramline's headers always have a value).
        let headers = message.headers().into_iter().flat_map(|headers| headers.iter());
        let fields = headers.map(|h| (h.key, h.value.unwrap_or_default()));
        let timestamp = message.timestamp().to_millis().unwrap_or_default();
        self.push_parts(at, message.key(), message.payload(), fields, timestamp);
    }

    fn push_parts<'a>(
        &mut self,
        (topic, partition, offset): (Arc<str>, u32, u64),
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl Iterator<Item = (&'a str, &'a [u8])>,
        timestamp: i64,
    ) {
        if self.records.is_empty() {
            self.buffer.reserve(64 * 1024);
            self.records.reserve(256);
        }
        let buffer = &mut self.buffer;
        let mut copy = |bytes: &[u8]| {
            let start = buffer.len();
            buffer.extend_from_slice(bytes);
            start..buffer.len()
        };
        let key = key.map(&mut copy);
        let value = value.map(&mut copy);
        let start = self.buffer.len();
        Headers::encode_into(&mut self.buffer, headers);
        let headers = start..self.buffer.len();
        self.records.push(Copied { topic, partition, offset, key, value, headers, timestamp });
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Where each record comes from: topic, partition and offset, in the batch's order.
    pub(super) fn origins(&self) -> impl Iterator<Item = (&Arc<str>, u32, u64)> {
        self.records.iter().map(|r| (&r.topic, r.partition, r.offset))
    }

    /// Drops the records of one partition (their bytes stay in the buffer until it is freed).
    pub(super) fn drop_partition(&mut self, topic: &str, partition: u32) {
        self.records.retain(|r| !(r.partition == partition && &*r.topic == topic));
    }

    /// Splits off the records after the first `at`, with their bytes, into a batch of their
    /// own (a record's bytes follow those of the records before it, headers last).
    pub(super) fn split_off(&mut self, at: usize) -> RecordBatch {
        let Some(last) = at.checked_sub(1).and_then(|i| self.records.get(i)) else {
            return std::mem::take(self);
        };
        let cut = last.headers.end;
        let rebase = |range: Range<usize>| range.start - cut..range.end - cut;
        let records = (self.records.split_off(at).into_iter())
            .map(|r| Copied { key: r.key.map(rebase), value: r.value.map(rebase), headers: rebase(r.headers), ..r })
            .collect();
        RecordBatch { buffer: self.buffer.split_off(cut), records }
    }

    pub(super) fn clear(&mut self) {
        self.records.clear();
        self.buffer.clear();
    }

    /// The records, sharing the batch's buffer.
    pub(super) fn into_records(self) -> Vec<Record> {
        let buffer = self.buffer.freeze();
        let slice = |range: Range<usize>| buffer.slice(range);
        self.records
            .into_iter()
            .map(|r| Record {
                topic: r.topic,
                partition: r.partition,
                offset: r.offset,
                key: r.key.map(slice),
                value: r.value.map(slice),
                headers: match r.headers.is_empty() {
                    true => Headers::new(),
                    false => Headers::from_encoded_unchecked(buffer.slice(r.headers)),
                },
                timestamp: r.timestamp,
            })
            .collect()
    }
}

/// The message to produce for a record. Without an explicit partition, the producer's
/// partitioner (`murmur2_random`: Java's for keyed records) picks it.
pub(super) fn future_record(record: &OutRecord) -> FutureRecord<'_, [u8], [u8]> {
    let mut out = FutureRecord::to(&record.topic);
    if let Some(partition) = record.partition {
        out = out.partition(partition as i32);
    }
    if let Some(key) = &record.key {
        out = out.key(key.as_ref());
    }
    if let Some(value) = &record.value {
        out = out.payload(value.as_ref());
    }
    if let Some(timestamp) = record.timestamp {
        out = out.timestamp(timestamp);
    }
    if let Some(headers) = headers_to_kafka(record) {
        out = out.headers(headers);
    }
    out
}

/// A backend error: what was being done, and librdkafka's reason.
pub(super) fn backend(what: impl Display, error: impl Display) -> LogError {
    LogError::Backend(format!("kafka: {what}: {error}"))
}

/// The error for `record`, which Kafka refused as larger than it accepts.
pub(super) fn too_large(record: &OutRecord, error: &KafkaError) -> LogError {
    let size = record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + record.headers.encoded().len();
    LogError::TooLarge {
        topic: record.topic.to_string(),
        reason: format!(
            "about {size} bytes with key and headers ({error}; the broker's `message.max.bytes`, the topic's \
             `max.message.bytes` and the client's `message.max.bytes` set the limit)"
        ),
    }
}

/// Whether a librdkafka error says the local queue is full (retry after some deliveries).
pub(super) fn is_queue_full(error: &KafkaError) -> bool {
    matches!(error, KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull))
}

/// What librdkafka reports for one produced record.
pub(super) type DeliveryResult = <DeliveryFuture as std::future::Future>::Output;

/// Sends `records` in order, keeping them all in flight; when librdkafka's queue is full, waits
/// for the oldest delivery and tries again. Returns every record's delivery report (`None` for
/// records not sent) and the first record librdkafka refused, if any (sending stops there).
pub(super) async fn send_all(
    producer: &Producer,
    records: &[OutRecord],
) -> (Vec<Option<DeliveryResult>>, Option<(usize, KafkaError)>) {
    let mut results: Vec<Option<DeliveryResult>> = (0..records.len()).map(|_| None).collect();
    let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
    let mut refused = None;
    'records: for (index, record) in records.iter().enumerate() {
        let mut message = future_record(record);
        loop {
            match producer.send_result(message) {
                Ok(delivery) => {
                    pending.push_back((index, delivery));
                    break;
                }
                Err((error, back)) if is_queue_full(&error) && !pending.is_empty() => {
                    message = back;
                    let (done, delivery) = pending.pop_front().expect("not empty");
                    results[done] = Some(delivery.await);
                }
                Err((error, _)) => {
                    refused = Some((index, error));
                    break 'records;
                }
            }
        }
    }
    for (index, delivery) in pending {
        results[index] = Some(delivery.await);
    }
    (results, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_batch_keeps_every_record_whole() {
        let topic: Arc<str> = Arc::from("t");
        let mut batch = RecordBatch::default();
        for offset in 0..5u64 {
            let (key, value) = (format!("k{offset}"), format!("value {offset}"));
            let headers = [("ce_id", key.as_bytes())];
            let value = (offset != 2).then_some(value.as_bytes());
            batch.push_parts((topic.clone(), 0, offset), Some(key.as_bytes()), value, headers.into_iter(), 7);
        }
        let rest = batch.split_off(3);
        let (first, rest) = (batch.into_records(), rest.into_records());
        assert_eq!(first.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rest.iter().map(|r| r.offset).collect::<Vec<_>>(), [3, 4]);
        for record in first.iter().chain(&rest) {
            let key = format!("k{}", record.offset);
            assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
            assert_eq!(record.header("ce_id"), Some(key.as_bytes()));
            let value = format!("value {}", record.offset);
            assert_eq!(record.value.as_deref(), (record.offset != 2).then_some(value.as_bytes()));
        }
        let mut none = RecordBatch::default();
        none.push_parts((topic, 0, 9), None, None, std::iter::empty(), 0);
        assert_eq!(none.split_off(0).into_records().len(), 1, "split at 0 takes everything");
        assert!(none.into_records().is_empty());
    }
}
