//! The tools' `Mcp-Param-*` rules, as the pool's server last listed them:
//! what lets a modern `tools/call` be checked against its tool's
//! `x-mcp-header` annotations before any process is touched
//! (docs/ERAS.md, "`Mcp-Param-*` headers").
//!
//! Filled from the `tools/list` results the modern front relays (a complete
//! one-page list replaces it; a page of a longer list updates the tools it
//! names) and, when a call names a tool it does not know, from a listing the
//! proxy makes itself on the process checked out for that call, before the
//! call is sent. Emptied when a process says `notifications/tools/list_changed`
//! during a modern request.
//!
//! Invariants:
//! - bounded: at most [`MAX_TOOLS`] tools, each holding only its rules (not
//!   its schema); a listing of more is kept incomplete, so a tool left out is
//!   looked up again rather than taken to have no headers;
//! - a listing that began before the catalog was emptied (a list change
//!   seen meanwhile) is not recorded: it may describe the old list;
//! - a tool absent from the catalog is "unknown" unless the catalog holds a
//!   whole list, and an unknown tool is never checked as having no headers.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::param_headers::{ToolRules, check, rules_of};
use super::validate::ModernError;
use crate::jsonrpc::Id;
use crate::proxy::mcp::calls::{self, Ending};
use crate::proxy::transport::routing_headers::PARAM_PREFIX;
use crate::upstream::connection::{Connection, OutgoingRequest};

/// Tools whose rules are kept.
pub(crate) const MAX_TOOLS: usize = 4096;
/// Pages the proxy reads when it lists the tools itself; a server whose list
/// goes on longer (or loops on its cursors) is not checked for a tool on
/// a later page.
pub(crate) const MAX_PAGES: usize = 32;

/// What the catalog knows of a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    Known(ToolRules),
    /// Not in the catalog: list the tools first. `generation` is the
    /// catalog's at the time of asking, for [`ToolCatalog::record`].
    Unknown {
        generation: u64,
    },
}

#[derive(Debug, Default)]
struct Catalog {
    /// Bumped whenever the catalog is emptied for a list change.
    generation: u64,
    /// `tools` is the server's whole list (as of its last listing).
    complete: bool,
    tools: HashMap<String, ToolRules>,
}

impl Catalog {
    /// Records one tool definition; false when full and the tool is new.
    fn put(&mut self, tool: &Value) -> bool {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return true;
        };
        if self.tools.len() >= MAX_TOOLS && !self.tools.contains_key(name) {
            return false;
        }
        let rules = match tool.get("inputSchema") {
            Some(schema) => rules_of(schema),
            None => ToolRules::none(),
        };
        if let ToolRules::Invalid(why) = &rules {
            tracing::warn!(tool = %name, reason = %why, "tool definition with an invalid x-mcp-header annotation: its Mcp-Param-* headers are not checked (clients must drop the tool)");
        }
        self.tools.insert(name.to_owned(), rules);
        true
    }
}

/// The catalog of the pool's server (one per proxy: every pooled process
/// runs the same command).
#[derive(Debug, Default)]
pub(crate) struct ToolCatalog {
    inner: Mutex<Catalog>,
}

/// Which part of a list a `tools/list` result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Every page (one page with no `nextCursor`, or all the pages the proxy
    /// read itself).
    Whole,
    /// One page of a longer list.
    Page,
}

impl ToolCatalog {
    fn lock(&self) -> MutexGuard<'_, Catalog> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lookup(&self, name: &str) -> Lookup {
        let catalog = self.lock();
        match catalog.tools.get(name) {
            Some(rules) => Lookup::Known(rules.clone()),
            None if catalog.complete => Lookup::Known(ToolRules::none()),
            None => Lookup::Unknown {
                generation: catalog.generation,
            },
        }
    }

    /// The catalog's generation now (taken when a listing starts).
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Records `tools` from a listing that started at `generation`; a
    /// listing older than the last list change is ignored.
    pub(crate) fn record(&self, generation: u64, tools: &[Value], listing: Listing) {
        let mut catalog = self.lock();
        if catalog.generation != generation {
            return;
        }
        if listing == Listing::Whole {
            catalog.tools.clear();
        }
        let mut kept_all = true;
        for tool in tools {
            kept_all &= catalog.put(tool);
        }
        if listing == Listing::Whole {
            catalog.complete = kept_all;
        }
        if !kept_all {
            tracing::warn!(
                max = MAX_TOOLS,
                "the server lists more tools than the Mcp-Param-* catalog keeps; the others are listed again when called"
            );
        }
    }

    /// The server's tool list changed: forget everything known.
    pub(crate) fn invalidate(&self) {
        let mut catalog = self.lock();
        catalog.generation = catalog.generation.wrapping_add(1);
        catalog.complete = false;
        catalog.tools.clear();
    }

    /// Records a `tools/list` result the modern front relays to a client;
    /// `cursor`: the request asked for a later page.
    pub(crate) fn record_relayed(&self, generation: u64, cursor: bool, message: &Value) {
        let Some(result) = message.get("result") else {
            return;
        };
        let Some(tools) = result.get("tools").and_then(Value::as_array) else {
            return;
        };
        let more = result.get("nextCursor").is_some_and(|c| !c.is_null());
        let listing = if cursor || more {
            Listing::Page
        } else {
            Listing::Whole
        };
        self.record(generation, tools, listing);
    }
}

