"""simple-salesforce metadata calls through Zweck: describeGlobal, describe and layouts.

Metadata routes (`op: metadata`) carry no customer data: every purpose gets the CRM's answer
unchanged, nothing is charged to its export budget, nothing is written to the transfer log,
and `zweck_metadata_requests_total` counts them.
"""

from __future__ import annotations

import json

import pytest
import requests

from clients import VERSION, sf_for
from conftest import APP_PURPOSES

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)
SOBJECTS = f"/services/data/v{VERSION}/sobjects"


def transfer_routes(zweck) -> set[str]:
    """The route templates the transfer log has records for."""
    log = zweck.certs.parent / "logs" / "transfers.jsonl"
    routes = set()
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if "route" in entry:
            routes.add(entry["route"])
    return routes


@pytest.mark.sdk_call("simple-salesforce", "`sf.describe()` (`GET …/sobjects`, describeGlobal)")
@params
def test_describe_global(zweck, double, compat, app, purpose):
    got = sf_for(zweck, app, purpose).describe()
    assert got == double.get(SOBJECTS)
    assert "Contact" in {o["name"] for o in got["sobjects"]}
    compat.ok("unchanged")


@pytest.mark.sdk_call("simple-salesforce", "`sf.Contact.describe()` (`GET …/sobjects/Contact/describe`)")
@params
def test_describe(zweck, double, compat, app, purpose):
    sf = sf_for(zweck, app, purpose)
    got = sf.Contact.describe()
    assert got == double.get(f"{SOBJECTS}/Contact/describe")
    # the fields of the object, not a Contact record called `describe`: nothing minimised
    assert {"Email", "Birthdate", "MobilePhone", "Ext_Id__c"} <= {f["name"] for f in got["fields"]}
    assert sf.Lead.describe() == double.get(f"{SOBJECTS}/Lead/describe")
    compat.ok("unchanged")


@pytest.mark.sdk_call("simple-salesforce", '`sf.Contact.describe_layout("012…")` (`GET …/describe/layouts/<id>`)')
@params
def test_describe_layout(zweck, double, compat, app, purpose):
    got = sf_for(zweck, app, purpose).Contact.describe_layout("012000000000000AAA")
    assert got == double.get(f"{SOBJECTS}/Contact/describe/layouts/012000000000000AAA")
    compat.ok("unchanged")


def test_metadata_is_no_transfer_and_is_counted(zweck):
    """After the metadata calls above (and here), the transfer log names no metadata route,
    and the admin metrics count them per app and purpose."""
    sf = sf_for(zweck, "newsletter-tool", "newsletter")
    sf.describe()
    sf.Contact.describe()
    sf.Contact.get(next(r["Id"] for r in sf.query("SELECT Id, HasOptedOutOfEmail FROM Contact "
                                                 "LIMIT 3")["records"]))
    routes = transfer_routes(zweck)
    assert "GET /services/data/v*/sobjects/Contact/*" in routes, "records are transfers"
    assert not any("describe" in r or r.endswith("/sobjects") for r in routes), routes
    metrics = requests.get(zweck.admin_url + "/metrics", timeout=10).text
    line = next(
        (l for l in metrics.splitlines()
         if l.startswith("zweck_metadata_requests_total{")
         and 'app="newsletter-tool"' in l and 'upstream="salesforce"' in l),
        None,
    )
    assert line is not None, "metadata requests are counted"
    assert float(line.rsplit(" ", 1)[1]) >= 2
