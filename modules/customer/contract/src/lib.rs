//! The customer module's contract: who the customers are. Customer data lives here and only
//! here; other modules hold a [`CustomerId`].
//!
//! Names and e-mail addresses are personal data (`#[pii]`, [`Personal`]): on the log they are
//! sealed with the customer's key, and [`CustomerCommand::Forget`] erases them everywhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::privacy::Personal;
use tramline::{Command, Event, ReferenceId};
use uuid::Uuid;

/// A reference to a customer.
#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "cus")]
pub struct CustomerId(Uuid);

/// What can be asked of the customer module.
#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[command(module = "customer", key = customer_id)]
pub enum CustomerCommand {
    /// Registers a new customer.
    Register {
        /// The new customer.
        customer_id: CustomerId,
        /// Full name.
        #[pii]
        name: Personal<String>,
        /// E-mail address.
        #[pii]
        email: Personal<String>,
    },
    /// Changes a customer's name or e-mail.
    Update {
        /// The customer.
        customer_id: CustomerId,
        /// The new name, if it changes.
        #[pii]
        name: Option<Personal<String>>,
        /// The new e-mail, if it changes.
        #[pii]
        email: Option<Personal<String>>,
    },
    /// Forgets a customer (the right to erasure): every copy of its name and e-mail on the log
    /// reads as erased from then on; its ID stays, so that orders, payments and tickets keep
    /// referring to it, and it cannot be registered again. An ID never registered is forgotten
    /// too: the commands of a refused registration hold a name and an e-mail.
    Forget {
        /// The customer.
        customer_id: CustomerId,
    },
}

/// What happened to customers.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[event(module = "customer", key = customer_id)]
pub enum CustomerEvent {
    /// A customer registered.
    Registered {
        /// The customer.
        customer_id: CustomerId,
        /// Full name.
        #[pii]
        name: Personal<String>,
        /// E-mail address.
        #[pii]
        email: Personal<String>,
    },
    /// A customer's details changed; the fields hold the current values.
    Updated {
        /// The customer.
        customer_id: CustomerId,
        /// Full name.
        #[pii]
        name: Personal<String>,
        /// E-mail address.
        #[pii]
        email: Personal<String>,
    },
    /// A customer was forgotten: its keys are deleted with this event, so its name and e-mail
    /// read as erased in every record.
    #[event(forgets)]
    Forgotten {
        /// The customer.
        customer_id: CustomerId,
    },
}
