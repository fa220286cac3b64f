//! Batch tunnels through the running proxy: every `$batch` and composite part is governed as
//! if it had been sent alone, in both directions.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;
use zweck::crm_double::Dialect;

fn batch_body(fixture: &str) -> (String, Bytes) {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/crm/dynamics/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    let (head, body) = text.split_once("\n\n").expect("head and body");
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .expect("content type")
        .to_string();
    (ctype, Bytes::from(body.replace('\n', "\r\n")))
}

#[tokio::test]
async fn a_batch_with_a_hidden_write_is_refused_for_a_read_only_purpose() {
    let h = Harness::start().await;
    let news = h.cert_client(CERT_APP, Version::H1);
    let (ctype, body) = batch_body("batch.request.http");
    let (r, b) = news
        .call(
            Method::POST,
            &h.url("/api/data/v9.2/$batch"),
            &[("content-type", &ctype)],
            body,
        )
        .await;
    assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(&b));
    assert!(
        String::from_utf8_lossy(&b).contains("write-denied"),
        "{}",
        String::from_utf8_lossy(&b)
    );
    assert!(
        h.double.double.received().is_empty(),
        "nothing of the batch reached the CRM"
    );
}

#[tokio::test]
async fn a_read_batch_is_filtered_part_by_part() {
    let h = Harness::start().await;
    let news = h.cert_client(CERT_APP, Version::H1);
    let boundary = "batch_fict-0001";
    let body = format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /api/data/v9.2/contacts?$select=firstname,lastname,emailaddress1,telephone1,donotemail,donotbulkemail&$top=6 HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--{boundary}--\r\n"
    );
    let (r, b) = news
        .call(
            Method::POST,
            &h.url("/api/data/v9.2/$batch"),
            &[(
                "content-type",
                &format!("multipart/mixed; boundary={boundary}"),
            )],
            Bytes::from(body),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let text = String::from_utf8_lossy(&b);
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    for i in 0..6 {
        let person = h.double.double.contact(Dialect::Dynamics, i);
        if let Some(phone) = person["telephone1"].as_str() {
            assert!(
                !text.contains(phone),
                "a phone number inside a batch part reached the newsletter tool"
            );
        }
        if let Some(last) = person["lastname"].as_str() {
            assert!(!text.contains(&format!("\"{last}\"")));
        }
    }
    let log = std::fs::read_to_string(h.dir.path().join("logs/transfers.jsonl")).expect("log");
    let e: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|e: &serde_json::Value| e["direction"] == "from_processor")
        .expect("record");
    assert_eq!(e["parts"].as_array().map(Vec::len), Some(1), "{e}");
}

#[tokio::test]
async fn a_composite_request_is_governed_per_sub_request() {
    let h = Harness::start().await;
    let support = h.cert_client("support-desk", Version::H2);
    let news = h.cert_client(CERT_APP, Version::H2);
    let composite = Bytes::from_static(
        br#"{"allOrNone":false,"compositeRequest":[
        {"method":"GET","url":"/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,MobilePhone,HasOptedOutOfEmail+FROM+Contact+LIMIT+5","referenceId":"q"}]}"#,
    );
    let (r, b) = news
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite"),
            &[("content-type", "application/json")],
            composite.clone(),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let text = String::from_utf8_lossy(&b);
    for i in 0..5 {
        let person = h.double.double.contact(Dialect::Salesforce, i);
        if let Some(phone) = person["MobilePhone"].as_str() {
            assert!(!text.contains(phone), "{text}");
        }
    }
    // a sub-request to an unclassified object sinks the whole composite
    let hidden = Bytes::from_static(
        br#"{"allOrNone":false,"compositeRequest":[
        {"method":"GET","url":"/services/data/v66.0/sobjects/Opportunity/006Fict","referenceId":"o"}]}"#,
    );
    h.double.double.clear_received();
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/composite"),
            &[
                ("content-type", "application/json"),
                ("zweck-purpose", "support"),
            ],
            hidden,
        )
        .await;
    assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(&b));
    assert!(String::from_utf8_lossy(&b).contains("unknown-resource"));
    assert!(h.double.double.received().is_empty());
}
