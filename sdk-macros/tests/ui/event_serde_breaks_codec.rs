use serde::{Deserialize, Serialize};
use tramline::{Event, ReferenceId};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash)]
#[reference(prefix = "pay")]
pub struct PaymentId(uuid::Uuid);

#[derive(Serialize, Deserialize)]
pub struct Raw {
    payment_id: PaymentId,
}

impl From<Raw> for PaymentEvent {
    fn from(raw: Raw) -> Self {
        PaymentEvent::Completed { payment_id: raw.payment_id }
    }
}

impl From<PaymentEvent> for Raw {
    fn from(event: PaymentEvent) -> Self {
        let (PaymentEvent::Completed { payment_id }
        | PaymentEvent::Refunded { payment_id }
        | PaymentEvent::Voided { payment_id }
        | PaymentEvent::Disputed { payment_id }
        | PaymentEvent::Settled { payment_id }
        | PaymentEvent::Reversed { payment_id }) = event;
        Raw { payment_id }
    }
}

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(module = "payment", key = payment_id)]
#[serde(from = "Raw", into = "Raw")]
pub enum PaymentEvent {
    Completed { payment_id: PaymentId },
    #[serde(skip)]
    Refunded { payment_id: PaymentId },
    #[serde(skip_serializing)]
    Voided { payment_id: PaymentId },
    #[serde(skip_deserializing)]
    Disputed { payment_id: PaymentId },
    #[serde(serialize_with = "as_text::serialize", deserialize_with = "as_text::deserialize")]
    Reversed { payment_id: PaymentId },
    #[serde(untagged)]
    Settled { payment_id: PaymentId },
}

/// A variant written as the text of its ID alone.
mod as_text {
    use super::PaymentId;

    pub fn serialize<S: serde::Serializer>(payment_id: &PaymentId, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(payment_id)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<PaymentId, D::Error> {
        serde::Deserialize::deserialize(deserializer)
    }
}

fn main() {}
