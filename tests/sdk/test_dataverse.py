"""Dataverse Web API v9.2 through Zweck, driven with python-requests the way apps do (there is
no official Python SDK): lists with paging and `$count`, single reads, create and update with
and without a trailing slash, and metadata (`EntityDefinitions`, `$metadata`).

Values are compared with the CRM double's own record through the purpose's view
(views.DV_CONTACT); writes go through for support and billing, with `OData-EntityId` naming
the new record at Zweck's address; metadata passes unchanged.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from clients import http_refusal
from conftest import APP_PURPOSES, http_session
from views import DV_CONTACT, WRITERS, check_view, expected_count

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)
slashes = pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])
ROOT = "/api/data/v9.2"
SELECT = ("firstname,lastname,fullname,emailaddress1,telephone1,mobilephone,birthdate,"
          "jobtitle,address1_line1,address1_city,address1_postalcode,address1_country,"
          "donotemail,donotbulkemail")
GUID = re.compile(r"contacts\(([0-9a-f-]{36})\)$")


@pytest.fixture(scope="module")
def dv(zweck):
    """A requests session per (app, purpose), as a Dataverse app holds one."""
    cache: dict[tuple[str, str], requests.Session] = {}

    def get(app: str, purpose: str) -> requests.Session:
        if (app, purpose) not in cache:
            s = http_session(zweck, app, purpose)
            if zweck.uses_api_key(app):
                s.headers["Authorization"] = f"Bearer {zweck.api_key}"
            s.headers.update({"OData-MaxVersion": "4.0", "OData-Version": "4.0",
                              "Accept": "application/json"})
            cache[(app, purpose)] = s
        return cache[(app, purpose)]

    yield get
    for s in cache.values():
        s.close()


def consented(row: dict) -> bool:
    return row["donotbulkemail"] is False


def check_rows(purpose: str, rows: list[dict], truth: list[dict], where: str) -> None:
    if purpose == "newsletter":
        truth = [t for t in truth if consented(t)]
    assert [r["contactid"] for r in rows] == [t["contactid"] for t in truth], where
    by_id = {t["contactid"]: t for t in truth}
    for r in rows:
        check_view(DV_CONTACT[purpose], r, by_id[r["contactid"]], f"{where}({r['contactid']})",
                   only={"@odata.etag", "contactid", *SELECT.split(",")})


@pytest.mark.sdk_call(
    "requests-dataverse",
    "`GET contacts?$select=…&$count=true` with `Prefer: odata.maxpagesize=25`, 2 pages by `@odata.nextLink`",
)
@params
def test_list_two_pages(zweck, double, dv, compat, app, purpose):
    s = dv(app, purpose)
    query = {"$select": SELECT, "$count": "true"}
    r = s.get(zweck.proxy_url + f"{ROOT}/contacts", params=query,
              headers={"Prefer": "odata.maxpagesize=25"}, timeout=30)
    assert r.status_code == 200, r.text
    first = r.json()
    nxt = first["@odata.nextLink"]
    assert nxt.startswith(zweck.proxy_url + ROOT), "the next link points at Zweck"
    r = s.get(nxt, headers={"Prefer": "odata.maxpagesize=25"}, timeout=30)
    assert r.status_code == 200, r.text
    second = r.json()
    truth = double.get(f"{ROOT}/contacts", params={**query, "$top": "50"})
    # the CRM's count of all contacts, or what the page delivers
    delivered = len(first["value"])
    assert first["@odata.count"] == expected_count(purpose, delivered, truth["@odata.count"])
    check_rows(purpose, first["value"] + second["value"], truth["value"], "contacts")
    compat.ok()


@pytest.mark.sdk_call("requests-dataverse", "`GET contacts(<id>)` with and without a trailing slash")
@params
@slashes
def test_get(zweck, double, dv, compat, app, purpose, slash):
    s = dv(app, purpose)
    rows = double.dv_contacts({"$select": "contactid,donotbulkemail", "$top": "12"})
    visible = [t for t in rows if purpose != "newsletter" or consented(t)][:3]
    for t in visible:
        cid = t["contactid"]
        r = s.get(zweck.proxy_url + f"{ROOT}/contacts({cid}){slash}", timeout=30)
        assert r.status_code == 200, r.text
        got = r.json()
        got.pop("@odata.context")
        check_view(DV_CONTACT[purpose], got, double.dv_contact(cid), f"contacts({cid})")
    withheld = next((t for t in rows if not consented(t)), None)
    if purpose == "newsletter" and withheld:
        r = s.get(zweck.proxy_url + f"{ROOT}/contacts({withheld['contactid']}){slash}", timeout=30)
        assert http_refusal(r) == (404, "record-withheld")
    compat.ok()


@pytest.mark.sdk_call("requests-dataverse", "`POST contacts` with and without a trailing slash")
@params
@slashes
def test_create(zweck, double, dv, compat, app, purpose, slash):
    s = dv(app, purpose)
    data = {"firstname": "Ada", "lastname": f"Quill-{purpose}",
            "emailaddress1": f"ada.{purpose}{len(slash)}@example.com"}
    r = s.post(zweck.proxy_url + f"{ROOT}/contacts{slash}", json=data, timeout=30)
    if purpose not in WRITERS:
        assert http_refusal(r) == (403, "write-denied")
        return compat.refused(*http_refusal(r))
    assert r.status_code == 204, r.text
    entity = r.headers["OData-EntityId"]
    assert entity.startswith(zweck.proxy_url + ROOT), "the new record at Zweck's address"
    cid = GUID.search(entity).group(1)
    truth = double.dv_contact(cid)
    for k, v in data.items():
        assert truth[k] == v
    compat.ok("created, `OData-EntityId` at Zweck")


@pytest.mark.sdk_call("requests-dataverse", "`PATCH contacts(<id>)` with and without a trailing slash")
@params
@slashes
def test_update(zweck, double, dv, compat, app, purpose, slash):
    s = dv(app, purpose)
    cid = double.dv_contacts({"$select": "contactid", "$top": "30"})[20 + len(slash)]["contactid"]
    before = double.dv_contact(cid)
    data = {"telephone1": f"+49 30 0000 20{len(slash)}{len(purpose)}"}
    r = s.patch(zweck.proxy_url + f"{ROOT}/contacts({cid}){slash}", json=data, timeout=30)
    if purpose not in WRITERS:
        assert http_refusal(r) == (403, "write-denied")
        assert double.dv_contact(cid) == before
        return compat.refused(*http_refusal(r))
    assert r.status_code == 204, r.text
    assert double.dv_contact(cid)["telephone1"] == data["telephone1"]
    compat.ok("written")


@pytest.mark.sdk_call(
    "requests-dataverse",
    "`PATCH contacts(<id>)` with `Prefer: return=representation` (the record, `Preference-Applied`)",
)
@pytest.mark.parametrize("app,purpose", [("support-desk", "support"),
                                         ("support-desk", "billing")])
def test_update_with_representation(zweck, double, dv, compat, app, purpose):
    s = dv(app, purpose)
    cid = double.dv_contacts({"$select": "contactid", "$top": "30"})[25]["contactid"]
    r = s.patch(zweck.proxy_url + f"{ROOT}/contacts({cid})",
                json={"telephone1": "+49 30 0000 2525"},
                headers={"Prefer": "return=representation"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Preference-Applied"] == "return=representation"
    got = r.json()
    got.pop("@odata.context")
    check_view(DV_CONTACT[purpose], got, double.dv_contact(cid), "representation")
    compat.ok("the record through the view")


def same_but_links(got: str, truth: str, zweck) -> None:
    """The same document once the CRM's own address in links is Zweck's."""
    assert json.loads(got) == json.loads(truth.replace(zweck.double_url, zweck.proxy_url))


@pytest.mark.sdk_call(
    "requests-dataverse",
    "`GET EntityDefinitions(LogicalName='contact')?$expand=Attributes(…)` and `…/Attributes`",
)
@params
def test_entity_definitions(zweck, double, dv, compat, app, purpose):
    s = dv(app, purpose)
    for path, query in (
        (f"{ROOT}/EntityDefinitions(LogicalName='contact')",
         {"$select": "LogicalName,EntitySetName",
          "$expand": "Attributes($select=LogicalName,AttributeType)"}),
        (f"{ROOT}/EntityDefinitions(LogicalName='contact')/Attributes", {}),
        (f"{ROOT}/EntityDefinitions", {"$select": "LogicalName,EntitySetName"}),
    ):
        r = s.get(zweck.proxy_url + path, params=query, timeout=30)
        assert r.status_code == 200, r.text
        truth = double.s.get(double.base + path, params=query, timeout=30)
        same_but_links(r.text, truth.text, zweck)
    compat.ok("unchanged")


@pytest.mark.sdk_call("requests-dataverse", "`GET $metadata` (CSDL)")
@params
def test_csdl(zweck, double, dv, compat, app, purpose):
    r = dv(app, purpose).get(zweck.proxy_url + f"{ROOT}/$metadata", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/xml"
    assert r.text == double.get_text(f"{ROOT}/$metadata")
    assert '<EntitySet Name="contacts"' in r.text
    compat.ok("unchanged")
