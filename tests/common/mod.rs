//! Test harness: a real Zweck and a real CRM double on 127.0.0.1:0 with freshly generated
//! certificates, and real HTTP/1.1 and HTTP/2 TLS clients.
#![allow(dead_code)]

mod eventually;
pub mod raw;
#[allow(unused_imports)] // each test binary uses some of them
pub use eventually::{eventually, eventually_blocking, eventually_some};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use zweck::certs::{self, DevPaths, GenerateOptions};
use zweck::config::Config;
use zweck::crm_double::{CrmDouble, CrmDoubleConfig, OAuthClient};
use zweck::runtime::{self, Running};

/// The static token the test double accepts and Zweck injects.
pub const UPSTREAM_TOKEN: &str = "sf-upstream-token-Fict0001";
pub const OAUTH_ID: &str = "zweck-test";
pub const OAUTH_SECRET: &str = "oauth-secret-Fict0002";

/// The apps of the test config.
pub const CERT_APP: &str = "newsletter-tool";
pub const KEY_APP: &str = "bi-export";

/// A running CRM double.
pub struct Double {
    pub double: Arc<CrmDouble>,
    pub addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub async fn start_double(dir: &Path, contacts: u64) -> Double {
    let paths = DevPaths::new(dir);
    let tls = zweck::tls::simple_server_config(&paths.crm_double_cert(), &paths.crm_double_key())
        .expect("double tls");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let double = CrmDouble::new(CrmDoubleConfig {
        contacts,
        static_tokens: vec![UPSTREAM_TOKEN.into()],
        oauth_clients: vec![OAuthClient {
            client_id: OAUTH_ID.into(),
            client_secret: OAUTH_SECRET.into(),
        }],
        ..CrmDoubleConfig::default()
    });
    let (stop, mut rx) = watch::channel(false);
    let d = double.clone();
    tokio::spawn(async move {
        let _ = d
            .serve(listener, tls, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
    });
    Double { double, addr, stop }
}

/// Generates the test PKI into `dir`.
pub fn make_certs(dir: &Path) {
    let mut opts = GenerateOptions::new(dir);
    opts.client_apps = vec![CERT_APP.into(), "support-desk".into(), "stranger".into()];
    opts.api_key_apps = vec![KEY_APP.into()];
    certs::generate(&opts).expect("certs");
    // secrets as Zweck requires them: not open to every user of the machine
    let secret = zweck::secrets::SECRET_MODE;
    zweck::secrets::write_atomic(
        &dir.join("upstream.token"),
        UPSTREAM_TOKEN.as_bytes(),
        secret,
    )
    .expect("token");
    zweck::secrets::write_atomic(&dir.join("oauth.secret"), OAUTH_SECRET.as_bytes(), secret)
        .expect("secret");
}

/// Options for the test config.
#[derive(Clone)]
pub struct Options {
    pub double_port: u16,
    pub response_timeout: &'static str,
    pub oauth: bool,
    pub extra_upstreams: String,
    pub shutdown_grace: &'static str,
    pub header_read_timeout: &'static str,
    pub handshake_timeout: &'static str,
    pub policies: PathBuf,
    pub certs_dir: PathBuf,
    /// Appended inside `limits: { ... }`, e.g. `, buffered_total: 64KiB`.
    pub extra_limits: String,
    /// `limits.max_body_bytes`.
    pub max_body_bytes: &'static str,
}

impl Options {
    pub fn new(double_port: u16, certs_dir: &Path) -> Options {
        Options {
            double_port,
            response_timeout: "30s",
            oauth: false,
            extra_upstreams: String::new(),
            shutdown_grace: "30s",
            header_read_timeout: "10s",
            handshake_timeout: "10s",
            policies: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
            certs_dir: certs_dir.to_path_buf(),
            extra_limits: String::new(),
            max_body_bytes: "1MiB",
        }
    }
}

pub fn config_text(dir: &Path, o: &Options) -> String {
    let d = dir.display();
    let port = o.double_port;
    let sf_auth = if o.oauth {
        format!(
            "{{ oauth2_client_credentials: {{ token_url: \"https://127.0.0.1:{port}/oauth2/token\", client_id: {OAUTH_ID}, client_secret_file: {d}/oauth.secret }} }}"
        )
    } else {
        format!("{{ bearer_file: {d}/upstream.token }}")
    };
    format!(
        r#"
listen: 127.0.0.1:0
public_url: https://zweck.test:8443
dev: false
tls: {{ cert: {d}/proxy.pem, key: {d}/proxy.key, client_ca: {d}/ca.pem }}
admin: 127.0.0.1:0
certs_dir: {d}
policies: {policies}
pseudonym_key_file: {d}/pseudonym.key
audit: {{ log: {d}/logs/transfers.jsonl, signing_key: {d}/audit.key, offbox: {{ file: {d}/offbox/checkpoints }}, checkpoint_every: 5 }}
limits: {{ shutdown_grace: {grace}, header_read_timeout: {hrt}, handshake_timeout: {hst}, max_body_bytes: {max_body}{extra_limits} }}
apps:
  {CERT_APP}:
    client_cert: {{ san: {CERT_APP} }}
    purposes: [newsletter]
  support-desk:
    client_cert: {{ san: support-desk }}
    purposes: [support, billing]
  {KEY_APP}:
    api_keys: [{{ sha256_file: {d}/api-keys/{KEY_APP}.sha256, purpose: analytics }}]
    purposes: [analytics]
upstreams:
  salesforce:
    url: https://127.0.0.1:{port}
    dialect: salesforce
    route: {{ path_prefix: /services/data/ }}
    auth: {sf_auth}
    processor: Salesforce, Inc.
    jurisdiction: US
    transfer_mechanism: {{ type: dpf }}
    ca: {d}/ca.pem
    response_timeout: {rt}
    ungoverned: ["GET /services/data/", "GET /services/data/*/limits"]
  hubspot:
    url: https://127.0.0.1:{port}
    dialect: hubspot
    route: {{ path_prefix: /crm/ }}
    auth: {{ bearer_file: {d}/upstream.token }}
    processor: HubSpot, Inc.
    jurisdiction: US
    transfer_mechanism: {{ type: scc, scc_module: "2" }}
    ca: {d}/ca.pem
    response_timeout: {rt}
    ungoverned: ["GET /crm/v3/objects/companies"]
  dynamics:
    url: https://127.0.0.1:{port}
    dialect: dynamics
    route: {{ path_prefix: /api/data/ }}
    auth: {{ bearer_file: {d}/upstream.token }}
    processor: Microsoft Ireland Operations Ltd
    jurisdiction: IE
    transfer_mechanism: {{ type: none }}
    ca: {d}/ca.pem
    response_timeout: {rt}
    ungoverned: ["GET /api/data/v9.2/"]
  hooks:
    url: https://127.0.0.1:{port}
    dialect: generic
    route: {{ path_prefix: /__double/ }}
    auth: {{ bearer_file: {d}/upstream.token }}
    processor: Test double
    jurisdiction: DE
    transfer_mechanism: {{ type: none }}
    ca: {d}/ca.pem
    response_timeout: {rt}
    ungoverned: ["GET /__double/**", "POST /__double/echo-headers"]
{extra}
"#,
        grace = o.shutdown_grace,
        hrt = o.header_read_timeout,
        hst = o.handshake_timeout,
        rt = o.response_timeout,
        extra = o.extra_upstreams,
        policies = o.policies.display(),
        extra_limits = o.extra_limits,
        max_body = o.max_body_bytes,
    )
}

/// A full test setup: certificates, double, Zweck.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub double: Double,
    pub zweck: Option<Running>,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(|o| o).await
    }

