//! Configuration: defaults, the precedence CLI > env > file > default, and
//! every validation error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::CommandFactory;
use stdiopool::config::{Cli, Config, ConfigError, LogFormat, Mode, ServerCommand};
use stdiopool::values::ProtocolVersion;

fn load(args: &[&str]) -> Result<Config, ConfigError> {
    let mut all = vec!["stdiopool"];
    all.extend_from_slice(args);
    Config::load_from(all)
}

fn load_with_file(args: &[&str], toml: &str) -> Result<Config, ConfigError> {
    let mut all = vec!["stdiopool"];
    all.extend_from_slice(args);
    Config::load_from_with_file(all, toml, Path::new("test.toml"))
}

/// A file under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "stdiopool-config-test-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = load(&["--", "my-server", "--flag"]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.path, "/mcp");
    assert_eq!(c.mode, Mode::Pooled);
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    assert_eq!(c.pool.max_size, cpus.max(1));
    assert_eq!(c.pool.min_idle, 1);
    assert_eq!(c.pool.max_uses, None);
    assert_eq!(c.pool.max_lifetime, None);
    assert_eq!(c.pool.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c.pool.create_timeout, Duration::from_secs(60));
    assert_eq!(c.pool.wait_timeout, Duration::from_secs(5));
    assert_eq!(c.request_timeout, Duration::from_secs(60));
    assert_eq!(c.session_idle_timeout, Duration::from_secs(300));
    assert_eq!(c.shutdown_grace, Duration::from_secs(10));
    assert_eq!(c.sse_keep_alive, Some(Duration::from_secs(15)));
    assert_eq!(c.max_body, 4 << 20);
    assert_eq!(c.max_frame, 16 << 20);
    assert_eq!(c.protocol_version, ProtocolVersion::V2025_11_25);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.log_filter, "info");
    assert!(c.auth_token.is_none());
    assert!(c.allowed_origins.is_empty() && c.allowed_hosts.is_empty());
    assert_eq!(c.server.stop_timeout, Duration::from_secs(2));
    assert_eq!(c.server.name, "my-server");
    assert_eq!(
        c.server.command,
        ServerCommand::Exec {
            program: OsString::from("my-server"),
            args: vec![OsString::from("--flag")],
        }
    );
}

