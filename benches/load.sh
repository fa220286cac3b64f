#!/usr/bin/env bash
# Load benchmark: Zweck vs nginx vs the CRM double directly, on loopback.
#
#   bash benches/load.sh            # builds target/release/zweck, runs everything (< 9 min after the build)
#
# What it does (docs/performance.md explains the numbers and the goals):
#   - starts the built-in CRM double, Zweck with the transfer log, Zweck without it, and nginx
#     as a plain TLS reverse proxy (keepalive upstream, verifying the double with the dev CA),
#     all on 127.0.0.1 with free ports, in a temporary directory;
#   - drives each with oha (HTTP/1.1 keep-alive, TLS): at maximum (closed loop, $CONNS
#     connections) and open loop at a fixed rate (50 % of Zweck's maximum, coordinated
#     omission corrected), for three scenarios: a ~0.5 KB ungoverned pass-through, a ~100 KB
#     governed SOQL page, and a Bulk API 2.0 CSV results page;
#   - then, at maximum only, the governed ~100 KB page of each dialect (Salesforce SOQL,
#     HubSpot list, Dataverse contacts) for the two shipped purpose kinds: filtering
#     (newsletter app, client certificate) and pseudonymising (bi-export app, analytics
#     purpose, API key), beside nginx and direct fetching the same raw page; the same for a
#     governed ~1 KB page of each dialect (two contacts: what an app's single lookups and
#     small pages cost, where per-request work outweighs the bytes); and the
#     pass-through again through a Zweck whose upstreams speak HTTP/1.1 only
#     (`protocol: http1`) instead of HTTP/2;
#   - reads CPU seconds (/proc/PID/stat utime+stime) of the proxy process and of the CRM
#     double, and peak RSS (VmHWM, reset per run via clear_refs) of the proxy process, RSS
#     idle and per idle TLS connection, and the RSS of a ~1 GB CSV export through Zweck;
#   - prints one table. Nothing leaves loopback; every process it starts is stopped on exit.
#
# Not part of CI (it needs nginx and oha and a quiet machine). Tunables (environment):
#   ZWECK_BENCH_DURATION  seconds per measured run (default 4)
#   ZWECK_BENCH_CONNS     connections of the load generator (default 32)
#   ZWECK_BENCH_IDLE      idle TLS connections for the per-connection RSS (default 500)
#   ZWECK_BENCH_EXPORT_MB size of the CSV export (default 1024; 0 skips it)
#   ZWECK_BENCH_KEEP=1    keep the temporary directory (configs, logs, raw oha JSON)
#   ZWECK_BENCH_ONLY      measure only these scenarios, e.g. "gov1 hs1" (pass gov bulk hs dv
#                         gov1 hs1 dv1; default all): a quick look at a few rows
#   ZWECK_BIN             a zweck binary to measure instead of building this tree
#
# Load generator: oha (`cargo install oha`, ~8 min to compile; installed here when missing).
# It is the only one of oha, wrk and h2load that has a fixed request rate with coordinated-
# omission correction, latency percentiles in machine-readable form, TLS client certificates
# (Zweck identifies the newsletter app by its certificate) and keep-alive HTTP/1.1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$REPO/benches/load"
# shellcheck source=benches/load/common.sh
source "$HERE/common.sh"
DUR=${ZWECK_BENCH_DURATION:-4}
CONNS=${ZWECK_BENCH_CONNS:-32}
IDLE=${ZWECK_BENCH_IDLE:-500}
EXPORT_MB=${ZWECK_BENCH_EXPORT_MB:-1024}
BUDGET_SECONDS=540   # everything after the build and tool installation
CONTACTS=6000000     # the double generates records on demand: no memory cost