/// A `tools/call`'s name and arguments, when there is something to check:
/// a call with no arguments and no `Mcp-Param-*` header cannot break any
/// annotation (and needs no listing), and one whose `name` is not a string
/// or whose `arguments` are not an object is the server's to refuse.
fn checkable<'a>(
    headers: &HeaderMap,
    params: Option<&'a Value>,
) -> Option<(&'a str, Option<&'a Value>)> {
    let name = params?.get("name")?.as_str()?;
    let arguments = params?.get("arguments");
    match arguments {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) if !a.is_empty() => return Some((name, arguments)),
        Some(Value::Object(_)) => {}
        Some(_) => return None,
    }
    let prefix = PARAM_PREFIX.to_ascii_lowercase();
    headers
        .keys()
        .any(|h| h.as_str().starts_with(&prefix))
        .then_some((name, arguments))
}

impl ToolCatalog {
    /// Checks a modern `tools/call`'s `Mcp-Param-*` headers with what the
    /// catalog knows. `Ok(Some(generation))`: the tool is unknown; list the
    /// tools on the call's process first ([`ToolCatalog::check_listed`]).
    pub(crate) fn check_known(
        &self,
        headers: &HeaderMap,
        params: Option<&Value>,
    ) -> Result<Option<u64>, ModernError> {
        let Some((name, arguments)) = checkable(headers, params) else {
            return Ok(None);
        };
        match self.lookup(name) {
            Lookup::Known(ToolRules::Headers(rules)) => {
                check(&rules, arguments, headers).map(|()| None)
            }
            Lookup::Known(ToolRules::Invalid(_)) => Ok(None),
            Lookup::Unknown { generation } => Ok(Some(generation)),
        }
    }

    /// The check of a call whose tool the catalog did not know: the tools
    /// are listed on `conn` (the process that will run the call, before the
    /// call is sent), the listing recorded, and the call checked against it.
    pub(crate) async fn check_listed(
        &self,
        conn: &Connection,
        timeout: Duration,
        generation: u64,
        headers: &HeaderMap,
        params: Option<&Value>,
    ) -> Result<(), ModernError> {
        let Some((name, arguments)) = checkable(headers, params) else {
            return Ok(());
        };
        // The whole listing, every page, within one request timeout.
        let listed = tokio::time::timeout(timeout, list_tools(conn, timeout)).await;
        let Ok(Some(tools)) = listed else {
            if listed.is_err() {
                tracing::warn!(
                    ?timeout,
                    "the proxy's tools/list did not end within the request timeout; this call's Mcp-Param-* headers are not checked"
                );
            }
            return Ok(());
        };
        self.record(generation, &tools, Listing::Whole);
        let schema = tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|t| t.get("inputSchema"));
        match schema.map(rules_of) {
            Some(ToolRules::Headers(rules)) => check(&rules, arguments, headers),
            Some(ToolRules::Invalid(_)) | None => Ok(()),
        }
    }
}

/// Whether a server message says the tool list changed.
pub(crate) fn is_list_change(message: &Value) -> bool {
    message.get("id").is_none()
        && message.get("method").and_then(Value::as_str) == Some("notifications/tools/list_changed")
}

