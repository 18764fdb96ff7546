//! Exports: a filtered, reshaped copy of selected events on a public topic `public.<feed>`,
//! with a published contract (a JSON Schema per public event type, and an AsyncAPI document).
//!
//! An [`Export`] names the event types it reads, a filter and a mapping into a [`PublicEvent`]
//! (a type of its own, with its own schema and version). Nothing reaches a public topic unless
//! a mapping puts it there: the public record is the mapping's output serialised, never the
//! internal event.
//!
//! The export runs on the runtime's one processor loop ([`App::export`](crate::App::export)).
//! On the app's own log, the public records and the input positions are one atomic write:
//! exactly once. On another log ([`Export::to_log`]: another Kafka cluster, another embedded
//! directory) no write spans both logs, so the public records are appended first and the input
//! positions committed after: a crash in between writes some records again, with the same
//! `ce_id` (derived from the source event's id), and partners deduplicate by it, as they must
//! for any at-least-once feed.
//!
//! ```
//! use tramline::prelude::*;
//! use tramline::export::{Export, PublicEvent};
//! # use serde::{Deserialize, Serialize};
//! # use schemars::JsonSchema;
//! # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "ord")] pub struct OrderId(uuid::Uuid);
//! # #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)] #[event(module = "order", key = order_id)]
//! # pub enum OrderEvent { Confirmed { order_id: OrderId, quantity: u32, note: String }, Cancelled { order_id: OrderId } }
//! /// An order that a partner may know about.
//! #[derive(Serialize, Deserialize, JsonSchema, Clone, Debug)]
//! pub struct OrderShipped { order_id: OrderId, quantity: u32 }
//!
//! impl PublicEvent for OrderShipped {
//!     const NAME: &'static str = "OrderShipped";
//!     const VERSION: u32 = 1;
//!     type Key = OrderId;
//!     fn key(&self) -> &OrderId { &self.order_id }
//! }
//!
//! let export = Export::new("shipping", "orders", "Confirmed orders.").publish(
//!     |_, event: &Envelope<OrderEvent>| matches!(event.payload, OrderEvent::Confirmed { .. }),
//!     |_, event| match &event.payload {
//!         OrderEvent::Confirmed { order_id, quantity, .. } => Ok(OrderShipped { order_id: *order_id, quantity: *quantity }),
//!         other => Err(format!("not a confirmed order: {other:?}")),
//!     },
//! );
//! assert_eq!(export.topic(), "public.orders");
//! ```

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::codec::{self, DecodeError, headers};
use crate::log::{EventLog, Headers, OutRecord, Record};
use crate::model::{Envelope, Event, ReferenceId, Subscription};
use crate::runtime::RuntimeError;
use crate::schema::{self, Audience, FeedSchema, MessageSchema};

/// A public event type: what partners read on a public feed. Its JSON is its fields; its
/// schema and version are a contract with partners, checked against committed snapshots.
pub trait PublicEvent: Serialize + DeserializeOwned + JsonSchema + Clone + Debug + Send + Sync + 'static {
    /// The type name on the feed: the CloudEvents `type` (`OrderConfirmed`).
    const NAME: &'static str;
    /// The schema version written with every record.
    const VERSION: u32;
    /// The reference ID that keys the records (and picks their partition).
    type Key: ReferenceId;
    /// What the record is about.
    fn key(&self) -> &Self::Key;
}

/// A public record ready to write, before it has a topic.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    id: Uuid,
    time: Timestamp,
    name: &'static str,
    version: u32,
    key: String,
    value: Vec<u8>,
}

/// Folds a table topic's record into the export's lookup state.
type Fold<S> = Box<dyn Fn(&mut S, &Record) -> Result<(), DecodeError> + Send + Sync>;
/// Filters and maps a record; `Ok(None)` when the filter drops it.
type Map<S> = Box<dyn Fn(&S, &Record) -> Result<Option<Published>, ExportFailure> + Send + Sync>;

/// Why a record could not be exported; it goes to the export's dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    /// The source record does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The mapping refused the event.
    #[error("export to `{topic}`: cannot map {event} ({position}): {reason}")]
    Mapping {
        /// The public topic.
        topic: String,
        /// The event type.
        event: String,
        /// Where the event sits.
        position: String,
        /// What the mapping said.
        reason: String,
    },
}

