//! Where a `Personal` value being (de)serialised finds its key store and its subject.
//!
//! serde gives a field's `Serialize` no context, so the runtime provides it around each record:
//! the key store as a tokio task-local (set for every processor task, and around the gateway's
//! and the test harness's encoding), the subject as a thread-local set by the codec for the
//! synchronous span of one record's (de)serialisation. Records without personal data never
//! enter either.

use std::cell::RefCell;

use uuid::Uuid;

use super::KeyStore;

/// The header that lists the keys a record's personal data is sealed with (comma-separated key
/// ids), so that a reader can load them before it decodes.
pub(crate) const KEY_IDS_HEADER: &str = "pii_keys";

tokio::task_local! {
    /// The key store of the app whose processor or gateway is running.
    pub(crate) static KEYS: KeyStore;
}

/// The record being (de)serialised: its data subject and the keys used so far.
struct Frame {
    subject: String,
    used: Vec<Uuid>,
}

thread_local! {
    static FRAME: RefCell<Option<Frame>> = const { RefCell::new(None) };
}

/// Runs `serialise` (one record's value) with personal data sealed for `subject`; returns its
/// result and the ids of the keys it sealed with.
pub(crate) fn sealing<T>(subject: &str, serialise: impl FnOnce() -> T) -> (T, Vec<Uuid>) {
    let outer = FRAME.with(|f| f.replace(Some(Frame { subject: subject.to_owned(), used: Vec::new() })));
    let value = serialise();
    let frame = FRAME.with(|f| f.replace(outer)).expect("set above");
    (value, frame.used)
}

/// Runs `deserialise` (one record's value) with personal data opened for `subject`.
pub(crate) fn opening<T>(subject: &str, deserialise: impl FnOnce() -> T) -> T {
    sealing(subject, deserialise).0
}

/// The subject of the record being (de)serialised.
pub(super) fn subject() -> Option<String> {
    FRAME.with(|f| f.borrow().as_ref().map(|frame| frame.subject.clone()))
}

/// Notes that the record's personal data is sealed with this key.
pub(super) fn used(key: Uuid) {
    FRAME.with(|f| {
        if let Some(frame) = f.borrow_mut().as_mut()
            && !frame.used.contains(&key)
        {
            frame.used.push(key);
        }
    });
}

/// The key store in scope.
pub(super) fn keys() -> Option<KeyStore> {
    KEYS.try_with(KeyStore::clone).ok()
}
