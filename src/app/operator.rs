//! What the operator sees at start: the addresses a client can use, the
//! warning when the endpoint is open to the network without authentication,
//! and whether log lines may carry ANSI colour.
//!
//! Invariant: pure functions of the configuration and of facts passed in
//! (the interface addresses, whether stderr is a terminal, `NO_COLOR`), so
//! each decision is tested without a terminal or a network.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::Config;

/// Whether log lines on stderr may carry ANSI escapes: only on a terminal,
/// and never when `NO_COLOR` is set to a non-empty value (no-color.org).
pub fn ansi_wanted(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The warning for an endpoint reachable from the network that asks for no
/// credential; `None` when it listens on loopback or requires a token.
pub fn exposure_warning(config: &Config) -> Option<String> {
    (config.listens_off_loopback() && config.is_unauthenticated()).then(|| {
        format!(
            "listening on {} (reachable from the network) with no authentication: anyone who can \
             connect can run the MCP server's tools; set --oauth-issuer (docs/DEPLOY.md) or \
             --auth-token-file, or listen on 127.0.0.1",
            config.listen
        )
    })
}

/// URLs of the MCP endpoint a client can connect to. A wildcard listen
/// address (`0.0.0.0`, `::`) is not one: it is replaced by loopback first
/// (usable on this machine), then by each of `interfaces` it covers.
pub fn client_urls(listen: SocketAddr, path: &str, interfaces: &[IpAddr]) -> Vec<String> {
    let url = |ip: IpAddr| format!("http://{}{path}", SocketAddr::new(ip, listen.port()));
    if !listen.ip().is_unspecified() {
        return vec![url(listen.ip())];
    }
    let v6 = listen.is_ipv6();
    let loopback = if v6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let mut urls = vec![url(loopback)];
    for ip in interfaces {
        // `[::]` also accepts IPv4 on Linux unless IPV6_V6ONLY; `0.0.0.0`
        // accepts IPv4 only. Link-local v6 needs a zone a URL cannot carry.
        let covered = v6 || ip.is_ipv4();
        let usable = !ip.is_loopback()
            && !ip.is_unspecified()
            && !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local());
        if covered && usable {
            let u = url(*ip);
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
    }
    urls
}

/// The addresses of this host's network interfaces (empty if the OS will
/// not say: the banner then shows loopback alone).
pub fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut ips = Vec::new();
    for a in addrs {
        let Some(storage) = a.address else { continue };
        if let Some(v4) = storage.as_sockaddr_in() {
            ips.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = storage.as_sockaddr_in6() {
            ips.push(IpAddr::V6(v6.ip()));
        }
    }
    ips
}

/// The start-up banner: the first line after the title is the one address
/// tools parse (`connect an MCP client to: URL`).
pub fn banner(
    config: &Config,
    listen: SocketAddr,
    upstream: &str,
    interfaces: &[IpAddr],
) -> String {
    let mode = match config.mode {
        crate::config::Mode::Pooled => "pooled",
        crate::config::Mode::Session => "session",
    };
    let urls = client_urls(listen, &config.path, interfaces);
    let mut lines = vec![format!(
        "stdiopool {} serving `{}` (MCP server \"{upstream}\", {mode} mode, up to {} processes)",
        env!("CARGO_PKG_VERSION"),
        config.server.name,
        config.pool.max_size,
    )];
    let mut urls_iter = urls.iter();
    if let Some(first) = urls_iter.next() {
        lines.push(format!("connect an MCP client to: {first}"));
    }
    for other in urls_iter {
        lines.push(format!("                      or: {other}"));
    }
    if let Some(public) = &config.public_url {
        lines.push(format!("public URL: {public}"));
    }
    let auth = if let Some(oauth) = &config.oauth {
        format!(
            "OAuth access tokens from {} (metadata: {})",
            oauth.issuers.join(", "),
            oauth.resource.metadata_url()
        )
    } else if config.auth_token.is_some() {
        "bearer token from --auth-token-file".to_owned()
    } else {
        "none".to_owned()
    };
    lines.push(format!("authentication: {auth}"));
    let ids = if config.session_key.is_some() {
        "signed with --session-key-file: any instance with the key accepts them"
    } else {
        "valid on this instance only"
    };
    lines.push(format!(
        "instance: {} (session ids {ids})",
        config.instance_id
    ));
    let ops = client_urls(listen, "", interfaces)
        .into_iter()
        .next()
        .unwrap_or_default();
    lines.push(format!("health: {ops}/healthz  metrics: {ops}/metrics"));
    lines.join("\n")
}

/// One line of the many-servers banner: a served server as it started.
#[derive(Debug, Clone)]
pub struct ServerLine {
    /// Its name.
    pub name: String,
    /// Its route (`/servers/<name>/mcp`).
    pub path: String,
    /// Its mode.
    pub mode: crate::config::Mode,
    /// Its pool size.
    pub max_size: usize,
    /// `Err(reason)` when its command could not start.
    pub started: Result<(), String>,
}

/// The start-up banner with a server list: one line per server with its
/// URL (or why it did not start), then the listing, health and metrics URLs.
pub fn servers_banner(
    config: &Config,
    listen: SocketAddr,
    servers: &[ServerLine],
    interfaces: &[IpAddr],
) -> String {
    let file = config
        .servers
        .as_ref()
        .map(|set| set.file.display().to_string())
        .unwrap_or_default();
    let mut lines = vec![format!(
        "stdiopool {} serving {} servers from {file}",
        env!("CARGO_PKG_VERSION"),
        servers.len(),
    )];
    for server in servers {
        let mode = match server.mode {
            crate::config::Mode::Pooled => "pooled",
            crate::config::Mode::Session => "session",
        };
        match &server.started {
            Ok(()) => {
                let url = client_urls(listen, &server.path, interfaces)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                lines.push(format!(
                    "server {:?}: {url} ({mode} mode, up to {} processes)",
                    server.name, server.max_size
                ));
            }
            Err(reason) => lines.push(format!(
                "server {:?}: NOT STARTED ({reason}); its route answers 503 until a reload (SIGHUP) starts it",
                server.name
            )),
        }
    }
    let ops = client_urls(listen, "", interfaces)
        .into_iter()
        .next()
        .unwrap_or_default();
    lines.push(format!(
        "authentication: {}",
        if config.oauth.is_some() {
            "OAuth access tokens"
        } else if config.auth_token.is_some() {
            "bearer token from --auth-token-file"
        } else {
            "none"
        }
    ));
    lines.push(format!(
        "servers: {ops}/servers  (reload the file: kill -HUP {})",
        std::process::id()
    ));
    lines.push(format!("health: {ops}/healthz  metrics: {ops}/metrics"));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["stdiopool"];
        all.extend_from_slice(args);
        all.push("--demo");
        Config::load_from(all).unwrap()
    }

    #[test]
    fn ansi_only_on_a_terminal_without_no_color() {
        assert!(ansi_wanted(true, None));
        assert!(ansi_wanted(true, Some(OsStr::new(""))));
        assert!(!ansi_wanted(true, Some(OsStr::new("1"))));
        assert!(!ansi_wanted(false, None));
        assert!(!ansi_wanted(false, Some(OsStr::new(""))));
    }

    #[test]
    fn a_wildcard_address_is_replaced_by_usable_ones() {
        let ifs: Vec<IpAddr> = ["127.0.0.1", "192.168.1.20", "fe80::1", "2001:db8::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            client_urls("0.0.0.0:8080".parse().unwrap(), "/mcp", &ifs),
            vec!["http://127.0.0.1:8080/mcp", "http://192.168.1.20:8080/mcp"]
        );
        assert_eq!(
            client_urls("[::]:8080".parse().unwrap(), "/mcp", &ifs),
            vec![
                "http://[::1]:8080/mcp",
                "http://192.168.1.20:8080/mcp",
                "http://[2001:db8::5]:8080/mcp"
            ]
        );
        assert_eq!(
            client_urls("10.0.0.3:9000".parse().unwrap(), "/mcp", &ifs),
            vec!["http://10.0.0.3:9000/mcp"]
        );
    }

    #[test]
    fn the_banner_never_offers_a_wildcard_address() {
        let c = config(&["--listen", "0.0.0.0:8080"]);
        let b = banner(&c, c.listen, "fixture", &[]);
        assert!(!b.contains("0.0.0.0"), "{b}");
        assert!(
            b.contains("connect an MCP client to: http://127.0.0.1:8080/mcp"),
            "{b}"
        );
        assert!(b.contains("authentication: none"), "{b}");
        assert!(b.contains("health: http://127.0.0.1:8080/healthz"), "{b}");
    }

    #[test]
    fn the_banner_names_the_instance_and_never_the_session_key() {
        let c = config(&["--instance-id", "web-7"]);
        let b = banner(&c, c.listen, "fixture", &[]);
        assert!(
            b.contains("instance: web-7 (session ids valid on this instance only)"),
            "{b}"
        );
        let key = "banner-test-key-that-must-never-be-shown-0123";
        let mut signed = c.clone();
        signed.session_key = Some(crate::values::SessionKey::from_file_contents(key).unwrap());
        let b = banner(&signed, signed.listen, "fixture", &[]);
        assert!(b.contains("signed with --session-key-file"), "{b}");
        assert!(
            !b.contains(key) && !format!("{signed:?}").contains(key),
            "{b}"
        );
    }

    #[test]
    fn exposure_is_warned_only_off_loopback_without_auth() {
        assert!(exposure_warning(&config(&["--listen", "0.0.0.0:8080"])).is_some());
        assert!(exposure_warning(&config(&["--listen", "[::]:8080"])).is_some());
        assert!(exposure_warning(&config(&["--listen", "127.0.0.1:8080"])).is_none());
        assert!(exposure_warning(&config(&["--listen", "[::1]:8080"])).is_none());
        let token = std::env::temp_dir().join(format!("stdiopool-op-{}", std::process::id()));
        std::fs::write(&token, "tok\n").unwrap();
        let with_token = config(&[
            "--listen",
            "0.0.0.0:8080",
            "--auth-token-file",
            token.to_str().unwrap(),
        ]);
        std::fs::remove_file(&token).unwrap();
        assert!(exposure_warning(&with_token).is_none());
        let with_oauth = config(&[
            "--listen",
            "0.0.0.0:8080",
            "--public-url",
            "https://mcp.example.com/mcp",
            "--oauth-issuer",
            "https://idp.example.com",
            "--oauth-jwks-url",
            "https://idp.example.com/jwks",
        ]);
        assert!(exposure_warning(&with_oauth).is_none());
        let b = banner(&with_oauth, with_oauth.listen, "fixture", &[]);
        assert!(b.contains("public URL: https://mcp.example.com/mcp"), "{b}");
        assert!(
            b.contains("authentication: OAuth access tokens from https://idp.example.com"),
            "{b}"
        );
    }
}
