//! The event catalog: the JSON Schema of every event type and of every public event, an
//! AsyncAPI 3.0 document for the public feeds, and a compatibility check against committed
//! schema snapshots.
//!
//! Schemas are JSON Schema draft-07 (the dialect AsyncAPI 3.0 payloads speak) and
//! self-contained: every `$ref` of schemars' output is inlined, so one file describes one
//! message type and two versions of it compare field by field. A recursive type keeps its
//! `$ref` where it recurs, and the file keeps that definition (`definitions`).
//!
//! The check compares each message type with the committed snapshot of its own version: a
//! breaking change needs a new version (and, for an event, an upcaster that turns the old
//! records into the new shape). Every committed snapshot needs a current type of at least its
//! version: a removed, renamed or lowered type would leave its records unread.
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
    /// The JSON Schema of its record key (a reference ID).
    pub key: Value,
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

    /// The schema as its file holds it: the key's schema goes with it as `x-key`, so that a
    /// changed key (which moves records to other partitions) is compared too.
    pub fn document(&self) -> Value {
        let mut schema = self.schema.clone();
        if let Value::Object(fields) = &mut schema {
            fields.insert(KEY_KEYWORD.into(), self.key.clone());
        }
        schema
    }

    /// [`MessageSchema::document`] as the pretty JSON text written to its file, with a final
    /// newline.
    pub fn to_pretty_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.document()).expect("a JSON value always serialises");
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
    /// The public event types written to it (each with its key's schema).
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
    /// Writing would overwrite committed snapshots with schemas that break them.
    #[error(
        "refusing to write the schemas to {}: the catalog breaks the committed snapshots; nothing was written\n{}\n\
         A committed (type, version) is a contract with the records on the log and with partners: make the change \
         compatible (a new field needs #[serde(default)]), or raise the type's version instead \
         (#[event(version = N, upcast = path::to::fn)] with an upcaster that turns old records into the new shape; \
         PublicEvent::VERSION for a public event), then write again.",
        dir.display(),
        breaking.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    )]
    Breaking {
        /// The catalog directory.
        dir: PathBuf,
        /// What breaks.
        breaking: Vec<Breaking>,
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
                key: schema_of::<E::Key>(),
            });
        }
        self
    }

    /// Adds a public feed and its public event types (one schema for a type that several feeds
    /// publish).
    ///
    /// # Panics
    ///
    /// When another type of the same module, name and version, with another schema or key, is
    /// in the catalog: only one of them could have a snapshot.
    pub fn feed(&mut self, feed: FeedSchema) -> &mut Self {
        for message in &feed.messages {
            match self.messages.iter().find(|m| m.file_name() == message.file_name()) {
                None => self.messages.push(message.clone()),
                Some(known) if known.schema == message.schema && known.key == message.key => {}
                Some(_) => panic!(
                    "two public event types of module `{}` are both `{}` version {} with different schemas (one in \
                     feed `{}`): give one of them another PublicEvent::NAME, or raise its VERSION",
                    message.module, message.name, message.version, feed.feed
                ),
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

    /// Every schema as one JSON object: `{ "<file name>": <document>, … }`, sorted by file
    /// name, each as [`Catalog::write_to`] writes its file.
    pub fn to_json(&self) -> Value {
        let files: BTreeMap<String, Value> = self.messages.iter().map(|m| (m.file_name(), m.document())).collect();
        json!(files)
    }

    /// Writes one file per schema under `dir` (see [`MessageSchema::file_name`]); returns the
    /// paths written. Refuses, writing nothing, when the catalog breaks the schemas committed
    /// there ([`Catalog::breaking_changes`]): overwriting them would erase the evidence.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
        let breaking = self.breaking_changes(dir)?;
        if !breaking.is_empty() {
            return Err(CatalogError::Breaking { dir: dir.to_owned(), breaking });
        }
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
    /// break records already in the log or partners already reading (see [`compare`]), against
    /// the snapshot of the same type and version, and every snapshot without a current type of
    /// at least its version. A type or version without a snapshot is new and breaks nothing:
    /// records of the versions before reach it through its upcaster.
    pub fn breaking_changes(&self, dir: &Path) -> Result<Vec<Breaking>, CatalogError> {
        let mut breaking = Vec::new();
        for message in self.messages() {
            let path = dir.join(message.file_name());
            let Some(committed) = read_schema(&path)? else { continue };
            let mut changes = compare(&committed, &message.schema);
            // A snapshot written before keys were kept has none to compare.
            if let Some(key) = committed.get(KEY_KEYWORD) {
                let key_changes = compare(key, &message.key);
                if !key_changes.is_empty() {
                    changes.push(Change::KeyChanged { changes: key_changes });
                }
            }
            if !changes.is_empty() {
                breaking.push(Breaking {
                    message: message.name.to_owned(),
                    version: message.version,
                    file: path,
                    changes,
                });
            }
        }
        for snapshot in committed_snapshots(dir)? {
            let current = self
                .messages
                .iter()
                .filter(|m| m.audience == snapshot.audience && m.module == snapshot.module && m.name == snapshot.name)
                .map(|m| m.version)
                .max();
            let change = match current {
                None => Change::MessageRemoved,
                Some(current) if current < snapshot.version => {
                    Change::VersionLowered { committed: snapshot.version, current }
                }
                Some(_) => continue,
            };
            breaking.push(Breaking {
                message: snapshot.name,
                version: snapshot.version,
                file: snapshot.path,
                changes: vec![change],
            });
        }
        Ok(breaking)
    }
}

/// A committed schema file, as its path names it: `<events|public>/<module>/<Type>.v<N>.json`.
struct Snapshot {
    audience: Audience,
    module: String,
    name: String,
    version: u32,
    path: PathBuf,
}

/// Every committed schema file under `dir`, sorted by path.
fn committed_snapshots(dir: &Path) -> Result<Vec<Snapshot>, CatalogError> {
    let mut snapshots = Vec::new();
    for (folder, audience) in [("events", Audience::Internal), ("public", Audience::Public)] {
        for module_dir in entries(&dir.join(folder))? {
            let Some(module) = module_dir.file_name().and_then(|m| m.to_str()).map(str::to_owned) else {
                continue;
            };
            if !module_dir.is_dir() {
                continue;
            }
            for path in entries(&module_dir)? {
                let Some(file) = path.file_name().and_then(|f| f.to_str()) else { continue };
                let Some((name, version)) = file.strip_suffix(".json").and_then(|stem| stem.rsplit_once(".v")) else {
                    continue;
                };
                let Ok(version) = version.parse() else { continue };
                let name = name.to_owned();
                snapshots.push(Snapshot { audience, module: module.clone(), name, version, path });
            }
        }
    }
    snapshots.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(snapshots)
}

/// The paths in a directory; none when it does not exist.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
    let io = |source| CatalogError::Io { path: dir.to_owned(), source };
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io(source)),
    };
    listing.map(|entry| entry.map(|e| e.path()).map_err(io)).collect()
}

