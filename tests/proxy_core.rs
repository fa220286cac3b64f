//! The proxy core through real TLS on loopback: identity, routing, forwarding, credentials,
//! link rewriting, failures and shutdown. Every test starts its own CRM double and Zweck.

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use http_body_util::BodyExt;

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("json body")
}

#[tokio::test]
async fn each_dialect_passes_over_http1_and_http2_with_a_client_certificate() {
    let h = Harness::start().await;
    for version in [Version::H1, Version::H2] {
        let c = h.cert_client(CERT_APP, version);
        let (r, b) = c.get(&h.url("/services/data/"), &[]).await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
        assert_eq!(
            r.version(),
            if version == Version::H2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            }
        );
        assert!(json(&b).as_array().is_some_and(|a| !a.is_empty()));
        assert!(r.headers().contains_key("zweck-request-id"));

        let (r, b) = c
            .get(&h.url("/crm/v3/objects/companies?limit=5"), &[])
            .await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
        assert_eq!(json(&b)["results"].as_array().map(Vec::len), Some(5));

        let (r, b) = c.get(&h.url("/api/data/v9.2/"), &[]).await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    }
}

#[tokio::test]
async fn api_key_app_in_either_header_and_its_key_never_reaches_the_crm() {
    let h = Harness::start().await;
    let key = h.api_key();
    let c = h.anon_client(Version::H2);
    let bearer = format!("Bearer {key}");
    for headers in [
        vec![("zweck-api-key", key.as_str())],
        vec![("authorization", bearer.as_str())],
    ] {
        h.double.double.clear_received();
        let (r, b) = c.get(&h.url("/services/data/v66.0/limits"), &headers).await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
        let got = h.double.double.received();
        assert_eq!(got.len(), 1);
        let seen = &got[0].headers;
        // the upstream's own credential, injected by Zweck
        assert_eq!(
            seen.get("authorization").and_then(|v| v.to_str().ok()),
            Some(format!("Bearer {UPSTREAM_TOKEN}").as_str())
        );
        for (name, value) in seen {
            let v = value.to_str().unwrap_or("");
            assert!(!v.contains(&key), "the app's key leaked in {name}");
            assert!(
                !name.as_str().starts_with("zweck-"),
                "{name} reached the CRM"
            );
        }
    }
}

