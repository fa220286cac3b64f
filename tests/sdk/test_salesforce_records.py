"""simple-salesforce record calls through Zweck: create, update, delete and upsert, each with
and without a trailing slash; reads by External ID; sObject Collections retrieve; sObject
basic information. For every purpose the shipped config grants an app.

Writes go through for the purposes that may write (support, billing) and land in the CRM as
sent; the others are refused with 403 `write-denied` and the CRM is unchanged. Reads compare
what the SDK returns with the CRM double's own record seen through the purpose's view.
"""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceRefusedRequest, SalesforceResourceNotFound

from clients import VERSION, sf_for, sf_refusal
from conftest import APP_PURPOSES
from views import SF_CONTACT, WRITERS, check_view

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)
# Both spellings of every write route: simple-salesforce's own (create has the slash, the
# others not) and the other one, through the same SDK.
slashes = pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])

SOBJECTS = f"/services/data/v{VERSION}/sobjects"
# Fields every writing purpose keeps (support and billing both keep names and contact data),
# so nothing is dropped from the write.
NEW = {"FirstName": "Ada", "LastName": "Quill", "Email": "ada.quill@example.com",
       "Phone": "+49 30 0000 1234"}


def contact_id(index: int) -> str:
    """The double's id of generated contact `index`."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    for _ in range(8):
        out = digits[index % 36] + out
        index //= 36
    return f"003Fict{out}AAA"


def written(truth: dict, data: dict) -> None:
    for key, value in data.items():
        assert truth[key] == value, f"{key}: the CRM has {truth[key]!r}, the app wrote {value!r}"


def refused_write(compat, e, double, before: int) -> None:
    assert sf_refusal(e.value) == (403, "write-denied")
    assert double.sf_count(VERSION) == before, "a refused write created a record"
    compat.refused(*sf_refusal(e.value))


# --- create ----------------------------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", "`sf.Contact.create({...})` (`POST …/sobjects/Contact/`)")
@params
def test_create(zweck, double, compat, app, purpose):
    """The SDK creates with a trailing slash (`…/sobjects/Contact/`)."""
    sf = sf_for(zweck, app, purpose)
    data = {**NEW, "Email": f"ada.{purpose}@example.com"}
    before = double.sf_count(VERSION)
    if purpose not in WRITERS:
        with pytest.raises(SalesforceRefusedRequest) as e:
            sf.Contact.create(data)
        return refused_write(compat, e, double, before)
    res = sf.Contact.create(data)
    assert res["success"] is True and res["errors"] == [] and res["id"].startswith("003")
    truth = double.sf_contact(VERSION, res["id"])
    written(truth, data)
    check_view(SF_CONTACT[purpose], sf.Contact.get(res["id"]), truth, "created contact")
    compat.ok("created")


@pytest.mark.sdk_call(
    "simple-salesforce",
    '`sf.restful("sobjects/Contact", method="POST", …)` (`POST …/sobjects/Contact`, no slash)',
)
@params
def test_create_without_slash(zweck, double, compat, app, purpose):
    sf = sf_for(zweck, app, purpose)
    data = {**NEW, "Email": f"ada.noslash.{purpose}@example.com"}
    before = double.sf_count(VERSION)
    if purpose not in WRITERS:
        with pytest.raises(SalesforceRefusedRequest) as e:
            sf.restful("sobjects/Contact", method="POST", json=data)
        return refused_write(compat, e, double, before)
    res = sf.restful("sobjects/Contact", method="POST", json=data)
    assert res["success"] is True
    written(double.sf_contact(VERSION, res["id"]), data)
    compat.ok("created")


# --- update ----------------------------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", "`sf.Contact.update(id, {...})` with and without a trailing slash")
@params
@slashes
def test_update(zweck, double, compat, app, purpose, slash):
    sf = sf_for(zweck, app, purpose)
    record = contact_id(11 if slash else 12)
    before = double.sf_contact(VERSION, record)
    data = {"Phone": f"+49 30 0000 {len(purpose)}{len(slash)}11"}
    if purpose not in WRITERS:
        with pytest.raises(SalesforceRefusedRequest) as e:
            sf.Contact.update(record + slash, data)
        assert double.sf_contact(VERSION, record) == before
        return compat.refused(*sf_refusal(e.value))
    assert sf.Contact.update(record + slash, data) == 204
    truth = double.sf_contact(VERSION, record)
    written(truth, data)
    check_view(SF_CONTACT[purpose], sf.Contact.get(record), truth, "updated contact")
    compat.ok("written")


# --- delete ----------------------------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", "`sf.Contact.delete(id)` with and without a trailing slash")
@params
@slashes
def test_delete(zweck, double, compat, app, purpose, slash):
    sf = sf_for(zweck, app, purpose)
    if purpose not in WRITERS:
        record = contact_id(13)
        before = double.sf_contact(VERSION, record)
        with pytest.raises(SalesforceRefusedRequest) as e:
            sf.Contact.delete(record + slash)
        assert double.sf_contact(VERSION, record) == before, "the contact is still there"
        return compat.refused(*sf_refusal(e.value))
    # a contact of its own to delete
    created = sf.Contact.create({**NEW, "Email": f"gone.{purpose}{len(slash)}@example.com"})
    record = created["id"]
    assert sf.Contact.delete(record + slash) == 204
    assert double.status(f"{SOBJECTS}/Contact/{record}") == 404
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(record)
    compat.ok("deleted")


# --- upsert and reads by External ID -----------------------------------------------------------


@pytest.mark.sdk_call(
    "simple-salesforce",
    '`sf.Contact.upsert("Ext_Id__c/<key>", {...})` (create, then update) with and without a trailing slash',
)
@params
@slashes
def test_upsert_by_external_id(zweck, double, compat, app, purpose, slash):
    sf = sf_for(zweck, app, purpose)
    key = f"ERP-NEW-{purpose}-{len(slash)}"
    before = double.sf_count(VERSION)
    if purpose not in WRITERS:
        with pytest.raises(SalesforceRefusedRequest) as e:
            sf.Contact.upsert(f"Ext_Id__c/{key}{slash}", NEW)
        return refused_write(compat, e, double, before)
    assert sf.Contact.upsert(f"Ext_Id__c/{key}{slash}", NEW) == 201
    truth = double.get(f"{SOBJECTS}/Contact/Ext_Id__c/{key}")
    written(truth, {**NEW, "Ext_Id__c": key})
    assert sf.Contact.upsert(f"Ext_Id__c/{key}{slash}", {"Phone": "+49 30 0000 9876"}) == 200
    assert double.get(f"{SOBJECTS}/Contact/Ext_Id__c/{key}")["Phone"] == "+49 30 0000 9876"
    assert double.sf_count(VERSION) == before + 1, "the second upsert updated, created nothing"
    compat.ok("created, then updated")


@pytest.mark.sdk_call("simple-salesforce", '`sf.Contact.get_by_custom_id("Ext_Id__c", key)`')
@params
def test_get_by_external_id(zweck, double, compat, app, purpose):
    sf = sf_for(zweck, app, purpose)
    # contact 3 has e-mail consent: every purpose sees it
    truth = double.get(f"{SOBJECTS}/Contact/Ext_Id__c/ERP-000003")
    assert truth["HasOptedOutOfEmail"] is False
    got = sf.Contact.get_by_custom_id("Ext_Id__c", "ERP-000003")
    check_view(SF_CONTACT[purpose], got, truth, "get_by_custom_id")
    compat.ok()


@pytest.mark.sdk_call(
    "simple-salesforce",
    '`sf.Contact.get_by_custom_id("MobilePhone", value)`: a key the purpose may not see',
)
@pytest.mark.parametrize("app,purpose", [("newsletter-tool", "newsletter"),
                                         ("bi-export", "analytics")])
def test_a_key_the_purpose_may_not_see_is_refused(zweck, double, compat, app, purpose):
    """Reading (or upserting) by a field's value tells whether a record has that value: the
    purpose must see the field unaltered, as for a query predicate."""
    phone = next(r["MobilePhone"] for r in double.sf_query(
        VERSION, "SELECT Id, MobilePhone FROM Contact LIMIT 20") if r["MobilePhone"])
    sf = sf_for(zweck, app, purpose)
    with pytest.raises(SalesforceRefusedRequest) as e:
        sf.Contact.get_by_custom_id("MobilePhone", phone)
    assert sf_refusal(e.value) == (403, "query-not-allowed")
    compat.refused(*sf_refusal(e.value))


# --- sObject Collections retrieve ------------------------------------------------------------


COLLECTION_FIELDS = ["Id", "FirstName", "LastName", "Email", "HasOptedOutOfEmail"]


def check_collection(purpose: str, got: list, ids: list[str], double, where: str) -> None:
    """One item per id asked for, in order: the purpose's view of the record, or null where
    the purpose may not see it (what Salesforce answers for an id it cannot give)."""
    assert isinstance(got, list) and len(got) == len(ids), f"{where}: {got!r}"
    for record_id, item in zip(ids, got):
        truth = double.sf_contact(VERSION, record_id)
        if purpose == "newsletter" and truth["HasOptedOutOfEmail"] is not False:
            assert item is None, f"{where}: {record_id} must be null for newsletter"
            continue
        assert item is not None and item["Id"] == record_id, f"{where}: {item!r}"
        check_view(SF_CONTACT[purpose], item, truth, f"{where}({record_id})",
                   only={"attributes", *COLLECTION_FIELDS})


@pytest.mark.sdk_call(
    "simple-salesforce",
    '`sf.restful("composite/sobjects/Contact", params={"ids": …, "fields": …})` (collections retrieve)',
)
@params
def test_collections_retrieve(zweck, double, compat, app, purpose):
    ids = [contact_id(i) for i in range(6)]
    sf = sf_for(zweck, app, purpose)
    got = sf.restful("composite/sobjects/Contact",
                     params={"ids": ",".join(ids), "fields": ",".join(COLLECTION_FIELDS)})
    check_collection(purpose, got, ids, double, "collections GET")
    compat.ok("withheld records null in place" if purpose == "newsletter" else "")


@pytest.mark.sdk_call(
    "simple-salesforce",
    '`sf.restful("composite/sobjects/Contact", method="POST", json={"ids": …})` (collections retrieve)',
)
@params
def test_collections_retrieve_by_post(zweck, double, compat, app, purpose):
    ids = [contact_id(i) for i in range(20, 26)]
    sf = sf_for(zweck, app, purpose)
    got = sf.restful("composite/sobjects/Contact", method="POST",
                     json={"ids": ids, "fields": COLLECTION_FIELDS})
    check_collection(purpose, got, ids, double, "collections POST")
    compat.ok("withheld records null in place" if purpose == "newsletter" else "")


# --- sObject basic information -----------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", "`sf.Contact.metadata()` (`GET …/sobjects/Contact/`, basic information)")
@params
def test_basic_information(zweck, double, compat, app, purpose):
    """Not metadata: `recentItems` are records (with names), governed like any read. They
    carry no consent field, so newsletter gets none; analytics gets them without names."""
    truth = double.get(f"{SOBJECTS}/Contact/")
    got = sf_for(zweck, app, purpose).Contact.metadata()
    assert got["objectDescribe"] == truth["objectDescribe"]
    if purpose == "newsletter":
        assert got["recentItems"] == []
        return compat.ok("no recent items (no consent field)")
    assert [r["Id"] for r in got["recentItems"]] == [r["Id"] for r in truth["recentItems"]]
    for item, t in zip(got["recentItems"], truth["recentItems"]):
        check_view(SF_CONTACT[purpose], item, t, "recentItems")
    compat.ok()
