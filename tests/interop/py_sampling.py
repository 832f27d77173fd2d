#!/usr/bin/env python3
"""Pooled mode relays a server's sampling request to the client of the request it serves, with
the official Python SDK (mcp 2.x) as that client.

    py_sampling.py URL

Against `stdiopool --mode pooled` in front of tests/interop/conformance_server.py, whose
`test_sampling` tool asks the client for a completion (`sampling/createMessage`) while it runs:

1. a ClientSession with a sampling callback calls `test_sampling`: the callback must be asked
   (the prompt must reach it) and the tool's answer must carry the text the callback sampled;
2. a ClientSession without one (so no `sampling` capability) calls it too: the proxy refuses the
   server's request at once, so the call must end — with the server's own fallback for a failed
   sampling, an error — well before any timeout, never hang.

Exits 0 when both hold; otherwise prints the first mismatch and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

STEP_TIMEOUT_S = 30
# A client lacking the capability must be answered much sooner than the step timeout.
REFUSAL_LIMIT_S = 10
SAMPLED = "sampled by the interop client"
PROMPT = "What is stdiopool?"


class Mismatch(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


def result_text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in getattr(result, "content", None) or [])


async def with_sampling(http: httpx2.AsyncClient, url: str) -> str:
    prompts: list[str] = []

    async def sample(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompts.extend(getattr(m.content, "text", "") for m in params.messages)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=SAMPLED), model="interop"
        )

    async with streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write, sampling_callback=sample) as s:
            with anyio.fail_after(STEP_TIMEOUT_S):
                await s.initialize()
                r = await s.call_tool("test_sampling", {"prompt": PROMPT})
    expect(prompts == [PROMPT], f"the sampling callback saw {prompts!r}, want [{PROMPT!r}]")
    text = result_text(r)
    expect(not r.is_error and SAMPLED in text, f"test_sampling answered {text!r} (isError={r.is_error})")
    return f"sampled text came back in the tool's answer ({text!r})"


async def without_sampling(http: httpx2.AsyncClient, url: str) -> str:
    async with streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write) as s:
            with anyio.fail_after(STEP_TIMEOUT_S):
                await s.initialize()
            started = time.monotonic()
            try:
                with anyio.fail_after(REFUSAL_LIMIT_S):
                    r = await s.call_tool("test_sampling", {"prompt": PROMPT})
                outcome = f"tool error {result_text(r)!r}" if r.is_error else f"answer {result_text(r)!r}"
                expect(r.is_error, f"without the capability test_sampling still answered {result_text(r)!r}")
            except MCPError as e:
                outcome = f"JSON-RPC error {e}"
            took = time.monotonic() - started
    return f"without the capability: {outcome} in {took:.2f}s"


async def run(url: str) -> list[str]:
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(STEP_TIMEOUT_S)) as http:
        return [await with_sampling(http, url), await without_sampling(http, url)]


def leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ns = ap.parse_args()
    try:
        done = anyio.run(run, ns.url)
    except Exception as e:  # the SDK wraps failures in ExceptionGroups from its task groups
        for leaf in leaves(e):
            if isinstance(leaf, Mismatch):
                print(f"py_sampling: FAIL: {leaf}", file=sys.stderr)
            elif isinstance(leaf, TimeoutError):
                print("py_sampling: FAIL: a step timed out (a server request left waiting?)", file=sys.stderr)
            else:
                print(f"py_sampling: FAIL: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    print(f"py_sampling: ok: {'; '.join(done)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