log() { printf '[load] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes and cleanup
WORK=$(mktemp -d /tmp/zweck-load.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ "${ZWECK_BENCH_KEEP:-0}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import yaml' 2>/dev/null || die "python3 needs PyYAML (Debian: python3-yaml)"
command -v curl >/dev/null || die "curl is needed"
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    log "installing nginx (apt-get install nginx-light, or nginx)"
    apt-get install -y nginx-light >/dev/null 2>&1 || apt-get install -y nginx >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y nginx-light >/dev/null; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
if [[ ! -x "$OHA" ]]; then
    log "installing oha (cargo install oha --locked; ~8 minutes)"
    cargo install oha --locked >/dev/null 2>&1 || die "cargo install oha failed"
    OHA="$HOME/.cargo/bin/oha"
fi

if [[ -n "${ZWECK_BIN:-}" ]]; then
    ZWECK=$(realpath "$ZWECK_BIN")
else
    log "building (cargo build --release --bin zweck)"
    (cd "$REPO" && cargo build --release --bin zweck >/dev/null 2>"$WORK/build.log") \
        || { tail -20 "$WORK/build.log" >&2; die "build failed"; }
    ZWECK="$REPO/target/release/zweck"
fi
START=$SECONDS

# Watchdog: the measurement part is bounded, whatever hangs.
( sleep "$BUDGET_SECONDS"; log "time budget of ${BUDGET_SECONDS}s exceeded, stopping"; kill -TERM $$ ) &
PIDS+=($!)

# Two cores: servers on CPU 0, the load generator on CPU 1.
if [[ $(nproc) -ge 2 ]]; then
    SRV=(taskset -c 0) GEN=(taskset -c 1)
    PINNING="servers (double, proxy) on CPU 0, load generator on CPU 1"
else
    SRV=() GEN=()
    PINNING="not pinned (one CPU)"
fi

D_PORT=$(free_port); Z_PORT=$(free_port); ZA_PORT=$(free_port)
N_PORT=$(free_port); ZN_PORT=$(free_port); ZNA_PORT=$(free_port); ZH_PORT=$(free_port); ZHA_PORT=$(free_port)
while [[ $(printf '%s\n' "$D_PORT" "$Z_PORT" "$ZA_PORT" "$N_PORT" "$ZN_PORT" "$ZNA_PORT" "$ZH_PORT" "$ZHA_PORT" | sort -u | wc -l) -lt 8 ]]; do
    Z_PORT=$(free_port); ZA_PORT=$(free_port); N_PORT=$(free_port); ZN_PORT=$(free_port); ZNA_PORT=$(free_port)
    ZH_PORT=$(free_port); ZHA_PORT=$(free_port)
done

# ---------------------------------------------------------------- policies, configs, certificates
# A snapshot of policies/ (other work may be editing it), budgets raised (benches/load/common.sh).
POL="$WORK/policies"
snapshot_policies "$ZWECK" "$REPO" "$POL" || die "policies do not check"

# Is the Bulk results route governed by the inventory? If not, it is declared ungoverned for
# the bench and measured as pass-through.
BULK_GOVERNED=no
if grep -Eq 'path: *"?/services/data/v\*/jobs/query/\*/results' "$POL/inventory/salesforce.yaml"; then
    BULK_GOVERNED=yes
fi

mkdir -p "$WORK/certs" "$WORK/log/logs" "$WORK/log/offbox" "$WORK/nolog"
python3 "$HERE/derive_config.py" "$REPO/zweck.yaml" "$WORK" "$POL" "$D_PORT" "$Z_PORT" "$ZA_PORT" yes "$WORK/zweck-log.yaml"
python3 "$HERE/derive_config.py" "$REPO/zweck.yaml" "$WORK" "$POL" "$D_PORT" "$ZN_PORT" "$ZNA_PORT" no "$WORK/zweck-nolog.yaml"
# the same as zweck-nolog, its upstreams on HTTP/1.1 (`protocol: http1`) instead of HTTP/2
ZWECK_UPSTREAM_PROTOCOL=http1 python3 "$HERE/derive_config.py" "$REPO/zweck.yaml" "$WORK" "$POL" "$D_PORT" "$ZH_PORT" "$ZHA_PORT" no "$WORK/zweck-h1.yaml"
if [[ $BULK_GOVERNED == no ]]; then
    for f in "$WORK/zweck-log.yaml" "$WORK/zweck-nolog.yaml" "$WORK/zweck-h1.yaml"; do
        python3 - "$f" <<'EOF'
import sys, yaml
p = sys.argv[1]
cfg = yaml.safe_load(open(p))
sf = cfg["upstreams"]["salesforce"]
sf.setdefault("ungoverned", []).append("GET /services/data/*/jobs/query/*/results")
sf["ungoverned"].append("POST /services/data/*/jobs/query")
yaml.safe_dump(cfg, open(p, "w"), sort_keys=False)
EOF
    done
fi
"$ZWECK" certs generate --config "$WORK/zweck-log.yaml" >/dev/null
echo "bench-$RANDOM$RANDOM" >"$WORK/certs/crm-double.token"
chmod 600 "$WORK/certs/crm-double.token"
CERTS="$WORK/certs"
CA="$CERTS/ca.pem"
APP_CERT=("$CERTS/clients/newsletter-tool.pem" "$CERTS/clients/newsletter-tool.key")
# the pseudonymising purpose: bi-export identifies with an API key (analytics purpose)
AN_KEY=$(tr -d '[:space:]' <"$CERTS/api-keys/bi-export.key")

# ---------------------------------------------------------------- start the servers
wait_tls() { # port
    for _ in $(seq 100); do
        curl -s -o /dev/null --cacert "$CA" "https://127.0.0.1:$1/" 2>/dev/null && return 0
        [[ $? -ne 7 ]] && return 0   # anything but "connection refused": it listens
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1"
}

log "starting the CRM double, Zweck (with and without the transfer log) and nginx"
"${SRV[@]}" "$ZWECK" crm-double --listen "127.0.0.1:$D_PORT" --certs "$CERTS" --contacts "$CONTACTS" \
    >"$WORK/double.log" 2>&1 &
DOUBLE_PID=$!; PIDS+=("$DOUBLE_PID")
wait_tls "$D_PORT"

RUST_LOG=warn "${SRV[@]}" "$ZWECK" serve --config "$WORK/zweck-log.yaml" >"$WORK/zweck-log.out" 2>&1 &
ZLOG_PID=$!; PIDS+=("$ZLOG_PID")
RUST_LOG=warn "${SRV[@]}" "$ZWECK" serve --config "$WORK/zweck-nolog.yaml" >"$WORK/zweck-nolog.out" 2>&1 &
ZNOLOG_PID=$!; PIDS+=("$ZNOLOG_PID")
RUST_LOG=warn "${SRV[@]}" "$ZWECK" serve --config "$WORK/zweck-h1.yaml" >"$WORK/zweck-h1.out" 2>&1 &
ZH1_PID=$!; PIDS+=("$ZH1_PID")
wait_tls "$Z_PORT"; wait_tls "$ZN_PORT"; wait_tls "$ZH_PORT"
sleep 0.5
kill -0 "$ZLOG_PID" 2>/dev/null || { cat "$WORK/zweck-log.out" >&2; die "zweck (log) did not start"; }
kill -0 "$ZNOLOG_PID" 2>/dev/null || { cat "$WORK/zweck-nolog.out" >&2; die "zweck (no log) did not start"; }
kill -0 "$ZH1_PID" 2>/dev/null || { cat "$WORK/zweck-h1.out" >&2; die "zweck (HTTP/1.1 upstreams) did not start"; }

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream double {
        server 127.0.0.1:$D_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$N_PORT ssl;
        ssl_certificate $CERTS/proxy.pem;
        ssl_certificate_key $CERTS/proxy.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass https://double;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $CA;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
            proxy_buffers 32 16k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
"${SRV[@]}" "$NGINX" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$WORK/nginx/stdout.log" 2>&1 &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
wait_tls "$N_PORT"
kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx/error.log" >&2; die "nginx did not start"; }

# ---------------------------------------------------------------- measurement helpers
CLK=$(getconf CLK_TCK)
pids_of() { # target -> pids whose CPU and RSS count
    case "$1" in
        direct) echo "$DOUBLE_PID" ;;
        nginx) echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
        zweck|zweck-gzip|zweck-an) echo "$ZLOG_PID" ;;
        zweck-nolog) echo "$ZNOLOG_PID" ;;
        zweck-h1) echo "$ZH1_PID" ;;
    esac
}
port_of() {
    case "$1" in
        direct) echo "$D_PORT" ;; nginx) echo "$N_PORT" ;; zweck|zweck-gzip|zweck-an) echo "$Z_PORT" ;;
        zweck-nolog) echo "$ZN_PORT" ;; zweck-h1) echo "$ZH_PORT" ;;
    esac
}
cpu_ticks() { local t=0 f p; for p in "$@"; do read -r -a f <"/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo "$t"; }
status_kb() { local t=0 v p; for p in "${@:2}"; do v=$(awk -v k="$1:" '$1==k {print $2}' "/proc/$p/status"); t=$((t + ${v:-0})); done; echo "$t"; }
reset_peak() { local p; for p in "$@"; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done; }
client_args() { # target: how a client of that target identifies (newsletter: certificate; analytics: API key)
    case "$1" in
        zweck-an) echo "-H Zweck-Api-Key:$AN_KEY" ;;
        zweck*) echo "--cert ${APP_CERT[0]} --key ${APP_CERT[1]}" ;;
    esac
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# run_oha SCENARIO TARGET MODE RATE PATH -> a line in results.tsv
run_oha() {
    local scenario=$1 target=$2 mode=$3 rate=$4 path=$5 label=$2
    local port url out pids c0 c1 extra=() rate_args=()
    port=$(port_of "$target"); url="https://127.0.0.1:$port$path"
    pids=$(pids_of "$target")
    # shellcheck disable=SC2206
    extra=($(client_args "$target") $(oha_req_args "$scenario"))
    [[ $mode == rate ]] && rate_args=(-q "$rate" --latency-correction)
    # oha sends Accept-Encoding: gzip, compress, deflate, br by default; the double and nginx
    # never compress, Zweck re-encodes governed bodies when asked: identity unless the target
    # is the explicit "zweck-gzip" variant, so every target does the same work.
    [[ $target == zweck-gzip ]] || rate_args+=(--disable-compression)
    out="$WORK/oha-$scenario-$label-$mode.json"
    # shellcheck disable=SC2086
    reset_peak $pids
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids)
    local d0 d1; d0=$(cpu_ticks "$DOUBLE_PID")
    local t0 t1 gen
    t0=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
    timeout $((DUR + 20)) "${GEN[@]}" "$OHA" --no-tui -z "${DUR}s" -c "$CONNS" "${rate_args[@]}" \
        --cacert "$CA" "${extra[@]}" --output-format json -o "$out" "$url" >/dev/null 2>&1 || true
    t1=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
    gen=$(( t1 - t0 ))   # CPU ticks of the finished children (the load generator)
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids)
    d1=$(cpu_ticks "$DOUBLE_PID")
    # shellcheck disable=SC2086
    local hwm; hwm=$(status_kb VmHWM $pids)
    python3 - "$out" "$scenario" "$label" "$mode" "$rate" "$(( c1 - c0 ))" "$CLK" "$hwm" "$gen" "$DUR" "$(( d1 - d0 ))" >>"$RESULTS" <<'EOF'
