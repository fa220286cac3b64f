//! Issue 12, items 5 and 12 (app side): a request body that stops arriving is 408
//! `request-timeout` instead of a connection held for minutes; one header limit that
//! HTTP/1.1 and HTTP/2 enforce alike (431 `headers-too-large`); `Host` missing, doubled or
//! disagreeing with `:authority` is 400 `bad-host`; request framing that could smuggle a
//! second request (Content-Length beside Transfer-Encoding, ...) never reaches the CRM as
//! the app framed it.
//!
//! Slow peers are peers that never send: the limits are short and the waits generous, and
//! nothing asserts a duration.

mod common;

use bytes::Bytes;
use common::raw::{self, Reader};
use common::{Harness, CERT_APP};

/// A harness whose request bodies must arrive within a second (plus what they earn).
async fn impatient() -> Harness {
    Harness::start_with(|mut o| {
        o.extra_limits = ", body_read_timeout: 1s, body_min_rate: 1KiB".into();
        o
    })
    .await
}

fn host(h: &Harness) -> String {
    format!("localhost:{}", h.zweck().proxy_addr.port())
}

/// An app, a path and extra headers.
type Target = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// A governed write Zweck must read whole, and an ungoverned one it streams to the CRM.
const SLOW_TARGETS: [Target; 2] = [
    (
        "support-desk",
        "/services/data/v66.0/sobjects/Contact",
        &[("zweck-purpose", "support")],
    ),
    (CERT_APP, "/__double/echo-headers", &[]),
];

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_408_on_http1() {
    let h = impatient().await;
    for (app, path, headers) in SLOW_TARGETS {
        let mut r = Reader::new(raw::connect(&h, Some(app), b"http/1.1").await);
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n",
            host(&h)
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n{\"");
        raw::send(&mut r.stream, head.as_bytes())
            .await
            .expect("write");
        // ... and nothing more
        let resp = r
            .response()
            .await
            .expect("an answer, not a connection held open");
        assert_eq!(resp.status, 408, "{path}");
        assert_eq!(resp.slug(), "request-timeout", "{path}");
        assert!(
            r.closed().await,
            "{path}: the connection is closed after it"
        );
    }
    assert!(
        h.double
            .double
            .received()
            .iter()
            .all(|r| r.path_and_query != "/services/data/v66.0/sobjects/Contact"),
        "nothing of a slow governed body reached the CRM"
    );
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_408_on_http2() {
    let h = impatient().await;
    for (app, path, headers) in SLOW_TARGETS {
        let mut send = raw::h2_connect(&h, Some(app)).await;
        let mut b = http::Request::post(h.url(path)).header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (resp, mut stream) = send
            .send_request(b.body(()).expect("request"), false)
            .expect("send");
        stream
            .send_data(Bytes::from_static(b"{\""), false)
            .expect("data");
        // the stream stays open and silent
        let (resp, answer) = raw::h2_answer(resp).await;
        assert_eq!(resp.status(), 408, "{path}");
        let v: serde_json::Value =
            serde_json::from_slice(&answer.expect("the answer arrives whole")).expect("json");
        assert_eq!(v["type"], "urn:zweck:problem:request-timeout", "{path}");
        drop(stream);
    }
}

/// A header block over `limits.max_header_bytes` (64 KiB) but within the HTTP layer's
/// cut-off (twice that) gets the same 431 problem on both protocols; a block past the
/// cut-off gets a bare 431 from the HTTP layer.
#[tokio::test]
async fn one_header_limit_on_http1_and_http2() {
    let h = Harness::start().await;
    let big = "a".repeat(70 * 1024);
    let small = "a".repeat(60 * 1024);

    // HTTP/1.1
    for (value, want) in [(&small, 200), (&big, 431)] {
        let mut r = Reader::new(raw::connect(&h, Some(CERT_APP), b"http/1.1").await);
        let req = format!(
            "GET /services/data/ HTTP/1.1\r\nhost: {}\r\nx-big: {value}\r\n\r\n",
            host(&h)
        );
        raw::send(&mut r.stream, req.as_bytes())
            .await
            .expect("write");
        let resp = r.response().await.expect("answer");
        assert_eq!(resp.status, want, "h1, {} B header", value.len());
        if want == 431 {
            assert_eq!(resp.slug(), "headers-too-large");
        }
    }
    let huge = "a".repeat(200 * 1024);
    let mut r = Reader::new(raw::connect(&h, Some(CERT_APP), b"http/1.1").await);
    let req = format!(
        "GET /services/data/ HTTP/1.1\r\nhost: {}\r\nx-big: {huge}\r\n\r\n",
        host(&h)
    );
    // the server may stop reading part-way: the answer matters, not the write
    let _ = raw::send(&mut r.stream, req.as_bytes()).await;
    let resp = r.response().await.expect("answer");
    assert_eq!(resp.status, 431, "h1, past the cut-off");

    // HTTP/2
    for (value, want) in [(&small, 200), (&big, 431)] {
        let mut send = raw::h2_connect(&h, Some(CERT_APP)).await;
        let req = http::Request::get(h.url("/services/data/"))
            .header("x-big", value.as_str())
            .body(())
            .expect("request");
        let (resp, _) = send.send_request(req, true).expect("send");
        let (resp, answer) = raw::h2_answer(resp).await;
        assert_eq!(resp.status(), want, "h2, {} B header", value.len());
        if want == 431 {
            let v: serde_json::Value =
                serde_json::from_slice(&answer.expect("answer")).expect("json");
            assert_eq!(v["type"], "urn:zweck:problem:headers-too-large");
        }
    }
    let mut send = raw::h2_connect(&h, Some(CERT_APP)).await;
    let req = http::Request::get(h.url("/services/data/"))
        .header("x-big", huge.as_str())
        .body(())
        .expect("request");
    // the h2 crate sends it; hyper's HTTP/2 layer answers a bare 431 (RFC 9113 §10.5.1)
    let (resp, _) = send.send_request(req, true).expect("send");
    let resp = tokio::time::timeout(raw::BOUND, resp)
        .await
        .expect("an answer in time")
        .expect("an answer, not a reset");
    assert_eq!(resp.status(), 431, "h2, past the cut-off");
}

/// At most 100 header fields on either protocol (hyper's HTTP/1.1 parser's fixed limit):
/// 431 on both, HTTP/2 with Zweck's problem.
#[tokio::test]
async fn one_header_field_count_on_http1_and_http2() {
    let h = Harness::start().await;
    let fields = |n: usize| (0..n).map(|i| (format!("x-f{i}"), "v")).collect::<Vec<_>>();
    for (n, want) in [(90, 200), (120, 431)] {
        let mut r = Reader::new(raw::connect(&h, Some(CERT_APP), b"http/1.1").await);
        let mut req = format!("GET /services/data/ HTTP/1.1\r\nhost: {}\r\n", host(&h));
        for (k, v) in fields(n) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        raw::send(&mut r.stream, req.as_bytes())
            .await
            .expect("write");
        let resp = r.response().await.expect("answer");
        assert_eq!(resp.status, want, "h1, {n} fields");

        let mut send = raw::h2_connect(&h, Some(CERT_APP)).await;
        let mut b = http::Request::get(h.url("/services/data/"));
        for (k, v) in fields(n) {
            b = b.header(k, v);
        }
        let (resp, _) = send
            .send_request(b.body(()).expect("request"), true)
            .expect("send");
        let (resp, answer) = raw::h2_answer(resp).await;
        assert_eq!(resp.status(), want, "h2, {n} fields");
        if want == 431 {
            let v: serde_json::Value =
                serde_json::from_slice(&answer.expect("answer")).expect("json");
            assert_eq!(v["type"], "urn:zweck:problem:headers-too-large");
        }
    }
}

#[tokio::test]
async fn host_missing_doubled_or_disagreeing_is_400() {
    let h = Harness::start().await;
    let authority = host(&h);
    let cases = [
        ("no Host", String::new(), 400),
        (
            "two Hosts",
            format!("host: {authority}\r\nhost: {authority}\r\n"),
            400,
        ),
        (
            "two different Hosts",
            format!("host: {authority}\r\nhost: crm.example\r\n"),
            400,
        ),
        ("a Host that is no host", "host: a b\r\n".to_string(), 400),
        ("one Host", format!("host: {authority}\r\n"), 200),
    ];
    for (what, hosts, want) in cases {
        let mut r = Reader::new(raw::connect(&h, Some(CERT_APP), b"http/1.1").await);
        let req = format!("GET /services/data/ HTTP/1.1\r\n{hosts}\r\n");
        raw::send(&mut r.stream, req.as_bytes())
            .await
            .expect("write");
        let resp = r.response().await.expect("answer");
        assert_eq!(resp.status, want, "h1: {what}");
        if want == 400 {
            assert_eq!(resp.slug(), "bad-host", "h1: {what}");
        }
    }
    // an absolute target whose authority the Host contradicts
    let mut r = Reader::new(raw::connect(&h, Some(CERT_APP), b"http/1.1").await);
    let req =
        format!("GET https://{authority}/services/data/ HTTP/1.1\r\nhost: crm.example\r\n\r\n");
    raw::send(&mut r.stream, req.as_bytes())
        .await
        .expect("write");
    let resp = r.response().await.expect("answer");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.slug(), "bad-host");

    // HTTP/2: Host beside :authority must name the same host
    for (value, want) in [("crm.example", 400), (authority.as_str(), 200)] {
        let mut send = raw::h2_connect(&h, Some(CERT_APP)).await;
        let req = http::Request::get(h.url("/services/data/"))
            .header("host", value)
            .body(())
            .expect("request");
        let (resp, _) = send.send_request(req, true).expect("send");
        let (resp, answer) = raw::h2_answer(resp).await;
        assert_eq!(resp.status(), want, "h2: Host {value}");
        if want == 400 {
            let v: serde_json::Value =
                serde_json::from_slice(&answer.expect("answer")).expect("json");
            assert_eq!(v["type"], "urn:zweck:problem:bad-host");
        }
    }
}

