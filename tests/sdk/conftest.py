"""Session fixture: one `zweck serve` in front of its built-in CRM double, on free loopback ports.

Nothing is built here. The binary comes from `ZWECK_BIN` (default `target/debug/zweck` under the
repository root; `tests/sdk/run.sh` builds it when the variable is unset). The config is the
shipped `zweck.yaml` with three addresses replaced and `policies:` pointed at the repository's
`policies/`; `dev: true` stays, so certificates, keys and the API key are generated into the
temporary directory on start.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import signal
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

# The SDK compatibility table of docs/sdk-compat.md, built from what the tests observe.
pytest_plugins = ["compat"]

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 45.0  # above the default limits.shutdown_grace (30 s)

# What the shipped zweck.yaml binds to; each must occur in it, or the derivation is stale.
SHIPPED_PROXY = "127.0.0.1:8443"
SHIPPED_DOUBLE = "127.0.0.1:9443"
SHIPPED_ADMIN = "127.0.0.1:9901"

# app -> the purposes the shipped config grants it (zweck.yaml `apps:`).
GRANTS = {
    "newsletter-tool": ["newsletter"],
    "support-desk": ["support", "billing"],
    "bi-export": ["analytics"],
}
# Every (app, purpose) pair the shipped config allows: the matrix the SDK tests run over.
APP_PURPOSES = [(app, p) for app, ps in GRANTS.items() for p in ps]


@dataclasses.dataclass(frozen=True)
class Zweck:
    """A running Zweck: where it listens and the generated credentials of the demo apps."""

    proxy_url: str
    admin_url: str
    double_url: str
    certs: Path
    log: Path
    proc: subprocess.Popen

    @property
    def ca(self) -> str:
        return str(self.certs / "ca.pem")

    @property
    def api_key(self) -> str:
        return (self.certs / "api-keys" / "bi-export.key").read_text().strip()

    def client_cert(self, app: str) -> tuple[str, str]:
        return (
            str(self.certs / "clients" / f"{app}.pem"),
            str(self.certs / "clients" / f"{app}.key"),
        )

    def uses_api_key(self, app: str) -> bool:
        return app == "bi-export"

    def purpose_header(self, app: str, purpose: str) -> dict[str, str]:
        """`Zweck-Purpose` only where the app has a choice; otherwise the purpose is implied."""
        return {"Zweck-Purpose": purpose} if len(GRANTS[app]) > 1 else {}

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


def _zweck_bin() -> Path:
    raw = os.environ.get("ZWECK_BIN") or "target/debug/zweck"
    path = Path(raw)
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"zweck binary not found at {path}: run `cargo build` or set ZWECK_BIN",
            pytrace=False,
        )
    return path


def _policies_dir(workdir: Path) -> Path:
    """A copy of the shipped policies/ (or of ZWECK_SDK_POLICIES, to try an inventory fix before
    it lands) whose export budgets are raised out of the way: this suite proves that the
    minimised views are valid API responses, and reads far more than a real app would in an
    hour. Budgets have their own tests (tests/budget_*.rs)."""
    raw = os.environ.get("ZWECK_SDK_POLICIES")
    source = Path(raw).resolve() if raw else REPO / "policies"
    target = workdir / "policies"
    shutil.copytree(source, target)
    purposes = target / "purposes.yaml"
    text, n = re.subn(
        r"(?m)^(\s*)export_budget:.*$",
        r"\1export_budget: { records: 100000000, per: 1h, burst: 10000000 }",
        purposes.read_text(),
    )
    assert n > 0, "purposes.yaml has no export_budget to raise"
    purposes.write_text(text)
    return target


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def derive_config(shipped: str, proxy: int, double: int, admin: int, policies: Path) -> str:
    """The shipped zweck.yaml with its addresses and policies dir replaced (text-level, so the
    comments and every other key stay exactly as shipped)."""
    for addr in (SHIPPED_PROXY, SHIPPED_DOUBLE, SHIPPED_ADMIN):
        assert addr in shipped, f"shipped zweck.yaml no longer mentions {addr}; update conftest"
    text = (
        shipped.replace(SHIPPED_PROXY, f"127.0.0.1:{proxy}")
        .replace(SHIPPED_DOUBLE, f"127.0.0.1:{double}")
        .replace(SHIPPED_ADMIN, f"127.0.0.1:{admin}")
    )
    text, n = re.subn(r"(?m)^policies:.*$", f"policies: {policies}/", text)
    assert n == 1, "shipped zweck.yaml has no top-level `policies:` line"
    assert re.search(r"(?m)^dev: true\s*$", text), "shipped zweck.yaml is not dev: true"
    return text


def _ready(admin_port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=2)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@pytest.fixture(scope="session")
def zweck(tmp_path_factory: pytest.TempPathFactory):
    binary = _zweck_bin()
    workdir = tmp_path_factory.mktemp("zweck")
    proxy, double, admin = _free_ports(3)
    config = workdir / "zweck.yaml"
    config.write_text(
        derive_config(
            (REPO / "zweck.yaml").read_text(), proxy, double, admin, _policies_dir(workdir)
        )
    )
    log = workdir / "zweck.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWECK_")}
    env.setdefault("RUST_LOG", "info")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(config)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    z = Zweck(
        proxy_url=f"https://127.0.0.1:{proxy}",
        admin_url=f"http://127.0.0.1:{admin}",
        double_url=f"https://127.0.0.1:{double}",
        certs=workdir / "certs",
        log=log,
        proc=proc,
    )
    started = False
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _ready(admin):
            if proc.poll() is not None:
                pytest.fail(
                    f"zweck exited with {proc.returncode} before ready:\n{z.log_tail()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"zweck not ready within {READY_TIMEOUT:.0f}s:\n{z.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.2)
        started = True
        yield z
    finally:
        # Always stopped, also when the start or a test failed.
        died = proc.poll()
        if died is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"zweck ignored SIGTERM for {STOP_TIMEOUT:.0f}s:\n{z.log_tail()}")
            assert proc.returncode == 0, (
                f"zweck exited with {proc.returncode} on SIGTERM:\n{z.log_tail()}"
            )
        elif started:
            pytest.fail(f"zweck exited by itself with {died} during the run:\n{z.log_tail()}")


# ---------------------------------------------------------------------------------------------
# HTTP sessions for the SDKs


def http_session(z: Zweck, app: str, purpose: str) -> requests.Session:
    s = requests.Session()
    # trust_env off: REQUESTS_CA_BUNDLE would otherwise override `verify`, and proxies from
    # the environment must never see loopback traffic.
    s.trust_env = False
    s.verify = z.ca
    if not z.uses_api_key(app):
        s.cert = z.client_cert(app)
    s.headers.update(z.purpose_header(app, purpose))
    return s


@pytest.fixture(scope="session")
def raw(zweck):
    """A plain requests session per (app, purpose), for cross-checks outside the SDKs."""
    cache: dict[tuple[str, str], requests.Session] = {}

    def get(app: str, purpose: str) -> requests.Session:
        if (app, purpose) not in cache:
            s = http_session(zweck, app, purpose)
            if zweck.uses_api_key(app):
                s.headers["Authorization"] = f"Bearer {zweck.api_key}"
            cache[(app, purpose)] = s
        return cache[(app, purpose)]

    yield get
    for s in cache.values():
        s.close()


@pytest.fixture(scope="session")
def double(zweck):
    """The CRM double asked directly, as ground truth for what Zweck minimised."""
    from crm import Double

    d = Double(zweck)
    yield d
    d.s.close()
