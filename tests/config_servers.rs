//! Many servers from one config file (`--config`): the Claude Desktop /
//! Cursor JSON, VS Code `mcp.json` and stdiopool's TOML formats, the
//! defaults an entry inherits, and every refusal with its exact message
//! (docs/PROXY.md, "Many servers").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stdiopool::config::{Config, ConfigError, Mode, ServerCommand};

fn load_json(args: &[&str], json: &str) -> Result<Config, ConfigError> {
    let mut all = vec!["stdiopool"];
    all.extend_from_slice(args);
    Config::load_from_with_file(all, json, Path::new("/etc/mcp/servers.json"))
}

fn load_toml(args: &[&str], toml: &str) -> Result<Config, ConfigError> {
    let mut all = vec!["stdiopool"];
    all.extend_from_slice(args);
    Config::load_from_with_file(all, toml, Path::new("/etc/mcp/stdiopool.toml"))
}

fn json_error(json: &str) -> String {
    load_json(&[], json).unwrap_err().to_string()
}

fn toml_error(toml: &str) -> String {
    load_toml(&[], toml).unwrap_err().to_string()
}

fn exec(c: &ServerCommand) -> (String, Vec<String>) {
    match c {
        ServerCommand::Exec { program, args } => (
            program.to_string_lossy().into_owned(),
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        ),
        ServerCommand::Demo => panic!("a listed server runs its command"),
    }
}

#[test]
fn claude_desktop_json_gives_one_server_per_entry_in_file_order() {
    let c = load_json(
        &["--pool-size", "3"],
        r#"{"mcpServers": {
            "time": {"command": "uvx", "args": ["mcp-server-time"]},
            "everything": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"],
                           "env": {"A": "1"}, "cwd": "/"}
        }}"#,
    )
    .unwrap();
    let set = c.servers.as_ref().unwrap();
    assert_eq!(set.file, PathBuf::from("/etc/mcp/servers.json"));
    let names: Vec<&str> = set.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["time", "everything"]);
    let time = &set.servers[0];
    assert_eq!(
        exec(&time.server.command),
        ("uvx".into(), vec!["mcp-server-time".into()])
    );
    assert_eq!(time.mcp_path(), "/servers/time/mcp");
    assert_eq!(
        time.pool.max_size, 3,
        "the command line's pool size is the default"
    );
    assert_eq!(time.mode, Mode::Pooled);
    assert_eq!(time.server.name, "time");
    let everything = &set.servers[1];
    assert_eq!(everything.server.env, vec![("A".into(), "1".into())]);
    assert_eq!(everything.server.cwd, Some(PathBuf::from("/")));
    // The per-server configuration is the proxy's with the entry's settings.
    let served = c.for_server(everything);
    assert_eq!(served.path, "/servers/everything/mcp");
    assert_eq!(served.server.name, "everything");
    assert!(served.servers.is_none());
}

#[test]
fn vs_code_mcp_json_with_stdio_type_is_read() {
    let c = load_json(
        &[],
        r#"{"inputs": [], "servers": {"fs": {"type": "stdio", "command": "mcp-fs", "args": ["/tmp"]}}}"#,
    )
    .unwrap();
    let set = c.servers.unwrap();
    assert_eq!(set.servers.len(), 1);
    assert_eq!(
        exec(&set.servers[0].server.command),
        ("mcp-fs".into(), vec!["/tmp".into()])
    );
}

