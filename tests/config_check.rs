//! `zweck config check` runs exactly the checks `serve` runs before it listens: each config
//! that `serve` refuses is fed to both, and both must refuse it with the same diagnostics,
//! each printed once with file:line:column.

mod common;

use std::path::Path;
use std::process::Command;

use common::{config_text, make_certs, Options};

fn zweck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zweck"))
}

/// What `config check` and `serve` print for the config `text` (written into `dir`).
fn both(dir: &Path, text: &str) -> (Vec<String>, Vec<String>) {
    let path = dir.join("zweck.yaml");
    std::fs::write(&path, text).expect("write config");
    let run = |args: &[&str]| {
        let out = zweck()
            .args(args)
            .arg("--config")
            .arg(&path)
            .env("NO_COLOR", "1")
            .env_remove(zweck::preflight::PSEUDONYM_KEY_ENV)
            .output()
            .expect("run zweck");
        assert_eq!(out.status.code(), Some(1), "{args:?} must refuse: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<String> = err.lines().map(str::to_string).collect();
        assert!(!lines.is_empty(), "{args:?} printed nothing");
        lines
    };
    (run(&["config", "check"]), run(&["serve"]))
}

struct Case {
    name: &'static str,
    edit: fn(String, &Path) -> String,
    /// What the diagnostics must say, one entry per expected diagnostic.
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "an app granted a purpose the policies do not define",
        edit: |t, _| {
            t.replace(
                "purposes: [support, billing]",
                "purposes: [support, billing, telepathy]",
            )
        },
        expect: &["apps.support-desk: app support-desk is granted purpose \"telepathy\""],
    },
    Case {
        name: "a missing bearer_file",
        edit: |t, d| {
            let _ = std::fs::remove_file(d.join("upstream.token"));
            t
        },
        // every upstream that names it
        expect: &[
            "upstreams.salesforce.auth:",
            "upstreams.hubspot.auth:",
            "upstreams.dynamics.auth:",
            "upstreams.hooks.auth:",
        ],
    },
    Case {
        name: "a missing TLS certificate without dev mode",
        edit: |t, d| {
            let _ = std::fs::remove_file(d.join("proxy.pem"));
            t
        },
        expect: &["tls.cert:", "proxy.pem is missing"],
    },
    Case {
        name: "a missing policies directory",
        edit: |t, d| {
            t.replace(
                concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
                &d.join("no-such-policies").display().to_string(),
            )
        },
        expect: &["policies:", "no-such-policies is not a directory"],
    },
    Case {
        name: "jurisdiction XX and a lower-case ie",
        edit: |t, _| {
            t.replacen("jurisdiction: US", "jurisdiction: XX", 1)
                .replace("jurisdiction: IE", "jurisdiction: ie")
        },
        expect: &["got \"XX\"", "write IE"],
    },
    Case {
        name: "three bad API key digests, each named",
        edit: |t, d| {
            std::fs::write(d.join("bad1.sha256"), "not-hex\n").expect("write");
            std::fs::write(d.join("bad2.sha256"), "").expect("write");
            t.replace(
                "api_keys: [{ sha256_file:",
                &format!(
                    "api_keys: [{{ sha256_file: {0}/bad1.sha256 }}, {{ sha256_file: {0}/missing.sha256 }}, {{ sha256_file: {0}/bad2.sha256 }}, {{ sha256_file:",
                    d.display()
                ),
            )
        },
        expect: &[
            "apps.bi-export.api_keys[0]:",
            "bad1.sha256 is not usable: expected 64 hex characters",
            "apps.bi-export.api_keys[1]:",
            "missing.sha256 is missing",
            "apps.bi-export.api_keys[2]:",
            "bad2.sha256 is not usable",
        ],
    },
    Case {
        name: "a token file every user may read",
        edit: |t, d| {
            use std::os::unix::fs::PermissionsExt;
            let p = d.join("upstream.token");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            t
        },
        expect: &["upstream.token is open to every user of the machine (mode 0644)"],
    },
    Case {
        name: "a purpose that pseudonymises without a pseudonym key",
        edit: |t, _| {
            t.lines()
                .filter(|l| !l.starts_with("pseudonym_key_file:"))
                .collect::<Vec<_>>()
                .join("\n")
        },
        expect: &["pseudonymises, but no pseudonym key is configured"],
    },
];

#[test]
fn config_check_and_serve_refuse_the_same_configs_with_the_same_diagnostics() {
    for case in CASES {
        let dir = tempfile::tempdir().expect("tempdir");
        make_certs(dir.path());
        let text = config_text(dir.path(), &Options::new(1, dir.path()));
        let edited = (case.edit)(text, dir.path());
        let (check, serve) = both(dir.path(), &edited);
        assert_eq!(
            check, serve,
            "{}: config check and serve disagree",
            case.name
        );
        let path = dir.path().join("zweck.yaml").display().to_string();
        for line in &check {
            assert!(
                line.starts_with(&format!("{path}:")) || line.contains("/policies/"),
                "{}: not file:line:column: {line}",
                case.name
            );
            assert!(!line.contains("error: error:"), "{}: {line}", case.name);
        }
        let mut unique = check.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            check.len(),
            "{}: a diagnostic twice: {check:#?}",
            case.name
        );
        let all = check.join("\n");
        for want in case.expect {
            assert!(
                all.contains(want),
                "{}: {want:?} missing from:\n{all}",
                case.name
            );
        }
        assert!(
            !all.contains("needs a client_cert or at least one api key"),
            "{}: {all}",
            case.name
        );
    }
}

#[test]
fn a_good_config_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certs(dir.path());
    let path = dir.path().join("zweck.yaml");
    std::fs::write(&path, config_text(dir.path(), &Options::new(1, dir.path()))).expect("write");
    let out = zweck()
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

/// The shipped config in an empty directory: `serve` would make the development files, so
/// `config check` passes without making them; the same config with `dev: false` names each
/// missing file.
#[test]
fn dev_files_still_to_be_made_are_no_error_and_check_makes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/zweck.yaml"))
        .expect("shipped zweck.yaml");
    let dev = shipped.replace(
        "policies: policies/",
        concat!("policies: ", env!("CARGO_MANIFEST_DIR"), "/policies"),
    );
    let path = dir.path().join("zweck.yaml");
    std::fs::write(&path, &dev).expect("write");
    let out = zweck()
        .args(["config", "check", "--config"])
        .arg(&path)
        .env_remove(zweck::preflight::PSEUDONYM_KEY_ENV)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("made by the first `serve`"), "{stdout}");
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, ["zweck.yaml"], "config check made files");

    std::fs::write(&path, dev.replace("dev: true", "dev: false")).expect("write");
    let out = zweck()
        .args(["config", "check", "--config"])
        .arg(&path)
        .env_remove(zweck::preflight::PSEUDONYM_KEY_ENV)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "tls.cert:",
        "tls.key:",
        "tls.client_ca:",
        "admin_token_file:",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
}
