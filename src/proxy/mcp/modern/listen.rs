//! `subscriptions/listen` in pooled mode: the long-lived stream a modern
//! client opens for change notifications, acknowledged with exactly what the
//! pool can honour.
//!
//! Invariant: the acknowledgement promises nothing the proxy cannot deliver,
//! and the stream never carries a notification type the client did not ask
//! for. Today the honoured set is empty: a pooled process belongs to no
//! client between requests and its unsolicited notifications have no path
//! out of the connection (docs/ERAS.md, "What is not offered yet"), which is
//! also why discover advertises no `listChanged`. The stream stays open (with
//! keep-alives) until the client closes it or the proxy shuts down, and then
//! ends gracefully with the `complete` result the revision defines.

use std::time::Duration;

use axum::response::Response;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::jsonrpc::{Id, response};
use crate::proxy::mcp::calls::raw;
use crate::proxy::mcp::sse::{Outbound, sse_reply};

/// `_meta` key that ties a listen stream's messages to its request.
pub(crate) const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The subset of the requested filter the pool honours: nothing yet.
fn honoured(_requested: Option<&Value>) -> Value {
    json!({})
}

/// The reply to `subscriptions/listen` with id `id` and `params`.
pub(crate) fn listen(
    id: Id,
    params: Option<&Value>,
    shutdown: CancellationToken,
    keep_alive: Option<Duration>,
) -> Response {
    let tag = json!({ META_SUBSCRIPTION_ID: id.to_value() });
    let requested = params.and_then(|p| p.get("notifications"));
    let ack = json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": honoured(requested), "_meta": tag},
    });
    let end = response(&id, json!({"resultType": "complete", "_meta": tag}));
    let events =
        stream::once(async move { Outbound::Related(raw(&ack)) }).chain(stream::once(async move {
            shutdown.cancelled().await;
            Outbound::Final(raw(&end).into())
        }));
    sse_reply(id, events, keep_alive)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::proxy::transport::message::RequestId;

    #[tokio::test]
    async fn the_stream_acknowledges_nothing_then_ends_completely_at_shutdown() {
        let shutdown = CancellationToken::new();
        let params = json!({"notifications": {"toolsListChanged": true}});
        let reply = listen(
            RequestId::Number(4.into()),
            Some(&params),
            shutdown.clone(),
            None,
        );
        shutdown.cancel();
        let body = axum::body::to_bytes(reply.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let frames: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(frames.len(), 2, "{text}");
        assert_eq!(
            frames[0]["method"],
            "notifications/subscriptions/acknowledged"
        );
        assert_eq!(frames[0]["params"]["notifications"], json!({}));
        assert_eq!(frames[0]["params"]["_meta"][META_SUBSCRIPTION_ID], 4);
        assert_eq!(frames[1]["id"], 4);
        assert_eq!(frames[1]["result"]["resultType"], "complete");
        assert_eq!(frames[1]["result"]["_meta"][META_SUBSCRIPTION_ID], 4);
    }
}
