//! The AsyncAPI 3.0 document of the public feeds: a channel per feed (its topic as address,
//! the Kafka binding), a receive operation per channel (what a partner does), and a message per
//! public event type with its JSON Schema payload, its CloudEvents headers (Kafka protocol
//! binding, binary mode) and its Kafka key.
//!
//! Ids are made of letters and digits (`orders.metro` -> channel `ordersMetro`, message
//! `PartnerFeedOrderConfirmedV1`): two feeds or two different messages that would share one is an
//! [`AsyncApiError`], never one silently replacing the other.

use std::collections::BTreeMap;

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

/// Why the document cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsyncApiError {
    /// Two feeds map to one channel id.
    #[error(
        "the feeds `{first}` and `{second}` both get the AsyncAPI channel id `{id}` (ids keep only letters and \
         digits): rename one of them"
    )]
    FeedIdCollision {
        /// The id.
        id: String,
        /// The feed added first.
        first: String,
        /// The feed added second.
        second: String,
    },
    /// Two different messages map to one message id.
    #[error(
        "{first} and {second} both get the AsyncAPI message id `{id}` but differ (ids keep only letters and digits \
         of the module): rename a module or a type, or give both the same schema and key"
    )]
    MessageIdCollision {
        /// The id.
        id: String,
        /// The message added first (`partner-feed's OrderConfirmed version 1 on orders.metro`).
        first: String,
        /// The message added second.
        second: String,
    },
}

/// The AsyncAPI 3.0.0 document of the catalog's public feeds.
///
/// # Panics
///
/// When two feeds or two different messages map to one id (see [`try_document`]).
pub fn document(catalog: &Catalog, info: &Info) -> Value {
    try_document(catalog, info).unwrap_or_else(|error| panic!("AsyncAPI document: {error}"))
}

/// The AsyncAPI 3.0.0 document of the catalog's public feeds, or why two of them collide.
pub fn try_document(catalog: &Catalog, info: &Info) -> Result<Value, AsyncApiError> {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    // Who took each id, for the collision errors.
    let mut channel_owners: BTreeMap<String, &str> = BTreeMap::new();
    let mut message_owners: BTreeMap<String, String> = BTreeMap::new();
    for feed in catalog.feeds() {
        // The operation id derives from the same name: a distinct channel id keeps it distinct.
        let channel = channel_id(feed);
        if let Some(first) = channel_owners.insert(channel.clone(), &feed.feed) {
            let (first, second) = (first.to_owned(), feed.feed.clone());
            return Err(AsyncApiError::FeedIdCollision { id: channel, first, second });
        }
        let mut channel_messages = Map::new();
        let mut operation_messages = Vec::new();
        for message in &feed.messages {
            let id = message_id(message);
            let object = message_object(message, &id);
            let owner = format!("{}'s {} version {} on {}", message.module, message.name, message.version, feed.feed);
            match messages.get(&id) {
                Some(existing) if *existing != object => {
                    let first = message_owners[&id].clone();
                    return Err(AsyncApiError::MessageIdCollision { id, first, second: owner });
                }
                Some(_) => {}
                None => {
                    messages.insert(id.clone(), object);
                    message_owners.insert(id.clone(), owner);
                }
            }
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
    Ok(document)
}

fn message_object(message: &MessageSchema, id: &str) -> Value {
    // A `$ref` of a recursive type points into the payload's own definitions: from the
    // document's root, that is under the message.
    let mut payload = message.schema.clone();
    let definitions = format!("#/components/messages/{id}/payload/definitions/");
    rebase_references(&mut payload, &definitions);
    json!({
        "name": message.name,
        "title": format!("{} (version {})", message.name, message.version),
        "summary": message.schema.get("description").and_then(Value::as_str).unwrap_or(message.name),
        "contentType": "application/json",
        "headers": cloud_event_headers(message),
        "payload": payload,
        "bindings": {"kafka": {"key": message.key, "bindingVersion": KAFKA_BINDING}},
    })
}

/// Rewrites every `#/definitions/X` reference to `<base>X`.
fn rebase_references(schema: &mut Value, base: &str) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get_mut("$ref")
                && let Some(name) = reference.strip_prefix("#/definitions/")
            {
                *reference = format!("{base}{name}");
            }
            object.values_mut().for_each(|value| rebase_references(value, base));
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rebase_references(item, base)),
        _ => {}
    }
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

