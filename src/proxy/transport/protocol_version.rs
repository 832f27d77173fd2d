//! The `MCP-Protocol-Version` header rule of the Streamable HTTP transport.
//!
//! Invariant: a request that carries a version we do not support is refused
//! (400) before anything reaches a child; a request with no header is treated
//! as `2025-03-26`, as the specification requires.

use axum::http::HeaderMap;

use super::error::ProxyError;
use crate::values::ProtocolVersion;

/// Name of the header carrying the negotiated protocol version.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// Reads the `MCP-Protocol-Version` header: absent → `2025-03-26`;
/// present but not a supported version (or not text) → 400.
pub fn from_headers(headers: &HeaderMap) -> Result<ProtocolVersion, ProxyError> {
    let Some(value) = headers.get(PROTOCOL_VERSION_HEADER) else {
        return Ok(ProtocolVersion::ASSUMED_WHEN_ABSENT);
    };
    let text = value.to_str().map_err(|_| {
        ProxyError::UnsupportedProtocolVersion(String::from_utf8_lossy(value.as_bytes()).into())
    })?;
    text.trim()
        .parse()
        .map_err(|_| ProxyError::UnsupportedProtocolVersion(text.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn absent_header_means_2025_03_26() {
        let v = from_headers(&HeaderMap::new()).unwrap();
        assert_eq!(v, ProtocolVersion::V2025_03_26);
    }

    #[test]
    fn unknown_versions_are_refused() {
        for bad in ["2024-11-05", "2026-07-28", "", "latest", "2025-11-25x"] {
            let mut h = HeaderMap::new();
            h.insert(PROTOCOL_VERSION_HEADER, HeaderValue::from_static(bad));
            let err = from_headers(&h).unwrap_err();
            assert!(
                matches!(err, ProxyError::UnsupportedProtocolVersion(ref g) if g == bad),
                "{bad}: {err:?}"
            );
        }
    }
}
