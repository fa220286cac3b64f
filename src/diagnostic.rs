//! Diagnostics: every problem a loader finds in a file, with `file:line:column`, printed like a
//! compiler. One type for the config (`zweck.yaml`) and for policies, so `zweck config check`
//! and `zweck policy check` speak alike and tools can parse both the same way.

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
        let (line, column) = loc.map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
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
        self.push(Severity::Error, file, loc, message);
    }

    pub fn warn(
        &mut self,
        file: &std::path::Path,
        loc: Option<&serde_saphyr::Location>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Warning, file, loc, message);
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

/// An error and its sources, `: `-separated, each said once: a source whose text the message
/// already carries (`transfer log: X` over `X`) is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The first line of a YAML error without the `error: line N column M:` prefix (the
/// diagnostic carries the position itself).
pub(crate) fn first_line(s: &str) -> String {
    let mut l = s.lines().next().unwrap_or("").trim();
    l = l.strip_prefix("error:").unwrap_or(l).trim();
    if let Some(rest) = l.strip_prefix("line ") {
        if let Some((_, msg)) = rest.split_once(": ") {
            return msg.trim().to_string();
        }
    }
    if l.is_empty() {
        return "invalid YAML".to_string();
    }
    l.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_says_each_source_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("transfer log: {0}")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(chain(&e), "transfer log: disk full");
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x")]
        struct Plain(#[source] std::io::Error);
        let e = Plain(std::io::Error::other("denied"));
        assert_eq!(chain(&e), "cannot read x: denied");
    }

    #[test]
    fn first_line_drops_the_position_prefix_and_the_rest() {
        assert_eq!(
            first_line("error: line 3 column 1: unknown field `x`\n  context"),
            "unknown field `x`"
        );
        assert_eq!(first_line("unknown field `x`"), "unknown field `x`");
        assert_eq!(first_line(""), "invalid YAML");
    }
}