#[test]
fn every_option_is_parsed_from_the_command_line() {
    let token = TempFile::new("token-all", "tok\n");
    let dir = std::env::temp_dir();
    let c = load(&[
        "--listen",
        "[::1]:9000",
        "--path",
        "/rpc",
        "--mode",
        "session",
        "--pool-size",
        "8",
        "--pool-min-idle",
        "2",
        "--max-uses",
        "100",
        "--max-lifetime",
        "1h",
        "--idle-timeout",
        "none",
        "--create-timeout",
        "30s",
        "--request-timeout",
        "2m",
        "--wait-timeout",
        "500ms",
        "--session-idle-timeout",
        "30m",
        "--shutdown-grace",
        "3s",
        "--stop-timeout",
        "1s",
        "--sse-keep-alive",
        "off",
        "--max-body",
        "1MiB",
        "--max-frame",
        "1048576",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--unset-env",
        "SECRET,TOKEN",
        "--cwd",
        dir.to_str().unwrap(),
        "--allowed-origin",
        "https://app.example.com",
        "--allowed-host",
        "mcp.example.com",
        "--auth-token-file",
        token.path(),
        "--log-format",
        "json",
        "--log-filter",
        "debug",
        "--protocol-version",
        "2025-06-18",
        "--name",
        "srv",
        "--",
        "npx",
        "-y",
        "server",
    ])
    .unwrap();
    assert_eq!(c.listen, "[::1]:9000".parse().unwrap());
    assert_eq!(c.path, "/rpc");
    assert_eq!(c.mode, Mode::Session);
    assert_eq!(
        (c.pool.max_size, c.pool.min_idle, c.pool.max_uses),
        (8, 2, Some(100))
    );
    assert_eq!(c.pool.max_lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(c.pool.idle_timeout, None);
    assert_eq!(c.pool.create_timeout, Duration::from_secs(30));
    assert_eq!(c.request_timeout, Duration::from_secs(120));
    assert_eq!(c.pool.wait_timeout, Duration::from_millis(500));
    assert_eq!(c.session_idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.shutdown_grace, Duration::from_secs(3));
    assert_eq!(c.server.stop_timeout, Duration::from_secs(1));
    assert_eq!(c.sse_keep_alive, None);
    assert_eq!((c.max_body, c.max_frame), (1 << 20, 1 << 20));
    assert_eq!(
        c.server.env,
        vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
    );
    assert_eq!(
        c.server.unset_env,
        vec![OsString::from("SECRET"), OsString::from("TOKEN")]
    );
    assert_eq!(c.server.cwd.as_deref(), Some(dir.as_path()));
    assert_eq!(c.allowed_origins, vec!["https://app.example.com"]);
    assert_eq!(c.allowed_hosts, vec!["mcp.example.com"]);
    assert!(c.auth_token.as_ref().unwrap().matches(b"tok"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.log_filter, "debug");
    assert_eq!(c.protocol_version, ProtocolVersion::V2025_06_18);
    assert_eq!(c.server.name, "srv");
}

#[test]
fn file_values_override_defaults() {
    let c = load_with_file(
        &[],
        r#"
        listen = "127.0.0.1:9999"
        pool_size = 3
        min_idle = 0
        max_uses = 10
        request_timeout = "30s"
        wait_timeout = 2
        max_body = "1MiB"
        max_frame = 65536
        mode = "session"
        log_format = "json"
        allowed_origins = ["https://a.example"]
        env = { A = "1", B = "2" }
        command = ["srv", "-x"]
        "#,
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9999);
    assert_eq!(
        (c.pool.max_size, c.pool.min_idle, c.pool.max_uses),
        (3, 0, Some(10))
    );
    assert_eq!(c.request_timeout, Duration::from_secs(30));
    assert_eq!(c.pool.wait_timeout, Duration::from_secs(2));
    assert_eq!((c.max_body, c.max_frame), (1 << 20, 65536));
    assert_eq!(c.mode, Mode::Session);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.allowed_origins, vec!["https://a.example"]);
    assert_eq!(
        c.server.env,
        vec![("A".into(), "1".into()), ("B".into(), "2".into())]
    );
    assert_eq!(
        c.server.command,
        ServerCommand::Exec {
            program: "srv".into(),
            args: vec!["-x".into()]
        }
    );
}

#[test]
fn command_line_overrides_file_and_replaces_lists() {
    let c = load_with_file(
        &[
            "--pool-size",
            "5",
            "--allowed-origin",
            "https://b.example",
            "--request-timeout",
            "9s",
        ],
        r#"
        pool_size = 3
        min_idle = 2
        request_timeout = "30s"
        allowed_origin = ["https://a.example"]
        command = ["srv"]
        "#,
    )
    .unwrap();
    assert_eq!(c.pool.max_size, 5);
    assert_eq!(c.pool.min_idle, 2, "untouched file value stays");
    assert_eq!(c.request_timeout, Duration::from_secs(9));
    assert_eq!(c.allowed_origins, vec!["https://b.example"]);
}

#[test]
fn the_server_is_one_setting_decided_by_the_highest_layer() {
    let c = load_with_file(&["--demo"], r#"command = ["srv"]"#).unwrap();
    assert_eq!(c.server.command, ServerCommand::Demo);
    assert_eq!(c.server.name, "demo");
    let c = load_with_file(&["--", "other"], "demo = true").unwrap();
    assert_eq!(
        c.server.command,
        ServerCommand::Exec {
            program: "other".into(),
            args: vec![]
        }
    );
    let c = load_with_file(&[], "demo = true").unwrap();
    assert_eq!(c.server.command, ServerCommand::Demo);
}

#[test]
fn relative_paths_in_the_file_are_relative_to_the_file() {
    let token = TempFile::new("rel-token", "abc\n");
    let name = token.0.file_name().unwrap().to_str().unwrap().to_owned();
    let file_path = std::env::temp_dir().join("stdiopool.toml");
    let c = Config::load_from_with_file(
        ["stdiopool"],
        &format!("auth_token_file = \"{name}\"\ncwd = \".\"\ncommand = [\"s\"]"),
        &file_path,
    )
    .unwrap();
    assert!(c.auth_token.unwrap().matches(b"abc"));
    assert_eq!(c.server.cwd.unwrap(), std::env::temp_dir().join("."));
}

#[test]
fn config_file_is_read_from_the_config_option() {
    let file = TempFile::new(
        "read.toml",
        "pool_size = 2\nmin_idle = 2\ncommand = [\"srv\"]\n",
    );
    let c = load(&["--config", file.path()]).unwrap();
    assert_eq!((c.pool.max_size, c.pool.min_idle), (2, 2));
    let missing = load(&["--config", "/nonexistent/stdiopool.toml"]).unwrap_err();
    assert!(matches!(missing, ConfigError::ReadFile { .. }), "{missing}");
}

/// Runs this test binary again, filtered to `test`, with `env` set, and checks
/// the child ran exactly that test and it passed. Clap reads the real process
/// environment, which a test cannot change without `unsafe`, hence a child.
fn run_child_test(test: &str, env: &[(&str, &str)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--test-threads=1"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STDIOPOOL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env(CHILD_MARKER, "1").envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
}

const CHILD_MARKER: &str = "STDIOPOOL_CONFIG_TEST_CHILD";

#[test]
fn environment_sits_between_command_line_and_file() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        run_child_test(
            "environment_sits_between_command_line_and_file",
            &[
                ("STDIOPOOL_POOL_SIZE", "7"),
                ("STDIOPOOL_WAIT_TIMEOUT", "9s"),
                (
                    "STDIOPOOL_ALLOWED_ORIGIN",
                    "https://e1.example,https://e2.example",
                ),
                ("STDIOPOOL_MODE", "session"),
            ],
        );
        return;
    }
    let file = r#"
        pool_size = 3
        wait_timeout = "1s"
        min_idle = 0
        mode = "pooled"
        allowed_origin = ["https://file.example"]
        command = ["srv"]
    "#;
    // env beats file
    let c = load_with_file(&[], file).unwrap();
    assert_eq!(c.pool.max_size, 7);
    assert_eq!(c.pool.wait_timeout, Duration::from_secs(9));
    assert_eq!(c.mode, Mode::Session);
    assert_eq!(
        c.allowed_origins,
        vec!["https://e1.example", "https://e2.example"]
    );
    // file still applies where env is silent
    assert_eq!(c.pool.min_idle, 0);
    // command line beats env
    let c = load_with_file(&["--pool-size", "4", "--mode", "pooled"], file).unwrap();
    assert_eq!(c.pool.max_size, 4);
    assert_eq!(c.mode, Mode::Pooled);
}

#[test]
fn a_bad_environment_value_is_refused() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        run_child_test(
            "a_bad_environment_value_is_refused",
            &[("STDIOPOOL_MAX_BODY", "lots")],
        );
        return;
    }
    let err = load(&["--", "srv"]).unwrap_err();
    let ConfigError::Cli(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
}