#[tokio::test]
async fn spoofed_zweck_headers_and_client_addresses_are_stripped() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, _) = c
        .get(
            &h.url("/__double/echo-headers"),
            &[
                ("zweck-purpose", "newsletter"),
                ("zweck-policy", "forged"),
                ("zweck-app", "someone-else"),
                ("x-forwarded-for", "203.0.113.9"),
                ("cookie", "session=abc"),
                ("authorization", "Bearer forged-upstream-token"),
            ],
        )
        .await;
    // an Authorization that is no known key carries no identity next to the certificate,
    // and the forged token never reaches the CRM
    assert_eq!(r.status(), StatusCode::OK);
    let got = h.double.double.received();
    let seen = &got.last().expect("request reached the double").headers;
    assert_eq!(
        seen.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {UPSTREAM_TOKEN}").as_str())
    );
    // a known key of another app next to the certificate is refused
    let key = h.api_key();
    let (r, _) = c
        .get(
            &h.url("/__double/echo-headers"),
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let (r, b) = c
        .get(
            &h.url("/__double/echo-headers"),
            &[
                ("zweck-purpose", "newsletter"),
                ("zweck-policy", "forged"),
                ("zweck-app", "someone-else"),
                ("x-forwarded-for", "203.0.113.9"),
                ("cookie", "session=abc"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let got = h.double.double.received();
    let seen = &got.last().expect("request reached the double").headers;
    for name in [
        "zweck-purpose",
        "zweck-policy",
        "zweck-app",
        "x-forwarded-for",
        "cookie",
    ] {
        assert!(!seen.contains_key(name), "{name} reached the CRM");
    }
    assert_eq!(
        seen.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {UPSTREAM_TOKEN}").as_str())
    );
}

#[tokio::test]
async fn unknown_app_is_401_and_ungranted_purpose_is_403() {
    let h = Harness::start().await;
    let anon = h.anon_client(Version::H1);
    for headers in [
        vec![],
        vec![("zweck-api-key", "zk_not-a-key")],
        vec![("authorization", "Bearer nope")],
    ] {
        let (r, b) = anon.get(&h.url("/services/data/"), &headers).await;
        assert_eq!(r.status(), 401);
        assert_eq!(problem_slug(&r, &b), "unknown-app");
    }
    // a certificate from the right CA that names no configured app
    let stranger = h.cert_client("stranger", Version::H1);
    let (r, b) = stranger.get(&h.url("/services/data/"), &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(problem_slug(&r, &b), "unknown-app");

    let c = h.cert_client(CERT_APP, Version::H2);
    let (r, b) = c
        .get(&h.url("/services/data/"), &[("zweck-purpose", "analytics")])
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &b), "purpose-not-granted");
    // two purposes granted, none named
    let s = h.cert_client("support-desk", Version::H2);
    let (r, b) = s.get(&h.url("/services/data/"), &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_slug(&r, &b), "purpose-missing");
    let (r, _) = s
        .get(&h.url("/services/data/"), &[("zweck-purpose", "support")])
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        h.double.double.received().len() == 1,
        "refused requests never reach the CRM"
    );
}

#[tokio::test]
async fn unknown_paths_bad_paths_and_method_overrides_never_reach_the_crm() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let cases: &[(&str, u16, &str)] = &[
        (
            "/services/data/v66.0/sobjects/Opportunity/006Qy00000Fict01AAA",
            403,
            "unknown-resource",
        ),
        ("/crm/v3/objects/deals", 403, "unknown-resource"),
        ("/api/data/v9.2/systemusers", 403, "unknown-resource"),
        ("/services/data/v66.0/../v66.0/limits", 400, "bad-path"),
        ("/services/data/v66.0/./limits", 400, "bad-path"),
        ("/services/data/v66.0%2Flimits", 400, "bad-path"),
        ("/services/data/v66.0/%2e%2e/limits", 400, "bad-path"),
        ("/services//data/v66.0/limits", 400, "bad-path"),
        (
            "/services/data/v66.0/limits?_HttpMethod=DELETE",
            400,
            "method-override",
        ),
        ("/elsewhere/", 404, "no-route"),
    ];
    for (path, status, slug) in cases {
        let (r, b) = c.get(&h.url(path), &[]).await;
        assert_eq!(
            r.status().as_u16(),
            *status,
            "{path}: {}",
            String::from_utf8_lossy(&b)
        );
        assert_eq!(&problem_slug(&r, &b), slug, "{path}");
    }
    let (r, b) = c
        .get(
            &h.url("/services/data/v66.0/limits"),
            &[("x-http-method-override", "DELETE")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(problem_slug(&r, &b), "method-override");
    assert!(
        h.double.double.received().is_empty(),
        "nothing reached the CRM"
    );
    // the canonical form of an encoded unreserved character still works
    let (r, _) = c.get(&h.url("/services/data/v66.0/limit%73"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        h.double.double.received()[0].path_and_query,
        "/services/data/v66.0/limits"
    );
}

#[tokio::test]
async fn absolute_upstream_links_are_rewritten_to_the_public_url() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H2);
    let upstream = format!("127.0.0.1:{}", h.double.addr.port());

    // HubSpot paging.next.link
    let (r, b) = c
        .get(&h.url("/crm/v3/objects/companies?limit=2"), &[])
        .await;
    assert_eq!(r.status(), 200);
    let v = json(&b);
    let link = v["paging"]["next"]["link"].as_str().expect("paging link");
    assert!(
        link.starts_with("https://zweck.test:8443/crm/v3/objects/companies?"),
        "{link}"
    );
    assert!(!String::from_utf8_lossy(&b).contains(&upstream));

    // Dataverse @odata.nextLink (a governed list: links are rewritten after the policy)
    let (r, b) = c
        .get(
            &h.url("/api/data/v9.2/contacts?$select=firstname,emailaddress1&$top=50"),
            &[("prefer", "odata.maxpagesize=2")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let v = json(&b);
    let next = v["@odata.nextLink"].as_str().expect("nextLink");
    assert!(
        next.starts_with("https://zweck.test:8443/api/data/v9.2/contacts"),
        "{next}"
    );
    assert!(!String::from_utf8_lossy(&b).contains(&upstream));

    // OData-EntityId on create
    let s = h.cert_client("support-desk", Version::H1);
    let (r, b) = s
        .call(
            Method::POST,
            &h.url("/api/data/v9.2/contacts"),
            &[
                ("content-type", "application/json"),
                ("zweck-purpose", "support"),
            ],
            Bytes::from_static(br#"{"firstname":"Fiona","lastname":"Fictional"}"#),
        )
        .await;
    assert!(
        r.status().is_success(),
        "{}: {}",
        r.status(),
        String::from_utf8_lossy(&b)
    );
    let id = r.headers()["odata-entityid"].to_str().expect("header");
    assert!(
        id.starts_with("https://zweck.test:8443/api/data/v9.2/contacts("),
        "{id}"
    );
}

#[tokio::test]
async fn oauth2_client_credentials_are_fetched_once_and_injected() {
    let h = Harness::start_with(|mut o| {
        o.oauth = true;
        o
    })
    .await;
    let c = h.cert_client(CERT_APP, Version::H2);
    for _ in 0..5 {
        let (r, b) = c.get(&h.url("/services/data/v66.0/limits"), &[]).await;
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    }
    assert_eq!(
        h.double.double.tokens_issued(),
        1,
        "the token is cached until it nears expiry"
    );
    let got = h.double.double.received();
    let data: Vec<_> = got
        .iter()
        .filter(|r| r.path_and_query.starts_with("/services"))
        .collect();
    assert_eq!(data.len(), 5);
    let first = data[0].headers.get("authorization").cloned();
    assert!(first.is_some());
    assert!(data
        .iter()
        .all(|r| r.headers.get("authorization") == first.as_ref()));
    assert_ne!(
        first.and_then(|v| v.to_str().ok().map(str::to_string)),
        Some(format!("Bearer {UPSTREAM_TOKEN}"))
    );
}

// Zweck's own timers only: paused time runs them out at once.
#[tokio::test(start_paused = true)]
async fn upstream_down_is_502_and_too_slow_is_504() {
    // a port that was free a moment ago: nothing listens there
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = free.local_addr().expect("addr").port();
    drop(free);
    let h = Harness::start_with(|mut o| {
        o.response_timeout = "500ms";
        o.extra_upstreams = format!(
            r#"  dead:
    url: https://127.0.0.1:{dead_port}
    dialect: generic
    route: {{ path_prefix: /dead/ }}
    processor: Nobody
    jurisdiction: DE
    transfer_mechanism: {{ type: none }}
    ungoverned: ["GET /dead/**"]
"#
        );
        o
    })
    .await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, b) = c.get(&h.url("/dead/x"), &[]).await;
    assert_eq!(r.status(), 502);
    assert_eq!(problem_slug(&r, &b), "upstream-unavailable");

    // the double accepts and never answers
    let (r, b) = c.get(&h.url("/__double/stall"), &[]).await;
    assert_eq!(r.status(), 504);
    assert_eq!(problem_slug(&r, &b), "upstream-timeout");
}

#[tokio::test]
async fn shutdown_while_a_large_body_is_in_flight_lets_it_complete() {
    let mut h = Harness::start().await;
    const SIZE: u64 = 8 * 1024 * 1024;
    let c = h.cert_client(CERT_APP, Version::H1);
    let req = http::Request::get(h.url(&format!("/__double/large?bytes={SIZE}&chunk=65536")))
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("req");
    let resp = c.send(req).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // read the first chunk, then shut down while the rest is still coming
    let mut received: u64 = 0;
    let mut next_byte: u64 = 0;
    let check = |data: &Bytes, next: &mut u64| {
        for b in data {
            assert_eq!(
                u64::from(*b),
                *next % 251,
                "bytes arrive intact and in order"
            );
            *next += 1;
        }
    };
    if let Some(frame) = body.frame().await {
        let data = frame.expect("frame").into_data().expect("data");
        received += data.len() as u64;
        check(&data, &mut next_byte);
    }
    assert!(received < SIZE);
    let addr = h.zweck().proxy_addr;
    let stopper = h.zweck().stopper();
    let _ = stopper.send(true);
    let z = h.zweck.take().expect("running");
    let drain = tokio::spawn(z.shutdown());
    while let Some(frame) = body.frame().await {
        let data = frame
            .expect("body completes")
            .into_data()
            .unwrap_or_default();
        received += data.len() as u64;
        check(&data, &mut next_byte);
    }
    assert_eq!(received, SIZE, "the whole body arrived");
    assert_eq!(drain.await.expect("join"), zweck::server::Drained::Clean);
    // and the listener is gone: new connections are refused
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H2);
    let (r, _) = c.get(&h.url("/services/data/"), &[]).await;
    assert_eq!(r.status(), 200);
    let get = |path: &'static str| h.admin_get(path);
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await.0, 200);
    let (status, text) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(r#"zweck_requests_total{upstream="salesforce",app="newsletter-tool",purpose="newsletter",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("zweck_upstream_latency_seconds_count{upstream=\"salesforce\"}"),
        "{text}"
    );
    assert!(text.contains("zweck_open_connections"), "{text}");
    assert!(text.contains("zweck_transfer_log_failed 0"), "{text}");
    assert!(text.contains("zweck_transfer_log_entries "), "{text}");
    assert!(
        !text.contains("/services/data"),
        "metrics carry no raw paths"
    );
}

#[tokio::test]
async fn request_bodies_over_the_cap_are_refused_before_forwarding() {
    let h = Harness::start().await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let big = Bytes::from(vec![b'x'; 2 * 1024 * 1024]);
    let (r, b) = c
        .call(
            Method::POST,
            &h.url("/__double/echo-headers"),
            &[("content-type", "application/json")],
            big,
        )
        .await;
    assert_eq!(r.status(), 413);
    assert_eq!(problem_slug(&r, &b), "body-too-large");
    assert!(h.double.double.received().is_empty());
}

// Zweck's own timers only: paused time runs them out at once.
#[tokio::test(start_paused = true)]
async fn silent_clients_are_cut_off_by_the_handshake_and_header_timeouts() {
    use tokio::io::AsyncReadExt;
    let h = Harness::start_with(|mut o| {
        o.handshake_timeout = "300ms";
        o.header_read_timeout = "300ms";
        o
    })
    .await;
    let addr = h.zweck().proxy_addr;
    let bound = std::time::Duration::from_secs(30);

    // a TCP client that never starts its TLS handshake
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(bound, tcp.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the server closed the connection"
    );

    // a TLS client that never sends its request headers
    let mut tls = client_tls(&h.paths().ca_cert(), None);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = connector.connect(name, tcp).await.expect("handshake");
    let read = tokio::time::timeout(bound, stream.read(&mut buf))
        .await
        .expect("closed in time");
    // hyper may answer 408 before closing; either way no request was served
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408")),
    }
    assert!(h.double.double.received().is_empty());
}

