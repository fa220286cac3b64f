"""Writes that would lose fields, and atomic units (issue 12, item 6), through simple-salesforce
and python-requests (Dataverse), for every purpose the shipped config grants an app.

A write that would lose a field the purpose does not write is refused (`write-fields-dropped`)
before it reaches the CRM. In a Salesforce composite with `allOrNone` and in a Dataverse change
set, one refused part refuses the unit before anything is forwarded; a part the CRM fails rolls
the unit back in the CRM. Each rollback test asserts that the CRM double committed nothing.
"""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceRefusedRequest

from clients import http_refusal, sf_refusal
from conftest import APP_PURPOSES
from test_salesforce import VERSION, sf_for

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)

WRITERS = {"support", "billing"}
SF = f"/services/data/v{VERSION}"
DV = "/api/data/v9.2"
MISSING_SF = "003FictZZZZZZZZAAA"
MISSING_DV = "6f0c1a2b-0000-4000-8000-00000000ffff"


def sf_count(double) -> int:
    return double.get(f"{SF}/query", params={"q": "SELECT COUNT() FROM Contact"})["totalSize"]


def dv_count(double) -> int:
    return double.get(f"{DV}/contacts", params={"$count": "true", "$top": "1"})["@odata.count"]


def problem(e: SalesforceRefusedRequest) -> str:
    return e.content["type"].removeprefix("urn:zweck:problem:")


def composite(sf, body: dict):
    return sf.restful("composite", method="POST", json=body)


# --- Salesforce -------------------------------------------------------------------------------


@pytest.mark.sdk_call('simple-salesforce', '`sf.restful("composite", method="POST")`, `allOrNone: true`, one part writing a field the purpose does not write (CRM unchanged)')
@params
def test_composite_all_or_none_with_a_lossy_part_is_refused_whole(zweck, double, app, purpose, compat):
    contact = double.sf_query(VERSION, "SELECT Id FROM Contact LIMIT 3")[2]["Id"]
    before = (sf_count(double), double.sf_contact(VERSION, contact))
    body = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{SF}/sobjects/Contact", "referenceId": "new",
         "body": {"LastName": "Unit-Fict", "Email": "unit.fict@example.com"}},
        {"method": "PATCH", "url": f"{SF}/sobjects/Contact/{contact}", "referenceId": "upd",
         "body": {"Email": "changed.fict@example.com", "Birthdate": "1990-04-01"}},
    ]}
    with pytest.raises(SalesforceRefusedRequest) as e:
        composite(sf_for(zweck, app, purpose), body)
    if purpose in WRITERS:
        assert problem(e.value) == "write-fields-dropped"
        assert "part 2" in e.value.content["detail"]
        assert "$.Birthdate" in e.value.content["detail"]
        assert "1990-04-01" not in str(e.value.content)
    else:
        assert problem(e.value) == "write-denied"
    assert (sf_count(double), double.sf_contact(VERSION, contact)) == before, "committed"
    compat.refused(*sf_refusal(e.value))


@pytest.mark.sdk_call('simple-salesforce', '`sf.restful("composite", method="POST")`, `allOrNone: true`, a part the CRM fails')
@pytest.mark.parametrize("app,purpose", [("support-desk", "support"),
                                         ("support-desk", "billing")])
def test_composite_all_or_none_the_crm_fails_commits_nothing(zweck, double, app, purpose, compat):
    contact = double.sf_query(VERSION, "SELECT Id FROM Contact LIMIT 4")[3]["Id"]
    before = (sf_count(double), double.sf_contact(VERSION, contact))
    body = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{SF}/sobjects/Contact", "referenceId": "new",
         "body": {"LastName": "Rolled-Fict"}},
        {"method": "PATCH", "url": f"{SF}/sobjects/Contact/{contact}", "referenceId": "upd",
         "body": {"Email": "rolled.fict@example.com"}},
        {"method": "PATCH", "url": f"{SF}/sobjects/Contact/{MISSING_SF}", "referenceId": "gone",
         "body": {"Email": "x@example.com"}},
    ]}
    res = composite(sf_for(zweck, app, purpose), body)
    statuses = [p["httpStatusCode"] for p in res["compositeResponse"]]
    assert statuses == [400, 400, 404], res
    assert res["compositeResponse"][0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert (sf_count(double), double.sf_contact(VERSION, contact)) == before, "committed"
    compat.ok("rolled back, others `PROCESSING_HALTED`")


@pytest.mark.sdk_call('simple-salesforce', '`sf.restful("composite/sobjects", method="POST")`, `allOrNone: true`, one record writing a field the purpose does not write (CRM unchanged)')
@params
def test_collection_all_or_none_with_a_lossy_record_is_refused(zweck, double, app, purpose, compat):
    before = sf_count(double)
    body = {"allOrNone": True, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "One-Fict"},
        {"attributes": {"type": "Contact"}, "LastName": "Two-Fict", "Birthdate": "1990-04-01"},
    ]}
    with pytest.raises(SalesforceRefusedRequest) as e:
        sf_for(zweck, app, purpose).restful("composite/sobjects", method="POST", json=body)
    want = "write-fields-dropped" if purpose in WRITERS else "write-denied"
    assert problem(e.value) == want
    assert sf_count(double) == before
    compat.refused(*sf_refusal(e.value))


