//! # tramline
//!
//! Event-sourced modules that talk to each other only through an event log.
//!
//! A **data module** owns entities: it declares its reference IDs, commands and events, and an
//! [`Aggregate`] whose `decide` and `evolve` are pure. **Reactions** listen to events (any
//! module's) and issue commands; **projections** fold events into read models. The
//! [runtime] connects them to an [`EventLog`](log::EventLog): the in-memory log for tests
//! and demos, or a durable backend.
//!
//! ```
//! use tramline::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # use schemars::JsonSchema;
//!
//! #[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
//! #[reference(prefix = "ctr")]
//! pub struct CounterId(uuid::Uuid);
//!
//! #[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug)]
//! #[command(module = "counter", key = id)]
//! pub enum CounterCommand { Add { id: CounterId, by: u32 } }
//!
//! #[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
//! #[event(module = "counter", key = id)]
//! pub enum CounterEvent { Added { id: CounterId, by: u32 } }
//!
//! #[derive(Debug, thiserror::Error, Serialize, Deserialize)]
//! #[error("a counter cannot add zero")]
//! pub struct AddZero;
//!
//! #[derive(Default, Clone, Serialize, Deserialize)]
//! pub struct Counter { total: u64 }
//!
//! impl Aggregate for Counter {
//!     type Command = CounterCommand;
//!     type Event = CounterEvent;
//!     type Error = AddZero;
//!     type Services = ();
//!     fn decide(&self, command: &CounterCommand, _: &()) -> Result<Vec<CounterEvent>, AddZero> {
//!         let CounterCommand::Add { id, by } = *command;
//!         if by == 0 { return Err(AddZero) }
//!         Ok(vec![CounterEvent::Added { id, by }])
//!     }
//!     fn evolve(&mut self, event: &CounterEvent) {
//!         let CounterEvent::Added { by, .. } = event;
//!         self.total += u64::from(*by);
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut app = App::new(MemoryLog::shared());
//! let counters = app.aggregate::<Counter>(()).await.unwrap();
//! app.start().await.unwrap();
//!
//! let id = CounterId::generate();
//! let accepted = counters.send(CounterCommand::Add { id, by: 2 }).await.unwrap();
//! assert_eq!(accepted.events[0].payload, CounterEvent::Added { id, by: 2 });
//! assert!(counters.send(CounterCommand::Add { id, by: 0 }).await.is_err());
//! app.shutdown().await.unwrap();
//! # });
//! ```
#![warn(missing_docs)]

extern crate self as tramline;

pub mod codec;
pub mod export;
pub mod log;
pub mod model;
pub mod privacy;
pub mod runtime;
pub mod schema;
pub mod stream;
pub mod testing;

pub use model::*;
pub use runtime::App;
pub use tramline_macros::{Command, Event, Projection, Reaction, ReferenceId};

pub use log::memory::MemoryLog;

/// The names a module author needs, in one import.
pub mod prelude {
    pub use crate::log::memory::MemoryLog;
    pub use crate::model::*;
    pub use crate::runtime::{App, CommandGateway, ProjectionHandle};
    pub use tramline_macros::{Command, Event, Projection, Reaction, ReferenceId};
}

/// Paths used by the derive macros' generated code. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::model::reference_id_support::{format_id, id_schema, parse_id};
    pub use crate::privacy::holds_personal;
    pub use schemars;
    pub use serde;
    pub use serde_json;
    pub use uuid;

    /// Whether two strings are equal, in a constant (a derive's compile-time check).
    pub const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}