/// A committed schema; none when the file does not exist.
/// The keyword of a snapshot file that holds the schema of the record's key.
const KEY_KEYWORD: &str = "x-key";

fn read_schema(path: &Path) -> Result<Option<Value>, CatalogError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| CatalogError::Json { path: path.to_owned(), source }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CatalogError::Io { path: path.to_owned(), source }),
    }
}

/// The self-contained draft-07 schema of a type, every `$ref` inlined.
pub fn schema_of<T: JsonSchema + ?Sized>() -> Value {
    let (root, definitions) = inlined::<T>();
    with_definitions(root, &definitions)
}

/// The schema of a type with every `$ref` inlined but where a type recurs, and schemars'
/// definitions (the raw ones, for [`with_definitions`]).
fn inlined<T: JsonSchema + ?Sized>() -> (Value, Map<String, Value>) {
    let generator = SchemaSettings::draft07().into_generator();
    let mut root = generator.into_root_schema_for::<T>().to_value();
    bound_integers(&mut root);
    let mut definitions = match root.as_object_mut().and_then(|o| o.remove("definitions")) {
        Some(Value::Object(definitions)) => definitions,
        _ => Map::new(),
    };
    // schemars refers to a recursive root type as `#`: a definition like the others instead,
    // so that a part of the schema (an event's variant, an AsyncAPI payload) can refer to it.
    let mut stack = Vec::new();
    let mut name = T::schema_name().into_owned();
    while definitions.contains_key(&name) {
        name.push('_');
    }
    let reference = format!("#/definitions/{name}");
    let mut recursive = retarget_root_references(&mut root, &reference);
    for definition in definitions.values_mut() {
        recursive |= retarget_root_references(definition, &reference);
    }
    if recursive {
        let mut definition = root.clone();
        if let Value::Object(object) = &mut definition {
            object.remove("$schema");
        }
        definitions.insert(name.clone(), definition);
        stack.push(name);
    }
    inline(&mut root, &definitions, &mut stack);
    (root, definitions)
}

