#!/usr/bin/env bash
# Scale-out interop: three stdiopool instances behind real HAProxy or nginx (Debian packages,
# installed by tests/interop/install.sh), driven by the official MCP Python SDK (driver.py).
#
#   bash tests/interop/scaleout/scaleout.sh PATH-TO-STDIOPOOL CASE
#
# CASE:
#   pooled-haproxy   pooled mode, shared --session-key-file, HAProxy round robin
#                    (haproxy-pooled.cfg): 500/500 calls from 10 SDK sessions
#   pooled-nginx     the same through nginx round robin (nginx-pooled.conf)
#   pooled-stop      pooled-haproxy while one instance gets SIGTERM mid-load (it turns /readyz
#                    503 for --drain-delay, HAProxy takes it out, then it drains and exits 0):
#                    at most 0.1 % of 3000 calls fail on their first try, none after a retry
#   pooled-stop-nginx  the same through nginx round robin (no health checks: a refused
#                    connection goes to the next instance)
#   session-nginx    session mode, nginx routing on the Mcp-Session-Id prefix (nginx-session.conf)
#   session-haproxy  session mode, HAProxy learning stickiness from the response header
#                    (haproxy-session.cfg)
#   session-haproxy-prefix  session mode, HAProxy `use-server` on the Mcp-Session-Id prefix
#                    (haproxy-session-prefix.cfg)
#                    all three: 60/60 SDK sessions, every DELETE answered 200 by the owner, and then
#                    the instances' /metrics show no session and no process held; then a session's
#                    owner gets SIGTERM and, while it drains (/readyz 503, HAProxy: DOWN), the
#                    session's requests still reach it
#
# The balancer config is the file in this directory, as docs/DEPLOY.md shows it, with its
# example addresses (10.0.0.1x:8080, port 80) rewritten to free 127.0.0.1 ports in a temp dir.
# HAProxy and nginx run in the foreground as children of this script (no system service);
# every process started here is stopped on exit, and the temp dir removed (its logs copied to
# $SCALEOUT_LOGS first when set). Exits 0 on pass.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
for v in $(compgen -e | grep '^STDIOPOOL_' | grep -v '^STDIOPOOL_INTEROP_' || true); do unset "$v"; done

bin="${1:?usage: scaleout.sh PATH-TO-STDIOPOOL CASE}"
case_name="${2:?usage: scaleout.sh PATH-TO-STDIOPOOL CASE}"
dest="${STDIOPOOL_INTEROP_DIR:-$root/target/interop}"
py="$dest/venv/bin/python"
[[ -x "$py" ]] || { echo "scaleout: no Python venv at $py (run tests/interop/install.sh)"; exit 1; }
fixture="$(dirname "$bin")/stdiopool-fixture"
if [[ ! -x "$fixture" ]]; then
    (cd "$root" && cargo build --quiet --bin stdiopool-fixture) || { echo "scaleout: cannot build stdiopool-fixture"; exit 1; }
fi
export PATH="$PATH:/usr/sbin:/sbin"