fn refused(args: &[&str]) -> ConfigError {
    load(args).expect_err("configuration should be refused")
}

#[test]
fn pool_size_zero_is_refused() {
    assert!(matches!(
        refused(&["--pool-size", "0", "--min-idle", "0", "--", "s"]),
        ConfigError::PoolSizeZero
    ));
}

#[test]
fn min_idle_above_pool_size_is_refused() {
    assert!(matches!(
        refused(&["--pool-size", "2", "--min-idle", "3", "--", "s"]),
        ConfigError::MinIdleAbovePoolSize {
            min_idle: 3,
            pool_size: 2
        }
    ));
}

#[test]
fn max_uses_zero_is_refused() {
    assert!(matches!(
        refused(&["--max-uses", "0", "--", "s"]),
        ConfigError::MaxUsesZero
    ));
}

#[test]
fn a_command_is_required_without_demo() {
    let err = refused(&[]);
    assert!(matches!(err, ConfigError::MissingCommand));
    assert!(err.to_string().contains("--demo"));
}

#[test]
fn demo_and_command_are_exclusive() {
    assert!(matches!(
        refused(&["--demo", "--", "srv"]),
        ConfigError::DemoWithCommand
    ));
    assert!(matches!(
        load_with_file(&[], "demo = true\ncommand = [\"srv\"]").unwrap_err(),
        ConfigError::DemoWithCommand
    ));
}

