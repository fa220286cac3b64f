//! End-to-end: the double on `127.0.0.1:0` with a self-signed certificate, driven by a hyper
//! client over TLS, over HTTP/1.1 and HTTP/2. Pagination is walked to the end through the
//! absolute / relative next links exactly as a client would follow them.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{CrmDouble, CrmDoubleConfig, OAuthClient};

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

struct Running {
    double: Arc<CrmDouble>,
    base: String,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    cert: rustls_pki_types::CertificateDer<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

async fn start(config: CrmDoubleConfig) -> Running {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed cert");
    let cert = certified.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let double = CrmDouble::new(config);
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Arc::clone(&double).serve(listener, Arc::new(tls), async move {
            let _ = rx.await;
        }),
    );
    Running {
        double,
        base: format!("https://localhost:{port}"),
        stop: Some(tx),
        server,
        cert,
    }
}

impl Running {
    fn client(&self, http2: bool) -> HttpsClient {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).expect("root");
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only();
        let connector = if http2 {
            builder.enable_http2().build()
        } else {
            builder.enable_http1().build()
        };
        let mut client = Client::builder(TokioExecutor::new());
        client.http2_only(http2);
        client.build(connector)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let result = self.server.await.expect("server task");
        assert!(result.is_ok());
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

async fn send(
    client: &HttpsClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let response = client.request(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(client: &HttpsClient, url: &str, headers: &[(&str, &str)]) -> Answer {
    send(client, Method::GET, url, headers, "").await
}

/// Walks every dialect's pagination to the end and checks exact counts and ordering.
async fn walk_all(run: &Running, http2: bool) {
    let client = run.client(http2);
    let n = 450u64;

    // Salesforce: relative nextRecordsUrl, batchSize 200 -> 200 + 200 + 50.
    let mut url = format!(
        "{}/services/data/v66.0/query?q=SELECT+Id,Email,Account.Name+FROM+Contact",
        run.base
    );
    let (mut seen, mut pages) = (Vec::new(), 0);
    loop {
        let a = get(&client, &url, &[("sforce-query-options", "batchSize=200")]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.headers.contains_key("sforce-limit-info"));
        let v = a.json();
        assert_eq!(v["totalSize"], serde_json::json!(n));
        for r in v["records"].as_array().expect("records") {
            seen.push(r["Id"].as_str().expect("Id").to_string());
        }
        pages += 1;
        if v["done"] == Value::Bool(true) {
            assert!(v.get("nextRecordsUrl").is_none());
            break;
        }
        url = format!(
            "{}{}",
            run.base,
            v["nextRecordsUrl"].as_str().expect("nextRecordsUrl")
        );
    }
    assert_eq!((seen.len() as u64, pages), (n, 3));
    assert_eq!(
        seen[449],
        super::salesforce::contact(&run.double, 449)["Id"]
            .as_str()
            .unwrap_or_default()
    );

    // HubSpot: absolute paging.next.link built from the Host.
    let mut url = format!(
        "{}/crm/v3/objects/contacts?limit=100&properties=email,hs_email_optout",
        run.base
    );
    let (mut count, mut pages) = (0u64, 0);
    loop {
        let a = get(&client, &url, &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        let v = a.json();
        count += v["results"].as_array().expect("results").len() as u64;
        pages += 1;
        match v.get("paging") {
            None => break,
            Some(p) => {
                let link = p["next"]["link"].as_str().expect("link").to_string();
                assert!(link.starts_with(&run.base), "{link}");
                url = link;
            }
        }
    }
    assert_eq!((count, pages), (n, 5));

    // Dataverse: absolute @odata.nextLink with $skiptoken, Preference-Applied echoed.
    let mut url = format!(
        "{}/api/data/v9.2/contacts?$select=fullname,emailaddress1",
        run.base
    );
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let a = get(&client, &url, &[("prefer", "odata.maxpagesize=100")]).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(
            a.headers
                .get("preference-applied")
                .and_then(|h| h.to_str().ok()),
            Some("odata.maxpagesize=100")
        );
        let v = a.json();
        assert!(v["@odata.context"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&run.base));
        for r in v["value"].as_array().expect("value") {
            ids.push(r["contactid"].as_str().expect("contactid").to_string());
        }
        pages += 1;
        match v.get("@odata.nextLink").and_then(Value::as_str) {
            None => break,
            Some(link) => {
                assert!(link.starts_with(&run.base));
                url = link.to_string();
            }
        }
    }
    assert_eq!((ids.len() as u64, pages), (n, 5));
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[tokio::test]
async fn pagination_walks_to_the_end_over_http1_and_http2() {
    let run = start(CrmDoubleConfig {
        contacts: 450,
        ..CrmDoubleConfig::default()
    })
    .await;
    walk_all(&run, false).await;
    walk_all(&run, true).await;
    run.stop().await;
}

#[tokio::test]
async fn auth_is_enforced_in_each_dialects_shape() {
    let run = start(CrmDoubleConfig {
        static_tokens: vec!["static-token".into()],
        oauth_clients: vec![OAuthClient {
            client_id: "zweck".into(),
            client_secret: "s3cret".into(),
        }],
        ..CrmDoubleConfig::default()
    })
    .await;
    let client = run.client(false);
    let sf = format!(
        "{}/services/data/v66.0/sobjects/Contact/{}",
        run.base,
        super::salesforce::contact(&run.double, 0)["Id"]
            .as_str()
            .unwrap_or_default()
    );
    let hs = format!("{}/crm/v3/objects/contacts?limit=1", run.base);
    let dv = format!("{}/api/data/v9.2/contacts?$top=1", run.base);

    let a = get(&client, &sf, &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()[0]["errorCode"], "INVALID_SESSION_ID");
    let a = get(&client, &hs, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["status"], "error");
    assert_eq!(a.json()["category"], "INVALID_AUTHENTICATION");
    let a = get(&client, &dv, &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.json()["error"]["code"].is_string());

    // The versions list needs no session.
    assert_eq!(
        get(&client, &format!("{}/services/data/", run.base), &[])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&client, &sf, &[("authorization", "Bearer static-token")])
            .await
            .status,
        StatusCode::OK
    );

    let token_url = format!("{}/oauth2/token", run.base);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let a = send(
        &client,
        Method::POST,
        &token_url,
        &form,
        "grant_type=client_credentials&client_id=zweck&client_secret=bad",
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json(), serde_json::json!({"error": "invalid_client"}));
    let a = send(
        &client,
        Method::POST,
        &token_url,
        &form,
        "grant_type=client_credentials&client_id=zweck&client_secret=s3cret",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], serde_json::json!(3600));
    let bearer = format!("Bearer {}", v["access_token"].as_str().expect("token"));
    for url in [&sf, &hs, &dv] {
        assert_eq!(
            get(&client, url, &[("authorization", &bearer)])
                .await
                .status,
            StatusCode::OK,
            "{url}"
        );
    }
    assert_eq!(run.double.tokens_issued(), 1);
    run.stop().await;
}

#[tokio::test]
async fn hooks_stall_large_echo_and_recording() {
    let run = start(CrmDoubleConfig::default()).await;
    let client = run.client(false);

    // A stalled request must not block others, and must not block shutdown either.
    let stall_client = run.client(true);
    let stall_url = format!("{}/__double/stall", run.base);
    let stalled = tokio::spawn(async move {
        let request = Request::get(stall_url)
            .body(Full::new(Bytes::new()))
            .expect("request");
        stall_client.request(request).await.map(|r| r.status())
    });

    let a = get(
        &client,
        &format!("{}/__double/echo-headers", run.base),
        &[("x-purpose", "newsletter")],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["x-purpose"], "newsletter");

    let a = get(
        &client,
        &format!("{}/__double/large?bytes=300000&chunk=7000", run.base),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some("300000")
    );
    assert_eq!(a.body, super::hooks::large_body(300_000));

    let a = send(
        &client,
        Method::POST,
        &format!("{}/crm/v3/objects/contacts", run.base),
        &[("content-type", "application/json")],
        r#"{"properties":{"email":"new.person@example.com","lastname":"Person"}}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);

    // The stall request is in flight when this runs; wait until the double has recorded it.
    let recorded = crate::eventually::eventually(|| {
        run.double
            .received()
            .iter()
            .any(|r| r.path_and_query == "/__double/stall")
    })
    .await;
    assert!(recorded);
    let received = run.double.received();
    let post = received
        .iter()
        .find(|r| r.method == Method::POST)
        .expect("recorded POST");
    assert_eq!(post.path_and_query, "/crm/v3/objects/contacts");
    assert!(post.body.starts_with(b"{\"properties\""));
    assert!(received
        .iter()
        .any(|r| r.headers.get("x-purpose").is_some()));
    run.double.clear_received();
    assert!(run.double.received().is_empty());

    run.stop().await;
    // The stalled request never got an answer: its connection was closed.
    let outcome = stalled.await.expect("join");
    assert!(outcome.is_err());
}
