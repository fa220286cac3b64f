//! Issue 12, item 4: every refusal reaches the client as its problem+json, whatever the body
//! size and protocol, also when Zweck decides before reading the body.
//!
//! The matrix: refusals decided on the head (`write-denied`, `unknown-resource`,
//! `unknown-app`, `purpose-not-granted`, `body-too-large` by `Content-Length`), refusals decided
//! after reading the body, and an ungoverned route that streams the body to the CRM; bodies of
//! 0 B, 16 B, 64 KiB and 8 MiB; four clients: one that writes its whole request before it
//! reads (python-requests' way; it used to see a connection reset), hyper's HTTP/1.1 and
//! HTTP/2 clients, and a raw HTTP/2 client that sees flow control and resets (curl's
//! error 92 was a stream left without flow-control credit, then reset).

mod common;

use bytes::Bytes;
use common::raw::{self, Reader, Upload};
use common::{problem_slug, Harness, Version, CERT_APP};
use http::Method;

const SIZES: [usize; 4] = [0, 16, 64 * 1024, 8 * 1024 * 1024];

/// One request of the matrix and what each body size must get.
struct Case {
    name: &'static str,
    app: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    path: &'static str,
    /// The status and problem type (none: a success) for a body of this size.
    expect: fn(usize) -> (u16, Option<&'static str>),
    /// The status of `GET /services/data/` with the same credential and headers.
    then: u16,
}

/// The harness's `limits.max_body_bytes`.
const MAX_BODY: usize = 1024 * 1024;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a write of a purpose with writes: deny",
            app: Some(CERT_APP),
            headers: &[],
            path: "/services/data/v66.0/sobjects/Contact",
            expect: |_| (403, Some("write-denied")),
            then: 200,
        },
        Case {
            name: "a path no inventory classifies",
            app: Some(CERT_APP),
            headers: &[],
            path: "/services/data/v66.0/not/classified",
            expect: |_| (403, Some("unknown-resource")),
            then: 200,
        },
        Case {
            name: "no credential",
            app: None,
            headers: &[],
            path: "/services/data/v66.0/sobjects/Contact",
            expect: |_| (401, Some("unknown-app")),
            then: 401,
        },
        Case {
            name: "a purpose not granted",
            app: Some(CERT_APP),
            headers: &[("zweck-purpose", "support")],
            path: "/services/data/v66.0/sobjects/Contact",
            expect: |_| (403, Some("purpose-not-granted")),
            then: 403,
        },
        Case {
            name: "a governed write read and refused (not JSON), or too large to read",
            app: Some("support-desk"),
            headers: &[("zweck-purpose", "support")],
            path: "/services/data/v66.0/sobjects/Contact",
            expect: |size| {
                if size > MAX_BODY {
                    (413, Some("body-too-large"))
                } else {
                    (400, Some("request-not-inspectable"))
                }
            },
            then: 200,
        },
        Case {
            name: "an ungoverned route streaming the body to the CRM",
            app: Some(CERT_APP),
            headers: &[],
            path: "/__double/echo-headers",
            expect: |size| {
                if size > MAX_BODY {
                    (413, Some("body-too-large"))
                } else {
                    (200, None)
                }
            },
            then: 200,
        },
    ]
}

fn body(size: usize) -> Bytes {
    Bytes::from(vec![b'a'; size])
}

fn head(h: &Harness, case: &Case, size: usize, extra: &str) -> String {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: localhost:{}\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n{extra}",
        case.path,
        h.zweck().proxy_addr.port()
    );
    for (k, v) in case.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A client that writes its whole request, then reads the answer, then uses the same
/// connection again: python-requests' order. Every answer must arrive and, a drained body
/// behind it, the connection must still serve.
async fn naive_http1(h: &Harness, case: &Case, size: usize) {
    let (status, slug) = (case.expect)(size);
    let tls = raw::connect(h, case.app, b"http/1.1").await;
    let mut r = Reader::new(tls);
    let mut request = head(h, case, size, "").into_bytes();
    request.extend_from_slice(&body(size));
    raw::send(&mut r.stream, &request)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} ({size} B): the request could not be written: {e}",
                case.name
            )
        });
    let resp = r
        .response()
        .await
        .unwrap_or_else(|| panic!("{} ({size} B): no answer", case.name));
    assert_eq!(resp.status, status, "{} ({size} B)", case.name);
    if let Some(slug) = slug {
        assert_eq!(resp.slug(), slug, "{} ({size} B)", case.name);
    }
    // the same connection serves the next request
    let mut again = format!(
        "GET /services/data/ HTTP/1.1\r\nhost: localhost:{}\r\n",
        h.zweck().proxy_addr.port()
    );
    for (k, v) in case.headers {
        again.push_str(&format!("{k}: {v}\r\n"));
    }
    again.push_str("\r\n");
    raw::send(&mut r.stream, again.as_bytes())
        .await
        .expect("write");
    let next = r.response().await;
    assert_eq!(
        next.map(|n| n.status),
        Some(case.then),
        "{} ({size} B): the connection serves the next request",
        case.name
    );
}

/// hyper's clients, which read while they write.
async fn hyper_client(h: &Harness, case: &Case, size: usize, version: Version) {
    let (status, slug) = (case.expect)(size);
    let c = match case.app {
        Some(app) => h.cert_client(app, version),
        None => h.anon_client(version),
    };
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(case.headers);
    let (r, b) = c
        .call(Method::POST, &h.url(case.path), &headers, body(size))
        .await;
    assert_eq!(r.status(), status, "{} ({size} B, {version:?})", case.name);
    if let Some(slug) = slug {
        assert_eq!(problem_slug(&r, &b), slug, "{} ({size} B)", case.name);
    }
}

