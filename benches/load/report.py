#!/usr/bin/env python3
"""Print the table of benches/load.sh from its results.tsv (one line per oha run).

Columns of results.tsv: scenario, target, mode (max|rate), rate, rps (2xx only), p50 ms,
p99 ms, fraction of 2xx, CPU seconds of the target's process(es), CPU us per 2xx request,
peak RSS kB (VmHWM, reset before the run), bytes per response, load-generator CPU use, CPU us
of the CRM double per 2xx request.
"""
import math
import sys

NAMES = {
    "pass": "pass-through (484 B)",
    "gov": "governed JSON (98 KB)",
    "bulk": "Bulk CSV (2000 rows, 421 KB)",
    "hs": "governed HubSpot search (200 contacts, 104 KB)",
    "dv": "governed Dataverse contacts (200, 99 KB)",
    "gov1": "governed JSON (2 contacts, ~1 KB)",
    "hs1": "governed HubSpot search (2 contacts, ~1 KB)",
    "dv1": "governed Dataverse contacts (2, ~1 KB)",
}
SCENARIOS = ["pass", "gov", "bulk", "hs", "dv", "gov1", "hs1", "dv1"]
TARGETS = ["direct", "nginx", "zweck", "zweck-nolog", "zweck-gzip", "zweck-an", "zweck-h1"]
LABEL = {
    "direct": "direct",
    "nginx": "nginx",
    "zweck": "zweck",
    "zweck-nolog": "zweck without log",
    "zweck-gzip": "zweck, app accepts gzip",
    "zweck-an": "zweck, analytics (pseudonyms)",
    "zweck-h1": "zweck, HTTP/1.1 upstreams, no log",
}

rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 13:
        continue
    s, t, mode = f[0], f[1], f[2]
    rows[(s, t, mode)] = {
        "rate": int(f[3]),
        "rps": float(f[4]),
        "p50": float(f[5]),
        "p99": float(f[6]),
        "ok": float(f[7]),
        "cpu": float(f[8]),
        "cpu_req": float(f[9]),
        "hwm": int(f[10]),
        "size": int(f[11]),
        "gen": float(f[12]),
        "double_req": float(f[13]) if len(f) > 13 else float("nan"),
    }


def fmt(x, digits=2):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}x"


print("| scenario | target | load | rps | p50 ms | p99 ms | added p50 | added p99 | proxy CPU s | CPU us/req | peak RSS MB | zweck/nginx | zweck/direct |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
notes = set()
for s in SCENARIOS:
    for mode in ["max", "rate"]:
        base = rows.get((s, "direct", mode))
        ngx = rows.get((s, "nginx", mode))
        for t in TARGETS:
            r = rows.get((s, t, mode))
            if r is None:
                continue
            load = "max" if mode == "max" else f"{r['rate']}/s"
            rps = f"{r['rps']:.0f}"
            if r["ok"] < 0.999:
                rps += f" ({100 * r['ok']:.1f} % 2xx)"
                notes.add("non-2xx")
            if r["gen"] >= 0.9:
                rps += " †"
                notes.add("gen")
            added50 = added99 = "-"
            if t != "direct" and base:
                added50 = fmt(r["p50"] - base["p50"], 3)
                added99 = fmt(r["p99"] - base["p99"], 3)
            cpu = cpu_req = hwm = "-"
            if t != "direct":
                cpu, cpu_req, hwm = fmt(r["cpu"]), fmt(r["cpu_req"], 0), fmt(r["hwm"] / 1024, 1)
            else:  # the CRM double's own CPU: what serving the page costs the origin
                cpu_req = f"({fmt(r['cpu_req'], 0)})"
            rn = rd = ""
            if t.startswith("zweck"):
                key = "rps" if mode == "max" else "p99"
                rn = ratio(r[key], ngx[key] if ngx else None)
                rd = ratio(r[key], base[key] if base else None)
            print(f"| {NAMES[s]} | {LABEL[t]} | {load} | {rps} | {fmt(r['p50'], 3)} | {fmt(r['p99'], 3)} | "
                  f"{added50} | {added99} | {cpu} | {cpu_req} | {hwm} | {rn} | {rd} |")

print()
print("Ratios: on `max` rows of requests per second (higher is better for Zweck), on rate rows of p99 "
      "latency (lower is better). 'added' = latency minus direct's at the same load. Proxy CPU and "
      "peak RSS are of the proxy process (nginx: master + worker); direct has no proxy. "
      "CPU us/req = proxy CPU seconds / 2xx responses; in parentheses on direct rows: the CRM double's.")
if "gen" in notes:
    print("† the load generator used >= 90 % of its core: that row is bounded by the generator, not the server.")
if "non-2xx" in notes:
    print("Rows with a 2xx share below 100 % count only the 2xx responses in rps.")

print()
print("Per-request CPU against nginx (at maximum; CPU us per 2xx response read from /proc; nginx and direct")
print("fetch the raw page, Zweck filters it for the purpose; goals: pass-through rps >= 1.0x nginx,")
print("governed ~100 KB CPU <= 2x nginx, governed ~1 KB CPU <= 3x nginx):")
print()
print("| scenario | zweck variant | zweck CPU us/req | nginx CPU us/req | double CPU us/req (direct) | CPU zweck/nginx | rps zweck/nginx |")
print("|---|---|---:|---:|---:|---:|---:|")
for s in SCENARIOS:
    ngx = rows.get((s, "nginx", "max"))
    base = rows.get((s, "direct", "max"))
    for t in TARGETS[2:]:
        r = rows.get((s, t, "max"))
        if r is None or ngx is None:
            continue
        print(f"| {NAMES[s]} | {LABEL[t]} | {fmt(r['cpu_req'], 0)} | {fmt(ngx['cpu_req'], 0)} | "
              f"{fmt(base['cpu_req'], 0) if base else '-'} | {ratio(r['cpu_req'], ngx['cpu_req'])} | {ratio(r['rps'], ngx['rps'])} |")

print()
print("Transfer-log cost (zweck vs zweck without log):")
print()
print("| scenario | rps at max | CPU us/req at max | p99 at 50 % load |")
print("|---|---:|---:|---:|")
for s in ["pass", "gov", "bulk"]:
    a, b = rows.get((s, "zweck", "max")), rows.get((s, "zweck-nolog", "max"))
    ar, br = rows.get((s, "zweck", "rate")), rows.get((s, "zweck-nolog", "rate"))
    if not (a and b):
        continue
    drop = (1 - a["rps"] / b["rps"]) * 100 if b["rps"] else float("nan")
    cpu = (a["cpu_req"] / b["cpu_req"] - 1) * 100 if b["cpu_req"] and not math.isnan(b["cpu_req"]) else float("nan")
    p99 = f"{ar['p99']:.3f} vs {br['p99']:.3f} ms" if ar and br else "-"
    print(f"| {NAMES[s]} | {a['rps']:.0f} vs {b['rps']:.0f} ({-drop:+.1f} %) | {fmt(a['cpu_req'], 0)} vs {fmt(b['cpu_req'], 0)} ({cpu:+.1f} %) | {p99} |")
