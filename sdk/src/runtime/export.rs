//! The export processor: source events in, public records out (see [`crate::export`]).
//!
//! Before each batch it brings its tables up to the end of their topics; then it maps each
//! record. On the app's own log the public records join the atomic write of the input
//! positions; on another log they are appended there first, retried until the log takes them,
//! and the input positions are committed after. A public record that other log refuses as too
//! large dead-letters the event it came from, as a write to the app's own log does.

use std::sync::Arc;

use tokio::sync::watch;

use super::processor::{Processor, backoff, pause, permanent};
use super::{RuntimeError, Settings, dead_letter};
use crate::export::{Cursors, Export, encode};
use crate::log::{EventLog, LogError, OutRecord, Record, StartFrom, TopicPartition};
use crate::privacy::KeyStore;

/// Records read per table read.
const TABLE_READ: usize = 1024;

pub(crate) struct ExportProcessor<S> {
    export: Export<S>,
    group: String,
    topic: Arc<str>,
    source: String,
    dead_letters: Arc<str>,
    log: Arc<dyn EventLog>,
    keys: KeyStore,
    cursors: Cursors,
    settings: Settings,
    /// A log call that failed for good in `process` (a table's or the feed's topic is gone).
    failure: Option<RuntimeError>,
    /// The app's shutdown, which ends the retries of a log that is away.
    shutdown: Option<watch::Receiver<bool>>,
    /// The batch was given up to shut down.
    gave_up: bool,
}

impl<S: Send + Sync + 'static> ExportProcessor<S> {
    pub(crate) fn new(export: Export<S>, log: Arc<dyn EventLog>, keys: KeyStore, settings: Settings) -> Self {
        let group = export.group();
        ExportProcessor {
            topic: Arc::from(export.topic()),
            source: export.source(),
            dead_letters: Arc::from(dead_letter::topic_of(&group)),
            group,
            export,
            log,
            keys,
            cursors: Cursors::new(),
            settings,
            failure: None,
            shutdown: None,
            gave_up: false,
        }
    }

    /// Folds what the tables' topics gained since the last call.
    async fn refresh_tables(&mut self) -> Result<(), LogError> {
        for table in &self.export.tables {
            let partitions = self.log.partition_count(table.topic).await?.unwrap_or(0);
            for partition in 0..partitions {
                let tp = TopicPartition::new(table.topic, partition);
                let end = self.log.end_offset(&tp).await?;
                let cursor = self.cursors.entry((table.topic, partition)).or_insert(0);
                while *cursor < end {
                    let records = self.log.read(&tp, *cursor, TABLE_READ).await?;
                    let Some(last) = records.last() else { break };
                    // The keys first: records whose keys could not be read are read again.
                    self.keys.prepare(&records).await?;
                    *cursor = last.offset + 1;
                    for record in &records {
                        if let Err(error) = (table.fold)(&mut self.export.state, record) {
                            // A table is lookup data: a record it cannot read is skipped and
                            // said, a mapping that needed it dead-letters its event.
                            tracing::warn!(group = self.group, %error, "table record skipped");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits before trying a log call again: the export cannot go on without it. An error no
    /// retry mends is kept instead, for the loop to stop with, and a shutdown gives the batch up
    /// (`false`: do not try again).
    async fn retry(&mut self, what: &str, error: LogError, failures: &mut u32) -> bool {
        if permanent(&error) {
            tracing::error!(group = self.group, %error, "{what} failed for good");
            self.failure = Some(error.into());
            return false;
        }
        *failures += 1;
        tracing::warn!(group = self.group, %error, failures, "{what} failed; trying again");
        self.gave_up = match &self.shutdown {
            Some(shutdown) => !pause(&self.settings, *failures, shutdown).await,
            None => {
                tokio::time::sleep(backoff(&self.settings, *failures)).await;
                false
            }
        };
        !self.gave_up
    }

    /// Appends the public records to the feed's own log, retried until it takes them. When it
    /// refuses one as too large, they are appended again an event's records at a time, and an
    /// event whose records are refused is dead-lettered once: records written before are
    /// written twice, with the same `ce_id` (an append to Kafka is not atomic, so which of them
    /// were written is not known), and so may an event's other records be.
    async fn append_to(
        &mut self,
        target: &dyn EventLog,
        inputs: &[Record],
        public: Vec<(usize, OutRecord)>,
        outputs: &mut Vec<OutRecord>,
    ) {
        let batch = public.iter().map(|(_, out)| out.clone()).collect();
        let refused = match self.append_retried(target, batch).await {
            Appended::TooLarge(error) => error,
            Appended::Taken | Appended::GaveUp => return,
        };
        // The records of one event only were that event's own refusal: no need to try again.
        if public.iter().all(|(input, _)| *input == public[0].0) {
            return self.letter_refused(&inputs[public[0].0], &refused, outputs);
        }
        // An event's records at a time (`public` is in input order): all of an event or none.
        for records in public.chunk_by(|(a, _), (b, _)| a == b) {
            let event = records.iter().map(|(_, out)| out.clone()).collect();
            match self.append_retried(target, event).await {
                Appended::Taken => {}
                Appended::GaveUp => return,
                Appended::TooLarge(error) => self.letter_refused(&inputs[records[0].0], &error, outputs),
            }
        }
    }

    /// Dead-letters the input of a public record that the feed's log refused for good.
    fn letter_refused(&self, input: &Record, error: &LogError, outputs: &mut Vec<OutRecord>) {
        tracing::warn!(group = self.group, %error, "a public record is dead-lettered: its feed's log refused it");
        outputs.push(dead_letter::letter(&self.dead_letters, &self.group, input, error));
    }

    /// Appends `records` to `target`, trying again while the log is away.
    async fn append_retried(&mut self, target: &dyn EventLog, records: Vec<OutRecord>) -> Appended {
        let mut failures = 0;
        loop {
            match target.append(records.clone()).await {
                Ok(_) => return Appended::Taken,
                Err(error @ LogError::TooLarge { .. }) => return Appended::TooLarge(error),
                Err(error) => {
                    if !self.retry("writing to the feed's log", error, &mut failures).await {
                        return Appended::GaveUp;
                    }
                }
            }
        }
    }
}

/// How an append to the feed's own log ended.
enum Appended {
    Taken,
    /// The log refuses a record for good.
    TooLarge(LogError),
    /// Shut down, or failed for good (see `ExportProcessor::retry`).
    GaveUp,
}

impl<S: Send + Sync + 'static> Processor for ExportProcessor<S> {
    fn failure(&mut self) -> Option<RuntimeError> {
        self.failure.take()
    }

    fn watch_shutdown(&mut self, shutdown: watch::Receiver<bool>) {
        self.shutdown = Some(shutdown);
    }

    fn gave_up(&mut self) -> bool {
        std::mem::take(&mut self.gave_up)
    }

    fn group(&self) -> &str {
        &self.group
    }

    fn dead_letters(&self) -> Option<&Arc<str>> {
        Some(&self.dead_letters)
    }

    fn topics(&self) -> Vec<&'static str> {
        self.export.subscriptions.iter().map(|s| s.topic).collect()
    }

    fn start(&self) -> StartFrom {
        // A new feed carries everything that already happened.
        StartFrom::Beginning
    }

    async fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) {
        let mut failures = 0;
        while let Err(error) = self.refresh_tables().await {
            if !self.retry("reading the export's tables", error, &mut failures).await {
                return;
            }
        }
        // Each public record with the input it came from.
        let mut public = Vec::new();
        for (input, record) in records.iter().enumerate() {
            let before = public.len();
            for route in self.export.routes.iter().filter(|r| *r.topic == *record.topic) {
                match (route.map)(&self.export.state, record) {
                    Ok(Some(published)) => public.push((input, encode(&published, &self.topic, &self.source))),
                    Ok(None) => {}
                    Err(error) => {
                        // All of an event's public records or none: the event dead-lettered and
                        // taken again later publishes each of them once.
                        public.truncate(before);
                        outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &error));
                        break;
                    }
                }
            }
        }
        match self.export.target.clone() {
            None => outputs.extend(public.into_iter().map(|(_, out)| out)),
            Some(target) if !public.is_empty() => self.append_to(&*target, records, public, outputs).await,
            Some(_) => {}
        }
    }
}

