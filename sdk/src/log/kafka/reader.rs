//! [`EventLog::read`](crate::log::EventLog::read): a pool of consumers without a group, each
//! `assign`ed to the partition it reads and left there, so that the next page of a sequential
//! read (a restore) continues from what is already fetched instead of seeking again.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::convert::{RecordBatch, backend};
use super::logs::ClientLogs;
use super::{IDLE_READERS, Inner, PlainConsumer, client_config, client_error, lock};
use crate::log::{LogError, Record, TopicPartition};

/// How long one wait for a record lasts before the reader checks whether it reached the end.
const WAIT: Duration = Duration::from_millis(10);

/// A consumer used for reads, and where it will read next.
pub(super) struct Reader {
    consumer: PlainConsumer,
    /// The partition it is assigned to and the offset of the next record it will deliver.
    at: Option<(TopicPartition, u64)>,
}

impl Inner {
    /// Reads up to `max` committed records of `tp` from `offset` on, blocking the calling thread.
    pub(super) fn read(&self, tp: &TopicPartition, offset: u64, max: usize) -> Result<Vec<Record>, LogError> {
        let end = self.high_watermark(tp)?;
        // Markers and aborted records known to follow `offset` are not fetched again.
        let skipped = lock(&self.skipped).get(tp).and_then(|&(from, to)| (from == offset).then_some(to));
        let start = skipped.unwrap_or(offset);
        if start >= end {
            return Ok(Vec::new());
        }
        let mut reader = self.take_reader(tp, start)?;
        let records = reader.read(tp, start, max, end, self.config.read_timeout, self.config.request_timeout)?;
        if records.is_empty()
            && let Some(to) = reader.position(tp).filter(|to| *to > start)
        {
            lock(&self.skipped).insert(tp.clone(), (offset, to));
        }
        let mut idle = lock(&self.readers);
        if idle.len() < IDLE_READERS {
            idle.push(reader);
        }
        Ok(records)
    }

    /// An idle reader, preferably one already positioned at `offset` of `tp`.
    fn take_reader(&self, tp: &TopicPartition, offset: u64) -> Result<Reader, LogError> {
        {
            let mut idle = lock(&self.readers);
            let positioned = idle.iter().position(|r| r.at.as_ref().is_some_and(|(t, o)| t == tp && *o == offset));
            if let Some(index) = positioned.or_else(|| idle.len().checked_sub(1)) {
                return Ok(idle.swap_remove(index));
            }
        }
        // A fetch waits at most 25 ms for records: a read that finds only a transaction marker
        // before the end returns after about one such wait (measured: 20-75 ms). Before the log
        // remembered skipped markers, every export batch paid it, and the platform's chain on
        // Kafka ran at 2,300 orders/s with librdkafka's 100 ms, at 3,600-4,200 with 25 ms.
        let consumer: PlainConsumer = client_config(
            &self.config,
            "reader",
            &[("fetch.wait.max.ms", "25"), ("fetch.queue.backoff.ms", "10")],
            &[
                // librdkafka's `assign` needs a group; this one is never joined nor committed to.
                ("group.id", "tramline.reader"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "false"),
                ("isolation.level", "read_committed"),
                ("auto.offset.reset", "earliest"),
            ],
        )
        .create_with_context(ClientLogs)
        .map_err(|e| client_error(&self.config, "reader", e))?;
        Ok(Reader { consumer, at: None })
    }
}

impl Reader {
    /// Reads `tp` from `offset` up to `max` records, stopping at `end` (the high watermark when the
    /// read started). Returns at once what is already fetched once it has a record; with none,
    /// waits until a record comes or the consumer's position passes `end` (only transaction
    /// markers and aborted records were left), at most `timeout`.
    fn read(
        &mut self,
        tp: &TopicPartition,
        offset: u64,
        max: usize,
        end: u64,
        timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Vec<Record>, LogError> {
        let positioned = self.at.as_ref().is_some_and(|(t, o)| t == tp && *o == offset);
        if !positioned {
            self.at = None;
            let mut tpl = TopicPartitionList::with_capacity(1);
            tpl.add_partition_offset(&tp.topic, tp.partition as i32, Offset::Offset(offset as i64))
                .and_then(|()| self.consumer.assign(&tpl))
                .map_err(|e| backend(format_args!("read of {tp} from offset {offset}: assign"), e))?;
        } else if self.position(tp).is_some_and(|p| p >= end) {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + timeout;
        let mut records = RecordBatch::default();
        // Where the records read stop; the reader is positioned there once they are returned.
        let mut next = offset;
        loop {
            let wait = match records.is_empty() {
                true => deadline.saturating_duration_since(Instant::now()).min(WAIT),
                false => Duration::ZERO,
            };
            match self.consumer.poll(wait) {
                Some(Ok(message)) => {
                    let after = message.offset() as u64 + 1;
                    if message.topic() != &*tp.topic || message.partition() != tp.partition as i32 || after <= offset {
                        continue;
                    }
                    records.push(&message, tp.topic.clone());
                    next = after;
                    if records.len() >= max || next >= end {
                        self.at = Some((tp.clone(), next));
                        return Ok(records.into_records());
                    }
                    continue;
                }
                Some(Err(error)) => {
                    // librdkafka recovers from transient errors by itself; they only delay the read.
                    tracing::debug!(%tp, %error, "kafka: reader error");
                    if matches!(error, rdkafka::error::KafkaError::MessageConsumptionFatal(_)) {
                        self.at = None;
                        return Err(backend(format_args!("read of {tp} from offset {offset}"), error));
                    }
                }
                None => {}
            }
            if !records.is_empty() {
                self.at = Some((tp.clone(), next));
                return Ok(records.into_records());
            }
            if let Some(reached) = self.position(tp).filter(|p| *p >= end) {
                // Past every marker and aborted record before the end: nothing more to read. The
                // reader is positioned where it stopped, where the next read starts (`skipped`).
                self.at = Some((tp.clone(), reached));
                return Ok(Vec::new());
            }
            if Instant::now() >= deadline {
                self.at = None;
                let stable = self.consumer.fetch_watermarks(&tp.topic, tp.partition as i32, request_timeout);
                let stable = stable.map_or_else(|e| format!("unknown ({e})"), |(_, lso)| lso.to_string());
                return Err(LogError::Backend(format!(
                    "kafka: read of {tp} from offset {offset}: no committed record came within {timeout:?} although \
                     the high watermark is {end}; the last stable offset is {stable}, so a transaction on the \
                     partition stays open: a producer that died and was not restarted with the same instance id \
                     is aborted after its transaction timeout, but one that a restarting broker aborted while the \
                     partition had no leader hangs until it is aborted by hand (`kafka-transactions.sh \
                     describe-producers --topic T --partition P`, then `abort`)"
                )));
            }
        }
    }

    /// The consumer's position on `tp`: after the last record or transaction marker it passed.
    fn position(&self, tp: &TopicPartition) -> Option<u64> {
        let positions = self.consumer.position().ok()?;
        match positions.find_partition(&tp.topic, tp.partition as i32)?.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset as u64),
            _ => None,
        }
    }
}
