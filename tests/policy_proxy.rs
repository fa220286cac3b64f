//! The shipped policies applied by the running proxy, per dialect: a purpose sees only what its
//! rules allow, opted-out records are removed, writes are minimised, unclassified fields are
//! dropped, block refuses the request. Values come from the CRM double's generator, so the
//! assertions check real values that must not (or must) come through.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;
use zweck::crm_double::Dialect;

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("json body")
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).to_string()
}

const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,Email,MobilePhone,Birthdate,MailingCountry,HasOptedOutOfEmail+FROM+Contact+LIMIT+30";

#[tokio::test]
async fn salesforce_newsletter_sees_opted_in_contacts_minimised() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H2);
    let (r, b) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    let policy = r
        .headers()
        .get("zweck-policy")
        .and_then(|v| v.to_str().ok());
    assert!(
        policy.is_some_and(|p| p.len() == 64),
        "Zweck-Policy names the version"
    );
    let v = json(&b);
    let records = v["records"].as_array().expect("records");
    assert!(!records.is_empty());
    let body = text(&b);
    for i in 0..30u64 {
        let person = h.double.double.contact(Dialect::Salesforce, i);
        let email = person["Email"].as_str().unwrap_or_default().to_string();
        let opted_out = person["HasOptedOutOfEmail"].as_bool().unwrap_or(true);
        if let Some(phone) = person["MobilePhone"].as_str() {
            assert!(
                !body.contains(phone),
                "a phone number reached the newsletter tool"
            );
        }
        if let Some(last) = person["LastName"].as_str() {
            assert!(
                !body.contains(&format!("\"{last}\"")),
                "a last name reached the newsletter tool"
            );
        }
        if opted_out {
            assert!(
                !body.contains(&email),
                "an opted-out contact reached the newsletter tool"
            );
        } else {
            assert!(body.contains(&email), "an opted-in contact is missing");
        }
    }
    for rec in records {
        assert!(rec.get("MobilePhone").is_none());
        assert!(
            rec.get("HasOptedOutOfEmail").is_none(),
            "consent flags are not for newsletters"
        );
        if let Some(b) = rec["Birthdate"].as_str() {
            assert_eq!(b.len(), 4, "birthdate generalised to the year");
        }
        assert!(
            rec["attributes"]["type"].is_string(),
            "structural keys stay"
        );
    }
    assert!(v["totalSize"].is_number() && v["done"].is_boolean());
}

