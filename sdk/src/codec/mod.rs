//! Envelopes to records and back: the JSON payload of the message type, and CloudEvents
//! headers (Kafka protocol binding, binary mode).
//!
//! The record's value is the JSON of the variant's fields only (`{"payment_id": "pay_…"}`); the
//! type travels in `ce_type`, the key in the record key and `ce_subject`.

mod variant;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use uuid::Uuid;

use crate::log::{Headers, OutRecord, Record};
use crate::model::{Envelope, Message, Position, Upcaster};
use crate::privacy;

/// CloudEvents and tramline header names.
pub mod headers {
    /// CloudEvents spec version (`1.0`).
    pub const SPEC_VERSION: &str = "ce_specversion";
    /// The message id (UUIDv7).
    pub const ID: &str = "ce_id";
    /// The owning module.
    pub const SOURCE: &str = "ce_source";
    /// The message type (`PaymentCompleted`).
    pub const TYPE: &str = "ce_type";
    /// Event time, RFC 3339.
    pub const TIME: &str = "ce_time";
    /// The key: the reference ID of the entity.
    pub const SUBJECT: &str = "ce_subject";
    /// Schema version of the payload (extension attribute).
    pub const SCHEMA_VERSION: &str = "ce_schemaversion";
    /// Correlation id (extension attribute).
    pub const CORRELATION_ID: &str = "ce_correlationid";
    /// Causation id (extension attribute).
    pub const CAUSATION_ID: &str = "ce_causationid";
    /// W3C trace context (CloudEvents distributed tracing extension).
    pub const TRACEPARENT: &str = "traceparent";
    /// Payload media type.
    pub const CONTENT_TYPE: &str = "content-type";
}

/// Why a record could not be decoded into an envelope. Names the record's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required header is missing or not valid text of the right form.
    #[error("record {position}: header `{header}` {problem}")]
    Header {
        /// The record.
        position: Position,
        /// The header name.
        header: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The type in `ce_type` is not one of the enum's types.
    #[error("record {position}: unknown {expected} type `{found}`; known types: {known}")]
    UnknownType {
        /// The record.
        position: Position,
        /// The enum expected on this topic.
        expected: &'static str,
        /// The type found.
        found: String,
        /// The known types, comma-separated.
        known: String,
    },
    /// The record was written by a newer schema version than this program knows.
    #[error(
        "record {position}: `{message_type}` has schema version {found}, this program knows up to {known}; upgrade the reader"
    )]
    UnknownVersion {
        /// The record.
        position: Position,
        /// The message type.
        message_type: String,
        /// The version on the record.
        found: u32,
        /// The newest version known.
        known: u32,
    },
    /// The record was written by an older schema version and could not be upcast.
    #[error(
        "record {position}: `{message_type}` of schema version {found} cannot be read as version {current}: {problem}"
    )]
    Upcast {
        /// The record.
        position: Position,
        /// The message type.
        message_type: String,
        /// The version on the record.
        found: u32,
        /// The version this program writes.
        current: u32,
        /// What the upcaster said.
        problem: String,
    },
    /// The record has no value (a tombstone) where a message was expected.
    #[error("record {position}: no value (tombstone) where a message was expected")]
    Tombstone {
        /// The record.
        position: Position,
    },
    /// The value is not the JSON of the message type.
    #[error("record {position}: payload of `{message_type}` is not valid: {problem}")]
    Payload {
        /// The record.
        position: Position,
        /// The message type.
        message_type: String,
        /// The JSON error.
        problem: String,
    },
    /// The record's topic is not one the processor subscribes to.
    #[error("record {position}: topic is not subscribed by {processor}")]
    NotSubscribed {
        /// The record.
        position: Position,
        /// The processor that received it.
        processor: &'static str,
    },
}

impl DecodeError {
    /// Where the record that failed sits.
    pub fn position(&self) -> &Position {
        match self {
            DecodeError::Header { position, .. }
            | DecodeError::UnknownType { position, .. }
            | DecodeError::UnknownVersion { position, .. }
            | DecodeError::Upcast { position, .. }
            | DecodeError::Tombstone { position }
            | DecodeError::Payload { position, .. }
            | DecodeError::NotSubscribed { position, .. } => position,
        }
    }
}

/// Encodes an envelope as a record for `M::TOPIC`, keyed by the message's reference ID.
pub fn encode<M: Message>(envelope: &Envelope<M>) -> OutRecord {
    encode_to(envelope, Arc::from(M::TOPIC))
}

