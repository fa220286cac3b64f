//! Records the commit Zweck is built from, for `zweck_build_info` and `zweck --version`.
//! `ZWECK_BUILD_COMMIT` wins (a source tarball has no `.git`); otherwise git is asked, and the
//! script reruns when HEAD moves so the value never goes stale; without either: `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ZWECK_BUILD_COMMIT");
    let commit = match std::env::var("ZWECK_BUILD_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                // HEAD for a checkout, logs/HEAD for every commit on it
                println!("cargo:rerun-if-changed={dir}/HEAD");
                println!("cargo:rerun-if-changed={dir}/logs/HEAD");
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env=ZWECK_BUILD_COMMIT={commit}");
}