#[tokio::test]
async fn hubspot_analytics_gets_pseudonyms_and_links_stay_behind_zweck() {
    let h = Harness::start().await;
    let key = h.api_key();
    let c = h.anon_client(Version::H1);
    let (r, b) = c
        .get(
            &h.url(
                "/crm/v3/objects/contacts?limit=5&properties=email,firstname,lastname,city,phone",
            ),
            &[("zweck-api-key", &key)],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    let v = json(&b);
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    let body = text(&b);
    for (i, rec) in results.iter().enumerate() {
        let person = h.double.double.contact(Dialect::HubSpot, i as u64);
        let email = person["properties"]["email"].as_str().expect("email");
        assert!(
            !body.contains(email),
            "a clear e-mail address reached analytics"
        );
        let p = rec["properties"]["email"].as_str().expect("pseudonym");
        assert!(p.starts_with("pz1_"), "{p}");
        assert!(rec["properties"].get("firstname").is_none());
        assert!(rec["properties"].get("phone").is_none());
        assert!(rec["id"].is_string());
    }
    // the same person gets the same pseudonym on the next request
    let (_, b2) = c
        .get(
            &h.url("/crm/v3/objects/contacts?limit=5&properties=email"),
            &[("zweck-api-key", &key)],
        )
        .await;
    assert_eq!(
        json(&b2)["results"][0]["properties"]["email"],
        results[0]["properties"]["email"]
    );
    let link = v["paging"]["next"]["link"].as_str().expect("next link");
    assert!(
        link.starts_with("https://zweck.test:8443/crm/v3/objects/contacts"),
        "{link}"
    );
}

#[tokio::test]
async fn dynamics_newsletter_drops_opted_out_rows_and_their_annotations() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H2);
    let (r, b) = c
        .get(
            &h.url("/api/data/v9.2/contacts?$select=firstname,lastname,emailaddress1,telephone1,donotemail,donotbulkemail&$top=12"),
            &[("prefer", "odata.include-annotations=\"*\"")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    let v = json(&b);
    let rows = v["value"].as_array().expect("value");
    let body = text(&b);
    for i in 0..12u64 {
        let person = h.double.double.contact(Dialect::Dynamics, i);
        let email = person["emailaddress1"].as_str().unwrap_or_default();
        let consent = person["donotemail"] == false && person["donotbulkemail"] == false;
        if !consent && !email.is_empty() {
            assert!(
                !body.contains(email),
                "an opted-out row reached the newsletter tool"
            );
        }
        if let Some(last) = person["lastname"].as_str() {
            assert!(!body.contains(&format!("\"{last}\"")));
        }
    }
    for row in rows {
        for key in row.as_object().expect("row").keys() {
            assert!(!key.starts_with("telephone1"), "{key}");
            assert!(
                !key.starts_with("lastname"),
                "{key}: annotations follow their field"
            );
        }
    }
    assert!(v["@odata.context"].is_string());
}

#[tokio::test]
async fn writes_are_minimised_denied_or_refused_before_reaching_the_crm() {
    let h = Harness::start().await;
    let support = h.cert_client("support-desk", Version::H1);
    let path = "/services/data/v66.0/sobjects/Contact/003Fict000000000001AAA";
    // support may write, but not the unclassified custom field: the write would lose it, so it
    // is refused, naming the field, never its value (tests/write_refusals.rs has the rest)
    let (r, b) = support
        .call(
            Method::PATCH,
            &h.url(path),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(
                br#"{"Title":"Head of Fiction","Secret_Notes__c":"Fictional-Secret-0042"}"#,
            ),
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    assert!(text(&b).contains("$.Secret_Notes__c"), "{}", text(&b));
    assert!(!text(&b).contains("Fictional-Secret-0042"));
    assert!(
        !h.double
            .double
            .received()
            .iter()
            .any(|r| r.method == Method::PATCH),
        "the lossy write reached the CRM"
    );
    // what it may write passes as sent
    let (r, b) = support
        .call(
            Method::PATCH,
            &h.url(path),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(br#"{"Title":"Head of Fiction"}"#),
        )
        .await;
    assert!(
        r.status().is_success() || r.status() == 404,
        "{}: {}",
        r.status(),
        text(&b)
    );
    let got = h.double.double.received();
    let sent = got
        .iter()
        .find(|r| r.method == Method::PATCH)
        .expect("write reached the CRM");
    assert_eq!(text(&sent.body), r#"{"Title":"Head of Fiction"}"#);
    h.double.double.clear_received();

    // newsletter has writes: deny
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, b) = c
        .call(
            Method::PATCH,
            &h.url(path),
            &[("content-type", "application/json")],
            Bytes::from_static(br#"{"Title":"x"}"#),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &b), "write-denied");
    let (r, b) = c
        .call(Method::DELETE, &h.url(path), &[], Bytes::new())
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &b), "write-denied");

    // a body that is not JSON, a body on GET
    let (r, b) = support
        .call(
            Method::PATCH,
            &h.url(path),
            &[("zweck-purpose", "support"), ("content-type", "text/plain")],
            Bytes::from_static(br#"{"Title":"x"}"#),
        )
        .await;
    assert_eq!(r.status(), 415);
    assert_eq!(problem_slug(&r, &b), "unsupported-media-type");
    let (r, b) = support
        .call(
            Method::GET,
            &h.url(path),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(b"{}"),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(problem_slug(&r, &b), "body-not-allowed");
    let (r, b) = support
        .call(
            Method::PATCH,
            &h.url(path),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(br#"{"Title":"x""#),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(problem_slug(&r, &b), "request-not-inspectable");
    assert!(
        h.double.double.received().is_empty(),
        "no refused write reached the CRM"
    );
}

#[tokio::test]
async fn a_block_rule_refuses_the_request() {
    // a copy of the shipped policies where billing blocks contact details
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
        dir.path(),
    );
    let purposes = dir.path().join("purposes.yaml");
    let text = std::fs::read_to_string(&purposes).expect("purposes");
    let text = text.replacen(
        "      user.financial: keep\n",
        "      user.financial: keep\n      user.contact.phone_number: block\n",
        1,
    );
    std::fs::write(&purposes, text).expect("write");
    let policies = dir.path().to_path_buf();
    let h = Harness::start_with(move |mut o| {
        o.policies = policies;
        o
    })
    .await;
    let c = h.cert_client("support-desk", Version::H2);
    let (r, b) = c.get(&h.url(SOQL), &[("zweck-purpose", "billing")]).await;
    assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(&b));
    assert_eq!(problem_slug(&r, &b), "blocked");
    let body = String::from_utf8_lossy(&b);
    assert!(!body.contains("example."), "no data in the refusal");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Query minimisation: a predicate is an oracle on its field, so a query may filter and sort
/// only on fields its purpose sees unaltered. Refused queries never reach the CRM, and the
/// refusal names fields, never the values tested.
#[tokio::test]
async fn queries_may_filter_only_on_fields_the_purpose_may_see() {
    let h = Harness::start().await;
    let news = h.cert_client(CERT_APP, Version::H2);
    let phone = "+49 151 0000 0042";
    let probe = format!(
        "/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+WHERE+MobilePhone%3D%27{}%27",
        phone.replace(' ', "+").replace('+', "%2B")
    );
    let (r, b) = news.get(&h.url(&probe), &[]).await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "query-not-allowed");
    assert!(text(&b).contains("Contact.MobilePhone"), "{}", text(&b));
    assert!(!text(&b).contains("0042"), "the refusal echoes no value");
    // unreadable SOQL is refused, not sent unchecked
    let (r, b) = news
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+WHERE+Email%3D%27x"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 400, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "query-not-checkable");
    // the same inside a composite: the part sinks the request
    let composite = Bytes::from_static(
        br#"{"allOrNone":false,"compositeRequest":[
        {"method":"GET","url":"/services/data/v66.0/query?q=SELECT+Id+FROM+Contact+WHERE+LastName='Drury'","referenceId":"q"}]}"#,
    );
    let (r, b) = news
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite"),
            &[("content-type", "application/json")],
            composite,
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "query-not-allowed");
    assert!(!text(&b).contains("Drury"), "{}", text(&b));
    // a query job's SOQL in a composite sub-request body is checked too
    let job = Bytes::from_static(
        br#"{"allOrNone":false,"compositeRequest":[
        {"method":"POST","url":"/services/data/v66.0/jobs/query","referenceId":"j",
         "body":{"operation":"query","query":"SELECT Id FROM Contact WHERE MobilePhone = '0042'"}}]}"#,
    );
    let (r, b) = news
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite"),
            &[("content-type", "application/json")],
            job,
        )
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "query-not-allowed");
    assert!(!text(&b).contains("0042"), "{}", text(&b));
    // Dataverse: $filter and $orderby, nested in $expand too
    for q in [
        "$filter=mobilephone%20eq%20%27%2B49%20151%200000%200042%27",
        "$select=emailaddress1&$orderby=lastname",
        "$expand=parentcustomerid_account($filter=telephone1%20eq%20%270042%27)",
    ] {
        let (r, b) = news
            .get(&h.url(&format!("/api/data/v9.2/contacts?{q}")), &[])
            .await;
        assert_eq!(r.status(), 403, "{q}: {}", text(&b));
        assert_eq!(problem_slug(&r, &b), "query-not-allowed");
        assert!(!text(&b).contains("0042"), "{}", text(&b));
    }
    // a read by alternate key tests the key
    let (r, b) = news
        .get(&h.url("/api/data/v9.2/contacts(telephone1='0042')"), &[])
        .await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "query-not-allowed");
    assert!(!text(&b).contains("0042"), "{}", text(&b));
    // HubSpot search: a filter on a property the purpose may not see
    let (r, b) = hubspot_search(&h, "firstname").await;
    assert_eq!(r.status(), 403, "{}", text(&b));
    assert_eq!(problem_slug(&r, &b), "query-not-allowed");
    assert!(text(&b).contains("contacts.firstname"), "{}", text(&b));
    assert!(!text(&b).contains("Leopold"));
    assert!(
        h.double.double.received().is_empty(),
        "no refused query reached the CRM"
    );
    // allowed: the newsletter filters on e-mail and its own consent signal, sorts on a
    // system field; analytics filters on city (kept)
    let (r, b) = news
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id,Email+FROM+Contact+WHERE+HasOptedOutOfEmail%3Dfalse+AND+Email+LIKE+%27%25%40example.com%27+ORDER+BY+CreatedDate+LIMIT+5"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    let (r, b) = hubspot_search(&h, "city").await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    let (r, b) = news
        .get(
            &h.url("/api/data/v9.2/contacts?$select=emailaddress1&$filter=donotbulkemail%20eq%20false&$top=3"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", text(&b));
    assert_eq!(
        h.double.double.received().len(),
        3,
        "the allowed queries went through"
    );
}

/// A HubSpot contact search by the analytics app (API key) filtering on `property`.
async fn hubspot_search(h: &Harness, property: &str) -> (http::Response<()>, Bytes) {
    let key = h.api_key();
    let body = format!(
        r#"{{"filterGroups":[{{"filters":[{{"propertyName":"{property}","operator":"EQ","value":"Leopold"}}]}}],"limit":5}}"#
    );
    h.anon_client(Version::H1)
        .call(
            Method::POST,
            &h.url("/crm/v3/objects/contacts/search"),
            &[
                ("zweck-api-key", &key),
                ("content-type", "application/json"),
            ],
            Bytes::from(body),
        )
        .await
}