import json, sys
out, scenario, target, mode, rate, ticks, clk, hwm, gen, dur, dticks = sys.argv[1:12]
try:
    d = json.load(open(out))
except Exception:
    print("\t".join([scenario, target, mode, rate, "0", "nan", "nan", "0", "nan", "nan", hwm, "0", "0", "nan"]))
    sys.exit(0)
codes = d.get("statusCodeDistribution") or {}
ok = sum(v for k, v in codes.items() if k.startswith("2"))
total = sum(codes.values())
secs = d["summary"]["total"] or float(dur)
rps = ok / secs
cpu = int(ticks) / int(clk)
lat = d.get("latencyPercentiles") or {}
p50 = (lat.get("p50") or float("nan")) * 1000
p99 = (lat.get("p99") or float("nan")) * 1000
cpu_per_req = cpu / ok * 1e6 if ok else float("nan")
size = d["summary"].get("sizePerRequest") or 0
gen_util = int(gen) / int(clk) / secs
double_per_req = int(dticks) / int(clk) / ok * 1e6 if ok else float("nan")
print("\t".join(str(x) for x in [scenario, target, mode, rate, f"{rps:.0f}", f"{p50:.3f}", f"{p99:.3f}",
      f"{(ok / total if total else 0):.4f}", f"{cpu:.2f}", f"{cpu_per_req:.1f}", hwm, size, f"{gen_util:.2f}",
      f"{double_per_req:.1f}"]))