/// An upstream that sends both Content-Length and Transfer-Encoding (request smuggling
/// material) is refused, never passed on in either reading (issue 12 item 5; the other
/// framings and the dropped connection: tests/wire_upstream.rs).
#[tokio::test]
async fn an_upstream_sending_both_content_length_and_chunked_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs_dir = tempfile::tempdir().expect("tempdir");
    make_certs(certs_dir.path());
    let paths = zweck::certs::DevPaths::new(certs_dir.path());
    let tls = zweck::tls::simple_server_config(&paths.crm_double_cert(), &paths.crm_double_key())
        .expect("tls");
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\
                          transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    let ca = paths.ca_cert();
    let h = Harness::start_with(move |mut o| {
        o.extra_upstreams = format!(
            r#"  smuggler:
    url: https://localhost:{port}
    dialect: generic
    route: {{ path_prefix: /smuggle/ }}
    processor: Test
    jurisdiction: DE
    transfer_mechanism: {{ type: none }}
    ca: {}
    ungoverned: ["GET /smuggle/**"]
"#,
            ca.display()
        );
        o
    })
    .await;
    for version in [Version::H1, Version::H2] {
        let c = h.cert_client(CERT_APP, version);
        let (r, b) = c.get(&h.url("/smuggle/x"), &[]).await;
        assert_eq!(r.status(), 502);
        assert_eq!(problem_slug(&r, &b), "upstream-malformed");
    }
}

