//! Issue 12, items 5 and 12 (upstream side): a response whose framing could smuggle a second
//! one is a 502 `upstream-malformed` and its connection is never reused; a response body that
//! stalls after its head ends (504 `upstream-timeout` when Zweck buffers it, an aborted stream
//! when it streams it), never as a clean short body.
//!
//! The upstream is a scripted HTTP/1.1 server on TLS (tests/common/raw.rs) that answers with
//! exactly the bytes a case gives it; the clients are hyper's HTTP/1.1 and HTTP/2 clients.

mod common;

use std::time::Duration;

use common::raw::{Scripted, ScriptedUpstream};
use common::{eventually, problem_slug, Harness, Version, CERT_APP};
use http_body_util::BodyExt;

/// Two routes to the scripted upstream: `/scripted/` streams untouched, `/services/data/v99.0/`
/// is a governed Salesforce route (Zweck reads and filters its JSON).
async fn harness() -> (Harness, ScriptedUpstream) {
    let (listener, port) = ScriptedUpstream::bind();
    let h = Harness::start_with(move |mut o| {
        let ca = o.certs_dir.join("ca.pem");
        o.extra_upstreams = format!(
            r#"  scripted:
    url: https://localhost:{port}
    dialect: generic
    route: {{ path_prefix: /scripted/ }}
    processor: Test
    jurisdiction: DE
    transfer_mechanism: {{ type: none }}
    ca: {ca}
    body_idle_timeout: 1s
    ungoverned: ["GET /scripted/**"]
  scripted-sf:
    url: https://localhost:{port}
    dialect: salesforce
    route: {{ path_prefix: /services/data/v99.0/ }}
    processor: Test
    jurisdiction: DE
    transfer_mechanism: {{ type: none }}
    ca: {ca}
    body_idle_timeout: 1s
"#,
            ca = ca.display()
        );
        o
    })
    .await;
    let up = ScriptedUpstream::serve(listener, &h);
    (h, up)
}

fn answer(bytes: &str) -> Scripted {
    Scripted {
        bytes: bytes.as_bytes().to_vec(),
        stall: false,
    }
}

fn stalled(bytes: &str) -> Scripted {
    Scripted {
        bytes: bytes.as_bytes().to_vec(),
        stall: true,
    }
}

const GOOD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";

