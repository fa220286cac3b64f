//! `zweck policy explain`: what would happen to one request, field by field.
//!
//! Runs the proxy's own decision ([`super::decide::exchange`]: route, query minimisation,
//! writes, request and response bodies) on copies of the bodies with tracing on, and reports
//! the decision and, per field path, the category, the rule and the action. Paths are
//! templates (`$.records[*].Email`) and refused query fields are names (`Contact.MobilePhone`),
//! so the output never contains a value from the request or a body.

use std::collections::HashSet;
use std::fmt;

use http::Method;
use serde_json::Value;

use super::decide::{self, Bodies, Denial, Exchange, Verdict};
use super::engine::{FieldDecision, Refusal};
use super::query::QueryRefusal;
use super::set::PolicySet;
use super::PseudonymKey;
use crate::dialect::Dialect;
use crate::pattern::RoutePattern;

/// Why a request could not be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown purpose `{0}`")]
    UnknownPurpose(String),
}

/// The request to explain, as the proxy would see it after routing.
#[derive(Debug, Clone, Copy)]
pub struct ExplainRequest<'a> {
    pub dialect: Dialect,
    pub method: &'a Method,
    /// The canonical path.
    pub path: &'a str,
    /// The raw query string (without `?`): queries are minimised as on the wire.
    pub query: Option<&'a str>,
    /// The upstream's own `ungoverned` entries (from `zweck.yaml`).
    pub upstream_ungoverned: &'a [RoutePattern],
    /// What the app sends (a write, or a POST read's query such as a search).
    pub request_body: Option<&'a Value>,
    /// What the CRM answers.
    pub response_body: Option<&'a Value>,
}

/// The explanation of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The route template, or `ungoverned` / `unknown`.
    pub route: String,
    /// What the proxy decides: `allowed`, `minimised`, `blocked`, `write_denied`,
    /// `write_action_not_allowed`, `withheld`, `query_not_allowed`, `query_not_checkable`,
    /// `pseudonym_key_missing`, `ungoverned`, `unknown` (refused as `unknown-resource`) or
    /// `tunnel` (governed part by part: explain each part).
    pub decision: String,
    /// Why it was refused (field paths or query field names, never values).
    pub reason: Option<String>,
    /// Records counted (0 when refused).
    pub records: u64,
    /// Query refusals the purpose is spared because it is in `mode: shadow`.
    pub shadowed: Vec<String>,
    /// The path and query the proxy forwards instead of the app's, when query minimisation
    /// rewrote the query (consent fields added); None when it goes as sent.
    pub forwarded: Option<String>,
    /// One line per distinct (path, category, rule, action), in body order.
    pub fields: Vec<FieldDecision>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "route:    {}", self.route)?;
        writeln!(f, "decision: {}", self.decision)?;
        if let Some(r) = &self.reason {
            writeln!(f, "reason:   {r}")?;
        }
        if let Some(u) = &self.forwarded {
            writeln!(f, "forwarded: {u}")?;
        }
        for s in &self.shadowed {
            writeln!(f, "shadow:   would be refused: {s}")?;
        }
        writeln!(f, "records:  {}", self.records)?;
        let width = |get: fn(&FieldDecision) -> usize, min: usize| {
            self.fields.iter().map(get).max().unwrap_or(min).max(min)
        };
        let w = width(|d| d.path.len(), 4);
        let c = width(|d| d.category.len(), 8);
        let r = width(|d| d.rule.len(), 4);
        if !self.fields.is_empty() {
            writeln!(f, "{:w$}  {:c$}  {:r$}  action", "path", "category", "rule")?;
        }
        for d in &self.fields {
            writeln!(
                f,
                "{:w$}  {:c$}  {:r$}  {}",
                d.path, d.category, d.rule, d.action
            )?;
        }
        Ok(())
    }
}

/// Explains what `purpose` would get for `req`. No pseudonym key is needed: a fixed one is
/// used, and values are never shown.
pub fn explain(
    set: &PolicySet,
    purpose: &str,
    req: &ExplainRequest<'_>,
) -> Result<Explanation, ExplainError> {
    let p = set
        .purpose(purpose)
        .ok_or_else(|| ExplainError::UnknownPurpose(purpose.to_string()))?;
    let ex = Exchange {
        dialect: req.dialect,
        method: req.method,
        path: req.path,
        query: req.query,
        upstream_ungoverned: req.upstream_ungoverned,
    };
    let (mut request, mut response) = (req.request_body.cloned(), req.response_body.cloned());
    let bodies = Bodies {
        request: request.as_mut(),
        response: response.as_mut(),
    };
    let key = PseudonymKey::new(b"zweck-explain");
    let plain = |route: String, decision: &str| Explanation {
        route,
        decision: decision.to_string(),
        reason: None,
        records: 0,
        shadowed: Vec::new(),
        forwarded: None,
        fields: Vec::new(),
    };
    let g = match decide::exchange(set, p, &ex, bodies, Some(&key), true) {
        Verdict::Ungoverned { template } => return Ok(plain(template, "ungoverned")),
        Verdict::Metadata { template } => return Ok(plain(template, "metadata")),
        Verdict::Unknown => return Ok(plain("unknown".into(), "unknown")),
        Verdict::Governed(g) if g.op.tunnel().is_some() => {
            return Ok(plain(g.op.template().to_string(), "tunnel"))
        }
        Verdict::Governed(g) => g,
    };
    let mut seen = HashSet::new();
    let fields = g
        .trace
        .into_iter()
        .filter(|d| {
            seen.insert((
                d.path.clone(),
                d.category.clone(),
                d.rule.clone(),
                d.action.clone(),
            ))
        })
        .collect();
    Ok(Explanation {
        route: g.op.template().to_string(),
        decision: decide::decision_name(&g.result).to_string(),
        reason: g.result.as_ref().err().and_then(reason),
        records: g.result.as_ref().map_or(0, |o| o.records),
        shadowed: g.shadowed.iter().map(ToString::to_string).collect(),
        forwarded: g
            .forwarded_query
            .as_ref()
            .map(|q| format!("{}?{q}", req.path)),
        fields,
    })
}

