#!/usr/bin/env bash
# Peak memory of Zweck while a large Bulk API 2.0 CSV export streams through it.
# Goal (issue "Every body the CRMs use"): a 1 GB CSV export passes in < 64 MB RSS.
# Usage: bash benches/csv_rss.sh [ROWS]   (default 6,000,000 rows, about 1 GB from the double)
# Loopback only; stops everything it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-6000000}
cargo build -q --release --bin zweck
BIN=$PWD/target/release/zweck
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=$(free_port); A=$(free_port); D=$(free_port)
cp -r policies "$WORK/policies"
# analytics may export as much as this run needs
sed -i 's/export_budget: { records: 1000000, per: 1d, burst: 100000 }/export_budget: { records: 100000000, per: 1d, burst: 100000000 }/' "$WORK/policies/purposes.yaml"
sed -e "s/127.0.0.1:8443/127.0.0.1:$P/; s/127.0.0.1:9901/127.0.0.1:$A/; s/127.0.0.1:9443/127.0.0.1:$D/" \
    -e "s#policies: policies/#policies: $WORK/policies/#" -e "s/contacts: 1000/contacts: $ROWS/" zweck.yaml > "$WORK/zweck.yaml"
(cd "$WORK" && RUST_LOG=warn exec "$BIN" serve --config zweck.yaml) & PIDS+=($!)
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$A/readyz" >/dev/null && break; sleep 0.1; done
ZPID=$(pgrep -f "zweck serve --config zweck.yaml" | head -1)
KEY=$(cat "$WORK/certs/api-keys/bi-export.key")
CA="$WORK/certs/ca.pem"
JOB=$(curl -s --cacert "$CA" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"operation":"query","query":"SELECT Id,FirstName,LastName,Email,MobilePhone,Birthdate,MailingCity,MailingCountry,HasOptedOutOfEmail FROM Contact"}' \
  "https://127.0.0.1:$P/services/data/v66.0/jobs/query" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
idle=$(awk '/VmRSS/ {print $2}' /proc/$ZPID/status)
# what the double sends for the same page (read directly, bypassing Zweck)
DKEY=$(cat "$WORK/certs/crm-double.token")
raw=$(curl -s --cacert "$CA" -H "Authorization: Bearer $DKEY" \
  "https://127.0.0.1:$D/services/data/v66.0/jobs/query/$JOB/results?maxRecords=$ROWS" | wc -c)
start=$(date +%s.%N)
bytes=$(curl -s --cacert "$CA" -H "Authorization: Bearer $KEY" \
  "https://127.0.0.1:$P/services/data/v66.0/jobs/query/$JOB/results?maxRecords=$ROWS" | wc -c)
end=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$ZPID/status)
echo "rows requested:      $ROWS"
echo "bytes from the CRM:   $raw"
echo "bytes to the client: $bytes (filtered: analytics purpose)"
echo "seconds:             $(python3 -c "print(round($end-$start,1))")"
echo "zweck RSS idle:      $((idle/1024)) MiB"
echo "zweck peak RSS:      $((hwm/1024)) MiB (VmHWM, includes the embedded CRM double)"
