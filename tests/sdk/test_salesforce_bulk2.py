"""simple-salesforce Bulk API 2.0 queries through Zweck (`sf.bulk2.Contact.query`, `download`).

The SDK creates the job, waits for it and reads every results page, following
`Sforce-Locator` until it is the literal `null`; it reads each page's row count from
`Sforce-NumberOfRecords` (and fails without it). Through Zweck that header is the number of
rows the app gets: newsletter's consent removes rows, so it is smaller than the CRM's. Every
row is compared with the CRM double's own record through the purpose's view.

The suite raises every export budget out of the way (conftest), so all purposes may export
here; the shipped budgets close Bulk exports for newsletter and support.
"""

from __future__ import annotations

import csv
import io

import pytest

from clients import VERSION, sf_for
from conftest import APP_PURPOSES
from views import SF_CONTACT, check_csv_row

params = pytest.mark.parametrize(
    "app,purpose", APP_PURPOSES, ids=[f"{a}:{p}" for a, p in APP_PURPOSES]
)
FIELDS = ["Id", "FirstName", "LastName", "Email", "Birthdate", "MailingCountry",
          "HasOptedOutOfEmail"]
SOQL = f"SELECT {', '.join(FIELDS)} FROM Contact LIMIT 1000"
# 1,000 contacts in pages of 400: three pages, the last with Sforce-Locator: null
PAGE = 400


def parse(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def expected_columns(purpose: str) -> list[str]:
    return [f for f in FIELDS if f in SF_CONTACT[purpose]]


def check_rows(purpose: str, rows: list[dict[str, str]], double, where: str) -> None:
    truth = {r["Id"]: r for r in double.sf_query(VERSION, SOQL)}
    ids = [r["Id"] for r in rows]
    want = [i for i, t in truth.items()
            if purpose != "newsletter" or t["HasOptedOutOfEmail"] is False]
    assert ids == want, f"{where}: rows differ from the CRM's (seen through consent)"
    for row in rows:
        check_csv_row(SF_CONTACT[purpose], row, truth[row["Id"]], f"{where}({row['Id']})")


@pytest.mark.sdk_call("simple-salesforce", "`sf.bulk2.Contact.query(SOQL, max_records=400)` (3 result pages)")
@params
def test_bulk2_query(zweck, double, compat, app, purpose):
    sf = sf_for(zweck, app, purpose)
    pages = list(sf.bulk2.Contact.query(SOQL, max_records=PAGE))
    assert len(pages) == 3
    rows = []
    for text in pages:
        header, page_rows = parse(text)
        assert header == expected_columns(purpose), header
        rows.extend(page_rows)
    check_rows(purpose, rows, double, "bulk2.query")
    compat.ok()


@pytest.mark.sdk_call(
    "simple-salesforce",
    "`sf.bulk2.Contact.download(SOQL, path, max_records=400)` (`Sforce-NumberOfRecords` per page)",
)
@params
def test_bulk2_download_counts_the_rows_delivered(zweck, double, compat, app, purpose, tmp_path):
    sf = sf_for(zweck, app, purpose)
    results = sf.bulk2.Contact.download(SOQL, str(tmp_path), max_records=PAGE)
    assert len(results) == 3
    assert [bool(r["locator"]) for r in results] == [True, True, False], "locators, then null"
    rows = []
    for r in results:
        with open(r["file"], encoding="utf-8") as f:
            _, page_rows = parse(f.read())
        # the header the SDK read is the rows this page delivered
        assert r["number_of_records"] == len(page_rows)
        if purpose != "newsletter":
            assert r["number_of_records"] in (PAGE, 1000 - 2 * PAGE)
        rows.extend(page_rows)
    check_rows(purpose, rows, double, "bulk2.download")
    if purpose == "newsletter":
        assert len(rows) < 1000
    compat.ok("rows delivered in `Sforce-NumberOfRecords`")
