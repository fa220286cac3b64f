#!/usr/bin/env bash
# The transfer log's group commit at several loads: what `audit.commit_window` saves (fdatasync
# and CPU per page) and what it costs (latency), against the same build with the window off,
# in the same run (docs/performance.md, "The transfer log under load").
#
#   bash benches/commit.sh                          # target/release/zweck (built first)
#   ZWECK_BIN=/path/to/zweck bash benches/commit.sh # another build
#   ZWECK_COMMIT_WINDOWS="0ms 2ms 5ms 10ms" bash benches/commit.sh   # windows to compare
#   ZWECK_COMMIT_SECONDS=8 bash benches/commit.sh   # seconds per row (default 6)
#
# The governed Salesforce page of load.sh (~100 KB from the double, 200 contacts, the
# newsletter app's client certificate), 32 connections, TLS keep-alive, oha on CPU 1, the
# proxy and the CRM double on CPU 0 (so the proxy's CPU, not the disk, bounds the rate: the
# case where batching pays). For each window a fresh `zweck serve` with the transfer log:
# first at maximum load, then at fixed rates of 25 %, 50 % and 75 % of the first window's
# maximum (oha -q). Printed per row: pages/s, p50 and p99 latency, Zweck's CPU per page
# (utime + stime of all its threads from /proc), fdatasync per page and window timeouts per
# page (from the admin endpoint's zweck_transfer_log_* counters), and the p50 and CPU as a
# ratio to the first window's row at the same load. Everything on 127.0.0.1; about 30 s per
# window. Not part of CI (needs oha; timings on a shared machine are noisy: compare within
# a run).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$REPO/benches/load"
# shellcheck source=benches/load/common.sh
source "$HERE/common.sh"