/// `limits.idle_timeout`: a connection with no request in flight is closed (HTTP/2 gets
/// GOAWAY), but one whose request runs longer than the idle timeout stays usable.
// Zweck's own timers only: paused time runs them out at once.
#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed_but_busy_ones_are_not() {
    use http_body_util::BodyExt;
    let h = Harness::start_with(|mut o| {
        o.response_timeout = "3s";
        o.header_read_timeout = "60s";
        o.extra_limits = ", idle_timeout: 1s".into();
        o
    })
    .await;
    let addr = h.zweck().proxy_addr;
    let p = h.paths();
    let bound = std::time::Duration::from_secs(60);
    // hyper's connection-level clients add no Host; HTTP/1.1 requires one (RFC 9112 §3.2)
    let request = |path: &str| {
        http::Request::get(format!("https://localhost:{}{path}", addr.port()))
            .header("host", format!("localhost:{}", addr.port()))
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request")
    };
    for alpn in [b"h2".as_slice(), b"http/1.1".as_slice()] {
        let mut tls = client_tls(
            &p.ca_cert(),
            Some((&p.client_cert(CERT_APP), &p.client_key(CERT_APP))),
        );
        tls.alpn_protocols = vec![alpn.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let io = hyper_util::rt::TokioIo::new(connector.connect(name, tcp).await.expect("tls"));
        // The send handle stays alive: a client drops its connection when it goes.
        let (mut send, connection) = if alpn == b"h2" {
            let (send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
            (Sender::H2(send), tokio::spawn(conn))
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("h1 handshake");
            (Sender::H1(send), tokio::spawn(conn))
        };
        // The upstream never answers: the request is in flight for the 3 s response
        // timeout, three times the idle timeout, and gets its 504.
        let resp = send.send(request("/__double/stall")).await;
        assert_eq!(resp.status(), 504, "{alpn:?}");
        resp.into_body().collect().await.expect("504 body");
        // The connection was busy, not idle: it still takes the next request.
        let resp = send.send(request("/services/data/")).await;
        assert_eq!(resp.status(), 200, "{alpn:?}");
        resp.into_body().collect().await.expect("body");
        // Then nothing: the server closes the idle connection by itself.
        let closed = tokio::time::timeout(bound, connection)
            .await
            .unwrap_or_else(|_| panic!("{alpn:?}: the idle connection is closed"));
        assert!(matches!(closed, Ok(Ok(()))), "{alpn:?}: {closed:?}");
    }
    assert!(
        eventually(|| h.zweck().state.metrics.open_connections.get() == 0).await,
        "every connection is gone"
    );
}

enum Sender {
    H2(hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>),
    H1(hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        req: http::Request<http_body_util::Empty<Bytes>>,
    ) -> http::Response<hyper::body::Incoming> {
        match self {
            Sender::H2(s) => s.send_request(req).await,
            Sender::H1(s) => s.send_request(req).await,
        }
        .expect("response")
    }
}
