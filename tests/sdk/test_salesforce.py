"""simple-salesforce through Zweck, for every purpose the shipped config grants an app.

Each test uses the SDK exactly as an app would (instance URL = Zweck, the app's credential) and
compares what the SDK returns with the CRM double's own record seen through the purpose's view
(views.SF_CONTACT). The SDK must raise nothing; the records must be minimised.
"""

from __future__ import annotations

import contextlib

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from clients import VERSION, sf_for, sf_refusal
from conftest import APP_PURPOSES
from views import SF_CONTACT, check_view, expected_count

FIELDS = ["Id", "FirstName", "LastName", "Email", "MobilePhone", "Birthdate", "MailingCountry",
          "HasOptedOutOfEmail"]
SELECT = f"SELECT {', '.join(FIELDS)} FROM Contact"
Q50 = f"{SELECT} LIMIT 50"
# Above the page size asked for below, so the query spans pages: 200 + 200 + 50.
Q450 = f"{SELECT} LIMIT 450"
BATCH_200 = {"Sforce-Query-Options": "batchSize=200"}
QUERY_KEYS = {"attributes", *FIELDS}

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)


class UnknownResource(Exception):
    """Zweck refused the route as unclassified (403 urn:zweck:problem:unknown-resource)."""


@contextlib.contextmanager
def unknown_resource_as_error():
    """Turns only Zweck's `unknown-resource` refusal into UnknownResource, so a strict xfail on
    it cannot hide any other failure."""
    try:
        yield
    except SalesforceRefusedRequest as e:
        content = e.content if isinstance(e.content, dict) else {}
        if content.get("type") == "urn:zweck:problem:unknown-resource":
            raise UnknownResource(f"{e.url}: {content}") from e
        raise


def consented(row: dict) -> bool:
    return row["HasOptedOutOfEmail"] is False


def check_rows(purpose: str, rows: list[dict], truth: list[dict], where: str) -> None:
    """The delivered rows are the CRM's rows (minus the ones the purpose's consent removes), in
    order, each minimised."""
    if purpose == "newsletter":
        assert any(not consented(t) for t in truth), "no opted-out contact: consent untested"
        truth = [t for t in truth if consented(t)]
    assert [r["Id"] for r in rows] == [t["Id"] for t in truth], f"{where}: record ids differ"
    for i, (row, t) in enumerate(zip(rows, truth)):
        assert row["attributes"]["type"] == "Contact"
        check_view(SF_CONTACT[purpose], row, t, f"{where}[{i}]", only=QUERY_KEYS)


def walk_pages(sf: Salesforce, first: dict, **kw) -> list[dict]:
    """Follows nextRecordsUrl with the SDK's query_more, as query_all_iter() does."""
    pages = [first]
    while not pages[-1]["done"]:
        nxt = pages[-1]["nextRecordsUrl"]
        assert nxt.startswith(f"/services/data/v{VERSION}/query/"), nxt
        pages.append(sf.query_more(nxt, identifier_is_url=True, **kw))
        assert len(pages) < 20, "pagination does not end"
    return pages


def check_paging(purpose: str, pages: list[dict], total: int) -> None:
    assert [p["done"] for p in pages] == [False] * (len(pages) - 1) + [True]
    for p in pages:
        # totalSize: the CRM's count for the whole query, or what this page delivers
        assert p["totalSize"] == expected_count(purpose, len(p["records"]), total)
        assert ("nextRecordsUrl" in p) == (not p["done"])


# --- query -----------------------------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", '`sf.restful("query", params={"q": SOQL})` (`GET …/query?q=`)')
@params
def test_query_via_restful(zweck, compat, double, app, purpose):
    """GET .../query?q= through the SDK's generic restful() (the path without trailing slash)."""
    sf = sf_for(zweck, app, purpose)
    res = sf.restful("query", params={"q": Q50})
    assert res["done"] is True and "nextRecordsUrl" not in res
    assert res["totalSize"] == expected_count(purpose, len(res["records"]), 50)
    check_rows(purpose, res["records"], double.sf_query(VERSION, Q50), "query")
    compat.ok()


@pytest.mark.sdk_call("simple-salesforce", '`sf.query(SOQL)` (`GET …/query/?q=`, trailing slash)')
@params
def test_query(zweck, compat, double, app, purpose):
    sf = sf_for(zweck, app, purpose)
    with unknown_resource_as_error():
        res = sf.query(Q50)
    assert res["done"] is True
    assert res["totalSize"] == expected_count(purpose, len(res["records"]), 50)
    check_rows(purpose, res["records"], double.sf_query(VERSION, Q50), "query")
    compat.ok()


