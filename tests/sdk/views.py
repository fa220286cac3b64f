"""Expected minimised views per purpose, and the comparison against the CRM double's truth.

A view maps each field a purpose may see to how its value must relate to the CRM's own value:

- ``KEEP``: unchanged;
- ``YEAR``: a date generalised to its year (``1952-03-04`` -> ``1952``);
- ``TRUNC2``: the first two characters (``truncate: 2``);
- ``PSEUDONYM``: a keyed pseudonym ``pz1_...``, never the original value;
- ``NULL``: redacted to ``null``;
- a nested dict: an object with its own view (Salesforce compound addresses). When the
  purpose drops the object's own class and keeps only some of its members, a ``null`` object
  in the CRM is dropped with it: such a view says ``OBJECT: DROP``.

Every field not in the view must be absent. A ``None`` in the CRM stays ``None``. The views are
derived by hand from policies/purposes.yaml and policies/inventory/*.yaml, so a change to
either that alters what an app sees makes these tests fail on purpose.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

KEEP = "keep"
YEAR = "year"
TRUNC2 = "trunc2"
PSEUDONYM = "pseudonym"
NULL = "null"

# The key of a nested view saying what happens to the object itself when the CRM has null.
OBJECT = "__object__"
DROP = "drop"

PSEUDONYM_RE = re.compile(r"^pz1_[A-Za-z0-9_-]{8,}$")


def _check_value(rule: Any, got: Any, truth: Any, where: str) -> None:
    if isinstance(rule, Mapping):
        if truth is None:
            assert got is None, f"{where}: expected null, got {got!r}"
            return
        assert isinstance(got, dict), f"{where}: expected an object, got {got!r}"
        check_view({k: v for k, v in rule.items() if k != OBJECT}, got, truth, where)
        return
    if rule == NULL:
        assert got is None, f"{where}: expected redacted null, got {got!r}"
        return
    if truth is None:
        assert got is None, f"{where}: CRM has null, Zweck delivered {got!r}"
        return
    if rule == KEEP:
        assert got == truth, f"{where}: expected {truth!r} unchanged, got {got!r}"
    elif rule == YEAR:
        assert got == str(truth)[:4], f"{where}: expected year of {truth!r}, got {got!r}"
    elif rule == TRUNC2:
        assert got == str(truth)[:2], f"{where}: expected {truth!r} truncated to 2, got {got!r}"
    elif rule == PSEUDONYM:
        assert isinstance(got, str) and PSEUDONYM_RE.match(got), (
            f"{where}: expected a pz1_ pseudonym, got {got!r}"
        )
        assert got != truth, f"{where}: pseudonym equals the original value"
    else:  # pragma: no cover - a typo in a view
        raise AssertionError(f"unknown rule {rule!r}")


def _dropped_null(rule: Any, truth: Any) -> bool:
    """A null object whose own class the purpose drops is absent, not null."""
    return truth is None and isinstance(rule, Mapping) and rule.get(OBJECT) == DROP


def check_view(view: Mapping[str, Any], got: Mapping[str, Any], truth: Mapping[str, Any],
               where: str, only: set[str] | None = None) -> None:
    """`got` (what the SDK returned) is exactly `truth` (the CRM's record) seen through `view`.

    `only` restricts the comparison to the keys the request asked for (a SOQL SELECT list)."""
    extra = set(got) - set(truth)
    assert not extra, f"{where}: keys the CRM never sent: {sorted(extra)}"
    candidates = set(truth) if only is None else set(truth) & only
    expected = {k for k in candidates if k in view and not _dropped_null(view[k], truth[k])}
    assert set(got) == expected, (
        f"{where}: keys {sorted(got)}; expected {sorted(expected)} "
        f"(missing {sorted(expected - set(got))}, not allowed {sorted(set(got) - expected)})"
    )
    for key in expected:
        _check_value(view[key], got[key], truth[key], f"{where}.{key}")


# --- record counts ---------------------------------------------------------------------------

# Purposes whose records are filtered (they need consent): their count envelopes (`totalSize`,
# HubSpot `total`, `@odata.count`) count what the response delivers (`counts` defaults to
# `delivered` for them); every other purpose sees the CRM's count (`pass`).
DELIVERED_COUNTS = {"newsletter"}


def expected_count(purpose: str, delivered: int, crm: int) -> int:
    """The count a purpose's app must see in a response delivering `delivered` records of a
    result the CRM counts as `crm`."""
    return delivered if purpose in DELIVERED_COUNTS else crm


# --- Salesforce Contact ----------------------------------------------------------------------

# `system` keys of the Contact inventory: every purpose sees them.
SF_SYSTEM = {
    k: KEEP
    for k in (
        "attributes", "Id", "IsDeleted", "AccountId", "LeadSource", "IndividualId", "OwnerId",
        "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp",
        "Ext_Id__c",
    )
}

# Custom fields of the double's org that the shipped inventories leave unclassified: a
# purpose with `otherwise: redact` gets them as null, the others not at all.
SF_ORG_FIELDS = ("Allergies__c", "Preferred_Store__c", "Notes__c")
DV_ORG_FIELDS = ("cr123_allergies", "cr123_preferredstore", "cr123_notes")

SF_CONTACT = {
    # newsletter: first name, e-mail, country; birthdate as a year; postcode to 2; rest dropped.
    "newsletter": {
        **SF_SYSTEM,
        "FirstName": KEEP,
        "Email": KEEP,
        "MailingCountry": KEEP,
        "MailingPostalCode": TRUNC2,
        "Birthdate": YEAR,
        "MailingAddress": {
            OBJECT: DROP, "country": KEEP, "postalCode": TRUNC2, "geocodeAccuracy": KEEP,
        },
    },
    # support: names, contact data, privacy flags, job; the address only its country;
    # everything unlisted (birthdate, geo coordinates) redacted to null.
    "support": {
        **SF_SYSTEM,
        "Salutation": KEEP,
        "FirstName": KEEP,
        "LastName": KEEP,
        "Name": KEEP,
        "Email": KEEP,
        "Phone": KEEP,
        "MobilePhone": KEEP,
        "HomePhone": KEEP,
        "MailingCountry": KEEP,
        "Title": KEEP,
        "Department": KEEP,
        "HasOptedOutOfEmail": KEEP,
        "HasOptedOutOfFax": KEEP,
        "DoNotCall": KEEP,
        "Birthdate": NULL,
        # the org's fields the shipped inventory does not classify (issue 13's drift)
        **{k: NULL for k in SF_ORG_FIELDS},
        "MailingAddress": {
            OBJECT: DROP, "country": KEEP, "geocodeAccuracy": KEEP, "latitude": NULL,
            "longitude": NULL,
        },
    },
    # billing: names, all contact data incl. the full address, workplace; no birthdate,
    # no job title, no privacy flags, no coordinates.
    "billing": {
        **SF_SYSTEM,
        "Salutation": KEEP,
        "FirstName": KEEP,
        "LastName": KEEP,
        "Name": KEEP,
        "Email": KEEP,
        "Phone": KEEP,
        "MobilePhone": KEEP,
        "HomePhone": KEEP,
        "MailingStreet": KEEP,
        "MailingCity": KEEP,
        "MailingState": KEEP,
        "MailingPostalCode": KEEP,
        "MailingCountry": KEEP,
        "Department": KEEP,
        "MailingAddress": {
            "street": KEEP, "city": KEEP, "state": KEEP, "postalCode": KEEP, "country": KEEP,
            "geocodeAccuracy": KEEP,
        },
    },
    # analytics: pseudonymous e-mail, no names or phones; city, country, postcode to 2,
    # birthdate as a year, job and workplace.
    "analytics": {
        **SF_SYSTEM,
        "Email": PSEUDONYM,
        "MailingCity": KEEP,
        "MailingCountry": KEEP,
        "MailingPostalCode": TRUNC2,
        "Birthdate": YEAR,
        "Title": KEEP,
        "Department": KEEP,
        "MailingAddress": {
            OBJECT: DROP, "city": KEEP, "country": KEEP, "postalCode": TRUNC2,
            "geocodeAccuracy": KEEP,
        },
    },
}

# --- HubSpot contacts ------------------------------------------------------------------------

HS_SYSTEM = {k: KEEP for k in ("hs_object_id", "createdate", "lastmodifieddate",
                               "lifecyclestage", "hs_lead_status")}

HS_CONTACT = {
    "newsletter": {
        **HS_SYSTEM,
        "firstname": KEEP,
        "email": KEEP,
        "country": KEEP,
        "zip": TRUNC2,
        "date_of_birth": YEAR,
    },
    "support": {
        **HS_SYSTEM,
        "firstname": KEEP,
        "lastname": KEEP,
        "email": KEEP,
        "phone": KEEP,
        "mobilephone": KEEP,
        "fax": KEEP,
        "website": KEEP,
        "country": KEEP,
        "jobtitle": KEEP,
        "company": KEEP,
        "hs_legal_basis": KEEP,
        "hs_email_optout": KEEP,
        "date_of_birth": NULL,
    },
    "billing": {
        **HS_SYSTEM,
        "firstname": KEEP,
        "lastname": KEEP,
        "email": KEEP,
        "phone": KEEP,
        "mobilephone": KEEP,
        "fax": KEEP,
        "website": KEEP,
        "address": KEEP,
        "city": KEEP,
        "state": KEEP,
        "zip": KEEP,
        "country": KEEP,
        "company": KEEP,
    },
    "analytics": {
        **HS_SYSTEM,
        "email": PSEUDONYM,
        "city": KEEP,
        "country": KEEP,
        "zip": TRUNC2,
        "date_of_birth": YEAR,
        "jobtitle": KEEP,
        "company": KEEP,
    },
}

# --- Dataverse contact -----------------------------------------------------------------------

# `system` columns of the contact inventory: every purpose sees them.
DV_SYSTEM = {k: KEEP for k in ("@odata.etag", "contactid", "_parentcustomerid_value",
                               "createdon", "modifiedon")}
DV_PRIVACY = ("donotemail", "donotbulkemail", "donotphone", "donotpostalmail", "donotfax",
              "msdyn_gdproptout")

DV_CONTACT = {
    "newsletter": {
        **DV_SYSTEM,
        "firstname": KEEP,
        "emailaddress1": KEEP,
        "address1_country": KEEP,
        "address1_postalcode": TRUNC2,
        "birthdate": YEAR,
    },
    "support": {
        **DV_SYSTEM,
        "firstname": KEEP,
        "lastname": KEEP,
        "fullname": KEEP,
        "emailaddress1": KEEP,
        "telephone1": KEEP,
        "mobilephone": KEEP,
        "address1_country": KEEP,
        "jobtitle": KEEP,
        **{k: KEEP for k in DV_PRIVACY},
        "birthdate": NULL,
        **{k: NULL for k in DV_ORG_FIELDS},
    },
    "billing": {
        **DV_SYSTEM,
        "firstname": KEEP,
        "lastname": KEEP,
        "fullname": KEEP,
        "emailaddress1": KEEP,
        "telephone1": KEEP,
        "mobilephone": KEEP,
        "address1_line1": KEEP,
        "address1_city": KEEP,
        "address1_postalcode": KEEP,
        "address1_country": KEEP,
    },
    "analytics": {
        **DV_SYSTEM,
        "emailaddress1": PSEUDONYM,
        "address1_city": KEEP,
        "address1_country": KEEP,
        "address1_postalcode": TRUNC2,
        "birthdate": YEAR,
        "jobtitle": KEEP,
    },
}

# Which purposes may write (`writes: allow` in policies/purposes.yaml).
WRITERS = {"support", "billing"}


def csv_cell(value: Any) -> str:
    """A CRM value as Bulk API 2.0 writes it in CSV: booleans lower-case, null empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_csv_row(view: Mapping[str, Any], row: Mapping[str, str], truth: Mapping[str, Any],
                  where: str) -> None:
    """A Bulk CSV row (every cell a string, null empty) against the CRM's record: the columns
    are exactly the requested ones the view lets through, each value seen through the view."""
    for key, got in row.items():
        assert key in view, f"{where}: column {key} must not be delivered"
        rule = view[key]
        truth_cell = csv_cell(truth.get(key))
        if truth_cell == "" or rule == NULL:
            assert got == "", f"{where}.{key}: expected an empty cell, got {got!r}"
        elif rule == PSEUDONYM:
            assert PSEUDONYM_RE.match(got) and got != truth_cell, f"{where}.{key}: {got!r}"
        elif rule == YEAR:
            assert got == truth_cell[:4], f"{where}.{key}: {got!r}"
        elif rule == TRUNC2:
            assert got == truth_cell[:2], f"{where}.{key}: {got!r}"
        else:
            assert got == truth_cell, f"{where}.{key}: expected {truth_cell!r}, got {got!r}"
