#!/usr/bin/env python3
"""Drives stdiopool's legacy HTTP+SSE transport (MCP 2024-11-05) with the
official Python SDK's `mcp.client.sse.sse_client` and `ClientSession` (mcp 2.x).

    py_sse_client.py SSE_URL --tool NAME [--args JSON] --expect TEXT [--server-requests]

Opens the stream at SSE_URL (`.../sse`), which must name the session in its
`endpoint` event; then initialize, ping, list tools (NAME must be listed),
call NAME(JSON) (not an error, text contains TEXT). Leaving `sse_client`
closes the stream, which must end the session: a POST to the endpoint the
stream gave must then be answered 404 (within 10 s).

--server-requests (session mode, server-everything only) declares the `roots`
capability and checks that the server's own `roots/list` request reaches us
on the stream, that our answer (a POST) reaches the server (its
`notifications/message` reports the count, `get-roots-list` names our root),
and that progress notifications of `trigger-long-running-operation` arrive.

Exits 0 when every check holds; otherwise prints the first mismatch and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.sse import sse_client
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


async def run(ns: argparse.Namespace) -> str:
    args = json.loads(ns.args)
    sessions: list[str] = []
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

    async with sse_client(ns.url, timeout=STEP_TIMEOUT_S, on_session_created=sessions.append) as (read, write):
        async with ClientSession(
            read,
            write,
            list_roots_callback=list_roots if ns.server_requests else None,
            logging_callback=on_log,
        ) as s:
            with anyio.fail_after(STEP_TIMEOUT_S):
                init = await s.initialize()
            expect(init.server_info.name != "", "initialize: no serverInfo.name")
            with anyio.fail_after(STEP_TIMEOUT_S):
                await s.send_ping()
            with anyio.fail_after(STEP_TIMEOUT_S):
                names = [t.name for t in (await s.list_tools()).tools]
            expect(ns.tool in names, f"tools/list has no {ns.tool!r} (got {names})")
            with anyio.fail_after(STEP_TIMEOUT_S):
                result = await s.call_tool(ns.tool, args)
            text = result_text(result)
            expect(not getattr(result, "is_error", False), f"{ns.tool} returned isError: {text!r}")
            expect(ns.expect in text, f"{ns.tool} result {text!r} lacks {ns.expect!r}")
            if ns.server_requests:
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
    expect(len(sessions) == 1, f"the endpoint event named no session (got {sessions})")
    # The stream is closed: the session must be gone.
    endpoint = urljoin(ns.url, f"messages?session_id={sessions[0]}")
    status = 0
    async with httpx2.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
        deadline = time.monotonic() + 10
        while True:
            r = await http.post(endpoint, json={"jsonrpc": "2.0", "id": 99, "method": "ping"})
            status = r.status_code
            if status == 404 or time.monotonic() > deadline:
                break
            await anyio.sleep(0.1)
    expect(status == 404, f"a POST after the stream closed got {status}, want 404")
    extra = ", roots/list + log + progress ok" if ns.server_requests else ""
    return f"sse_client negotiated {init.protocol_version}, stream closed then 404{extra}"


def leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="the stream's URL, e.g. http://127.0.0.1:8080/sse")
    ap.add_argument("--tool", required=True)
    ap.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    ap.add_argument("--expect", required=True, help="text the tool result must contain")
    ap.add_argument("--server-requests", action="store_true", help="check roots/list, logging, progress")
    ns = ap.parse_args()
    # ping and logging are deprecated only in the 2026-07-28 protocol.
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    try:
        done = anyio.run(run, ns)
    except Exception as e:  # the SDK wraps failures in ExceptionGroups from its task groups
        for leaf in leaves(e):
            if isinstance(leaf, Mismatch):
                print(f"py_sse_client: FAIL: {leaf}", file=sys.stderr)
            elif isinstance(leaf, TimeoutError):
                print(f"py_sse_client: FAIL: a step timed out ({STEP_TIMEOUT_S}s or less)", file=sys.stderr)
            else:
                print(f"py_sse_client: FAIL: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    print(f"py_sse_client: ok: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
