#!/usr/bin/env python3
"""MRTR through stdiopool: a 2025 server's elicitation during a modern tools/call reaches the
official Python SDK 2.x client as an input_required result, with that SDK's default client.

    py_mrtr.py URL

Against `stdiopool --mode pooled` in front of tests/interop/conformance_server.py, whose
`test_elicitation` tool asks the client for a form (`elicitation/create`) while it runs:

1. `Client(url, elicitation_callback=...)` (mode "auto", the default) must speak 2026-07-28,
   its callback must be asked (the tool's message must reach it), and the tool's answer must
   carry what the callback answered: the proxy parked the call, answered input_required, and
   handed the retry's inputResponses to the waiting server;
2. `Client(url)` without a callback (so no `elicitation` capability) calls it too: the call must
   end with the revision's -32021 (missing required client capability), well before any timeout.

Exits 0 when both hold; otherwise prints the first mismatch and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError

STEP_TIMEOUT_S = 30
REFUSAL_LIMIT_S = 10
MODERN = "2026-07-28"
MESSAGE = "Who is calling through stdiopool?"
ANSWER = {"username": "octocat", "email": "octocat@example.com"}


class Mismatch(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


def result_text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in getattr(result, "content", None) or [])


async def with_elicitation(url: str) -> str:
    asked: list[str] = []

    async def elicit(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(getattr(params, "message", ""))
        return types.ElicitResult(action="accept", content=ANSWER)

    async with Client(url, elicitation_callback=elicit) as c:
        expect(c.protocol_version == MODERN, f"negotiated {c.protocol_version!r}, want {MODERN}")
        with anyio.fail_after(STEP_TIMEOUT_S):
            r = await c.call_tool("test_elicitation", {"message": MESSAGE})
    expect(asked == [MESSAGE], f"the elicitation callback saw {asked!r}, want [{MESSAGE!r}]")
    text = result_text(r)
    expect(
        not r.is_error and "action=accept" in text and ANSWER["username"] in text,
        f"test_elicitation answered {text!r} (isError={r.is_error})",
    )
    return f"{MODERN}: elicitation answered through input_required, the tool saw it ({text!r})"


async def without_elicitation(url: str) -> str:
    async with Client(url) as c:
        expect(c.protocol_version == MODERN, f"negotiated {c.protocol_version!r}, want {MODERN}")
        started = time.monotonic()
        try:
            with anyio.fail_after(REFUSAL_LIMIT_S):
                r = await c.call_tool("test_elicitation", {"message": MESSAGE})
        except MCPError as e:
            code = getattr(getattr(e, "error", None), "code", None)
            expect(code == -32021, f"without the capability: JSON-RPC error {code} ({e}), want -32021")
            return f"without the capability: -32021 in {time.monotonic() - started:.2f}s"
    raise Mismatch(f"without the capability test_elicitation answered {result_text(r)!r}")


async def run(url: str) -> list[str]:
    return [await with_elicitation(url), await without_elicitation(url)]


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
                print(f"py_mrtr: FAIL: {leaf}", file=sys.stderr)
            elif isinstance(leaf, TimeoutError):
                print("py_mrtr: FAIL: a step timed out (a parked call never answered?)", file=sys.stderr)
            else:
                print(f"py_mrtr: FAIL: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    print(f"py_mrtr: ok: {'; '.join(done)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
