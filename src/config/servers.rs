//! The named servers of a config file: Claude Desktop / Cursor JSON
//! (`{"mcpServers": {...}}`), VS Code `mcp.json` (`{"servers": {...}}`) and
//! stdiopool's TOML (`[servers.<name>]` tables, which may also set pool
//! options per server), read into one list of [`RawServer`]s.
//!
//! Invariant: an entry leaves this module only if it is a stdio server with
//! a command, a URL-safe name not used before, and only known keys; every
//! refusal is a [`ConfigError::Server`] naming the file, the server and (when
//! one is at fault) the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::values::{OptionalCount, OptionalDuration};
use super::{ConfigError, Mode};

/// Keys of a JSON (Claude Desktop / Cursor / VS Code) server entry.
const JSON_KEYS: [&str; 5] = ["command", "args", "env", "cwd", "type"];

/// Keys that mean a remote server (served over HTTP by someone else).
const REMOTE_KEYS: [&str; 4] = ["url", "serverUrl", "headers", "httpUrl"];

/// Keys of a TOML `[servers.<name>]` table.
pub(super) const TOML_KEYS: [&str; 16] = [
    "command",
    "args",
    "env",
    "unset_env",
    "cwd",
    "type",
    "mode",
    "pool_size",
    "min_idle",
    "max_uses",
    "max_lifetime",
    "idle_timeout",
    "create_timeout",
    "wait_timeout",
    "request_timeout",
    "stop_timeout",
];

/// One server entry as the file gives it, before the proxy-wide defaults fill it in.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RawServer {
    pub(super) name: String,
    pub(super) program: String,
    pub(super) args: Vec<String>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) options: ServerOptions,
}

/// The per-server settings only stdiopool's TOML can give.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerOptions {
    pub(super) mode: Option<Mode>,
    pub(super) pool_size: Option<usize>,
    pub(super) min_idle: Option<usize>,
    #[serde(default, deserialize_with = "super::file::de_optional_count")]
    pub(super) max_uses: Option<OptionalCount>,
    #[serde(default, deserialize_with = "super::file::de_optional_duration")]
    pub(super) max_lifetime: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "super::file::de_optional_duration")]
    pub(super) idle_timeout: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "super::file::de_duration")]
    pub(super) create_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "super::file::de_duration")]
    pub(super) wait_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "super::file::de_duration")]
    pub(super) request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "super::file::de_duration")]
    pub(super) stop_timeout: Option<Duration>,
    pub(super) unset_env: Option<Vec<String>>,
    pub(super) cwd: Option<PathBuf>,
}

/// A name usable as one URL path segment without escaping, and not `.`/`..`.
pub(super) fn is_url_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

struct Refusal<'a> {
    path: &'a Path,
    server: &'a str,
}

impl Refusal<'_> {
    fn key(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Server {
            path: self.path.to_owned(),
            server: self.server.to_owned(),
            key: Some(key.to_owned()),
            problem: problem.into(),
        }
    }

    fn entry(&self, problem: impl Into<String>) -> ConfigError {
        ConfigError::Server {
            path: self.path.to_owned(),
            server: self.server.to_owned(),
            key: None,
            problem: problem.into(),
        }
    }
}

/// The checks every format shares, in the order that gives the most useful
/// message: the name, a remote entry (whatever else it holds), unknown
/// keys, then the command. `keys` are the entry's keys in file order.
fn check_entry(
    r: &Refusal<'_>,
    seen: &mut Vec<String>,
    keys: &[&str],
    known: &[&str],
    type_value: Option<&str>,
) -> Result<(), ConfigError> {
    if !is_url_safe(r.server) {
        return Err(r.entry(
            "the name is not URL-safe: use 1 to 64 ASCII letters, digits, '-', '_' or '.' (not '.' or '..'); it becomes the route /servers/<name>/mcp",
        ));
    }
    if seen.iter().any(|s| s == r.server) {
        return Err(r.entry("duplicate server name: each name is one route"));
    }
    seen.push(r.server.to_owned());
    if let Some(key) = keys.iter().find(|k| REMOTE_KEYS.contains(k)) {
        return Err(r.key(
            key,
            "a remote (url/http/sse) server: stdiopool serves stdio servers only (it runs their \"command\"); connect the client to that URL directly",
        ));
    }
    match type_value {
        None | Some("stdio") => {}
        Some(remote @ ("http" | "sse" | "streamable-http" | "streamableHttp" | "ws")) => {
            return Err(r.key(
                "type",
                format!(
                    "\"{remote}\" is a remote (url/http/sse) server: stdiopool serves stdio servers only (it runs their \"command\")"
                ),
            ));
        }
        Some(other) => {
            return Err(r.key(
                "type",
                format!("unknown server type \"{other}\": only \"stdio\" is served"),
            ));
        }
    }
    if let Some(key) = keys.iter().find(|k| !known.contains(k)) {
        return Err(r.key(
            key,
            format!("unknown key (known keys: {})", known.join(", ")),
        ));
    }
    if !keys.contains(&"command") {
        return Err(r.key(
            "command",
            "missing: a stdio server needs the program to run",
        ));
    }
    Ok(())
}

