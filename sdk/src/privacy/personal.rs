//! `Personal<T>`: a value of personal data, sealed whenever it is written to the log.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer};
use serde::ser::{self, Serialize, Serializer};

use super::cipher::{self, ERASED_FORM, Parsed};
use super::key_store::{Opened, Sealed};
use super::scope;

/// How an erased value shows: the placeholder of [`Personal`]'s `Display`.
pub const ERASED: &str = "<erased>";

/// A value of personal data about one data subject (see the [module docs](crate::privacy)).
///
/// In memory it is the value, or nothing once the subject is forgotten ([`is_erased`]). On the
/// log it is always sealed with the subject's key; it cannot be serialised anywhere else (that
/// fails rather than write it in plain text). `Debug` never shows the value; `Display` shows it,
/// or [`ERASED`].
///
/// [`is_erased`]: Personal::is_erased
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Personal<T>(Held<T>);

/// What a [`Personal`] holds.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Held<T> {
    /// Its subject is forgotten.
    Erased,
    /// Read while its key was late (waited for in vain): it reads as erased, and is written
    /// again as it was sealed, so that a snapshot taken meanwhile keeps it for when the key
    /// shows up (and forgetting the subject still erases it). The sealed text opens for its own
    /// subject only: in another subject's record it is written erased.
    Late { subject: String, sealed: String },
    /// The value.
    Value(T),
}

impl<T> Personal<T> {
    /// A value of personal data.
    pub fn new(value: T) -> Self {
        Personal(Held::Value(value))
    }

    /// The value of a forgotten subject.
    pub fn erased() -> Self {
        Personal(Held::Erased)
    }

    /// The value; `None` once its subject is forgotten (or while its key cannot be read).
    pub fn get(&self) -> Option<&T> {
        match &self.0 {
            Held::Value(value) => Some(value),
            _ => None,
        }
    }

    /// Whether it reads as erased: its subject was forgotten (or its key cannot be read).
    pub fn is_erased(&self) -> bool {
        !matches!(self.0, Held::Value(_))
    }

    /// The value; `None` once its subject is forgotten (or while its key cannot be read).
    pub fn into_inner(self) -> Option<T> {
        match self.0 {
            Held::Value(value) => Some(value),
            _ => None,
        }
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Personal::new(value)
    }
}

impl From<&str> for Personal<String> {
    fn from(value: &str) -> Self {
        Personal::new(value.to_owned())
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs and panic messages: never the value.
        match self.0 {
            Held::Value(_) => f.write_str("Personal(<redacted>)"),
            _ => write!(f, "Personal({ERASED})"),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Held::Value(value) => value.fmt(f),
            _ => f.write_str(ERASED),
        }
    }
}

/// A type that holds personal data: what a `#[pii]` field may be. Implemented for
/// [`Personal<T>`] and for options, lists, boxes and maps of such types. Implement it for a
/// type of yours that holds `Personal` fields (`impl HoldsPersonal for Address {}`), so that a
/// field of that type can be marked `#[pii]`; a field marked `#[pii]` whose type holds no
/// personal data is a compile error, since nothing in it would be sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` holds no personal data, but its field is marked `#[pii]`: nothing in it would be sealed",
    label = "not personal data",
    note = "make the field `tramline::privacy::Personal<...>`, or, if `{Self}` is a type of yours with `Personal` fields, implement `tramline::privacy::HoldsPersonal` for it"
)]
pub trait HoldsPersonal {}

impl<T> HoldsPersonal for Personal<T> {}
impl<T: HoldsPersonal> HoldsPersonal for Option<T> {}
impl<T: HoldsPersonal> HoldsPersonal for Vec<T> {}
impl<T: HoldsPersonal + ?Sized> HoldsPersonal for Box<T> {}
impl<K, V: HoldsPersonal, S> HoldsPersonal for std::collections::HashMap<K, V, S> {}
impl<K, V: HoldsPersonal> HoldsPersonal for std::collections::BTreeMap<K, V> {}

/// Compiles only for a type that holds personal data: the derives call it for each `#[pii]`
/// field.
#[doc(hidden)]
pub fn holds_personal<T: HoldsPersonal + ?Sized>() {}

const WRITTEN_OUTSIDE: &str = "personal data (tramline::privacy::Personal) is only written by tramline's codec, \
     which seals it for the record's subject: it cannot go into a public event or any other JSON";

