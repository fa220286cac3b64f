//! `zweck policy explain`: what would happen to one request, field by field.
//!
//! Runs the real engine on a copy of the body with tracing on and reports, per field path,
//! the category, the rule and the action. Paths are templates (`$.records[*].Email`), so the
//! output never contains a value from the body.

use std::collections::HashSet;
use std::fmt;

use http::Method;
use serde_json::Value;

use super::engine::{apply_traced, Direction, FieldDecision};
use super::set::{OpKind, PolicySet, RouteMatch};
use super::testing::decision_name;
use super::PseudonymKey;
use crate::dialect::Dialect;

/// Why a request could not be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown purpose `{0}`")]
    UnknownPurpose(String),
}

/// The explanation of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The route template, or `ungoverned` / `unknown`.
    pub route: String,
    /// `allowed`, `minimised`, `blocked`, `write_denied`, `write_action_not_allowed`,
    /// `withheld`, `ungoverned` or `unknown` (refused as `unknown-resource`).
    pub decision: String,
    /// Records counted (0 when refused).
    pub records: u64,
    /// One line per distinct (path, category, rule, action), in body order.
    pub fields: Vec<FieldDecision>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "route:    {}", self.route)?;
        writeln!(f, "decision: {}", self.decision)?;
        writeln!(f, "records:  {}", self.records)?;
        let w = self
            .fields
            .iter()
            .map(|d| d.path.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let c = self
            .fields
            .iter()
            .map(|d| d.category.len())
            .max()
            .unwrap_or(8)
            .max(8);
        let r = self
            .fields
            .iter()
            .map(|d| d.rule.len())
            .max()
            .unwrap_or(4)
            .max(4);
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

/// Explains what `purpose` would get for `method path` with `body` (the response body for
/// reads, the request body for writes). No pseudonym key is needed: a fixed one is used,
/// and values are never shown.
pub fn explain(
    set: &PolicySet,
    dialect: Dialect,
    purpose: &str,
    method: &Method,
    path: &str,
    body: &Value,
) -> Result<Explanation, ExplainError> {
    let p = set
        .purpose(purpose)
        .ok_or_else(|| ExplainError::UnknownPurpose(purpose.to_string()))?;
    let op = match set.classify(dialect, method, path) {
        RouteMatch::Operation(op) => op,
        RouteMatch::Ungoverned { template } => {
            return Ok(Explanation {
                route: template.to_string(),
                decision: "ungoverned".into(),
                records: 0,
                fields: Vec::new(),
            })
        }
        RouteMatch::Metadata { template, .. } => {
            return Ok(Explanation {
                route: template.to_string(),
                decision: "metadata".into(),
                records: 0,
                fields: Vec::new(),
            })
        }
        RouteMatch::Unknown => {
            return Ok(Explanation {
                route: "unknown".into(),
                decision: "unknown".into(),
                records: 0,
                fields: Vec::new(),
            })
        }
    };
    let dir = if op.op() == OpKind::Read {
        Direction::Response
    } else {
        Direction::Request
    };
    let mut copy = body.clone();
    let key = PseudonymKey::new(b"zweck-explain");
    let (result, trace) = apply_traced(set, p, op, dir, &mut copy, Some(&key));
    let mut seen = HashSet::new();
    let fields = trace
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
        route: op.template().to_string(),
        decision: decision_name(&result).to_string(),
        records: result.as_ref().map_or(0, |o| o.records),
        fields,
    })
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
            Dialect::Salesforce,
            "newsletter",
            &Method::GET,
            "/services/data/v66.0/query",
            &body,
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
            Dialect::Salesforce,
            "newsletter",
            &Method::GET,
            "/services/data/",
            &Value::Null,
        )
        .expect("ok");
        assert_eq!(u.decision, "ungoverned");
        assert!(explain(
            &set,
            Dialect::Salesforce,
            "nope",
            &Method::GET,
            "/",
            &Value::Null
        )
        .is_err());
    }
}
