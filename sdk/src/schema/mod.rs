//! The event catalog: the JSON Schema of every event type and of every public event, an
//! AsyncAPI 3.0 document for the public feeds, and a compatibility check against committed
//! schema snapshots.
//!
//! Schemas are JSON Schema draft-07 (the dialect AsyncAPI 3.0 payloads speak) and
//! self-contained: every `$ref` of schemars' output is inlined, so one file describes one
//! message type and two versions of it compare field by field.
//!
//! ```
//! use tramline::prelude::*;
//! use tramline::schema::Catalog;
//! # use serde::{Deserialize, Serialize};
//! # use schemars::JsonSchema;
//! # #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] #[reference(prefix = "ord")] pub struct OrderId(uuid::Uuid);
//! #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
//! #[event(module = "order", key = order_id)]
//! pub enum OrderEvent {
//!     /// An order was paid.
//!     Confirmed { order_id: OrderId, quantity: u32 },
//! }
//!
//! let mut catalog = Catalog::new();
//! catalog.event::<OrderEvent>();
//! let confirmed = &catalog.messages()[0];
//! assert_eq!(confirmed.name, "OrderConfirmed");
//! assert_eq!(confirmed.file_name(), "events/order/OrderConfirmed.v1.json");
//! assert_eq!(confirmed.schema["required"], serde_json::json!(["order_id", "quantity"]));
//! ```

pub mod asyncapi;
mod compatibility;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

pub use compatibility::{Breaking, Change, compare};

use crate::model::{Event, Message};

/// Whether a message type is internal to the platform or published to partners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Audience {
    /// An event on a module's `<module>.events` topic.
    Internal,
    /// A public event on a `public.<feed>` topic.
    Public,
}

/// The schema of one message type (`OrderConfirmed`, version 1).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSchema {
    /// Internal event or public event.
    pub audience: Audience,
    /// The module that owns it (for a public event, the module that exports it).
    pub module: &'static str,
    /// The topic it is carried on (`order.events`, `public.orders.citybus`).
    pub topic: String,
    /// The type name on the log: the CloudEvents `type` (`OrderConfirmed`).
    pub name: &'static str,
    /// The schema version written with it.
    pub version: u32,
    /// Its JSON Schema (draft-07, self-contained): the record's JSON value.
    pub schema: Value,
}

impl MessageSchema {
    /// Where this schema lives in a catalog directory: `events/<module>/<Type>.v<N>.json` or
    /// `public/<module>/<Type>.v<N>.json`.
    pub fn file_name(&self) -> String {
        let folder = match self.audience {
            Audience::Internal => "events",
            Audience::Public => "public",
        };
        format!("{folder}/{}/{}.v{}.json", self.module, self.name, self.version)
    }

    /// The schema as the pretty JSON text written to its file, with a final newline.
    pub fn to_pretty_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema).expect("a JSON value always serialises");
        text.push('\n');
        text
    }
}

/// A public feed as the AsyncAPI document describes it: a topic, the module that writes it,
/// and the public event types on it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSchema {
    /// The feed's name; its topic is `public.<feed>`.
    pub feed: String,
    /// The module that exports it.
    pub module: &'static str,
    /// What partners find on it.
    pub description: String,
    /// The partitions of its topic.
    pub partitions: u32,
    /// The JSON Schema of the record key.
    pub key: Value,
    /// The public event types written to it.
    pub messages: Vec<MessageSchema>,
}

impl FeedSchema {
    /// The topic: `public.<feed>`.
    pub fn topic(&self) -> String {
        format!("public.{}", self.feed)
    }
}

/// Every message schema of a platform: its events, and the public feeds with their public
/// events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    messages: Vec<MessageSchema>,
    feeds: Vec<FeedSchema>,
}

/// Why a catalog could not be written to or read from a directory.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A committed schema file is not JSON.
    #[error("{path}: not a JSON schema: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Catalog::default()
    }

    /// Adds every type of an event enum: one schema per type, of the variant's fields.
    pub fn event<E: Event + JsonSchema>(&mut self) -> &mut Self {
        let schemas = variant_schemas::<E>();
        for message_type in E::TYPES {
            let schema = schemas.get(message_type.variant).cloned().unwrap_or_else(|| {
                panic!(
                    "the JSON Schema of {} has no variant `{}`: derive JsonSchema without #[schemars] renames",
                    E::NAME,
                    message_type.variant
                )
            });
            self.messages.push(MessageSchema {
                audience: Audience::Internal,
                module: E::MODULE,
                topic: E::TOPIC.to_owned(),
                name: message_type.name,
                version: E::VERSION,
                schema: titled(schema, message_type.name, E::VERSION),
            });
        }
        self
    }

    /// Adds a public feed and its public event types.
    pub fn feed(&mut self, feed: FeedSchema) -> &mut Self {
        for message in &feed.messages {
            let known = self.messages.iter().any(|m| m.file_name() == message.file_name());
            if !known {
                self.messages.push(message.clone());
            }
        }
        self.feeds.push(feed);
        self
    }

    /// Every message schema, events first (in the order added), then public events.
    pub fn messages(&self) -> Vec<&MessageSchema> {
        let (internal, public): (Vec<_>, Vec<_>) = self.messages.iter().partition(|m| m.audience == Audience::Internal);
        internal.into_iter().chain(public).collect()
    }

    /// The public feeds.
    pub fn feeds(&self) -> &[FeedSchema] {
        &self.feeds
    }

    /// Every schema as one JSON object: `{ "<file name>": <schema>, … }`, sorted by file name.
    pub fn to_json(&self) -> Value {
        let files: BTreeMap<String, &Value> = self.messages.iter().map(|m| (m.file_name(), &m.schema)).collect();
        json!(files)
    }

    /// Writes one file per schema under `dir` (see [`MessageSchema::file_name`]); returns the
    /// paths written.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
        let mut written = Vec::new();
        for message in self.messages() {
            let path = dir.join(message.file_name());
            let io = |source| CatalogError::Io { path: path.clone(), source };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&path, message.to_pretty_json()).map_err(io)?;
            written.push(path);
        }
        Ok(written)
    }

    /// Compares this catalog with the schemas committed under `dir`: every change that would
    /// break records already in the log or partners already reading (see [`compare`]).
    /// A message type without a committed schema is new and breaks nothing.
    pub fn breaking_changes(&self, dir: &Path) -> Result<Vec<Breaking>, CatalogError> {
        let mut breaking = Vec::new();
        for message in self.messages() {
            let Some((path, committed)) = committed_schema(dir, message)? else { continue };
            let changes = compare(&committed, &message.schema);
            if !changes.is_empty() {
                breaking.push(Breaking { message: message.name, file: path, changes });
            }
        }
        Ok(breaking)
    }
}

