//! The platform's published contract: the schema of every event and public event against the
//! committed snapshots in `schemas/`, and the AsyncAPI document against the AsyncAPI 3.0 schema.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tramline::Event;
use tramline::schema::{Catalog, Change};

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

const REGENERATE: &str = "cargo run --bin ticketing -- catalog --asyncapi --out schemas";

fn catalog() -> Catalog {
    ticketing_platform::catalog(tramline::runtime::Settings::default().partitions)
}

#[test]
fn every_schema_matches_its_committed_snapshot() {
    let catalog = catalog();
    let breaking = catalog.breaking_changes(&committed()).unwrap();
    assert!(
        breaking.is_empty(),
        "breaking changes:\n{}",
        breaking.iter().map(|b| b.to_string()).collect::<Vec<_>>().join("\n")
    );
    for message in catalog.messages() {
        let path = committed().join(message.file_name());
        let snapshot = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}; a new message type: run `{REGENERATE}`", path.display()));
        assert_eq!(snapshot, message.to_pretty_json(), "{} changed compatibly: run `{REGENERATE}`", path.display());
    }
    assert!(catalog.messages().iter().any(|m| m.file_name() == "public/partner-feed/OrderConfirmed.v1.json"));
}

#[test]
fn the_public_feed_carries_no_personal_data() {
    for message in catalog().messages().into_iter().filter(|m| m.file_name().starts_with("public/")) {
        let properties = message.schema["properties"].as_object().unwrap();
        for field in ["customer_id", "name", "email", "customer"] {
            assert!(!properties.contains_key(field), "{} publishes `{field}`", message.name);
        }
    }
}

fn asyncapi() -> Value {
    ticketing_platform::asyncapi(&catalog(), vec!["kafka.example.invalid:9092".into()])
}

#[test]
fn the_asyncapi_document_is_valid_asyncapi_3() {
    let schema: Value =
        serde_json::from_str(include_str!("../data/asyncapi-3.0.0.json")).expect("the vendored schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the AsyncAPI schema compiles");
    let document = asyncapi();
    let errors: Vec<String> =
        validator.iter_errors(&document).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "invalid AsyncAPI document:\n{}", errors.join("\n"));

    // And it fails on a document that is not (so the validation above is real).
    let mut broken = document.clone();
    broken["operations"]["receiveOrdersCitybus"]["action"] = "listen".into();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn the_asyncapi_document_describes_every_feed() {
    let document = asyncapi();
    for operator in partner_feed::OPERATORS {
        let channel = document["channels"]
            .as_object()
            .unwrap()
            .values()
            .find(|c| c["address"] == format!("public.orders.{}", operator.id));
        let channel = channel.unwrap_or_else(|| panic!("no channel for {}", operator.id));
        assert_eq!(channel["bindings"]["kafka"]["topic"], format!("public.orders.{}", operator.id));
    }
    // The message id names the module: another module's `OrderConfirmed` is another message.
    let message = &document["components"]["messages"]["PartnerFeedOrderConfirmedV1"];
    assert_eq!(message["headers"]["properties"]["ce_type"]["const"], "OrderConfirmed");
    assert_eq!(message["payload"]["title"], "OrderConfirmed");
    assert_eq!(message["bindings"]["kafka"]["key"]["pattern"], "^ord_[0-9a-f]{32}$");
}

#[test]
fn the_committed_asyncapi_document_is_current() {
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(committed().join("asyncapi.json")).unwrap()).unwrap();
    assert_eq!(committed, ticketing_platform::asyncapi(&catalog(), Vec::new()), "run `{REGENERATE}`");
}

mod changed {
    //! The order module's events as a careless change would make them, in a scratch copy.
    use super::*;
    use customer_contract::CustomerId;
    use order_contract::OrderId;
    use product_contract::{Money, ProductId};