/// A JSON object's entries in file order, duplicates kept (so a duplicate
/// server name can be refused rather than silently overwritten).
#[derive(Debug, Default)]
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of servers by name")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The top level of a Claude Desktop / Cursor / VS Code file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    #[serde(rename = "mcpServers")]
    mcp_servers: Option<Ordered>,
    servers: Option<Ordered>,
    /// VS Code's prompted variables: stdiopool cannot prompt, so only an
    /// empty list is accepted.
    inputs: Option<Vec<Value>>,
}

/// Whether `text` (read from `path`) is one of the JSON formats.
pub(super) fn looks_like_json(text: &str, path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{')
}

/// Reads a Claude Desktop / Cursor / VS Code JSON file.
pub(super) fn parse_json(text: &str, path: &Path) -> Result<Vec<RawServer>, ConfigError> {
    let file: JsonFile = serde_json::from_str(text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if file.inputs.as_ref().is_some_and(|i| !i.is_empty()) {
        return Err(ConfigError::ParseFile {
            path: path.to_owned(),
            message: "\"inputs\" (VS Code's prompted variables) cannot be used: stdiopool runs unattended; put the values in each server's \"env\"".into(),
        });
    }
    let entries: Vec<(String, Value)> = file
        .mcp_servers
        .unwrap_or_default()
        .0
        .into_iter()
        .chain(file.servers.unwrap_or_default().0)
        .collect();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (name, value) in entries {
        let r = Refusal {
            path,
            server: &name,
        };
        let Value::Object(map) = value else {
            return Err(
                r.entry("an entry must be an object with \"command\", \"args\", \"env\", \"cwd\"")
            );
        };
        let type_value = match map.get("type") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(r.key("type", "must be a string")),
        };
        check_entry(
            &r,
            &mut seen,
            &map.keys().map(String::as_str).collect::<Vec<_>>(),
            &JSON_KEYS,
            type_value,
        )?;
        let mut raw = RawServer {
            name: name.clone(),
            ..RawServer::default()
        };
        for (key, value) in &map {
            match key.as_str() {
                "command" => raw.program = nonempty_string(&r, key, value)?,
                "args" => raw.args = string_list(&r, key, value)?,
                "env" => raw.env = string_table(&r, key, value)?,
                "cwd" => raw.options.cwd = Some(PathBuf::from(nonempty_string(&r, key, value)?)),
                _ => {}
            }
        }
        out.push(raw);
    }
    anchor_cwds(&mut out, path);
    Ok(out)
}

fn nonempty_string(r: &Refusal<'_>, key: &str, value: &Value) -> Result<String, ConfigError> {
    match value {
        Value::String(s) if !s.trim().is_empty() && !s.contains('\0') => Ok(s.clone()),
        _ => Err(r.key(key, "must be a non-empty string")),
    }
}

fn string_list(r: &Refusal<'_>, key: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
    let bad = || r.key(key, "must be a list of strings");
    let Value::Array(items) = value else {
        return Err(bad());
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) if !s.contains('\0') => Ok(s.clone()),
            _ => Err(bad()),
        })
        .collect()
}

