//! Conversions between tramline's records and librdkafka's messages, and error mapping.
//!
//! Headers are converted in exactly two functions, [`headers_to_kafka`] and
//! [`headers_from_kafka`], so a change of the record's header type is a one-place edit.

use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::Arc;

use bytes::Bytes;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header as KafkaHeader, Headers as KafkaHeaders, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

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

/// Kafka -> tramline: the headers of a record read, in order. A null header value reads as an
/// empty one (tramline's headers always have a value).
pub(super) fn headers_from_kafka<H: KafkaHeaders>(headers: Option<&H>) -> Headers {
    match headers {
        None => Headers::new(),
        Some(headers) => {
            let size: usize = headers.iter().map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 8).sum();
            let mut builder = Headers::builder(size);
            for header in headers.iter() {
                builder.push(header.key, header.value.unwrap_or_default());
            }
            builder.build()
        }
    }
}

/// The record of a message read from `topic` (the caller's shared name of the message's topic).
pub(super) fn record_from_message(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Record {
    Record {
        topic,
        partition: message.partition() as u32,
        offset: message.offset() as u64,
        key: message.key().map(Bytes::copy_from_slice),
        value: message.payload().map(Bytes::copy_from_slice),
        headers: headers_from_kafka(message.headers()),
        timestamp: message.timestamp().to_millis().unwrap_or_default(),
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
    producer: &FutureProducer,
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
