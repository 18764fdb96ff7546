//! Event evolution: a record written by an older version is upcast on read; one of an unknown
//! (newer) version, or an older one without an upcaster, is refused with a clear error and
//! dead-lettered by the processor that read it.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::codec::{self, DecodeError};
use tramline::log::{EventLog, TopicPartition, TopicSpec};
use tramline::prelude::*;

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "shp")]
pub struct ShopOrderId(uuid::Uuid);

mod v1 {
    use super::*;
    /// What the shop wrote last year.
    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[event(module = "shop", key = order_id)]
    pub enum ShopEvent {
        Ordered { order_id: ShopOrderId, qty: u32 },
    }
}

mod v2 {
    use super::*;
    /// `qty` became `quantity`, and a note was added.
    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[event(module = "shop", key = order_id, version = 2, upcast = upcast)]
    pub enum ShopEvent {
        Ordered { order_id: ShopOrderId, quantity: u32, note: String },
    }

    fn upcast(message_type: &str, version: u32, mut payload: serde_json::Value) -> Result<serde_json::Value, String> {
        match (message_type, version) {
            ("ShopOrdered", 1) => {
                let fields = payload.as_object_mut().ok_or("not an object")?;
                let qty = fields.remove("qty").ok_or("no `qty`")?;
                fields.insert("quantity".into(), qty);
                fields.insert("note".into(), "".into());
                Ok(payload)
            }
            _ => Err(format!("unknown version {version} of {message_type}")),
        }
    }

    /// The same change, made without an upcaster.
    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
    #[event(module = "shop", key = order_id, version = 2)]
    pub enum CarelessShopEvent {
        #[event(rename = "ShopOrdered")]
        Ordered { order_id: ShopOrderId, quantity: u32, note: String },
    }
}

fn old_record(order_id: ShopOrderId) -> tramline::log::Record {
    let out = codec::encode(&Envelope::new(v1::ShopEvent::Ordered { order_id, qty: 3 }, jiff::Timestamp::now()));
    tramline::log::Record {
        topic: out.topic,
        partition: 0,
        offset: 7,
        key: out.key,
        value: out.value,
        headers: out.headers,
        timestamp: 0,
    }
}

#[test]
fn an_old_record_is_upcast_on_read() {
    let id = ShopOrderId::generate();
    let event = codec::decode::<v2::ShopEvent>(&old_record(id)).unwrap();
    assert_eq!(event.payload, v2::ShopEvent::Ordered { order_id: id, quantity: 3, note: String::new() });
    assert_eq!(event.version, 1, "the envelope tells which version was on the log");
    // Written again, it is a record of the current version: the next reader does not upcast it.
    let again = codec::encode(&event);
    let again = tramline::log::Record { value: again.value, headers: again.headers, ..old_record(id) };
    assert_eq!(again.header(codec::headers::SCHEMA_VERSION), Some(&b"2"[..]));
    assert_eq!(codec::decode::<v2::ShopEvent>(&again).unwrap().payload, event.payload);
}

#[test]
fn an_old_record_without_an_upcaster_is_refused_clearly() {
    let error = codec::decode::<v2::CarelessShopEvent>(&old_record(ShopOrderId::generate())).unwrap_err();
    assert!(matches!(error, DecodeError::Upcast { found: 1, current: 2, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "record shop.events/0@7: `ShopOrdered` of schema version 1 cannot be read as version 2: CarelessShopEvent \
         has no upcaster from version 1 of `ShopOrdered` to version 2: declare #[event(upcast = ...)]"
    );
}

#[test]
fn a_record_of_an_unknown_version_is_refused_clearly() {
    // A record of version 2 read by a program that knows version 1.
    let record = {
        let mut record = old_record(ShopOrderId::generate());
        let out = codec::encode(&Envelope::new(
            v2::ShopEvent::Ordered { order_id: ShopOrderId::generate(), quantity: 1, note: "x".into() },
            jiff::Timestamp::now(),
        ));
        (record.value, record.headers) = (out.value, out.headers);
        record
    };
    let error = codec::decode::<v1::ShopEvent>(&record).unwrap_err();
    assert_eq!(
        error.to_string(),
        "record shop.events/0@7: `ShopOrdered` has schema version 2, this program knows up to 1; upgrade the reader"
    );
}

#[derive(Projection, Default)]
#[projection(name = "shop-totals", subscribe(v2::CarelessShopEvent))]
pub struct Totals {
    quantity: u32,
}

impl Handle<v2::CarelessShopEvent> for Totals {
    fn handle(&mut self, event: &Envelope<v2::CarelessShopEvent>) {
        let v2::CarelessShopEvent::Ordered { quantity, .. } = event.payload;
        self.quantity += quantity;
    }
}

#[tokio::test]
async fn records_that_cannot_be_read_go_to_the_dead_letter_topic() {
    let log = Arc::new(MemoryLog::new());
    log.create_topic(&TopicSpec::keep("shop.events", 1)).await.unwrap();
    let now = jiff::Timestamp::now();
    let id = ShopOrderId::generate();
    log.append(vec![
        codec::encode(&Envelope::new(v1::ShopEvent::Ordered { order_id: id, qty: 5 }, now)),
        codec::encode(&Envelope::new(
            v2::CarelessShopEvent::Ordered { order_id: id, quantity: 2, note: "ok".into() },
            now,
        )),
    ])
    .await
    .unwrap();
    let mut app = App::new(log.clone());
    let totals = app.projection(Totals::default()).await.unwrap();
    app.start().await.unwrap();
    app.settle().await.unwrap();
    assert_eq!(totals.read(|t| t.quantity), 2, "the readable record counts, the other is not guessed at");
    assert_eq!(app.dead_letters().await.unwrap(), 1);
    let mut letters = Vec::new();
    for partition in 0..log.partition_count("shop-totals.dlq").await.unwrap().unwrap() {
        letters.extend(log.read(&TopicPartition::new("shop-totals.dlq", partition), 0, 10).await.unwrap());
    }
    let error = letters.iter().find_map(|l| l.header("dlq_error")).map(|e| String::from_utf8_lossy(e).into_owned());
    assert!(error.as_deref().unwrap_or_default().contains("has no upcaster from version 1"), "{error:?}");
    app.shutdown().await.unwrap();
}