fn string_table(
    r: &Refusal<'_>,
    key: &str,
    value: &Value,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let bad = || {
        r.key(
            key,
            "must be an object of string values, { \"NAME\": \"value\" }, names non-empty without '=' or NUL",
        )
    };
    let Value::Object(map) = value else {
        return Err(bad());
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) if !k.is_empty() && !k.contains(['=', '\0']) && !s.contains('\0') => {
                Ok((k.clone(), s.clone()))
            }
            _ => Err(bad()),
        })
        .collect()
}

/// Reads the `[servers.<name>]` tables of stdiopool's TOML file.
pub(super) fn parse_toml(table: toml::Table, path: &Path) -> Result<Vec<RawServer>, ConfigError> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (name, value) in table {
        let r = Refusal {
            path,
            server: &name,
        };
        let toml::Value::Table(mut entry) = value else {
            return Err(r.entry("must be a table: [servers.<name>] with command = \"...\""));
        };
        let type_value = match entry.get("type") {
            None => None,
            Some(toml::Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(r.key("type", "must be a string")),
        };
        check_entry(
            &r,
            &mut seen,
            &entry.keys().map(String::as_str).collect::<Vec<_>>(),
            &TOML_KEYS,
            type_value,
        )?;
        entry.remove("type");
        let (program, mut args) = match entry.remove("command") {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => (s, Vec::new()),
            Some(toml::Value::Array(items)) => {
                let words = toml_strings(&r, "command", items)?;
                match words.split_first() {
                    Some((program, rest)) if !program.trim().is_empty() => {
                        (program.clone(), rest.to_vec())
                    }
                    _ => {
                        return Err(
                            r.key("command", "must be a non-empty string or list of strings")
                        );
                    }
                }
            }
            _ => return Err(r.key("command", "must be a non-empty string or list of strings")),
        };
        if let Some(value) = entry.remove("args") {
            let toml::Value::Array(items) = value else {
                return Err(r.key("args", "must be a list of strings"));
            };
            args.extend(toml_strings(&r, "args", items)?);
        }
        let env = match entry.remove("env") {
            None => BTreeMap::new(),
            Some(toml::Value::Table(t)) => {
                let mut env = BTreeMap::new();
                for (k, v) in t {
                    match v {
                        toml::Value::String(s) if !k.is_empty() && !k.contains(['=', '\0']) => {
                            env.insert(k, s);
                        }
                        _ => {
                            return Err(r.key(
                                "env",
                                "must be a table of strings, { NAME = \"value\" }, names non-empty without '='",
                            ));
                        }
                    }
                }
                env
            }
            Some(_) => return Err(r.key("env", "must be a table of strings, { NAME = \"value\" }")),
        };
        // Each key alone first, so a bad value is refused naming its key.
        for (key, value) in &entry {
            let mut single = toml::Table::new();
            single.insert(key.clone(), value.clone());
            ServerOptions::deserialize(toml::Value::Table(single))
                .map_err(|e| r.key(key, first_line(&e.to_string())))?;
        }
        let options = ServerOptions::deserialize(toml::Value::Table(entry))
            .map_err(|e| r.entry(first_line(&e.to_string())))?;
        out.push(RawServer {
            name: name.clone(),
            program,
            args,
            env,
            options,
        });
    }
    anchor_cwds(&mut out, path);
    Ok(out)
}

/// The parser's message without the location line it appends (`in `key``):
/// the refusal names the key itself.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_owned()
}

fn toml_strings(
    r: &Refusal<'_>,
    key: &str,
    items: Vec<toml::Value>,
) -> Result<Vec<String>, ConfigError> {
    items
        .into_iter()
        .map(|v| match v {
            toml::Value::String(s) => Ok(s),
            _ => Err(r.key(key, "must be a list of strings")),
        })
        .collect()
}

/// A relative `cwd` is taken relative to the file's directory, as the rest
/// of the file's paths are.
fn anchor_cwds(servers: &mut [RawServer], path: &Path) {
    let base = path.parent().unwrap_or(Path::new(""));
    for s in servers {
        if let Some(dir) = s.options.cwd.as_mut()
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_url_safe;

    #[test]
    fn url_safe_names() {
        for good in ["time", "server-everything", "a.b_c", "X1"] {
            assert!(is_url_safe(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a?b", "a%20"] {
            assert!(!is_url_safe(bad), "{bad}");
        }
        assert!(!is_url_safe(&"a".repeat(65)));
    }
}