EOF
    tail -1 "$RESULTS" | awk -F'\t' '{printf "[load]   %-11s %-12s %-5s %6s rps  p50 %s ms  p99 %s ms  ok %s  cpu %s s\n", $1, $2, $3, $5, $6, $7, $8, $9}' >&2
}

check() { # name target path extra-curl-args... -> prints "status size"
    local name=$1 target=$2 path=$3; shift 3
    local port; port=$(port_of "$target")
    # shellcheck disable=SC2046
    curl -s -o "$WORK/check-$target.body" -w '%{http_code} %{size_download}\n' --cacert "$CA" \
        $(client_args "$target") $(curl_req_args "$name") "$@" "https://127.0.0.1:$port$path" || true
}

# ---------------------------------------------------------------- idle memory (before any traffic)
IDLE_ZWECK_KB=$(status_kb VmRSS "$ZLOG_PID")
IDLE_ZWECK_NOLOG_KB=$(status_kb VmRSS "$ZNOLOG_PID")
# shellcheck disable=SC2046
IDLE_NGINX_KB=$(status_kb VmRSS $(pids_of nginx))

# ---------------------------------------------------------------- scenarios
SOQL="SELECT+Id,FirstName,LastName,Email,Phone,MobilePhone,Birthdate,HasOptedOutOfEmail,MailingStreet,MailingCity,MailingPostalCode,MailingCountry,Title,Department+FROM+Contact"
P_PASS="/services/data/"
P_GOV="/services/data/v66.0/query?q=$SOQL+LIMIT+200"
# ~100 KB pages of the other dialects, the same contacts and about the same fields: a HubSpot
# search of 200 contacts (a list page stops at 100, ~52 KB) and 200 Dataverse contacts
HS_BODY='{"limit":200,"properties":["firstname","lastname","email","phone","mobilephone","date_of_birth","hs_email_optout","address","city","zip","country"]}'
P_HS="/crm/v3/objects/contacts/search"
DV_SELECT="contactid,firstname,lastname,fullname,emailaddress1,telephone1,mobilephone,birthdate,jobtitle,address1_line1,address1_city,address1_postalcode,address1_country,donotemail,donotbulkemail"
P_DV="/api/data/v9.2/contacts?\$select=$DV_SELECT&\$top=200"
# ~1 KB pages: the same queries for two contacts
P_GOV1="/services/data/v66.0/query?q=$SOQL+LIMIT+2"
HS1_BODY=${HS_BODY/\"limit\":200/\"limit\":2}
P_DV1="/api/data/v9.2/contacts?\$select=$DV_SELECT&\$top=2"
path_of() {
    case "$1" in
        pass) echo "$P_PASS" ;; gov) echo "$P_GOV" ;; bulk) echo "$P_BULK" ;; hs) echo "$P_HS" ;; dv) echo "$P_DV" ;;
        gov1) echo "$P_GOV1" ;; hs1) echo "$P_HS" ;; dv1) echo "$P_DV1" ;;
    esac
}
# the request a scenario sends besides its path (a JSON body has no spaces: word splitting keeps it whole)
hs_body_of() { case "$1" in hs) echo "$HS_BODY" ;; hs1) echo "$HS1_BODY" ;; esac; }
oha_req_args() { [[ $1 == hs* ]] && echo "-m POST -T application/json -d $(hs_body_of "$1")"; true; }
curl_req_args() { [[ $1 == hs* ]] && echo "-H Content-Type:application/json -d $(hs_body_of "$1")"; true; }

