#!/usr/bin/env python3
"""Drives an MCP Streamable HTTP endpoint with the official Python SDK (mcp 2.x).

    py_client.py URL --tool NAME [--args JSON] --expect TEXT
                 [--path client|session|both] [--mode auto|legacy] [--server-requests]

Two client paths, each: initialize, ping, list tools (NAME must be listed),
call NAME(JSON) (the result must not be an error and its text must contain
TEXT), end the session.

  client   `mcp.Client(URL)`, by default in mode "auto": it first POSTs
           `server/discover` (2026-07-28) and must fall back to `initialize`
           when the server answers 4xx. Leaving the context ends the session.
  session  `streamable_http_client` + `ClientSession`, over an HTTP client that
           records every exchange, so the end is checked: the DELETE must be
           answered 200/204 (then the old session id must get 404) or 405.

--server-requests (session mode, server-everything only) declares the `roots`
capability and checks that the server's own `roots/list` request reaches us,
that our answer reaches the server (its `notifications/message` reports the
count we sent, and `get-roots-list` names our root), and that progress
notifications of `trigger-long-running-operation` arrive.

Exits 0 when every check holds; otherwise prints the first mismatch and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

STEP_TIMEOUT_S = 30
ROOT_URI = "file:///tmp/stdiopool-interop-root"


class Mismatch(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


def result_text(result: Any) -> str:
    parts = []
    for c in getattr(result, "content", None) or []:
        text = getattr(c, "text", None)
        parts.append(text if text is not None else json.dumps(c.model_dump(mode="json")))
    return "\n".join(parts)


# Protocol versions of the modern era (no initialize, no sessions, no ping).
MODERN_VERSIONS = ("2026-07-28",)


async def exercise(session: Any, tool: str, args: dict[str, Any], want: str, label: str, modern: bool = False) -> None:
    """ping (legacy era only: 2026-07-28 removed it), tools/list, tools/call (Client or ClientSession)."""
    if not modern:
        with anyio.fail_after(STEP_TIMEOUT_S):
            await session.send_ping()
    with anyio.fail_after(STEP_TIMEOUT_S):
        names = [t.name for t in (await session.list_tools()).tools]
    expect(tool in names, f"{label}: tools/list has no {tool!r} (got {names})")
    with anyio.fail_after(STEP_TIMEOUT_S):
        result = await session.call_tool(tool, args)
    text = result_text(result)
    expect(not getattr(result, "is_error", False), f"{label}: {tool} returned isError: {text!r}")
    expect(want in text, f"{label}: {tool} result {text!r} lacks {want!r}")


async def via_client(url: str, mode: str, tool: str, args: dict[str, Any], want: str) -> str:
    # Exactly what a user writes: the SDK's own HTTP client and defaults.
    async with Client(url, mode=mode) as c:  # type: ignore[arg-type]
        expect(bool(c.protocol_version), "client: no protocol version negotiated")
        version = c.protocol_version
        modern = version in MODERN_VERSIONS
        await exercise(c, tool, args, want, f"Client({mode})", modern)
    if mode != "auto":
        return f"Client(url, mode={mode}) negotiated {version}"
    # Once more over a recording HTTP client, to see the probe (and any fallback) on the wire.
    rec = Recorder()
    async with httpx2.AsyncClient(event_hooks={"response": [rec.on_response]}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as c:
            await exercise(c, tool, args, want, "Client(auto, recorded)", modern)
    if modern:
        # A server that answers server/discover: the whole conversation is modern.
        expect(
            bool(rec.bodies) and '"server/discover"' in rec.bodies[0][1] and rec.bodies[0][0] == 200,
            f"modern: expected server/discover answered 200 first, got {rec.bodies[:2]}",
        )
        inits = [b for (_, b) in rec.bodies if '"method":"initialize"' in b.replace(" ", "")]
        expect(not inits, f"modern: an initialize reached the server: {inits}")
        sids = [sid for (_, _, sid) in rec.exchanges if sid]
        expect(not sids, f"modern: a session id was sent: {sids}")
        return f"Client(url) auto: server/discover -> 200, spoke {version} with no initialize and no session"
    first = rec.bodies[:2]
    expect(
        len(first) == 2 and '"server/discover"' in first[0][1] and 400 <= first[0][0] < 500,
        f"auto mode: expected server/discover answered 4xx first, got {rec.bodies[:3]}",
    )
    expect('"initialize"' in first[1][1] and first[1][0] == 200, f"auto mode: no initialize fallback: {first}")
    return f"Client(url) auto: server/discover -> {first[0][0]}, fell back to initialize, negotiated {version}"


class Recorder:
    """httpx event hooks: every (method, status, session id sent) in order, and POST bodies."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, int, str | None]] = []
        self.bodies: list[tuple[int, str]] = []  # (status, request body) of each POST

    async def on_response(self, response: httpx2.Response) -> None:
        sid = response.request.headers.get("mcp-session-id")
        self.exchanges.append((response.request.method, response.status_code, sid))
        if response.request.method == "POST":
            self.bodies.append((response.status_code, response.request.content.decode("utf-8", "replace")))


