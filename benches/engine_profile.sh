#!/usr/bin/env bash
# Instructions per body for the policy engine, counted by valgrind's callgrind: repeatable on a
# shared, noisy machine where timings are not (docs/performance.md, "Engine vs serde_json").
#
#   bash benches/engine_profile.sh            # ~1 KB bodies (one record)
#   BYTES=100000 bash benches/engine_profile.sh
#
# For each dialect and mode the `engine_profile` bench target runs N and 3N times under
# callgrind; (count(3N) - count(N)) / 2N is the cost of one body without start-up (generating
# the body, loading the policies). Modes: serde_json (from_slice::<Value> + to_vec, the floor),
# parse (Zweck's strict parse + serialize), newsletter and analytics (parse + policy::apply +
# serialize, the DOM path; analytics pseudonymises), span:newsletter and span:analytics (the
# span path, policy::span::response). Not part of CI (needs valgrind); about 3 minutes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BYTES=${BYTES:-1000}
N=${N:-200}
command -v valgrind >/dev/null || { echo "valgrind is needed (Debian: apt-get install valgrind)" >&2; exit 1; }

echo "[engine_profile] building (cargo bench --no-run --bench engine_profile)" >&2
BIN=$(cd "$REPO" && cargo bench --no-run --bench engine_profile --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "engine_profile" and m.get("executable"):
        print(m["executable"])')
[[ -x "$BIN" ]] || { echo "build failed" >&2; exit 1; }

count() { # dialect mode iterations
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$1" "$BYTES" "$2" "$3" 2>&1 |
        awk '/Collected/ { gsub(",", "", $4); print $4 }'
}

echo "| body (~$BYTES B) | serde_json | strict parse | newsletter DOM | analytics DOM | newsletter span | analytics span | span / DOM (newsletter, analytics) | span / serde_json |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for dialect in salesforce hubspot dynamics; do
    declare -A per=()
    for mode in serde_json parse newsletter analytics span:newsletter span:analytics; do
        a=$(count "$dialect" "$mode" "$N")
        b=$(count "$dialect" "$mode" $((3 * N)))
        per[$mode]=$(((b - a) / (2 * N)))
    done
    python3 -c "
s, p, n, a = ${per[serde_json]}, ${per[parse]}, ${per[newsletter]}, ${per[analytics]}
sn, sa = ${per[span:newsletter]}, ${per[span:analytics]}
print(f'| $dialect | {s:,} | {p:,} | {n:,} | {a:,} | {sn:,} | {sa:,} | {sn / n:.2f}x, {sa / a:.2f}x | {sn / s:.2f}x, {sa / s:.2f}x |')"
done