#[test]
fn unsupported_protocol_version_is_refused() {
    for v in ["2024-11-05", "2026-07-28", "latest"] {
        assert!(
            matches!(
                refused(&["--protocol-version", v, "--", "s"]),
                ConfigError::UnsupportedProtocolVersion(_)
            ),
            "{v}"
        );
    }
}

#[test]
fn listen_address_must_parse() {
    for v in ["localhost:8080", "127.0.0.1", "8080", "1.2.3.4:99999"] {
        assert!(
            matches!(
                refused(&["--listen", v, "--", "s"]),
                ConfigError::InvalidListen { .. }
            ),
            "{v}"
        );
    }
}

#[test]
fn path_must_start_with_a_slash_and_not_shadow_ops_endpoints() {
    for p in ["mcp", "/mcp?x=1", "/", "/metrics", "/healthz/", "/a b"] {
        assert!(
            matches!(
                refused(&["--path", p, "--", "s"]),
                ConfigError::InvalidPath { .. }
            ),
            "{p}"
        );
    }
    assert_eq!(
        load(&["--path", "/v1/mcp", "--", "s"]).unwrap().path,
        "/v1/mcp"
    );
}

#[test]
fn auth_token_file_must_be_readable() {
    assert!(matches!(
        refused(&["--auth-token-file", "/nonexistent/token", "--", "s"]),
        ConfigError::AuthTokenFile { .. }
    ));
}

#[test]
fn auth_token_file_must_not_be_empty() {
    let empty = TempFile::new("token-empty", "\n");
    assert!(matches!(
        refused(&["--auth-token-file", empty.path(), "--", "s"]),
        ConfigError::AuthToken { .. }
    ));
}

#[test]
fn auth_token_trailing_newline_is_trimmed() {
    let file = TempFile::new("token-newline", "s3cret\r\n");
    let c = load(&["--auth-token-file", file.path(), "--", "s"]).unwrap();
    let token = c.auth_token.unwrap();
    assert!(token.matches(b"s3cret"));
    assert!(!format!("{token:?}").contains("s3cret"));
}

#[test]
fn env_entries_must_be_key_value() {
    for e in ["NOVALUE", "=1"] {
        assert!(
            matches!(
                refused(&["--env", e, "--", "s"]),
                ConfigError::InvalidEnv { .. }
            ),
            "{e}"
        );
    }
    assert!(matches!(
        refused(&["--unset-env", "A=B", "--", "s"]),
        ConfigError::InvalidUnsetEnv { .. }
    ));
}

#[test]
fn malformed_allowed_origins_and_hosts_are_refused() {
    assert!(matches!(
        refused(&["--allowed-origin", "example.com", "--", "s"]),
        ConfigError::InvalidOriginRule(_)
    ));
    assert!(matches!(
        refused(&["--allowed-host", "a/b", "--", "s"]),
        ConfigError::InvalidOriginRule(_)
    ));
}

#[test]
fn zero_timeouts_and_sizes_are_refused() {
    assert!(matches!(
        refused(&["--request-timeout", "0s", "--", "s"]),
        ConfigError::ZeroDuration { .. }
    ));
    assert!(matches!(
        refused(&["--create-timeout", "0", "--", "s"]),
        ConfigError::ZeroDuration { .. }
    ));
    assert!(matches!(
        refused(&["--max-body", "0", "--", "s"]),
        ConfigError::BadSize { .. }
    ));
}

#[test]
fn bad_values_on_the_command_line_are_clap_errors() {
    for args in [
        &["--request-timeout", "soon", "--", "s"][..],
        &["--max-frame", "4 parsecs", "--", "s"],
        &["--mode", "turbo", "--", "s"],
        &["--pool-size", "-1", "--", "s"],
    ] {
        assert!(matches!(refused(args), ConfigError::Cli(_)), "{args:?}");
    }
}

