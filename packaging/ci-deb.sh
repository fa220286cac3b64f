#!/usr/bin/env bash
# CI for the package: build the .deb, install it with dpkg, verify the systemd unit, check
# the installed example config with the installed binary, start that binary as the `zweck`
# user (no systemd runs as PID 1 in CI, so the unit's ExecStart is run directly, with the
# same user and config) against the built-in CRM double until it answers one governed
# request, stop it with SIGTERM, then purge the package.
#
# Needs root, dpkg, systemd-analyze, setpriv (util-linux) and curl (all on Debian). Uses
# 127.0.0.1 ports 8443, 9443 and 9901 (the example config's).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
  # cargo-deb from crates.io; the version is pinned so CI builds the same tool every time.
  # --debug: a dev build of the tool (its own manifest optimises the compression crates in
  # dev builds) packs Zweck as fast as a release build (16 s of CPU either way) and installs
  # in 54 s of CPU (3 min 28 s wall on the loaded shared machine, against 4 min 55 s wall
  # for the release build there).
  cargo install --debug --locked --quiet cargo-deb --version 3.8.0
fi
# ZWECK_DEB_PROFILE: `dist` (the default) is what ships; .ci/run packs the `dev` binary that
# `cargo test` has already built (cargo-deb strips it), because a full optimised build costs
# about 10.5 minutes of CPU, over 5 minutes of CI's 2 cores, for the same package layout.
profile=${ZWECK_DEB_PROFILE:-dist}
cargo deb --profile "$profile" --quiet >/dev/null
deb=$(ls -t target/debian/zweck_*.deb | head -n 1)
echo "built $deb ($(du -h "$deb" | cut -f1)) from the $profile build"

# a leftover install from an interrupted run
dpkg --purge zweck >/dev/null 2>&1 || true
dpkg -i "$deb" >/dev/null

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  dpkg --purge zweck >/dev/null 2>&1 || true
  rm -rf "$work" /var/lib/zweck
  userdel zweck >/dev/null 2>&1 || true
}
trap cleanup EXIT

test "$(stat -c '%U:%G %a' /etc/zweck/zweck.yaml)" = "root:zweck 640"
test "$(stat -c '%U %a' /var/lib/zweck)" = "zweck 750"
systemd-analyze verify /lib/systemd/system/zweck.service
/usr/bin/zweck config check --config /etc/zweck/zweck.yaml

# setpriv execs zweck itself as the zweck user (runuser would stay as a parent, take the
# SIGTERM and exit 143 whatever zweck does), so $! is zweck and its exit code is checked
setpriv --reuid=zweck --regid=zweck --init-groups --inh-caps=-all \
  /usr/bin/zweck serve --config /etc/zweck/zweck.yaml >"$work/log" 2>&1 &
pid=$!
ready=
for _ in $(seq 1 240); do
  if curl -fsS http://127.0.0.1:9901/readyz >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then cat "$work/log"; echo "the installed zweck did not become ready" >&2; exit 1; fi

dev=/var/lib/zweck/dev
curl -fsS --cacert "$dev/ca.pem" --cert "$dev/clients/newsletter-tool.pem" \
  --key "$dev/clients/newsletter-tool.key" -D "$work/headers" -o "$work/body" \
  'https://127.0.0.1:8443/services/data/v66.0/query?q=SELECT+Id,FirstName,Email,HasOptedOutOfEmail+FROM+Contact+LIMIT+2'
grep -qi '^zweck-policy: ' "$work/headers"
grep -q '"records"' "$work/body"

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
if [ "$status" -ne 0 ]; then cat "$work/log"; echo "zweck exited $status after SIGTERM" >&2; exit 1; fi
# the example config logs JSON: the governed request has its access event
grep "\"target\":\"zweck::access\"" "$work/log" | grep -q '"route":"GET /services/data/v\*/query"'
test -s /var/lib/zweck/logs/transfers.jsonl

dpkg --purge zweck >/dev/null
test ! -e /usr/bin/zweck
test ! -e /etc/zweck/zweck.yaml
test -d /var/lib/zweck   # the transfer log outlives a purge (docs/operations.md)
echo "package: installed, verified, answered a governed request, purged"
