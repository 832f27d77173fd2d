#!/usr/bin/env bash
# Many servers from one file (issue 14): 3 servers served at once against one server, on the
# same machine with the same total processes (6) and clients (6); docs/PERFORMANCE.md,
# "Many servers". Run from the repository root after
#   cargo build --release --bin stdiopool --bin stdiopool-load --bin stdiopool-fixture
# Knobs: REQ (requests per run, default 20000), ROUNDS (default 3), OUT (default target/bench-servers).
set -euo pipefail
rel=target/release
out="${OUT:-target/bench-servers}"; mkdir -p "$out"
REQ="${REQ:-20000}"; ROUNDS="${ROUNDS:-3}"
fx="$PWD/$rel/stdiopool-fixture"
printf '{"mcpServers": {"a": {"command": "%s"}, "b": {"command": "%s"}, "c": {"command": "%s"}}}\n' "$fx" "$fx" "$fx" >"$out/three.json"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 200); do curl -fsS -o /dev/null "http://127.0.0.1:$1/readyz" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
load() { # load <url> <concurrency> <requests> <json>
    "$rel/stdiopool-load" http --url "$1" --concurrency "$2" --requests "$3" --warmup 300 --json-out "$4" >/dev/null
}
for r in $(seq "$ROUNDS"); do
    # A: one server (the single-command form, /mcp), 6 processes, 6 clients.
    p=$(port); "$rel/stdiopool" --listen 127.0.0.1:$p --pool-size 6 --min-idle 6 --log-filter warn --drain-delay 0 -- "$fx" >"$out/proxy-one.log" 2>&1 & pid=$!
    wait_ready $p; load "http://127.0.0.1:$p/mcp" 6 "$REQ" "$out/one-$r.json"; kill -TERM $pid; wait $pid || true
    # B and C: three servers from one file, 2 processes each.
    p=$(port); "$rel/stdiopool" --listen 127.0.0.1:$p --pool-size 2 --min-idle 2 --log-filter warn --drain-delay 0 --config "$out/three.json" >"$out/proxy-three.log" 2>&1 & pid=$!
    wait_ready $p; for s in a b c; do until curl -fsS -o /dev/null "http://127.0.0.1:$p/servers/$s/readyz" 2>/dev/null; do sleep 0.1; done; done
    # B: the same 6 clients on one of the three routes (its pool has 2 processes).
    load "http://127.0.0.1:$p/servers/a/mcp" 6 "$REQ" "$out/route-$r.json"
    # C: 2 clients on each of the three routes at once (6 clients, 6 processes in all).
    loads=()
    for s in a b c; do load "http://127.0.0.1:$p/servers/$s/mcp" 2 $((REQ / 3)) "$out/three-$r-$s.json" & loads+=($!); done
    for l in "${loads[@]}"; do wait "$l"; done
    kill -TERM $pid; wait $pid || true
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def rd(n): return json.load(open(f"{out}/{n}.json"))
one = [rd(f"one-{r}") for r in range(1, rounds + 1)]
route = [rd(f"route-{r}") for r in range(1, rounds + 1)]
three = [[rd(f"three-{r}-{s}") for s in "abc"] for r in range(1, rounds + 1)]
for name, runs in (("one", one), ("route", route)):
    print(name, "rps", [round(x["rps"]) for x in runs], "p50_us", [x["p50_us"] for x in runs], "errors", [x.get("errors") for x in runs])
agg = [sum(x["rps"] for x in t) for t in three]
print("three aggregate rps", [round(a) for a in agg], "p50_us", [[x["p50_us"] for x in t] for t in three], "errors", [[x.get("errors") for x in t] for t in three])
m1, m3 = statistics.median(x["rps"] for x in one), statistics.median(agg)
print(f"median one {m1:.0f} req/s, three at once {m3:.0f} req/s: per-request cost {100*(m1/m3-1):+.1f} %")
PY
