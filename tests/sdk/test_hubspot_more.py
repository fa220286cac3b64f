"""hubspot-api-client through Zweck, beyond the basic object calls: property definitions and
schemas (metadata: passed unchanged), associations on a record, and batch reads keyed by a
unique property (a lookup by e-mail tests the e-mail like a query predicate).
"""

from __future__ import annotations

import pytest
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, SimplePublicObjectId
from hubspot.crm.contacts.exceptions import ForbiddenException

from clients import hs_for, hs_refusal
from conftest import APP_PURPOSES
from views import HS_CONTACT, check_view

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)
PROPS = ["firstname", "lastname", "email", "hs_email_optout", "country"]


def consented(contact: dict) -> bool:
    return contact["properties"].get("hs_email_optout") == "false"


@pytest.fixture(scope="module")
def contacts(double):
    """The first contacts as the CRM has them, with their company associations."""
    out = {}
    for i in range(12):
        cid = str(51_000_001 + i)
        out[cid] = double.get(f"/crm/v3/objects/contacts/{cid}",
                              params={"properties": ",".join(PROPS),
                                      "associations": "companies"})
    return out


@pytest.mark.sdk_call("hubspot-api-client", '`crm.properties.core_api.get_all("contacts")`')
@params
def test_properties(zweck, double, compat, app, purpose):
    api = hs_for(zweck, app, purpose).crm.properties.core_api
    got = api.get_all("contacts")
    truth = double.get("/crm/v3/properties/contacts")["results"]
    assert [p.name for p in got.results] == [p["name"] for p in truth]
    for p, t in zip(got.results, truth):
        assert (p.label, p.type, p.field_type, p.group_name) == (
            t["label"], t["type"], t["fieldType"], t["groupName"])
        assert [o.value for o in p.options] == [o["value"] for o in t["options"]]
    one = api.get_by_name("companies", "domain")
    assert one.name == "domain" and one.type == "string"
    compat.ok("unchanged")


@pytest.mark.sdk_call("hubspot-api-client", "`crm.schemas.core_api.get_all()` (`/crm-object-schemas/v3/schemas`)")
@params
def test_schemas(zweck, double, compat, app, purpose):
    got = hs_for(zweck, app, purpose).crm.schemas.core_api.get_all()
    crm = double.get("/crm/v3/schemas")["results"]
    assert [s.object_type_id for s in got.results] == [s["objectTypeId"] for s in crm]
    assert [len(s.properties) for s in got.results] == [len(s["properties"]) for s in crm]
    compat.ok("unchanged (the custom object's schema with its properties)")


@pytest.mark.sdk_call(
    "hubspot-api-client",
    '`crm.contacts.basic_api.get_by_id(id, properties=[…], associations=["companies"])`',
)
@params
def test_associations(zweck, compat, contacts, app, purpose):
    """Associations are ids and labels (`system`): every purpose that sees the contact gets
    them as the CRM has them."""
    api = hs_for(zweck, app, purpose).crm.contacts.basic_api
    seen = 0
    for cid, truth in contacts.items():
        if purpose == "newsletter" and not consented(truth):
            continue
        got = api.get_by_id(cid, properties=PROPS, associations=["companies"])
        check_view(HS_CONTACT[purpose], got.properties, truth["properties"], f"contact {cid}")
        want = truth.get("associations", {}).get("companies", {}).get("results", [])
        have = got.associations["companies"].results if got.associations else []
        assert [(a.id, a.type) for a in have] == [(a["id"], a["type"]) for a in want]
        seen += bool(want)
    assert seen > 0, "no contact had a company: associations untested"
    compat.ok()


@pytest.mark.sdk_call(
    "hubspot-api-client",
    '`crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(id_property="email", …))`',
)
@params
def test_batch_read_by_email(zweck, compat, contacts, app, purpose):
    """Looking contacts up by e-mail tests the e-mail: a purpose that sees it only
    pseudonymised (analytics) may not, the others may."""
    emails = {truth["properties"]["email"]: cid for cid, truth in contacts.items()}
    api = hs_for(zweck, app, purpose).crm.contacts.batch_api
    request = BatchReadInputSimplePublicObjectId(
        id_property="email", properties=PROPS,
        inputs=[SimplePublicObjectId(id=e) for e in emails])
    if purpose == "analytics":
        with pytest.raises(ForbiddenException) as e:
            api.read(request)
        assert hs_refusal(e.value) == (403, "query-not-allowed")
        return compat.refused(*hs_refusal(e.value))
    res = api.read(request)
    want = sorted(cid for cid, t in contacts.items()
                  if purpose != "newsletter" or consented(t))
    assert sorted(r.id for r in res.results) == want
    for r in res.results:
        check_view(HS_CONTACT[purpose], r.properties, contacts[r.id]["properties"],
                   f"batch read {r.id}")
    compat.ok()