tmp="$(mktemp -d /tmp/stdiopool-scaleout.XXXXXX)"
# nginx's workers run as nobody and must reach their temp dirs.
chmod 755 "$tmp"
declare -a pids=()
cleanup() {
    local p waited=0
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        while kill -0 "$p" 2>/dev/null && ((waited < 150)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    # The logs of the instances and the balancer, kept where run.sh keeps its own.
    if [[ -n "${SCALEOUT_LOGS:-}" ]]; then
        mkdir -p "$SCALEOUT_LOGS"
        for f in "$tmp"/*.log "$tmp"/nginx/error.log "$tmp"/nginx/access.log; do
            [[ -f "$f" ]] && cp "$f" "$SCALEOUT_LOGS/$case_name-$(basename "$f")"
        done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "scaleout: interrupted"; exit 130' INT TERM

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http <url> <seconds>: until it answers 200.
wait_http() {
    local deadline=$((SECONDS + $2))
    until curl -fs -o /dev/null --max-time 2 "$1"; do
        ((SECONDS > deadline)) && return 1
        sleep 0.2
    done
}

mode="${case_name%%-*}"
declare -a ports=() inst_pids=()
key="$tmp/session.key"
"$py" -c 'import secrets; print(secrets.token_urlsafe(48))' >"$key"
chmod 600 "$key"
# Session mode drains longer: its cells check that a draining instance still serves its own
# sessions once the balancer has stopped sending it new ones.
drain=3s
[[ "$mode" == session ]] && drain=15s
for i in 1 2 3; do
    port="$(free_port)"
    extra=()
    [[ "$mode" == pooled ]] && extra=(--session-key-file "$key")
    "$bin" --listen "127.0.0.1:$port" --mode "$mode" --instance-id "web-$i" --pool-size 4 --min-idle 1 \
        --drain-delay "$drain" --log-filter "${SCALEOUT_LOG_FILTER:-info}" "${extra[@]}" -- "$fixture" >"$tmp/web-$i.log" 2>&1 &
    pids+=($!)
    inst_pids+=($!)
    ports+=("$port")
done
for i in 0 1 2; do
    wait_http "http://127.0.0.1:${ports[$i]}/readyz" 60 || {
        echo "scaleout: instance web-$((i + 1)) not ready; its log:"
        tail -n 20 "$tmp/web-$((i + 1)).log"
        exit 1
    }
done

lb_port="$(free_port)"
render() { # render <template> <out>: the example addresses -> this run's loopback ports
    sed -e "s/10\.0\.0\.11:8080/127.0.0.1:${ports[0]}/g" \
        -e "s/10\.0\.0\.12:8080/127.0.0.1:${ports[1]}/g" \
        -e "s/10\.0\.0\.13:8080/127.0.0.1:${ports[2]}/g" \
        -e "s/^\(    bind \):80$/\1127.0.0.1:$lb_port/" \
        -e "s/^\(    listen \)80;$/\1127.0.0.1:$lb_port;/" \
        "$1" >"$2"
    grep -q "127.0.0.1:$lb_port" "$2" || { echo "scaleout: $1 has no listen/bind line to rewrite"; exit 1; }
}

case "$case_name" in
    pooled-haproxy | pooled-stop) balancer=haproxy; template="$here/haproxy-pooled.cfg" ;;
    session-haproxy) balancer=haproxy; template="$here/haproxy-session.cfg" ;;
    session-haproxy-prefix) balancer=haproxy; template="$here/haproxy-session-prefix.cfg" ;;
    pooled-nginx | pooled-stop-nginx) balancer=nginx; template="$here/nginx-pooled.conf" ;;
    session-nginx) balancer=nginx; template="$here/nginx-session.conf" ;;
    *) echo "scaleout: unknown case $case_name"; exit 2 ;;
esac
# docs/DEPLOY.md shows the tested files: it must quote this one verbatim.
"$py" - "$template" "$root/docs/DEPLOY.md" <<'PY' || exit 1
import sys
conf, docs = (open(p).read() for p in sys.argv[1:3])
if conf not in docs:
    sys.exit(f"scaleout: docs/DEPLOY.md does not quote {sys.argv[1]} verbatim: update it")
PY
command -v "$balancer" >/dev/null || { echo "scaleout: $balancer is not installed (tests/interop/install.sh installs it)"; exit 1; }

if [[ "$balancer" == haproxy ]]; then
    render "$template" "$tmp/haproxy.cfg"
    haproxy -c -q -f "$tmp/haproxy.cfg" || { echo "scaleout: haproxy -c refused the config"; exit 1; }
    # -db: foreground, no daemon; a child of this script.
    haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
    pids+=($!)
else
    mkdir -p "$tmp/nginx"
    render "$template" "$tmp/nginx/site.conf"
    cat >"$tmp/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
    log_format scaleout '\$request \$status upstream=\$upstream_addr/\$upstream_status sid=\$http_mcp_session_id t=\$request_time';
    access_log $tmp/nginx/access.log scaleout;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    include $tmp/nginx/site.conf;
}
CONF
    nginx -t -q -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" || { echo "scaleout: nginx -t refused the config"; exit 1; }
    nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx.log" 2>&1 &
    pids+=($!)
fi
wait_http "http://127.0.0.1:$lb_port/healthz" 30 || {
    echo "scaleout: $balancer not answering on 127.0.0.1:$lb_port"
    cat "$tmp"/*.log "$tmp"/nginx/error.log 2>/dev/null | tail -n 20
    exit 1
}
url="http://127.0.0.1:$lb_port/mcp"
echo "scaleout: $case_name: 3 instances on ports ${ports[*]}, $balancer on $lb_port"

rc=0
case "$case_name" in
    pooled-haproxy | pooled-nginx)
        timeout --kill-after=5 300 "$py" "$here/driver.py" pooled "$url" --sessions 10 --calls 50 | tee -a "$tmp/driver.out" || rc=1
        ;;
    pooled-stop | pooled-stop-nginx)
        timeout --kill-after=5 300 "$py" "$here/driver.py" pooled "$url" --sessions 20 --calls 150 \
            --stop-pid "${inst_pids[1]}" --stop-after 400 --max-first-try-loss 0.001 | tee -a "$tmp/driver.out" || rc=1
        # The stopped instance drained and exited 0 (it was stopped mid-load, not killed).
        waited=0
        while kill -0 "${inst_pids[1]}" 2>/dev/null && ((waited < 300)); do sleep 0.1; waited=$((waited + 1)); done
        wait "${inst_pids[1]}"
        stopped_rc=$?
        if ((stopped_rc != 0)); then
            echo "scaleout: the stopped instance exited $stopped_rc; its log:"
            tail -n 20 "$tmp/web-2.log"
            rc=1
        elif ! grep -q "shutdown complete drained=true" "$tmp/web-2.log"; then
            echo "scaleout: the stopped instance did not drain cleanly:"
            tail -n 20 "$tmp/web-2.log"
            rc=1
        fi
        ;;
    session-nginx | session-haproxy | session-haproxy-prefix)
        timeout --kill-after=5 300 "$py" "$here/driver.py" session "$url" --sessions 60 --concurrency 10 | tee -a "$tmp/driver.out" || rc=1
        # Every DELETE reached its owner: no instance holds a session or a process for one.
        ended=0
        for i in 0 1 2; do
            m="$(curl -fsS --max-time 5 "http://127.0.0.1:${ports[$i]}/metrics")"
            held="$(awk '$1 == "stdiopool_sessions" {print $2}' <<<"$m")"
            in_use="$(awk '$1 == "stdiopool_pool_in_use" {print $2}' <<<"$m")"
            deleted="$(awk '$1 == "stdiopool_sessions_ended_total{reason=\"delete\"}" {print $2}' <<<"$m")"
            echo "scaleout: web-$((i + 1)): sessions=$held pool_in_use=$in_use ended_by_delete=$deleted"
            if [[ "$held" != 0 || "$in_use" != 0 ]]; then
                echo "scaleout: web-$((i + 1)) still holds sessions or processes"
                rc=1
            fi
            ended=$((ended + ${deleted%.*}))
        done
        if ((ended != 60)); then
            echo "scaleout: $ended sessions ended by DELETE across the instances, want 60"
            rc=1
        fi
        after="; then /metrics: $ended sessions ended by DELETE, none held"
        # Draining: SIGTERM the owner of a new session; once its /readyz is 503 (and HAProxy,
        # which health-checks it, has marked it DOWN), a request of that session must still
        # reach it and be served, not go to another instance (404 naming the owner).
        hdrs=(-H 'accept: application/json, text/event-stream' -H 'content-type: application/json')
        init='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"scaleout","version":"1"}}}'
        sid="$(curl -fsS --max-time 10 -D - -o /dev/null "${hdrs[@]}" "$url" -d "$init" | tr -d '\r' | awk 'tolower($1) == "mcp-session-id:" {print $2}')"
        owner="${sid%%.*}"
        n="${owner#web-}"
        if [[ -z "$sid" || ! "$n" =~ ^[123]$ ]]; then
            echo "scaleout: drain check: no session id from initialize (got '$sid')"
            rc=1
        else
            kill -TERM "${inst_pids[$((n - 1))]}"
            deadline=$((SECONDS + 10))
            until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:${ports[$((n - 1))]}/readyz")" == 503 ]] || ((SECONDS > deadline)); do sleep 0.1; done
            if [[ "$balancer" == haproxy ]]; then
                until grep -q "stdiopool/$owner is DOWN" "$tmp/haproxy.log" || ((SECONDS > deadline)); do sleep 0.1; done
                grep -q "stdiopool/$owner is DOWN" "$tmp/haproxy.log" || { echo "scaleout: drain check: HAProxy never marked $owner DOWN"; rc=1; }
            fi
            reply="$(curl -sS --max-time 10 -w ' %{http_code}' "${hdrs[@]}" -H "mcp-session-id: $sid" \
                -H 'mcp-protocol-version: 2025-11-25' "$url" -d '{"jsonrpc":"2.0","id":1,"method":"ping"}')"
            if [[ "$reply" == *'"result":{}'*' 200' ]]; then
                after+="; a session of draining $owner still served"
            else
                echo "scaleout: drain check: a request of a session of draining $owner got: $reply"
                rc=1
            fi
        fi
        ;;
esac

# Every instance still running stops cleanly: SIGTERM (a --drain-delay of 503s, then the
# drain), exit 0, none of its children left.
declare -a kids=()
for i in 0 1 2; do
    p="${inst_pids[$i]}"
    kids[i]=""
    kill -0 "$p" 2>/dev/null || continue
    kids[i]="$(pgrep -P "$p" | tr '\n' ' ')"
    kill -TERM "$p"
done
for i in 0 1 2; do
    p="${inst_pids[$i]}"
    waited=0
    while kill -0 "$p" 2>/dev/null && ((waited < 400)); do sleep 0.1; waited=$((waited + 1)); done
    wait "$p"
    prc=$?
    left=""
    for k in ${kids[i]}; do kill -0 "$k" 2>/dev/null && left+="$k "; done
    if ((prc != 0)) || [[ -n "$left" ]]; then
        echo "scaleout: web-$((i + 1)) exited $prc after SIGTERM, children left: ${left:-none}"
        rc=1
    fi
done
# The driver's verdict ends the output: run.sh shows the last line as the cell's detail.
summary="$(grep '^driver' "$tmp/driver.out" 2>/dev/null | tail -n 1 | sed 's/^driver [a-z]* [a-zA-Z]*: //')${after:-}"
if ((rc == 0)); then
    echo "scaleout: $case_name passed (3 instances behind $balancer, stopped cleanly): $summary"
else
    echo "scaleout: $case_name FAILED: ${summary:-see above}"
fi
exit "$rc"
