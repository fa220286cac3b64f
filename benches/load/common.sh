# Shared by benches/load.sh, benches/profile.sh and benches/syscalls.sh (sourced, not run).

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# snapshot_policies ZWECK REPO DEST -> copies policies/ to DEST (HEAD's if the working tree does
# not check) with every export budget raised out of the way: the benches measure the proxy,
# not the budget (budgets have their own tests and bench). Sets POLICY_SOURCE.
snapshot_policies() {
    local zweck=$1 repo=$2 dest=$3
    cp -r "$repo/policies" "$dest"
    POLICY_SOURCE="working tree"
    if ! "$zweck" policy check --dir "$dest" >"$dest.check.log" 2>&1; then
        printf '[bench] policies/ in the working tree do not check; using HEAD'"'"'s\n' >&2
        rm -rf "$dest"
        mkdir -p "$dest"
        (cd "$repo" && git archive HEAD policies) | tar -x -C "$dest" --strip-components=1
        POLICY_SOURCE="HEAD (working tree did not check)"
        "$zweck" policy check --dir "$dest" >"$dest.check.log" 2>&1 || { cat "$dest.check.log" >&2; return 1; }
    fi
    python3 - "$dest/purposes.yaml" <<'PY'
import re, sys
p = sys.argv[1]
text = open(p).read()
text, n = re.subn(r"(?m)^(\s*)export_budget:.*$", r"\1export_budget: { records: 100000000000, per: 1h, burst: 10000000000 }", text)
assert n > 0, "no export_budget to raise"
open(p, "w").write(text)
PY
}

# bench_zweck REPO -> sets ZWECK: $ZWECK_BIN, or this tree's release build (built first).
# The caller defines log and die.
bench_zweck() {
    local repo=$1
    if [[ -z "${ZWECK_BIN:-}" ]]; then
        log "building (cargo build --release --bin zweck)"
        (cd "$repo" && cargo build --release --bin zweck >/dev/null 2>&1) || die "build failed"
        ZWECK_BIN="$repo/target/release/zweck"
    fi
    ZWECK=$(realpath "$ZWECK_BIN")
}

# bench_oha -> sets OHA (dies without it).
bench_oha() {
    OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
    [[ -x "$OHA" ]] || die "oha is needed (cargo install oha --locked)"
}

# bench_certs ZWECK REPO WORK D_PORT -> certificates under WORK/certs for a CRM double on D_PORT
# and every run's zweck (one base config), the double's token; sets CA and CLIENT (oha's TLS
# options: the newsletter app's client certificate).
bench_certs() {
    local zweck=$1 repo=$2 work=$3 d_port=$4
    mkdir -p "$work/certs"
    python3 "$repo/benches/load/derive_config.py" "$repo/zweck.yaml" "$work" "$work/policies" "$d_port" 1 2 yes "$work/base.yaml"
    "$zweck" certs generate --config "$work/base.yaml" >/dev/null
    echo "bench-$RANDOM$RANDOM" >"$work/certs/crm-double.token"
    # Zweck refuses a credential file other users can read
    chmod 600 "$work/certs/crm-double.token"
    CA="$work/certs/ca.pem"
    CLIENT=(--cacert "$CA" --cert "$work/certs/clients/newsletter-tool.pem" --key "$work/certs/clients/newsletter-tool.key")
}

# bench_run_config REPO WORK RUN D_PORT PORT ADMIN AUDIT(yes|no) UPSTREAM(auto|http1) CFG -> the
# config of one zweck run (its own directory RUN, the certificates of bench_certs)
bench_run_config() {
    local repo=$1 work=$2 run=$3 d_port=$4 port=$5 admin=$6 audit=$7 upstream=$8 cfg=$9
    mkdir -p "$run/log/logs" "$run/log/offbox"
    [[ $upstream == auto ]] || export ZWECK_UPSTREAM_PROTOCOL=$upstream
    python3 "$repo/benches/load/derive_config.py" "$repo/zweck.yaml" "$run" "$work/policies" "$d_port" "$port" "$admin" "$audit" "$cfg"
    unset ZWECK_UPSTREAM_PROTOCOL
    # the run shares the certificates made by bench_certs
    sed -i "s|$run/certs/|$work/certs/|g" "$cfg"
}
