//! Given table events, when an event, then public events.

use std::fmt::Debug;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{VirtualClock, keys, record_of};
use crate::codec::{DecodeError, headers};
use crate::export::{Export, PublicEvent, encode};
use crate::log::{OutRecord, Record};
use crate::model::{Clock, Envelope, Event};

/// A test of an export: events of its tables folded into its lookup state, then events mapped,
/// each through the codec as the runtime reads it, into the public records a partner reads.
pub struct ExportTest<S> {
    export: Export<S>,
    topic: Arc<str>,
    source: String,
    clock: VirtualClock,
    offset: u64,
}

impl<S: Send + Sync + 'static> ExportTest<S> {
    /// Tests this export, at virtual time. Panics, as `App::export` refuses it, when its module
    /// or feed is not a valid name.
    #[track_caller]
    pub fn new(export: Export<S>) -> Self {
        if let Err(error) = export.check_names() {
            panic!("{error}");
        }
        ExportTest {
            topic: Arc::from(export.topic()),
            source: export.source(),
            export,
            clock: VirtualClock::default(),
            offset: 0,
        }
    }

    /// The virtual clock that stamps the events.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Folds an event into the lookup state, as the export's tables read it
    /// ([`Export::table`]). Panics when no table reads `E`, or the table cannot read it.
    #[track_caller]
    pub fn given<E: Event>(mut self, event: E) -> Self {
        let record = self.record(event);
        match self.fold(&record) {
            Ok(read) => assert!(read, "no table of the export reads {} (Export::table)", std::any::type_name::<E>()),
            Err(error) => panic!("a table of the export cannot read the event: {error}"),
        }
        self
    }

    /// Maps one event as the runtime would: the public records it publishes, or why it goes to
    /// the export's dead-letter topic. A table that reads `E` folds it first, as the runtime
    /// brings the tables up to the end of their topics before it maps. Panics when the export
    /// publishes nothing of `E` ([`Export::publish`]).
    #[track_caller]
    pub fn when<E: Event>(&mut self, event: E) -> Exported {
        let routed = self.export.routes.iter().any(|r| r.topic == E::TOPIC);
        assert!(routed, "the export publishes nothing of {} (Export::publish)", std::any::type_name::<E>());
        let record = self.record(event);
        // As the runtime: a table skips what it cannot read, and the mapping says why.
        let _ = self.fold(&record);
        let mut exported = Exported { records: Vec::new(), refused: Vec::new() };
        for route in self.export.routes.iter().filter(|r| r.topic == E::TOPIC) {
            match keys().scope(|| (route.map)(&self.export.state, &record)) {
                Ok(Some(published)) => exported.records.push(encode(&published, &self.topic, &self.source)),
                Ok(None) => {}
                Err(error) => {
                    // As the runtime: an event a mapping refuses publishes nothing.
                    exported.records.clear();
                    exported.refused.push(error.to_string());
                    break;
                }
            }
        }
        exported
    }

    /// Folds a record into the tables that read its topic; whether any does, or why one could
    /// not (the others fold it still, as in the runtime).
    fn fold(&mut self, record: &Record) -> Result<bool, DecodeError> {
        let (mut read, mut failed) = (false, None);
        for table in self.export.tables.iter().filter(|t| *t.topic == *record.topic) {
            if let Err(error) = keys().scope(|| (table.fold)(&mut self.export.state, record)) {
                failed.get_or_insert(error);
            }
            read = true;
        }
        failed.map_or(Ok(read), Err)
    }

    fn record<E: Event>(&mut self, event: E) -> Record {
        let record = record_of(&Envelope::new(event, self.clock.now()), self.offset);
        self.offset += 1;
        record
    }
}

/// What an export made of an event, to check.
#[derive(Debug)]
pub struct Exported {
    records: Vec<OutRecord>,
    refused: Vec<String>,
}

impl Exported {
    /// The public records, as they go on the feed (CloudEvents headers, the key, the JSON).
    pub fn records(&self) -> &[OutRecord] {
        &self.records
    }

    /// The published events of type `P`, read as a partner reads them.
    #[track_caller]
    pub fn published<P: PublicEvent + DeserializeOwned>(&self) -> Vec<P> {
        let of_p = |r: &&OutRecord| r.headers.get(headers::TYPE) == Some(P::NAME.as_bytes());
        (self.records.iter().filter(of_p))
            .map(|record| {
                let value = record.value.as_deref().unwrap_or_default();
                serde_json::from_slice(value).unwrap_or_else(|e| panic!("a {} that does not read back: {e}", P::NAME))
            })
            .collect()
    }

    /// Asserts that the export published exactly these events, and nothing else.
    #[track_caller]
    pub fn then_published<P>(self, expected: impl IntoIterator<Item = P>) -> Self
    where
        P: PublicEvent + DeserializeOwned + PartialEq + Debug,
    {
        assert!(self.refused.is_empty(), "the event was dead-lettered: {:?}", self.refused);
        let expected: Vec<P> = expected.into_iter().collect();
        assert_eq!(self.published::<P>(), expected, "the export published other events");
        assert_eq!(self.records.len(), expected.len(), "the export published other types too: {:?}", self.records);
        self
    }

    /// Asserts that the export published nothing: the filters dropped the event.
    #[track_caller]
    pub fn then_nothing(self) -> Self {
        assert!(self.refused.is_empty(), "the event was dead-lettered: {:?}", self.refused);
        assert!(self.records.is_empty(), "expected nothing published, got {:?}", self.records);
        self
    }

    /// Asserts that a mapping refused the event (it goes to the export's dead-letter topic,
    /// and none of its public records is published) with a reason containing `text`.
    #[track_caller]
    pub fn then_dead_lettered_saying(self, text: &str) -> Self {
        assert!(
            self.refused.iter().any(|reason| reason.contains(text)),
            "expected the event dead-lettered saying {text:?}, got {:?} and published {:?}",
            self.refused,
            self.records
        );
        self
    }
}
