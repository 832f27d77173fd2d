//! The `--allowed-origin` / `--allowed-host` entries, parsed and normalised.
//!
//! Invariant: an [`AllowedOrigin`] is `*` or a lower-case
//! `scheme://host[:port]` with no trailing `/`; an [`AllowedHost`] is `*` or a
//! lower-case host name without its port. Both exist only through their
//! `parse`, once, when the configuration is read; the `Host`/`Origin` guard
//! built from them cannot fail.

use std::fmt;

/// An `--allowed-origin` / `--allowed-host` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginRuleError {
    /// Not `scheme://host[:port]` or `*`.
    #[error("allowed origin {0:?} is not of the form scheme://host[:port] (or *)")]
    BadOrigin(String),
    /// Empty, or holds a character a host name cannot hold.
    #[error("allowed host {0:?} is not a host name (or *)")]
    BadHost(String),
}

/// A normalised `--allowed-origin` entry (`*`: any origin).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedOrigin(String);

/// A normalised `--allowed-host` entry (`*`: any host).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedHost(String);

impl AllowedOrigin {
    /// Normalises an entry: lower case, no trailing `/`. `*` allows every origin.
    pub fn parse(entry: &str) -> Result<AllowedOrigin, OriginRuleError> {
        let trimmed = entry.trim().trim_end_matches('/');
        if trimmed == "*" {
            return Ok(AllowedOrigin("*".to_owned()));
        }
        let lower = trimmed.to_ascii_lowercase();
        let bad = || OriginRuleError::BadOrigin(entry.to_owned());
        let (scheme, authority) = lower.split_once("://").ok_or_else(bad)?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        let authority_ok = !authority.is_empty()
            && !authority.contains(['/', '?', '#', '@', ' '])
            && authority.chars().all(|c| c.is_ascii_graphic());
        if scheme_ok && authority_ok {
            Ok(AllowedOrigin(lower))
        } else {
            Err(bad())
        }
    }

    /// Whether this entry is `*`.
    pub fn is_any(&self) -> bool {
        self.0 == "*"
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AllowedHost {
    /// Normalises an entry: lower case, port dropped. `*` allows every host.
    pub fn parse(entry: &str) -> Result<AllowedHost, OriginRuleError> {
        let trimmed = entry.trim();
        if trimmed == "*" {
            return Ok(AllowedHost("*".to_owned()));
        }
        let host = host_without_port(trimmed).to_ascii_lowercase();
        if host.is_empty()
            || !host.chars().all(|c| c.is_ascii_graphic())
            || host.contains(['/', '@'])
        {
            return Err(OriginRuleError::BadHost(entry.to_owned()));
        }
        Ok(AllowedHost(host))
    }

    /// Whether this entry is `*`.
    pub fn is_any(&self) -> bool {
        self.0 == "*"
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Lets a caller compare with the normalised text (`config.allowed_origins ==
// ["https://a.example"]`) without reaching into the type.
impl PartialEq<&str> for AllowedOrigin {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<&str> for AllowedHost {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The host part of `host[:port]` / `[v6]:port`.
pub fn host_without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else if authority.matches(':').count() > 1 {
        // A bare IPv6 address without brackets has no port.
        authority
    } else {
        authority.split(':').next().unwrap_or(authority)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "example.com",
            "https://",
            "https://a.example/path",
            "1http://x",
        ] {
            assert!(AllowedOrigin::parse(bad).is_err(), "{bad}");
        }
        assert!(AllowedHost::parse("").is_err());
        assert!(AllowedHost::parse("a/b").is_err());
        assert_eq!(AllowedHost::parse("Example.COM:80").unwrap(), "example.com");
    }

    #[test]
    fn origins_are_normalised_and_star_is_any() {
        let o = AllowedOrigin::parse(" https://App.Example.com/ ").unwrap();
        assert_eq!(o, "https://app.example.com");
        assert!(!o.is_any());
        assert!(AllowedOrigin::parse("*").unwrap().is_any());
        assert!(AllowedHost::parse("*").unwrap().is_any());
    }
}