/// What a refusal names: field paths or query fields, never values.
fn reason(d: &Denial) -> Option<String> {
    match d {
        Denial::Query(QueryRefusal::NotAllowed { fields }) => Some(format!(
            "the query filters or sorts on {}",
            fields.join(", ")
        )),
        Denial::Query(QueryRefusal::Unreadable(why)) => Some(format!("unreadable query: {why}")),
        Denial::Query(
            q @ (QueryRefusal::AggregateNotAllowed { .. }
            | QueryRefusal::ConsentFieldMissing { .. }),
        ) => Some(q.to_string()),
        Denial::Policy(
            Refusal::Blocked { field_paths, .. }
            | Refusal::WriteActionNotAllowed { field_paths }
            | Refusal::WriteFieldsDropped { field_paths, .. },
        ) => Some(field_paths.join(", ")),
        Denial::Policy(r) => Some(r.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explains_without_values() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let (set, _) = PolicySet::load(&dir).expect("shipped policies");
        let body = json!({"totalSize": 1, "done": true, "records": [
            {"attributes": {"type": "Contact"}, "Id": "003", "FirstName": "Livia", "LastName": "Secret-Name",
             "Email": "livia@example.com", "Birthdate": "1984-02-29", "HasOptedOutOfEmail": false, "X__c": "y"}]});
        let e = explain(
            &set,
            "newsletter",
            &req(
                &Method::GET,
                "/services/data/v66.0/query",
                None,
                Some(&body),
            ),
        )
        .expect("explained");
        assert_eq!(e.route, "GET /services/data/v*/query");
        assert_eq!(e.decision, "minimised");
        assert_eq!(e.records, 1);
        let find = |p: &str| e.fields.iter().find(|d| d.path == p).cloned().expect(p);
        assert_eq!(find("$.records[*].LastName").action, "drop");
        assert_eq!(find("$.records[*].LastName").rule, "otherwise");
        assert_eq!(
            find("$.records[*].Birthdate").rule,
            "fields.user.demographic.date_of_birth"
        );
        assert_eq!(find("$.records[*].Birthdate").action, "generalise");
        assert_eq!(find("$.records[*].X__c").category, "unclassified");
        assert_eq!(find("$.totalSize").rule, "system");
        let text = e.to_string();
        for v in ["Livia", "Secret-Name", "livia@example.com", "1984"] {
            assert!(!text.contains(v), "{v} in {text}");
        }
        let u = explain(
            &set,
            "newsletter",
            &req(&Method::GET, "/services/data/", None, None),
        )
        .expect("ok");
        assert_eq!(u.decision, "ungoverned");
        assert!(explain(&set, "nope", &req(&Method::GET, "/", None, None)).is_err());
    }

    fn req<'a>(
        method: &'a Method,
        path: &'a str,
        query: Option<&'a str>,
        response: Option<&'a Value>,
    ) -> ExplainRequest<'a> {
        ExplainRequest {
            dialect: Dialect::Salesforce,
            method,
            path,
            query,
            upstream_ungoverned: &[],
            request_body: None,
            response_body: response,
        }
    }

    fn shipped() -> PolicySet {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        PolicySet::load(&dir).expect("shipped policies").0
    }

    /// The case: a predicate on a field the purpose may not see is refused by the
    /// proxy (403 query-not-allowed), and explain says so instead of "allowed".
    #[test]
    fn explains_query_minimisation_like_the_proxy() {
        let set = shipped();
        let e = explain(
            &set,
            "newsletter",
            &req(
                &Method::GET,
                "/services/data/v66.0/query",
                Some("q=SELECT+Id+FROM+Contact+WHERE+MobilePhone='123'"),
                None,
            ),
        )
        .expect("explained");
        assert_eq!(e.decision, "query_not_allowed");
        let reason = e.reason.expect("a reason");
        assert!(reason.contains("Contact.MobilePhone"), "{reason}");
        assert!(!reason.contains("123"), "{reason}");
        // a write of a purpose that may not write is refused before any body is read
        let w = explain(
            &set,
            "newsletter",
            &req(
                &Method::PATCH,
                "/services/data/v66.0/sobjects/Contact/003",
                None,
                None,
            ),
        )
        .expect("explained");
        assert_eq!(w.decision, "write_denied");
    }
}