async def via_session(
    url: str, tool: str, args: dict[str, Any], want: str, server_requests: bool, after_delete: int
) -> str:
    rec = Recorder()
    roots_asked = anyio.Event()
    logs: list[str] = []
    progress: list[float] = []

    async def list_roots(ctx: Any) -> types.ListRootsResult:
        roots_asked.set()
        return types.ListRootsResult(roots=[types.Root(uri=ROOT_URI, name="interop")])

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    timeout = httpx2.Timeout(STEP_TIMEOUT_S, read=300)
    async with httpx2.AsyncClient(timeout=timeout, event_hooks={"response": [rec.on_response]}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(
                read,
                write,
                list_roots_callback=list_roots if server_requests else None,
                logging_callback=on_log,
            ) as s:
                with anyio.fail_after(STEP_TIMEOUT_S):
                    init = await s.initialize()
                await exercise(s, tool, args, want, "ClientSession")
                if server_requests:
                    # server-everything asks for roots ~350 ms after `initialized`.
                    with anyio.fail_after(10):
                        await roots_asked.wait()
                    with anyio.fail_after(10):
                        while not any("Roots updated: 1 root" in m for m in logs):
                            await anyio.sleep(0.05)
                    with anyio.fail_after(STEP_TIMEOUT_S):
                        r = await s.call_tool("get-roots-list", {})
                    expect(ROOT_URI in result_text(r), f"get-roots-list does not name our root: {result_text(r)!r}")
                    with anyio.fail_after(STEP_TIMEOUT_S):
                        await s.call_tool(
                            "trigger-long-running-operation",
                            {"duration": 0.6, "steps": 3},
                            progress_callback=on_progress,
                        )
                    expect(progress == [1, 2, 3], f"progress notifications: got {progress}, want [1, 2, 3]")
        # Leaving streamable_http_client sent the DELETE (terminate_on_close).
        sid = next((s for (_, _, s) in rec.exchanges if s), None)
        expect(sid is not None, f"no Mcp-Session-Id was ever sent (exchanges: {rec.exchanges})")
        deletes = [st for (m, st, _) in rec.exchanges if m == "DELETE"]
        expect(len(deletes) == 1, f"expected one DELETE, got {deletes} (exchanges: {rec.exchanges})")
        expect(deletes[0] in (200, 204, 405), f"DELETE answered {deletes[0]}")
        ended = "DELETE -> 405 (server keeps sessions)"
        if deletes[0] != 405:
            # A terminated session MUST answer 404 from then on.
            r = await http.post(
                url,
                headers={
                    "accept": "application/json, text/event-stream",
                    "content-type": "application/json",
                    "mcp-session-id": sid,
                    "mcp-protocol-version": init.protocol_version,
                },
                content=json.dumps({"jsonrpc": "2.0", "id": 99, "method": "ping"}),
            )
            expect(
                r.status_code == after_delete,
                f"request on the deleted session got {r.status_code}, want {after_delete}",
            )
            ended = f"DELETE -> {deletes[0]}, then {r.status_code}"
    extra = ", roots/list + log + progress ok" if server_requests else ""
    return f"ClientSession negotiated {init.protocol_version}, {ended}{extra}"


async def run(ns: argparse.Namespace) -> list[str]:
    args = json.loads(ns.args)
    done = []
    if ns.path in ("client", "both"):
        done.append(await via_client(ns.url, ns.mode, ns.tool, args, ns.expect))
    if ns.path in ("session", "both"):
        done.append(await via_session(ns.url, ns.tool, args, ns.expect, ns.server_requests, ns.after_delete_status))
    return done


def leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--tool", required=True)
    ap.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    ap.add_argument("--expect", required=True, help="text the tool result must contain")
    ap.add_argument("--path", choices=["client", "session", "both"], default="both")
    ap.add_argument("--mode", choices=["auto", "legacy"], default="auto", help="mcp.Client mode (default: auto)")
    ap.add_argument("--server-requests", action="store_true", help="check roots/list, logging, progress")
    ap.add_argument(
        "--after-delete-status",
        type=int,
        default=404,
        help="status a request on a deleted session must get (the spec says 404; "
        "server-everything's own HTTP mode answers 400)",
    )
    ns = ap.parse_args()
    # ping and logging are deprecated only in the 2026-07-28 protocol; we speak 2025-11-25.
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    try:
        done = anyio.run(run, ns)
    except Exception as e:  # the SDK wraps failures in ExceptionGroups from its task groups
        for leaf in leaves(e):
            if isinstance(leaf, Mismatch):
                print(f"py_client: FAIL: {leaf}", file=sys.stderr)
            elif isinstance(leaf, TimeoutError):
                print(f"py_client: FAIL: a step timed out ({STEP_TIMEOUT_S}s or less)", file=sys.stderr)
            else:
                print(f"py_client: FAIL: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    for line in done:
        print(f"py_client: ok: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
