"""Ground truth: the CRM double asked directly (not through Zweck) with its own token."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from conftest import Zweck


class Double:
    def __init__(self, z: Zweck):
        self.base = z.double_url
        self.s = requests.Session()
        self.s.trust_env = False
        self.s.verify = z.ca
        token = (z.certs / "crm-double.token").read_text().strip()
        self.s.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kw):
        r = self.s.get(self.base + path, timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    def get_text(self, path: str, **kw) -> str:
        r = self.s.get(self.base + path, timeout=30, **kw)
        r.raise_for_status()
        return r.text

    def status(self, path: str, **kw) -> int:
        """The status of a GET (a record that is not there: 404)."""
        return self.s.get(self.base + path, timeout=30, **kw).status_code

    def post(self, path: str, body, **kw):
        r = self.s.post(self.base + path, json=body, timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    # Salesforce

    def sf_query(self, version: str, soql: str) -> list[dict]:
        """Every row of `soql`, in the double's (index) order, across pages."""
        page = self.get(f"/services/data/v{version}/query", params={"q": soql})
        rows = list(page["records"])
        while not page["done"]:
            page = self.get(page["nextRecordsUrl"])
            rows.extend(page["records"])
        return rows

    def sf_contact(self, version: str, record_id: str) -> dict:
        return self.get(f"/services/data/v{version}/sobjects/Contact/{record_id}")

    def sf_count(self, version: str) -> int:
        """How many contacts the CRM has (generated and created)."""
        page = self.get(f"/services/data/v{version}/query",
                        params={"q": "SELECT Id FROM Contact"})
        return page["totalSize"]

    # Dataverse

    def dv_contacts(self, query: dict) -> list[dict]:
        """The contacts a Dataverse query returns, first page only."""
        return self.get("/api/data/v9.2/contacts", params=query)["value"]

    def dv_contact(self, contact_id: str) -> dict:
        return self.get(f"/api/data/v9.2/contacts({contact_id})")

    # HubSpot

    def hs_contacts(self, properties: list[str]) -> dict[str, dict]:
        """id -> contact for every contact, with `properties` requested."""
        out: dict[str, dict] = {}
        after = None
        while True:
            params: dict = {"limit": 100, "properties": ",".join(properties)}
            if after:
                params["after"] = after
            page = self.get("/crm/v3/objects/contacts", params=params)
            for c in page["results"]:
                out[c["id"]] = c
            nxt = (page.get("paging") or {}).get("next")
            if not nxt:
                return out
            after = nxt["after"]

    def hs_contact(self, contact_id: str, properties: list[str]) -> dict:
        return self.get(
            f"/crm/v3/objects/contacts/{contact_id}",
            params={"properties": ",".join(properties)},
        )
