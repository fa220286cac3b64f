//! Signed policy bundles as an operator uses them: `zweck policy keygen` and `zweck policy
//! bundle` (the binary), `serve` with `policies: { bundle, trusted_keys }`: a trusted bundle
//! is served and named in the transfer log; on reload an unsigned, altered or untrusted one
//! keeps the last good set; at start such a bundle stops Zweck.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use zweck::config::Config;
use zweck::runtime;

const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,MobilePhone,HasOptedOutOfEmail+FROM+Contact+LIMIT+6";
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

fn zweck(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_zweck"))
        .args(args)
        .output()
        .expect("run zweck");
    assert!(
        out.status.success(),
        "zweck {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keygen(dir: &Path) {
    let out = zweck(&["policy", "keygen", "--out", &dir.display().to_string()]);
    assert!(out.contains("key id"), "{out}");
}

fn bundle(policies: &Path, keys: &Path, out: &Path, label: &str) {
    let text = zweck(&[
        "policy",
        "bundle",
        &policies.display().to_string(),
        "--key",
        &keys.join("policy.key").display().to_string(),
        "--out",
        &out.display().to_string(),
        "--label",
        label,
    ]);
    assert!(text.contains("signed by key"), "{text}");
}

/// `policies:` as a flow mapping, in the harness's `policies: <path>` slot.
fn bundle_spec(bundle: &Path, trusted: &Path) -> PathBuf {
    PathBuf::from(format!(
        "{{ bundle: {}, trusted_keys: [{}] }}",
        bundle.display(),
        trusted.join("policy.pub").display()
    ))
}

fn key_id(keys: &Path) -> String {
    let text = std::fs::read_to_string(keys.join("policy.pub")).expect("pub");
    let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text.trim())
        .expect("base64");
    zweck::policy::bundle::key_id(&raw.try_into().expect("32 bytes"))
}

#[tokio::test]
async fn a_trusted_bundle_is_served_and_a_bad_one_on_reload_keeps_the_last_good_set() {
    let h = Harness::start_prepared(
        |d| {
            keygen(&d.join("trusted"));
            keygen(&d.join("stranger"));
            bundle(
                Path::new(SHIPPED),
                &d.join("trusted"),
                &d.join("p.bundle"),
                "release-1",
            );
        },
        |mut o| {
            o.policies = bundle_spec(&o.certs_dir.join("p.bundle"), &o.certs_dir.join("trusted"));
            o
        },
    )
    .await;
    let d = h.dir.path().to_path_buf();
    let shipped = zweck::policy::compile::read_dir(Path::new(SHIPPED)).expect("shipped");
    let dir_version = zweck::policy::compile::version_of(&shipped);
    let c = h.cert_client(CERT_APP, Version::H1);
    let (r, body) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        r.headers()["zweck-policy"],
        dir_version.as_str(),
        "same version as the directory"
    );
    assert!(!String::from_utf8_lossy(&body).contains("\"LastName\""));

    // the transfer log names the bundle and its signer
    let log = d.join("logs/transfers.jsonl");
    let signer = key_id(&d.join("trusted"));
    let expected = format!(r#""policy_bundle":{{"label":"release-1","signer":"{signer}"}}"#);
    assert!(
        eventually(|| std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&expected))).await,
        "the transfer log names label and signer"
    );

    // an edited directory, bundled by a key the proxy does not trust: refused, last good stays
    let edited = policies_with(&d.join("edited"), |t| {
        t.replacen(
            "      user.name.first: keep\n",
            "      user.name.first: keep\n      user.name.last: keep\n",
            1,
        )
    });
    let state = &h.zweck().state;
    bundle(
        &edited,
        &d.join("stranger"),
        &d.join("p.bundle"),
        "release-2",
    );
    let err = zweck::reload::policies(state).expect_err("untrusted signer");
    assert!(err.to_string().contains("not among trusted_keys"), "{err}");
    assert_eq!(state.live().policy.version(), dir_version);

    // the trusted key's signature over another archive (another label): altered
    bundle(
        &edited,
        &d.join("trusted"),
        &d.join("other.bundle"),
        "release-3",
    );
    std::fs::copy(d.join("other.bundle.sig"), d.join("p.bundle.sig")).expect("copy sig");
    let err = zweck::reload::policies(state).expect_err("signature does not match");
    assert!(err.to_string().contains("does not match"), "{err}");

    // no signature at all
    std::fs::copy(d.join("other.bundle"), d.join("p.bundle")).expect("copy bundle");
    std::fs::remove_file(d.join("p.bundle.sig")).expect("rm sig");
    let err = zweck::reload::policies(state).expect_err("unsigned");
    assert!(err.to_string().contains("no signature"), "{err}");
    let (r, body) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.headers()["zweck-policy"], dir_version.as_str());
    assert!(!String::from_utf8_lossy(&body).contains("\"LastName\""));

    // signed by the trusted key: swapped in
    bundle(
        &edited,
        &d.join("trusted"),
        &d.join("p.bundle"),
        "release-2",
    );
    let v2 = zweck::reload::policies(state)
        .expect("trusted bundle")
        .policy;
    assert_ne!(v2, dir_version);
    assert_eq!(
        state.live().policy.bundle().map(|b| b.label.as_str()),
        Some("release-2")
    );
    let (r, body) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.headers()["zweck-policy"], v2.as_str());
    assert!(String::from_utf8_lossy(&body).contains("\"LastName\""));
}

#[tokio::test]
async fn start_refuses_an_unsigned_or_untrusted_bundle_and_a_bundle_without_trusted_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    make_certs(d);
    keygen(&d.join("trusted"));
    keygen(&d.join("stranger"));
    bundle(
        Path::new(SHIPPED),
        &d.join("stranger"),
        &d.join("p.bundle"),
        "x",
    );
    let start = |policies: PathBuf| async move {
        let mut o = Options::new(1, d);
        o.policies = policies;
        let text = config_text(d, &o);
        let config = Config::parse(&d.join("zweck.yaml"), &text)?;
        runtime::start(config)
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from)
    };
    let err = start(bundle_spec(&d.join("p.bundle"), &d.join("trusted")))
        .await
        .expect_err("untrusted");
    assert!(
        format!("{err:#}").contains("not among trusted_keys"),
        "{err:#}"
    );
    std::fs::remove_file(d.join("p.bundle.sig")).expect("rm");
    let err = start(bundle_spec(&d.join("p.bundle"), &d.join("trusted")))
        .await
        .expect_err("unsigned");
    assert!(format!("{err:#}").contains("no signature"), "{err:#}");
    let err = start(PathBuf::from(format!(
        "{{ bundle: {} }}",
        d.join("p.bundle").display()
    )))
    .await
    .expect_err("no trusted keys");
    assert!(format!("{err:#}").contains("trusted_keys"), "{err:#}");
}
