"""Composite graph (`POST /composite/graph`) through simple-salesforce, for every purpose the
shipped config grants an app (issue 12, item 6).

Each graph commits whole or not at all. A node Zweck refuses (a write that would lose a field,
a write of a read-only purpose) refuses the whole request before anything reaches the CRM; a
node the CRM fails rolls back its own graph, and the other graphs stand. Each test asserts what
the CRM double committed.
"""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceRefusedRequest

from clients import sf_refusal
from conftest import APP_PURPOSES
from test_salesforce import VERSION, sf_for
from test_writes_refused import MISSING_SF, SF, WRITERS, problem, sf_count

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)


def graphs(contact: str, second: dict) -> dict:
    return {"graphs": [
        {"graphId": "g1", "compositeRequest": [
            {"method": "POST", "url": f"{SF}/sobjects/Contact", "referenceId": "new",
             "body": {"LastName": "Graph-Fict"}},
            {"method": "PATCH", "url": f"{SF}/sobjects/Contact/@{{new.id}}", "referenceId": "upd",
             "body": {"Email": "graph.fict@example.com"}},
        ]},
        {"graphId": "g2", "compositeRequest": [
            {"method": "PATCH", "url": f"{SF}/sobjects/Contact/{contact}", "referenceId": "upd",
             "body": {"Email": "graph2.fict@example.com"}},
            second,
        ]},
    ]}


def graph(sf, body: dict):
    return sf.restful("composite/graph", method="POST", json=body)


@pytest.mark.sdk_call('simple-salesforce', '`sf.restful("composite/graph", method="POST")`, two graphs, one node writing a field the purpose does not write (no graph committed)')
@params
def test_graph_with_a_lossy_node_is_refused_whole(zweck, double, app, purpose, compat):
    contact = double.sf_query(VERSION, "SELECT Id FROM Contact LIMIT 7")[6]["Id"]
    before = (sf_count(double), double.sf_contact(VERSION, contact))
    lossy = {"method": "PATCH", "url": f"{SF}/sobjects/Contact/{contact}", "referenceId": "bad",
             "body": {"Email": "lossy.fict@example.com", "Birthdate": "1990-04-01"}}
    with pytest.raises(SalesforceRefusedRequest) as e:
        graph(sf_for(zweck, app, purpose), graphs(contact, lossy))
    if purpose in WRITERS:
        assert problem(e.value) == "write-fields-dropped"
        assert "part 4" in e.value.content["detail"]
        assert "1990-04-01" not in str(e.value.content)
    else:
        assert problem(e.value) == "write-denied"
    assert (sf_count(double), double.sf_contact(VERSION, contact)) == before, "committed"
    compat.refused(*sf_refusal(e.value))


@pytest.mark.sdk_call('simple-salesforce', '`sf.restful("composite/graph", method="POST")`, a node the CRM fails')
@pytest.mark.parametrize("app,purpose", [("support-desk", "support"),
                                         ("support-desk", "billing")])
def test_graph_the_crm_fails_is_rolled_back_alone(zweck, double, app, purpose, compat):
    contact = double.sf_query(VERSION, "SELECT Id FROM Contact LIMIT 8")[7]["Id"]
    before = (sf_count(double), double.sf_contact(VERSION, contact))
    gone = {"method": "PATCH", "url": f"{SF}/sobjects/Contact/{MISSING_SF}", "referenceId": "gone",
            "body": {"Email": "x@example.com"}}
    res = graph(sf_for(zweck, app, purpose), graphs(contact, gone))
    outcome = {g["graphId"]: g["isSuccessful"] for g in res["graphs"]}
    assert outcome == {"g1": True, "g2": False}, res
    g2 = next(g for g in res["graphs"] if g["graphId"] == "g2")
    statuses = [p["httpStatusCode"] for p in g2["graphResponse"]["compositeResponse"]]
    assert statuses == [400, 404], res
    # g1 created its contact; g2's update was rolled back
    assert sf_count(double) == before[0] + 1
    assert double.sf_contact(VERSION, contact) == before[1], "g2 committed"
    compat.ok("that graph rolled back, the other committed")
