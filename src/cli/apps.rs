//! `zweck apps ...`: steps on a running Zweck's apps through its admin listener, with the
//! token of `admin_token_file` (the same requests an operator can send with curl, marked
//! `by=cli` so the transfer log's `containment` entry says who took the step). This module
//! turns a command line into the admin request's target; `main.rs` sends it.

use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Refuse every request with the app's keys or certificate from now on, also on open
    /// connections (`app-revoked`); logged as a containment step.
    Revoke {
        app: String,
        /// Why (a slug or short text, never a value); goes into the transfer log.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
    /// Lift a revocation; logged as a containment step.
    Reinstate {
        app: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
    /// Contain one purpose of the app from the next request on, also on open connections:
    /// `block` refuses its every request, `throttle` its bulk exports and shrinks its budget
    /// (`purpose-contained`); logged as a containment step, kept until cleared.
    Contain {
        app: String,
        /// The purpose to contain (one the app is granted).
        #[arg(long)]
        purpose: String,
        #[arg(long, value_parser = ["block", "throttle"])]
        action: String,
        /// Why (a slug or short text, never a value); goes into the transfer log.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
    /// Lift the containment of one purpose of the app (by hand or by the detector); logged
    /// as a containment step.
    Clear {
        app: String,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value = "zweck.yaml")]
        config: PathBuf,
    },
}

impl AppsCommand {
    /// The config naming the admin listener and token.
    pub fn config(&self) -> &std::path::Path {
        match self {
            AppsCommand::Revoke { config, .. }
            | AppsCommand::Reinstate { config, .. }
            | AppsCommand::Contain { config, .. }
            | AppsCommand::Clear { config, .. } => config,
        }
    }

    /// The admin listener's request target (path and query), `by=cli` included.
    pub fn target(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("by", "cli");
        let (path, reason) = match self {
            AppsCommand::Revoke { app, reason, .. } => {
                (format!("/apps/{}/revoke", segment(app)), reason)
            }
            AppsCommand::Reinstate { app, reason, .. } => {
                (format!("/apps/{}/reinstate", segment(app)), reason)
            }
            AppsCommand::Contain {
                app,
                purpose,
                action,
                reason,
                ..
            } => {
                query.append_pair("app", app);
                query.append_pair("purpose", purpose);
                query.append_pair("action", action);
                ("/containment/contain".to_string(), reason)
            }
            AppsCommand::Clear {
                app,
                purpose,
                reason,
                ..
            } => {
                query.append_pair("app", app);
                query.append_pair("purpose", purpose);
                ("/containment/clear".to_string(), reason)
            }
        };
        if let Some(r) = reason {
            query.append_pair("reason", r);
        }
        format!("{path}?{}", query.finish())
    }
}

/// An app name as one path segment: letters, digits, '-' and '_' as they are, anything
/// else escaped.
fn segment(app: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');
    percent_encoding::utf8_percent_encode(app, SEGMENT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        apps: AppsCommand,
    }

    fn target(args: &[&str]) -> String {
        Cli::try_parse_from(std::iter::once("apps").chain(args.iter().copied()))
            .expect("parses")
            .apps
            .target()
    }

    #[test]
    fn each_command_names_its_admin_request() {
        assert_eq!(
            target(&["contain", "bi-export", "--purpose", "analytics", "--action", "block", "--reason", "breach probe"]),
            "/containment/contain?by=cli&app=bi-export&purpose=analytics&action=block&reason=breach+probe"
        );
        assert_eq!(
            target(&["clear", "bi&x", "--purpose", "a=b"]),
            "/containment/clear?by=cli&app=bi%26x&purpose=a%3Db"
        );
        assert_eq!(
            target(&["revoke", "a/b", "--reason", "key-leaked"]),
            "/apps/a%2Fb/revoke?by=cli&reason=key-leaked"
        );
        assert_eq!(target(&["reinstate", "a"]), "/apps/a/reinstate?by=cli");
    }

    #[test]
    fn a_bad_action_or_a_missing_purpose_is_refused_before_anything_is_sent() {
        for args in [
            &["contain", "a", "--purpose", "p", "--action", "alert"][..],
            &["contain", "a", "--purpose", "p"][..],
            &["contain", "a", "--action", "block"][..],
            &["clear", "a"][..],
        ] {
            assert!(
                Cli::try_parse_from(std::iter::once("apps").chain(args.iter().copied())).is_err(),
                "{args:?}"
            );
        }
    }
}