pub(crate) struct Route<S> {
    pub(crate) topic: &'static str,
    pub(crate) map: Map<S>,
}

pub(crate) struct Table<S> {
    pub(crate) topic: &'static str,
    pub(crate) subscription: Subscription,
    pub(crate) fold: Fold<S>,
}

/// A declaration of a public feed: which events, filtered how, mapped into which public event
/// types, written to `public.<feed>` on which log. `S` is lookup state folded from table topics
/// ([`Export::table`]), for mappings that need another module's data (a product's name).
pub struct Export<S = ()> {
    pub(crate) module: &'static str,
    pub(crate) feed: String,
    pub(crate) description: String,
    pub(crate) state: S,
    pub(crate) routes: Vec<Route<S>>,
    pub(crate) tables: Vec<Table<S>>,
    pub(crate) subscriptions: Vec<Subscription>,
    messages: Vec<MessageSchema>,
    pub(crate) target: Option<Arc<dyn EventLog>>,
}

impl<S> Debug for Export<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("module", &self.module)
            .field("feed", &self.feed)
            .field("routes", &self.routes.iter().map(|r| r.topic).collect::<Vec<_>>())
            .field("tables", &self.tables.iter().map(|t| t.topic).collect::<Vec<_>>())
            .field("other_log", &self.target.is_some())
            .finish()
    }
}

impl Export<()> {
    /// An export by `module` to `public.<feed>`, described for partners by `description`.
    pub fn new(module: &'static str, feed: impl Into<String>, description: impl Into<String>) -> Self {
        Export::with_state(module, feed, description, ())
    }
}

impl<S> Export<S> {
    /// The public topic: `public.<feed>`.
    pub fn topic(&self) -> String {
        format!("public.{}", self.feed)
    }

    /// The CloudEvents `source` of its records: `/<module>/<feed>`.
    pub(crate) fn source(&self) -> String {
        format!("/{}/{}", self.module, self.feed)
    }

    /// The consumer group of the export: `<module>.export.<feed>`.
    pub fn group(&self) -> String {
        format!("{}.export.{}", self.module, self.feed)
    }

    /// [`RuntimeError::InvalidName`] when the module or feed could not name the topic and group
    /// as every other name of the platform does (a space, a capital, a `/`, nothing).
    pub(crate) fn check_names(&self) -> Result<(), RuntimeError> {
        fn lowercase_name(name: &str) -> bool {
            name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }
        if !lowercase_name(self.module) {
            return Err(RuntimeError::InvalidName {
                what: "export module",
                name: self.module.into(),
                rule: MODULE_RULE,
            });
        }
        if !self.feed.split('.').all(lowercase_name) {
            return Err(RuntimeError::InvalidName { what: "export feed", name: self.feed.clone(), rule: FEED_RULE });
        }
        Ok(())
    }
}

/// A module name's rule, as the derives check it.
const MODULE_RULE: &str = "a lowercase letter, then lowercase letters, digits or `-` (`gift-card`)";
/// A feed name's rule: it names the topic `public.<feed>`.
const FEED_RULE: &str = "one or more parts separated by `.`, each a lowercase letter, then lowercase letters, \
                         digits or `-` (`orders.citybus`)";

