#!/usr/bin/env bash
# Reload time and memory with many API keys: starts `zweck serve` (the dist build) on the
# shipped dev config with N extra apps of one API key each, then runs `zweck reload` R times
# and reports the reload time Zweck measured itself, the wall time of the command and the
# resident memory before and after. N=0 is the baseline. Loopback only; stops by itself.
#
#   bash benches/reload_keys.sh [N=10000] [R=5]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
rounds=${2:-5}
cargo build --profile dist --quiet
bin=$PWD/target/dist/zweck

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

measure() {
  local keys=$1 dir
  dir=$(mktemp -d)
  local p a d
  p=$(free_port); a=$(free_port); d=$(free_port)
  sed -e "s/127.0.0.1:8443/127.0.0.1:$p/g" -e "s/127.0.0.1:9901/127.0.0.1:$a/" \
      -e "s/127.0.0.1:9443/127.0.0.1:$d/g" -e "s#policies: policies/#policies: $PWD/policies#" \
      zweck.yaml >"$dir/zweck.yaml"
  python3 - "$dir/zweck.yaml" "$keys" <<'PY'
import hashlib, sys
path, n = sys.argv[1], int(sys.argv[2])
text = open(path).read()
apps = "".join(
    f"  load-app-{i}:\n    api_keys: [{{ sha256: \"{hashlib.sha256(f'zk_load_{i}'.encode()).hexdigest()}\" }}]\n    purposes: [analytics]\n"
    for i in range(n))
text = text.replace("\nupstreams:\n", "\n" + apps + "\nupstreams:\n", 1) if n else text
open(path, "w").write(text)
PY
  RUST_LOG=warn "$bin" serve --config "$dir/zweck.yaml" >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$a/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local before after took wall total_took=0 total_wall=0 t0 t1
  before=$(rss_kib "$pid")
  for _ in $(seq 1 "$rounds"); do
    t0=$(date +%s%N)
    took=$("$bin" reload --config "$dir/zweck.yaml" | sed -E 's/.* in ([0-9]+) ms/\1/')
    t1=$(date +%s%N)
    wall=$(( (t1 - t0) / 1000000 ))
    total_took=$((total_took + took)); total_wall=$((total_wall + wall))
  done
  after=$(rss_kib "$pid")
  kill -TERM "$pid"; wait "$pid" || true
  printf '| %6d | %8d | %8d | %9.1f | %9.1f |\n' "$keys" "$((total_took / rounds))" \
    "$((total_wall / rounds))" "$(echo "$before / 1024" | bc -l)" "$(echo "$after / 1024" | bc -l)"
  rm -rf "$dir"
}

echo "| API keys | reload (ms, Zweck's own) | zweck reload (ms, wall) | RSS before (MiB) | RSS after $rounds reloads (MiB) |"
echo "|---:|---:|---:|---:|---:|"
measure 0
measure "$n"