#[test]
fn toml_servers_set_their_own_pool_options_over_the_proxy_wide_ones() {
    let c = load_toml(
        &[],
        r#"
        pool_size = 4
        request_timeout = "20s"
        env = { SHARED = "yes" }

        [servers.time]
        command = "uvx"
        args = ["mcp-server-time"]

        [servers.memory]
        command = ["npx", "-y", "@modelcontextprotocol/server-memory"]
        mode = "session"
        pool_size = 2
        min_idle = 0
        max_uses = 100
        idle_timeout = "1m"
        request_timeout = 5
        wait_timeout = "2s"
        env = { SHARED = "mine", OWN = "1" }
        "#,
    )
    .unwrap();
    let set = c.servers.unwrap();
    let by_name = |n: &str| set.servers.iter().find(|s| s.name == n).unwrap();
    let time = by_name("time");
    assert_eq!(time.pool.max_size, 4);
    assert_eq!(time.request_timeout, Duration::from_secs(20));
    assert_eq!(time.server.env, vec![("SHARED".into(), "yes".into())]);
    let memory = by_name("memory");
    assert_eq!(
        exec(&memory.server.command),
        (
            "npx".into(),
            vec!["-y".into(), "@modelcontextprotocol/server-memory".into()]
        )
    );
    assert_eq!(memory.mode, Mode::Session);
    assert_eq!(memory.pool.max_size, 2);
    assert_eq!(memory.pool.min_idle, 0);
    assert_eq!(memory.pool.max_uses, Some(100));
    assert_eq!(memory.pool.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(memory.pool.wait_timeout, Duration::from_secs(2));
    assert_eq!(memory.request_timeout, Duration::from_secs(5));
    // The proxy-wide environment first, the entry's after it (the later wins).
    let env: Vec<(OsString, OsString)> = vec![
        ("SHARED".into(), "yes".into()),
        ("OWN".into(), "1".into()),
        ("SHARED".into(), "mine".into()),
    ];
    assert_eq!(memory.server.env, env);
}

#[test]
fn a_remote_url_entry_is_refused_naming_the_key() {
    assert_eq!(
        json_error(r#"{"mcpServers": {"linear": {"url": "https://mcp.linear.app/sse"}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"linear\", key \"url\": a remote (url/http/sse) server: stdiopool serves stdio servers only (it runs their \"command\"); connect the client to that URL directly"
    );
    assert_eq!(
        toml_error("[servers.remote]\nurl = \"https://example.com/mcp\"\n"),
        "invalid config file /etc/mcp/stdiopool.toml: server \"remote\", key \"url\": a remote (url/http/sse) server: stdiopool serves stdio servers only (it runs their \"command\"); connect the client to that URL directly"
    );
}

#[test]
fn a_remote_type_entry_is_refused_naming_the_type() {
    assert_eq!(
        json_error(r#"{"servers": {"gh": {"type": "http", "command": "x"}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"gh\", key \"type\": \"http\" is a remote (url/http/sse) server: stdiopool serves stdio servers only (it runs their \"command\")"
    );
    assert_eq!(
        json_error(r#"{"servers": {"old": {"type": "sse", "command": "x"}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"old\", key \"type\": \"sse\" is a remote (url/http/sse) server: stdiopool serves stdio servers only (it runs their \"command\")"
    );
    assert_eq!(
        json_error(r#"{"servers": {"odd": {"type": "pipe", "command": "x"}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"odd\", key \"type\": unknown server type \"pipe\": only \"stdio\" is served"
    );
}

#[test]
fn an_unknown_key_is_refused_naming_it_and_the_known_ones() {
    assert_eq!(
        json_error(r#"{"mcpServers": {"fs": {"command": "x", "envFile": ".env"}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"fs\", key \"envFile\": unknown key (known keys: command, args, env, cwd, type)"
    );
    assert_eq!(
        toml_error("[servers.fs]\ncommand = \"x\"\npool_sise = 2\n"),
        "invalid config file /etc/mcp/stdiopool.toml: server \"fs\", key \"pool_sise\": unknown key (known keys: command, args, env, unset_env, cwd, type, mode, pool_size, min_idle, max_uses, max_lifetime, idle_timeout, create_timeout, wait_timeout, request_timeout, stop_timeout)"
    );
    // At the top of a JSON file, serde names the key and where it is.
    assert_eq!(
        json_error(r#"{"mcpServer": {}}"#),
        "invalid config file /etc/mcp/servers.json: unknown field `mcpServer`, expected one of `mcpServers`, `servers`, `inputs` at line 1 column 12"
    );
}

#[test]
fn a_missing_command_is_refused() {
    assert_eq!(
        json_error(r#"{"mcpServers": {"fs": {"args": ["/tmp"]}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"fs\", key \"command\": missing: a stdio server needs the program to run"
    );
    assert_eq!(
        json_error(r#"{"mcpServers": {"fs": {"command": ""}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"fs\", key \"command\": must be a non-empty string"
    );
    assert_eq!(
        toml_error("[servers.fs]\nmode = \"session\"\n"),
        "invalid config file /etc/mcp/stdiopool.toml: server \"fs\", key \"command\": missing: a stdio server needs the program to run"
    );
}

#[test]
fn a_duplicate_name_is_refused() {
    // JSON parsers keep the last of two equal keys; this one refuses.
    assert_eq!(
        json_error(r#"{"mcpServers": {"fs": {"command": "a"}, "fs": {"command": "b"}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"fs\": duplicate server name: each name is one route"
    );
    // The same name in both lists of one file.
    assert_eq!(
        json_error(
            r#"{"mcpServers": {"fs": {"command": "a"}}, "servers": {"fs": {"command": "b"}}}"#
        ),
        "invalid config file /etc/mcp/servers.json: server \"fs\": duplicate server name: each name is one route"
    );
    // TOML itself refuses a table defined twice, naming it.
    let e = toml_error("[servers.fs]\ncommand = \"a\"\n[servers.fs]\ncommand = \"b\"\n");
    assert!(
        e.starts_with("invalid config file /etc/mcp/stdiopool.toml: "),
        "{e}"
    );
    assert!(e.contains("servers.fs"), "{e}");
}

#[test]
fn a_name_that_is_not_url_safe_is_refused() {
    for name in ["my server", "a/b", "..", "caf\u{e9}"] {
        let json = format!(r#"{{"mcpServers": {{"{name}": {{"command": "x"}}}}}}"#);
        assert_eq!(
            json_error(&json),
            format!(
                "invalid config file /etc/mcp/servers.json: server {name:?}: the name is not URL-safe: use 1 to 64 ASCII letters, digits, '-', '_' or '.' (not '.' or '..'); it becomes the route /servers/<name>/mcp"
            )
        );
    }
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    assert_eq!(
        toml_error("[servers.fs]\ncommand = \"x\"\npool_size = 0\n"),
        "invalid config file /etc/mcp/stdiopool.toml: server \"fs\", key \"pool_size\": must be at least 1"
    );
    assert_eq!(
        toml_error("[servers.fs]\ncommand = \"x\"\npool_size = 2\nmin_idle = 3\n"),
        "invalid config file /etc/mcp/stdiopool.toml: server \"fs\", key \"min_idle\": 3 must not exceed the pool size (2)"
    );
    assert_eq!(
        toml_error("[servers.fs]\ncommand = \"x\"\nmax_uses = 0\n"),
        "invalid config file /etc/mcp/stdiopool.toml: server \"fs\", key \"max_uses\": must be at least 1 (or \"unlimited\")"
    );
    assert_eq!(
        toml_error("[servers.fs]\ncommand = \"x\"\nmode = \"shared\"\n"),
        "invalid config file /etc/mcp/stdiopool.toml: server \"fs\", key \"mode\": unknown variant `shared`, expected `pooled` or `session`"
    );
    let e = toml_error("[servers.fs]\ncommand = \"x\"\nrequest_timeout = \"soon\"\n");
    assert!(
        e.starts_with(
            "invalid config file /etc/mcp/stdiopool.toml: server \"fs\", key \"request_timeout\": "
        ),
        "{e}"
    );
    assert_eq!(
        json_error(r#"{"mcpServers": {"fs": {"command": "x", "args": "/tmp"}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"fs\", key \"args\": must be a list of strings"
    );
    assert_eq!(
        json_error(r#"{"mcpServers": {"fs": {"command": "x", "env": {"A": 1}}}}"#),
        "invalid config file /etc/mcp/servers.json: server \"fs\", key \"env\": must be an object of string values, { \"NAME\": \"value\" }, names non-empty without '=' or NUL"
    );
}

#[test]
fn a_list_and_a_single_server_together_are_refused() {
    let e = load_json(
        &["--", "srv"],
        r#"{"mcpServers": {"fs": {"command": "x"}}}"#,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "invalid config file /etc/mcp/servers.json: it lists servers, so a single server (a command after `--`, --demo, or `command`/`demo` in the file) cannot be given too"
    );
    let e = toml_error("command = [\"srv\"]\n[servers.fs]\ncommand = \"x\"\n");
    assert_eq!(
        e,
        "invalid config file /etc/mcp/stdiopool.toml: it lists servers, so a single server (a command after `--`, --demo, or `command`/`demo` in the file) cannot be given too"
    );
}

#[test]
fn an_empty_list_and_prompted_inputs_are_refused() {
    assert_eq!(
        json_error(r#"{"mcpServers": {}}"#),
        "invalid config file /etc/mcp/servers.json: the server list is empty"
    );
    assert_eq!(
        json_error(
            r#"{"inputs": [{"id": "key", "type": "promptString"}], "servers": {"a": {"command": "x"}}}"#
        ),
        "invalid config file /etc/mcp/servers.json: \"inputs\" (VS Code's prompted variables) cannot be used: stdiopool runs unattended; put the values in each server's \"env\""
    );
}

/// A directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "stdiopool-config-servers-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_relative_cwd_is_taken_from_the_file_s_directory() {
    let dir = TempDir::new("cwd");
    std::fs::create_dir(dir.0.join("data")).unwrap();
    let file = dir.0.join("servers.json");
    std::fs::write(
        &file,
        r#"{"mcpServers": {"fs": {"command": "x", "cwd": "data"}}}"#,
    )
    .unwrap();
    let c = Config::load_from([
        OsString::from("stdiopool"),
        "--config".into(),
        file.clone().into(),
    ])
    .unwrap();
    let set = c.servers.unwrap();
    assert_eq!(set.file, file);
    assert_eq!(set.servers[0].server.cwd, Some(dir.0.join("data")));
    std::fs::remove_dir(dir.0.join("data")).unwrap();
    let e = Config::load_from([
        OsString::from("stdiopool"),
        "--config".into(),
        file.clone().into(),
    ])
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!(
            "invalid config file {}: server \"fs\", key \"cwd\": {} is not a directory",
            file.display(),
            dir.0.join("data").display()
        )
    );
}

#[test]
fn the_binary_exits_2_on_a_bad_file_before_starting_any_server() {
    let dir = TempDir::new("bad-file");
    let marker = dir.0.join("started");
    let file = dir.0.join("servers.json");
    // The first entry would leave a marker if it ever ran; the second is bad.
    let json = format!(
        r#"{{"mcpServers": {{
            "first": {{"command": "sh", "args": ["-c", "touch {}"]}},
            "second": {{"command": "x", "disabled": true}}
        }}}}"#,
        marker.display()
    );
    std::fs::write(&file, json).unwrap();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_stdiopool"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "stdiopool: invalid config file {}: server \"second\", key \"disabled\": unknown key (known keys: command, args, env, cwd, type)",
            file.display()
        )
    );
    assert!(out.stdout.is_empty(), "no banner: nothing was served");
    assert!(!marker.exists(), "no server was started");
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn the_sample_file_in_docs_is_a_valid_server_list() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/servers.example.json");
    let c = Config::load_from(["stdiopool", "--config", sample]).unwrap();
    let names: Vec<String> = c
        .servers
        .unwrap()
        .servers
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["everything", "time", "memory"]);
}
