//! The request-metadata headers of a modern (2026-07-28) POST —
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` — read and decoded so
//! they can be compared with the body.
//!
//! Invariant: a header is read as one well-formed value or not at all: a
//! repeated header, a value with characters outside visible ASCII / space /
//! tab, or a malformed `=?base64?…?=` sentinel is a [`HeaderFault`], never
//! silently taken as some value (the spec's -32020 cases). Names compare
//! case-insensitively (`HeaderMap` does); values are case-sensitive.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// `MCP-Protocol-Version`.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Method`: the JSON-RPC method.
pub const METHOD: &str = "mcp-method";
/// `Mcp-Name`: `params.name` (tools/call, prompts/get) or `params.uri` (resources/read).
pub const NAME: &str = "mcp-name";

const SENTINEL_PREFIX: &str = "=?base64?";
const SENTINEL_SUFFIX: &str = "?=";

/// Why a routing header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    /// Sent more than once.
    #[error("the {0} header is repeated")]
    Repeated(&'static str),
    /// Holds characters a header value may not carry.
    #[error("the {0} header has invalid characters")]
    InvalidCharacters(&'static str),
    /// A `=?base64?…?=` value that is not Base64 of UTF-8 text.
    #[error("the {0} header has a malformed =?base64?…?= value")]
    BadBase64(&'static str),
}

/// The value of header `name`, decoded: `Ok(None)` when absent.
pub fn read(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, HeaderFault> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderFault::Repeated(name));
    }
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .all(|b| *b == b'\t' || (0x20..=0x7e).contains(b))
    {
        return Err(HeaderFault::InvalidCharacters(name));
    }
    // Checked above: visible ASCII, space and tab only.
    let text = String::from_utf8_lossy(bytes);
    Ok(Some(decode_sentinel(name, text.trim())?))
}

/// Decodes the Base64 sentinel form; other values are returned as they are.
fn decode_sentinel(name: &'static str, text: &str) -> Result<String, HeaderFault> {
    let Some(inner) = text
        .strip_prefix(SENTINEL_PREFIX)
        .and_then(|t| t.strip_suffix(SENTINEL_SUFFIX))
    else {
        return Ok(text.to_owned());
    };
    let bytes = STANDARD
        .decode(inner)
        .map_err(|_| HeaderFault::BadBase64(name))?;
    String::from_utf8(bytes).map_err(|_| HeaderFault::BadBase64(name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn one(name: &'static str, value: &'static [u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_bytes(value).unwrap());
        h
    }

    #[test]
    fn plain_and_base64_values_are_read_and_absence_is_none() {
        assert_eq!(
            read(&one(NAME, b"get_weather"), NAME).unwrap().as_deref(),
            Some("get_weather")
        );
        // The spec's example: "Hello, 世界".
        assert_eq!(
            read(&one(NAME, b"=?base64?SGVsbG8sIOS4lueVjA==?="), NAME)
                .unwrap()
                .as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(read(&HeaderMap::new(), NAME).unwrap(), None);
    }

    #[test]
    fn repeated_non_ascii_and_bad_base64_values_are_faults() {
        let mut h = HeaderMap::new();
        h.append(METHOD, HeaderValue::from_static("tools/list"));
        h.append(METHOD, HeaderValue::from_static("tools/list"));
        assert_eq!(read(&h, METHOD), Err(HeaderFault::Repeated(METHOD)));
        assert_eq!(
            read(&one(NAME, "é".as_bytes()), NAME),
            Err(HeaderFault::InvalidCharacters(NAME))
        );
        assert_eq!(
            read(&one(NAME, b"=?base64?***?="), NAME),
            Err(HeaderFault::BadBase64(NAME))
        );
        // Valid Base64 that is not UTF-8.
        assert_eq!(
            read(&one(NAME, b"=?base64?/w==?="), NAME),
            Err(HeaderFault::BadBase64(NAME))
        );
    }
}