@pytest.mark.sdk_call("simple-salesforce", '`sf.query_more(nextRecordsUrl, identifier_is_url=True)`, 3 pages with `Sforce-Query-Options: batchSize=200`')
@params
def test_query_more_across_pages(zweck, compat, double, app, purpose):
    """First page with restful(), the rest with query_more(nextRecordsUrl): 200 + 200 + 50 rows
    upstream, each page minimised, the cursor URLs kept relative and working through Zweck."""
    sf = sf_for(zweck, app, purpose)
    first = sf.restful("query", params={"q": Q450}, headers=BATCH_200)
    pages = walk_pages(sf, first, headers=BATCH_200)
    assert len(pages) == 3
    check_paging(purpose, pages, 450)
    rows = [r for p in pages for r in p["records"]]
    check_rows(purpose, rows, double.sf_query(VERSION, Q450), "query_more")
    if purpose != "newsletter":
        assert [len(p["records"]) for p in pages] == [200, 200, 50]
    compat.ok()


@pytest.mark.sdk_call("simple-salesforce", '`sf.query_more(locator)` (`GET …/query/<locator>`)')
@params
def test_query_more_by_locator(zweck, compat, app, purpose):
    """query_more() with the bare locator (the SDK builds .../query/<locator>)."""
    sf = sf_for(zweck, app, purpose)
    first = sf.restful("query", params={"q": Q450}, headers=BATCH_200)
    locator = first["nextRecordsUrl"].rsplit("/", 1)[1]
    second = sf.query_more(locator, headers=BATCH_200)
    assert second["done"] is False
    assert second["totalSize"] == expected_count(purpose, len(second["records"]), 450)
    assert {r["Id"] for r in second["records"]}.isdisjoint(r["Id"] for r in first["records"])
    compat.ok()


@pytest.mark.sdk_call("simple-salesforce", '`sf.query_all(SOQL)`')
@params
def test_query_all(zweck, compat, double, app, purpose):
    sf = sf_for(zweck, app, purpose)
    with unknown_resource_as_error():
        res = sf.query_all(Q450, headers=BATCH_200)
    assert res["done"] is True and res["totalSize"] == len(res["records"])
    check_rows(purpose, res["records"], double.sf_query(VERSION, Q450), "query_all")
    compat.ok()


# --- single records --------------------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", '`sf.Contact.get(id)`')
@params
def test_contact_get(zweck, compat, double, app, purpose):
    sf = sf_for(zweck, app, purpose)
    rows = sf.restful("query", params={"q": Q50})["records"]
    for row in rows[:5]:
        got = sf.Contact.get(row["Id"])
        check_view(SF_CONTACT[purpose], got, double.sf_contact(VERSION, row["Id"]),
                   f"Contact.get({row['Id']})")
    compat.ok()


@pytest.mark.sdk_call("simple-salesforce", '`sf.Contact.get(id)` of a contact the purpose may not see', purpose="newsletter")
def test_newsletter_withheld_contact_is_not_found(zweck, compat, double):
    """A contact without newsletter consent is withheld: the SDK raises its not-found error."""
    opted_out = next(t for t in double.sf_query(VERSION, Q50) if not consented(t))
    sf = sf_for(zweck, "newsletter-tool", "newsletter")
    with pytest.raises(SalesforceResourceNotFound) as e:
        sf.Contact.get(opted_out["Id"])
    assert e.value.content["type"] == "urn:zweck:problem:record-withheld"
    compat.refused(*sf_refusal(e.value))


# Writes (create, update, delete, upsert, each with and without a trailing slash):
# test_salesforce_records.py.


# --- ungoverned routes -----------------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", '`sf.limits()` (ungoverned, `GET …/limits/`)', purpose="analytics")
def test_limits(zweck, compat):
    sf = sf_for(zweck, "bi-export", "analytics")
    with unknown_resource_as_error():
        limits = sf.limits()
    assert "DailyApiRequests" in limits
    compat.ok()


@pytest.mark.sdk_call("simple-salesforce", '`Salesforce(session_id="placeholder")` next to a client certificate', purpose="newsletter")
def test_mtls_app_with_a_placeholder_session_id_works(zweck, compat):
    """simple-salesforce always sends `Authorization: Bearer <session_id>`. Next to a client
    certificate that identifies the app, a bearer token that is no API key carries no identity:
    Zweck ignores it (and never forwards it), so the SDK works unchanged."""
    import requests

    s = requests.Session()
    s.trust_env = False
    s.verify = zweck.ca
    s.cert = zweck.client_cert("newsletter-tool")
    sf = Salesforce(instance_url=zweck.proxy_url, session_id="placeholder", session=s,
                    version=VERSION)
    result = sf.query(Q50)
    assert result["done"] in (True, False)
    compat.ok()