/// Encodes an envelope as a record for the given topic.
pub fn encode_to<M: Message>(envelope: &Envelope<M>, topic: Arc<str>) -> OutRecord {
    // Personal data is sealed for the message's subject, its key; other messages skip that.
    let (value, sealed_with) = match M::PERSONAL {
        true => privacy::sealing(&envelope.payload.key().to_string(), || variant::to_json(&envelope.payload)),
        false => (variant::to_json(&envelope.payload), Vec::new()),
    };
    let value = value.unwrap_or_else(|error| {
        // Serialising a derived Serialize into a Vec only fails on a custom impl that errors:
        // a programming error of the message type (or personal data outside a key store's
        // scope), not bad input. A `Personal` value in a field not marked `#[pii]` (the derive
        // sees it only in the field's own type) is not sealed, and fails here.
        let unmarked = match M::PERSONAL {
            true => "",
            false => {
                "; if a field holds tramline::privacy::Personal data (inside a struct or through a type alias), \
                 mark that field `#[pii]`"
            }
        };
        panic!("cannot serialise {} as JSON: {error}{unmarked}", M::NAME)
    });
    // Every header goes into one buffer, the key is a slice of `ce_subject`: one allocation.
    // Ten CloudEvents headers take about 340 bytes: start above that, so the buffer is
    // allocated once.
    let mut headers = Headers::builder(384);
    headers.push(headers::SPEC_VERSION, b"1.0");
    headers.push_with(headers::ID, |b| write_uuid(b, &envelope.id));
    headers.push(headers::SOURCE, M::MODULE.as_bytes());
    headers.push(headers::TYPE, envelope.payload.type_name().as_bytes());
    headers.push_with(headers::TIME, |b| write_display(b, &envelope.time));
    let key = headers.push_with(headers::SUBJECT, |b| write_display(b, envelope.payload.key()));
    // The payload is written in the current shape, whatever version it was read from: an
    // envelope decoded from an older record must not go out labelled with that version, or the
    // next reader would upcast it again.
    headers.push_with(headers::SCHEMA_VERSION, |b| write_display(b, &M::VERSION));
    headers.push_with(headers::CORRELATION_ID, |b| write_uuid(b, &envelope.correlation_id));
    if let Some(causation) = envelope.causation_id {
        headers.push_with(headers::CAUSATION_ID, |b| write_uuid(b, &causation));
    }
    headers.push(headers::CONTENT_TYPE, b"application/json");
    if !sealed_with.is_empty() {
        headers.push_with(privacy::KEY_IDS_HEADER, |b| write_key_ids(b, &sealed_with));
    }
    let headers = headers.build();
    OutRecord {
        topic,
        partition: None,
        key: Some(headers.encoded().slice(key)),
        value: Some(Bytes::from(value)),
        headers,
        timestamp: Some(envelope.time.as_millisecond()),
    }
}

/// Checks that a message encoded by [`encode_to`] reads back as a message of its type. JSON has
/// no NaN or infinity: serde_json writes such a float as `null`, which an `f64` field refuses,
/// so an event holding one would be written and then read by no one, its own entity's rebuild
/// included. Only a payload with a `null` in it is read again.
pub(crate) fn check_reads_back<M: Message>(message: &M, record: &OutRecord) -> Result<(), String> {
    let Some(value) = record.value.as_deref() else { return Ok(()) };
    if !value.windows(4).any(|window| window == b"null") {
        return Ok(());
    }
    let type_name = message.type_name();
    let variant = M::message_type(type_name).map_or(type_name, |t| t.variant);
    let read = || variant::from_json::<M>(variant, value);
    // Personal data opens for the message's subject, as `decode` opens it (without forgetting).
    let read = match M::PERSONAL {
        true => privacy::opening_state(&message.key().to_string(), read),
        false => read(),
    };
    read.map(drop).map_err(|error| {
        format!(
            "{type_name} of {} does not read back from the JSON it is written as ({error}): JSON has no NaN or \
             infinity, which serde_json writes as null, so it is not written",
            M::NAME
        )
    })
}

fn write_display(text: &mut BytesMut, value: &dyn std::fmt::Display) {
    use std::fmt::Write;
    write!(text, "{value}").expect("writing to memory cannot fail");
}

/// The ids of the keys a record's personal data is sealed with, comma-separated.
pub(crate) fn write_key_ids(text: &mut BytesMut, ids: &[Uuid]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            text.extend_from_slice(b",");
        }
        write_uuid(text, id);
    }
}

