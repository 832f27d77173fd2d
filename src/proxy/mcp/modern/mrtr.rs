//! MRTR (multi round-trip requests) over a 2025 server: when the process
//! asks the client something (elicitation, sampling, roots) during a modern
//! `tools/call`, `prompts/get` or `resources/read`, the client is answered
//! with an `input_required` result whose `requestState` names the parked
//! call; the client's retry (a new request with `inputResponses` and that
//! `requestState`) hands the answers to the waiting process and the call goes
//! on, on the same process, within the same upstream request.
//!
//! The call runs in a task of its own (it outlives the HTTP request that
//! started it); each client request — the first and every retry — is a
//! [`Round`] that gets one message back. Input requests are keyed by the
//! server request's own id, which is unique on the process while it is held.
//!
//! Invariants:
//! - the process is never left waiting: every server request still
//!   unanswered when the call ends — finished, cancelled, parked too long,
//!   given way, shut down, or its task dropped — is answered with an error
//!   before the process goes back to the pool ([`Asked`]'s `Drop`), and the
//!   dropped call is cancelled upstream by the connection;
//! - a parked call holds its process at most `--input-wait`, and gives way
//!   first when a request finds no free process ([`ParkedCalls::give_way`]);
//! - a `requestState` is 128 random bits from the OS, used once, and only
//!   by a retry of the same method on the same name or URI (`parked.rs`);
//! - a client that goes away while its round runs ends the call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::parked::{Binding, ParkedCalls, new_state};
use super::server_requests::{Asked as Kind, classify, missing_capability};
use super::tool_catalog::{ToolCatalog, is_list_change};
use super::translate::forwards_notification;
use super::validate::LogLevel;
use crate::jsonrpc::{ErrorObject, Id, error_response, response};
use crate::proxy::mcp::calls::{self, Ending};
use crate::upstream::connection::{Connection, OutgoingRequest};

/// Server messages buffered between the connection and the call's task.
const EVENTS_BUFFER: usize = 64;
/// How long the first question of a round waits for others the server asks
/// at the same moment, so they reach the client in one `input_required`.
const INPUT_GATHER: Duration = Duration::from_millis(50);

/// The methods whose calls may be answered `input_required`.
pub(crate) fn supports_input(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
}

/// One client request of a multi-round call: what it brings and where its
/// one answer goes.
pub(crate) struct Round {
    /// The client request's own id (each retry has a new one).
    pub(crate) id: Id,
    /// `inputResponses` (empty on the first round).
    pub(crate) responses: Map<String, Value>,
    /// The request's SSE stream, when it has one.
    pub(crate) stream: Option<mpsc::Sender<Value>>,
    /// The final message for this request, and how the round ended.
    pub(crate) reply: oneshot::Sender<(Value, Ending)>,
}

impl Round {
    pub(crate) fn answer(self, mut message: Value, ending: Ending) {
        // Upstream, the call keeps the first round's id; each round is
        // answered under its own.
        message["id"] = self.id.to_value();
        if self.reply.send((message, ending)).is_err() {
            tracing::debug!("the client's request ended before its answer");
        }
    }
}

/// What the call needs besides its process.
pub(crate) struct Job {
    pub(crate) request: OutgoingRequest,
    pub(crate) binding: Binding,
    pub(crate) capabilities: Map<String, Value>,
    pub(crate) level: Option<LogLevel>,
    pub(crate) timeout: Duration,
    pub(crate) input_wait: Duration,
    pub(crate) parked: Arc<ParkedCalls>,
    pub(crate) shutdown: CancellationToken,
    /// Emptied when the server says its tool list changed.
    pub(crate) catalog: Arc<ToolCatalog>,
}

/// The server requests put to the client and not answered yet: key (the
/// server's id as text) → (server id, the request as an input request).
/// Dropped with the call, it answers each with an error.
struct Asked<'a> {
    conn: &'a Connection,
    open: BTreeMap<String, (Id, Value)>,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        for (_, (id, _)) in std::mem::take(&mut self.open) {
            let error = ErrorObject::internal_error(
                "the client did not answer: its MCP 2026-07-28 call ended first (stdiopool)",
            );
            if let Err(e) = self.conn.respond_now(error_response(Some(&id), error)) {
                tracing::debug!(error = %e, "could not answer a server request");
            }
        }
    }
}

