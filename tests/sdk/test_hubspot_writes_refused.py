"""HubSpot writes that would lose fields (issue 12, item 6), through hubspot-api-client, for
every purpose the shipped config grants an app.

`date_of_birth` is a property neither writing purpose writes (support: `otherwise`, billing:
`user.demographic: drop`): a write carrying it is refused (`write-fields-dropped`) before it
reaches the CRM, and a batch with one such input is refused whole. Read-only purposes get
`write-denied`. Each test asserts that the CRM double is unchanged.
"""

from __future__ import annotations

import json

import pytest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    SimplePublicObjectBatchInput,
    SimplePublicObjectInput,
)
from hubspot.crm.contacts.exceptions import ForbiddenException

from clients import hs_refusal
from conftest import APP_PURPOSES
from test_hubspot import PROPS, hs_for, truth  # noqa: F401 (a fixture)

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)

WRITERS = {"support", "billing"}


def problem(e: ForbiddenException) -> dict:
    return json.loads(e.body)


@pytest.mark.sdk_call('hubspot-api-client', '`crm.contacts.basic_api.update(id, …)` with `date_of_birth`, which no purpose writes (CRM unchanged)')
@params
def test_update_that_would_lose_a_property(zweck, double, truth, app, purpose, compat):
    contact_id = list(truth)[11]
    before = double.hs_contact(contact_id, PROPS)
    api = hs_for(zweck, app, purpose).crm.contacts.basic_api
    with pytest.raises(ForbiddenException) as e:
        api.update(contact_id, SimplePublicObjectInput(
            properties={"phone": "+49 30 0000 0011", "date_of_birth": "1990-04-01"}))
    p = problem(e.value)
    if purpose in WRITERS:
        assert p["type"] == "urn:zweck:problem:write-fields-dropped"
        assert "$.properties.date_of_birth" in p["detail"]
        assert "1990-04-01" not in e.value.body
    else:
        assert p["type"] == "urn:zweck:problem:write-denied"
    assert double.hs_contact(contact_id, PROPS) == before
    compat.refused(*hs_refusal(e.value))


@pytest.mark.sdk_call('hubspot-api-client', '`crm.contacts.batch_api.update(…)`, one input with `date_of_birth` (CRM unchanged)')
@params
def test_batch_update_with_one_lossy_input_is_refused_whole(zweck, double, truth, app, purpose, compat):
    ids = list(truth)[12:14]
    before = [double.hs_contact(i, PROPS) for i in ids]
    batch = BatchInputSimplePublicObjectBatchInput(inputs=[
        SimplePublicObjectBatchInput(id=ids[0], properties={"phone": "+49 30 0000 0012"}),
        SimplePublicObjectBatchInput(id=ids[1], properties={"phone": "+49 30 0000 0013",
                                                             "date_of_birth": "1990-04-01"}),
    ])
    api = hs_for(zweck, app, purpose).crm.contacts.batch_api
    with pytest.raises(ForbiddenException) as e:
        api.update(batch)
    want = "write-fields-dropped" if purpose in WRITERS else "write-denied"
    assert problem(e.value)["type"] == f"urn:zweck:problem:{want}"
    assert [double.hs_contact(i, PROPS) for i in ids] == before
    compat.refused(*hs_refusal(e.value))
