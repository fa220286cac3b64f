"""hubspot-api-client through Zweck, for every purpose the shipped config grants an app.

The generated client deserialises every response into its models and raises on a missing
required key (`client_side_validation`, on by default): a structural key dropped by a policy
fails here. The properties it returns are compared with the CRM double's own record seen through
the purpose's view (views.HS_CONTACT).
"""

from __future__ import annotations

import pytest
from hubspot.crm.contacts import (
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
    SimplePublicObjectInput,
)
from hubspot.crm.contacts.exceptions import ForbiddenException, NotFoundException

from clients import hs_for, hs_refusal
from conftest import APP_PURPOSES
from views import HS_CONTACT, check_view, expected_count

PROPS = ["firstname", "lastname", "email", "phone", "mobilephone", "fax", "date_of_birth",
         "address", "city", "state", "zip", "country", "hs_email_optout", "hs_legal_basis",
         "jobtitle", "company", "website", "lifecyclestage"]

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)


def consented(contact: dict) -> bool:
    return contact["properties"].get("hs_email_optout") == "false"


def visible(purpose: str, truth: dict[str, dict]) -> list[str]:
    """The ids a purpose may see, in the CRM's order."""
    return [i for i, c in truth.items() if purpose != "newsletter" or consented(c)]


def check(purpose: str, obj, truth: dict[str, dict], where: str) -> None:
    assert obj.id in truth, f"{where}: unknown id {obj.id}"
    t = truth[obj.id]
    assert obj.created_at is not None and obj.updated_at is not None
    assert obj.archived is False
    if purpose == "newsletter":
        assert consented(t), f"{where}: contact {obj.id} has no newsletter consent"
    check_view(HS_CONTACT[purpose], obj.properties, t["properties"], f"{where}({obj.id})")


@pytest.fixture(scope="module")
def truth(double):
    """Every contact as the CRM has it (the double asked directly)."""
    contacts = double.hs_contacts(PROPS)
    assert len(contacts) == 1000
    assert any(not consented(c) for c in contacts.values()), "consent untested"
    return contacts


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.basic_api.get_page(limit=5, properties=[…])`')
@params
def test_get_page(zweck, compat, truth, app, purpose):
    page = hs_for(zweck, app, purpose).crm.contacts.basic_api.get_page(limit=5, properties=PROPS)
    first5 = list(truth)[:5]
    assert [r.id for r in page.results] == [i for i in visible(purpose, truth) if i in first5]
    for r in page.results:
        check(purpose, r, truth, "get_page")
    nxt = page.paging.next
    assert nxt.after == list(truth)[5]
    assert nxt.link.startswith(zweck.proxy_url + "/crm/v3/objects/contacts?"), nxt.link
    compat.ok()


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.get_all(properties=[…])` (10 pages, `paging.next.after`)')
@params
def test_get_all(zweck, compat, truth, app, purpose):
    """fetch_all: 10 pages of 100 through Zweck, following paging.next.after."""
    results = hs_for(zweck, app, purpose).crm.contacts.get_all(properties=PROPS)
    assert [r.id for r in results] == visible(purpose, truth)
    for r in results:
        check(purpose, r, truth, "get_all")
    compat.ok()


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.basic_api.get_by_id(id, properties=[…])`')
@params
def test_get_by_id(zweck, compat, truth, app, purpose):
    api = hs_for(zweck, app, purpose).crm.contacts.basic_api
    for contact_id in visible(purpose, truth)[:5]:
        check(purpose, api.get_by_id(contact_id, properties=PROPS), truth, "get_by_id")
    compat.ok()


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.search_api.do_search(PublicObjectSearchRequest(…))`, 2 pages')
@params
def test_search(zweck, compat, truth, app, purpose):
    api = hs_for(zweck, app, purpose).crm.contacts.search_api
    res = api.do_search(PublicObjectSearchRequest(properties=PROPS, limit=5))
    # the CRM's count (1000), or what this page delivers to a purpose whose records are filtered
    assert res.total == expected_count(purpose, len(res.results), 1000)
    for r in res.results:
        check(purpose, r, truth, "search")
    after = res.paging.next.after
    res2 = api.do_search(PublicObjectSearchRequest(properties=PROPS, limit=5, after=after))
    assert {r.id for r in res2.results}.isdisjoint(r.id for r in res.results)
    for r in res2.results:
        check(purpose, r, truth, "search page 2")
    got = [r.id for r in [*res.results, *res2.results]]
    assert got == [i for i in visible(purpose, truth) if i in list(truth)[:10]]
    compat.ok()


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(…))`')
@params
def test_batch_read(zweck, compat, truth, app, purpose):
    ids = list(truth)[:20]
    res = hs_for(zweck, app, purpose).crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            properties=PROPS, inputs=[SimplePublicObjectId(id=i) for i in ids]
        )
    )
    assert res.status == "COMPLETE"
    assert res.started_at is not None and res.completed_at is not None
    assert sorted(r.id for r in res.results) == sorted(i for i in visible(purpose, truth)
                                                       if i in ids)
    for r in res.results:
        check(purpose, r, truth, "batch_api.read")
    compat.ok()


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.basic_api.get_by_id(id, …)` of a contact the purpose may not see', purpose="newsletter")
def test_newsletter_withheld_contact_is_not_found(zweck, compat, truth):
    opted_out = next(i for i, c in truth.items() if not consented(c))
    api = hs_for(zweck, "newsletter-tool", "newsletter").crm.contacts.basic_api
    with pytest.raises(NotFoundException) as e:
        api.get_by_id(opted_out, properties=PROPS)
    assert "urn:zweck:problem:record-withheld" in e.value.body
    compat.refused(*hs_refusal(e.value))


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.basic_api.update(id, SimplePublicObjectInput(…))`', purpose="support")
def test_support_update(zweck, compat, double, truth):
    contact_id = list(truth)[7]
    api = hs_for(zweck, "support-desk", "support").crm.contacts.basic_api
    updated = api.update(contact_id, SimplePublicObjectInput(
        properties={"phone": "+49 30 0000 0007", "mobilephone": "+49 170 0000007"}))
    now = double.hs_contact(contact_id, PROPS)
    assert now["properties"]["phone"] == "+49 30 0000 0007"
    assert now["properties"]["mobilephone"] == "+49 170 0000007"
    assert updated.id == contact_id
    assert updated.properties["phone"] == "+49 30 0000 0007"
    got = api.get_by_id(contact_id, properties=PROPS)
    check("support", got, {contact_id: now}, "get_by_id after update")
    compat.ok("written")


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.basic_api.update(id, SimplePublicObjectInput(…))`')
@pytest.mark.parametrize("app,purpose", [("newsletter-tool", "newsletter"),
                                         ("bi-export", "analytics")])
def test_write_denied_purposes_are_refused(zweck, compat, double, truth, app, purpose):
    contact_id = list(truth)[3]
    before = double.hs_contact(contact_id, PROPS)
    api = hs_for(zweck, app, purpose).crm.contacts.basic_api
    with pytest.raises(ForbiddenException) as e:
        api.update(contact_id, SimplePublicObjectInput(properties={"phone": "+49 30 9999 9999"}))
    assert double.hs_contact(contact_id, PROPS) == before
    assert hs_refusal(e.value) == (403, "write-denied")
    compat.refused(*hs_refusal(e.value))