/// Lists the tools on `conn` (every page, up to [`MAX_PAGES`]), within
/// `timeout` per page (the caller bounds the whole). `None`: the listing failed or did not end; the call
/// then goes on unchecked (as the Python SDK 2.x server does), logged.
pub(crate) async fn list_tools(conn: &Connection, timeout: Duration) -> Option<Vec<Value>> {
    let never = tokio_util::sync::CancellationToken::new();
    let mut tools = Vec::new();
    let mut cursors = Vec::new();
    for _ in 0..MAX_PAGES {
        let params = cursors.last().map(|c: &Value| json!({ "cursor": c }));
        let request = OutgoingRequest {
            // The connection gives it an id of its own upstream.
            id: Id::String("stdiopool-tool-catalog".into()),
            method: "tools/list".into(),
            params,
        };
        let (message, ending) = calls::call(conn, request, None, timeout, &never).await;
        let result = message.get("result");
        let page = result
            .and_then(|r| r.get("tools"))
            .and_then(Value::as_array);
        let (Ending::Answered { error: false }, Some(page)) = (ending, page) else {
            let error = message.get("error").cloned().unwrap_or(Value::Null);
            tracing::warn!(%error, "the proxy's tools/list failed; this call's Mcp-Param-* headers are not checked");
            return None;
        };
        tools.extend(page.iter().cloned());
        match result.and_then(|r| r.get("nextCursor")) {
            None | Some(Value::Null) => return Some(tools),
            Some(cursor) if cursors.contains(cursor) => break,
            Some(cursor) => cursors.push(cursor.clone()),
        }
    }
    tracing::warn!(
        max_pages = MAX_PAGES,
        "the server's tool list did not end within the pages the proxy reads; this call's Mcp-Param-* headers are not checked"
    );
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn tool(name: &str, header: Option<&str>) -> Value {
        let mut prop = json!({"type": "string"});
        if let Some(h) = header {
            prop["x-mcp-header"] = json!(h);
        }
        json!({"name": name, "inputSchema": {"type": "object", "properties": {"a": prop}}})
    }

    fn tokens(lookup: Lookup) -> Option<Vec<String>> {
        match lookup {
            Lookup::Known(ToolRules::Headers(h)) => {
                Some(h.iter().map(|r| r.token.clone()).collect())
            }
            Lookup::Known(ToolRules::Invalid(_)) => Some(vec!["<invalid>".into()]),
            Lookup::Unknown { .. } => None,
        }
    }

    #[test]
    fn a_whole_list_answers_for_every_name_and_a_page_only_for_its_own() {
        let catalog = ToolCatalog::default();
        assert_eq!(catalog.lookup("route"), Lookup::Unknown { generation: 0 });
        // A page: only its tools are known.
        catalog.record(0, &[tool("route", Some("Region"))], Listing::Page);
        assert_eq!(tokens(catalog.lookup("route")), Some(vec!["Region".into()]));
        assert_eq!(tokens(catalog.lookup("echo")), None);
        // A whole list: a name it lacks has no headers, and it replaces the old.
        catalog.record(
            0,
            &[tool("echo", None), tool("route", Some("Zone"))],
            Listing::Whole,
        );
        assert_eq!(tokens(catalog.lookup("echo")), Some(vec![]));
        assert_eq!(tokens(catalog.lookup("route")), Some(vec!["Zone".into()]));
        assert_eq!(tokens(catalog.lookup("nope")), Some(vec![]));
        catalog.record(0, &[tool("bad", Some("A B"))], Listing::Whole);
        assert_eq!(
            tokens(catalog.lookup("bad")),
            Some(vec!["<invalid>".into()])
        );
        assert_eq!(tokens(catalog.lookup("route")), Some(vec![]));
    }

    #[test]
    fn a_list_change_empties_it_and_voids_listings_begun_before() {
        let catalog = ToolCatalog::default();
        let before = catalog.generation();
        catalog.record(before, &[tool("route", Some("Region"))], Listing::Whole);
        catalog.invalidate();
        assert_eq!(catalog.lookup("route"), Lookup::Unknown { generation: 1 });
        // A listing that started before the change describes the old list.
        catalog.record(before, &[tool("route", Some("Region"))], Listing::Whole);
        assert_eq!(tokens(catalog.lookup("route")), None);
        catalog.record(1, &[tool("route", Some("Zone"))], Listing::Whole);
        assert_eq!(tokens(catalog.lookup("route")), Some(vec!["Zone".into()]));
    }

    #[test]
    fn relayed_results_are_whole_only_without_cursors() {
        let catalog = ToolCatalog::default();
        let result = |next: Value| json!({"result": {"tools": [tool("route", Some("Region"))], "nextCursor": next}});
        catalog.record_relayed(0, false, &result(json!("p2")));
        assert_eq!(
            tokens(catalog.lookup("echo")),
            None,
            "a first page is not the whole list"
        );
        catalog.record_relayed(0, true, &result(Value::Null));
        assert_eq!(
            tokens(catalog.lookup("echo")),
            None,
            "a last page is not the whole list"
        );
        catalog.record_relayed(0, false, &result(Value::Null));
        assert_eq!(tokens(catalog.lookup("echo")), Some(vec![]));
        // Errors change nothing.
        catalog.record_relayed(
            0,
            false,
            &json!({"error": {"code": -32603, "message": "x"}}),
        );
        assert_eq!(tokens(catalog.lookup("route")), Some(vec!["Region".into()]));
    }

    #[test]
    fn it_keeps_at_most_max_tools_and_then_is_incomplete() {
        let catalog = ToolCatalog::default();
        let many: Vec<Value> = (0..=MAX_TOOLS)
            .map(|i| tool(&format!("t{i}"), None))
            .collect();
        catalog.record(0, &many, Listing::Whole);
        assert_eq!(catalog.lock().tools.len(), MAX_TOOLS);
        // The tool left out is looked up, not taken to have no headers.
        let left_out = (0..=MAX_TOOLS)
            .map(|i| format!("t{i}"))
            .find(|n| !catalog.lock().tools.contains_key(n))
            .unwrap();
        assert!(matches!(catalog.lookup(&left_out), Lookup::Unknown { .. }));
    }

    #[test]
    fn only_the_tools_list_change_counts() {
        assert!(is_list_change(
            &json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        ));
        assert!(!is_list_change(
            &json!({"jsonrpc": "2.0", "method": "notifications/prompts/list_changed"})
        ));
        assert!(!is_list_change(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "notifications/tools/list_changed"})
        ));
    }
}
