//! Where the policies in force come from: a directory, or a signed bundle verified against
//! trusted keys (`bundle.rs`). Start-up, reload and the CLI all load through here, so a
//! bundle is verified every time it is read, never only once.

use std::path::{Path, PathBuf};

use super::bundle;
use super::compile::compile;
use super::diagnostic::{Diagnostic, Severity};
use super::PolicySet;

/// A policy directory, or a bundle and the public key files it must be signed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    Dir(PathBuf),
    Bundle {
        file: PathBuf,
        trusted_keys: Vec<PathBuf>,
    },
}

fn error(file: &Path, message: String) -> Vec<Diagnostic> {
    vec![Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        severity: Severity::Error,
        message,
    }]
}

impl PolicySource {
    /// Where to watch for a reload: a directory recursively; for a bundle its directory,
    /// not recursively (a new bundle is often renamed into place), filtered by `concerns`.
    pub fn watch_path(&self) -> (&Path, bool) {
        match self {
            PolicySource::Dir(d) => (d, true),
            PolicySource::Bundle { file, .. } => (
                file.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
                false,
            ),
        }
    }

    /// Whether a change to `path` (as the watcher reports it) may change the policies.
    pub fn concerns(&self, path: &Path) -> bool {
        match self {
            PolicySource::Dir(_) => true,
            PolicySource::Bundle { file, .. } => {
                let name = |p: &Path| p.file_name().map(std::ffi::OsStr::to_os_string);
                let changed = name(path);
                changed.is_some()
                    && (changed == name(file) || changed == name(&signature_path(file)))
            }
        }
    }

    /// Reads, verifies (bundles) and compiles the policies; the set and its warnings, or
    /// every error.
    pub fn load(&self) -> Result<(PolicySet, Vec<Diagnostic>), Vec<Diagnostic>> {
        match self {
            PolicySource::Dir(dir) => PolicySet::load(dir),
            PolicySource::Bundle { file, trusted_keys } => {
                let archive = std::fs::read(file)
                    .map_err(|e| error(file, format!("cannot read the policy bundle: {e}")))?;
                let sig_path = signature_path(file);
                let signature = match std::fs::read_to_string(&sig_path) {
                    Ok(s) => Some(s),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(error(&sig_path, format!("cannot read: {e}"))),
                };
                let mut trusted = Vec::new();
                for k in trusted_keys {
                    trusted.push(
                        crate::secrets::read_audit_pub(k)
                            .map_err(|e| error(k, format!("trusted key: {e}")))?,
                    );
                }
                let name = file.display().to_string();
                let (sources, provenance) =
                    bundle::open(&archive, signature.as_deref(), &trusted, &name)
                        .map_err(|e| error(file, format!("policy bundle refused: {e}")))?;
                let (mut set, warnings) = compile(&sources)?;
                set.bundle = Some(provenance);
                Ok((set, warnings))
            }
        }
    }
}

/// The detached signature of a bundle: `<bundle>.sig`.
pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}
