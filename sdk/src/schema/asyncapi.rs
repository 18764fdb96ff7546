//! The AsyncAPI 3.0 document of the public feeds: a channel per feed (its topic as address,
//! the Kafka binding), a receive operation per channel (what a partner does), and a message per
//! public event type with its JSON Schema payload, its CloudEvents headers (Kafka protocol
//! binding, binary mode) and its Kafka key.

use serde_json::{Map, Value, json};

use super::{Catalog, FeedSchema, MessageSchema};
use crate::codec::headers;

/// The document's `info` object and where the feeds are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The API's title.
    pub title: String,
    /// The API's version (of the document, not of a message type).
    pub version: String,
    /// What the feeds are for.
    pub description: String,
    /// Kafka bootstrap servers partners connect to (`host:port`), if known.
    pub servers: Vec<String>,
}

/// The Kafka bindings version used throughout.
const KAFKA_BINDING: &str = "0.5.0";

/// The AsyncAPI 3.0.0 document of the catalog's public feeds.
pub fn document(catalog: &Catalog, info: &Info) -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for feed in catalog.feeds() {
        let channel = channel_id(feed);
        let mut channel_messages = Map::new();
        let mut operation_messages = Vec::new();
        for message in &feed.messages {
            let id = message_id(message);
            messages.entry(id.clone()).or_insert_with(|| message_object(message, feed));
            channel_messages.insert(id.clone(), json!({"$ref": format!("#/components/messages/{id}")}));
            operation_messages.push(json!({"$ref": format!("#/channels/{channel}/messages/{id}")}));
        }
        channels.insert(
            channel.clone(),
            json!({
                "address": feed.topic(),
                "title": feed.feed,
                "description": feed.description,
                "messages": channel_messages,
                "bindings": {"kafka": {
                    "topic": feed.topic(),
                    "partitions": feed.partitions,
                    "bindingVersion": KAFKA_BINDING,
                }},
            }),
        );
        operations.insert(
            format!("receive{}", upper_camel(&feed.feed)),
            json!({
                "action": "receive",
                "channel": {"$ref": format!("#/channels/{channel}")},
                "summary": format!("Read `{}`: consume it in a group of your own, idempotent by `ce_id`.", feed.topic()),
                "messages": operation_messages,
                "bindings": {"kafka": {
                    "groupId": {"type": "string", "description": "Your own consumer group."},
                    "bindingVersion": KAFKA_BINDING,
                }},
            }),
        );
    }
    let mut document = json!({
        "asyncapi": "3.0.0",
        "info": {"title": info.title, "version": info.version, "description": info.description},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    });
    if !info.servers.is_empty() {
        let servers: Map<String, Value> = info
            .servers
            .iter()
            .enumerate()
            .map(|(i, host)| (format!("kafka{}", i + 1), json!({"host": host, "protocol": "kafka"})))
            .collect();
        document["servers"] = Value::Object(servers);
    }
    document
}

fn message_object(message: &MessageSchema, feed: &FeedSchema) -> Value {
    json!({
        "name": message.name,
        "title": format!("{} (version {})", message.name, message.version),
        "summary": message.schema.get("description").and_then(Value::as_str).unwrap_or(message.name),
        "contentType": "application/json",
        "headers": cloud_event_headers(message),
        "payload": message.schema,
        "bindings": {"kafka": {"key": feed.key, "bindingVersion": KAFKA_BINDING}},
    })
}

/// The CloudEvents attributes as Kafka headers (binary mode); every value is text.
fn cloud_event_headers(message: &MessageSchema) -> Value {
    let text = |description: &str| json!({"type": "string", "description": description});
    json!({
        "type": "object",
        "properties": {
            headers::SPEC_VERSION: {"type": "string", "const": "1.0", "description": "CloudEvents spec version."},
            headers::ID: {"type": "string", "format": "uuid", "description": "The event id: the same id on a redelivery, so deduplicate by it."},
            headers::SOURCE: text("Who published the event."),
            headers::TYPE: {"type": "string", "const": message.name, "description": "The event type."},
            headers::TIME: {"type": "string", "format": "date-time", "description": "When it happened (RFC 3339)."},
            headers::SUBJECT: text("The record key: what the event is about."),
            headers::SCHEMA_VERSION: {"type": "string", "const": message.version.to_string(), "description": "The version of the payload's schema."},
            headers::CONTENT_TYPE: {"type": "string", "const": "application/json"},
        },
        "required": [
            headers::SPEC_VERSION, headers::ID, headers::SOURCE, headers::TYPE, headers::TIME,
            headers::SCHEMA_VERSION, headers::CONTENT_TYPE,
        ],
    })
}

fn channel_id(feed: &FeedSchema) -> String {
    lower_camel(&feed.feed)
}

fn message_id(message: &MessageSchema) -> String {
    format!("{}V{}", message.name, message.version)
}

/// `orders.city-bus` -> `OrdersCityBus`: AsyncAPI component keys allow `[A-Za-z0-9.\-_]`, and
/// camel case reads best in generated code.
fn upper_camel(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn lower_camel(name: &str) -> String {
    let upper = upper_camel(name);
    let mut chars = upper.chars();
    chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_camel_case() {
        assert_eq!(upper_camel("orders.city-bus"), "OrdersCityBus");
        assert_eq!(lower_camel("orders.city-bus"), "ordersCityBus");
    }
}
