//! The headers of a record, kept in one buffer: one allocation per record however many headers
//! it has, cheap to clone, and stored as they are by a durable backend.
//!
//! Encoding: the headers in order, each written as `varint(len(name)) name varint(len(value))
//! value`, where `varint` is unsigned LEB128 and `name` is UTF-8. Order, duplicates, empty names
//! and values, and values that are not text are all kept.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// The headers of a record.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers {
    encoded: Bytes,
}

/// A buffer that is not a valid encoding of headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid record headers: {0}")]
pub struct InvalidHeaders(String);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// A builder that appends headers to an empty buffer of `capacity` bytes.
    pub fn builder(capacity: usize) -> HeadersBuilder {
        HeadersBuilder { buffer: BytesMut::with_capacity(capacity) }
    }

    /// A builder that starts with these headers, to add more.
    pub fn to_builder(&self, extra_capacity: usize) -> HeadersBuilder {
        let mut buffer = BytesMut::with_capacity(self.encoded.len() + extra_capacity);
        buffer.extend_from_slice(&self.encoded);
        HeadersBuilder { buffer }
    }

    /// The value of the first header with this name.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields().find(|(n, _)| *n == name.as_bytes()).map(|(_, value)| value)
    }

    /// The values of the first headers with these names, in one pass over the buffer.
    pub fn get_all<const N: usize>(&self, names: [&str; N]) -> [Option<&[u8]>; N] {
        let mut found = [None; N];
        let mut missing = N;
        for (name, value) in self.fields() {
            if let Some(i) = names.iter().position(|n| n.as_bytes() == name)
                && found[i].is_none()
            {
                found[i] = Some(value);
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
        found
    }

    /// The value of the first header with this name, sharing this buffer.
    pub fn get_bytes(&self, name: &str) -> Option<Bytes> {
        self.get(name).map(|value| self.encoded.slice_ref(value))
    }

    /// Every header, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields()
            .map(|(name, value)| (std::str::from_utf8(name).expect("names are checked to be UTF-8"), value))
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.fields().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    /// The encoded form, to store as it is.
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// Headers from their encoded form, checked.
    pub fn from_encoded(encoded: Bytes) -> Result<Self, InvalidHeaders> {
        let mut rest = &encoded[..];
        while !rest.is_empty() {
            let name = take(&mut rest)?;
            std::str::from_utf8(name).map_err(|e| InvalidHeaders(format!("a header name is not UTF-8: {e}")))?;
            take(&mut rest)?;
        }
        Ok(Headers { encoded })
    }

    /// Appends the encoding of `headers` to `buffer`: what [`Headers::from_encoded`] reads, so a
    /// slice of the finished buffer can become [`Headers`] without a second check
    /// ([`Headers::from_encoded_unchecked`]). Used by the Kafka adapter's reads.
    #[cfg(any(feature = "kafka", test))]
    pub(crate) fn encode_into<'a>(buffer: &mut BytesMut, headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
        for (name, value) in headers {
            put_varint(buffer, name.len());
            buffer.extend_from_slice(name.as_bytes());
            put_varint(buffer, value.len());
            buffer.extend_from_slice(value);
        }
    }

    /// Headers from a buffer [`Headers::encode_into`] wrote.
    #[cfg(feature = "kafka")]
    pub(crate) fn from_encoded_unchecked(encoded: Bytes) -> Self {
        debug_assert!(Headers::from_encoded(encoded.clone()).is_ok());
        Headers { encoded }
    }

    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut rest = &self.encoded[..];
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            // The buffer was checked when it was made.
            let name = take(&mut rest).expect("valid headers");
            let value = take(&mut rest).expect("valid headers");
            Some((name, value))
        })
    }
}

impl<'a> FromIterator<(&'a str, &'a [u8])> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a [u8])>>(headers: I) -> Self {
        let mut builder = Headers::builder(64);
        for (name, value) in headers {
            builder.push(name, value);
        }
        builder.build()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(name, value)| (name, String::from_utf8_lossy(value))))
            .finish()
    }
}

/// Appends headers to one buffer.
#[derive(Debug)]
pub struct HeadersBuilder {
    buffer: BytesMut,
}

impl HeadersBuilder {
    /// Appends a header. Returns where its value sits in the finished buffer, so that a caller
    /// can share it ([`Bytes::slice`] of [`Headers::encoded`]) instead of copying it.
    pub fn push(&mut self, name: &str, value: &[u8]) -> Range<usize> {
        self.push_with(name, |buffer| buffer.extend_from_slice(value))
    }

