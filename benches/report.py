#!/usr/bin/env python3
"""Turns the runs of benches/run.sh into results.json, a markdown table and the
throughput plot (a hand-written SVG: no dependency beyond the standard library).

Inputs: <results>/runs/<label>.json (one per stdiopool-load run) and
<results>/resources.json. Outputs: <results>/results.json, <results>/results.md,
and with --write-docs 1 also docs/perf-throughput.svg and the block between
`<!-- bench:begin -->` and `<!-- bench:end -->` in docs/PERFORMANCE.md.
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONCURRENCY = [1, 8, 64]
POOL_SIZES = [1, 2, 4]


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/loadavg") as f:
            load = " / ".join(f.read().split()[:3])
    except OSError:
        load = "unknown"
    return {
        "load_avg_1_5_15": load,
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "rustc": sh("rustc", "--version"),
        "python": platform.python_version(),
        "commit": sh("git", "rev-parse", "--short", "HEAD"),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_runs(results):
    runs = {}
    d = os.path.join(results, "runs")
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                r = json.load(f)
            runs[r["label"]] = r
    # The server's own CPU time over each HTTP run (benches/run.sh), per
    # request served in it (warm-up included: it ran in the same window).
    d = os.path.join(results, "cpu")
    if os.path.isdir(d):
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name)) as f:
                c = json.load(f)
            r = runs.get(c["label"])
            if r is None:
                continue
            served = (r.get("ok") or 0) + (r.get("warmup") or 0)
            cpu_s = c["cpu_ticks"] / c["clk_tck"]
            r["server_cpu_s"] = cpu_s
            r["server_cpu_us_per_req"] = cpu_s * 1e6 / served if served else None
    return runs


def fmt_rps(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 1:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_us(x):
    if x is None:
        return "–"
    if x >= 10_000:
        return f"{x / 1000:,.0f} ms"
    if x >= 1000:
        return f"{x / 1000:.1f} ms"
    return f"{x:.0f} µs"


def fmt_ratio(x):
    if x is None:
        return "–"
    return f"{x:,.0f}×" if x >= 10 else f"{x:.1f}×"


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def get(runs, label, key):
    r = runs.get(label)
    return None if r is None else r.get(key)


def build(runs, res, mach, scale):
    out = {"machine": mach, "scale": scale, "runs": runs, "resources": res}
    md = []
    md.append(f"Measured {mach['date_utc']} on {mach['cpus']} × {mach['cpu']}, {mach['memory']} RAM, "
              f"Linux {mach['kernel']}, {mach['rustc']}, commit `{mach['commit']}`"
              + (f", **BENCH_SCALE={scale}**" if scale != "1" else "") + ". "
              "Command: `bash benches/run.sh`. Load generator, proxy and servers share the same cores; "
              f"load average (1 / 5 / 15 min) when the run ended: {mach['load_avg_1_5_15']} "
              "(other work on the machine counts in it).")
    md.append("")

    # 1. before / after
    md.append("### 1. Warm pool vs spawn-per-request (pool size 2)")
    md.append("")
    md.append("Spawn-per-request is the same binary with `--max-uses 1 --min-idle 0`: every request "
              "spawns a server, runs the `initialize` handshake, makes its call and stops it.")
    md.append("")
    md.append("| server | concurrency | warm pool req/s | p50 / p99 | spawn-per-request req/s | p50 / p99 | speed-up |")
    md.append("|---|---:|---:|---:|---:|---:|---:|")
    before_after = {}
    for server, pooled, spr in (("fixture (Rust)", "fixture-pooled-ps2-c{}", "fixture-spr-c{}"),
                                ("Python `mcp`", "py-pooled-c{}", "py-spr-c{}")):
        for c in CONCURRENCY:
            pl = pooled.format(c)
            sl = spr.format(c)
            if server.startswith("Python") and c == 1:
                sl = "py-spr-seq100"
            a, b = get(runs, pl, "rps"), get(runs, sl, "rps")
            x = ratio(a, b)
            before_after[f"{server}@{c}"] = x
            md.append(f"| {server} | {c} | {fmt_rps(a)} | {fmt_us(get(runs, pl, 'p50_us'))} / {fmt_us(get(runs, pl, 'p99_us'))} "
                      f"| {fmt_rps(b)} | {fmt_us(get(runs, sl, 'p50_us'))} / {fmt_us(get(runs, sl, 'p99_us'))} | {fmt_ratio(x)} |")
    out["before_after"] = before_after
    md.append("")

    # 2. seed check
    md.append("### 2. The seed's check: 100 sequential requests")
    md.append("")
    md.append("| server | spawn-per-request | warm pool | speed-up |")
    md.append("|---|---:|---:|---:|")
    seed = {}
    for server, b, a in (("fixture (Rust)", "fixture-spr-seq100", "fixture-pooled-seq100"),
                         ("Python `mcp`", "py-spr-seq100", "py-pooled-seq100")):
        tb = get(runs, b, "elapsed_s")
        nb = get(runs, b, "ok")
        note = ""
        if tb is not None and nb and nb != 100:
            tb = tb * 100 / nb
            note = f" (from {nb} requests, scaled to 100)"
        ta = get(runs, a, "elapsed_s")
        seed[server] = {"before_s": tb, "after_s": ta, "speedup": ratio(tb, ta)}
        md.append(f"| {server} | {tb:.2f} s{note} | {ta * 1000:.1f} ms | {fmt_ratio(ratio(tb, ta))} |"
                  if tb is not None and ta is not None else f"| {server} | – | – | – |")
    out["seed_check"] = seed
    md.append("")

    # 3. overhead
    md.append("### 3. Overhead against the physical limit and the HTTP floor (fixture)")
    md.append("")
    md.append("Raw = `stdiopool-load stdio`: the same requests written straight to one fixture process's "
              "stdin, matched by id on its stdout (pipelined at concurrency > 1), no HTTP. "
              "Floor = `stdiopool-load floor`: the proxy's HTTP stack (axum on hyper HTTP/1.1, the same "
              "builder settings, `TCP_NODELAY`, the default tokio runtime) answering the same requests "
              "from memory, no process. Proxy = pool size 1 at concurrency 1 (one request at a time). "
              "CPU = the server process's utime + stime over the run ÷ requests served.")
    md.append("")
    md.append("| | raw stdio | HTTP floor | through the proxy | proxy / raw | proxy / floor | added over raw | added over floor |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    raw1, fl1, px1 = "raw-stdio-c1", "floor-c1", "fixture-pooled-ps1-c1"
    r_rps, f_rps, p_rps = get(runs, raw1, "rps"), get(runs, fl1, "rps"), get(runs, px1, "rps")

    def pct(x):
        return "–" if x is None else f"{x * 100:.0f} %"

    md.append(f"| req/s, concurrency 1 | {fmt_rps(r_rps)} | {fmt_rps(f_rps)} | {fmt_rps(p_rps)} | "
              f"{pct(ratio(p_rps, r_rps))} | {pct(ratio(p_rps, f_rps))} | | |")
    overhead = {"throughput_ratio_c1": ratio(p_rps, r_rps), "floor_ratio_c1": ratio(p_rps, f_rps)}
    for q in ("p50", "p99", "p999"):
        rv, fv, pv = get(runs, raw1, f"{q}_us"), get(runs, fl1, f"{q}_us"), get(runs, px1, f"{q}_us")
        added = None if rv is None or pv is None else pv - rv
        added_f = None if fv is None or pv is None else pv - fv
        overhead[f"added_{q}_us"] = added
        overhead[f"added_over_floor_{q}_us"] = added_f
        md.append(f"| {q} latency, concurrency 1 | {fmt_us(rv)} | {fmt_us(fv)} | {fmt_us(pv)} | | | "
                  f"+{fmt_us(added)} | +{fmt_us(added_f)} |")
    raw_peak = max((get(runs, f"raw-stdio-c{c}", "rps") or 0 for c in CONCURRENCY), default=0)
    floor_peak = max((get(runs, f"floor-c{c}", "rps") or 0 for c in CONCURRENCY), default=0)
    px_peak_label = max((f"fixture-pooled-ps{ps}-c{c}" for ps in POOL_SIZES for c in CONCURRENCY),
                        key=lambda lbl: get(runs, lbl, "rps") or 0)
    px_peak = get(runs, px_peak_label, "rps")
    ps2_peak = max((get(runs, f"fixture-pooled-ps2-c{c}", "rps") or 0 for c in CONCURRENCY), default=0)
    overhead["throughput_ratio_peak"] = ratio(px_peak, raw_peak)
    overhead["floor_ratio_peak_ps2"] = ratio(ps2_peak, floor_peak)
    md.append(f"| peak req/s (any concurrency / pool size) | {fmt_rps(raw_peak)} | {fmt_rps(floor_peak)} | {fmt_rps(px_peak)} "
              f"(`{px_peak_label}`) | {pct(ratio(px_peak, raw_peak))} | {pct(ratio(px_peak, floor_peak))} | | |")
    md.append("")
    md.append("Pipe floor = `stdiopool-load floor --processes N -- stdiopool-fixture`: the same HTTP stack "
              "forwarding each `tools/call` to one of N warm fixture processes with the least possible work "
              "(the body written as the line, the reply line sent back; the request's own task does both, "
              "no parse, no other task): what HTTP plus one pipe round trip costs, so the proxy's own share "
              "is the difference.")
    md.append("")
    md.append("| | pipe floor | through the proxy | proxy / pipe floor | added over pipe floor |")
    md.append("|---|---:|---:|---:|---:|")
    pf1 = "pipe-floor-ps1-c1"
    pf_rps = get(runs, pf1, "rps")
    md.append(f"| req/s, pool size 1, concurrency 1 | {fmt_rps(pf_rps)} | {fmt_rps(p_rps)} | "
              f"{pct(ratio(p_rps, pf_rps))} | |")
    for q in ("p50", "p99"):
        fv, pv = get(runs, pf1, f"{q}_us"), get(runs, px1, f"{q}_us")
        added = None if fv is None or pv is None else pv - fv
        overhead[f"added_over_pipe_floor_{q}_us"] = added
        md.append(f"| {q} latency, pool size 1, concurrency 1 | {fmt_us(fv)} | {fmt_us(pv)} | | +{fmt_us(added)} |")
    pipe_peak = max((get(runs, f"pipe-floor-ps2-c{c}", "rps") or 0 for c in CONCURRENCY), default=0)
    overhead["pipe_floor_ratio_peak_ps2"] = ratio(ps2_peak, pipe_peak)
    md.append(f"| peak req/s, pool size 2 | {fmt_rps(pipe_peak)} | {fmt_rps(ps2_peak)} | "
              f"{pct(ratio(ps2_peak, pipe_peak))} | |")
    cpu_rows = [(f"floor-c{c}", f"HTTP floor, concurrency {c}") for c in CONCURRENCY]
    cpu_rows += [("pipe-floor-ps1-c1", "pipe floor, 1 process, concurrency 1")]
    cpu_rows += [(f"pipe-floor-ps2-c{c}", f"pipe floor, 2 processes, concurrency {c}") for c in CONCURRENCY]
    cpu_rows += [(f"fixture-pooled-ps{ps}-c{c}", f"proxy, pool size {ps}, concurrency {c}")
                 for ps in POOL_SIZES for c in CONCURRENCY]
    md.append("")
    md.append("Server CPU per request (utime + stime of the server process over the run ÷ requests served, "
              "warm-up included; 10 ms clock ticks):")
    md.append("")
    md.append("| run | requests | CPU | CPU per request |")
    md.append("|---|---:|---:|---:|")
    cpu = {}
    for lbl, name in cpu_rows:
        per = get(runs, lbl, "server_cpu_us_per_req")
        cpu[lbl] = per
        if per is None:
            continue
        served = (get(runs, lbl, "ok") or 0) + (get(runs, lbl, "warmup") or 0)
        md.append(f"| {name} | {served:,} | {get(runs, lbl, 'server_cpu_s'):.2f} s | {per:.1f} µs |")
    out["server_cpu_us_per_req"] = cpu
    out["overhead"] = overhead
    md.append("")

    # 4. matrix
    md.append("### 4. Pooled mode: pool size × concurrency (fixture)")
    md.append("")
    md.append("req/s (p50 / p99)")
    md.append("")
    md.append("| pool size | " + " | ".join(f"concurrency {c}" for c in CONCURRENCY) + " |")
    md.append("|---:|" + "---:|" * len(CONCURRENCY))
    for ps in POOL_SIZES:
        cells = []
        for c in CONCURRENCY:
            lbl = f"fixture-pooled-ps{ps}-c{c}"
            cells.append(f"{fmt_rps(get(runs, lbl, 'rps'))} ({fmt_us(get(runs, lbl, 'p50_us'))} / {fmt_us(get(runs, lbl, 'p99_us'))})")
        md.append(f"| {ps} | " + " | ".join(cells) + " |")
    s = "fixture-session-c64"
    md.append("")
    md.append(f"Session mode, 64 sessions (64 processes, one each), concurrency 64: **{fmt_rps(get(runs, s, 'rps'))} req/s** "
              f"(p50 {fmt_us(get(runs, s, 'p50_us'))}, p99 {fmt_us(get(runs, s, 'p99_us'))}; "
              f"{get(runs, s, 'replies_sse')} SSE replies). Raw stdio for comparison: "
              + ", ".join(f"concurrency {c} {fmt_rps(get(runs, f'raw-stdio-c{c}', 'rps'))} req/s" for c in CONCURRENCY) + ".")
    md.append("")

    # 5. resources
    md.append("### 5. Resources (pooled, pool size 2, fixture)")
    md.append("")
    md.append("| | RSS | open fds | children |")
    md.append("|---|---:|---:|---:|")
    md.append(f"| idle, after start | {res['rss_idle_kib'] / 1024:.1f} MiB | {res['fds_idle']} | {res['children_idle']} |")
    md.append(f"| with {res['sessions_open']:,} open sessions (pooled mode; their clients gone) | "
              f"{res['rss_with_sessions_kib'] / 1024:.1f} MiB | {res['fds_with_sessions']} | |")
    md.append(f"| then after {res['requests_served_between']:,} requests at concurrency 64 (clients gone) | "
              f"{res['rss_after_load_kib'] / 1024:.1f} MiB | {res['fds_after_load']} | {res['children_after_load']} |")
    md.append("")
    md.append(f"The two fixture processes together use {res['children_rss_kib'] / 1024:.1f} MiB; zombies after the run: {res['zombies']}.")
    md.append("")

    # goals
    py1 = before_after.get("Python `mcp`@1")
    fx_seed = seed.get("fixture (Rust)", {}).get("speedup")
    py_seed = seed.get("Python `mcp`", {}).get("speedup")
    rss_idle_mib = res["rss_idle_kib"] / 1024
    fds_flat = res["fds_after_load"] <= res["fds_idle"] + 2
    px_cpu = [v for k, v in cpu.items() if k.startswith("fixture-pooled") and v is not None]
    px_cpu_max = max(px_cpu) if px_cpu else None
    goals = [
        ("warm pool vs spawn-per-request, seed target", "≥ 10×",
         f"fixture {fmt_ratio(fx_seed)}, Python {fmt_ratio(py_seed)} (100 sequential)",
         (fx_seed or 0) >= 10 and (py_seed or 0) >= 10),
        ("warm pool vs spawn-per-request with Python", "≥ 100×", f"{fmt_ratio(py1)} (concurrency 1)", (py1 or 0) >= 100),
        ("proxy throughput vs raw stdio, concurrency 1, pool size 1", "≥ 70 %",
         f"{pct(overhead['throughput_ratio_c1'])}",
         (overhead["throughput_ratio_c1"] or 0) >= 0.7),
        ("added latency over raw stdio, concurrency 1", "p50 ≤ 40 µs, p99 ≤ 150 µs",
         f"p50 +{fmt_us(overhead['added_p50_us'])}, p99 +{fmt_us(overhead['added_p99_us'])}",
         (overhead["added_p50_us"] or 1e9) <= 40 and (overhead["added_p99_us"] or 1e9) <= 150),
        ("peak throughput (pool size 2) vs the HTTP floor's peak, same run", "≥ 50 %",
         f"{pct(overhead['floor_ratio_peak_ps2'])} ({fmt_rps(ps2_peak)} vs {fmt_rps(floor_peak)} req/s)",
         (overhead["floor_ratio_peak_ps2"] or 0) >= 0.5),
        ("proxy CPU per request (worst pooled run)", "≤ 20 µs",
         "–" if px_cpu_max is None else f"{px_cpu_max:.1f} µs (best {min(px_cpu):.1f} µs)",
         px_cpu_max is not None and px_cpu_max <= 20),
        ("proxy RSS idle", "≤ 15 MiB", f"{rss_idle_mib:.1f} MiB", rss_idle_mib <= 15),
        ("open fds proportional to the pool, not to requests", "flat",
         f"{res['fds_idle']} → {res['fds_after_load']} after {res['requests_served_between']:,} requests",
         fds_flat),
    ]
    out["goals"] = [{"goal": g, "target": t, "measured": m, "met": ok} for g, t, m, ok in goals]
    head = ["### Goals", "", "| goal | target | measured | met |", "|---|---|---|---|"]
    head += [f"| {g} | {t} | {m} | {'yes' if ok else '**no**'} |" for g, t, m, ok in goals]
    head.append("")
    md = md[:2] + head + md[2:]
    return out, "\n".join(md)


def svg_plot(runs, mach):
    """Throughput against concurrency, log-scale y, for pooled vs spawn-per-request."""
    series = [
        ("raw stdio (fixture, no HTTP)", "raw-stdio-c{}", "#888888", "4 3"),
        ("warm pool, fixture", "fixture-pooled-ps2-c{}", "#1f77b4", ""),
        ("spawn-per-request, fixture", "fixture-spr-c{}", "#1f77b4", "7 4"),
        ("warm pool, Python mcp", "py-pooled-c{}", "#d62728", ""),
        ("spawn-per-request, Python mcp", "py-spr-c{}", "#d62728", "7 4"),
    ]
    pts = {}
    for name, pattern, _, _ in series:
        p = []
        for c in CONCURRENCY:
            lbl = pattern.format(c)
            if pattern.startswith("py-spr") and c == 1:
                lbl = "py-spr-seq100"
            v = get(runs, lbl, "rps")
            if v:
                p.append((c, v))
        pts[name] = p
    values = [v for p in pts.values() for _, v in p] or [1]
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    W, H = 760, 460
    L, R, T, B = 80, 250, 50, 60
    pw, ph = W - L - R, H - T - B

    def x_of(c):
        return L + pw * CONCURRENCY.index(c) / (len(CONCURRENCY) - 1)

    def y_of(v):
        return T + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="24" font-size="15" font-weight="bold">stdiopool: throughput vs concurrency (pool size 2)</text>',
         f'<text x="{L}" y="40" font-size="11" fill="#555">{mach["date_utc"]}, {mach["cpus"]} × {mach["cpu"]}; '
         'bash benches/run.sh</text>']
    d = lo
    while d <= hi * 1.0001:
        y = y_of(d)
        o.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 8}" y="{y + 4:.1f}" text-anchor="end">{d:,.0f}</text>')
        d *= 10
    for c in CONCURRENCY:
        x = x_of(c)
        o.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#eee"/>')
        o.append(f'<text x="{x:.1f}" y="{T + ph + 18}" text-anchor="middle">{c}</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{L + pw / 2}" y="{H - 18}" text-anchor="middle">concurrent clients</text>')
    o.append(f'<text transform="translate(22,{T + ph / 2}) rotate(-90)" text-anchor="middle">requests/s (log scale)</text>')
    for i, (name, _, color, dash) in enumerate(series):
        p = pts[name]
        if not p:
            continue
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        path = " ".join(f"{'M' if j == 0 else 'L'}{x_of(c):.1f},{y_of(v):.1f}" for j, (c, v) in enumerate(p))
        o.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}/>')
        for c, v in p:
            o.append(f'<circle cx="{x_of(c):.1f}" cy="{y_of(v):.1f}" r="3.5" fill="{color}"/>')
            o.append(f'<text x="{x_of(c) + 6:.1f}" y="{y_of(v) - 6:.1f}" font-size="10" fill="{color}">{fmt_rps(v)}</text>')
        ly = T + 10 + i * 22
        lx = L + pw + 16
        o.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 28}" y2="{ly}" stroke="{color}" stroke-width="2"{dash_attr}/>')
        o.append(f'<text x="{lx + 34}" y="{ly + 4}">{name}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--write-docs", default="1")
    ap.add_argument("--scale", default="1")
    a = ap.parse_args()
    runs = load_runs(a.results)
    with open(os.path.join(a.results, "resources.json")) as f:
        res = json.load(f)
    mach = machine()
    # When, at which commit and under what load the runs were made (run.sh
    # records it as the runs end), rather than when this report is drawn.
    try:
        with open(os.path.join(a.results, "run-info.json")) as f:
            mach.update(json.load(f))
    except (OSError, ValueError):
        pass
    out, md = build(runs, res, mach, a.scale)
    with open(os.path.join(a.results, "results.json"), "w") as f:
        json.dump(out, f, indent=2)
    with open(os.path.join(a.results, "results.md"), "w") as f:
        f.write(md + "\n")
    svg = svg_plot(runs, mach)
    with open(os.path.join(a.results, "perf-throughput.svg"), "w") as f:
        f.write(svg)
    print(md)
    if a.write_docs == "1":
        with open(os.path.join(ROOT, "docs", "perf-throughput.svg"), "w") as f:
            f.write(svg)
        doc = os.path.join(ROOT, "docs", "PERFORMANCE.md")
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        try:
            with open(doc) as f:
                text = f.read()
        except OSError:
            text = ""
        if begin in text and end in text:
            pre, rest = text.split(begin, 1)
            _, post = rest.split(end, 1)
            with open(doc, "w") as f:
                f.write(pre + begin + "\n" + md + "\n" + end + post)
            print(f"\nwrote docs/perf-throughput.svg and the generated block of {doc}")
        else:
            print(f"\n{doc} has no {begin} / {end} block: results left in {a.results}/results.md", file=sys.stderr)
    print(f"results: {a.results}/results.json, results.md, perf-throughput.svg")


if __name__ == "__main__":
    main()
