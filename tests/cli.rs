//! The `zweck` binary as users run it: first start in dev mode, SIGTERM, refusals at start-up.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::eventually_blocking;

fn zweck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zweck"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A config like the shipped one, on free ports, in a temp dir.
fn dev_config(dir: &std::path::Path, dev: bool) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/zweck.yaml"))
        .expect("shipped zweck.yaml");
    let (p, a, d) = (free_port(), free_port(), free_port());
    let text = shipped
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{p}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{a}"))
        .replace("127.0.0.1:9443", &format!("127.0.0.1:{d}"))
        .replace("dev: true", if dev { "dev: true" } else { "dev: false" })
        .replace(
            "policies: policies/",
            concat!("policies: ", env!("CARGO_MANIFEST_DIR"), "/policies"),
        );
    let path = dir.join("zweck.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn serve_makes_dev_certificates_on_first_start_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dev_config(dir.path(), true);
    let mut child = start_serving(&config);
    for f in [
        "ca.pem",
        "proxy.pem",
        "proxy.key",
        "clients/newsletter-tool.pem",
        "api-keys/bi-export.key",
        "audit.key",
        "pseudonym.key",
    ] {
        assert!(
            dir.path().join("certs").join(f).exists(),
            "{f} was not generated"
        );
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("certs/proxy.key"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let pid = child.id() as i32;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // wait (bounded) for a clean exit
    let mut code = None;
    eventually_blocking(|| {
        code = child.try_wait().expect("wait");
        code.is_some()
    });
    let code = code.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("zweck did not exit after SIGTERM");
    });
    assert_eq!(code.code(), Some(0));
}

/// Spawns `zweck serve` with its log on a pipe, returned apart from the child.
fn spawn_serving(config: &std::path::Path) -> (std::process::Child, std::process::ChildStderr) {
    let mut child = zweck()
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zweck");
    let stderr = child.stderr.take().expect("stderr");
    (child, stderr)
}

/// Starts `zweck serve` and waits (bounded) until it listens.
fn start_serving(config: &std::path::Path) -> std::process::Child {
    let (mut child, stderr) = spawn_serving(config);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Zweck listening") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        panic!("zweck did not start");
    }
    child
}

#[test]
fn a_second_zweck_on_the_same_transfer_log_refuses_to_start() {
    let first_dir = tempfile::tempdir().expect("tempdir");
    let mut first = start_serving(&dev_config(first_dir.path(), true));
    // another instance, its own ports and certificates, pointed at the first one's log
    let second_dir = tempfile::tempdir().expect("tempdir");
    let second = dev_config(second_dir.path(), true);
    let log = first_dir.path().join("logs/transfers.jsonl");
    let text = std::fs::read_to_string(&second).expect("read config");
    assert!(
        text.contains("log: logs/transfers.jsonl"),
        "the shipped audit log moved"
    );
    let text = text.replace(
        "log: logs/transfers.jsonl",
        &format!("log: {}", log.display()),
    );
    std::fs::write(&second, text).expect("write config");
    let out = zweck()
        .args(["serve", "--config"])
        .arg(&second)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the second zweck");
    let _ = first.kill();
    let _ = first.wait();
    assert!(!out.status.success(), "the second zweck started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another writer"), "{err}");
    assert!(err.contains(&log.display().to_string()), "{err}");
}

#[test]
fn without_dev_mode_a_missing_certificate_is_named_and_nothing_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dev_config(dir.path(), false);
    let out = zweck()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("proxy.pem") && err.contains("missing"),
        "{err}"
    );
    assert!(
        !dir.path().join("certs/ca.pem").exists(),
        "nothing was generated"
    );
}

#[test]
fn config_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:1\ntls: { cert: a, key: b }\nlisten_port: 3\n",
    )
    .expect("write");
    let out = zweck()
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
    assert!(err.contains("listen_port"), "{err}");
}

#[test]
fn the_shipped_config_is_valid() {
    let out = zweck()
        .args([
            "config",
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/zweck.yaml"),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Signals sent the moment Zweck says it listens are handled, not fatal: a supervisor may
/// send SIGHUP or SIGTERM as soon as it sees the readiness line, and the default action of
/// both is to kill the process without draining.
#[test]
fn signals_right_after_the_readiness_line_are_handled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dev_config(dir.path(), true);
    let (mut child, stderr) = spawn_serving(&config);
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let signal = |name: &str| {
            let _ = Command::new("kill").args([name, &pid]).status();
        };
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // signalled from the reader itself, with no delay after the line
            if line.contains("Zweck listening") {
                signal("-HUP");
            } else if line.contains("SIGHUP received") {
                signal("-TERM");
            }
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut status = None;
    eventually_blocking(|| {
        seen.extend(rx.try_iter());
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        panic!("zweck did not exit; stderr so far: {seen:?}");
    };
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    let text = seen.join("\n");
    assert!(text.contains("SIGHUP received"), "{text}");
    assert!(text.contains("SIGTERM received"), "{text}");
    assert_eq!(status.code(), Some(0), "{text}");
}

/// `zweck reload` asks the running instance through its admin listener, with the admin
/// token dev mode made, and prints what happened; a broken change is refused and named.
#[test]
fn zweck_reload_reloads_the_running_instance_and_names_a_broken_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dev_config(dir.path(), true);
    let mut child = start_serving(&config);
    let reload = || {
        zweck()
            .args(["reload", "--config"])
            .arg(&config)
            .output()
            .expect("run zweck reload")
    };
    let out = reload();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let ok = out.status.success() && stdout.starts_with("reloaded: policy ");
    let text = std::fs::read_to_string(&config).expect("read config");
    // refused by the running instance: the file does not exist
    std::fs::write(
        &config,
        text.replace("certs/proxy.pem", "certs/renewed.pem"),
    )
    .expect("write");
    let refused = reload();
    // refused before anything is sent: the text does not compile
    std::fs::write(
        &config,
        text.replace("jurisdiction: IE", "jurisdiction: ie"),
    )
    .expect("write");
    let broken = reload();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "{stdout} / {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("last good state") && err.contains("renewed.pem is missing"),
        "{err}"
    );
    assert_eq!(broken.status.code(), Some(1));
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(
        err.contains("nothing was sent") && err.contains("write IE"),
        "{err}"
    );
}