@pytest.mark.sdk_call('simple-salesforce', '`sf.Contact.update(id, {…, "Birthdate": …})`, a field the purpose does not write (CRM unchanged)')
@params
def test_update_that_would_lose_a_field(zweck, double, app, purpose, compat):
    contact = double.sf_query(VERSION, "SELECT Id FROM Contact LIMIT 6")[5]["Id"]
    before = double.sf_contact(VERSION, contact)
    with pytest.raises(SalesforceRefusedRequest) as e:
        sf_for(zweck, app, purpose).Contact.update(
            contact, {"Email": "lossy.fict@example.com", "Birthdate": "1990-04-01"})
    want = "write-fields-dropped" if purpose in WRITERS else "write-denied"
    assert problem(e.value) == want
    assert double.sf_contact(VERSION, contact) == before
    compat.refused(*sf_refusal(e.value))


# --- Dataverse (python-requests) --------------------------------------------------------------


def change_set(*members: tuple[str, str]) -> tuple[str, bytes]:
    """A `$batch` of one change set; members are (request line, JSON body)."""
    parts = []
    for i, (line, body) in enumerate(members, 1):
        parts.append(
            "--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {i}\r\n\r\n{line} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
            f"{body}\r\n")
    text = ("--batch_fict\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n"
            + "".join(parts) + "--cs--\r\n--batch_fict--\r\n")
    return "multipart/mixed; boundary=batch_fict", text.encode()


def post_batch(zweck, raw, app, purpose, ctype: str, body: bytes):
    return raw(app, purpose).post(f"{zweck.proxy_url}{DV}/$batch", data=body,
                                  headers={"Content-Type": ctype}, timeout=30)


@pytest.mark.sdk_call('requests-dataverse', '`POST $batch`, a change set with a member writing a field the purpose does not write (nothing committed)')
@params
def test_change_set_with_a_lossy_member_is_refused_whole(zweck, double, raw, app, purpose, compat):
    before = dv_count(double)
    ctype, body = change_set(
        (f"POST {DV}/contacts", '{"lastname":"Unit-Fict","emailaddress1":"u@example.com"}'),
        ("PATCH $1", '{"birthdate":"1990-04-01"}'),
    )
    r = post_batch(zweck, raw, app, purpose, ctype, body)
    assert r.status_code == 403, r.text
    want = "write-fields-dropped" if purpose in WRITERS else "write-denied"
    assert r.json()["type"] == f"urn:zweck:problem:{want}"
    if purpose in WRITERS:
        assert "part 2" in r.json()["detail"] and "$.birthdate" in r.json()["detail"]
    assert dv_count(double) == before, "committed"
    compat.refused(*http_refusal(r))


@pytest.mark.sdk_call('requests-dataverse', '`POST $batch`, a change set whose last member the CRM fails')
@pytest.mark.parametrize("app,purpose", [("support-desk", "support"),
                                         ("support-desk", "billing")])
def test_change_set_the_crm_fails_rolls_back(zweck, double, raw, app, purpose, compat):
    before = dv_count(double)
    ctype, body = change_set(
        (f"POST {DV}/contacts", '{"lastname":"Rolled-Fict"}'),
        ("PATCH $1", '{"emailaddress1":"rolled@example.com"}'),
        (f"PATCH {DV}/contacts({MISSING_DV})", '{"emailaddress1":"x@example.com"}'),
    )
    r = post_batch(zweck, raw, app, purpose, ctype, body)
    assert r.status_code == 400, r.text
    assert "HTTP/1.1 404" in r.text and "changesetresponse" not in r.text, r.text
    assert dv_count(double) == before, "the change set was not rolled back"
    compat.ok("400, rolled back")


@pytest.mark.sdk_call('requests-dataverse', '`POST contacts` / `PATCH contacts(id)` writing a field the purpose does not write (nothing written)')
@params
def test_dataverse_create_and_update(zweck, double, raw, app, purpose, compat):
    s = raw(app, purpose)
    before = dv_count(double)
    r = s.post(f"{zweck.proxy_url}{DV}/contacts", timeout=30,
               json={"lastname": "Create-Fict", "birthdate": "1990-04-01"})
    assert r.status_code == 403, r.text
    want = "write-fields-dropped" if purpose in WRITERS else "write-denied"
    assert r.json()["type"] == f"urn:zweck:problem:{want}"
    assert dv_count(double) == before
    compat.refused(*http_refusal(r))
    if purpose not in WRITERS:
        return
    r = s.post(f"{zweck.proxy_url}{DV}/contacts", timeout=30,
               json={"lastname": f"Create-Fict-{purpose}", "emailaddress1": "c@example.com"})
    assert r.status_code == 204, r.text
    entity = r.headers["OData-EntityId"]
    assert entity.startswith(f"{zweck.proxy_url}{DV}/contacts("), entity
    assert dv_count(double) == before + 1
    guid = entity.rsplit("(", 1)[1].rstrip(")")
    r = s.patch(f"{zweck.proxy_url}{DV}/contacts({guid})", timeout=30,
                json={"emailaddress1": f"updated.{purpose}@example.com"})
    assert r.status_code == 204, r.text
    truth = double.get(f"{DV}/contacts({guid})")
    assert truth["emailaddress1"] == f"updated.{purpose}@example.com"
    r = s.patch(f"{zweck.proxy_url}{DV}/contacts({guid})", timeout=30,
                json={"emailaddress1": "lossy@example.com", "gendercode": 1})
    assert r.status_code == 403, r.text
    assert double.get(f"{DV}/contacts({guid})")["emailaddress1"] == f"updated.{purpose}@example.com"
