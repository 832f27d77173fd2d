#!/usr/bin/env python3
"""An evicted session's client, with the official Python SDK (mcp 2.x): it gets 404, starts a
new session and goes on.

    py_evicted.py URL --pool-size N --tool NAME [--args JSON] --expect TEXT

Against `stdiopool --mode session --pool-size N` (session eviction on, the default):

1. session A (`streamable_http_client` + `ClientSession`) initializes and calls NAME;
2. N more sessions initialize over plain HTTP and never end, so every process has a session
   and the last of them must end the one idle longest, A (docs/PROXY.md, "Sessions under
   pressure");
3. A's next call must be answered 404, which the SDK raises as an MCPError ("Session not
   found", the proxy's message);
4. a new ClientSession initializes and calls NAME successfully.

Exits 0 when every step holds; otherwise prints the first mismatch and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

STEP_TIMEOUT_S = 30
PROTOCOL_VERSION = "2025-11-25"


class Mismatch(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


def result_text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in getattr(result, "content", None) or [])


async def call(s: ClientSession, tool: str, args: dict[str, Any], want: str, label: str) -> None:
    with anyio.fail_after(STEP_TIMEOUT_S):
        r = await s.call_tool(tool, args)
    expect(not r.is_error and want in result_text(r), f"{label}: {tool} answered {result_text(r)!r}")


async def raw_session(http: httpx2.AsyncClient, url: str, n: int) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": f"py-evicted-filler-{n}", "version": "0"},
        },
    }
    r = await http.post(
        url,
        headers={"accept": "application/json, text/event-stream", "content-type": "application/json"},
        content=json.dumps(body),
    )
    expect(r.status_code == 200, f"filler session {n}: initialize answered {r.status_code}: {r.text[:200]}")
    expect("mcp-session-id" in r.headers, f"filler session {n}: no Mcp-Session-Id")


async def run(ns: argparse.Namespace) -> str:
    args = json.loads(ns.args)
    timeout = httpx2.Timeout(STEP_TIMEOUT_S)
    statuses: list[int] = []  # of session A's POSTs

    async def on_response(response: httpx2.Response) -> None:
        if response.request.method == "POST" and response.request.headers.get("mcp-session-id"):
            statuses.append(response.status_code)

    async with httpx2.AsyncClient(timeout=timeout, event_hooks={"response": [on_response]}) as http:
        terminated = ""
        async with streamable_http_client(ns.url, http_client=http) as (read, write):
            async with ClientSession(read, write) as a:
                with anyio.fail_after(STEP_TIMEOUT_S):
                    await a.initialize()
                await call(a, ns.tool, args, ns.expect, "session A")
                for n in range(ns.pool_size):
                    await raw_session(http, ns.url, n)
                statuses.clear()
                try:
                    with anyio.fail_after(STEP_TIMEOUT_S):
                        r = await a.call_tool(ns.tool, args)
                except MCPError as e:
                    terminated = str(e)
                else:
                    raise Mismatch(f"session A still answered after eviction: {result_text(r)!r}")
        expect(
            statuses[-1:] == [404] and any(w in terminated.lower() for w in ("not found", "terminated")),
            f"session A failed, but not with 404 / session not found: {terminated!r} (HTTP {statuses[-1:]})",
        )
        async with streamable_http_client(ns.url, http_client=http) as (read, write):
            async with ClientSession(read, write) as b:
                with anyio.fail_after(STEP_TIMEOUT_S):
                    await b.initialize()
                await call(b, ns.tool, args, ns.expect, "the new session")
    return f"evicted session got {terminated!r}; a new session went on"


def leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--pool-size", type=int, required=True, help="the proxy's --pool-size")
    ap.add_argument("--tool", required=True)
    ap.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    ap.add_argument("--expect", required=True, help="text the tool result must contain")
    ns = ap.parse_args()
    try:
        line = anyio.run(run, ns)
    except Exception as e:  # the SDK wraps failures in ExceptionGroups from its task groups
        for leaf in leaves(e):
            if isinstance(leaf, Mismatch):
                print(f"py_evicted: FAIL: {leaf}", file=sys.stderr)
            elif isinstance(leaf, TimeoutError):
                print(f"py_evicted: FAIL: a step timed out ({STEP_TIMEOUT_S}s or less)", file=sys.stderr)
            else:
                print(f"py_evicted: FAIL: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    print(f"py_evicted: ok: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
