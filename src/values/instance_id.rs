//! The name of one stdiopool instance among several behind a load balancer
//! (`--instance-id`, default: the host name), carried in the session ids it
//! mints so a balancer can route a session to its owner and a misrouted
//! request can name it.
//!
//! Invariant: an [`InstanceId`] is 1 to 63 characters from `A-Z a-z 0-9 - _`,
//! so it is visible ASCII (a valid part of an `Mcp-Session-Id`), holds no `.`
//! (the separator of the id's parts), and is safe in an nginx `map` regex or
//! an HAProxy `use-server` rule without quoting.

use std::fmt;

/// A validated instance name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

/// Why a name cannot be an instance id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadInstanceId {
    /// Empty, or longer than [`InstanceId::MAX_LEN`].
    #[error("an instance id must be 1 to 63 characters long")]
    Length,
    /// A character outside `A-Z a-z 0-9 - _`.
    #[error("an instance id may hold only A-Z, a-z, 0-9, '-' and '_'")]
    Character,
    /// The host name (the default) could not be read.
    #[error("cannot read the host name ({0}): set --instance-id")]
    Hostname(String),
}

impl InstanceId {
    /// Longest accepted name (a DNS label's limit, so a host name fits).
    pub const MAX_LEN: usize = 63;

    /// Checks `name` (surrounding whitespace is trimmed).
    pub fn parse(name: &str) -> Result<InstanceId, BadInstanceId> {
        let name = name.trim();
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(BadInstanceId::Length);
        }
        if !name.bytes().all(is_instance_byte) {
            return Err(BadInstanceId::Character);
        }
        Ok(InstanceId(name.to_owned()))
    }

    /// The default: this machine's host name up to its first dot (a pod
    /// name in Kubernetes, whose StatefulSet names are stable).
    pub fn from_hostname() -> Result<InstanceId, BadInstanceId> {
        let host =
            nix::unistd::gethostname().map_err(|e| BadInstanceId::Hostname(e.to_string()))?;
        let host = host.to_string_lossy();
        let first_label = host.split('.').next().unwrap_or_default();
        InstanceId::parse(first_label).map_err(|e| {
            BadInstanceId::Hostname(format!("the host name {host:?} is not usable: {e}"))
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `b` may appear in an instance id.
pub fn is_instance_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(InstanceId::parse(" web-1_a ").unwrap().as_str(), "web-1_a");
        assert_eq!(InstanceId::parse(""), Err(BadInstanceId::Length));
        assert_eq!(
            InstanceId::parse(&"a".repeat(64)),
            Err(BadInstanceId::Length)
        );
        for bad in ["a.b", "a b", "é", "a/b", "a~"] {
            assert_eq!(
                InstanceId::parse(bad),
                Err(BadInstanceId::Character),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_host_name_gives_a_valid_default() {
        // Container and CI host names are DNS labels; the first one is used.
        let id = InstanceId::from_hostname().unwrap();
        assert!(!id.as_str().is_empty() && !id.as_str().contains('.'));
    }
}
