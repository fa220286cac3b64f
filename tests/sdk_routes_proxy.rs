//! Routes the official SDKs call, through the running proxy on HTTP/1.1 and HTTP/2.
//!
//! Metadata (`op: metadata`: describe, properties, `$metadata`) passes byte for byte, is
//! never charged to an export budget and never written to the transfer log, and is counted in
//! `zweck_metadata_requests_total`. A trailing `/` is the same route as its spelling without
//! one, and never gets a request past a check: writes stay denied, withheld records stay
//! withheld, a record addressed by a field the purpose may not see stays refused, and a slash
//! never turns a record route into a list route or back. The CRM is asserted not to have seen
//! what was refused.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;
use zweck::crm_double::Dialect;

const SF: &str = "/services/data/v66.0";

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).to_string()
}

/// The route templates of the transfer log's records.
fn logged_routes(h: &Harness) -> Vec<String> {
    let log =
        std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e["route"].as_str().map(str::to_string))
        .collect()
}

/// The Salesforce id of the first generated contact with (`true`) or without e-mail consent.
fn sf_contact(h: &Harness, consented: bool) -> String {
    (0..50)
        .map(|i| h.double.double.contact(Dialect::Salesforce, i))
        .find(|c| c["HasOptedOutOfEmail"].as_bool() == Some(!consented))
        .and_then(|c| c["Id"].as_str().map(str::to_string))
        .expect("a contact of that kind among the first 50")
}

/// The CRM double's own answer to a GET, asked directly with the upstream token, with its
/// own address (which Zweck rewrites in links) spelt `<base>`.
async fn crm_answer(h: &Harness, path: &str) -> String {
    let upstream = TestClient::new(&h.paths().ca_cert(), None, Version::H1);
    let base = format!("https://127.0.0.1:{}", h.double.addr.port());
    let (r, b) = upstream
        .get(
            &format!("{base}{path}"),
            &[("authorization", &format!("Bearer {UPSTREAM_TOKEN}"))],
        )
        .await;
    assert_eq!(r.status(), 200, "{path}: {}", text(&b));
    text(&b).replace(&base, "<base>")
}

/// What Zweck delivered, with its own address in links spelt `<base>`.
fn delivered(body: &[u8]) -> String {
    text(body).replace("https://zweck.test:8443", "<base>")
}

