//! Diagnostics: every problem `compile` finds, with `file:line:column`, printed like a compiler.

use std::fmt;
use std::path::PathBuf;

/// How bad a finding is: errors stop a policy set from loading, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding. Messages name files, keys, selectors and categories, never body values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the position is unknown.
    pub line: usize,
    /// 1-based; 0 when the position is unknown.
    pub column: usize,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.severity,
            self.message
        )
    }
}

/// Collects diagnostics while compiling.
#[derive(Debug, Default)]
pub(crate) struct Diags {
    pub list: Vec<Diagnostic>,
}

impl Diags {
    pub fn push(
        &mut self,
        severity: Severity,
        file: &std::path::Path,
        loc: Option<&serde_saphyr::Location>,
        message: impl Into<String>,
    ) {
        let (line, column) = loc
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((0, 0));
        self.list.push(Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            severity,
            message: message.into(),
        });
    }

    pub fn error(
        &mut self,
        file: &std::path::Path,
        loc: Option<&serde_saphyr::Location>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Error, file, loc, message)
    }

    pub fn warn(
        &mut self,
        file: &std::path::Path,
        loc: Option<&serde_saphyr::Location>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Warning, file, loc, message)
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }

    /// Sorted by file and position; split into (errors, warnings).
    pub fn split(mut self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        self.list
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        self.list
            .into_iter()
            .partition(|d| d.severity == Severity::Error)
    }
}
