//! Policy diagnostics are the crate's one diagnostic type ([`crate::diagnostic`]), shared with
//! the config loader; re-exported here so policy code names them as before.

pub(crate) use crate::diagnostic::{first_line, Diags};
pub use crate::diagnostic::{Diagnostic, Severity};