# The Bulk job: created through Zweck (so it knows the job's object), read by everyone.
BULK_Q='SELECT Id,FirstName,LastName,Email,Phone,MobilePhone,Birthdate,HasOptedOutOfEmail,MailingStreet,MailingCity,MailingPostalCode,MailingCountry,Title,Department FROM Contact'
JOB_BODY="{\"operation\":\"query\",\"query\":\"$BULK_Q\"}"
JOB_ID=$(curl -s --cacert "$CA" --cert "${APP_CERT[0]}" --key "${APP_CERT[1]}" -H 'Content-Type: application/json' \
    -d "$JOB_BODY" "https://127.0.0.1:$Z_PORT/services/data/v66.0/jobs/query" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("id",""))' 2>/dev/null || true)
BULK_NOTE=""
if [[ -z "$JOB_ID" ]]; then
    BULK_NOTE="job created directly at the double (Zweck refused the create)"
    JOB_ID=$(curl -s --cacert "$CA" -H 'Content-Type: application/json' -d "$JOB_BODY" \
        "https://127.0.0.1:$D_PORT/services/data/v66.0/jobs/query" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
fi
P_BULK="/services/data/v66.0/jobs/query/$JOB_ID/results?maxRecords=2000"

# the scenarios measured (ZWECK_BENCH_ONLY; all by default)
wanted() { [[ -z "${ZWECK_BENCH_ONLY:-}" || " $ZWECK_BENCH_ONLY " == *" $1 "* ]]; }
log "checking every target answers every scenario"
declare -A SIZE STATUS
# the targets each scenario is measured on (the per-dialect pages at maximum only)
targets_of() {
    case "$1" in
        pass) echo direct nginx zweck zweck-nolog zweck-h1 ;;
        gov) echo direct nginx zweck zweck-nolog zweck-an zweck-h1 ;;
        bulk) echo direct nginx zweck zweck-nolog ;;
        hs|dv|gov1|hs1|dv1) echo direct nginx zweck zweck-an ;;
    esac
}
# empty for the scenarios ZWECK_BENCH_ONLY leaves out (the report's header names them all)
for s in pass gov bulk hs dv gov1 hs1 dv1; do
    for t in $(targets_of "$s"); do SIZE[$s-$t]=""; done
