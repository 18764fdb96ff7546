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
use crate::model::Message;

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
    let frame = Frame { subject: subject.to_owned(), used: Vec::new() };
    let mut guard = FrameGuard { outer: Some(FRAME.with(|f| f.replace(Some(frame)))) };
    let value = serialise();
    let frame = guard.restore().expect("set above");
    (value, frame.used)
}

/// Runs `deserialise` (one message's payload) with personal data opened for `subject`. A
/// message that forgets its subject (`#[event(forgets)]`) drops the subject's keys from the
/// store in scope at once: the forgetting is committed (it is on the log), so nothing of the
/// subject opens here any more, even before this process reads the marker on the keys topic.
pub(crate) fn opening<M: Message, E>(subject: &str, deserialise: impl FnOnce() -> Result<M, E>) -> Result<M, E> {
    let message = opening_state(subject, deserialise);
    if let Ok(message) = &message
        && message.forgets()
        && let Some(keys) = keys()
    {
        keys.forgotten(subject);
    }
    message
}

/// Runs `deserialise` (an entity's state snapshot) with personal data opened for `subject`.
pub(crate) fn opening_state<T>(subject: &str, deserialise: impl FnOnce() -> T) -> T {
    sealing(subject, deserialise).0
}

/// Puts the frame that was current before a record's back in place, also when the record's
/// (de)serialisation panics (an upcaster, a custom `Deserialize`): a frame left behind would
/// make the thread seal later values for the wrong subject.
struct FrameGuard {
    /// The frame to put back; `None` once put back.
    outer: Option<Option<Frame>>,
}

impl FrameGuard {
    /// Restores the outer frame; returns the record's.
    fn restore(&mut self) -> Option<Frame> {
        let outer = self.outer.take().expect("restored once");
        FRAME.with(|f| f.replace(outer))
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        if self.outer.is_some() {
            self.restore();
        }
    }
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

#[cfg(test)]
mod tests {
    use std::panic::catch_unwind;

    use super::*;

    #[test]
    fn a_panic_inside_a_record_puts_the_outer_subject_back() {
        let panicked = catch_unwind(|| opening_state("cus_1", || panic!("an upcaster panics")));
        assert!(panicked.is_err());
        assert_eq!(subject(), None, "no subject left behind on this thread");
        let (inner, _) = sealing("cus_outer", || {
            let _ = catch_unwind(|| sealing("cus_inner", || panic!("a custom Serialize panics")));
            subject()
        });
        assert_eq!(inner.as_deref(), Some("cus_outer"));
    }
}