const READ_OUTSIDE: &str = "sealed personal data (tramline::privacy::Personal) opens only with the keys of a key store: \
     decode the record with KeyStore::decode, or call codec::decode inside KeyStore::scope (an app's store is App::keys)";

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (Some(keys), Some(subject)) = (scope::keys(), scope::subject()) else {
            return Err(ser::Error::custom(WRITTEN_OUTSIDE));
        };
        let value = match &self.0 {
            Held::Value(value) => value,
            Held::Erased => return serializer.serialize_str(ERASED_FORM),
            Held::Late { subject: sealed_for, .. } if *sealed_for != subject || keys.is_forgotten(&subject) => {
                return serializer.serialize_str(ERASED_FORM);
            }
            Held::Late { sealed, .. } => {
                if let Ok(Parsed::Sealed { key, .. }) = cipher::parse(sealed) {
                    scope::used(key);
                }
                return serializer.serialize_str(sealed);
            }
        };
        let plain = serde_json::to_vec(value).map_err(ser::Error::custom)?;
        match keys.seal(&subject, &plain) {
            Sealed::Text { text, key } => {
                scope::used(key);
                serializer.serialize_str(&text)
            }
            Sealed::Forgotten => serializer.serialize_str(ERASED_FORM),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let sealed = match &value {
            serde_json::Value::String(text) if cipher::is_sealed(text) => text,
            // Plain text: written before the field was personal data, or by a producer that
            // does not seal (see the module docs). Forgetting cannot erase it from the log, but
            // its subject's values read as erased, as the sealed ones do.
            _ if scope::keys().zip(scope::subject()).is_some_and(|(keys, subject)| keys.is_forgotten(&subject)) => {
                return Ok(Personal::erased());
            }
            _ => return serde_json::from_value(value).map(Personal::new).map_err(|_| not_a::<T, D::Error>()),
        };
        let (Some(keys), Some(subject)) = (scope::keys(), scope::subject()) else {
            return Err(de::Error::custom(READ_OUTSIDE));
        };
        match keys.open(&subject, sealed).map_err(de::Error::custom)? {
            Opened::Plain(plain) => {
                serde_json::from_slice(&plain).map(Personal::new).map_err(|_| not_a::<T, D::Error>())
            }
            Opened::Erased => Ok(Personal::erased()),
            Opened::Late => Ok(Personal(Held::Late { subject, sealed: sealed.clone() })),
        }
    }
}

/// The error of personal data that is not a `T`. serde's own message quotes the value
/// (`invalid type: string "ada@example.org", expected ...`), and this error travels to
/// dead-letter headers, replies and logs, which forgetting cannot erase: it names the subject
/// and the type only.
fn not_a<T, E: de::Error>() -> E {
    let subject = scope::subject().unwrap_or_else(|| "an unknown subject".to_owned());
    E::custom(format_args!(
        "personal data of {subject} does not read as {} (the value is not shown: it is personal); \
         if the field's type changed since the record was written, give it a type that also reads the old values",
        std::any::type_name::<T>()
    ))
}

impl<T> schemars::JsonSchema for Personal<T> {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Personal")
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Personal data, sealed with its data subject's key (XChaCha20-Poly1305): `pii1:<key id>:<base64>`, or `pii1:erased` once the subject is forgotten",
            "pattern": "^pii1:",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::KeyStore;

    const ADDRESS: &str = "ada@example.org";

    /// The address sealed for `cus_1` by `keys`, as it is on the log.
    fn sealed(keys: &KeyStore) -> String {
        let (json, _) = keys.scope(|| scope::sealing("cus_1", || serde_json::to_string(&Personal::new(ADDRESS))));
        json.expect("sealed")
    }

    #[test]
    fn a_value_of_another_type_is_refused_without_showing_it() {
        let keys = KeyStore::in_memory();
        let json = sealed(&keys);
        let read = keys.scope(|| scope::opening_state("cus_1", || serde_json::from_str::<Personal<u32>>(&json)));
        let error = read.expect_err("not a number").to_string();
        assert!(!error.contains(ADDRESS), "{error}");
        assert!(error.contains("cus_1") && error.contains("u32"), "names the subject and the type: {error}");
        // The same for plain text written before the field was personal.
        let error = serde_json::from_str::<Personal<u32>>(&format!("\"{ADDRESS}\"")).expect_err("not a number");
        assert!(!error.to_string().contains(ADDRESS), "{error}");
    }

    #[test]
    fn plain_text_of_a_forgotten_subject_reads_as_erased() {
        let keys = KeyStore::in_memory();
        let plain = format!("\"{ADDRESS}\"");
        let read = |keys: &KeyStore| {
            keys.scope(|| scope::opening_state("cus_1", || serde_json::from_str::<Personal<String>>(&plain)))
        };
        assert_eq!(read(&keys).expect("plain text").get().map(String::as_str), Some(ADDRESS));
        keys.forgotten("cus_1");
        assert!(read(&keys).expect("erased").is_erased());
    }

    #[test]
    fn reading_without_a_key_store_says_how_to_read() {
        let json = sealed(&KeyStore::in_memory());
        let error = scope::opening_state("cus_1", || serde_json::from_str::<Personal<String>>(&json));
        let error = error.expect_err("no key store").to_string();
        assert!(error.contains("KeyStore::decode") && error.contains("KeyStore::scope"), "{error}");
        let error = serde_json::to_string(&Personal::new(ADDRESS)).expect_err("no key store").to_string();
        assert!(error.contains("public event"), "{error}");
    }
}
