//! Reloading everything while Zweck runs: a renewed server certificate is served to new
//! connections while an open one finishes on the old; a new client CA, API key, upstream
//! credential apply at once; a broken change, a listen address change and a policy set that
//! drops a granted purpose are refused and the last good state stays; the admin endpoint
//! needs its token.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use zweck::reload::{self, ReloadError};

const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,FirstName+FROM+Contact+LIMIT+2";

/// Writes the config the harness started from to `<dir>/zweck.yaml` (the file a reload
/// reads), with `edit` applied.
fn write_config(h: &Harness, opts: &Options, edit: impl FnOnce(String) -> String) {
    let text = edit(config_text(h.dir.path(), opts));
    std::fs::write(h.dir.path().join("zweck.yaml"), text).expect("write config");
}

fn options(h: &Harness) -> Options {
    Options::new(h.double.addr.port(), h.dir.path())
}

/// The DER of the certificate the listener serves to a new connection.
async fn served_cert(h: &Harness) -> Vec<u8> {
    let (tls, _) = tls_connect(h, None).await;
    tls.get_ref().1.peer_certificates().expect("certs")[0]
        .as_ref()
        .to_vec()
}

async fn tls_connect(
    h: &Harness,
    client: Option<&str>,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    std::net::SocketAddr,
) {
    let p = h.paths();
    let (cert, key) = client.map_or((None, None), |app| {
        (Some(p.client_cert(app)), Some(p.client_key(app)))
    });
    let mut tls = client_tls(&p.ca_cert(), cert.as_deref().zip(key.as_deref()));
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let addr = h.zweck().proxy_addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("handshake");
    (stream, addr)
}

/// One HTTP/1.1 connection as newsletter-tool, kept open across requests.
async fn open_connection(h: &Harness) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let (tls, _) = tls_connect(h, Some(CERT_APP)).await;
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    send
}