/// `partner-feed`'s `OrderConfirmed` version 1 -> `PartnerFeedOrderConfirmedV1`: the module
/// keeps two modules' types of one name apart.
fn message_id(message: &MessageSchema) -> String {
    format!("{}{}V{}", upper_camel(message.module), message.name, message.version)
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
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::ReferenceId;
    use crate::export::{Export, PublicEvent};
    use crate::schema::Audience;

    #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[reference(prefix = "ord")]
    pub struct OrderId(uuid::Uuid);

    #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[reference(prefix = "inv")]
    pub struct InvoiceId(uuid::Uuid);

    #[derive(crate::Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
    #[event(module = "order", key = order_id)]
    pub enum OrderEvent {
        /// An order was confirmed.
        Confirmed { order_id: OrderId, invoice_id: InvoiceId },
    }

    /// Keyed by the order.
    #[derive(Serialize, Deserialize, JsonSchema, Clone, Debug)]
    pub struct OrderShipped {
        order_id: OrderId,
    }

    impl PublicEvent for OrderShipped {
        const NAME: &'static str = "OrderShipped";
        const VERSION: u32 = 1;
        type Key = OrderId;
        fn key(&self) -> &OrderId {
            &self.order_id
        }
    }

    /// Keyed by the invoice.
    #[derive(Serialize, Deserialize, JsonSchema, Clone, Debug)]
    pub struct OrderInvoiced {
        invoice_id: InvoiceId,
    }

    impl PublicEvent for OrderInvoiced {
        const NAME: &'static str = "OrderInvoiced";
        const VERSION: u32 = 1;
        type Key = InvoiceId;
        fn key(&self) -> &InvoiceId {
            &self.invoice_id
        }
    }

    fn info() -> Info {
        Info { title: "Feeds".into(), version: "1".into(), description: "Test feeds.".into(), servers: Vec::new() }
    }

    fn feed(feed: &str, module: &'static str, payload: Value) -> FeedSchema {
        let message = MessageSchema {
            audience: Audience::Public,
            module,
            topic: format!("public.{feed}"),
            name: "OrderConfirmed",
            version: 1,
            schema: payload,
            key: json!({"type": "string"}),
        };
        let description = "Orders.".into();
        FeedSchema { feed: feed.into(), module, description, partitions: 1, messages: vec![message] }
    }

    #[test]
    fn one_type_published_on_two_feeds_has_one_schema_and_two_of_one_name_are_refused() {
        let mut catalog = Catalog::new();
        catalog.feed(feed("orders.citybus", "shipping", json!({"type": "object", "title": "shipped"})));
        catalog.feed(feed("orders.metro", "shipping", json!({"type": "object", "title": "shipped"})));
        assert_eq!(catalog.messages().len(), 1);
        let clash = std::panic::catch_unwind(move || {
            catalog.feed(feed("orders.airlink", "shipping", json!({"type": "object", "title": "other"})));
        });
        let message = clash.err().and_then(|p| p.downcast_ref::<String>().cloned()).unwrap_or_default();
        assert!(message.contains("both `OrderConfirmed` version 1 with different schemas"), "{message}");
        assert!(message.contains("orders.airlink"), "{message}");
    }

    #[test]
    fn two_modules_publishing_one_type_name_keep_their_own_payloads() {
        let mut catalog = Catalog::new();
        catalog.feed(feed("orders.shipping", "shipping", json!({"type": "object", "title": "shipped"})));
        catalog.feed(feed("orders.billing", "billing", json!({"type": "object", "title": "billed"})));
        let document = document(&catalog, &info());
        let messages = &document["components"]["messages"];
        assert_eq!(messages.as_object().unwrap().len(), 2, "{messages:#}");
        assert_eq!(messages["ShippingOrderConfirmedV1"]["payload"]["title"], "shipped");
        assert_eq!(messages["BillingOrderConfirmedV1"]["payload"]["title"], "billed");
        assert_eq!(
            document["channels"]["ordersBilling"]["messages"]["BillingOrderConfirmedV1"]["$ref"],
            "#/components/messages/BillingOrderConfirmedV1"
        );
    }

    #[test]
    fn each_message_carries_its_own_key() {
        let export = Export::new("shipping", "orders", "Orders.")
            .publish(
                |_, _: &crate::Envelope<OrderEvent>| true,
                |_, event| match &event.payload {
                    OrderEvent::Confirmed { order_id, .. } => Ok(OrderShipped { order_id: *order_id }),
                },
            )
            .publish(
                |_, _: &crate::Envelope<OrderEvent>| true,
                |_, event| match &event.payload {
                    OrderEvent::Confirmed { invoice_id, .. } => Ok(OrderInvoiced { invoice_id: *invoice_id }),
                },
            );
        let mut catalog = Catalog::new();
        catalog.feed(export.schema(3));
        let document = document(&catalog, &info());
        let key = |id: &str| document["components"]["messages"][id]["bindings"]["kafka"]["key"]["pattern"].clone();
        assert_eq!(key("ShippingOrderShippedV1"), "^ord_[0-9a-f]{32}$");
        assert_eq!(key("ShippingOrderInvoicedV1"), "^inv_[0-9a-f]{32}$");
    }

    #[test]
    fn feeds_that_would_share_an_id_are_an_error() {
        let mut catalog = Catalog::new();
        catalog.feed(feed("orders.metro", "partner-feed", json!({"type": "object"})));
        catalog.feed(feed("orders_metro", "partner-feed", json!({"type": "object"})));
        let error = try_document(&catalog, &info()).unwrap_err();
        assert_eq!(
            error,
            AsyncApiError::FeedIdCollision {
                id: "ordersMetro".into(),
                first: "orders.metro".into(),
                second: "orders_metro".into()
            }
        );
        assert!(error.to_string().contains("rename one of them"), "{error}");
    }

    #[test]
    fn different_messages_that_would_share_an_id_are_an_error() {
        let mut catalog = Catalog::new();
        catalog.feed(feed("orders.a", "partner-feed", json!({"type": "object"})));
        catalog.feed(feed("orders.b", "partner_feed", json!({"type": "string"})));
        let error = try_document(&catalog, &info()).unwrap_err();
        assert!(matches!(&error, AsyncApiError::MessageIdCollision { id, .. } if id == "PartnerFeedOrderConfirmedV1"));
        assert!(error.to_string().contains("partner_feed's OrderConfirmed version 1 on orders.b"), "{error}");
        // The same message on two feeds is one component.
        let mut catalog = Catalog::new();
        catalog.feed(feed("orders.a", "partner-feed", json!({"type": "object"})));
        catalog.feed(feed("orders.b", "partner-feed", json!({"type": "object"})));
        assert_eq!(try_document(&catalog, &info()).unwrap()["components"]["messages"].as_object().unwrap().len(), 1);
    }

    #[test]
    #[should_panic(expected = "AsyncAPI channel id `ordersMetro`")]
    fn the_document_panics_on_a_collision() {
        let mut catalog = Catalog::new();
        catalog.feed(feed("orders.metro", "partner-feed", json!({"type": "object"})));
        catalog.feed(feed("orders_metro", "partner-feed", json!({"type": "object"})));
        document(&catalog, &info());
    }

    #[test]
    fn a_recursive_payload_refers_to_its_own_definitions() {
        let payload = json!({
            "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}},
            "definitions": {"Node": {"type": "object"}},
        });
        let mut catalog = Catalog::new();
        catalog.feed(feed("orders", "shipping", payload));
        let document = document(&catalog, &info());
        let message = "ShippingOrderConfirmedV1";
        let reference =
            &document["components"]["messages"][message]["payload"]["properties"]["children"]["items"]["$ref"];
        assert_eq!(*reference, format!("#/components/messages/{message}/payload/definitions/Node"));
    }

    #[test]
    fn names_are_camel_case() {
        assert_eq!(upper_camel("orders.city-bus"), "OrdersCityBus");
        assert_eq!(lower_camel("orders.city-bus"), "ordersCityBus");
    }
}
