//! Policies change while Zweck runs: a good edit is swapped in atomically (the response names
//! the new version), a broken one keeps the last good set, and `mode: shadow` changes nothing
//! on the wire.

mod common;

use std::path::Path;

use common::*;

const SOQL: &str = "/services/data/v66.0/query?q=SELECT+Id,FirstName,LastName,MobilePhone,HasOptedOutOfEmail+FROM+Contact+LIMIT+6";

fn copy_policies(to: &Path) {
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
    copy(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
        to,
    );
}

async fn version_and_body(h: &Harness, c: &TestClient) -> (String, String) {
    let (r, b) = c.get(&h.url(SOQL), &[]).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&b));
    let v = r.headers()["zweck-policy"]
        .to_str()
        .expect("version")
        .to_string();
    (v, String::from_utf8_lossy(&b).to_string())
}

#[tokio::test]
async fn a_good_edit_is_swapped_in_and_a_broken_one_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_policies(dir.path());
    let policies = dir.path().to_path_buf();
    let h = Harness::start_with(move |mut o| {
        o.policies = policies;
        o
    })
    .await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (v1, body) = version_and_body(&h, &c).await;
    assert!(
        !body.contains("\"LastName\""),
        "newsletter does not see last names"
    );

    // newsletter may now see last names: the file watcher reloads
    let purposes = dir.path().join("purposes.yaml");
    let text = std::fs::read_to_string(&purposes).expect("read");
    let edited = text.replacen(
        "      user.name.first: keep\n",
        "      user.name.first: keep\n      user.name.last: keep\n",
        1,
    );
    assert_ne!(text, edited);
    std::fs::write(&purposes, &edited).expect("write");
    let (hr, cr, old) = (&h, &c, &v1);
    let (v2, body) = eventually_some(|| async move {
        let (v, body) = version_and_body(hr, cr).await;
        (v != *old).then_some((v, body))
    })
    .await
    .expect("the edit was picked up");
    assert_ne!(v2, v1, "the edit was picked up");
    assert!(body.contains("\"LastName\""), "the new policy is in force");

    // a broken file: the reload fails and the last good set stays
    std::fs::write(
        &purposes,
        edited.replace("otherwise: drop", "otherwise: keep"),
    )
    .expect("write");
    let state = &h.zweck().state;
    let err = zweck::reload::policies(state).expect_err("otherwise: keep is refused");
    assert!(err.to_string().contains("purposes.yaml:"), "{err}");
    assert_eq!(state.live().policy.version(), v2);
    let (v3, _) = version_and_body(&h, &c).await;
    assert_eq!(v3, v2);
}

#[tokio::test]
async fn shadow_mode_changes_nothing_on_the_wire() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_policies(dir.path());
    let purposes = dir.path().join("purposes.yaml");
    let text = std::fs::read_to_string(&purposes).expect("read");
    let shadowed = text.replacen(
        "    writes: deny\n",
        "    writes: deny\n    mode: shadow\n",
        1,
    );
    assert_ne!(text, shadowed);
    std::fs::write(&purposes, shadowed).expect("write");
    let policies = dir.path().to_path_buf();
    let h = Harness::start_with(move |mut o| {
        o.policies = policies;
        o
    })
    .await;
    let c = h.cert_client(CERT_APP, Version::H1);
    let (_, body) = version_and_body(&h, &c).await;
    assert!(
        body.contains("\"LastName\""),
        "shadow mode leaves the body as it came"
    );
    assert!(body.contains("\"MobilePhone\""));
}