done
for s in pass gov bulk hs dv gov1 hs1 dv1; do
    wanted "$s" || continue
    sp=$(path_of "$s")
    for t in $(targets_of "$s"); do
        read -r st sz < <(check "$s" "$t" "$sp")
        STATUS[$s-$t]=$st; SIZE[$s-$t]=$sz
        [[ $s == bulk && $t == zweck ]] && head -1 "$WORK/check-$t.body" >"$WORK/bulk-header-zweck.txt"
        [[ $s == bulk && $t == direct ]] && head -1 "$WORK/check-$t.body" >"$WORK/bulk-header-direct.txt"
        [[ $st == 200 ]] || log "warning: $s via $t answered $st: $(head -c 300 "$WORK/check-$t.body")"
    done
done
if ! wanted bulk; then
    BULK_STATE="not measured (ZWECK_BENCH_ONLY)"
elif [[ $BULK_GOVERNED == yes ]]; then
    if cmp -s "$WORK/bulk-header-zweck.txt" "$WORK/bulk-header-direct.txt"; then
        BULK_STATE="governed in the inventory, but Zweck returned the columns unchanged"
    else
        BULK_STATE="governed (columns filtered by the newsletter policy)"
    fi
else
    BULK_STATE="not yet governed: measured as pass-through (declared ungoverned for the bench)"
fi

warm_up() { # target path scenario: pools, caches, allocator
    # shellcheck disable=SC2046
    timeout 10 "${GEN[@]}" "$OHA" --no-tui -z 1s -c "$CONNS" --disable-compression --cacert "$CA" $(client_args "$1") \
        $(oha_req_args "${3:-}") --output-format quiet "https://127.0.0.1:$(port_of "$1")$2" >/dev/null 2>&1 || true
}
log "measuring (${DUR}s per run, $CONNS connections; $PINNING)"
for s in pass gov bulk; do
    wanted "$s" || continue
    sp=$(path_of "$s")
    for t in direct nginx zweck zweck-nolog; do
        warm_up "$t" "$sp" "$s"
        run_oha "$s" "$t" max 0 "$sp"
    done
    zmax=$(awk -F'\t' -v s="$s" '$1==s && $2=="zweck" && $3=="max" {print $5}' "$RESULTS")
    rate=$(( ${zmax:-0} / 2 ))
    [[ $rate -lt 10 ]] && rate=10
    for t in direct nginx zweck zweck-nolog; do
        run_oha "$s" "$t" rate "$rate" "$sp"
    done
    if [[ $s == gov ]]; then   # what an SDK that sends Accept-Encoding: gzip costs Zweck
        run_oha "$s" zweck-gzip max 0 "$sp"
        run_oha "$s" zweck-gzip rate "$rate" "$sp"
    fi
    if [[ $s == pass ]]; then   # the same through HTTP/1.1 upstream connections
        warm_up zweck-h1 "$sp" "$s"
        run_oha "$s" zweck-h1 max 0 "$sp"
        run_oha "$s" zweck-h1 rate "$rate" "$sp"
    fi
done