/// The committed schema of the same type and audience with the highest version up to the
/// message's: a new version must still read what the old one wrote.
fn committed_schema(dir: &Path, message: &MessageSchema) -> Result<Option<(PathBuf, Value)>, CatalogError> {
    for version in (1..=message.version).rev() {
        let file = MessageSchema { version, ..message.clone() }.file_name();
        let path = dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let schema =
                    serde_json::from_str(&text).map_err(|source| CatalogError::Json { path: path.clone(), source })?;
                return Ok(Some((path, schema)));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(CatalogError::Io { path, source }),
        }
    }
    Ok(None)
}

/// The self-contained draft-07 schema of a type, every `$ref` inlined.
pub fn schema_of<T: JsonSchema + ?Sized>() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut root = generator.into_root_schema_for::<T>().to_value();
    let definitions = match root.as_object_mut().and_then(|o| o.remove("definitions")) {
        Some(Value::Object(definitions)) => definitions,
        _ => Map::new(),
    };
    inline(&mut root, &definitions, &mut Vec::new());
    root
}

/// The schema of a public event type, titled with its type name and version.
pub fn public_schema<T: JsonSchema + ?Sized>(name: &str, version: u32) -> Value {
    titled(schema_of::<T>(), name, version)
}

/// Sets `$schema`, `title`, and the version as the extension keyword `x-version`.
fn titled(schema: Value, name: &str, version: u32) -> Value {
    let Value::Object(fields) = schema else { return schema };
    let mut out = Map::new();
    out.insert("$schema".into(), json!("http://json-schema.org/draft-07/schema#"));
    out.insert("title".into(), json!(name));
    out.insert("x-version".into(), json!(version));
    for (key, value) in fields {
        if key != "$schema" && key != "title" {
            out.insert(key, value);
        }
    }
    Value::Object(out)
}

/// Replaces `{"$ref": "#/definitions/X", …}` with the definition of X (and the other keywords
/// beside the `$ref`). A recursive type keeps its `$ref` at the point of recursion.
fn inline(value: &mut Value, definitions: &Map<String, Value>, stack: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            let target = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/definitions/"))
                .map(str::to_owned);
            if let Some(name) = target
                && !stack.contains(&name)
                && let Some(Value::Object(definition)) = definitions.get(&name)
            {
                object.remove("$ref");
                for (key, field) in definition {
                    object.entry(key.clone()).or_insert_with(|| field.clone());
                }
                stack.push(name);
                for field in object.values_mut() {
                    inline(field, definitions, stack);
                }
                stack.pop();
                return;
            }
            for field in object.values_mut() {
                inline(field, definitions, stack);
            }
            // schemars writes a documented reference as `{"allOf": [<ref>], "description"}`:
            // one schema, so that fields compare by their types.
            if let Some(Value::Array(all)) = object.get("allOf")
                && let [Value::Object(only)] = all.as_slice()
            {
                let only = only.clone();
                object.remove("allOf");
                for (key, field) in only {
                    object.entry(key).or_insert(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| inline(item, definitions, stack)),
        _ => {}
    }
}

/// The schema of each variant's fields, by variant name, from the enum's externally tagged
/// schema (`oneOf: [{properties: {Variant: {…}}, required: [Variant]}]`).
fn variant_schemas<E: Message + JsonSchema>() -> BTreeMap<String, Value> {
    let root = schema_of::<E>();
    let mut variants = BTreeMap::new();
    let alternatives = root.get("oneOf").or_else(|| root.get("anyOf")).and_then(Value::as_array);
    for alternative in alternatives.into_iter().flatten() {
        // A unit variant is written as `{}` (see codec::variant): an object without fields.
        if let Some(names) = alternative.get("enum").and_then(Value::as_array) {
            for name in names.iter().filter_map(Value::as_str) {
                variants.insert(name.to_owned(), json!({"type": "object", "additionalProperties": false}));
            }
            continue;
        }
        let Some(properties) = alternative.get("properties").and_then(Value::as_object) else { continue };
        for (name, fields) in properties {
            let mut fields = fields.clone();
            if let (Some(description), Value::Object(object)) = (alternative.get("description"), &mut fields) {
                object.entry("description").or_insert_with(|| description.clone());
            }
            variants.insert(name.clone(), fields);
        }
    }
    // An enum of one struct variant is not a `oneOf` of one but that alternative itself.
    if variants.is_empty()
        && let Some(properties) = root.get("properties").and_then(Value::as_object)
    {
        for (name, fields) in properties {
            variants.insert(name.clone(), fields.clone());
        }
    }
    variants
}