log() { printf '[commit] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 is needed"
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
bench_oha
bench_zweck "$REPO"
WINDOWS=${ZWECK_COMMIT_WINDOWS:-"0ms 5ms"}
SECONDS_PER_ROW=${ZWECK_COMMIT_SECONDS:-6}

WORK=$(mktemp -d /tmp/zweck-commit.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

snapshot_policies "$ZWECK" "$REPO" "$WORK/policies" || die "policies do not check"
D_PORT=$(free_port)
bench_certs "$ZWECK" "$REPO" "$WORK" "$D_PORT"
taskset -c 0 "$ZWECK" crm-double --listen "127.0.0.1:$D_PORT" --certs "$WORK/certs" --contacts 100000 >"$WORK/double.log" 2>&1 &
PIDS+=($!)

FIELDS="Id,FirstName,LastName,Email,Phone,MobilePhone,Birthdate,HasOptedOutOfEmail,MailingStreet,MailingCity,MailingPostalCode,MailingCountry,Title,Department"
PAGE="/services/data/v66.0/query?q=SELECT+$FIELDS+FROM+Contact+LIMIT+200"

# CPU ticks (utime + stime) of every thread of PID
ticks() { cat /proc/"$1"/task/*/stat 2>/dev/null | awk '{t += $14 + $15} END {print t + 0}'; }
# counter NAME ADMIN -> the value of zweck_transfer_log_NAME_total
counter() { curl -s "http://127.0.0.1:$2/metrics" | awk -v m="zweck_transfer_log_$1_total" '$1 == m {print $2}'; }

# row WINDOW RATE(0: max) PORT ADMIN ZPID -> "rps p50 p99 cpu syncs timeouts" (per page)
row() {
    local window=$1 rate=$2 port=$3 admin=$4 zpid=$5 q=() t0 t1 s0 s1 w0 w1
    [[ $rate == 0 ]] || q=(-q "$rate")
    t0=$(ticks "$zpid"); s0=$(counter syncs "$admin"); w0=$(counter window_timeouts "$admin")
    taskset -c 1 "$OHA" --no-tui -z "${SECONDS_PER_ROW}s" -c 32 "${q[@]}" --disable-compression "${CLIENT[@]}" \
        --output-format json -o "$WORK/oha.json" "https://127.0.0.1:$port$PAGE" >/dev/null 2>&1 || die "oha failed"
    t1=$(ticks "$zpid"); s1=$(counter syncs "$admin"); w1=$(counter window_timeouts "$admin")
    python3 - "$WORK/oha.json" "$((t1 - t0))" "$((s1 - s0))" "${w0:-0}" "${w1:-0}" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ticks, syncs, w0, w1, hz = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
ok = sum(v for k, v in d["statusCodeDistribution"].items() if k.startswith("2"))
if ok == 0 or ok != sum(d["statusCodeDistribution"].values()):
    sys.exit(f"not every page was answered 2xx: {d['statusCodeDistribution']}")
timeouts = int(float(w1)) - int(float(w0)) if w1 else 0
l = d["latencyPercentiles"]
print(d["summary"]["requestsPerSec"], l["p50"] * 1e3, l["p99"] * 1e3, ticks * 1e6 / hz / ok, syncs / ok, timeouts / ok)
PY
}

echo "# The transfer log's group commit at several loads, $("$ZWECK" --version 2>/dev/null || echo zweck) at $ZWECK"
echo
echo "| commit_window | load | pages/s | p50 ms | p99 ms | CPU us/page | fdatasync/page | window timeouts/page | p50 vs first | CPU vs first |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
declare -A FIRST_P50 FIRST_CPU
MAX=""
for window in $WINDOWS; do
    port=$(free_port); admin=$(free_port)
    run="$WORK/run-$port"; cfg="$run.yaml"
    bench_run_config "$REPO" "$WORK" "$run" "$D_PORT" "$port" "$admin" yes auto "$cfg"
    python3 - "$cfg" "$window" <<'PY'
import sys, yaml
p, w = sys.argv[1], sys.argv[2]
c = yaml.safe_load(open(p))
c["audit"]["commit_window"] = w
yaml.safe_dump(c, open(p, "w"), sort_keys=False)
PY
    "$ZWECK" config check --config "$cfg" >"$run.check" 2>&1 || die "config does not check: $(head -3 "$run.check")"
    RUST_LOG=warn taskset -c 0 "$ZWECK" serve --config "$cfg" >"$run.log" 2>&1 &
    zpid=$!
    PIDS+=("$zpid")
    for _ in $(seq 120); do
        curl -s -o /dev/null "http://127.0.0.1:$admin/metrics" && break
        kill -0 "$zpid" 2>/dev/null || die "zweck exited: $(tail -3 "$run.log")"
        sleep 0.25
    done
    log "commit_window $window: warm-up"
    taskset -c 1 "$OHA" --no-tui -n 100 -c 8 --disable-compression "${CLIENT[@]}" --output-format quiet \
        "https://127.0.0.1:$port$PAGE" >/dev/null 2>&1 || die "warm-up failed"
    for load in max 25 50 75; do
        if [[ $load == max ]]; then rate=0; else rate=$(python3 -c "print(max(1, round($MAX * $load / 100)))"); fi
        log "commit_window $window: load $load"
        out=$(row "$window" "$rate" "$port" "$admin" "$zpid") || die "commit_window $window, load $load failed"
        read -r rps p50 p99 cpu syncs timeouts <<<"$out"
        [[ -n $MAX ]] || MAX=$rps
        [[ -n ${FIRST_P50[$load]:-} ]] || { FIRST_P50[$load]=$p50; FIRST_CPU[$load]=$cpu; }
        label=$([[ $load == max ]] && echo "maximum" || echo "$load % ($rate/s)")
        python3 -c "
w, label, rps, p50, p99, cpu, syncs, to, f50, fcpu = '$window', '$label', $rps, $p50, $p99, $cpu, $syncs, $timeouts, ${FIRST_P50[$load]}, ${FIRST_CPU[$load]}
print(f'| {w} | {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {cpu:.0f} | {syncs:.2f} | {to:.2f} | {p50 / f50:.2f}x | {cpu / fcpu:.2f}x |')"
    done
    kill -TERM "$zpid"
    wait "$zpid" 2>/dev/null || true
done
