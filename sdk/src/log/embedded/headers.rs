//! The headers of a record as one compact blob.
//!
//! Format: the headers in order, each written as
//! `varint(len(name)) name varint(len(value)) value`, where `varint` is unsigned LEB128 (7 bits a
//! byte, low bits first, high bit set on every byte but the last), `name` is UTF-8 and `value` is
//! any bytes. A record without headers stores SQL `NULL`. The round trip is exact: order,
//! duplicates, empty names and values, and non-UTF-8 values are kept.

use std::borrow::Cow;

use bytes::Bytes;

use crate::log::Header;

/// Encodes headers; `None` for none.
pub(super) fn encode(headers: &[Header]) -> Option<Vec<u8>> {
    if headers.is_empty() {
        return None;
    }
    let size = headers.iter().map(|h| h.key.len() + h.value.len() + 4).sum();
    let mut out = Vec::with_capacity(size);
    for header in headers {
        put_varint(&mut out, header.key.len() as u64);
        out.extend_from_slice(header.key.as_bytes());
        put_varint(&mut out, header.value.len() as u64);
        out.extend_from_slice(&header.value);
    }
    Some(out)
}

/// Decodes what [`encode`] wrote; `None` (SQL `NULL`) is no headers.
pub(super) fn decode(blob: Option<&[u8]>) -> Result<Vec<Header>, String> {
    let Some(mut rest) = blob else {
        return Ok(Vec::new());
    };
    let mut headers = Vec::new();
    while !rest.is_empty() {
        let name = take(&mut rest)?;
        let name = std::str::from_utf8(name).map_err(|e| format!("header name is not UTF-8: {e}"))?;
        let value = take(&mut rest)?;
        headers.push(Header { key: Cow::Owned(name.to_owned()), value: Bytes::copy_from_slice(value) });
    }
    Ok(headers)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Takes one length-prefixed field off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&byte, tail) = rest.split_first().ok_or("header blob ends inside a length")?;
        *rest = tail;
        if shift > 63 {
            return Err("header blob has an over-long length".into());
        }
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let len = usize::try_from(len).map_err(|_| "header length does not fit in memory".to_owned())?;
    if len > rest.len() {
        return Err(format!("header blob ends inside a field ({len} bytes announced, {} left)", rest.len()));
    }
    let (field, tail) = rest.split_at(len);
    *rest = tail;
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &'static str, value: &[u8]) -> Header {
        Header { key: Cow::Borrowed(key), value: Bytes::copy_from_slice(value) }
    }

    #[test]
    fn round_trip_is_exact() {
        let long = vec![0xffu8; 300];
        let headers = vec![
            header("ce_type", b"OrderConfirmed"),
            header("bin", &[0xff, 0xfe, 0x00, 0x80]),
            header("", b""),
            header("ce_type", b"again"),
            header("long", &long),
        ];
        let blob = encode(&headers).unwrap();
        assert_eq!(decode(Some(&blob)).unwrap(), headers);
        assert_eq!(encode(&[]), None);
        assert_eq!(decode(None).unwrap(), Vec::<Header>::new());
    }

    #[test]
    fn truncated_blob_is_an_error() {
        let blob = encode(&[header("name", b"value")]).unwrap();
        assert!(decode(Some(&blob[..blob.len() - 1])).is_err());
        assert!(decode(Some(&[0x80])).is_err());
    }
}
