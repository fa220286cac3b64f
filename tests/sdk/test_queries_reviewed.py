"""Queries Zweck reviews before it forwards them (issue 12, items 8 and 9), through the SDKs,
for every purpose the shipped config grants an app.

- A newsletter query that does not select the consent field (`HasOptedOutOfEmail`,
  `hs_email_optout`, `donotbulkemail`) returns exactly the records with consent: Zweck adds the
  field to the query it forwards and takes it out of the answer. Other purposes get the records
  as the CRM sends them, without the field either.
- Aggregate SOQL and Dataverse `$apply` pass with their columns for purposes that see the
  aggregated fields unaltered and remove no records; the newsletter purpose (consent) is
  refused (`aggregate-not-allowed`).
"""

from __future__ import annotations

import pytest
from hubspot.crm.contacts.exceptions import ForbiddenException
from simple_salesforce.exceptions import SalesforceRefusedRequest

from clients import http_refusal, sf_refusal
from conftest import APP_PURPOSES
from test_hubspot import hs_for
from test_salesforce import VERSION, sf_for

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)

NO_CONSENT_FIELD = "SELECT Id, FirstName, Email FROM Contact LIMIT 50"
AGGREGATE = "SELECT COUNT(Id) n, MailingCountry FROM Contact GROUP BY MailingCountry"
DV = "/api/data/v9.2"


def problem_type(e: Exception) -> str:
    content = getattr(e, "content", None)
    if isinstance(content, dict):
        return content.get("type", "")
    body = getattr(e, "body", None) or ""
    return body


