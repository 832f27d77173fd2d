//! The request-metadata headers of a modern (2026-07-28) POST —
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, and the `Mcp-Param-{Name}`
//! headers a tool's `x-mcp-header` annotations ask for — read and decoded so
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

/// Prefix of the headers that mirror annotated tool arguments (`Mcp-Param-{Name}`).
pub const PARAM_PREFIX: &str = "Mcp-Param-";

const SENTINEL_PREFIX: &str = "=?base64?";
const SENTINEL_SUFFIX: &str = "?=";

/// Why a routing header cannot be used (each names the header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    /// Sent more than once.
    #[error("the {0} header is repeated")]
    Repeated(String),
    /// Holds characters a header value may not carry.
    #[error("the {0} header has invalid characters")]
    InvalidCharacters(String),
    /// A `=?base64?…?=` value that is not canonical Base64 of UTF-8 text.
    #[error("the {0} header has a malformed =?base64?…?= value")]
    BadBase64(String),
}

/// The value of header `name`, decoded: `Ok(None)` when absent.
pub fn read(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, HeaderFault> {
    read_named(headers, name, name)
}

/// The value of `Mcp-Param-{token}` (`token` as the tool's `x-mcp-header`
/// annotation spells it; header names compare case-insensitively), decoded:
/// `Ok(None)` when absent. The fault names the header as `Mcp-Param-{token}`.
pub fn read_param(headers: &HeaderMap, token: &str) -> Result<Option<String>, HeaderFault> {
    let display = format!("{PARAM_PREFIX}{token}");
    read_named(headers, &display.to_ascii_lowercase(), &display)
}

/// `lookup` is the header's name in lowercase; `display` names it in faults.
fn read_named(
    headers: &HeaderMap,
    lookup: &str,
    display: &str,
) -> Result<Option<String>, HeaderFault> {
    let mut values = headers.get_all(lookup).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderFault::Repeated(display.to_owned()));
    }
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .all(|b| *b == b'\t' || (0x20..=0x7e).contains(b))
    {
        return Err(HeaderFault::InvalidCharacters(display.to_owned()));
    }
    // Checked above: visible ASCII, space and tab only. Surrounding spaces
    // and tabs are the field's optional whitespace (RFC 9110 §5.5), not the
    // value.
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_matches([' ', '\t']);
    decode_sentinel(text)
        .map(Some)
        .ok_or_else(|| HeaderFault::BadBase64(display.to_owned()))
}

/// Decodes the Base64 sentinel form; other values are returned as they are.
/// `None`: a sentinel whose payload is not canonical Base64 (the standard
/// alphabet, with its padding) of UTF-8 text — a corrupt value must never
/// match a body value by accident. A value with only the prefix or only the
/// suffix is not a sentinel: it is taken literally.
fn decode_sentinel(text: &str) -> Option<String> {
    let Some(inner) = text
        .strip_prefix(SENTINEL_PREFIX)
        .and_then(|t| t.strip_suffix(SENTINEL_SUFFIX))
    else {
        return Some(text.to_owned());
    };
    // STANDARD requires canonical padding and zero trailing bits.
    let bytes = STANDARD.decode(inner).ok()?;
    String::from_utf8(bytes).ok()
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
        assert_eq!(read(&h, METHOD), Err(HeaderFault::Repeated(METHOD.into())));
        assert_eq!(
            read(&one(NAME, "é".as_bytes()), NAME),
            Err(HeaderFault::InvalidCharacters(NAME.into()))
        );
        assert_eq!(
            read(&one(NAME, b"=?base64?***?="), NAME),
            Err(HeaderFault::BadBase64(NAME.into()))
        );
        // Valid Base64 that is not UTF-8.
        assert_eq!(
            read(&one(NAME, b"=?base64?/w==?="), NAME),
            Err(HeaderFault::BadBase64(NAME.into()))
        );
    }

    #[test]
    fn param_headers_are_found_in_any_case_and_decoded_strictly() {
        let mut h = HeaderMap::new();
        h.insert("mcp-param-region", HeaderValue::from_static("  us-west1\t"));
        assert_eq!(
            read_param(&h, "Region").unwrap().as_deref(),
            Some("us-west1")
        );
        assert_eq!(
            read_param(&h, "REGION").unwrap().as_deref(),
            Some("us-west1")
        );
        assert_eq!(read_param(&h, "Zone").unwrap(), None);
        let faulty = |value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("mcp-param-text", HeaderValue::from_static(value));
            read_param(&h, "Text")
        };
        // The conformance suite's cases: "Hello" base64 without its padding,
        // and characters outside the alphabet.
        assert_eq!(
            faulty("=?base64?SGVsbG8?="),
            Err(HeaderFault::BadBase64("Mcp-Param-Text".into()))
        );
        assert_eq!(
            faulty("=?base64?SGVs!!!bG8=?="),
            Err(HeaderFault::BadBase64("Mcp-Param-Text".into()))
        );
        // Non-zero trailing bits: not the canonical form of any value.
        assert!(faulty("=?base64?SGVsbG9=?=").is_err());
        assert_eq!(
            faulty("=?base64?SGVsbG8=?=").unwrap().as_deref(),
            Some("Hello")
        );
        // Half a sentinel is a literal value.
        assert_eq!(
            faulty("=?base64?SGVsbG8=").unwrap().as_deref(),
            Some("=?base64?SGVsbG8=")
        );
        assert_eq!(faulty("SGVsbG8=").unwrap().as_deref(), Some("SGVsbG8="));
        // The spec's examples.
        assert_eq!(
            faulty("=?base64?IHBhZGRlZCA=?=").unwrap().as_deref(),
            Some(" padded ")
        );
        assert_eq!(
            faulty("=?base64?bGluZTEKbGluZTI=?=").unwrap().as_deref(),
            Some("line1\nline2")
        );
        let mut h = HeaderMap::new();
        h.append("Mcp-Param-Text", HeaderValue::from_static("a"));
        h.append("mcp-param-text", HeaderValue::from_static("a"));
        assert_eq!(
            read_param(&h, "Text"),
            Err(HeaderFault::Repeated("Mcp-Param-Text".into()))
        );
    }
}