    #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug)]
    #[event(module = "order", key = order_id)]
    pub enum OrderEvent {
        /// Renamed `quantity` to `count`, made `total` text, added a required `seat`.
        Confirmed {
            order_id: OrderId,
            customer_id: CustomerId,
            product_id: ProductId,
            count: u32,
            total: String,
            seat: String,
        },
        /// Added an optional field: compatible.
        Cancelled { order_id: OrderId, customer_id: CustomerId, reason: String, refund: Option<Money> },
    }
}

#[test]
fn a_breaking_change_to_an_event_fails_the_check() {
    // The order module's committed snapshots, copied: the check reads only the copy.
    let scratch = tempfile::tempdir().unwrap();
    for message in catalog().messages().into_iter().filter(|m| m.file_name().starts_with("events/order/")) {
        let from = committed().join(message.file_name());
        let to = scratch.path().join(message.file_name());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    assert_eq!(catalog().breaking_changes(scratch.path()).unwrap(), []);

    let mut changed = Catalog::new();
    changed.event::<changed::OrderEvent>();
    let breaking = changed.breaking_changes(scratch.path()).unwrap();
    assert_eq!(breaking.len(), 2, "{breaking:?}");
    assert_eq!(breaking[0].message, "OrderConfirmed");
    // The changed enum has no `Placed` any more: the records of it on the log would not decode.
    assert_eq!(breaking[1].message, "OrderPlaced");
    assert_eq!(breaking[1].changes, [Change::MessageRemoved]);
    let changes = &breaking[0].changes;
    assert!(changes.contains(&Change::Removed { field: "quantity".into() }), "{changes:?}");
    assert!(changes.contains(&Change::TypeChanged {
        field: "total".into(),
        from: "integer".into(),
        to: "string".into()
    }));
    assert!(changes.contains(&Change::NewRequired { field: "seat".into() }));
    assert!(changes.contains(&Change::NewRequired { field: "count".into() }));
    assert_eq!(changes.len(), 4, "{changes:?}");
    let report = breaking[0].to_string();
    assert!(report.contains("field `quantity` was removed or renamed"), "{report}");
}

#[test]
fn a_breaking_change_to_a_public_event_fails_the_check() {
    let scratch = tempfile::tempdir().unwrap();
    let file = "public/partner-feed/OrderConfirmed.v1.json";
    let mut snapshot: Value = serde_json::from_str(&std::fs::read_to_string(committed().join(file)).unwrap()).unwrap();
    // As if the committed contract had a field that the current public event dropped.
    snapshot["properties"]["platform"] = serde_json::json!({"type": "string"});
    std::fs::create_dir_all(scratch.path().join("public/partner-feed")).unwrap();
    std::fs::write(scratch.path().join(file), snapshot.to_string()).unwrap();
    let breaking = catalog().breaking_changes(scratch.path()).unwrap();
    assert_eq!(breaking.len(), 1);
    assert_eq!(breaking[0].changes, [Change::Removed { field: "platform".into() }]);
}

/// A public event whose key changed type (orders keyed by product, say) moves one entity's
/// records to other partitions: the committed key says so.
#[test]
fn a_changed_record_key_fails_the_check() {
    let scratch = tempfile::tempdir().unwrap();
    let file = "public/partner-feed/OrderConfirmed.v1.json";
    let mut snapshot: Value = serde_json::from_str(&std::fs::read_to_string(committed().join(file)).unwrap()).unwrap();
    let key = snapshot["x-key"]["pattern"].as_str().expect("the committed key's pattern").to_owned();
    assert!(key.starts_with("^ord_"), "{key}");
    snapshot["x-key"]["pattern"] = serde_json::json!("^prd_[0-9a-f]{32}$");
    std::fs::create_dir_all(scratch.path().join("public/partner-feed")).unwrap();
    std::fs::write(scratch.path().join(file), snapshot.to_string()).unwrap();
    let breaking = catalog().breaking_changes(scratch.path()).unwrap();
    assert_eq!(breaking.len(), 1, "{breaking:?}");
    assert!(matches!(&breaking[0].changes[..], [Change::KeyChanged { .. }]), "{:?}", breaking[0].changes);
    let report = breaking[0].to_string();
    assert!(report.contains("the record key changed (field `<root>` changed `pattern`"), "{report}");
}