#[test]
fn cwd_must_be_a_directory() {
    assert!(matches!(
        refused(&["--cwd", "/nonexistent/dir", "--", "s"]),
        ConfigError::CwdNotDirectory { .. }
    ));
}

#[test]
fn file_errors_name_the_problem() {
    let unknown = load_with_file(&[], "pool_sise = 3\ncommand = [\"s\"]").unwrap_err();
    assert!(
        matches!(&unknown, ConfigError::ParseFile { message, .. } if message.contains("pool_sise")),
        "{unknown}"
    );
    let bad = load_with_file(&[], "request_timeout = \"soon\"\ncommand = [\"s\"]").unwrap_err();
    assert!(
        matches!(&bad, ConfigError::ParseFile { message, .. } if message.contains("request_timeout")),
        "{bad}"
    );
}

#[test]
fn help_documents_every_option_with_its_env_var_and_default() {
    let help = Cli::command().render_long_help().to_string();
    for arg in Cli::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        assert!(
            help.contains(&format!("--{long}")),
            "--{long} missing from help"
        );
        let var = format!("STDIOPOOL_{}", long.replace('-', "_").to_uppercase());
        let var = if long == "log-filter" {
            "STDIOPOOL_LOG".to_owned()
        } else {
            var
        };
        assert_eq!(
            arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            Some(var.clone()),
            "--{long}"
        );
        assert!(
            help.contains(&format!("[env: {var}")),
            "{var} missing from help"
        );
        let documented_default = !arg.get_default_values().is_empty()
            || arg
                .get_long_help()
                .or(arg.get_help())
                .is_some_and(|h| h.to_string().contains("[default:"))
            || long == "demo";
        assert!(documented_default, "--{long} has no documented default");
    }
}

#[test]
fn help_and_version_are_reported_as_clap_displays() {
    let ConfigError::Cli(e) = refused(&["--help"]) else {
        panic!()
    };
    assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
    let ConfigError::Cli(e) = refused(&["--version"]) else {
        panic!()
    };
    assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
    assert!(e.to_string().contains(env!("CARGO_PKG_VERSION")));
}

// ---- OAuth resource server and --public-url (issue 17) ----

const ISSUER: &str = "https://idp.example.com/realms/mcp";
const JWKS: &str = "https://idp.example.com/realms/mcp/certs";
const PUBLIC: &str = "https://mcp.example.com/mcp";

fn oauth(extra: &[&str]) -> Result<Config, ConfigError> {
    let mut args = vec![
        "--public-url",
        PUBLIC,
        "--oauth-issuer",
        ISSUER,
        "--oauth-jwks-url",
        JWKS,
    ];
    args.extend_from_slice(extra);
    args.push("--demo");
    load(&args)
}

#[test]
fn oauth_is_off_by_default_and_its_options_parse() {
    let c = load(&["--demo"]).unwrap();
    assert!(c.oauth.is_none() && c.public_url.is_none());
    assert!(c.is_unauthenticated());

    let issuers = format!("{ISSUER},https://other.example.com/");
    let c = load(&[
        "--public-url",
        PUBLIC,
        "--oauth-jwks-url",
        JWKS,
        "--demo",
        "--oauth-issuer",
        &issuers,
        "--oauth-scope",
        "mcp:tools,mcp:admin",
        "--oauth-jwks-min-refresh",
        "2m",
    ])
    .unwrap();
    let o = c.oauth.as_ref().unwrap();
    // Issuers are kept exactly as written (the trailing slash included).
    assert_eq!(o.issuers, vec![ISSUER, "https://other.example.com/"]);
    assert_eq!(
        o.jwks,
        stdiopool::values::JwksSource::Url(JWKS.parse().unwrap())
    );
    // The audience defaults to the public URL.
    assert_eq!(o.audience, PUBLIC);
    assert_eq!(o.resource.as_str(), PUBLIC);
    assert_eq!(o.required_scopes, vec!["mcp:tools", "mcp:admin"]);
    assert_eq!(o.min_refresh, Duration::from_secs(120));
    assert!(!c.is_unauthenticated());

    let c = oauth(&["--oauth-audience", "api://stdiopool"]).unwrap();
    assert_eq!(c.oauth.unwrap().audience, "api://stdiopool");
}

