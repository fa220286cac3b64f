"""The SDK clients as apps build them, pointed at Zweck, and the refusals they raise.

Shared by every SDK test file: one way to make a client per SDK, so every test drives the SDK
exactly as an app would (instance URL or host = Zweck, the app's own credential).
"""

from __future__ import annotations

import json

import requests
from hubspot import HubSpot
from hubspot.discovery.discovery_base import DiscoveryBase
from simple_salesforce import Salesforce

from conftest import http_session

# The Salesforce REST API version the suite speaks.
VERSION = "66.0"


def sf_refusal(e) -> tuple[int, str]:
    """(status, Zweck problem type) of a refusal simple-salesforce raised as an exception."""
    content = e.content if isinstance(e.content, dict) else {}
    kind = content.get("type", "")
    assert kind.startswith("urn:zweck:problem:"), f"not a Zweck problem: {content!r}"
    return e.status, kind.removeprefix("urn:zweck:problem:")


def hs_refusal(e) -> tuple[int, str]:
    """(status, Zweck problem type) of a refusal hubspot-api-client raised as an ApiException."""
    body = json.loads(e.body or "{}")
    kind = body.get("type", "") if isinstance(body, dict) else ""
    assert kind.startswith("urn:zweck:problem:"), f"not a Zweck problem: {e.body!r}"
    return e.status, kind.removeprefix("urn:zweck:problem:")


def http_refusal(r: requests.Response) -> tuple[int, str]:
    """(status, Zweck problem type) of a refusal answered to a plain HTTP client."""
    assert r.headers.get("content-type", "").startswith("application/problem+json"), r.text
    kind = r.json().get("type", "")
    assert kind.startswith("urn:zweck:problem:"), r.text
    return r.status_code, kind.removeprefix("urn:zweck:problem:")


def sf_for(zweck, app: str, purpose: str) -> Salesforce:
    session = http_session(zweck, app, purpose)
    # mTLS apps: the SDK still sends its session id as a bearer token; Zweck ignores a token
    # that is no API key next to a certificate that identifies the app.
    session_id = zweck.api_key if zweck.uses_api_key(app) else "unused-mtls-app"
    return Salesforce(
        instance_url=zweck.proxy_url, session_id=session_id, session=session, version=VERSION
    )


def hs_for(zweck, app: str, purpose: str) -> HubSpot:
    """A HubSpot client pointed at Zweck. Extra headers (Zweck-Purpose) go in through the
    client's documented `api_factory` hook; everything else is plain Configuration."""
    headers = zweck.purpose_header(app, purpose)

    def api_factory(package, api_name, config):
        api = DiscoveryBase._default_api_factory(package, api_name, config)
        for k, v in headers.items():
            api.api_client.set_default_header(k, v)
        return api

    kw = {"host": zweck.proxy_url, "ssl_ca_cert": zweck.ca, "api_factory": api_factory}
    if zweck.uses_api_key(app):
        kw["access_token"] = zweck.api_key
    else:
        kw["cert_file"], kw["key_file"] = zweck.client_cert(app)
    client = HubSpot(**kw)
    assert client.crm.contacts.basic_api.api_client.configuration.host == zweck.proxy_url
    return client


