//! SIGKILL the proxy under load, repeatedly: every response a client saw released has its
//! transfer record in the log (records are durable before release), the torn tail is cut back
//! on restart, and the auditor's verification passes.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    port: u16,
    admin: u16,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/zweck.yaml"))
        .expect("zweck.yaml");
    let (port, admin, double) = (free_port(), free_port(), free_port());
    let text = shipped
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
        .replace("127.0.0.1:9443", &format!("127.0.0.1:{double}"))
        .replace(
            "policies: policies/",
            concat!("policies: ", env!("CARGO_MANIFEST_DIR"), "/policies"),
        );
    let config = dir.path().join("zweck.yaml");
    std::fs::write(&config, text).expect("write");
    Setup {
        dir,
        config,
        port,
        admin,
    }
}

fn start(s: &Setup) -> Child {
    Command::new(env!("CARGO_BIN_EXE_zweck"))
        .args(["serve", "--config"])
        .arg(&s.config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// True when the admin listener answers `/readyz` with 200.
async fn ready(admin: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await else {
        return false;
    };
    let _ = tcp
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf).await;
    buf.starts_with(b"HTTP/1.1 200")
}

async fn wait_ready(s: &Setup) {
    let admin = s.admin;
    let up = eventually_some(|| async move { ready(admin).await.then_some(()) }).await;
    assert!(up.is_some(), "zweck did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_released_response_survives_a_sigkill_in_the_log() {
    let s = setup();
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let mut child = start(&s);
        wait_ready(&s).await;
        let certs = s.dir.path().join("certs");
        let client = std::sync::Arc::new(TestClient::new(
            &certs.join("ca.pem"),
            Some((
                &certs.join("clients/newsletter-tool.pem"),
                &certs.join("clients/newsletter-tool.key"),
            )),
            Version::H2,
        ));
        let url = format!(
            "https://localhost:{}/services/data/v66.0/query?q=SELECT+Id,Email,HasOptedOutOfEmail+FROM+Contact+LIMIT+5",
            s.port
        );
        // four concurrent clients; kill -9 while they are mid-flight
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let client = client.clone();
            let url = url.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let req = http::Request::get(&url)
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .expect("req");
                    let Ok(Ok(resp)) =
                        tokio::time::timeout(Duration::from_secs(30), client_send(&client, req))
                            .await
                    else {
                        return;
                    };
                    if resp.status() == 200 {
                        if let Some(id) = resp
                            .headers()
                            .get("zweck-request-id")
                            .and_then(|v| v.to_str().ok())
                        {
                            let _ = tx.send(id.to_string());
                        }
                    }
                }
            }));
        }
        drop(tx);
        let mut seen = 0;
        let kill_after = 20 + round * 15;
        while let Some(id) = rx.recv().await {
            acknowledged.push(id);
            seen += 1;
            if seen == kill_after {
                let _ = child.kill(); // SIGKILL
                break;
            }
        }
        let _ = child.wait();
        for t in tasks {
            let _ = t.await;
        }
        // responses fully received before the kill are acknowledged too
        while let Ok(id) = rx.try_recv() {
            acknowledged.push(id);
        }
    }
    assert!(acknowledged.len() >= 60, "{}", acknowledged.len());

    // one more start recovers the tail; then stop cleanly
    let mut child = start(&s);
    wait_ready(&s).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    let log = s.dir.path().join("logs/transfers.jsonl");
    let text = std::fs::read_to_string(&log).expect("log");
    let logged: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["direction"] == "from_processor")
        .filter_map(|e| e["request_id"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !logged.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "released without a durable record: {missing:?}"
    );

    let report = zweck::audit::verify(&zweck::audit::VerifyOptions {
        logs: vec![log],
        keys: zweck::audit::KeyRing::single(
            zweck::secrets::read_audit_pub(&s.dir.path().join("certs/audit.pub")).expect("pub"),
        ),
        offbox: vec![s.dir.path().join("audit-offbox/checkpoints")],
        origin: None,
        progress: false,
    });
    assert_eq!(report.exit_code, 0, "{}", report.text);
}

async fn client_send(
    c: &TestClient,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<http::Response<()>, ()> {
    use http_body_util::BodyExt;
    let resp = c.try_send(req).await.map_err(|_| ())?;
    let (parts, body) = resp.into_parts();
    // a response counts as released only when its whole body arrived
    body.collect().await.map_err(|_| ())?;
    Ok(http::Response::from_parts(parts, ()))
}