/// Says the range of each Rust integer with `minimum` and `maximum` instead of schemars' own
/// `format`s (`uint32`, `int64`...): validators other than schemars' know no such format (a
/// strict one refuses the schema), and `uint32` alone let any integer from 0 up pass. Formats of
/// 128-bit integers stay: JSON numbers cannot bound them exactly.
pub(crate) fn bound_integers(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let range = match object.get("format").and_then(Value::as_str) {
                Some("int8") => Some((json!(i8::MIN), json!(i8::MAX))),
                Some("int16") => Some((json!(i16::MIN), json!(i16::MAX))),
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("int64" | "int") => Some((json!(i64::MIN), json!(i64::MAX))),
                Some("uint8") => Some((json!(0), json!(u8::MAX))),
                Some("uint16") => Some((json!(0), json!(u16::MAX))),
                Some("uint32") => Some((json!(0), json!(u32::MAX))),
                Some("uint64" | "uint") => Some((json!(0), json!(u64::MAX))),
                _ => None,
            };
            let integer = |kind: &Value| kind == "integer";
            let is_integer = object.get("type").is_some_and(|kind| match kind {
                Value::Array(kinds) => kinds.iter().any(integer),
                kind => integer(kind),
            });
            if let Some((minimum, maximum)) = range.filter(|_| is_integer) {
                object.remove("format");
                // A narrower bound of the type's own (`NonZeroU32`'s minimum of 1) stays.
                object.entry("minimum").or_insert(minimum);
                object.entry("maximum").or_insert(maximum);
            }
            object.values_mut().for_each(bound_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Replaces every `{"$ref": "#"}` with `reference`; whether there was one.
fn retarget_root_references(value: &mut Value, reference: &str) -> bool {
    match value {
        Value::Object(object) => {
            let mut found = false;
            if let Some(target) = object.get_mut("$ref")
                && target == "#"
            {
                *target = Value::String(reference.to_owned());
                found = true;
            }
            object.values_mut().fold(found, |found, field| retarget_root_references(field, reference) | found)
        }
        Value::Array(items) => {
            items.iter_mut().fold(false, |found, item| retarget_root_references(item, reference) | found)
        }
        _ => false,
    }
}

/// Adds to `schema` the definitions its remaining `$ref`s (a recursive type's) point to, and
/// those theirs point to, each inlined but where it recurs: the file resolves on its own.
fn with_definitions(mut schema: Value, definitions: &Map<String, Value>) -> Value {
    let mut kept = Map::new();
    let mut pending = references(&schema);
    while let Some(name) = pending.pop() {
        if kept.contains_key(&name) {
            continue;
        }
        let Some(mut definition) = definitions.get(&name).cloned() else { continue };
        inline(&mut definition, definitions, &mut vec![name.clone()]);
        pending.extend(references(&definition));
        kept.insert(name, definition);
    }
    if let (false, Value::Object(object)) = (kept.is_empty(), &mut schema) {
        object.insert("definitions".into(), Value::Object(kept));
    }
    schema
}

/// The names of the definitions a schema refers to (`#/definitions/<name>`).
fn references(schema: &Value) -> Vec<String> {
    match schema {
        Value::Object(object) => {
            let own = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/definitions/"))
                .map(str::to_owned);
            own.into_iter().chain(object.values().flat_map(references)).collect()
        }
        Value::Array(items) => items.iter().flat_map(references).collect(),
        _ => Vec::new(),
    }
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
    let (root, definitions) = inlined::<E>();
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
    variants.into_iter().map(|(name, fields)| (name, with_definitions(fields, &definitions))).collect()
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::ReferenceId;

    #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[reference(prefix = "ord")]
    pub struct OrderId(uuid::Uuid);

    /// A type that contains itself.
    #[derive(Serialize, Deserialize, JsonSchema, Clone, Debug)]
    pub struct Node {
        name: String,
        children: Vec<Node>,
    }

    /// The committed version.
    #[derive(crate::Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
    #[event(module = "order", key = order_id)]
    pub enum OrderEvent {
        /// An order was placed.
        Placed { order_id: OrderId, quantity: u32, tree: Node },
    }

    mod compatible {
        use super::*;

        /// An optional field added: same version.
        #[derive(crate::Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
        #[event(module = "order", key = order_id)]
        pub enum OrderEvent {
            /// An order was placed.
            Placed { order_id: OrderId, quantity: u32, tree: Node, note: Option<String> },
        }
    }

    mod breaking {
        use super::*;

        /// `quantity` made text, under the same version.
        #[derive(crate::Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
        #[event(module = "order", key = order_id)]
        pub enum OrderEvent {
            /// An order was placed.
            Placed { order_id: OrderId, quantity: String, tree: Node },
        }
    }

    mod raised {
        use super::*;

        fn upcast(_: &str, _: u32, payload: Value) -> Result<Value, String> {
            Ok(payload)
        }

        /// `quantity` made text, under a new version with an upcaster.
        #[derive(crate::Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
        #[event(module = "order", key = order_id, version = 2, upcast = upcast)]
        pub enum OrderEvent {
            /// An order was placed.
            Placed { order_id: OrderId, quantity: String, tree: Node },
        }
    }

    fn catalog_of<E: Event + JsonSchema>() -> Catalog {
        let mut catalog = Catalog::new();
        catalog.event::<E>();
        catalog
    }

    /// A directory with the committed snapshots of [`OrderEvent`].
    fn committed() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        catalog_of::<OrderEvent>().write_to(dir.path()).unwrap();
        dir
    }

    fn placed_v1(dir: &Path) -> PathBuf {
        dir.join("events/order/OrderPlaced.v1.json")
    }

    #[test]
    fn a_recursive_type_keeps_the_definitions_it_refers_to() {
        for schema in [schema_of::<Node>(), catalog_of::<OrderEvent>().messages()[0].schema.clone()] {
            let names = references(&schema);
            assert!(!names.is_empty(), "{schema:#}");
            for name in names {
                assert!(schema["definitions"].get(&name).is_some(), "dangling `#/definitions/{name}` in {schema:#}");
            }
        }
        // Nothing else is kept: every other reference is inlined.
        assert_eq!(catalog_of::<OrderEvent>().messages()[0].schema["definitions"].as_object().unwrap().len(), 1);
        assert!(schema_of::<OrderId>().get("definitions").is_none());
    }

    #[test]
    fn a_committed_type_without_a_current_one_breaks() {
        let dir = committed();
        let snapshot = std::fs::read_to_string(placed_v1(dir.path())).unwrap();
        for file in ["events/order/OrderShipped.v1.json", "public/shipping/OrderShipped.v3.json"] {
            std::fs::create_dir_all(dir.path().join(file).parent().unwrap()).unwrap();
            std::fs::write(dir.path().join(file), &snapshot).unwrap();
        }
        std::fs::write(dir.path().join("events/order/README.md"), "not a schema").unwrap();
        let breaking = catalog_of::<OrderEvent>().breaking_changes(dir.path()).unwrap();
        let found: Vec<_> = breaking.iter().map(|b| (b.message.as_str(), b.version, b.changes.clone())).collect();
        assert_eq!(
            found,
            [("OrderShipped", 1, vec![Change::MessageRemoved]), ("OrderShipped", 3, vec![Change::MessageRemoved])]
        );
        assert_eq!(breaking[1].file, dir.path().join("public/shipping/OrderShipped.v3.json"));
        assert!(breaking[0].to_string().contains("removed, renamed or moved"), "{}", breaking[0]);
    }

    #[test]
    fn a_lowered_version_breaks() {
        let dir = committed();
        let v2 = dir.path().join("events/order/OrderPlaced.v2.json");
        std::fs::copy(placed_v1(dir.path()), &v2).unwrap();
        let breaking = catalog_of::<OrderEvent>().breaking_changes(dir.path()).unwrap();
        assert_eq!(
            breaking,
            [Breaking {
                message: "OrderPlaced".into(),
                version: 2,
                file: v2,
                changes: vec![Change::VersionLowered { committed: 2, current: 1 }],
            }]
        );
    }

    #[test]
    fn writing_refuses_to_overwrite_an_incompatible_snapshot() {
        let dir = committed();
        let before = std::fs::read_to_string(placed_v1(dir.path())).unwrap();
        let error = catalog_of::<breaking::OrderEvent>().write_to(dir.path()).unwrap_err();
        let CatalogError::Breaking { breaking, .. } = &error else { panic!("{error}") };
        assert_eq!(
            breaking[0].changes,
            [Change::TypeChanged { field: "quantity".into(), from: "integer".into(), to: "string".into() }]
        );
        let message = error.to_string();
        for expected in ["refusing to write", "OrderPlaced version 1", "field `quantity`", "raise the type's version"] {
            assert!(message.contains(expected), "`{expected}` not in: {message}");
        }
        assert_eq!(std::fs::read_to_string(placed_v1(dir.path())).unwrap(), before, "the snapshot is left as it was");
        // So the check still fails, as it must.
        assert_eq!(catalog_of::<breaking::OrderEvent>().breaking_changes(dir.path()).unwrap().len(), 1);

        // A compatible change is written.
        catalog_of::<compatible::OrderEvent>().write_to(dir.path()).unwrap();
        assert!(std::fs::read_to_string(placed_v1(dir.path())).unwrap().contains("\"note\""));
    }

    #[test]
    fn a_breaking_change_under_a_raised_version_is_a_new_contract() {
        let dir = committed();
        let raised = catalog_of::<raised::OrderEvent>();
        assert_eq!(raised.breaking_changes(dir.path()).unwrap(), []);
        raised.write_to(dir.path()).unwrap();
        assert!(dir.path().join("events/order/OrderPlaced.v2.json").exists());
        assert!(placed_v1(dir.path()).exists(), "the old version's snapshot stays");
        assert_eq!(raised.breaking_changes(dir.path()).unwrap(), []);
    }
}
