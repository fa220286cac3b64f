# Shared by benches/load.sh and benches/profile.sh (sourced, not run).

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
