#!/usr/bin/env bash
# Kernel work per request: system calls (strace -c) and context switches (/proc), counted,
# not timed, so a shared, noisy machine gives repeatable figures (docs/performance.md).
#
#   bash benches/syscalls.sh                 # target/release/zweck (built first)
#   ZWECK_BIN=/path/to/other/zweck bash benches/syscalls.sh   # an older build, for before/after
#   ZWECK_SYSCALLS_ONLY="98 KB" bash benches/syscalls.sh       # only scenarios whose name has it
#   ZWECK_SYSCALLS_KEEP=1 bash benches/syscalls.sh             # keep strace's tables
#
# For each scenario a release `zweck serve` (not instrumented) answers 50 requests to warm up,
# then strace attaches to all its threads while oha sends N requests (8 connections, HTTP/1.1
# keep-alive, TLS, the newsletter app's client certificate) through to the CRM double (a
# separate process, not counted). Printed per request: every system call, the ones that move
# bytes (read/write/recv/send families, vectored or not), epoll waits, futex calls, and
# voluntary context switches (a thread that went to sleep: a wake-up each) read from
# /proc/PID/task/*/status around a run without strace (strace adds switches of its own).
# Rows: the governed 98 KB page without the transfer log, the upstream on HTTP/2 (what ALPN
# picks with the double) and on HTTP/1.1 (`protocol: http1`), and the 484 B pass-through.
# Everything on 127.0.0.1; about a minute. Not part of CI (needs strace and oha).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$REPO/benches/load"
# shellcheck source=benches/load/common.sh
source "$HERE/common.sh"

log() { printf '[syscalls] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v strace >/dev/null || die "strace is needed (Debian: apt-get install strace)"
command -v python3 >/dev/null || die "python3 is needed"
bench_oha
bench_zweck "$REPO"

WORK=$(mktemp -d /tmp/zweck-syscalls.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    if [[ "${ZWECK_SYSCALLS_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

snapshot_policies "$ZWECK" "$REPO" "$WORK/policies" || die "policies do not check"
D_PORT=$(free_port)
bench_certs "$ZWECK" "$REPO" "$WORK" "$D_PORT"

"$ZWECK" crm-double --listen "127.0.0.1:$D_PORT" --certs "$WORK/certs" --contacts 100000 >"$WORK/double.log" 2>&1 &
PIDS+=($!)

# voluntary context switches of every thread of PID, summed
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s + 0}'
}

# oha N PORT PATH: N requests, quietly
load() {
    "$OHA" --no-tui -n "$1" -c 8 --disable-compression "${CLIENT[@]}" --output-format quiet \
        "https://127.0.0.1:$2$3" >/dev/null 2>&1 || die "oha failed against $3"
}

# measure NAME N PATH AUDIT(yes|no) UPSTREAM(auto|http1) -> one table row
measure() {
    local name=$1 n=$2 path=$3 audit=$4 upstream=$5 port admin run cfg zpid spid before after
    port=$(free_port); admin=$(free_port)
    run="$WORK/run-$port"; cfg="$run.yaml"
    bench_run_config "$REPO" "$WORK" "$run" "$D_PORT" "$port" "$admin" "$audit" "$upstream" "$cfg"
    if ! "$ZWECK" config check --config "$cfg" >"$run.check" 2>&1; then
        echo "| $name | - | - (not supported by this build: $(head -1 "$run.check")) |"
        return
    fi
    RUST_LOG=warn "$ZWECK" serve --config "$cfg" >"$run.log" 2>&1 &
    zpid=$!
    PIDS+=("$zpid")
    for _ in $(seq 120); do
        curl -s -o /dev/null --cacert "$CA" "https://127.0.0.1:$port/" && break
        kill -0 "$zpid" 2>/dev/null || die "zweck exited: $(tail -3 "$run.log")"
        sleep 0.25
    done
    load 50 "$port" "$path"
    # wake-ups without strace: its stops would add switches of their own
    before=$(switches "$zpid")
    load "$n" "$port" "$path"
    after=$(switches "$zpid")
    # then every system call of every thread, under strace
    strace -c -f -q -p "$zpid" -o "$run.strace" &
    spid=$!
    sleep 1
    load "$n" "$port" "$path"
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    kill -TERM "$zpid"
    wait "$zpid" 2>/dev/null || true
    python3 - "$run.strace" "$n" "$name" "$((after - before))" <<'PY'
import re, sys
path, n, name, switches = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
calls = {}
for line in open(path):
    f = line.split()
    # % time, seconds, usecs/call, calls, [errors], syscall
    if len(f) >= 5 and re.fullmatch(r"[\d.]+", f[0]) and f[-1] != "total":
        calls[f[-1]] = int(f[3])
total = sum(calls.values())
io = sum(v for k, v in calls.items() if re.fullmatch(r"(read|write|readv|writev|recvfrom|sendto|recvmsg|sendmsg|sendmmsg|recvmmsg)", k))
epoll = sum(v for k, v in calls.items() if k.startswith("epoll"))
futex = calls.get("futex", 0)
top = ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:5])
print(f"| {name} | {n} | {total / n:.1f} | {io / n:.1f} | {epoll / n:.1f} | {futex / n:.1f} | {switches / n:.1f} | {top} |")
PY
}

FIELDS="Id,FirstName,LastName,Email,Phone,MobilePhone,Birthdate,HasOptedOutOfEmail,MailingStreet,MailingCity,MailingPostalCode,MailingCountry,Title,Department"
SOQL="SELECT+$FIELDS+FROM+Contact+LIMIT+200"
echo "# System calls and wake-ups per request, $("$ZWECK" --version 2>/dev/null || echo zweck) at $ZWECK"
echo
echo "| scenario | requests | syscalls | of them read/write | epoll | futex | voluntary switches | most frequent |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for scenario in "governed JSON (98 KB), no transfer log|/services/data/v66.0/query?q=$SOQL|400|no|auto" \
    "governed JSON (98 KB), no transfer log, upstream on HTTP/1.1|/services/data/v66.0/query?q=$SOQL|400|no|http1" \
    "pass-through (484 B)|/services/data/|2000|no|auto" \
    "pass-through (484 B), upstream on HTTP/1.1|/services/data/|2000|no|http1"; do
    IFS='|' read -r name path n audit upstream <<<"$scenario"
    if [[ -n "${ZWECK_SYSCALLS_ONLY:-}" && "$name" != *"$ZWECK_SYSCALLS_ONLY"* ]]; then continue; fi
    log "$name: $n requests"
    measure "$name" "$n" "$path" "$audit" "$upstream"
done
