//! The MCP protocol versions the proxy speaks, as a closed set.
//!
//! Invariant: a [`ProtocolVersion`] is always one of
//! [`ProtocolVersion::SUPPORTED`]; text becomes one only through `FromStr`,
//! so whoever holds one (the configuration, a checked request) never
//! re-validates it. Reading the `MCP-Protocol-Version` header is the
//! transport's job (`proxy::transport::protocol_version`).

use std::fmt;
use std::str::FromStr;

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

    #[test]
    fn every_supported_version_round_trips_through_text() {
        for v in ProtocolVersion::SUPPORTED {
            assert_eq!(v.as_str().parse::<ProtocolVersion>().unwrap(), v);
        }
    }
}
