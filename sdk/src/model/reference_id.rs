//! Typed references to entities: `ord_0193…` for an `OrderId`.

use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A typed ID of an entity, owned by one module and referenced by others.
///
/// Derive it on a newtype over [`Uuid`]: `#[derive(ReferenceId)] #[reference(prefix = "ord")]`.
/// The text form is the prefix, an underscore and the UUID as 32 lowercase hex digits
/// (`ord_0193b1a2c3d47e8f9a0b1c2d3e4f5a6b`); it is the record key on the log, the serde form and
/// the `Display`/`FromStr` form.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a reference ID",
    note = "derive it on a newtype over a Uuid: `#[derive(tramline::ReferenceId)] #[reference(prefix = \"abc\")]`"
)]
pub trait ReferenceId:
    Clone
    + Eq
    + Hash
    + fmt::Display
    + fmt::Debug
    + FromStr<Err = ParseIdError>
    + Serialize
    + DeserializeOwned
    + JsonSchema
    + Send
    + Sync
    + 'static
{
    /// The prefix of the text form, without the underscore (`ord`).
    const PREFIX: &'static str;
    /// The Rust name of the ID type, for messages (`OrderId`).
    const NAME: &'static str;

    /// Wraps an existing UUID.
    fn from_uuid(uuid: Uuid) -> Self;

    /// The UUID inside.
    fn as_uuid(&self) -> &Uuid;

    /// A new, time-ordered ID (UUIDv7).
    fn generate() -> Self {
        Self::from_uuid(Uuid::now_v7())
    }

    /// The ID of this type that corresponds one-to-one to another entity's ID (the ticket of an
    /// order): same UUID, this type's prefix. Deterministic, so a retried reaction targets the
    /// same entity.
    fn derived_from<R: ReferenceId>(other: &R) -> Self {
        Self::from_uuid(*other.as_uuid())
    }
}

/// A string that is not a valid reference ID of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {id_type} `{input}`: {problem}; expected `{prefix}_` followed by 32 lowercase hex digits")]
pub struct ParseIdError {
    /// The ID type that was expected (`OrderId`).
    pub id_type: &'static str,
    /// The expected prefix (`ord`).
    pub prefix: &'static str,
    /// The text that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Writes `prefix_hex`; used by the derived `Display`.
#[doc(hidden)]
pub fn format_id(prefix: &str, uuid: &Uuid, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut buf = Uuid::encode_buffer();
    f.write_str(prefix)?;
    f.write_str("_")?;
    f.write_str(uuid.simple().encode_lower(&mut buf))
}

/// Parses `prefix_hex`; used by the derived `FromStr`.
#[doc(hidden)]
pub fn parse_id(id_type: &'static str, prefix: &'static str, input: &str) -> Result<Uuid, ParseIdError> {
    let error = |problem| ParseIdError { id_type, prefix, input: input.to_owned(), problem };
    let rest = input
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .ok_or_else(|| error("wrong or missing prefix"))?;
    if rest.len() != 32 {
        return Err(error("the part after the prefix is not 32 characters long"));
    }
    // IDs are parsed for every reference in every payload decoded: a table look-up per digit,
    // one check per half, no branch per digit.
    let half = |digits: &[u8]| {
        let (mut value, mut invalid) = (0u64, 0u8);
        for &byte in digits {
            let digit = HEX_DIGITS[usize::from(byte)];
            invalid |= digit;
            value = value << 4 | u64::from(digit & 0x0f);
        }
        (invalid & 0xf0 == 0).then_some(value)
    };
    let (high, low) = rest.as_bytes().split_at(16);
    match (half(high), half(low)) {
        (Some(high), Some(low)) => Ok(Uuid::from_u64_pair(high, low)),
        _ => Err(error("the part after the prefix has characters other than 0-9 and a-f")),
    }
}

/// The value of each lower-case hexadecimal digit; `0xff` for every other byte.
const HEX_DIGITS: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The JSON Schema of a reference ID: a string with its pattern.
#[doc(hidden)]
pub fn id_schema(id_type: &str, prefix: &str) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": format!("^{prefix}_[0-9a-f]{{32}}$"),
        "description": format!("A reference to an entity: {id_type}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_formats_and_nothing_else() {
        for uuid in
            [Uuid::nil(), Uuid::max(), Uuid::now_v7(), Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210)]
        {
            let text = format!("ord_{}", uuid.simple());
            assert_eq!(parse_id("OrderId", "ord", &text).unwrap(), uuid);
        }
        let good = "0123456789abcdef0123456789abcdef";
        assert!(parse_id("OrderId", "ord", &format!("ord_{good}")).is_ok());
        for bad in [
            format!("ord_{}", good.to_uppercase()),
            format!("ord_{}g", &good[..31]),
            format!("ord_g{}", &good[1..]),
            format!("ord_{}", &good[..31]),
            format!("ord-{good}"),
            format!("cus_{good}"),
        ] {
            assert!(parse_id("OrderId", "ord", &bad).is_err(), "{bad} parsed");
        }
    }
}