fn key_of(id: &Id) -> String {
    match id.to_value() {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Runs a call that may need the client's input, answering `first` and each
/// retry; `conn` is the call's process, held until this returns.
pub(crate) async fn drive<C>(conn: C, job: Job, first: Round)
where
    C: std::ops::Deref<Target = Connection>,
{
    let Job {
        request,
        binding,
        capabilities,
        level,
        timeout,
        input_wait,
        parked,
        shutdown,
        catalog,
    } = job;
    let never = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel::<Value>(EVENTS_BUFFER);
    let mut call = Box::pin(calls::call(&conn, request, Some(tx), timeout, &never));
    let mut asked = Asked {
        conn: &conn,
        open: BTreeMap::new(),
    };
    let mut round = first;
    let mut finished: Option<(Value, Ending)> = None;
    loop {
        // Running: until the call ends or the server asks something.
        if asked.open.is_empty() && finished.is_none() {
            tokio::select! {
                biased;
                Some(message) = rx.recv() => {
                    if let Err((error, refusal)) = take(&conn, &mut asked, Some(&mut round), message, &capabilities, level, &catalog).await {
                        end_call(call, &conn, refusal);
                        let id = round.id.clone();
                        round.answer(error_response(Some(&id), error), Ending::Answered { error: true });
                        return;
                    }
                    continue;
                }
                outcome = &mut call => finished = Some(outcome),
                () = round.reply.closed() => {
                    tracing::debug!("the client went away during a modern call; cancelled");
                    return;
                }
            }
        }
        // Whatever the server sent before its response, or with its first
        // question, belongs to this round.
        while let Ok(message) = rx.try_recv() {
            if let Err((error, refusal)) = take(
                &conn,
                &mut asked,
                Some(&mut round),
                message,
                &capabilities,
                level,
                &catalog,
            )
            .await
            {
                end_call(call, &conn, refusal);
                let id = round.id.clone();
                round.answer(
                    error_response(Some(&id), error),
                    Ending::Answered { error: true },
                );
                return;
            }
        }
        // Questions the server asks together (from concurrent tasks) arrive
        // a moment apart; they wait a short while for each other so the
        // client gets them in one round.
        if finished.is_none() && !asked.open.is_empty() {
            let gather = tokio::time::sleep(INPUT_GATHER);
            tokio::pin!(gather);
            loop {
                tokio::select! {
                    biased;
                    Some(message) = rx.recv() => {
                        if let Err((error, refusal)) = take(&conn, &mut asked, Some(&mut round), message, &capabilities, level, &catalog).await {
                        end_call(call, &conn, refusal);
                            let id = round.id.clone();
                            round.answer(error_response(Some(&id), error), Ending::Answered { error: true });
                            return;
                        }
                    }
                    () = &mut gather => break,
                }
            }
        }
        // The server's answer ends the call, whatever it still asked.
        if let Some((message, ending)) = finished.take() {
            round.answer(message, ending);
            return;
        }
        if asked.open.is_empty() {
            continue;
        }
        // Parked: ask the client, wait for its retry.
        let state = match new_state() {
            Ok(state) => state,
            Err(e) => {
                let id = round.id.clone();
                let error = ErrorObject::internal_error(format!("no requestState: {e}"));
                round.answer(error_response(Some(&id), error), Ending::UpstreamFailed);
                return;
            }
        };
        let (retry_tx, mut retry_rx) = oneshot::channel();
        let give_way = parked.park(state.clone(), binding.clone(), retry_tx);
        let inputs: Map<String, Value> = asked
            .open
            .iter()
            .map(|(key, (_, request))| (key.clone(), request.clone()))
            .collect();
        let result = json!({
            "resultType": "input_required",
            "inputRequests": inputs,
            "requestState": state,
        });
        let id = round.id.clone();
        round.answer(response(&id, result), Ending::Answered { error: false });
        let deadline = tokio::time::sleep(input_wait);
        tokio::pin!(deadline);
        let next = loop {
            tokio::select! {
                biased;
                next = &mut retry_rx => break next.ok(),
                () = &mut deadline => {
                    tracing::debug!(wait = ?input_wait, "a parked call's client did not retry in time; the process goes back");
                    break None;
                }
                () = give_way.cancelled() => {
                    tracing::debug!("a parked call gave way to a request that found no free process");
                    break None;
                }
                () = shutdown.cancelled() => break None,
                // The server may go on talking while it waits; its further
                // questions are asked in the next round.
                Some(message) = rx.recv(), if finished.is_none() => {
                    if take(&conn, &mut asked, None, message, &capabilities, level, &catalog).await.is_err() {
                        tracing::debug!("a parked call's server asked what the client cannot answer");
                    }
                }
                outcome = &mut call, if finished.is_none() => finished = Some(outcome),
            }
        };
        // A retry that raced the end of the wait must not be swallowed: a
        // closed receiver makes `resume` hand it back (-32602 for it).
        retry_rx.close();
        parked.forget(&state);
        let Some(next) = next else {
            return;
        };
        round = next;
        let open: Vec<String> = asked.open.keys().cloned().collect();
        for key in open {
            // Not a result object: no answer; asked again below.
            let Some(answer) = round.responses.remove(&key).filter(Value::is_object) else {
                continue;
            };
            let Some((theirs, _)) = asked.open.remove(&key) else {
                continue;
            };
            let message = json!({"jsonrpc": "2.0", "id": theirs.to_value(), "result": answer});
            if let Err(e) = conn.respond(message).await {
                tracing::debug!(error = %e, "could not pass the client's input to the server");
            }
        }
        // Anything still unanswered is asked again (the loop parks anew);
        // answers to questions not asked yet wait in `round.responses`, and
        // keys never asked are ignored.
    }
}

/// Ends the call because the client lacks what the server asked for: the
/// call is dropped first, so the connection queues `notifications/cancelled`
/// before the server's request is refused (the refusal would let the server
/// finish the call, and a finished call is not cancelled); the refusal is
/// queued at once, with no await a drop could cut.
fn end_call<F>(call: F, conn: &Connection, refusal: Value) {
    drop(call);
    if let Err(e) = conn.respond_now(refusal) {
        tracing::debug!(error = %e, "could not answer a server request");
    }
}

/// One server message during the call. A notification goes to the stream
/// (if any) through the request's filter; a request is answered upstream
/// here or kept to ask the client. `Err`: the client lacks what the server
/// asked for (-32021), which ends the call; the refusal for the server comes
/// with it, for [`end_call`] to send once the call is dropped.
async fn take(
    conn: &Connection,
    asked: &mut Asked<'_>,
    round: Option<&mut Round>,
    message: Value,
    capabilities: &Map<String, Value>,
    level: Option<LogLevel>,
    catalog: &ToolCatalog,
) -> Result<(), (ErrorObject, Value)> {
    if is_list_change(&message) {
        catalog.invalidate();
    }
    let (stream, supplied) = match round {
        Some(round) => (round.stream.as_ref(), Some(&mut round.responses)),
        None => (None, None),
    };
    let method = message.get("method").and_then(Value::as_str);
    let id = message
        .get("id")
        .cloned()
        .and_then(|v| Id::from_value(v).ok());
    let (Some(id), Some(method)) = (id, method) else {
        if let Some(stream) = stream
            && forwards_notification(&message, level)
            && stream.send(message).await.is_err()
        {
            tracing::trace!("the client's stream is gone; notification dropped");
        }
        return Ok(());
    };
    let params = message.get("params");
    let (upstream, result) = match classify(method, params, capabilities) {
        Kind::Ping => (response(&id, json!({})), Ok(())),
        Kind::Declared => {
            // An answer the client already sent under this key (a client
            // that sends `inputResponses` up front, as to a stateless
            // server) is the answer; one that is not a result object is no
            // answer, and the client is asked.
            let key = key_of(&id);
            if let Some(answer) = supplied
                .and_then(|s| s.remove(&key))
                .filter(Value::is_object)
            {
                let message = json!({"jsonrpc": "2.0", "id": id.to_value(), "result": answer});
                if let Err(e) = conn.respond(message).await {
                    tracing::debug!(error = %e, "could not pass the client's input to the server");
                }
                return Ok(());
            }
            let mut request = json!({"method": method});
            if let Some(params) = params {
                request["params"] = params.clone();
            }
            asked.open.insert(key, (id, request));
            return Ok(());
        }
        Kind::Missing(required) => {
            let upstream = ErrorObject::method_not_found(method).with_data(Value::String(
                "the client of this call did not declare this capability".into(),
            ));
            return Err((
                missing_capability(method, required),
                error_response(Some(&id), upstream),
            ));
        }
        Kind::Unknown => (
            error_response(Some(&id), ErrorObject::method_not_found(method)),
            Ok(()),
        ),
    };
    if let Err(e) = conn.respond(upstream).await {
        tracing::debug!(error = %e, "could not answer a server request");
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Instant;

    use super::*;

    fn round(id: i64) -> (Round, oneshot::Receiver<(Value, Ending)>) {
        let (tx, rx) = oneshot::channel();
        let round = Round {
            id: Id::from_value(json!(id)).unwrap(),
            responses: Map::new(),
            stream: None,
            reply: tx,
        };
        (round, rx)
    }

    fn binding(name: &str) -> Binding {
        Binding::of("tools/call", Some(&json!({"name": name})))
    }

    /// The cancel point of a parked call: its task dropped while it waits
    /// for the retry (the await holding both the process and an unanswered
    /// server request). The server must get an error for its request.
    #[tokio::test]
    async fn a_parked_call_dropped_answers_the_server_before_the_process_goes() {
        use crate::accounting::Accounting;
        use crate::upstream::process::{ChildProcess, ProcessSpec};
        let out = std::env::temp_dir().join(format!("stdiopool-mrtr-drop-{}", std::process::id()));
        let _ = std::fs::remove_file(&out);
        // A server that asks roots/list during the call, then writes down the
        // next line it reads (what answered its question), then waits for EOF.
        let script = format!(
            r#"read call; printf '%s\n' '{{"jsonrpc":"2.0","id":"q","method":"roots/list"}}'; read answer; printf '%s\n' "$answer" > '{}'; cat > /dev/null"#,
            out.display()
        );
        let spec = ProcessSpec::new("sh").args(["-c", script.as_str()]);
        let acc = Arc::new(Accounting::new());
        let conn = Arc::new(Connection::new(
            ChildProcess::spawn(&spec, &acc).unwrap(),
            1 << 20,
        ));
        conn.relay_server_requests();
        let job = Job {
            request: OutgoingRequest {
                id: Id::from_value(json!(1)).unwrap(),
                method: "tools/call".into(),
                params: Some(json!({"name": "t"})),
            },
            binding: binding("t"),
            capabilities: json!({"roots": {}}).as_object().unwrap().clone(),
            level: None,
            timeout: Duration::from_secs(600),
            input_wait: Duration::from_secs(600),
            parked: Arc::default(),
            catalog: Arc::default(),
            shutdown: CancellationToken::new(),
        };
        let (first, answer) = round(1);
        let task = tokio::spawn(drive(Arc::clone(&conn), job, first));
        let (message, _) = tokio::time::timeout(Duration::from_secs(30), answer)
            .await
            .expect("no input_required within 30 s")
            .unwrap();
        assert_eq!(
            message["result"]["resultType"], "input_required",
            "{message}"
        );
        assert!(
            message["result"]["inputRequests"].get("q").is_some(),
            "{message}"
        );
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let deadline = Instant::now() + Duration::from_secs(30);
        let written = loop {
            match std::fs::read_to_string(&out) {
                Ok(text) if text.ends_with('\n') => break text,
                _ => {
                    assert!(
                        Instant::now() < deadline,
                        "the server's request was never answered"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let _ = std::fs::remove_file(&out);
        let answer: Value = serde_json::from_str(written.trim()).unwrap();
        assert_eq!(answer["id"], "q", "{answer}");
        assert!(answer.get("error").is_some(), "{answer}");
        drop(conn); // closes stdin: the server ends
    }

    #[test]
    fn only_three_methods_take_input() {
        for m in ["tools/call", "prompts/get", "resources/read"] {
            assert!(supports_input(m));
        }
        assert!(!supports_input("tools/list"));
    }
}