async fn get_on(send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) -> u16 {
    let req = http::Request::get(SOQL)
        .header("host", "localhost")
        .body(Empty::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_to_new_connections_and_open_ones_finish() {
    let h = Harness::start().await;
    let opts = options(&h);
    write_config(&h, &opts, |t| t);
    let before = served_cert(&h).await;
    let mut open = open_connection(&h).await;
    assert_eq!(get_on(&mut open).await, 200);

    // renew the server certificate the way `certs generate` would
    let p = h.paths();
    std::fs::remove_file(p.proxy_cert()).expect("rm");
    std::fs::remove_file(p.proxy_key()).expect("rm");
    zweck::certs::generate(&zweck::certs::GenerateOptions::new(h.dir.path())).expect("renew");
    let state = &h.zweck().state;
    let done = reload::everything(state).expect("reload");
    assert_eq!(done.upstreams, 4);

    let after = served_cert(&h).await;
    assert_ne!(
        before, after,
        "a new connection gets the renewed certificate"
    );
    assert_eq!(
        get_on(&mut open).await,
        200,
        "the connection opened before the reload still works"
    );
    let c = h.cert_client(CERT_APP, Version::H2);
    let (r, _) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_ca_refuses_certificates_of_the_old_one_on_new_connections() {
    let h = Harness::start().await;
    let opts = options(&h);
    let other = tempfile::tempdir().expect("tempdir");
    zweck::certs::generate(&zweck::certs::GenerateOptions::new(other.path())).expect("ca");
    let old_ca = format!("client_ca: {}/ca.pem", h.dir.path().display());
    let new_ca = format!("client_ca: {}/ca.pem", other.path().display());
    write_config(&h, &opts, |t| t.replace(&old_ca, &new_ca));
    reload::everything(&h.zweck().state).expect("reload");
    // the app's certificate no longer chains to the client CA: no identity
    let c = h.cert_client(CERT_APP, Version::H1);
    let refused = c
        .try_send(
            http::Request::get(h.url(SOQL))
                .body(http_body_util::Full::new(Bytes::new()))
                .expect("req"),
        )
        .await;
    let status = refused.as_ref().map(|r| r.status().as_u16()).ok();
    assert!(
        refused.is_err() || status == Some(401),
        "a certificate of the old CA is refused: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_upstream_credentials_apply_at_once() {
    let h = Harness::start().await;
    let opts = options(&h);
    let anon = h.anon_client(Version::H1);
    let new_key = "zk_added-by-reload-0123456789abcdef";
    let digest = zweck::secrets::sha256_hex(new_key.as_bytes());
    let headers = [("zweck-api-key", new_key)];
    let (r, _) = anon
        .get(&h.url("/crm/v3/objects/contacts?limit=2"), &headers)
        .await;
    assert_eq!(r.status(), 401, "unknown before the reload");

    write_config(&h, &opts, |t| {
        t.replace(
            "api_keys: [{ sha256_file:",
            &format!("api_keys: [{{ sha256: \"{digest}\", purpose: analytics }}, {{ sha256_file:"),
        )
    });
    reload::everything(&h.zweck().state).expect("reload");
    let (r, b) = anon
        .get(&h.url("/crm/v3/objects/contacts?limit=2"), &headers)
        .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));

    // a rotated upstream token is what Zweck sends from now on
    let token = h.dir.path().join("upstream.token");
    zweck::secrets::write_atomic(&token, b"rotated-but-wrong", zweck::secrets::SECRET_MODE)
        .expect("write");
    reload::everything(&h.zweck().state).expect("reload");
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, _) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 401, "the double refuses the new token");
    zweck::secrets::write_atomic(
        &token,
        UPSTREAM_TOKEN.as_bytes(),
        zweck::secrets::SECRET_MODE,
    )
    .expect("write");
    reload::everything(&h.zweck().state).expect("reload");
    let (r, _) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_restart_only_changes_keep_the_last_good_state() {
    let h = Harness::start().await;
    let opts = options(&h);
    let state = &h.zweck().state;
    let c = h.cert_client(CERT_APP, Version::H1);
    let version = state.live().policy.version().to_string();

    // a missing certificate: every problem named, nothing swapped
    write_config(&h, &opts, |t| t.replace("/proxy.pem", "/renewed.pem"));
    let err = reload::everything(state).expect_err("missing certificate");
    let text = err.to_string();
    assert!(
        text.contains("tls.cert:") && text.contains("renewed.pem is missing"),
        "{text}"
    );
    let (r, _) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200, "the last good state serves on");

    // the listen address cannot change live
    write_config(&h, &opts, |t| {
        t.replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1")
            .replace("shutdown_grace: 30s", "shutdown_grace: 5s")
    });
    match reload::everything(state) {
        Err(ReloadError::NeedsRestart { keys, .. }) => assert_eq!(keys, ["listen", "limits"]),
        other => panic!("expected a refusal naming the keys: {other:?}"),
    }
    assert_eq!(state.live().policy.version(), version);
    let metrics = h.admin_get("/metrics").await.1;
    assert!(
        metrics.contains("zweck_reloads_total{outcome=\"failed\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_set_that_drops_a_granted_purpose_is_refused_as_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = policies_with(dir.path(), |t| format!("{t}# copied\n"));
    let h = Harness::start_with({
        let p = policies.clone();
        move |mut o| {
            o.policies = p;
            o
        }
    })
    .await;
    let state = &h.zweck().state;
    let version = state.live().policy.version().to_string();
    let purposes = policies.join("purposes.yaml");
    let text = std::fs::read_to_string(&purposes).expect("read");
    // billing is the last purpose in the file
    let start = text.find("\n  billing:").expect("billing purpose");
    std::fs::write(&purposes, format!("{}\n", &text[..start])).expect("write");
    let err = reload::policies(state).expect_err("billing is granted to support-desk");
    let text = err.to_string();
    assert!(
        text.contains("apps.support-desk") && text.contains("\"billing\""),
        "{text}"
    );
    assert_eq!(
        state.live().policy.version(),
        version,
        "the last good set stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_reload_needs_the_token() {
    let token_file = |d: &Path| d.join("admin.token");
    let h = Harness::start_prepared(
        |d| {
            zweck::secrets::write_atomic(
                &token_file(d),
                b"admin-token-0123456789abcdef0123456789",
                zweck::secrets::SECRET_MODE,
            )
            .expect("token");
        },
        |mut o| {
            o.extra_upstreams = format!(
                "admin_token_file: {}\n",
                o.certs_dir.join("admin.token").display()
            );
            o
        },
    )
    .await;
    let opts = {
        let mut o = options(&h);
        o.extra_upstreams = format!("admin_token_file: {}\n", token_file(h.dir.path()).display());
        o
    };
    write_config(&h, &opts, |t| t);
    let admin = h.zweck().admin_addr.expect("admin");
    let post = |auth: Option<&'static str>| async move {
        let stream = tokio::net::TcpStream::connect(admin)
            .await
            .expect("connect");
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let mut req = http::Request::post("/reload").header("host", "admin");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).expect("req"))
            .await
            .expect("resp");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(post(None).await.0, 401);
    assert_eq!(post(Some("Bearer wrong")).await.0, 401);
    let (status, body) = post(Some("Bearer admin-token-0123456789abcdef0123456789")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("reloaded: policy "), "{body}");
    // a broken change: 409 and why
    write_config(&h, &opts, |t| {
        t.replace("jurisdiction: DE", "jurisdiction: de")
    });
    let (status, body) = post(Some("Bearer admin-token-0123456789abcdef0123456789")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("write DE"), "{body}");
}