impl<S: Send + Sync + 'static> Export<S> {
    /// An export with lookup state, filled by [`Export::table`].
    pub fn with_state(module: &'static str, feed: impl Into<String>, description: impl Into<String>, state: S) -> Self {
        Export {
            module,
            feed: feed.into(),
            description: description.into(),
            state,
            routes: Vec::new(),
            tables: Vec::new(),
            subscriptions: Vec::new(),
            messages: Vec::new(),
            target: None,
        }
    }

    /// Writes the feed to another log (another Kafka cluster, another embedded directory).
    pub fn to_log(mut self, log: Arc<dyn EventLog>) -> Self {
        self.target = Some(log);
        self
    }

    /// Folds every event of `E` into the lookup state before the export maps anything: the
    /// whole topic, all partitions, kept up to date before each batch (a global table). An event
    /// that a mapped event refers to was written before it, so the lookup finds it.
    pub fn table<E: Event>(mut self, fold: impl Fn(&mut S, &Envelope<E>) + Send + Sync + 'static) -> Self {
        self.tables.push(Table {
            topic: E::TOPIC,
            subscription: Subscription::of::<E>(),
            fold: Box::new(move |state, record| {
                fold(state, &codec::decode::<E>(record)?);
                Ok(())
            }),
        });
        self
    }

    /// Publishes the events of `E` that pass `filter`, as `map` makes them. A mapping that
    /// fails sends the event to the export's dead-letter topic with its reason, and then none
    /// of the event's public records is published, those of its other routes included.
    pub fn publish<E: Event, P: PublicEvent>(
        mut self,
        filter: impl Fn(&S, &Envelope<E>) -> bool + Send + Sync + 'static,
        map: impl Fn(&S, &Envelope<E>) -> Result<P, String> + Send + Sync + 'static,
    ) -> Self {
        let topic = self.topic();
        let route = self.routes.len();
        let map: Map<S> = Box::new(move |state, record| {
            let event = codec::decode::<E>(record)?;
            if !filter(state, &event) {
                return Ok(None);
            }
            let public = map(state, &event).map_err(|reason| ExportFailure::Mapping {
                topic: topic.clone(),
                event: event.payload.type_name().to_owned(),
                position: codec::position_of(record).to_string(),
                reason,
            })?;
            // Fails for personal data (`Personal` serialises only within the codec): a public
            // event cannot carry any.
            let value = serde_json::to_vec(&public).map_err(|error| ExportFailure::Mapping {
                topic: topic.clone(),
                event: event.payload.type_name().to_owned(),
                position: codec::position_of(record).to_string(),
                reason: format!("the public event does not serialise: {error}"),
            })?;
            Ok(Some(Published {
                // Derived from the source event: the same record written twice has one id.
                id: Uuid::new_v5(&event.id, format!("{topic}/{route}/{}", P::NAME).as_bytes()),
                time: event.time,
                name: P::NAME,
                version: P::VERSION,
                key: public.key().to_string(),
                value,
            }))
        });
        self.routes.push(Route { topic: E::TOPIC, map });
        if !self.subscriptions.iter().any(|s| s.topic == E::TOPIC) {
            self.subscriptions.push(Subscription::of::<E>());
        }
        self.add_public::<P>();
        self
    }

    fn add_public<P: PublicEvent>(&mut self) {
        if !self.messages.iter().any(|m| m.name == P::NAME && m.version == P::VERSION) {
            self.messages.push(MessageSchema {
                audience: Audience::Public,
                module: self.module,
                topic: self.topic(),
                name: P::NAME,
                version: P::VERSION,
                schema: schema::public_schema::<P>(P::NAME, P::VERSION),
                // Each public event type its own: two types on one feed may have different keys.
                key: schema::schema_of::<P::Key>(),
            });
        }
    }

    /// The feed's contract, for the catalog and the AsyncAPI document.
    pub fn schema(&self, partitions: u32) -> FeedSchema {
        FeedSchema {
            feed: self.feed.clone(),
            module: self.module,
            description: self.description.clone(),
            partitions,
            messages: self.messages.clone(),
        }
    }
}

/// Encodes a public record: its JSON, keyed by its key, with CloudEvents headers. Nothing of
/// the source event's metadata travels but its time: no correlation or causation ids, no
/// trace context.
pub(crate) fn encode(published: &Published, topic: &Arc<str>, source: &str) -> OutRecord {
    let mut headers = Headers::builder(320);
    headers.push(headers::SPEC_VERSION, b"1.0");
    headers.push(headers::ID, published.id.hyphenated().to_string().as_bytes());
    headers.push(headers::SOURCE, source.as_bytes());
    headers.push(headers::TYPE, published.name.as_bytes());
    headers.push(headers::TIME, published.time.to_string().as_bytes());
    let key = headers.push(headers::SUBJECT, published.key.as_bytes());
    headers.push(headers::SCHEMA_VERSION, published.version.to_string().as_bytes());
    headers.push(headers::CONTENT_TYPE, b"application/json");
    let headers = headers.build();
    OutRecord {
        topic: topic.clone(),
        partition: None,
        key: Some(headers.encoded().slice(key)),
        value: Some(Bytes::from(published.value.clone())),
        headers,
        timestamp: Some(published.time.as_millisecond()),
    }
}

/// The positions folded so far of each table partition.
pub(crate) type Cursors = HashMap<(&'static str, u32), u64>;