/// Creates the feed's topic (on its own log) and the export's dead-letter topic.
pub(crate) async fn create_topics<S>(
    export: &Export<S>,
    log: &dyn EventLog,
    partitions: u32,
) -> Result<(), RuntimeError> {
    let target = export.target.as_deref().unwrap_or(log);
    target.create_topic(&crate::log::TopicSpec::keep(export.topic(), partitions)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    use super::*;
    use crate::log::TopicSpec;
    use crate::log::memory::MemoryLog;
    use crate::log::memory::flaky::{Fails, Flaky};
    use crate::model::{Envelope, Message};
    use crate::privacy::{KEYS_TOPIC, Personal};
    use crate::{Event, ReferenceId};

    #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[reference(prefix = "cus")]
    struct CustomerId(Uuid);

    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(module = "customer", key = id)]
    enum CustomerEvent {
        Named {
            id: CustomerId,
            #[pii]
            name: Personal<String>,
        },
    }

    /// A table record whose keys could not be read for a moment is folded once they can: the
    /// mappings would otherwise miss it until the process restarts.
    #[tokio::test(start_paused = true)]
    async fn a_table_record_is_folded_once_its_keys_can_be_read() {
        let memory = MemoryLog::shared();
        let writer = KeyStore::on(memory.clone());
        writer.load(1).await.unwrap();
        memory.create_topic(&TopicSpec::keep(CustomerEvent::TOPIC, 1)).await.unwrap();
        let event = CustomerEvent::Named { id: CustomerId::generate(), name: "Ada".into() };
        let sealed = writer.encode(&Envelope::new(event, jiff::Timestamp::now()), Arc::from(CustomerEvent::TOPIC));
        let (mut records, ids) = writer.pending().expect("a new key");
        records.push(sealed);
        memory.append(records).await.unwrap();
        writer.written(&ids);

        let flaky = Flaky::over(memory.clone(), Fails::EndOffsetOf(KEYS_TOPIC), false);
        let reader = KeyStore::on(flaky.clone());
        reader.load(1).await.unwrap();
        let export = Export::with_state("crm", "names", "names", Vec::<String>::new())
            .table::<CustomerEvent>(|names, event| names.push(event.payload_name()));
        let mut processor = ExportProcessor::new(export, flaky.clone(), reader.clone(), Settings::default());
        // Sealed data makes the key store read its topic again (after a second): it is away.
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        flaky.set_failing(true);
        assert!(reader.clone().scope_async(processor.refresh_tables()).await.is_err(), "the keys cannot be read");
        flaky.set_failing(false);
        reader.clone().scope_async(processor.refresh_tables()).await.expect("the keys are back");
        assert_eq!(processor.export.state, ["Ada"]);
    }

    impl Envelope<CustomerEvent> {
        fn payload_name(&self) -> String {
            let CustomerEvent::Named { name, .. } = &self.payload;
            name.to_string()
        }
    }
}