    /// Appends a header whose value `write` writes into the buffer (no intermediate string).
    pub fn push_with(&mut self, name: &str, write: impl FnOnce(&mut BytesMut)) -> Range<usize> {
        put_varint(&mut self.buffer, name.len());
        self.buffer.extend_from_slice(name.as_bytes());
        // A one-byte length prefix fits a value shorter than 128 bytes, which written values
        // are; a longer one is moved behind a longer prefix.
        let prefix_at = self.buffer.len();
        self.buffer.put_u8(0);
        write(&mut self.buffer);
        let start = prefix_at + 1;
        let len = self.buffer.len() - start;
        if len < 0x80 {
            self.buffer[prefix_at] = len as u8;
            return start..start + len;
        }
        let value = self.buffer.split_off(start);
        self.buffer.truncate(prefix_at);
        put_varint(&mut self.buffer, len);
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&value);
        start..start + len
    }

    /// The headers.
    pub fn build(self) -> Headers {
        Headers { encoded: self.buffer.freeze() }
    }
}

fn put_varint(out: &mut BytesMut, mut n: usize) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

/// Takes one length-prefixed field off the front of `rest`.
#[inline]
fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], InvalidHeaders> {
    // A one-byte length (under 128) is the rule: every name, nearly every value. Every read of a
    // header walks the fields before it, so this path is hot.
    if let Some((&len, tail)) = rest.split_first()
        && len < 0x80
        && usize::from(len) <= tail.len()
    {
        let (field, tail) = tail.split_at(usize::from(len));
        *rest = tail;
        return Ok(field);
    }
    take_long(rest)
}

/// [`take`] for a length of several bytes, and every error.
#[cold]
fn take_long<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], InvalidHeaders> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&byte, tail) =
            rest.split_first().ok_or_else(|| InvalidHeaders("the buffer ends inside a length".into()))?;
        *rest = tail;
        if shift > 63 {
            return Err(InvalidHeaders("a length is over-long".into()));
        }
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let len = usize::try_from(len).map_err(|_| InvalidHeaders("a length does not fit in memory".into()))?;
    if len > rest.len() {
        return Err(InvalidHeaders(format!(
            "the buffer ends inside a field ({len} bytes announced, {} left)",
            rest.len()
        )));
    }
    let (field, tail) = rest.split_at(len);
    *rest = tail;
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact() {
        let long = vec![0xffu8; 300];
        let pairs: Vec<(&str, &[u8])> = vec![
            ("ce_type", b"OrderConfirmed"),
            ("bin", &[0xff, 0xfe, 0x00, 0x80]),
            ("", b""),
            ("ce_type", b"again"),
            ("long", &long),
        ];
        let headers: Headers = pairs.iter().copied().collect();
        assert_eq!(headers.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(Headers::from_encoded(headers.encoded().clone()).unwrap(), headers);
        let mut encoded = BytesMut::new();
        Headers::encode_into(&mut encoded, pairs.iter().copied());
        assert_eq!(&encoded[..], &headers.encoded()[..], "one encoding, however it is written");
        assert_eq!(headers.get("ce_type"), Some(&b"OrderConfirmed"[..]), "the first of duplicates");
        assert_eq!(headers.get("long").map(<[u8]>::len), Some(300));
        assert_eq!(headers.get("missing"), None);
        let [binary, missing, first] = headers.get_all(["bin", "missing", "ce_type"]);
        assert_eq!((binary, missing, first), (Some(&[0xff, 0xfe, 0x00, 0x80][..]), None, Some(&b"OrderConfirmed"[..])));
        assert_eq!(headers.len(), 5);
        assert!(Headers::new().is_empty());
    }

    #[test]
    fn values_written_in_place_are_sliceable() {
        let mut builder = Headers::builder(0);
        let short = builder.push_with("short", |b| b.extend_from_slice(b"abc"));
        let long = builder.push_with("long", |b| b.extend_from_slice(&[7u8; 200_000]));
        let headers = builder.build();
        assert_eq!(&headers.encoded()[short], b"abc");
        assert_eq!(headers.encoded().slice(long).len(), 200_000);
        assert_eq!(headers.get("long").map(<[u8]>::len), Some(200_000));
        assert_eq!(Headers::from_encoded(headers.encoded().clone()).unwrap(), headers);
    }

    #[test]
    fn a_damaged_buffer_is_an_error() {
        let headers: Headers = [("name", &b"value"[..])].into_iter().collect();
        let encoded = headers.encoded();
        assert!(Headers::from_encoded(encoded.slice(..encoded.len() - 1)).is_err());
        assert!(Headers::from_encoded(Bytes::from_static(&[0x80])).is_err());
        assert!(Headers::from_encoded(Bytes::from_static(&[1, 0xff, 0])).is_err(), "a name that is not UTF-8");
    }
}