    pub async fn start_with(tweak: impl FnOnce(Options) -> Options) -> Harness {
        Harness::start_prepared(|_| {}, tweak).await
    }

    /// `prepare` runs on the temp dir before Zweck starts.
    pub async fn start_prepared(
        prepare: impl FnOnce(&Path),
        tweak: impl FnOnce(Options) -> Options,
    ) -> Harness {
        Harness::start_full(120, prepare, tweak).await
    }

    /// With `contacts` generated contacts in the double.
    pub async fn start_full(
        contacts: u64,
        prepare: impl FnOnce(&Path),
        tweak: impl FnOnce(Options) -> Options,
    ) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        make_certs(dir.path());
        prepare(dir.path());
        let double = start_double(dir.path(), contacts).await;
        let opts = tweak(Options::new(double.addr.port(), dir.path()));
        let text = config_text(dir.path(), &opts);
        let config = Config::parse(&dir.path().join("zweck.yaml"), &text).expect("config");
        let zweck = runtime::start(config).await.expect("zweck starts");
        Harness {
            dir,
            double,
            zweck: Some(zweck),
        }
    }

    pub fn zweck(&self) -> &Running {
        self.zweck.as_ref().expect("running")
    }

    /// GET on the admin listener (plain HTTP/1.1): status and body text.
    pub async fn admin_get(&self, path: &str) -> (http::StatusCode, String) {
        let (status, body) = self.admin_call(Method::GET, path, None).await;
        (http::StatusCode::from_u16(status).expect("a status"), body)
    }

    /// A request without a body on the admin listener (plain HTTP/1.1), with `authorization`
    /// as that header's value if given: status and body text.
    pub async fn admin_call(
        &self,
        method: Method,
        target: &str,
        authorization: Option<&str>,
    ) -> (u16, String) {
        let admin = self.zweck().admin_addr.expect("admin listener");
        let stream = tokio::net::TcpStream::connect(admin)
            .await
            .expect("connect");
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(target)
            .header("host", "admin");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = send
            .send_request(
                req.body(http_body_util::Empty::<Bytes>::new())
                    .expect("req"),
            )
            .await
            .expect("resp");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// `zweck audit verify` of this Zweck's transfer log, its on-box and off-box checkpoints
    /// against its audit public key; asserts that it passes.
    pub fn assert_log_verifies(&self) {
        let dir = self.dir.path();
        let report = zweck::audit::verify(&zweck::audit::VerifyOptions {
            logs: vec![dir.join("logs/transfers.jsonl")],
            keys: zweck::audit::KeyRing::single(
                zweck::secrets::read_audit_pub(&self.paths().audit_pub()).expect("pub"),
            ),
            offbox: vec![dir.join("offbox/checkpoints")],
            origin: None,
            progress: false,
        });
        assert_eq!(report.exit_code, 0, "{}", report.text);
    }

    pub fn paths(&self) -> DevPaths {
        DevPaths::new(self.dir.path())
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}{}",
            self.zweck().proxy_addr.port(),
            path
        )
    }

    pub fn api_key(&self) -> String {
        zweck::secrets::read_api_key(&self.paths().api_key(KEY_APP)).expect("api key")
    }

    /// A client presenting the client certificate of `app`.
    pub fn cert_client(&self, app: &str, version: Version) -> TestClient {
        let p = self.paths();
        TestClient::new(
            &p.ca_cert(),
            Some((&p.client_cert(app), &p.client_key(app))),
            version,
        )
    }

    /// A client without a client certificate.
    pub fn anon_client(&self, version: Version) -> TestClient {
        TestClient::new(&self.paths().ca_cert(), None, version)
    }

    pub async fn shutdown(&mut self) {
        if let Some(z) = self.zweck.take() {
            z.shutdown().await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    H1,
    H2,
}

pub struct TestClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub version: Version,
}