# --- consent fields ---------------------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", '`sf.query("SELECT Id, FirstName, Email FROM Contact LIMIT 50")` without the consent field (Zweck adds `HasOptedOutOfEmail`, then removes it)')
@params
def test_salesforce_query_without_the_consent_field(zweck, double, app, purpose, compat):
    sf = sf_for(zweck, app, purpose)
    res = sf.query(NO_CONSENT_FIELD)
    truth = double.sf_query(VERSION, f"SELECT Id, HasOptedOutOfEmail FROM Contact LIMIT 50")
    want = [t["Id"] for t in truth if purpose != "newsletter" or t["HasOptedOutOfEmail"] is False]
    assert [r["Id"] for r in res["records"]] == want
    if purpose == "newsletter":
        assert 0 < len(want) < 50, "the fixture needs contacts with and without consent"
    for r in res["records"]:
        assert "HasOptedOutOfEmail" not in r, r
    compat.ok("consented only" if purpose == "newsletter" else "")


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.basic_api.get_page(limit=50)` naming no properties (Zweck names the default set and `hs_email_optout`, then removes it)')
@params
def test_hubspot_list_without_properties(zweck, double, app, purpose, compat):
    """get_page() names no properties: HubSpot's default set comes back (what the purpose may
    see of it), for newsletter only the contacts with e-mail consent."""
    client = hs_for(zweck, app, purpose)
    page = client.crm.contacts.basic_api.get_page(limit=50)
    truth = double.get("/crm/v3/objects/contacts",
                       params={"limit": 50, "properties": "hs_email_optout"})["results"]
    want = [t["id"] for t in truth
            if purpose != "newsletter" or t["properties"]["hs_email_optout"] == "false"]
    assert [c.id for c in page.results] == want
    for c in page.results:
        assert "hs_email_optout" not in c.properties, c.properties
        assert set(c.properties) <= {"createdate", "email", "firstname", "hs_object_id",
                                     "lastmodifieddate", "lastname"}, c.properties
    compat.ok("consented only" if purpose == "newsletter" else "")


@pytest.mark.sdk_call("requests-dataverse", '`GET contacts?$select=firstname,emailaddress1&$top=50` (Zweck adds `donotbulkemail`, then removes it)')
@params
def test_dataverse_select_without_the_consent_column(zweck, double, raw, app, purpose, compat):
    s = raw(app, purpose)
    r = s.get(f"{zweck.proxy_url}{DV}/contacts",
              params={"$select": "firstname,emailaddress1", "$top": "50"}, timeout=30)
    assert r.status_code == 200, r.text
    truth = double.get(f"{DV}/contacts", params={"$select": "donotbulkemail", "$top": "50"})
    want = [t["contactid"] for t in truth["value"]
            if purpose != "newsletter" or t["donotbulkemail"] is False]
    got = r.json()["value"]
    assert [c["contactid"] for c in got] == want
    assert all("donotbulkemail" not in c for c in got)
    compat.ok("consented only" if purpose == "newsletter" else "")


# --- aggregates -------------------------------------------------------------------------------


@pytest.mark.sdk_call("simple-salesforce", '`sf.query("SELECT COUNT(Id) n, MailingCountry FROM Contact GROUP BY MailingCountry")` and `COUNT()`')
@params
def test_salesforce_aggregate(zweck, double, app, purpose, compat):
    sf = sf_for(zweck, app, purpose)
    if purpose == "newsletter":
        with pytest.raises(SalesforceRefusedRequest) as e:
            sf.query(AGGREGATE)
        assert e.value.content["type"] == "urn:zweck:problem:aggregate-not-allowed"
        with pytest.raises(SalesforceRefusedRequest):
            sf.query("SELECT COUNT() FROM Contact")
        return compat.refused(*sf_refusal(e.value))
    res = sf.query(AGGREGATE)
    truth = double.get(f"/services/data/v{VERSION}/query", params={"q": AGGREGATE})
    # every purpose but newsletter keeps countries unaltered and removes no records: the rows
    # pass as the CRM computed them
    assert res["records"] == truth["records"]
    assert res["totalSize"] == truth["totalSize"]
    assert sum(r["n"] for r in res["records"]) >= 1000
    assert all(r["attributes"]["type"] == "AggregateResult" for r in res["records"])
    count = sf.query("SELECT COUNT() FROM Contact")
    assert count["totalSize"] >= 1000 and count["records"] == []
    compat.ok("`AggregateResult` rows")


@pytest.mark.sdk_call("simple-salesforce", '`sf.query("SELECT MIN(Birthdate) FROM Contact")`')
@params
def test_salesforce_aggregate_of_a_field_the_purpose_sees_altered(zweck, app, purpose, compat):
    """Birth dates: generalised (newsletter, analytics) or not kept (support, billing)."""
    sf = sf_for(zweck, app, purpose)
    with pytest.raises(SalesforceRefusedRequest) as e:
        sf.query("SELECT MIN(Birthdate) FROM Contact")
    want = "aggregate-not-allowed" if purpose == "newsletter" else "query-not-allowed"
    assert e.value.content["type"] == f"urn:zweck:problem:{want}"
    compat.refused(*sf_refusal(e.value))


@pytest.mark.sdk_call("requests-dataverse", '`GET contacts?$apply=groupby((address1_country),aggregate($count as n))`')
@params
def test_dataverse_apply(zweck, double, raw, app, purpose, compat):
    s = raw(app, purpose)
    apply = "groupby((address1_country),aggregate($count as n))"
    r = s.get(f"{zweck.proxy_url}{DV}/contacts", params={"$apply": apply}, timeout=30)
    if purpose == "newsletter":
        assert r.status_code == 403, r.text
        assert r.json()["type"] == "urn:zweck:problem:aggregate-not-allowed"
        return compat.refused(*http_refusal(r))
    assert r.status_code == 200, r.text
    truth = double.get(f"{DV}/contacts", params={"$apply": apply})
    assert r.json()["value"] == truth["value"]
    compat.ok("the CRM's rows")


@pytest.mark.sdk_call("hubspot-api-client", '`crm.contacts.search_api.do_search(PublicObjectSearchRequest(properties=["email"]))` (Zweck adds `hs_email_optout`, then removes it)', purpose="newsletter")
def test_hubspot_search_of_a_newsletter_gets_its_consent_property(zweck, double, compat):
    """A search names its properties in the body: the consent property is added there, the
    results are the consented contacts, without it."""
    from hubspot.crm.contacts import PublicObjectSearchRequest

    client = hs_for(zweck, "newsletter-tool", "newsletter")
    res = client.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(properties=["email"], limit=50))
    truth = double.post("/crm/v3/objects/contacts/search",
                        {"properties": ["hs_email_optout"], "limit": 50})["results"]
    assert [c.id for c in res.results] == [
        t["id"] for t in truth if t["properties"]["hs_email_optout"] == "false"]
    assert all("hs_email_optout" not in c.properties for c in res.results)
    with pytest.raises(ForbiddenException):
        # a sort on a property newsletter does not see stays refused
        client.crm.contacts.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(
                properties=["email"], sorts=["lastname"], limit=5))
    compat.ok("consented only")