#[tokio::test]
async fn metadata_passes_unchanged_uncharged_and_unlogged_on_h1_and_h2() {
    // newsletter may export one record a day: a describe charged as a record would use it up
    let h = Harness::start_with(|mut o| {
        o.policies = policies_with(&o.certs_dir, |t| {
            t.replace(
                "export_budget: { records: 50000, per: 1h, burst: 5000, per_class: { bulk_export: { records: 0 } } }",
                "export_budget: { records: 1, per: 1d, burst: 1 }",
            )
        });
        o
    })
    .await;
    let routes = [
        format!("{SF}/sobjects"),
        format!("{SF}/sobjects/"),
        format!("{SF}/sobjects/Contact/describe"),
        format!("{SF}/sobjects/Contact/describe/"),
        format!("{SF}/sobjects/Lead/describe/layouts"),
        "/crm/v3/properties/contacts".to_string(),
        "/crm/v3/schemas".to_string(),
        "/api/data/v9.2/$metadata".to_string(),
        "/api/data/v9.2/EntityDefinitions(LogicalName='contact')/Attributes".to_string(),
    ];
    let mut calls = 0;
    for version in [Version::H1, Version::H2] {
        let c = h.cert_client(CERT_APP, version);
        for path in &routes {
            let (r, b) = c.get(&h.url(path), &[]).await;
            assert_eq!(r.status(), 200, "{path} {version:?}: {}", text(&b));
            assert_eq!(
                delivered(&b),
                crm_answer(&h, path).await,
                "{path}: changed on its way"
            );
            calls += 1;
        }
    }
    // the describe is the object's field list, not a Contact record called `describe`
    let (_, b) = h
        .cert_client(CERT_APP, Version::H2)
        .get(&h.url(&format!("{SF}/sobjects/Contact/describe")), &[])
        .await;
    let v: serde_json::Value = serde_json::from_slice(&b).expect("describe json");
    let fields: Vec<&str> = v["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(fields.contains(&"MobilePhone") && fields.contains(&"Birthdate"));

    // nothing was charged: the one record of the day is still there, then it is gone
    let c = h.cert_client(CERT_APP, Version::H1);
    let record = format!("{SF}/sobjects/Contact/{}", sf_contact(&h, true));
    let (r, b) = c.get(&h.url(&record), &[]).await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    let (r, b) = c.get(&h.url(&record), &[]).await;
    assert_eq!(r.status(), 429, "{}", text(&b));

    // no metadata route in the transfer log; the record read is there
    let logged = logged_routes(&h);
    assert!(logged.iter().any(|r| r.contains("sobjects/Contact/*")));
    assert!(
        !logged.iter().any(|r| r.contains("describe")
            || r.contains("properties")
            || r.contains("schemas")
            || r.contains("$metadata")
            || r.contains("EntityDefinitions")
            || r.ends_with("/sobjects")),
        "{logged:?}"
    );
    // counted per app and purpose
    let (_, metrics) = h.admin_get("/metrics").await;
    let count = |upstream: &str| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("zweck_metadata_requests_total{")
                    && l.contains(&format!("upstream=\"{upstream}\""))
                    && l.contains("purpose=\"newsletter\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    // one extra Salesforce describe above
    assert_eq!(
        count("salesforce") + count("hubspot") + count("dynamics"),
        calls + 1,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_metadata_route_is_read_only() {
    let h = Harness::start().await;
    let c = h.cert_client("support-desk", Version::H2);
    let support = [
        ("zweck-purpose", "support"),
        ("content-type", "application/json"),
    ];
    for (method, path) in [
        (Method::POST, "/crm/v3/properties/contacts".to_string()),
        (Method::POST, "/api/data/v9.2/EntityDefinitions".to_string()),
        (Method::DELETE, "/crm/v3/schemas/p_custom".to_string()),
    ] {
        let (r, b) = c
            .call(method.clone(), &h.url(&path), &support, Bytes::from("{}"))
            .await;
        assert_eq!(r.status(), 403, "{method} {path}: {}", text(&b));
        assert_eq!(problem_slug(&r, &b), "unknown-resource", "{method} {path}");
    }
    assert!(
        h.double
            .double
            .received()
            .iter()
            .all(|r| r.method == Method::GET),
        "a refused schema change reached the CRM"
    );
}

#[tokio::test]
async fn a_trailing_slash_never_gets_a_request_past_a_check() {
    let h = Harness::start().await;
    let withheld = sf_contact(&h, false);
    let visible = sf_contact(&h, true);
    for version in [Version::H1, Version::H2] {
        let newsletter = h.cert_client(CERT_APP, version);
        let support = h.cert_client("support-desk", version);
        let json = ("content-type", "application/json");

        // writes stay denied, with either spelling
        for path in [
            format!("{SF}/sobjects/Contact/"),
            format!("{SF}/sobjects/Contact/{visible}/"),
            format!("{SF}/sobjects/Contact/Ext_Id__c/ERP-NEW-1/"),
        ] {
            for method in [Method::POST, Method::PATCH, Method::DELETE] {
                let (r, b) = newsletter
                    .call(
                        method.clone(),
                        &h.url(&path),
                        &[json],
                        Bytes::from(r#"{"LastName":"Quill"}"#),
                    )
                    .await;
                let slug = problem_slug(&r, &b);
                assert!(
                    slug == "write-denied" || slug == "unknown-resource",
                    "{method} {path}: {slug}"
                );
            }
        }

        // a withheld record stays withheld; a visible one is the record route
        let (r, b) = newsletter
            .get(&h.url(&format!("{SF}/sobjects/Contact/{withheld}/")), &[])
            .await;
        assert_eq!(r.status(), 404, "{}", text(&b));
        assert_eq!(problem_slug(&r, &b), "record-withheld");
        let (r, b) = newsletter
            .get(&h.url(&format!("{SF}/sobjects/Contact/{visible}/")), &[])
            .await;
        assert_eq!(r.status(), 200, "{}", text(&b));
        let v: serde_json::Value = serde_json::from_slice(&b).expect("record json");
        assert_eq!(v["Id"].as_str(), Some(visible.as_str()));
        assert!(v.get("MobilePhone").is_none() && v.get("LastName").is_none());

        // a record addressed by a field the purpose may not see, read or upserted
        let phone = (0..50)
            .find_map(|i| {
                h.double.double.contact(Dialect::Salesforce, i)["MobilePhone"]
                    .as_str()
                    .map(|p| p.replace('+', "%2B").replace(' ', "%20"))
            })
            .expect("a phone among the first 50 contacts");
        let (r, b) = newsletter
            .get(
                &h.url(&format!("{SF}/sobjects/Contact/MobilePhone/{phone}/")),
                &[],
            )
            .await;
        assert_eq!(problem_slug(&r, &b), "query-not-allowed", "{}", text(&b));
        let (r, b) = support
            .call(
                Method::PATCH,
                &h.url(&format!("{SF}/sobjects/Contact/Birthdate/1984-02-29/")),
                &[("zweck-purpose", "support"), json],
                Bytes::from(r#"{"Title":"Buyer"}"#),
            )
            .await;
        assert_eq!(problem_slug(&r, &b), "query-not-allowed", "{}", text(&b));
        let (r, b) = h
            .anon_client(version)
            .get(
                &h.url("/api/data/v9.2/contacts(emailaddress1='a%40example.com')/"),
                &[("zweck-api-key", h.api_key().as_str())],
            )
            .await;
        assert_eq!(problem_slug(&r, &b), "query-not-allowed", "{}", text(&b));

        // a slash is no empty id: `/sobjects/Contact//` is no route at all
        let (r, b) = support
            .call(
                Method::PATCH,
                &h.url(&format!("{SF}/sobjects/Contact//")),
                &[("zweck-purpose", "support"), json],
                Bytes::from(r#"{"Title":"Buyer"}"#),
            )
            .await;
        assert!(
            r.status() == 400 || r.status() == 403,
            "{}: {}",
            r.status(),
            text(&b)
        );
    }
    let received = h.double.double.received();
    assert!(
        received.iter().all(|r| r.method == Method::GET),
        "a refused write reached the CRM: {:?}",
        received
            .iter()
            .map(|r| r.method.to_string())
            .collect::<Vec<_>>()
    );
    assert!(
        !received.iter().any(|r| {
            let p = &r.path_and_query;
            p.contains("MobilePhone") || p.contains("emailaddress1")
        }),
        "a refused lookup reached the CRM"
    );
}

#[tokio::test]
async fn the_headers_sdks_read_reach_the_app_on_h1_and_h2() {
    let h = Harness::start().await;
    let header = |r: &http::Response<()>, name: &str| -> Option<String> {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    for version in [Version::H1, Version::H2] {
        let newsletter = h.cert_client(CERT_APP, version);
        // Salesforce API usage
        let (r, b) = newsletter
            .get(
                &h.url(&format!(
                    "{SF}/query/?q=SELECT+Id,Email,HasOptedOutOfEmail+FROM+Contact+LIMIT+5"
                )),
                &[],
            )
            .await;
        assert_eq!(r.status(), 200, "{}", text(&b));
        let usage = header(&r, "sforce-limit-info").expect("Sforce-Limit-Info");
        assert!(usage.starts_with("api-usage="), "{usage}");

        // HubSpot rate limits (numbers only)
        let (r, b) = newsletter
            .get(&h.url("/crm/v3/objects/contacts/?limit=5"), &[])
            .await;
        assert_eq!(r.status(), 200, "{}", text(&b));
        for name in [
            "x-hubspot-ratelimit-daily",
            "x-hubspot-ratelimit-daily-remaining",
            "x-hubspot-ratelimit-max",
            "x-hubspot-ratelimit-remaining",
            "x-hubspot-ratelimit-interval-milliseconds",
            "x-hubspot-ratelimit-secondly",
            "x-hubspot-ratelimit-secondly-remaining",
        ] {
            let value = header(&r, name).unwrap_or_else(|| panic!("{name} lost"));
            assert!(value.parse::<u64>().is_ok(), "{name}: {value}");
        }

        // Dataverse: the preference the CRM applied, and the record a write created
        let (r, b) = newsletter
            .get(
                &h.url("/api/data/v9.2/contacts?$select=firstname,donotbulkemail"),
                &[("prefer", "odata.maxpagesize=5")],
            )
            .await;
        assert_eq!(r.status(), 200, "{}", text(&b));
        assert_eq!(
            header(&r, "preference-applied").as_deref(),
            Some("odata.maxpagesize=5")
        );
        let (r, b) = h
            .cert_client("support-desk", version)
            .call(
                Method::POST,
                &h.url("/api/data/v9.2/contacts/"),
                &[
                    ("zweck-purpose", "support"),
                    ("content-type", "application/json"),
                ],
                Bytes::from(r#"{"firstname":"Ada","lastname":"Quill"}"#),
            )
            .await;
        assert_eq!(r.status(), 204, "{}", text(&b));
        let entity = header(&r, "odata-entityid").expect("OData-EntityId");
        assert!(
            entity.starts_with("https://zweck.test:8443/api/data/v9.2/contacts(")
                && entity.ends_with(')'),
            "the new record at Zweck's address: {entity}"
        );
    }
}

#[tokio::test]
async fn hubspot_writes_work_with_either_spelling_and_stay_denied_with_both() {
    let h = Harness::start().await;
    let json = ("content-type", "application/json");
    let support = [("zweck-purpose", "support"), json];
    for version in [Version::H1, Version::H2] {
        let desk = h.cert_client("support-desk", version);
        let newsletter = h.cert_client(CERT_APP, version);
        for slash in ["", "/"] {
            let phone = format!("+49 30 0000 7{}{}", slash.len(), version as u8);
            let update = Bytes::from(format!(r#"{{"properties":{{"phone":"{phone}"}}}}"#));
            let record = format!("/crm/v3/objects/contacts/51000007{slash}");
            let (r, b) = desk
                .call(Method::PATCH, &h.url(&record), &support, update.clone())
                .await;
            assert_eq!(r.status(), 200, "PATCH {record}: {}", text(&b));
            let (r, b) = h
                .anon_client(Version::H1)
                .get(
                    &format!(
                        "https://127.0.0.1:{}/crm/v3/objects/contacts/51000007?properties=phone",
                        h.double.addr.port()
                    ),
                    &[("authorization", &format!("Bearer {UPSTREAM_TOKEN}"))],
                )
                .await;
            assert_eq!(r.status(), 200);
            let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
            assert_eq!(v["properties"]["phone"].as_str(), Some(phone.as_str()));

            let list = format!("/crm/v3/objects/contacts{slash}");
            let create = Bytes::from(format!(
                r#"{{"properties":{{"firstname":"Ada","email":"ada.{}{}@example.com"}}}}"#,
                slash.len(),
                version as u8
            ));
            let (r, b) = desk
                .call(Method::POST, &h.url(&list), &support, create.clone())
                .await;
            assert_eq!(r.status(), 201, "POST {list}: {}", text(&b));

            for (method, path, body) in [
                (Method::PATCH, record.as_str(), update.clone()),
                (Method::POST, list.as_str(), create.clone()),
                (Method::DELETE, record.as_str(), Bytes::new()),
            ] {
                let (r, b) = newsletter
                    .call(method.clone(), &h.url(path), &[json], body)
                    .await;
                assert_eq!(problem_slug(&r, &b), "write-denied", "{method} {path}");
            }
        }
    }
    // every write that reached the CRM was support's
    let writes = h
        .double
        .double
        .received()
        .into_iter()
        .filter(|r| r.method != Method::GET)
        .count();
    assert_eq!(writes, 2 * 2 * 2, "support's updates and creates only");
}