fn write_uuid(text: &mut BytesMut, uuid: &Uuid) {
    text.extend_from_slice(uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
}

/// The position of a record, for errors and envelopes.
pub fn position_of(record: &Record) -> Position {
    Position { topic: record.topic.clone(), partition: record.partition, offset: record.offset }
}

fn required<'r>(record: &Record, name: &'static str, value: Option<&'r [u8]>) -> Result<&'r [u8], DecodeError> {
    value.ok_or_else(|| DecodeError::Header {
        position: position_of(record),
        header: name,
        problem: "is missing".into(),
    })
}

fn header_error(record: &Record, name: &'static str, value: &[u8], error: &dyn std::fmt::Display) -> DecodeError {
    DecodeError::Header {
        position: position_of(record),
        header: name,
        problem: format!("`{}` does not parse: {error}", String::from_utf8_lossy(value)),
    }
}

fn uuid_header(record: &Record, name: &'static str, value: Option<&[u8]>) -> Result<Option<Uuid>, DecodeError> {
    value
        .map(|value| Uuid::try_parse_ascii(value).map_err(|error| header_error(record, name, value, &error)))
        .transpose()
}

/// Parses `ce_time` from bytes, without a UTF-8 pass or an allocation.
static TIME_PARSER: jiff::fmt::temporal::DateTimeParser = jiff::fmt::temporal::DateTimeParser::new();

/// The message type named by a record's `ce_type` header, if it has one.
pub fn type_of(record: &Record) -> Option<&str> {
    record.header(headers::TYPE).and_then(|v| std::str::from_utf8(v).ok())
}

/// The CloudEvents attributes of a record, checked as every reader checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// The schema version the payload was written with (`ce_schemaversion`, 1 when absent).
    pub version: u32,
    /// The message id (`ce_id`).
    pub id: Uuid,
    /// When it happened (`ce_time`).
    pub time: jiff::Timestamp,
    /// `ce_correlationid`, the id itself when absent.
    pub correlation_id: Uuid,
    /// `ce_causationid`.
    pub causation_id: Option<Uuid>,
}

/// The headers of a record's CloudEvents attributes, found in one pass over its headers.
#[derive(Debug, Clone, Copy)]
pub struct AttributeHeaders<'r> {
    /// `ce_type`.
    pub type_name: Option<&'r [u8]>,
    version: Option<&'r [u8]>,
    id: Option<&'r [u8]>,
    time: Option<&'r [u8]>,
    correlation_id: Option<&'r [u8]>,
    causation_id: Option<&'r [u8]>,
    spec_version: Option<&'r [u8]>,
    content_type: Option<&'r [u8]>,
}

impl<'r> AttributeHeaders<'r> {
    /// The attribute headers of `record`.
    pub fn of(record: &'r Record) -> Self {
        let [type_name, version, id, time, correlation_id, causation_id, spec_version, content_type] =
            record.headers.get_all([
                headers::TYPE,
                headers::SCHEMA_VERSION,
                headers::ID,
                headers::TIME,
                headers::CORRELATION_ID,
                headers::CAUSATION_ID,
                headers::SPEC_VERSION,
                headers::CONTENT_TYPE,
            ]);
        AttributeHeaders { type_name, version, id, time, correlation_id, causation_id, spec_version, content_type }
    }

    /// Whether the record is a CloudEvent as tramline writes them: CloudEvents 1.0 in binary
    /// mode (attributes in `ce_*` headers) with a JSON payload. Either header may be absent.
    fn check_format(&self, record: &Record) -> Result<(), DecodeError> {
        let problem = |header, value: &[u8], why: &str| DecodeError::Header {
            position: position_of(record),
            header,
            problem: format!("is `{}`: {why}", String::from_utf8_lossy(value)),
        };
        if let Some(version) = self.spec_version
            && version != b"1.0"
        {
            return Err(problem(headers::SPEC_VERSION, version, "tramline reads CloudEvents 1.0"));
        }
        if let Some(content_type) = self.content_type {
            let media_type = content_type.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
            if media_type.eq_ignore_ascii_case(b"application/cloudevents+json") {
                let why = "a CloudEvent in structured mode (the whole event in the value); tramline reads binary \
                           mode, the attributes in ce_* headers and the data in the value";
                return Err(problem(headers::CONTENT_TYPE, content_type, why));
            }
            if !media_type.eq_ignore_ascii_case(b"application/json") {
                return Err(problem(headers::CONTENT_TYPE, content_type, "tramline reads JSON payloads"));
            }
        }
        Ok(())
    }

