//! Bypass attempts on governed routes: every body is inspected whole or refused. Each test
//! checks with real values that nothing the policy forbids reaches the CRM, and that the
//! status says why.

mod common;

use std::io::Write;

use bytes::Bytes;
use common::*;
use http::Method;

const WRITE: &str = "/services/data/v66.0/sobjects/Contact/003Fict000000000001AAA";
const SECRET: &str = "Fictional-Secret-0042";

fn gzip(data: &[u8]) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    Bytes::from(e.finish().expect("gzip"))
}

async fn write(h: &Harness, headers: &[(&str, &str)], body: Bytes) -> (http::Response<()>, Bytes) {
    let support = h.cert_client("support-desk", Version::H1);
    let mut all = vec![("zweck-purpose", "support")];
    all.extend_from_slice(headers);
    support.call(Method::PATCH, &h.url(WRITE), &all, body).await
}

fn crm_saw_secret(h: &Harness) -> bool {
    h.double.double.received().iter().any(|r| {
        String::from_utf8_lossy(&r.body).contains(SECRET)
            || r.body.windows(4).any(|w| w == b"\x1f\x8b\x08\x00")
    })
}

#[tokio::test]
async fn a_gzip_body_is_decoded_inspected_and_forwarded_plain() {
    let h = Harness::start().await;
    let gzipped = [
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];
    // inspected after decoding: the field support may not write refuses the write
    let body = format!(r#"{{"Title":"Head of Fiction","Secret_Notes__c":"{SECRET}"}}"#);
    let (r, b) = write(&h, &gzipped, gzip(body.as_bytes())).await;
    assert_eq!(r.status(), 403, "{}", String::from_utf8_lossy(&b));
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    assert!(!crm_saw_secret(&h));
    let body = r#"{"Title":"Head of Fiction"}"#;
    let (r, b) = write(&h, &gzipped, gzip(body.as_bytes())).await;
    assert!(
        r.status().is_success() || r.status() == 404,
        "{}: {}",
        r.status(),
        String::from_utf8_lossy(&b)
    );
    let got = h.double.double.received();
    let sent = got
        .iter()
        .find(|r| r.method == Method::PATCH)
        .expect("reached the CRM");
    assert!(!sent.headers.contains_key("content-encoding"));
    assert_eq!(String::from_utf8_lossy(&sent.body), body);
}

#[tokio::test]
async fn bombs_unknown_and_stacked_encodings_are_refused() {
    let h = Harness::start().await;
    let json = ("content-type", "application/json");
    // 64 MiB of spaces around a small object: a 1000:1 bomb
    let mut bomb = Vec::with_capacity(64 << 20);
    bomb.extend_from_slice(format!(r#"{{"Title":"x","Secret_Notes__c":"{SECRET}""#).as_bytes());
    bomb.resize(64 << 20, b' ');
    bomb.push(b'}');
    let (r, b) = write(&h, &[json, ("content-encoding", "gzip")], gzip(&bomb)).await;
    assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(&b));
    assert_eq!(problem_slug(&r, &b), "request-not-inspectable");
    assert!(
        String::from_utf8_lossy(&b).contains("compression-bomb")
            || String::from_utf8_lossy(&b).contains("decoded-too-large")
    );

    let (r, b) = write(
        &h,
        &[json, ("content-encoding", "compress")],
        Bytes::from_static(b"{}"),
    )
    .await;
    assert_eq!(r.status(), 415);
    assert_eq!(problem_slug(&r, &b), "unsupported-media-type");

    // gzip inside gzip decodes; the body is still inspected whole (and refused for the field
    // support may not write)
    let inner = gzip(format!(r#"{{"Title":"Stacked","Secret_Notes__c":"{SECRET}"}}"#).as_bytes());
    let (r, b) = write(
        &h,
        &[json, ("content-encoding", "gzip, gzip")],
        gzip(&inner),
    )
    .await;
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    // a body that claims gzip but is not
    let (r, b) = write(
        &h,
        &[json, ("content-encoding", "gzip")],
        Bytes::from_static(br#"{"Title":"x"}"#),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(problem_slug(&r, &b), "request-not-inspectable");
    assert!(!crm_saw_secret(&h));
}

#[tokio::test]
async fn content_type_confusion_is_refused() {
    let h = Harness::start().await;
    let body = Bytes::from(format!(r#"{{"Title":"x","Secret_Notes__c":"{SECRET}"}}"#));
    for ctype in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1",
        "text/json+xml",
        "multipart/form-data; boundary=x",
    ] {
        let (r, b) = write(&h, &[("content-type", ctype)], body.clone()).await;
        assert_eq!(r.status(), 415, "{ctype}");
        assert_eq!(problem_slug(&r, &b), "unsupported-media-type");
    }
    // no content type at all
    let (r, _) = write(&h, &[], body.clone()).await;
    assert_eq!(r.status(), 415);
    // two content types
    let (r, _) = write(
        &h,
        &[
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
        ],
        body,
    )
    .await;
    assert_eq!(r.status(), 415);
    assert!(h.double.double.received().is_empty());
}

#[tokio::test]
async fn duplicate_escaped_and_deep_json_is_refused() {
    let h = Harness::start().await;
    let json = ("content-type", "application/json");
    for (doc, reason) in [
        (
            format!(r#"{{"Title":"x","Title":"{SECRET}"}}"#),
            "duplicate-key",
        ),
        (
            format!(r#"{{"Title":"x","\u0054itle":"{SECRET}"}}"#),
            "duplicate-key",
        ),
        (
            format!(
                r#"{{"Title":{}"{SECRET}"{}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            ),
            "too-deep",
        ),
        (
            format!("\u{feff}{{\"Title\":\"{SECRET}\"}}"),
            "byte-order-mark",
        ),
        (
            format!(r#"{{"Title":"{SECRET}"}} {{"Title":"x"}}"#),
            "trailing-content",
        ),
    ] {
        let (r, b) = write(&h, &[json], Bytes::from(doc)).await;
        assert_eq!(r.status(), 400, "{reason}");
        assert_eq!(problem_slug(&r, &b), "request-not-inspectable");
        let text = String::from_utf8_lossy(&b);
        assert!(text.contains(reason), "{reason}: {text}");
        assert!(!text.contains(SECRET));
    }
    assert!(h.double.double.received().is_empty());
}

#[tokio::test]
async fn responses_are_re_encoded_for_apps_that_accept_it() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, b) = c
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id,Email,HasOptedOutOfEmail+FROM+Contact+LIMIT+5"),
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let mut d = flate2::read::GzDecoder::new(&b[..]);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut d, &mut text).expect("gunzip");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert!(v["records"].is_array());
    // Range and Upgrade cannot carve a governed body into pieces
    let (r, b) = c
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id+FROM+Contact"),
            &[("range", "bytes=0-10")],
        )
        .await;
    assert_eq!(r.status(), 501);
    assert_eq!(problem_slug(&r, &b), "unsupported");
}

#[tokio::test]
async fn headers_outside_the_dialect_allowlist_never_reach_the_crm() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, _) = c
        .get(
            &h.url("/services/data/v66.0/query?q=SELECT+Id,Email,HasOptedOutOfEmail+FROM+Contact+LIMIT+2"),
            &[("x-debug-user", "livia.marquardt-ostby@example.com"), ("sforce-query-options", "batchSize=200"), ("referer", "https://intranet.example/contact/42")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let got = h.double.double.received();
    let seen = &got.last().expect("reached").headers;
    assert!(!seen.contains_key("x-debug-user"));
    assert!(!seen.contains_key("referer"));
    assert!(
        seen.contains_key("sforce-query-options"),
        "allowed headers pass"
    );
}

#[tokio::test]
async fn the_global_buffer_budget_refuses_what_does_not_fit_with_503() {
    let h = Harness::start_with(|mut o| {
        o.extra_limits = ", buffered_total: 64KiB".into();
        o
    })
    .await;
    let big = format!(r#"{{"Title":"x","Description":"{}"}}"#, "y".repeat(100_000));
    let (r, b) = write(
        &h,
        &[("content-type", "application/json")],
        Bytes::from(big),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(problem_slug(&r, &b), "overloaded");
    assert!(r.headers().contains_key("retry-after"));
    assert!(h.double.double.received().is_empty());
    // a small body still fits
    let (r, _) = write(
        &h,
        &[("content-type", "application/json")],
        Bytes::from_static(br#"{"Title":"x"}"#),
    )
    .await;
    assert!(r.status().is_success() || r.status() == 404);
}

#[tokio::test]
async fn case_variant_and_unknown_keys_are_unclassified_and_dropped_on_writes() {
    let h = Harness::start().await;
    // Salesforce treats field names case-insensitively; the inventory says `Email`, so `EMAIL`
    // is unclassified, and default deny drops it: the write would lose it, so it is refused,
    // naming the keys and never their values; the CRM never stores it
    let body = format!(
        r#"{{"Title":"Head of Fiction","EMAIL":"{SECRET}@example.com","Description":"{{\"Email\":\"{SECRET}\"}}"}}"#
    );
    let (r, b) = write(
        &h,
        &[("content-type", "application/json")],
        Bytes::from(body),
    )
    .await;
    assert_eq!(problem_slug(&r, &b), "write-fields-dropped");
    let detail = String::from_utf8_lossy(&b);
    assert!(
        detail.contains("$.EMAIL") && detail.contains("$.Description"),
        "{detail}"
    );
    assert!(!detail.contains(SECRET), "{detail}");
    assert!(!crm_saw_secret(&h));
    assert!(!h
        .double
        .double
        .received()
        .iter()
        .any(|r| r.method == Method::PATCH));
}

#[tokio::test]
async fn a_slow_drip_body_is_inspected_to_its_last_byte() {
    let h = Harness::start().await;
    // 64 KiB of harmless padding first, the secret last, sent in 1 KiB chunks with pauses
    let mut doc = format!(r#"{{"Title":"{}""#, "t".repeat(64 * 1024));
    doc.push_str(&format!(r#","Secret_Notes__c":"{SECRET}"}}"#));
    let chunks: Vec<Bytes> = doc
        .as_bytes()
        .chunks(1024)
        .map(Bytes::copy_from_slice)
        .collect();
    // a raw HTTP/1.1 connection, so the body can be a slow stream
    let mut tls = client_tls(
        &h.paths().ca_cert(),
        Some((
            &h.paths().client_cert("support-desk"),
            &h.paths().client_key("support-desk"),
        )),
    );
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(h.zweck().proxy_addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("tls");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::patch(WRITE)
        .header("host", "localhost")
        .header("zweck-purpose", "support")
        .header("content-type", "application/json")
        .body(Drip::new(chunks))
        .expect("req");
    let resp = send.send_request(req).await.expect("response");
    // the field support may not write comes last: found, so the write is refused whole
    assert_eq!(resp.status(), 403);
    assert!(!crm_saw_secret(&h));
    assert!(
        !h.double
            .double
            .received()
            .iter()
            .any(|r| r.method == Method::PATCH),
        "the write reached the CRM"
    );
}

/// A body that yields one chunk every 2 ms: a slow client.
struct Drip {
    chunks: std::collections::VecDeque<Bytes>,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Drip {
    fn new(chunks: Vec<Bytes>) -> Drip {
        Drip {
            chunks: chunks.into(),
            sleep: None,
        }
    }
}

impl http_body::Body for Drip {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::future::Future;
        let sleep = self.sleep.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep(std::time::Duration::from_millis(2)))
        });
        if sleep.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        self.sleep = None;
        std::task::Poll::Ready(
            self.chunks
                .pop_front()
                .map(|c| Ok(http_body::Frame::data(c))),
        )
    }
}

#[tokio::test]
async fn values_echoed_into_crm_error_messages_do_not_reach_the_app() {
    let h = Harness::start().await;
    let support = h.cert_client("support-desk", Version::H1);
    let bad = format!("{SECRET}@@invalid");
    let (r, b) = support
        .call(
            Method::POST,
            &h.url("/services/data/v66.0/sobjects/Contact"),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from(format!(r#"{{"LastName":"Fictional","Email":"{bad}"}}"#)),
        )
        .await;
    assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(&b));
    let text = String::from_utf8_lossy(&b);
    assert!(text.contains("INVALID_EMAIL_ADDRESS"), "codes stay: {text}");
    assert!(
        !text.contains(SECRET),
        "the CRM's message echoed the value: {text}"
    );
}

#[tokio::test]
async fn response_headers_outside_the_allowlist_are_dropped() {
    let h = Harness::start_with(|mut o| {
        let dir = policies_with(&o.certs_dir, |t| t + "\n");
        std::fs::write(
            dir.join("inventory/generic.yaml"),
            "dialect: generic\nresources:\n  Echo:\n    operations:\n      - { method: POST, path: \"/__double/echo\", op: write }\n    records: [\"$\"]\n    unclassified: keep\n    fields:\n      $.never_present_key: system\n",
        )
        .expect("inventory");
        o.policies = dir;
        o
    })
    .await;
    let support = h.cert_client("support-desk", Version::H1);
    let (r, _) = support
        .call(
            Method::POST,
            &h.url(&format!(
                "/__double/echo?header=x-debug-user&value={SECRET}"
            )),
            &[
                ("zweck-purpose", "support"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(br#"{"ok":true}"#),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-debug-user").is_none(),
        "a debug header carried data to the app"
    );
    for (name, value) in r.headers() {
        assert!(!value.to_str().unwrap_or("").contains(SECRET), "{name}");
    }
}
