#!/usr/bin/env python3
"""Regenerates the committed fuzz seed corpus from real MCP stdio traffic.

Usage: capture_mcp_traffic.py SERVER_EVERYTHING_BIN [OUT_DIR]

SERVER_EVERYTHING_BIN is `mcp-server-everything` from the npm package
@modelcontextprotocol/server-everything (`npm install` it anywhere). The script
runs it over stdio, sends initialize, notifications/initialized, tools/list,
a ~60 KB echo tools/call, ping and get-sum, records both directions byte for
byte, and cuts the recording into seeds under OUT_DIR (default: this folder):

  decode/          whole streams: a session, CRLF, blank and garbage lines,
                   an overlong line, a truncated tail
  decode_chunked/  the same streams (less the large result) behind decode_chunked's 2-byte header
                   (limit selector, cut count) and its cut points
  jsonrpc/         single messages, valid and invalid
"""
import json
import os
import select
import struct
import subprocess
import sys
import time


def capture(binary):
    proc = subprocess.Popen([binary, "stdio"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = bytearray()
    sent = []

    def send(msg):
        line = json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        sent.append(line)
        proc.stdin.write(line)
        proc.stdin.flush()

    def drain(seconds):
        end = time.time() + seconds
        while time.time() < end:
            ready, _, _ = select.select([proc.stdout], [], [], 0.05)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    return
                out.extend(chunk)

    try:
        send({"jsonrpc": "2.0", "id": 0, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "stdiopool-seed", "version": "0.1.0"}}})
        drain(2.0)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        drain(1.0)
        send({"jsonrpc": "2.0", "id": "call-2", "method": "tools/call",
              "params": {"name": "echo", "arguments": {"message": "x" * 60000}}})
        drain(1.0)
        send({"jsonrpc": "2.0", "id": 3, "method": "ping"})
        send({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
              "params": {"name": "get-sum", "arguments": {"a": 2, "b": 3}}})
        drain(1.0)
        proc.stdin.close()
        drain(0.5)
    finally:
        proc.kill()
        proc.wait()
    return sent, [line + b"\n" for line in bytes(out).split(b"\n") if line]


def main():
    binary = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__))
    sent, received = capture(binary)
    large = [l for l in received if len(l) > 10000]
    small = [l for l in received if len(l) <= 10000]
    assert large and len(small) >= 4, (len(large), len(small))
    init_result = next(l for l in small if b'"protocolVersion"' in l)
    tools_list = next(l for l in small if b'"tools":[' in l)
    notes = [l for l in received + sent if b'"method":"notifications/' in l]
    progress = (b'{"jsonrpc":"2.0","method":"notifications/progress","params":'
                b'{"progressToken":"tok-1","progress":50,"total":100,"message":"half"}}\n')

    streams = {
        "initialize.jsonl": sent[0] + init_result,
        "tools_list.jsonl": sent[2] + tools_list,
        "tools_call_large_result.jsonl": large[0],
        "notifications.jsonl": b"".join(notes) + progress,
        "session.jsonl": b"".join(sent[:2]) + b"".join(small),
        "crlf_and_blank_lines.jsonl": b"\r\n\n" + b"".join(l[:-1] + b"\r\n\r\n" for l in small[:3]) + b"  \t\r\n",
        "log_lines_and_bad_utf8.jsonl": b"npm WARN exec The following package was not found\n"
            + small[-1] + b"Server listening on stdio\n\xc3\x28\xa0\xa1\n" + small[0],
        "overlong_line.jsonl": b"#" * 5000 + b"\n" + small[-1],
        "truncated_tail.jsonl": small[0] + small[-1][: len(small[-1]) // 2],
    }
    singles = {f"msg_{i:02}.json": l.rstrip(b"\n") for i, l in enumerate(sent + small) if len(l) <= 10000}
    singles.update({
        "batch.json": b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
        "null_id.json": b'{"jsonrpc":"2.0","id":null,"method":"ping"}',
        "big_negative_id.json": b'{"jsonrpc":"2.0","id":-123456789012345678901234567890,"result":{}}',
        "float_id.json": b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
        "error_no_id.json": b'{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":null}}',
    })

    def write(folder, files):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(root, folder, name), "wb") as f:
                f.write(data)

    write("decode", streams)
    # decode_chunked: limit selector, cut count, then cuts spread over the payload.
    chunked = {}
    # The ~60 KB result is seeded once (in decode/) to keep the corpus small.
    for i, (name, data) in enumerate(streams.items()):
        if name == "tools_call_large_result.jsonl":
            continue
        cuts = [(len(data) * k) // 7 + k for k in range(1, 7)]
        header = bytes([i % 8, len(cuts)]) + b"".join(struct.pack("<H", c % 65536) for c in cuts)
        chunked[name] = header + data
    write("decode_chunked", chunked)
    write("jsonrpc", singles)


if __name__ == "__main__":
    main()
