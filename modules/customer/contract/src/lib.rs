//! The customer module's contract: who the customers are. Customer data lives here and only
//! here; other modules hold a [`CustomerId`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
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
        name: String,
        /// E-mail address.
        email: String,
    },
    /// Changes a customer's name or e-mail.
    Update {
        /// The customer.
        customer_id: CustomerId,
        /// The new name, if it changes.
        name: Option<String>,
        /// The new e-mail, if it changes.
        email: Option<String>,
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
        name: String,
        /// E-mail address.
        email: String,
    },
    /// A customer's details changed; the fields hold the current values.
    Updated {
        /// The customer.
        customer_id: CustomerId,
        /// Full name.
        name: String,
        /// E-mail address.
        email: String,
    },
}
