#!/usr/bin/env python3
"""Derive the bench configs from the repository's zweck.yaml (used by benches/load.sh).

usage: derive_config.py REPO_ZWECK_YAML WORKDIR POLICIES DOUBLE_PORT ZWECK_PORT ADMIN_PORT AUDIT(yes|no) OUT

Keeps apps, upstreams and the audit section of zweck.yaml; changes only what a bench on
loopback needs: free ports, dev: true, an absolute policies path, certificates in WORKDIR,
no embedded crm_double, upstream urls (and OAuth token urls) pointing at the separately
started double, a static bearer token, and with ZWECK_UPSTREAM_PROTOCOL set, that `protocol`
on every upstream (the stand-alone double enforces no auth, so the
OAuth client-credentials flow of zweck.yaml has no client to talk to).
"""
import os
import sys

import yaml

src, work, policies, dport, zport, aport, audit, out = sys.argv[1:9]
with open(src) as f:
    cfg = yaml.safe_load(f)

old_origin = None
if "crm_double" in cfg:
    old_origin = "https://" + str(cfg["crm_double"].get("listen", "127.0.0.1:9443"))
    del cfg["crm_double"]
new_origin = f"https://127.0.0.1:{dport}"

cfg["listen"] = f"127.0.0.1:{zport}"
cfg["public_url"] = f"https://127.0.0.1:{zport}"
cfg["admin"] = f"127.0.0.1:{aport}"
cfg["dev"] = True
cfg["policies"] = policies
# a candidate policy compared on real traffic (profile.sh with ZWECK_PROFILE_CANDIDATE=1)
if os.environ.get("ZWECK_CANDIDATE_POLICIES"):
    cfg["policies"] = {"dir": policies, "candidate": os.environ["ZWECK_CANDIDATE_POLICIES"]}
cfg["certs_dir"] = f"{work}/certs/"
cfg["tls"] = {
    "cert": f"{work}/certs/proxy.pem",
    "key": f"{work}/certs/proxy.key",
    "client_ca": f"{work}/certs/ca.pem",
}
for app in cfg.get("apps", {}).values():
    for key in app.get("api_keys", []) or []:
        if "sha256_file" in key:
            key["sha256_file"] = f"{work}/certs/" + key["sha256_file"].split("certs/", 1)[-1]

for up in cfg.get("upstreams", {}).values():
    url = up.get("url", "")
    if old_origin is None or url.startswith(old_origin) or url.startswith("https://127.0.0.1"):
        up["url"] = new_origin
    up["auth"] = {"bearer_file": f"{work}/certs/crm-double.token"}
    # the protocol towards the upstream (load.sh's HTTP/1.1 variant); unset: ALPN decides
    if os.environ.get("ZWECK_UPSTREAM_PROTOCOL"):
        up["protocol"] = os.environ["ZWECK_UPSTREAM_PROTOCOL"]
    if "ca" in up:
        up["ca"] = f"{work}/certs/ca.pem"

tag = "log" if audit == "yes" else "nolog"
if audit == "yes" and "audit" in cfg:
    a = cfg["audit"]
    a["log"] = f"{work}/{tag}/logs/transfers.jsonl"
    a["signing_key"] = f"{work}/certs/audit.key"
    a["offbox"] = {"file": f"{work}/{tag}/offbox/checkpoints"}
else:
    cfg.pop("audit", None)
if "pseudonym_key_file" in cfg:
    cfg["pseudonym_key_file"] = f"{work}/certs/pseudonym.key"

with open(out, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