    /// The record's event type (`ce_type`), once its format is one tramline reads: a record in
    /// another format (structured mode) says so rather than that `ce_type` is missing.
    pub fn event_type(&self, record: &Record) -> Result<&'r [u8], DecodeError> {
        self.check_format(record)?;
        required(record, headers::TYPE, self.type_name)
    }

    /// Checks the attributes of `record`, of `message_type` whose enum writes schema version
    /// `current`, as [`decode`] does: a reader that does not decode the payload into the enum (a
    /// stream query) refuses exactly the records that `decode` refuses for their headers.
    pub fn check(&self, record: &Record, message_type: &str, current: u32) -> Result<Attributes, DecodeError> {
        self.check_format(record)?;
        let version = match self.version {
            None => 1,
            // As tramline writes it: digits, no sign, no leading zero, from 1.
            Some(value) => std::str::from_utf8(value)
                .ok()
                .filter(|v| v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0'))
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| header_error(record, headers::SCHEMA_VERSION, value, &"not a version (1, 2, …)"))?,
        };
        if version > current {
            return Err(DecodeError::UnknownVersion {
                position: position_of(record),
                message_type: message_type.to_owned(),
                found: version,
                known: current,
            });
        }
        let id = required(record, headers::ID, self.id)?;
        let id = Uuid::try_parse_ascii(id).map_err(|error| header_error(record, headers::ID, id, &error))?;
        let time = required(record, headers::TIME, self.time)?;
        let time = TIME_PARSER
            .parse_timestamp(time)
            .map_err(|error| header_error(record, headers::TIME, time, &error))?;
        Ok(Attributes {
            version,
            id,
            time,
            correlation_id: uuid_header(record, headers::CORRELATION_ID, self.correlation_id)?.unwrap_or(id),
            causation_id: uuid_header(record, headers::CAUSATION_ID, self.causation_id)?,
        })
    }
}

/// Decodes a record into an envelope of `M`.
pub fn decode<M: Message>(record: &Record) -> Result<Envelope<M>, DecodeError> {
    let found = AttributeHeaders::of(record);
    let type_name = found.event_type(record)?;
    let message_type =
        M::TYPES.iter().find(|t| t.name.as_bytes() == type_name).ok_or_else(|| DecodeError::UnknownType {
            position: position_of(record),
            expected: M::NAME,
            found: String::from_utf8_lossy(type_name).into_owned(),
            known: M::TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
        })?;
    let Attributes { version, id, time, correlation_id, causation_id } =
        found.check(record, message_type.name, M::VERSION)?;
    let value = record.value.as_ref().ok_or_else(|| DecodeError::Tombstone { position: position_of(record) })?;
    let read_payload = || -> Result<M, DecodeError> {
        let payload = current_payload(record, value, message_type.name, version, M::VERSION, M::upcast)?;
        variant::from_json(message_type.variant, &payload).map_err(|e| payload_error(record, message_type.name, e))
    };
    // Personal data opens with the keys of the record's subject, its key.
    let payload = match M::PERSONAL {
        true => privacy::opening(&record.key_text(), read_payload)?,
        false => read_payload()?,
    };
    Ok(Envelope { id, time, version, correlation_id, causation_id, position: Some(position_of(record)), payload })
}

/// The payload `value` of `record`, a `message_type` written with schema `version`, in the
/// shape of version `current`: as it is, or made so by the enum's `upcast`.
pub fn current_payload<'v>(
    record: &Record,
    value: &'v [u8],
    message_type: &str,
    version: u32,
    current: u32,
    upcast: Upcaster,
) -> Result<Cow<'v, [u8]>, DecodeError> {
    if version == current {
        return Ok(Cow::Borrowed(value));
    }
    let old = serde_json::from_slice(value).map_err(|e| payload_error(record, message_type, e))?;
    let new = upcast(message_type, version, old).map_err(|problem| DecodeError::Upcast {
        position: position_of(record),
        message_type: message_type.to_owned(),
        found: version,
        current,
        problem,
    })?;
    Ok(Cow::Owned(serde_json::to_vec(&new).expect("a JSON value always serialises")))
}

fn payload_error(record: &Record, message_type: &str, error: serde_json::Error) -> DecodeError {
    DecodeError::Payload {
        position: position_of(record),
        message_type: message_type.to_owned(),
        problem: error.to_string(),
    }
}

/// The payload of a message as JSON text: the fields of its variant.
pub fn payload_json<M: Message>(message: &M) -> serde_json::Result<Vec<u8>> {
    variant::to_json(message)
}

/// A message of type `variant` from the JSON of its fields.
pub fn payload_from_json<M: Message>(variant: &'static str, json: &[u8]) -> serde_json::Result<M> {
    variant::from_json(variant, json)
}

/// The identity of a message on a record, read from its headers without decoding the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lineage {
    /// The message id (`ce_id`).
    pub id: Uuid,
    /// Its correlation id (its own id when the header is absent).
    pub correlation_id: Uuid,
}

/// The id and correlation id of the message on a record, if its headers carry them.
pub fn lineage(record: &Record) -> Option<Lineage> {
    let [id, correlation_id] = record.headers.get_all([headers::ID, headers::CORRELATION_ID]);
    let id = Uuid::try_parse_ascii(id?).ok()?;
    let correlation_id = correlation_id.and_then(|v| Uuid::try_parse_ascii(v).ok()).unwrap_or(id);
    Some(Lineage { id, correlation_id })
}
