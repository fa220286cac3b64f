#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable on a shared, noisy
# machine where timings are not (docs/performance.md, "Profile").
#
#   bash benches/profile.sh                 # target/release/zweck (built first)
#   ZWECK_BIN=/path/to/other/zweck bash benches/profile.sh   # an older build, for before/after
#   ZWECK_PROFILE_KEEP=1 bash benches/profile.sh             # keep the callgrind files
#   ZWECK_PROFILE_ONLY=pass bash benches/profile.sh          # only the scenarios whose name has "pass"
#   ZWECK_PROFILE_INCIDENTS=1 bash benches/profile.sh        # with incident detection on (every
#       rule, default parameters): the difference to a run without is detection's cost
#   ZWECK_PROFILE_CANDIDATE=1 bash benches/profile.sh        # with a candidate policy compared
#       (live shadow comparison: newsletter's candidate sees last names instead of first names)
#
# For each scenario Zweck runs under callgrind twice, serving N and 3N requests from oha
# (8 connections, HTTP/1.1 keep-alive, TLS, the newsletter app's client certificate) through
# to the CRM double (a separate, uninstrumented process). The difference of the two totals
# divided by 2N is the cost of one request without start-up, TLS handshakes and shutdown:
#   - pass-through: GET /services/data/ (484 B, ungoverned), the upstream on HTTP/2 (what
#     ALPN picks with the double); the same with the app on HTTP/2 (oha --http2); the same
#     with the upstream on HTTP/1.1 (`protocol: http1`; "-" for a build without the key);
#   - governed JSON: a SOQL page of 200 contacts (98 KB), newsletter policy, transfer log on;
#   - the same without the transfer log: the difference is the log's CPU cost (its fdatasync
#     waits are not instructions; load.sh measures those); and that with the upstream on
#     HTTP/1.1 (`protocol: http1`): what the upstream's protocol costs a large body;
#   - both again for a page of two contacts (985 B): what a governed exchange costs around
#     the body (identification, routing, budget, transfer records, the response head);
#   - a HubSpot search of two contacts (`POST /crm/v3/objects/contacts/search`, the ~1 KB
#     body of load.sh's hs1 rows), with and without the transfer log: beside the answer,
#     Zweck reviews and rewrites the request's JSON body and records the request direction.
# Everything on 127.0.0.1; about 4 minutes. Not part of CI (needs valgrind and oha).
# Look inside a kept file with `callgrind_annotate --inclusive=yes FILE | head -60`.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$REPO/benches/load"
# shellcheck source=benches/load/common.sh
source "$HERE/common.sh"