pub fn client_tls(ca: &Path, cert: Option<(&Path, &Path)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("cert")).expect("add");
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    match cert {
        Some((c, k)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(c)
                .expect("chain")
                .collect::<Result<_, _>>()
                .expect("chain");
            let key = PrivateKeyDer::from_pem_file(k).expect("key");
            b.with_client_auth_cert(chain, key).expect("client auth")
        }
        None => b.with_no_client_auth(),
    }
}

impl TestClient {
    pub fn new(ca: &Path, cert: Option<(&Path, &Path)>, version: Version) -> TestClient {
        let tls = client_tls(ca, cert);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only();
        let connector = match version {
            Version::H1 => builder.enable_http1().build(),
            Version::H2 => builder.enable_http2().build(),
        };
        let mut cb = Client::builder(TokioExecutor::new());
        if version == Version::H2 {
            cb.http2_only(true);
        }
        TestClient {
            client: cb.build(connector),
            version,
        }
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        tokio::time::timeout(Duration::from_secs(60), self.client.request(req))
            .await
            .expect("answer within 60 s")
            .expect("request")
    }

    /// Like `send`, but a failure is returned instead of failing the test.
    pub async fn try_send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> (Response<()>, Bytes) {
        self.call(Method::GET, url, headers, Bytes::new()).await
    }

    pub async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> (Response<()>, Bytes) {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self.send(b.body(Full::new(body)).expect("request")).await;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (Response::from_parts(parts, ()), bytes)
    }
}

/// Parses a problem+json body and returns its `type` slug.
pub fn problem_slug(resp: &Response<()>, body: &[u8]) -> String {
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "status {}: {}",
        resp.status(),
        String::from_utf8_lossy(body)
    );
    let v: serde_json::Value = serde_json::from_slice(body).expect("problem json");
    assert_eq!(
        v["status"].as_u64(),
        Some(u64::from(resp.status().as_u16()))
    );
    v["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:zweck:problem:"))
        .expect("type")
        .to_string()
}

/// Copies the shipped policies into `to`, applying `edit` to purposes.yaml.
pub fn policies_with(to: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read").flatten() {
            let t = to.join(e.file_name());
            if e.path().is_dir() {
                copy(&e.path(), &t);
            } else {
                std::fs::copy(e.path(), t).expect("copy");
            }
        }
    }
    let dir = to.join("policies");
    copy(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
        &dir,
    );
    let purposes = dir.join("purposes.yaml");
    let text = std::fs::read_to_string(&purposes).expect("read");
    let edited = edit(text.clone());
    assert_ne!(text, edited, "the edit changed purposes.yaml");
    std::fs::write(&purposes, edited).expect("write");
    dir
}
