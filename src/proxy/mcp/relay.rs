//! Pooled mode: the server's requests *related to a client's request*
//! (sampling, elicitation, roots) relayed to that client on the request's
//! SSE stream, and the client's answers back to the same process.
//!
//! While a pooled process is checked out for one request it belongs to that
//! request's client alone, so what it asks then can only be for that client.
//! Pooled processes are initialized declaring [`relayed_capabilities`]; a
//! request for one of them goes to the client if the client declared that
//! capability in its own `initialize`, with an id the proxy makes (unique in
//! the session, so answers from two processes can never be confused), and
//! the client's answer — a POST in the same session — is written to the
//! process with the server's own id restored.
//!
//! Invariant: the process is never left waiting. A server request is
//! answered with a JSON-RPC error at once when the client lacks the
//! capability or its stream cannot take the message, and every request
//! still unanswered when the client's request ends — answered, timed out
//! (`--request-timeout` bounds the relay), cancelled or dropped — is
//! answered with an error before the process goes back to the pool. A
//! client answer that comes after that finds no relay and is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::calls::{self, Ending};
use super::sessions::Session;
use crate::jsonrpc::{ErrorObject, Id, error_response, id_of};
use crate::upstream::connection::{Connection, OutgoingRequest, RawMessage};

/// Messages buffered between the connection and the client's stream.
const EVENTS_BUFFER: usize = 64;
/// Client answers buffered for one request's relay.
const ANSWERS_BUFFER: usize = 16;

/// The client capabilities pooled processes are initialized with: the ones
/// whose requests the proxy can relay. `roots` without `listChanged`: a
/// client's `notifications/roots/list_changed` cannot reach the processes
/// that asked before (they serve others now). Elicitation in form mode only
/// (`{}` means form, for servers older than 2025-11-25): url mode sends the
/// user elsewhere and completes later, out of any one request.
pub(crate) fn relayed_capabilities() -> Map<String, Value> {
    let caps = json!({
        "sampling": {},
        "elicitation": {"form": {}},
        "roots": {},
    });
    match caps {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Why a server request is not relayed to this client, if it is not.
fn refusal(method: &str, params: Option<&Value>, client: &Value) -> Option<ErrorObject> {
    let caps = client.get("capabilities").unwrap_or(&Value::Null);
    let has = |name: &str| caps.get(name).is_some_and(Value::is_object);
    let ok = match method {
        "sampling/createMessage" => {
            let with_tools = params.is_some_and(|p| p.get("tools").is_some());
            has("sampling") && (!with_tools || caps["sampling"].get("tools").is_some())
        }
        "elicitation/create" => {
            let url_mode = params
                .and_then(|p| p.get("mode"))
                .and_then(Value::as_str)
                .is_some_and(|m| m == "url");
            has("elicitation") && !url_mode
        }
        "roots/list" => has("roots"),
        _ => false,
    };
    (!ok).then(|| {
        ErrorObject::method_not_found(method).with_data(Value::String(
            "the client did not declare this capability to stdiopool".into(),
        ))
    })
}

/// The relays of one pooled session: proxy id → the relay of the request in
/// flight that sent it.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    open: Mutex<HashMap<Id, mpsc::Sender<Value>>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Relays {
    fn register(&self, answers: mpsc::Sender<Value>) -> Id {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = Id::String(format!("stdiopool-relay-{n}"));
        lock(&self.open).insert(id.clone(), answers);
        id
    }

    fn forget(&self, id: &Id) {
        lock(&self.open).remove(id);
    }

    /// A client's answer (response or error response): to the relay that
    /// asked, if it is still open. Returns whether it was taken.
    pub(crate) fn answer(&self, message: Value) -> bool {
        let Some(id) = id_of(&message) else {
            return false;
        };
        let Some(relay) = lock(&self.open).remove(&id) else {
            return false;
        };
        relay.try_send(message).is_ok()
    }
}

/// Server requests relayed and not answered yet: proxy id → server id.
/// Dropped with the call, it answers each with an error and forgets it.
struct Outstanding<'a> {
    conn: &'a Connection,
    session: &'a Session,
    asked: HashMap<Id, Id>,
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        for (ours, theirs) in self.asked.drain() {
            self.session.relays().forget(&ours);
            let error = ErrorObject::internal_error(
                "the client's request ended before the client answered (stdiopool)",
            );
            if let Err(e) = self.conn.respond_now(error_response(Some(&theirs), error)) {
                tracing::debug!(error = %e, "could not answer a relayed server request");
            }
        }
    }
}

