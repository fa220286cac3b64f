#!/usr/bin/env bash
# The SDK compatibility suite (docs/sdk-compat.md): official CRM SDKs driven through Zweck
# against its built-in CRM double. Usage: bash tests/sdk/run.sh [pytest args...]
#
#   ZWECK_BIN           the zweck binary to test; when unset, `cargo build` builds
#                       target/debug/zweck first
#   ZWECK_SDK_POLICIES  a policies/ dir to run against instead of the repository's
#   ZWECK_SDK_COMPAT    `update`: write the observed SDK tables into docs/sdk-compat.md
#                       (otherwise a complete run fails when they differ)
#   PYTHON              the interpreter for the venv (default python3, >= 3.9)
#
# Exits with pytest's status; 5 (no tests collected) counts as a failure like any non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
        || { echo "run.sh: $python is older than 3.9" >&2; exit 2; }
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

if [ -z "${ZWECK_BIN:-}" ]; then
    (cd "$repo" && cargo build --bin zweck)
    export ZWECK_BIN="$repo/target/debug/zweck"
fi

cd "$repo"
status=0
"$venv/bin/python" -m pytest -c "$here/pytest.ini" --rootdir "$here" "$here" "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "run.sh: pytest collected no tests; treating that as a failure" >&2
fi
exit "$status"