#[test]
fn oauth_settings_come_from_the_file() {
    let jwks = TempFile::new("jwks.json", r#"{"keys": []}"#);
    let c = load_with_file(
        &["--demo"],
        &format!(
            "public_url = \"{PUBLIC}\"\noauth_issuer = [\"{ISSUER}\"]\noauth_jwks_file = \"{}\"\noauth_scope = [\"mcp:tools\"]\noauth_jwks_min_refresh = \"10s\"\n",
            jwks.path()
        ),
    )
    .unwrap();
    let o = c.oauth.unwrap();
    assert_eq!(
        o.jwks,
        stdiopool::values::JwksSource::File(PathBuf::from(jwks.path()))
    );
    assert_eq!(o.required_scopes, vec!["mcp:tools"]);
    assert_eq!(o.min_refresh, Duration::from_secs(10));
}

#[test]
fn incomplete_or_contradictory_oauth_options_are_refused() {
    let token = TempFile::new("token-oauth", "tok\n");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "jwks without issuer",
            vec!["--public-url", PUBLIC, "--oauth-jwks-url", JWKS],
        ),
        (
            "scope without issuer",
            vec!["--public-url", PUBLIC, "--oauth-scope", "x"],
        ),
        (
            "no keys",
            vec!["--public-url", PUBLIC, "--oauth-issuer", ISSUER],
        ),
        (
            "both key sources",
            vec![
                "--public-url",
                PUBLIC,
                "--oauth-issuer",
                ISSUER,
                "--oauth-jwks-url",
                JWKS,
                "--oauth-jwks-file",
                "/dev/null",
            ],
        ),
        (
            "no public URL",
            vec!["--oauth-issuer", ISSUER, "--oauth-jwks-url", JWKS],
        ),
        (
            "plain http keys off loopback",
            vec![
                "--public-url",
                PUBLIC,
                "--oauth-issuer",
                ISSUER,
                "--oauth-jwks-url",
                "http://idp.example.com/certs",
            ],
        ),
        (
            "static token too",
            vec![
                "--public-url",
                PUBLIC,
                "--oauth-issuer",
                ISSUER,
                "--oauth-jwks-url",
                JWKS,
                "--auth-token-file",
                token.path(),
            ],
        ),
    ];
    for (name, mut args) in cases {
        args.push("--demo");
        assert!(
            matches!(load(&args), Err(ConfigError::OAuth(_))),
            "{name}: {:?}",
            load(&args).map(|_| ())
        );
    }
    for (name, public, issuer) in [
        ("issuer not a URL", PUBLIC, "idp.example.com"),
        ("public URL with a query", "https://x/mcp?a=1", ISSUER),
    ] {
        let all = [
            "--public-url",
            public,
            "--oauth-issuer",
            issuer,
            "--oauth-jwks-url",
            JWKS,
            "--demo",
        ];
        assert!(
            matches!(load(&all), Err(ConfigError::InvalidUrl(_))),
            "{name}: {:?}",
            load(&all).map(|_| ())
        );
    }
    // Loopback keys over plain http are fine (tests, sidecars).
    let mut args = vec![
        "--public-url",
        PUBLIC,
        "--oauth-issuer",
        ISSUER,
        "--oauth-jwks-url",
        "http://127.0.0.1:9/jwks",
    ];
    args.push("--demo");
    assert!(load(&args).is_ok());
}

#[test]
fn input_wait_defaults_to_60s_and_is_set_by_flag_or_file_and_never_zero() {
    let c = load(&["--", "s"]).unwrap();
    assert_eq!(c.input_wait, Duration::from_secs(60));
    let c = load(&["--input-wait", "5m", "--", "s"]).unwrap();
    assert_eq!(c.input_wait, Duration::from_secs(300));
    let c = load_with_file(&[], "input_wait = \"90s\"\ncommand = [\"s\"]").unwrap();
    assert_eq!(c.input_wait, Duration::from_secs(90));
    assert!(load(&["--input-wait", "0s", "--", "s"]).is_err());
}
