//! Personal data: encrypted per data subject, erased by forgetting the subject.
//!
//! A field that holds personal data (a name, an e-mail address, a phone number) has the type
//! [`Personal<T>`] and, in an event or command enum, the attribute `#[pii]`. Whenever tramline
//! writes such a value to the log it encrypts it with XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`), under the key of its **data subject**, with a random nonce per value:
//!
//! - in a command or event, the subject is the entity the message is keyed by (the customer of a
//!   `CustomerEvent`);
//! - in an aggregate's state snapshot on `<module>.state`, the subject is the entity.
//!
//! The keys live on the log itself, on the compacted topic [`KEYS_TOPIC`] (`tramline.keys`), so
//! that they survive restarts and every process on the log sees the same ones. An event variant
//! marked `#[event(forgets)]` **forgets** its subject: in the same atomic write as the event,
//! the subject's keys are deleted (tombstones) and a marker records that it is forgotten. From
//! then on every copy of its personal data, in commands, events, snapshots and dead letters, past
//! records and future replays alike, reads as [`Personal::is_erased`] (shown as [`ERASED`]),
//! never as an error; what is written for a forgotten subject is written erased. Another process
//! that holds the subject's keys drops them when it decodes the forgetting event, and otherwise
//! when it reads the keys topic again, which it does before it opens sealed data with a view of
//! the topic more than a second old. The key records
//! disappear from the log when it compacts `tramline.keys` (the embedded log on open and on
//! `EmbeddedLog::compact`, overwriting the freed pages; a Kafka broker by its log cleaner).
//!
//! What this does not cover: plain text in a `Personal` field, in records written before the
//! field became `Personal` or by a producer that does not seal (a command as plain JSON, and its
//! dead letter): it reads as erased once its subject is forgotten, but forgetting cannot erase
//! its bytes from the log (start such a log afresh or rewrite it),
//! personal data in a field that is not `Personal` (a free-text
//! `reason`, a reference ID chosen from an e-mail address), data outside the log (read models
//! held in memory by a running process, which handle the forgetting event themselves, and
//! copies taken by consumers outside tramline), and the memory log's records, which it never
//! compacts. A `Personal` value cannot be serialised outside tramline's codec (it has no
//! subject there, so it fails instead of writing plain text): a public event cannot carry one.
//!
//! ```
//! use tramline::privacy::Personal;
//!
//! let name: Personal<String> = "Ada Lovelace".into();
//! assert_eq!(name.get().map(String::as_str), Some("Ada Lovelace"));
//! assert_eq!(format!("{name:?}"), "Personal(<redacted>)");
//! let gone = Personal::<String>::erased();
//! assert_eq!(gone.to_string(), "<erased>");
//! ```

mod cipher;
mod key_store;
mod personal;
mod scope;

pub use key_store::{KEYS_TOPIC, KeyStore, ReadError};
pub use personal::{ERASED, HoldsPersonal, Personal, holds_personal};

pub(crate) use scope::{KEY_IDS_HEADER, opening, opening_state, sealing};
