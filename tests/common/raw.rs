//! Raw clients and servers for wire-level tests: TLS connections that write exactly the bytes
//! a test gives them (malformed framing, a body sent before the answer is read, a body that
//! never comes), a small HTTP/1.1 response reader, HTTP/2 through the `h2` crate (to see
//! resets and flow control), and a scripted HTTP/1.1 upstream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use super::{client_tls, Harness};

/// A generous bound on every single read and write of a raw test connection.
pub const BOUND: Duration = Duration::from_secs(60);

/// A TLS connection to Zweck with the given ALPN, as `app` (a client certificate) or
/// anonymous.
pub async fn connect(h: &Harness, app: Option<&str>, alpn: &[u8]) -> TlsStream<TcpStream> {
    let p = h.paths();
    let (cert, key) = match app {
        Some(app) => (Some(p.client_cert(app)), Some(p.client_key(app))),
        None => (None, None),
    };
    let pair = cert.as_deref().zip(key.as_deref());
    let mut tls = client_tls(&p.ca_cert(), pair);
    tls.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = TcpStream::connect(h.zweck().proxy_addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("handshake")
}

/// Writes all of `bytes` and flushes them: a TLS stream may hold written bytes back until it
/// is flushed, and a peer waiting for them would wait forever.
pub async fn send<S: tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> std::io::Result<()> {
    let write = async {
        s.write_all(bytes).await?;
        s.flush().await
    };
    tokio::time::timeout(BOUND, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// An HTTP/1.1 response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    /// Interim (1xx) statuses that came before it, such as `100 Continue`.
    pub informational: Vec<u16>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The problem type's slug; panics unless the body is a problem.
    pub fn slug(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "status {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("problem json");
        assert_eq!(v["status"].as_u64(), Some(u64::from(self.status)));
        v["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("urn:zweck:problem:"))
            .expect("type")
            .to_string()
    }
}

/// Reads HTTP/1.1 responses off a stream, keeping what was read past one for the next.
pub struct Reader<S> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: tokio::io::AsyncRead + Unpin> Reader<S> {
    pub fn new(stream: S) -> Reader<S> {
        Reader {
            stream,
            buf: Vec::new(),
        }
    }

    /// More bytes into the buffer; false at the end of the stream (or an error).
    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 16384];
        match tokio::time::timeout(BOUND, self.stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            // nothing within the bound: as good as closed (a test then fails on what is missing)
            Err(_) => false,
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).to_string();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn exactly(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The next response (1xx skipped); `None` when the stream ended first.
    pub async fn response(&mut self) -> Option<RawResponse> {
        let mut informational = Vec::new();
        loop {
            let status_line = self.line().await?;
            let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
            let mut headers = Vec::new();
            loop {
                let line = self.line().await?;
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':')?;
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            if status < 200 {
                informational.push(status);
                continue;
            }
            let mut resp = RawResponse {
                informational,
                status,
                headers,
                body: Vec::new(),
            };
            if let Some(len) = resp.header("content-length") {
                let len: usize = len.parse().ok()?;
                resp.body = self.exactly(len).await?;
            } else if resp.header("transfer-encoding") == Some("chunked") {
                loop {
                    let size = usize::from_str_radix(self.line().await?.trim(), 16).ok()?;
                    let chunk = self.exactly(size + 2).await?;
                    if size == 0 {
                        break;
                    }
                    resp.body.extend_from_slice(&chunk[..size]);
                }
            }
            return Some(resp);
        }
    }

    /// Whether the peer closes the stream (EOF or reset) with nothing more to say.
    pub async fn closed(&mut self) -> bool {
        while self.buf.is_empty() {
            if !self.fill().await {
                return true;
            }
        }
        false
    }
}

/// An HTTP/2 connection through the `h2` crate, whose connection task runs in the
/// background.
pub async fn h2_connect(h: &Harness, app: Option<&str>) -> h2::client::SendRequest<Bytes> {
    let tls = connect(h, app, b"h2").await;
    let (send, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send.ready().await.expect("ready")
}

/// What became of an HTTP/2 upload.
#[derive(Debug)]
pub enum Upload {
    /// Every byte sent and the stream ended.
    Complete,
    /// The server reset the stream after this many bytes.
    Reset(h2::Reason, usize),
}

/// Sends `body` on `stream` as flow control allows; stops when the server resets the stream.
pub async fn upload(mut stream: h2::SendStream<Bytes>, body: Bytes) -> Upload {
    let mut sent = 0;
    let reset = |e: h2::Error, sent| Upload::Reset(e.reason().unwrap_or(h2::Reason::CANCEL), sent);
    while sent < body.len() {
        let want = (body.len() - sent).min(64 * 1024);
        stream.reserve_capacity(want);
        let granted = match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return reset(e, sent),
            None => {
                let reason = std::future::poll_fn(|cx| stream.poll_reset(cx)).await;
                return match reason {
                    Ok(r) => Upload::Reset(r, sent),
                    Err(e) => reset(e, sent),
                };
            }
        };
        if granted == 0 {
            continue;
        }
        let chunk = body.slice(sent..sent + granted.min(want));
        sent += chunk.len();
        if let Err(e) = stream.send_data(chunk, false) {
            return reset(e, sent);
        }
    }
    match stream.send_data(Bytes::new(), true) {
        Ok(()) => Upload::Complete,
        Err(e) => reset(e, sent),
    }
}

/// An HTTP/2 response: status, headers, body bytes (or the error that ended the body).
pub async fn h2_answer(
    resp: h2::client::ResponseFuture,
) -> (http::Response<()>, Result<Bytes, h2::Error>) {
    let resp = tokio::time::timeout(BOUND, resp)
        .await
        .expect("answer in time")
        .expect("response head");
    let (parts, mut body) = resp.into_parts();
    let mut out = Vec::new();
    let result = loop {
        let next = tokio::time::timeout(BOUND, body.data())
            .await
            .expect("the body within the bound");
        match next {
            None => break Ok(Bytes::from(out)),
            Some(Err(e)) => break Err(e),
            Some(Ok(d)) => {
                let _ = body.flow_control().release_capacity(d.len());
                out.extend_from_slice(&d);
            }
        }
    };
    (http::Response::from_parts(parts, ()), result)
}

/// A scripted HTTP/1.1 upstream on TLS (the CRM double's certificate, no ALPN beyond
/// http/1.1): reads each request head (and a `Content-Length` body), then writes the next
/// scripted answer and does what it says after. Counts connections, and which of them Zweck
/// closed.
pub struct ScriptedUpstream {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
    /// One flag per accepted connection: true once Zweck closed it.
    pub closed_by_peer: Arc<Mutex<Vec<bool>>>,
    script: Arc<Mutex<Vec<Scripted>>>,
}

/// One scripted answer.
#[derive(Clone)]
pub struct Scripted {
    pub bytes: Vec<u8>,
    /// Keep the connection open, sending nothing more (a stall), instead of serving the
    /// next request on it.
    pub stall: bool,
}

impl ScriptedUpstream {
    /// Binds now (before Zweck's config is written); serves once `serve` is called.
    pub fn bind() -> (std::net::TcpListener, u16) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        (l, port)
    }

    pub fn serve(listener: std::net::TcpListener, h: &Harness) -> ScriptedUpstream {
        let p = h.paths();
        let tls = zweck::tls::simple_server_config(&p.crm_double_cert(), &p.crm_double_key())
            .expect("tls");
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = TcpListener::from_std(listener).expect("tokio listener");
        let port = listener.local_addr().expect("addr").port();
        let up = ScriptedUpstream {
            port,
            accepted: Arc::new(AtomicUsize::new(0)),
            closed_by_peer: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(Mutex::new(Vec::new())),
        };
        let (accepted, closed, script) = (
            up.accepted.clone(),
            up.closed_by_peer.clone(),
            up.script.clone(),
        );
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let n = accepted.fetch_add(1, Ordering::SeqCst);
                closed.lock().expect("lock").push(false);
                let (acceptor, closed, script) = (acceptor.clone(), closed.clone(), script.clone());
                tokio::spawn(async move {
                    let Ok(s) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut r = Reader::new(s);
                    loop {
                        if !read_request(&mut r).await {
                            break;
                        }
                        let next = {
                            let mut s = script.lock().expect("lock");
                            (!s.is_empty()).then(|| s.remove(0))
                        };
                        let Some(next) = next else { break };
                        if send(&mut r.stream, &next.bytes).await.is_err() {
                            break;
                        }
                        if next.stall {
                            // wait for Zweck to give up on the connection
                            let _ = r.closed().await;
                            break;
                        }
                    }
                    closed.lock().expect("lock")[n] = true;
                });
            }
        });
        up
    }

    /// Queues the next answers, in order, across connections.
    pub fn answer(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.script.lock().expect("lock").extend(answers);
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn closed(&self, n: usize) -> bool {
        self.closed_by_peer.lock().expect("lock").get(n).copied() == Some(true)
    }
}

/// Reads one request head and its `Content-Length` body; false when the peer closed.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(r: &mut Reader<S>) -> bool {
    let mut len = 0;
    loop {
        let Some(line) = r.line().await else {
            return false;
        };
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    r.exactly(len).await.is_some()
}
