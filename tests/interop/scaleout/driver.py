#!/usr/bin/env python3
"""Load driver of the scale-out test: official MCP Python SDK sessions through a balancer.

    driver.py pooled URL --sessions N --calls M [--stop-pid PID --stop-after K]
                         [--max-first-try-loss FRACTION]
    driver.py session URL --sessions N [--concurrency C]

pooled   N ClientSessions at once (streamable_http_client, protocol 2025-11-25), each making M
         `echo` tools/calls in turn; every answer must echo its own message. With --stop-pid,
         SIGTERM goes to PID once K calls are done (an instance stopped mid-load). A call that
         fails is retried, like a client with a retry policy would: up to 5 more times on the
         same session, then on a new one. Passes when every call succeeded in the end and the
         calls that failed on their first try are at most FRACTION of all (default 0).
session  N sessions, C at a time: initialize, tools/list, `echo`, then leave, which sends the
         DELETE. Each session passes when every exchange got 2xx and its DELETE got 200 (a
         DELETE that reached another instance would get 404 and leave the process held).

Prints one summary line ("... ok: ..." or "... FAIL: ...") and exits 0 on pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

STEP_TIMEOUT_S = 30
RETRIES_ON_SESSION = 5


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in (getattr(result, "content", None) or []))


class Recorder:
    """httpx event hook: (method, status) of every exchange, in order."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, int]] = []

    async def on_response(self, response: httpx2.Response) -> None:
        self.exchanges.append((response.request.method, response.status_code))


def describe(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"[:200]


class Pooled:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns
        self.total = ns.sessions * ns.calls
        self.done = 0
        self.first_try_failed = 0
        self.failed = 0  # calls never made: their session kept failing
        self.retried_ok = 0
        self.errors: list[str] = []
        self.stopped_at: int | None = None

    def count_done(self) -> None:
        self.done += 1
        if self.ns.stop_pid and self.stopped_at is None and self.done >= self.ns.stop_after:
            self.stopped_at = self.done
            os.kill(self.ns.stop_pid, signal.SIGTERM)

    async def one_call(self, s: ClientSession, tag: str) -> None:
        with anyio.fail_after(STEP_TIMEOUT_S):
            r = await s.call_tool("echo", {"message": tag})
        got = text_of(r)
        if getattr(r, "is_error", False) or got != tag:
            raise RuntimeError(f"echo {tag!r} answered {got!r} (isError={getattr(r, 'is_error', None)})")

    async def worker(self, n: int) -> None:
        call = 0
        while call < self.ns.calls:
            try:
                async with httpx2.AsyncClient(timeout=httpx2.Timeout(STEP_TIMEOUT_S)) as http:
                    async with streamable_http_client(self.ns.url, http_client=http) as (read, write):
                        async with ClientSession(read, write) as s:
                            with anyio.fail_after(STEP_TIMEOUT_S):
                                await s.initialize()
                            while call < self.ns.calls:
                                tag = f"s{n}-c{call}"
                                tries = 0
                                while True:
                                    try:
                                        await self.one_call(s, tag)
                                        break
                                    except Exception as e:  # noqa: BLE001 - any failure counts
                                        tries += 1
                                        if tries == 1:
                                            self.first_try_failed += 1
                                        self.errors.append(describe(e))
                                        if tries > RETRIES_ON_SESSION:
                                            raise
                                        await anyio.sleep(0.2 * tries)
                                if tries:
                                    self.retried_ok += 1
                                call += 1
                                self.count_done()
            except Exception as e:  # noqa: BLE001 - the session broke: a new one, unless out of budget
                self.errors.append(f"session {n}: {describe(e)}")
                if len(self.errors) > 50:
                    self.failed += self.ns.calls - call
                    return
                await anyio.sleep(0.5)

    async def run(self) -> bool:
        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            for n in range(self.ns.sessions):
                tg.start_soon(self.worker, n)
        took = time.monotonic() - start
        # `done` counts calls answered correctly (at the first try or after retries).
        ok = self.done
        loss = self.first_try_failed / max(self.total, 1)
        stop = f", SIGTERM to pid {self.ns.stop_pid} after {self.stopped_at} calls" if self.ns.stop_pid else ""
        summary = (
            f"{ok}/{self.total} calls ok in {took:.1f}s from {self.ns.sessions} Python SDK sessions{stop}; "
            f"failed on first try: {self.first_try_failed} ({loss:.3%}), ok after retry: {self.retried_ok}"
        )
        passed = ok == self.total and self.failed == 0 and loss <= self.ns.max_first_try_loss
        if self.ns.stop_pid and self.stopped_at is None:
            passed = False
            summary += "; the stop was never sent"
        if self.errors:
            print("errors (first 10):", *self.errors[:10], sep="\n  ")
        print(f"driver pooled {'ok' if passed else 'FAIL'}: {summary}")
        return passed


async def one_session(url: str, n: int, results: list[str]) -> None:
    rec = Recorder()
    tag = f"session-{n}"
    try:
        async with httpx2.AsyncClient(
            timeout=httpx2.Timeout(STEP_TIMEOUT_S, read=300), event_hooks={"response": [rec.on_response]}
        ) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as s:
                    with anyio.fail_after(STEP_TIMEOUT_S):
                        await s.initialize()
                    with anyio.fail_after(STEP_TIMEOUT_S):
                        names = [t.name for t in (await s.list_tools()).tools]
                    if "echo" not in names:
                        raise RuntimeError(f"no echo tool in {names}")
                    with anyio.fail_after(STEP_TIMEOUT_S):
                        got = text_of(await s.call_tool("echo", {"message": tag}))
                    if got != tag:
                        raise RuntimeError(f"echo answered {got!r}")
    except Exception as e:  # noqa: BLE001
        results.append(f"session {n}: {describe(e)}; exchanges {rec.exchanges}")
        return
    deletes = [st for (m, st) in rec.exchanges if m == "DELETE"]
    bad = [(m, st) for (m, st) in rec.exchanges if m != "DELETE" and not (200 <= st < 300)]
    if deletes != [200]:
        results.append(f"session {n}: DELETE answered {deletes} (exchanges {rec.exchanges})")
    elif bad:
        results.append(f"session {n}: non-2xx exchanges {bad}")
    else:
        results.append("ok")


async def sessions(ns: argparse.Namespace) -> bool:
    results: list[str] = []
    limit = anyio.Semaphore(ns.concurrency)

    async def bounded(n: int) -> None:
        async with limit:
            await one_session(ns.url, n, results)

    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        for n in range(ns.sessions):
            tg.start_soon(bounded, n)
    ok = results.count("ok")
    failures = [r for r in results if r != "ok"]
    for f in failures[:10]:
        print(f"  {f}")
    passed = ok == ns.sessions
    print(
        f"driver session {'ok' if passed else 'FAIL'}: {ok}/{ns.sessions} Python SDK sessions ok "
        f"({ns.concurrency} at a time, each DELETE answered 200) in {time.monotonic() - start:.1f}s"
    )
    return passed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pooled")
    p.add_argument("url")
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--stop-pid", type=int, default=0)
    p.add_argument("--stop-after", type=int, default=0)
    p.add_argument("--max-first-try-loss", type=float, default=0.0)
    s = sub.add_parser("session")
    s.add_argument("url")
    s.add_argument("--sessions", type=int, default=60)
    s.add_argument("--concurrency", type=int, default=10)
    ns = ap.parse_args()
    if ns.what == "pooled":
        passed = anyio.run(Pooled(ns).run)
    else:
        passed = anyio.run(sessions, ns)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
