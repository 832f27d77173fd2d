#!/usr/bin/env python3
"""Large structured-JSON tool results end to end through the proxy.

    python3 benches/large_result.py [--sizes-mib 1,16] [--repeat 5]

Starts the release `stdiopool` (pooled, pool size 1, the fixture via --demo)
on a free 127.0.0.1 port, opens a session, then calls the fixture's
`structured` tool (a result of N bytes whose bulk is `structuredContent`: an
array of small objects) `--repeat` times per size, reading each reply in full.
Reports per size: the median time from sending the request to the last byte
of the reply, the reply size, MiB/s (reply bytes / median time), and the
proxy's RSS before the size's calls and its peak RSS (VmHWM) after them. For
comparison it also times the same call straight over the fixture's stdio.
The proxy runs with `--max-frame 64MiB` (the default 16 MiB limit is below a
16 MiB result plus its envelope). The proxy is stopped at the end (also on error). Standard library only.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def post(conn, body, session=None):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    if session:
        headers["Mcp-Session-Id"] = session
    conn.request("POST", "/mcp", json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp, data


def last_message(resp, data):
    """The response message of a JSON or SSE reply."""
    if resp.getheader("Content-Type", "").startswith("text/event-stream"):
        msgs = [line[5:].strip() for line in data.split(b"\n") if line.startswith(b"data:")]
        msgs = [m for m in msgs if m]
        return json.loads(msgs[-1])
    return json.loads(data)


def raw_stdio(size, repeat):
    """The same call straight over the fixture's stdin/stdout."""
    p = subprocess.Popen([os.path.join(BIN, "stdiopool-fixture")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        def rt(msg):
            p.stdin.write(json.dumps(msg).encode() + b"\n")
            p.stdin.flush()
            return p.stdout.readline()
        rt({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b", "version": "0"}}})
        p.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        times = []
        for i in range(repeat):
            t = time.perf_counter()
            line = rt({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                       "params": {"name": "structured", "arguments": {"bytes": size}}})
            times.append(time.perf_counter() - t)
            assert len(line) >= size, len(line)
        return statistics.median(times)
    finally:
        p.stdin.close()
        p.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mib", default="1,16")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    port = free_port()
    args = [os.path.join(BIN, "stdiopool"), "--listen", f"127.0.0.1:{port}", "--log-filter", "warn",
            "--pool-size", "1", "--min-idle", "1", "--request-timeout", "600s",
            "--max-frame", "64MiB", "--drain-delay", "0", "--demo"]
    proxy = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proxy.poll() is not None:
                sys.exit("proxy not ready")
            time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        resp, data = post(conn, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                 "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                            "clientInfo": {"name": "large_result", "version": "0"}}})
        session = resp.getheader("Mcp-Session-Id")
        post(conn, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
        rows = []
        n = 1
        for mib in [float(x) for x in a.sizes_mib.split(",")]:
            size = int(mib * 1024 * 1024)
            rss_before = status_kib(proxy.pid, "VmRSS")
            hwm_before = status_kib(proxy.pid, "VmHWM")
            times, body_len = [], 0
            for _ in range(a.repeat):
                n += 1
                t = time.perf_counter()
                resp, data = post(conn, {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                                         "params": {"name": "structured", "arguments": {"bytes": size}}}, session)
                times.append(time.perf_counter() - t)
                msg = last_message(resp, data)
                assert msg.get("id") == n and "result" in msg, str(msg)[:300]
                body_len = len(data)
            med = statistics.median(times)
            raw = raw_stdio(size, a.repeat)
            row = {"mib": mib, "reply_bytes": body_len, "median_s": med, "mib_per_s": body_len / med / 2**20,
                   "raw_stdio_median_s": raw, "raw_mib_per_s": size / raw / 2**20,
                   "rss_before_kib": rss_before, "peak_rss_before_kib": hwm_before,
                   "peak_rss_after_kib": status_kib(proxy.pid, "VmHWM"),
                   "content_type": resp.getheader("Content-Type")}
            rows.append(row)
            print(f"{mib:g} MiB structured: proxy median {med * 1000:.1f} ms = {row['mib_per_s']:.0f} MiB/s "
                  f"({row['content_type']}); raw stdio {raw * 1000:.1f} ms = {row['raw_mib_per_s']:.0f} MiB/s; "
                  f"proxy RSS {rss_before / 1024:.1f} MiB before, peak {row['peak_rss_before_kib'] / 1024:.1f} → "
                  f"{row['peak_rss_after_kib'] / 1024:.1f} MiB "
                  f"(+{(row['peak_rss_after_kib'] - rss_before) / 1024:.1f} MiB over the RSS before)")
        print(json.dumps(rows))
    finally:
        proxy.terminate()
        try:
            proxy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()


if __name__ == "__main__":
    main()
