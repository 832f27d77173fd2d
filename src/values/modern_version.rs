//! The MCP protocol versions of the modern ("stateless", per-request
//! metadata) era that the proxy serves, as a closed set, and the rule that
//! tells a version string's era.
//!
//! Invariant: a [`ModernVersion`] is always one of [`ModernVersion::SUPPORTED`];
//! the legacy set stays [`super::ProtocolVersion`], so nothing that checks a
//! legacy header can accept a modern version by mistake (or the reverse).

use std::fmt;
use std::str::FromStr;

/// A protocol version of the modern era (no `initialize`, no sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModernVersion {
    /// `2026-07-28`: the first stateless revision.
    V2026_07_28,
}

/// The versions that used the `initialize` handshake: a request naming one
/// of them is legacy, whatever else it carries (`2024-11-05` included, so it
/// keeps today's refusal rather than the modern one).
pub const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

impl ModernVersion {
    /// Every supported modern version, oldest first: the `supportedVersions`
    /// of `server/discover` and the `supported` list of -32022, which must agree.
    pub const SUPPORTED: [ModernVersion; 1] = [ModernVersion::V2026_07_28];

    /// The version as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ModernVersion::V2026_07_28 => "2026-07-28",
        }
    }

    /// The supported versions as wire strings.
    pub fn supported_strs() -> Vec<&'static str> {
        Self::SUPPORTED.iter().map(|v| v.as_str()).collect()
    }

    /// Whether `version` names the modern era by its shape: a date revision
    /// (`YYYY-MM-DD`) later than the last handshake revision. A dual-era
    /// client sends such a header only when it speaks the modern protocol;
    /// other unknown text (`latest`, a typo) keeps today's legacy refusal.
    pub fn is_modern_revision(version: &str) -> bool {
        let b = version.as_bytes();
        let shaped = b.len() == 10
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                _ => c.is_ascii_digit(),
            });
        // Date strings of this shape order lexicographically.
        shaped && version > HANDSHAKE_VERSIONS[3]
    }
}

impl fmt::Display for ModernVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of [`ModernVersion::SUPPORTED`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported MCP protocol version {given:?} (supported: {})", ModernVersion::supported_strs().join(", "))]
pub struct UnsupportedModernVersion {
    /// What was given.
    pub given: String,
}

impl FromStr for ModernVersion {
    type Err = UnsupportedModernVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnsupportedModernVersion {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn supported_versions_round_trip_and_others_are_refused() {
        for v in ModernVersion::SUPPORTED {
            assert_eq!(v.as_str().parse::<ModernVersion>().unwrap(), v);
        }
        for bad in ["2025-11-25", "v999.0.0", "", "2026-07-29"] {
            assert!(bad.parse::<ModernVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_dates_after_the_last_handshake_revision_are_modern() {
        assert!(ModernVersion::is_modern_revision("2026-07-28"));
        assert!(ModernVersion::is_modern_revision("2099-01-01"));
        for legacy in HANDSHAKE_VERSIONS {
            assert!(!ModernVersion::is_modern_revision(legacy), "{legacy}");
        }
        for other in [
            "latest",
            "v999.0.0",
            "2026-7-28",
            "2026-07-28x",
            "20260-7-28",
            "",
        ] {
            assert!(!ModernVersion::is_modern_revision(other), "{other}");
        }
    }
}
