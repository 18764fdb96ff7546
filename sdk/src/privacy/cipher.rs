//! The AEAD of personal data: XChaCha20-Poly1305 with a random 192-bit nonce per value (large
//! enough that random nonces never repeat under one key), the subject as associated data (so a
//! sealed value cannot be moved to another subject's record), and the text form written on the
//! log: `pii1:<key id>:<base64 of nonce and ciphertext>`, or `pii1:erased`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use uuid::Uuid;

/// The prefix of every sealed value.
const PREFIX: &str = "pii1:";
/// A value written for a forgotten subject.
pub(crate) const ERASED_FORM: &str = "pii1:erased";
const NONCE: usize = 24;

/// A data subject's key: 256 random bits.
#[derive(Clone)]
pub(crate) struct Key(pub(crate) [u8; 32]);

impl Key {
    pub(crate) fn generate() -> Key {
        let mut bytes = [0; 32];
        rand::rng().fill_bytes(&mut bytes);
        Key(bytes)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Key> {
        Some(Key(bytes.try_into().ok()?))
    }
}

/// What a sealed text says.
pub(crate) enum Parsed<'a> {
    Sealed { key: Uuid, sealed: &'a str },
    Erased,
}

/// Seals `plain` under `key` (id `id`) for `subject`.
pub(crate) fn seal(key: &Key, id: Uuid, subject: &str, plain: &[u8]) -> String {
    let mut nonce = [0; NONCE];
    rand::rng().fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let sealed = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad: subject.as_bytes() })
        .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
    let mut bytes = Vec::with_capacity(NONCE + sealed.len());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    let mut text = String::with_capacity(PREFIX.len() + 33 + bytes.len() * 4 / 3 + 4);
    text.push_str(PREFIX);
    text.push_str(id.simple().encode_lower(&mut Uuid::encode_buffer()));
    text.push(':');
    BASE64.encode_string(&bytes, &mut text);
    text
}

/// Whether a text is the form of a sealed (or erased) value.
pub(crate) fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// Reads the text form of a sealed value.
pub(crate) fn parse(text: &str) -> Result<Parsed<'_>, String> {
    if text == ERASED_FORM {
        return Ok(Parsed::Erased);
    }
    let malformed = || "malformed sealed personal data: expected `pii1:<key id>:<base64>`".to_owned();
    let rest = text.strip_prefix(PREFIX).ok_or_else(malformed)?;
    let (key, sealed) = rest.split_once(':').ok_or_else(malformed)?;
    let key = Uuid::try_parse(key).map_err(|_| malformed())?;
    Ok(Parsed::Sealed { key, sealed })
}

/// Opens a sealed value for `subject`.
pub(crate) fn open(key: &Key, subject: &str, sealed: &str) -> Result<Vec<u8>, String> {
    let bytes = BASE64.decode(sealed).map_err(|error| format!("sealed personal data is not base64: {error}"))?;
    if bytes.len() < NONCE {
        return Err("sealed personal data is too short".into());
    }
    let (nonce, sealed) = bytes.split_at(NONCE);
    let nonce = XNonce::try_from(nonce).expect("split at the nonce's length");
    XChaCha20Poly1305::new(&key.0.into())
        .decrypt(&nonce, Payload { msg: sealed, aad: subject.as_bytes() })
        .map_err(|_| {
            format!("personal data of {subject} does not decrypt: it was altered or moved from another record")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_for_their_subject_only() {
        let (key, id) = (Key::generate(), Uuid::now_v7());
        let text = seal(&key, id, "cus_1", b"\"Ada\"");
        assert!(!text.contains("Ada"));
        let Ok(Parsed::Sealed { key: found, sealed }) = parse(&text) else { panic!("parses") };
        assert_eq!(found, id);
        assert_eq!(open(&key, "cus_1", sealed).unwrap(), b"\"Ada\"");
        assert!(open(&key, "cus_2", sealed).is_err(), "another subject cannot open it");
        assert!(open(&Key::generate(), "cus_1", sealed).is_err(), "another key cannot open it");
        assert_ne!(seal(&key, id, "cus_1", b"\"Ada\""), text, "a fresh nonce per value");
        assert!(matches!(parse(ERASED_FORM), Ok(Parsed::Erased)));
        assert!(parse("pii1:Ada").is_err());
        assert!(!is_sealed("Ada"));
    }
}
