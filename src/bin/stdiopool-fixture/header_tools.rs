//! Tools whose arguments are mirrored into `Mcp-Param-*` HTTP headers
//! (`x-mcp-header` schema annotations, MCP 2026-07-28), for the proxy's
//! header checks:
//!
//! - `route`: echoes its `region` (annotated `Region`, or `Zone` once
//!   renamed) and `count` (annotated `Count`) arguments;
//! - `rename_header`: renames `route`'s region header to `Zone` and tells the
//!   client with `notifications/tools/list_changed` before it answers;
//! - `slow_list`: makes the next `tools/list` answer after `ms` milliseconds
//!   (the reading thread sleeps, as a busy server would) and tells the client
//!   the list changed, so a proxy lists it again.
//!
//! Invariant: `tools/list` always shows the annotation `route` currently
//! has; the rename is per process (each pooled process has its own list).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Server, text_result};

/// `route`'s region header is `Zone` (after `rename_header`), else `Region`.
static RENAMED: AtomicBool = AtomicBool::new(false);
/// How long the next `tools/list` waits before answering (0: not at all).
static SLOW_LIST_MS: AtomicU64 = AtomicU64::new(0);

fn region_header() -> &'static str {
    if RENAMED.load(Ordering::Relaxed) {
        "Zone"
    } else {
        "Region"
    }
}

/// `tools`, the fixture's other tools, with these appended (after the delay
/// `slow_list` asked for, once).
pub(super) fn with(mut tools: Value) -> Value {
    let delay = SLOW_LIST_MS.swap(0, Ordering::Relaxed);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    if let Some(list) = tools.as_array_mut() {
        list.push(json!({
            "name": "route",
            "description": "Echoes its arguments; region and count travel as Mcp-Param-* headers.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "region": {"type": "string", "x-mcp-header": region_header()},
                    "count": {"type": "integer", "x-mcp-header": "Count"},
                    "query": {"type": "string"},
                },
            },
        }));
        list.push(json!({
            "name": "rename_header",
            "description": "Renames route's region header to Zone and notifies tools/list_changed.",
            "inputSchema": {"type": "object", "properties": {}},
        }));
        list.push(json!({
            "name": "slow_list",
            "description": "The next tools/list answers after ms milliseconds; notifies tools/list_changed.",
            "inputSchema": {"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}}},
        }));
    }
    tools
}

/// Calls tool `name`; a name that is none of these is an unknown tool.
pub(super) fn call(server: &Arc<Server>, id: &Value, name: &str, args: &Value) {
    match name {
        "route" => {
            let mut result = text_result(args.to_string());
            result["structuredContent"] = args.clone();
            server.reply(id, result);
        }
        "rename_header" => {
            RENAMED.store(true, Ordering::Relaxed);
            server.send(&json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}));
            server.reply(id, text_result(region_header()));
        }
        "slow_list" => {
            let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(0);
            SLOW_LIST_MS.store(ms, Ordering::Relaxed);
            server.send(&json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}));
            server.reply(
                id,
                text_result(format!("the next tools/list waits {ms} ms")),
            );
        }
        other => server.reply_error(id, -32602, &format!("Unknown tool: {other}")),
    }
}