/// Like [`calls::call`], relaying the server's requests to the client on
/// `events` (the request's SSE stream) and its answers back. Without
/// `events` (a JSON reply) there is nothing to relay on, and the connection
/// refuses server requests itself.
pub(crate) async fn call(
    conn: &Connection,
    session: &Session,
    request: OutgoingRequest,
    events: Option<mpsc::Sender<Value>>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> (RawMessage, Ending) {
    let Some(client) = events else {
        return calls::call_raw(conn, request, None, timeout, cancel).await;
    };
    let (from_server_tx, mut from_server) = mpsc::channel::<Value>(EVENTS_BUFFER);
    // Made when the first server request is relayed, not before: a receiver
    // waiting on a channel nobody writes to is still woken when its sender
    // is dropped, at the end of every call, and that wake-up of the
    // request's own task, mid-poll, made tokio wake the other worker for
    // nothing (docs/PERFORMANCE.md, "Fewer wake-ups and fewer boxes").
    let mut answers: Option<Answers> = None;
    let mut outstanding = Outstanding {
        conn,
        session,
        asked: HashMap::new(),
    };
    let call = calls::call_raw(conn, request, Some(from_server_tx), timeout, cancel);
    tokio::pin!(call);
    loop {
        let step = tokio::select! {
            biased;
            Some(message) = from_server.recv() => Step::FromServer(message),
            Some(answer) = next_answer(answers.as_mut()) => Step::Answer(answer),
            outcome = &mut call => Step::Done(outcome),
        };
        match step {
            Step::FromServer(message) => {
                relay_to_client(&mut outstanding, &client, &mut answers, message);
            }
            Step::Answer(answer) => relay_to_server(&mut outstanding, answer),
            Step::Done(outcome) => {
                // Whatever the server sent before its response goes first.
                while let Ok(message) = from_server.try_recv() {
                    relay_to_client(&mut outstanding, &client, &mut answers, message);
                }
                return outcome;
            }
        }
    }
}

/// The channel of the client's answers to this call's relayed requests.
struct Answers {
    tx: mpsc::Sender<Value>,
    rx: mpsc::Receiver<Value>,
}

/// What woke the relay loop.
enum Step {
    FromServer(Value),
    Answer(Value),
    Done((RawMessage, Ending)),
}

/// The next answer, or never when no request has been relayed yet.
async fn next_answer(answers: Option<&mut Answers>) -> Option<Value> {
    match answers {
        Some(answers) => answers.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One message from the server during the call: a notification passes; a
/// request is relayed with the proxy's id, or refused at once.
fn relay_to_client(
    out: &mut Outstanding<'_>,
    client: &mpsc::Sender<Value>,
    answers: &mut Option<Answers>,
    mut message: Value,
) {
    let Some(theirs) = id_of(&message).filter(|_| message.get("method").is_some()) else {
        if client.try_send(message).is_err() {
            tracing::debug!(
                "a server notification was dropped: the client's stream is full or gone"
            );
        }
        return;
    };
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let refused = match out.session.client_initialize() {
        Some(init) => refusal(&method, message.get("params"), init),
        None => Some(ErrorObject::method_not_found(&method)),
    };
    if let Some(error) = refused {
        tracing::debug!(%method, "server request for a capability the client lacks; refused");
        refuse(out.conn, &theirs, error);
        return;
    }
    let answers = answers.get_or_insert_with(|| {
        let (tx, rx) = mpsc::channel(ANSWERS_BUFFER);
        Answers { tx, rx }
    });
    let ours = out.session.relays().register(answers.tx.clone());
    message["id"] = ours.to_value();
    if client.try_send(message).is_err() {
        out.session.relays().forget(&ours);
        refuse(
            out.conn,
            &theirs,
            ErrorObject::internal_error(format!(
                "{method}: the client's stream is gone or full (stdiopool)"
            )),
        );
        return;
    }
    tracing::debug!(%method, id = %ours, "server request relayed to the client");
    out.asked.insert(ours, theirs);
}

/// The client's answer: to the process, with the server's id restored.
fn relay_to_server(out: &mut Outstanding<'_>, mut answer: Value) {
    let Some(theirs) = id_of(&answer).and_then(|ours| out.asked.remove(&ours)) else {
        return;
    };
    answer["id"] = theirs.to_value();
    if let Err(e) = out.conn.respond_now(answer) {
        tracing::debug!(error = %e, "could not pass the client's answer to the server");
    }
}

fn refuse(conn: &Connection, id: &Id, error: ErrorObject) {
    if let Err(e) = conn.respond_now(error_response(Some(id), error)) {
        tracing::debug!(error = %e, "could not refuse a server request");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn init(caps: Value) -> Value {
        json!({"protocolVersion": "2025-11-25", "capabilities": caps})
    }

    #[test]
    fn a_request_is_relayed_only_for_a_capability_the_client_declared() {
        let all = init(json!({"sampling": {}, "elicitation": {}, "roots": {}}));
        let none = init(json!({}));
        for method in ["sampling/createMessage", "elicitation/create", "roots/list"] {
            assert!(refusal(method, None, &all).is_none(), "{method}");
            let error = refusal(method, None, &none).unwrap();
            assert_eq!(error.code, -32601, "{method}");
        }
        assert!(refusal("tasks/get", None, &all).is_some());
    }

    #[test]
    fn url_elicitation_and_tool_sampling_need_what_they_need() {
        let client = init(json!({"sampling": {}, "elicitation": {"form": {}, "url": {}}}));
        let url = json!({"mode": "url", "url": "https://example.com"});
        assert!(refusal("elicitation/create", Some(&url), &client).is_some());
        let tools = json!({"messages": [], "tools": []});
        assert!(refusal("sampling/createMessage", Some(&tools), &client).is_some());
        let with_tools = init(json!({"sampling": {"tools": {}}}));
        assert!(refusal("sampling/createMessage", Some(&tools), &with_tools).is_none());
    }

    #[test]
    fn an_answer_reaches_its_relay_once_and_unknown_ids_are_not_taken() {
        let relays = Relays::default();
        let (tx, mut rx) = mpsc::channel(1);
        let a = relays.register(tx.clone());
        let b = relays.register(tx);
        assert_ne!(a, b, "ids are unique in the session");
        let answer = json!({"jsonrpc": "2.0", "id": a.to_value(), "result": {}});
        assert!(relays.answer(answer.clone()));
        assert_eq!(rx.try_recv().unwrap(), answer);
        assert!(!relays.answer(answer), "a second answer finds no relay");
        assert!(!relays.answer(json!({"jsonrpc": "2.0", "id": 7, "result": {}})));
        relays.forget(&b);
        assert!(!relays.answer(json!({"jsonrpc": "2.0", "id": b.to_value(), "result": {}})));
    }

    #[test]
    fn relayed_capabilities_are_the_three_relayed_kinds() {
        let caps = relayed_capabilities();
        let mut names: Vec<&str> = caps.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["elicitation", "roots", "sampling"]);
    }
}
