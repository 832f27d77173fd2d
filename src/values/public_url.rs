//! The public URL of the MCP endpoint: the address clients use to reach it,
//! which may differ from the listening address (behind a reverse proxy or a
//! load balancer that terminates TLS).
//!
//! Invariant: a [`PublicUrl`] is an absolute `http`/`https` URL with a host,
//! no user info, no query and no fragment, so it can serve as the OAuth
//! resource identifier (RFC 8707 §2) and be printed for clients as is.

use std::fmt;

use url::Url;

/// The endpoint's public URL (`--public-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    url: Url,
}

/// Why a URL cannot be used as the public URL (or as another URL option).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL {value:?}: {reason}")]
pub struct BadUrl {
    /// What was given.
    pub value: String,
    /// Why.
    pub reason: &'static str,
}

impl PublicUrl {
    /// Parses and checks `text` (module invariant).
    pub fn parse(text: &str) -> Result<PublicUrl, BadUrl> {
        let url = parse_http_url(text)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(BadUrl {
                value: text.to_owned(),
                reason: "a resource URL has no query or fragment",
            });
        }
        Ok(PublicUrl { url })
    }

    /// The URL as a string, without the lone `/` a bare origin gets, so that
    /// `https://mcp.example.com` stays as written.
    pub fn as_str(&self) -> &str {
        let s = self.url.as_str();
        if self.url.path() == "/" {
            s.strip_suffix('/').unwrap_or(s)
        } else {
            s
        }
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// The path, `""` for a bare origin (never a lone `/`).
    pub fn path(&self) -> &str {
        match self.url.path() {
            "/" => "",
            p => p,
        }
    }

    /// Where RFC 9728 §3.1 puts this resource's metadata: the well-known
    /// path inserted between the origin and the resource's path.
    pub fn metadata_url(&self) -> String {
        format!(
            "{}{}{}",
            self.origin(),
            PROTECTED_RESOURCE_WELL_KNOWN,
            self.path()
        )
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The well-known path of OAuth protected-resource metadata (RFC 9728).
pub const PROTECTED_RESOURCE_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// An absolute `http`/`https` URL with a host and no user info.
pub fn parse_http_url(text: &str) -> Result<Url, BadUrl> {
    let bad = |reason| BadUrl {
        value: text.to_owned(),
        reason,
    };
    let url = Url::parse(text.trim()).map_err(|_| bad("not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(bad("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not carry user info"));
    }
    Ok(url)
}

/// Whether `url` names this machine (`localhost` or a loopback IP), where
/// plain `http` cannot be intercepted on the network.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn metadata_url_inserts_the_well_known_path_before_the_resource_path() {
        let u = PublicUrl::parse("https://mcp.example.com/team/mcp").unwrap();
        assert_eq!(u.as_str(), "https://mcp.example.com/team/mcp");
        assert_eq!(
            u.metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/team/mcp"
        );
        let bare = PublicUrl::parse("https://mcp.example.com:8443").unwrap();
        assert_eq!(bare.as_str(), "https://mcp.example.com:8443");
        assert_eq!(
            bare.metadata_url(),
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_resource_identifier() {
        for bad in [
            "mcp.example.com/mcp",
            "ftp://x/mcp",
            "https://u:p@x/mcp",
            "https://x/mcp?a=1",
            "https://x/mcp#f",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_urls() {
        for (u, want) in [
            ("http://127.0.0.1:9/x", true),
            ("http://localhost/x", true),
            ("http://[::1]/x", true),
            ("https://idp.example.com/x", false),
            ("http://10.0.0.1/x", false),
        ] {
            assert_eq!(is_loopback_url(&Url::parse(u).unwrap()), want, "{u}");
        }
    }
}