log() { printf '[profile] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v valgrind >/dev/null || die "valgrind is needed (Debian: apt-get install valgrind)"
command -v python3 >/dev/null || die "python3 is needed"
bench_oha
bench_zweck "$REPO"

WORK=$(mktemp -d /tmp/zweck-profile.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    if [[ "${ZWECK_PROFILE_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

snapshot_policies "$ZWECK" "$REPO" "$WORK/policies" || die "policies do not check"
if [[ "${ZWECK_PROFILE_CANDIDATE:-0}" == 1 ]]; then
    cp -r "$WORK/policies" "$WORK/candidate"
    sed -i '0,/user.name.first: keep/s//user.name.last: keep/' "$WORK/candidate/purposes.yaml"
    export ZWECK_CANDIDATE_POLICIES="$WORK/candidate"
fi
D_PORT=$(free_port)
bench_certs "$ZWECK" "$REPO" "$WORK" "$D_PORT"

"$ZWECK" crm-double --listen "127.0.0.1:$D_PORT" --certs "$WORK/certs" --contacts 100000 >"$WORK/double.log" 2>&1 &
PIDS+=($!)

# instructions N PATH AUDIT(yes|no) CLIENT(h1|h2) UPSTREAM(auto|http1) [BODY] -> total Ir of a
# `zweck serve` that answered N requests of PATH (a POST of the JSON BODY when there is one),
# or "-" when this build cannot run it
instructions() {
    local n=$1 path=$2 audit=$3 client=$4 upstream=$5 body=${6:-} port admin run cfg vpid proto=() req=()
    port=$(free_port); admin=$(free_port)
    run="$WORK/run-$n-$port"; cfg="$run.yaml"
    bench_run_config "$REPO" "$WORK" "$run" "$D_PORT" "$port" "$admin" "$audit" "$upstream" "$cfg"
    if [[ "${ZWECK_PROFILE_INCIDENTS:-0}" == 1 ]]; then
        # every detection rule on with its defaults (docs/detection.md)
        printf 'incidents:\n  export_hours: { from: 0, to: 24 }\n' >>"$cfg"
    fi
    if ! "$ZWECK" config check --config "$cfg" >"$run.check" 2>&1; then
        log "this build cannot run it: $(head -1 "$run.check")"
        echo "-"
        return
    fi
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$run.callgrind" "$ZWECK" serve --config "$cfg" \
        >"$run.log" 2>&1 &
    vpid=$!
    for _ in $(seq 240); do
        curl -s -o /dev/null --cacert "$CA" "https://127.0.0.1:$port/" && break
        kill -0 "$vpid" 2>/dev/null || die "zweck under callgrind exited: $(tail -3 "$run.log")"
        sleep 0.5
    done
    [[ $client == h2 ]] && proto=(--http2)
    [[ -n $body ]] && req=(-m POST -T application/json -d "$body")
    "$OHA" --no-tui -n "$n" -c 8 "${proto[@]}" "${req[@]}" --disable-compression "${CLIENT[@]}" --output-format quiet \
        "https://127.0.0.1:$port$path" >/dev/null 2>&1 || die "oha failed against $path"
    kill -INT "$vpid"
    wait "$vpid" || true
    awk '/^(summary|totals):/ {print $2; exit}' "$run.callgrind"
}

FIELDS="Id,FirstName,LastName,Email,Phone,MobilePhone,Birthdate,HasOptedOutOfEmail,MailingStreet,MailingCity,MailingPostalCode,MailingCountry,Title,Department"
SOQL="SELECT+$FIELDS+FROM+Contact+LIMIT+200"
SOQL1="SELECT+$FIELDS+FROM+Contact+LIMIT+2"
# load.sh's HS1_BODY: the HubSpot search of two contacts, about the same properties
HS1_BODY='{"limit":2,"properties":["firstname","lastname","email","phone","mobilephone","date_of_birth","hs_email_optout","address","city","zip","country"]}'
P_HS="/crm/v3/objects/contacts/search"
echo "# Instructions per request (callgrind), $("$ZWECK" --version 2>/dev/null || echo zweck) at $ZWECK"
echo
echo "| scenario | requests | Ir per request |"
echo "|---|---:|---:|"
for scenario in "pass-through (484 B)|/services/data/|2000|yes|h1|auto" \
    "pass-through (484 B), app on HTTP/2|/services/data/|2000|yes|h2|auto" \
    "pass-through (484 B), upstream on HTTP/1.1|/services/data/|2000|yes|h1|http1" \
    "governed JSON (98 KB)|/services/data/v66.0/query?q=$SOQL|200|yes|h1|auto" \
    "governed JSON (98 KB), no transfer log|/services/data/v66.0/query?q=$SOQL|200|no|h1|auto" \
    "governed JSON (98 KB), no transfer log, upstream on HTTP/1.1|/services/data/v66.0/query?q=$SOQL|200|no|h1|http1" \
    "governed JSON (985 B)|/services/data/v66.0/query?q=$SOQL1|500|yes|h1|auto" \
    "governed JSON (985 B), no transfer log|/services/data/v66.0/query?q=$SOQL1|500|no|h1|auto" \
    "governed HubSpot search (1,073 B)|$P_HS|500|yes|h1|auto|$HS1_BODY" \
    "governed HubSpot search (1,073 B), no transfer log|$P_HS|500|no|h1|auto|$HS1_BODY"; do
    IFS='|' read -r name path n audit client upstream body <<<"$scenario"
    if [[ -n "${ZWECK_PROFILE_ONLY:-}" && "$name" != *"$ZWECK_PROFILE_ONLY"* ]]; then continue; fi
    log "$name: $n and $((3 * n)) requests under callgrind"
    a=$(instructions "$n" "$path" "$audit" "$client" "$upstream" "$body")
    if [[ $a == - ]]; then echo "| $name | - | - (not supported by this build) |"; continue; fi
    b=$(instructions "$((3 * n))" "$path" "$audit" "$client" "$upstream" "$body")
    echo "| $name | $((2 * n)) | $(( (b - a) / (2 * n) )) |"
done
