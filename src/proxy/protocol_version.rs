//! MCP protocol versions the proxy speaks, and the `MCP-Protocol-Version`
//! header rule of the Streamable HTTP transport.
//!
//! Invariant: a request that carries a version we do not support is refused
//! (400) before anything reaches a child; a request with no header is treated
//! as `2025-03-26`, as the specification requires.

use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;

use super::error::ProxyError;

/// Name of the header carrying the negotiated protocol version.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// A protocol version of MCP's Streamable HTTP transport.
///
/// `2024-11-05` is not listed: clients on it use the older HTTP+SSE transport,
/// which this proxy does not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// `2025-03-26`: the first Streamable HTTP revision (and the version
    /// assumed when a request carries no header).
    V2025_03_26,
    /// `2025-06-18`.
    V2025_06_18,
    /// `2025-11-25`: the revision this proxy targets.
    V2025_11_25,
}

impl ProtocolVersion {
    /// Every supported version, oldest first.
    pub const SUPPORTED: [ProtocolVersion; 3] = [
        ProtocolVersion::V2025_03_26,
        ProtocolVersion::V2025_06_18,
        ProtocolVersion::V2025_11_25,
    ];

    /// The version the proxy targets and offers by default.
    pub const LATEST: ProtocolVersion = ProtocolVersion::V2025_11_25;

    /// The version assumed when a request has no `MCP-Protocol-Version` header.
    pub const ASSUMED_WHEN_ABSENT: ProtocolVersion = ProtocolVersion::V2025_03_26;

    /// The version as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
        }
    }

    /// The supported versions joined with `, ` (for messages and `--help`).
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads the `MCP-Protocol-Version` header: absent → `2025-03-26`;
    /// present but not a supported version (or not text) → 400.
    pub fn from_headers(headers: &HeaderMap) -> Result<ProtocolVersion, ProxyError> {
        let Some(value) = headers.get(PROTOCOL_VERSION_HEADER) else {
            return Ok(Self::ASSUMED_WHEN_ABSENT);
        };
        let text = value.to_str().map_err(|_| {
            ProxyError::UnsupportedProtocolVersion(String::from_utf8_lossy(value.as_bytes()).into())
        })?;
        text.trim()
            .parse()
            .map_err(|_| ProxyError::UnsupportedProtocolVersion(text.to_owned()))
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of [`ProtocolVersion::SUPPORTED`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported MCP protocol version {given:?} (supported: {supported})")]
pub struct UnsupportedVersion {
    /// What was given.
    pub given: String,
    /// The supported versions, comma-separated.
    pub supported: String,
}

impl FromStr for ProtocolVersion {
    type Err = UnsupportedVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnsupportedVersion {
                given: s.to_owned(),
                supported: Self::supported_list(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn every_supported_version_round_trips_through_text() {
        for v in ProtocolVersion::SUPPORTED {
            assert_eq!(v.as_str().parse::<ProtocolVersion>().unwrap(), v);
        }
    }

    #[test]
    fn absent_header_means_2025_03_26() {
        let v = ProtocolVersion::from_headers(&HeaderMap::new()).unwrap();
        assert_eq!(v, ProtocolVersion::V2025_03_26);
    }

    #[test]
    fn unknown_versions_are_refused() {
        for bad in ["2024-11-05", "2026-07-28", "", "latest", "2025-11-25x"] {
            let mut h = HeaderMap::new();
            h.insert(PROTOCOL_VERSION_HEADER, HeaderValue::from_static(bad));
            let err = ProtocolVersion::from_headers(&h).unwrap_err();
            assert!(
                matches!(err, ProxyError::UnsupportedProtocolVersion(ref g) if g == bad),
                "{bad}: {err:?}"
            );
        }
    }
}