/// Request framing from apps (RFC 9112 §6.3): hyper reads Content-Length beside chunked by
/// its chunks and closes the connection after the answer; other smuggling framings get a
/// bare 400. Whatever the app sent, the CRM sees Zweck's own framing.
#[tokio::test]
async fn smuggling_framings_from_apps_never_reach_the_crm_as_sent() {
    let h = Harness::start().await;
    let authority = host(&h);
    let post = |extra: &str, body: &str| {
        format!(
            "POST /__double/echo-headers HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n{extra}\r\n{body}"
        )
    };

    // Content-Length beside chunked: read as chunked, answered, then the connection closes
    let mut r = Reader::new(raw::connect(&h, Some(CERT_APP), b"http/1.1").await);
    let req = post(
        "content-length: 3\r\ntransfer-encoding: chunked\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    );
    raw::send(&mut r.stream, req.as_bytes())
        .await
        .expect("write");
    let resp = r.response().await.expect("answer");
    assert_eq!(resp.status, 200, "read by its chunks and forwarded");
    let received = h.double.double.received();
    let sent: Vec<_> = received
        .iter()
        .filter(|r| r.path_and_query == "/__double/echo-headers")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        &sent[0].body[..],
        b"hello",
        "the chunks, not the stale length"
    );
    assert_ne!(
        sent[0]
            .headers
            .get("content-length")
            .map(http::HeaderValue::as_bytes),
        Some(b"3".as_slice()),
        "the app's stale Content-Length reached the CRM"
    );
    assert!(
        r.closed().await,
        "the connection closes after a CL+TE request"
    );

    // what hyper refuses outright, before any of it reaches Zweck's pipeline
    for (what, extra, body) in [
        (
            "a coding other than chunked",
            "transfer-encoding: gzip\r\n",
            "xx",
        ),
        (
            "chunked not last",
            "transfer-encoding: chunked, gzip\r\n",
            "2\r\nxx\r\n0\r\n\r\n",
        ),
        (
            "two differing Content-Lengths",
            "content-length: 2\r\ncontent-length: 3\r\n",
            "xxx",
        ),
        (
            "a folded header",
            "x-folded: a\r\n b\r\ncontent-length: 2\r\n",
            "xx",
        ),
    ] {
        let mut r = Reader::new(raw::connect(&h, Some(CERT_APP), b"http/1.1").await);
        raw::send(&mut r.stream, post(extra, body).as_bytes())
            .await
            .expect("write");
        let resp = r.response().await.expect("answer");
        assert_eq!(resp.status, 400, "{what}");
        assert!(r.closed().await, "{what}: the connection closes");
    }
    let forwarded = h
        .double
        .double
        .received()
        .iter()
        .filter(|r| r.path_and_query == "/__double/echo-headers")
        .count();
    assert!(
        forwarded <= 1,
        "only the CL+TE request may have been forwarded"
    );
}