/// Each smuggling framing, and what hyper's parser or Zweck's own check makes of it.
const MALFORMED: [(&str, &str); 6] = [
    (
        "Content-Length beside chunked",
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\
         transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "a coding before chunked",
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: gzip, chunked\r\n\r\n\
         2\r\nok\r\n0\r\n\r\n",
    ),
    (
        "a transfer coding other than chunked (body to the close)",
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: identity\r\n\r\nok",
    ),
    (
        "Transfer-Encoding twice",
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\
         transfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    (
        "two differing Content-Lengths",
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\
         content-length: 3\r\n\r\nok",
    ),
    (
        "a folded header (obs-fold)",
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-folded: a\r\n b\r\n\
         content-length: 2\r\n\r\nok",
    ),
];

#[tokio::test]
async fn ambiguous_upstream_framing_is_502_and_its_connection_is_dropped() {
    let (h, up) = harness().await;
    for version in [Version::H1, Version::H2] {
        let c = h.cert_client(CERT_APP, version);
        for (what, bytes) in MALFORMED {
            up.answer([answer(bytes), answer(GOOD)]);
            let (r, b) = c.get(&h.url("/scripted/x"), &[]).await;
            assert_eq!(r.status(), 502, "{what} ({version:?})");
            assert_eq!(problem_slug(&r, &b), "upstream-malformed", "{what}");
            // the connection that carried it is closed by Zweck ...
            let n = up.accepted() - 1;
            assert!(
                eventually(|| up.closed(n)).await,
                "{what}: Zweck closes the connection"
            );
            // ... and the next request goes out on a new one and is served
            let (r, b) = c.get(&h.url("/scripted/x"), &[]).await;
            assert_eq!(r.status(), 200, "{what}: the next request");
            assert_eq!(&b[..], b"ok");
            assert!(
                up.accepted() > n + 1,
                "{what}: the poisoned connection was reused"
            );
        }
    }
}

#[tokio::test]
async fn a_stalled_upstream_body_ends_in_504_or_an_aborted_stream_never_a_short_body() {
    let (h, up) = harness().await;
    for version in [Version::H1, Version::H2] {
        let c = h.cert_client(CERT_APP, version);

        // governed: Zweck buffers the JSON to filter it, so a stall is a 504 problem
        up.answer([stalled(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n\
             {\"attributes\":{\"type\":\"Contact\"},\"Id\":\"003",
        )]);
        let (r, b) = c
            .get(
                &h.url("/services/data/v99.0/sobjects/Contact/003Qy00000Stall1AAA"),
                &[],
            )
            .await;
        assert_eq!(
            r.status(),
            504,
            "{version:?}: {}",
            String::from_utf8_lossy(&b)
        );
        assert_eq!(problem_slug(&r, &b), "upstream-timeout");

        // ungoverned and streamed: the head went out already, so the body is aborted
        up.answer([stalled(
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
             content-length: 100000\r\n\r\nfirst bytes",
        )]);
        let req = http::Request::get(h.url("/scripted/big"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let resp = c.send(req).await;
        assert_eq!(resp.status(), 200);
        let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
            .await
            .expect("the body ends within the bound");
        assert!(
            body.is_err(),
            "{version:?}: a stalled body must end in an error, not a clean short body"
        );

        // the same for a small JSON body an ungoverned route buffers to rewrite its links
        up.answer([stalled(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{\"a\":",
        )]);
        let (r, b) = c.get(&h.url("/scripted/small.json"), &[]).await;
        assert_eq!(r.status(), 504, "{version:?}");
        assert_eq!(problem_slug(&r, &b), "upstream-timeout");
    }
}

/// `upstreams.<name>.protocol` and the pool (src/pool.rs): an HTTP/1.1 connection whose
/// response body was read to its end carries the next request (on `auto`, where the scripted
/// upstream's ALPN picks http/1.1, and on `http1`); `http2` towards an upstream that does not
/// speak it is a 502 `upstream-unavailable`, never a request sent some other way.
#[tokio::test]
async fn http1_upstream_connections_are_reused_and_http2_only_needs_http2() {
    let (listener, port) = ScriptedUpstream::bind();
    let h = Harness::start_with(move |mut o| {
        let ca = o.certs_dir.join("ca.pem");
        let mut extra = String::new();
        for (name, protocol) in [("auto", "auto"), ("h1", "http1"), ("h2", "http2")] {
            extra.push_str(&format!(
                r#"  scripted-{name}:
    url: https://localhost:{port}
    dialect: generic
    route: {{ path_prefix: /{name}/ }}
    processor: Test
    jurisdiction: DE
    transfer_mechanism: {{ type: none }}
    ca: {ca}
    protocol: {protocol}
    ungoverned: ["GET /{name}/**"]
"#,
                ca = ca.display()
            ));
        }
        o.extra_upstreams = extra;
        o
    })
    .await;
    let up = ScriptedUpstream::serve(listener, &h);
    let c = h.cert_client(CERT_APP, Version::H1);
    for prefix in ["auto", "h1"] {
        let before = up.accepted();
        up.answer([answer(GOOD), answer(GOOD), answer(GOOD)]);
        for i in 0..3 {
            let (r, b) = c.get(&h.url(&format!("/{prefix}/x")), &[]).await;
            assert_eq!(r.status(), 200, "{prefix}, request {i}");
            assert_eq!(&b[..], b"ok");
        }
        assert_eq!(
            up.accepted() - before,
            1,
            "{prefix}: three requests, one after the other, on one upstream connection"
        );
    }
    let (r, b) = c.get(&h.url("/h2/x"), &[]).await;
    assert_eq!(r.status(), 502);
    assert_eq!(problem_slug(&r, &b), "upstream-unavailable");
}