/// A raw HTTP/2 client: the answer arrives and the upload is never cut off by a reset while
/// the body is within `limits.drain_bytes`.
async fn raw_http2(h: &Harness, case: &Case, size: usize) {
    let (status, slug) = (case.expect)(size);
    let mut send = raw::h2_connect(h, case.app).await;
    let mut b = http::Request::post(h.url(case.path)).header("content-type", "application/json");
    for (k, v) in case.headers {
        b = b.header(*k, *v);
    }
    let req = b.body(()).expect("request");
    let (resp, stream) = send.send_request(req, size == 0).expect("send");
    let upload = if size == 0 {
        None
    } else {
        Some(tokio::spawn(raw::upload(stream, body(size))))
    };
    let (resp, answer) = raw::h2_answer(resp).await;
    let answer = answer.expect("the answer's body arrives whole");
    assert_eq!(resp.status(), status, "{} ({size} B, raw h2)", case.name);
    if let Some(slug) = slug {
        let v: serde_json::Value = serde_json::from_slice(&answer).expect("problem json");
        assert_eq!(
            v["type"],
            format!("urn:zweck:problem:{slug}"),
            "{}",
            case.name
        );
    }
    if let Some(upload) = upload {
        let upload = tokio::time::timeout(raw::BOUND, upload)
            .await
            .expect("upload ends")
            .expect("upload task");
        assert!(
            matches!(upload, Upload::Complete),
            "{} ({size} B): the upload was cut off: {upload:?}",
            case.name
        );
    }
}

#[tokio::test]
async fn every_refusal_reaches_a_client_that_writes_before_it_reads() {
    let h = Harness::start().await;
    for case in cases() {
        for size in SIZES {
            naive_http1(&h, &case, size).await;
        }
    }
}

#[tokio::test]
async fn every_refusal_reaches_hyper_clients_on_http1_and_http2() {
    let h = Harness::start().await;
    for case in cases() {
        for size in SIZES {
            for version in [Version::H1, Version::H2] {
                hyper_client(&h, &case, size, version).await;
            }
        }
    }
}

#[tokio::test]
async fn every_refusal_reaches_an_http2_client_without_cutting_its_upload() {
    let h = Harness::start().await;
    for case in cases() {
        for size in SIZES {
            raw_http2(&h, &case, size).await;
        }
    }
}

/// Past `limits.drain_bytes` the rest of a refused body is not read: HTTP/1.1 closes the
/// connection after the answer (a client that reads while it writes still gets the answer),
/// HTTP/2 resets the stream with NO_ERROR after the answer, never with an error code.
#[tokio::test]
async fn past_the_drain_bound_http1_closes_and_http2_resets_with_no_error() {
    let h = Harness::start_with(|mut o| {
        o.extra_limits = ", drain_bytes: 64KiB".into();
        o
    })
    .await;
    let case = &cases()[0];
    let size = 8 * 1024 * 1024;

    // HTTP/1.1: write in the background, read the answer, then see the close
    let tls = raw::connect(&h, case.app, b"http/1.1").await;
    let (read, mut write) = tokio::io::split(tls);
    let mut request = head(&h, case, size, "").into_bytes();
    request.extend_from_slice(&body(size));
    let writer = tokio::spawn(async move {
        let _ = raw::send(&mut write, &request).await;
        write
    });
    let mut r = Reader::new(read);
    let resp = r.response().await.expect("the answer arrives");
    assert_eq!(resp.slug(), "write-denied");
    assert!(
        r.closed().await,
        "the connection is closed after the answer"
    );
    drop(writer);

    // hyper's HTTP/1.1 client gets the answer too
    hyper_client(&h, case, size, Version::H1).await;

    // HTTP/2: the answer, then RST_STREAM(NO_ERROR) for the upload
    let mut send = raw::h2_connect(&h, case.app).await;
    let req = http::Request::post(h.url(case.path))
        .header("content-type", "application/json")
        .body(())
        .expect("request");
    let (resp, stream) = send.send_request(req, false).expect("send");
    let upload = tokio::spawn(raw::upload(stream, body(size)));
    let (resp, answer) = raw::h2_answer(resp).await;
    assert_eq!(resp.status(), 403);
    assert!(answer.is_ok(), "the answer's body arrives whole");
    match upload.await.expect("upload task") {
        Upload::Reset(reason, sent) => {
            assert_eq!(reason, h2::Reason::NO_ERROR, "reset after {sent} B");
            assert!(sent < size);
        }
        Upload::Complete => panic!("an 8 MiB body past a 64 KiB drain bound was read whole"),
    }
}

/// A client that asked `Expect: 100-continue` and was refused on the head has sent no body:
/// it gets the answer without being asked for it, and the connection is closed after it.
#[tokio::test]
async fn a_client_waiting_for_100_continue_is_answered_without_sending_its_body() {
    let h = Harness::start().await;
    let case = &cases()[0];
    let tls = raw::connect(&h, case.app, b"http/1.1").await;
    let mut r = Reader::new(tls);
    let request = head(&h, case, 8 * 1024 * 1024, "expect: 100-continue\r\n");
    raw::send(&mut r.stream, request.as_bytes())
        .await
        .expect("write head");
    let resp = r.response().await.expect("the answer, before any body");
    assert_eq!(resp.status, 403);
    assert!(resp.informational.is_empty(), "never asked for the body");
    assert_eq!(resp.slug(), "write-denied");
    assert!(r.closed().await, "no body was read: the connection closes");
}