log "governed ~100 KB and ~1 KB pages of each dialect, filtering and pseudonymising purposes (at maximum)"
for s in gov hs dv gov1 hs1 dv1; do
    wanted "$s" || continue
    sp=$(path_of "$s")
    for t in $(targets_of "$s"); do
        # gov's direct, nginx, zweck and zweck-nolog rows are measured above
        [[ $s == gov && $t != zweck-an && $t != zweck-h1 ]] && continue
        warm_up "$t" "$sp" "$s"
        run_oha "$s" "$t" max 0 "$sp"
    done
done

# ---------------------------------------------------------------- a large CSV export
EXPORT_LINES=""
if [[ $EXPORT_MB -gt 0 ]]; then
    row_bytes=$(( ${SIZE[bulk-direct]:-300000} / 2000 ))
    rows=$(( EXPORT_MB * 1024 * 1024 / (row_bytes > 0 ? row_bytes : 150) ))
    [[ $rows -gt $CONTACTS ]] && rows=$CONTACTS
    P_EXPORT="/services/data/v66.0/jobs/query/$JOB_ID/results?maxRecords=$rows"
    left=$(( BUDGET_SECONDS - (SECONDS - START) - 25 ))
    log "exporting $rows rows (~${EXPORT_MB} MB of CSV from the double) through Zweck (at most ${left}s)"
    pids=$ZLOG_PID
    reset_peak "$pids"
    c0=$(cpu_ticks "$pids")
    # shellcheck disable=SC2046
    r=$("${GEN[@]}" curl -s -o /dev/null --max-time "$left" -w '%{http_code} %{size_download} %{time_total}' \
        --cacert "$CA" $(client_args zweck) "https://127.0.0.1:$Z_PORT$P_EXPORT" || true)
    c1=$(cpu_ticks "$pids")
    hwm=$(status_kb VmHWM "$pids")
    read -r code bytes secs <<<"$r"
    # rows the double sent, from the transfer log's closing record of that export
    rows_in=$(python3 -c '
import json, sys
last = None
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("route", "").endswith("/results") and e.get("direction") == "from_processor":
        last = e
a = (last or {}).get("actions", {})
print((last or {}).get("records", 0) + a.get("record_removed", 0))
' "$WORK/log/logs/transfers.jsonl" 2>/dev/null || echo 0)
    EXPORT_LINES=$(python3 -c "
import sys
code, b, s, cpu, hwm, rows, rows_in, row_bytes = sys.argv[1:9]
b = int(b or 0); s = float(s or 0); rows_in = int(rows_in); mb_in = rows_in * int(row_bytes) / 1e6
state = 'complete' if code == '200' and rows_in >= int(rows) else f'INCOMPLETE (status {code}, time limit or error)'
print(f'| zweck | {rows} | {rows_in} ({mb_in:.0f} MB in) | {b/1e6:.0f} MB | {s:.1f} s | {mb_in/s if s else 0:.1f} MB/s | {int(cpu)/$CLK:.1f} s | {int(hwm)/1024:.1f} MB | {state} |')
" "${code:-0}" "${bytes:-0}" "${secs:-0}" "$(( c1 - c0 ))" "$hwm" "$rows" "${rows_in:-0}" "$row_bytes")
fi

# ---------------------------------------------------------------- idle TLS connections
idle_conns() { # target -> $WORK/idle-$t.result: "opened rss_before_kb rss_after_kb"
    local t=$1 port pids before after fifo ready ipid
    port=$(port_of "$t"); pids=$(pids_of "$t")
    fifo="$WORK/idle-$t.fifo"; mkfifo "$fifo"
    # shellcheck disable=SC2086
    before=$(status_kb VmRSS $pids)
    # shellcheck disable=SC2046
    "${GEN[@]}" python3 "$HERE/idle_conns.py" 127.0.0.1 "$port" "$IDLE" "$CA" \
        $( [[ $t == zweck* ]] && echo "${APP_CERT[0]} ${APP_CERT[1]}" ) <"$fifo" >"$WORK/idle-$t.out" 2>&1 &
    ipid=$!; PIDS+=("$ipid")
    exec 9>"$fifo"
    for _ in $(seq 300); do grep -q ready "$WORK/idle-$t.out" 2>/dev/null && break; sleep 0.1; done
    sleep 1   # let the server finish the last handshakes (TLS 1.3: client Finished)
    # shellcheck disable=SC2086
    after=$(status_kb VmRSS $pids)
    ready=$(awk '/ready/ {print $2}' "$WORK/idle-$t.out")
    echo done >&9; exec 9>&-
    wait "$ipid" 2>/dev/null || true
    echo "${ready:-0} $before $after" >"$WORK/idle-$t.result"
}
log "holding $IDLE idle TLS connections to zweck and nginx"
idle_conns zweck; read -r Z_OPEN Z_B Z_A <"$WORK/idle-zweck.result"
sleep 1
idle_conns nginx; read -r N_OPEN N_B N_A <"$WORK/idle-nginx.result"

ELAPSED=$(( SECONDS - START ))

# ---------------------------------------------------------------- report
{
echo "# Zweck load benchmark"
echo
echo "- machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo) RAM, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- $("$ZWECK" --version 2>/dev/null || echo zweck) at $ZWECK, nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), oha $("$OHA" --version | awk '{print $2}'), policies from $POLICY_SOURCE (budgets raised)"
echo "- $PINNING; oha HTTP/1.1 keep-alive over TLS, $CONNS connections, ${DUR}s per run; 'max' = closed loop, 'rate' = open loop at 50 % of Zweck's max (same rate for every target, coordinated omission corrected)"
echo "- bodies: pass ${SIZE[pass-direct]} B (GET /services/data/), gov ${SIZE[gov-direct]} B raw / ${SIZE[gov-zweck]} B after the newsletter policy (SOQL page, 200 contacts), bulk ${SIZE[bulk-direct]} B raw / ${SIZE[bulk-zweck]} B via Zweck (CSV results, 2000 rows; $BULK_STATE${BULK_NOTE:+; $BULK_NOTE})"
echo "- per-dialect pages, raw / newsletter / analytics (pseudonyms): Salesforce ${SIZE[gov-direct]} / ${SIZE[gov-zweck]} / ${SIZE[gov-zweck-an]} B, HubSpot ${SIZE[hs-direct]} / ${SIZE[hs-zweck]} / ${SIZE[hs-zweck-an]} B (search, 200 contacts), Dataverse ${SIZE[dv-direct]} / ${SIZE[dv-zweck]} / ${SIZE[dv-zweck-an]} B (200 contacts)"
echo "- ~1 KB pages (two contacts), raw / newsletter / analytics: Salesforce ${SIZE[gov1-direct]} / ${SIZE[gov1-zweck]} / ${SIZE[gov1-zweck-an]} B, HubSpot ${SIZE[hs1-direct]} / ${SIZE[hs1-zweck]} / ${SIZE[hs1-zweck-an]} B, Dataverse ${SIZE[dv1-direct]} / ${SIZE[dv1-zweck]} / ${SIZE[dv1-zweck-an]} B"
echo "- zweck: with the transfer log; 'without log' and 'HTTP/1.1 upstreams' (protocol: http1, also without the log) are separate processes"
echo
python3 "$HERE/report.py" "$RESULTS"
echo
if [[ -n "$EXPORT_LINES" ]]; then
    echo "CSV export: one Bulk results request of ~${EXPORT_MB} MB, newsletter app through Zweck with the transfer log (peak RSS = VmHWM of the Zweck process, reset before):"
    echo
    echo "| target | rows asked | rows read from the double | bytes to the app | time | input rate | Zweck CPU | peak RSS | |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "$EXPORT_LINES"
    echo
fi
echo "Memory:"
echo
echo "| | zweck | nginx (master + worker) |"
echo "|---|---:|---:|"
awk -v z="$IDLE_ZWECK_KB" -v zn="$IDLE_ZWECK_NOLOG_KB" -v n="$IDLE_NGINX_KB" \
    'BEGIN { printf "| RSS idle (before any request) | %.1f MB (without log: %.1f MB) | %.1f MB |\n", z/1024, zn/1024, n/1024 }'
awk -v k="$IDLE" -v zo="${Z_OPEN:-0}" -v zb="$Z_B" -v za="$Z_A" -v no="${N_OPEN:-0}" -v nb="$N_B" -v na="$N_A" \
    'BEGIN { printf "| RSS per idle TLS connection (%d held; client certificate for zweck) | %.1f KB (%d opened) | %.1f KB (%d opened) |\n", k, (zo ? (za-zb)/zo : 0), zo, (no ? (na-nb)/no : 0), no }'
echo
echo "measured in ${ELAPSED}s (after the build)"
} | tee "$WORK/report.md"
