//! Aggregate SOQL: `SELECT COUNT(Id), MailingCountry FROM Contact GROUP BY MailingCountry`,
//! `COUNT()`, `COUNT_DISTINCT`, `SUM`, `AVG`, `MIN`, `MAX`, aliases, `GROUP BY` (`ROLLUP`
//! and `CUBE` read as their plain fields).
//!
//! Rows come in Salesforce's shape (CRM-APIS.md §8.4): `{"attributes": {"type":
//! "AggregateResult"}, "MailingCountry": "Germany", "expr0": 42}`; a grouped field keeps its
//! name (a relationship field its last part), an unaliased aggregate is `expr0`, `expr1`, ...
//! in select order; `COUNT()` alone fills `totalSize` and returns no rows; aggregate results
//! do not page. Like the rest of the double's SOQL, `WHERE` and `HAVING` are not evaluated:
//! every record of the object is aggregated.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Map, Value};

/// Rows by group key, in first-seen order.
type Groups<'a> = Vec<(Vec<Value>, Vec<&'a Map<String, Value>>)>;

use super::super::reply::Reply;
use super::super::CrmDouble;
use super::records::{self, canonical, SObject};
use super::soql::{find_keyword, split_top};
use super::{ok_json, SfError};

/// SOQL's aggregate functions.
const FUNCTIONS: [&str; 6] = ["COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"];

/// What a column of the rows holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Group(String),
    Aggregate { function: String, field: String },
}

/// An aggregate statement, resolved against the object.
#[derive(Debug)]
pub(crate) struct Aggregation {
    object: SObject,
    /// (row key, column) in select order.
    columns: Vec<(String, Column)>,
    group_by: Vec<String>,
    /// `SELECT COUNT() FROM ...`: a count in `totalSize`, no rows.
    count_only: bool,
}

/// The aggregate statement `q` names, None when it is none (no aggregate function, no GROUP
/// BY), or the error Salesforce would answer.
pub(crate) fn parse(double: &CrmDouble, q: &str) -> Result<Option<Aggregation>, SfError> {
    let malformed = |m: &str| SfError::new(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", m);
    let q = q.trim();
    let Some(rest) = q
        .get(..6)
        .filter(|w| w.eq_ignore_ascii_case("select"))
        .and_then(|_| q.get(6..))
    else {
        return Ok(None);
    };
    let Some(from_at) = find_keyword(rest, "from") else {
        return Ok(None);
    };
    let list = &rest[..from_at];
    let tail = &rest[from_at + 4..];
    let items: Vec<&str> = split_top(list, ',').into_iter().map(str::trim).collect();
    let is_function = |item: &str| {
        item.split_once('(')
            .is_some_and(|(f, _)| FUNCTIONS.iter().any(|n| n.eq_ignore_ascii_case(f.trim())))
    };
    let group_at = find_keyword(tail, "group");
    if group_at.is_none() && !items.iter().any(|i| is_function(i)) {
        return Ok(None);
    }
    let object_name = tail.split_whitespace().next().unwrap_or_default();
    let object = SObject::parse(object_name).ok_or_else(|| {
        SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("sObject type '{object_name}' is not supported."),
        )
    })?;
    let sample = records::full(double, object, 0, "v66.0").unwrap_or_default();
    let field = |name: &str| -> Result<String, SfError> {
        // a relationship field (`Account.Name`) groups by the related value; the double keeps
        // no relationships here, so only the object's own fields
        canonical(&sample, name).ok_or_else(|| {
            SfError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                format!("No such column '{name}' on entity '{}'.", object.name()),
            )
        })
    };
    let mut columns = Vec::new();
    let mut expr = 0usize;
    let mut count_only = false;
    for item in &items {
        let (expression, alias) = match item.rfind(')') {
            Some(close) if is_function(item) => {
                let alias = item[close + 1..].trim();
                (&item[..=close], (!alias.is_empty()).then_some(alias))
            }
            _ => match item.split_once(char::is_whitespace) {
                Some((f, a)) => (f, Some(a.trim())),
                None => (*item, None),
            },
        };
        if let Some((function, arg)) = expression.split_once('(') {
            let function = function.trim().to_ascii_uppercase();
            let arg = arg.trim_end_matches(')').trim();
            if arg.is_empty() {
                if function != "COUNT" || items.len() > 1 {
                    return Err(malformed(
                        "COUNT() must be the only item of the select list",
                    ));
                }
                count_only = true;
                continue;
            }
            let key = match alias {
                Some(a) => a.to_string(),
                None => {
                    expr += 1;
                    format!("expr{}", expr - 1)
                }
            };
            columns.push((
                key,
                Column::Aggregate {
                    function,
                    field: field(arg)?,
                },
            ));
        } else {
            let name = field(expression)?;
            columns.push((
                alias.map_or_else(|| name.clone(), str::to_string),
                Column::Group(name),
            ));
        }
    }
    let mut group_by = Vec::new();
    if let Some(at) = group_at {
        let after = tail[at + 5..].trim_start();
        let after = after
            .get(..2)
            .filter(|w| w.eq_ignore_ascii_case("by"))
            .map(|_| &after[2..])
            .ok_or_else(|| malformed("unexpected token: expected BY"))?;
        let end = ["having", "order", "limit", "offset"]
            .iter()
            .filter_map(|k| find_keyword(after, k))
            .min()
            .unwrap_or(after.len());
        for g in split_top(&after[..end], ',') {
            let g = g.trim();
            let g = ["ROLLUP(", "CUBE("]
                .iter()
                .find_map(|w| {
                    g.get(..w.len())
                        .filter(|p| p.eq_ignore_ascii_case(w))
                        .map(|_| g[w.len()..].trim_end_matches(')'))
                })
                .unwrap_or(g);
            for name in g.split(',') {
                group_by.push(field(name.trim())?);
            }
        }
    }
    // every plain field of the list must be grouped
    for (_, c) in &columns {
        if let Column::Group(name) = c {
            if !group_by.contains(name) {
                return Err(malformed(&format!(
                    "field '{name}' must be grouped or aggregated"
                )));
            }
        }
    }
    Ok(Some(Aggregation {
        object,
        columns,
        group_by,
        count_only,
    }))
}

/// The answer to an aggregate statement: one page, every group.
pub(crate) fn answer(double: &Arc<CrmDouble>, agg: &Aggregation, ver: &str) -> Reply {
    let total = double.store.total(agg.object.kind());
    let rows: Vec<Map<String, Value>> = (0..total)
        .filter_map(|i| records::full(double, agg.object, i, ver))
        .collect();
    if agg.count_only {
        return ok_json(
            StatusCode::OK,
            &json!({ "totalSize": rows.len(), "done": true, "records": [] }),
        );
    }
    // groups in first-seen order
    let mut groups: Groups<'_> = Vec::new();
    for row in &rows {
        let key: Vec<Value> = agg
            .group_by
            .iter()
            .map(|g| row.get(g).cloned().unwrap_or(Value::Null))
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    if agg.group_by.is_empty() && groups.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    let out: Vec<Value> = groups
        .iter()
        .map(|(_, members)| {
            let mut row = Map::new();
            row.insert("attributes".into(), json!({ "type": "AggregateResult" }));
            for (key, column) in &agg.columns {
                let value = match column {
                    Column::Group(name) => members
                        .first()
                        .and_then(|m| m.get(name).cloned())
                        .unwrap_or(Value::Null),
                    Column::Aggregate { function, field } => {
                        let values: Vec<&Value> = members
                            .iter()
                            .filter_map(|m| m.get(field))
                            .filter(|v| !v.is_null())
                            .collect();
                        compute(function, &values)
                    }
                };
                row.insert(key.clone(), value);
            }
            Value::Object(row)
        })
        .collect();
    ok_json(
        StatusCode::OK,
        &json!({ "totalSize": out.len(), "done": true, "records": out }),
    )
}

/// One aggregate over the non-null values of a group.
fn compute(function: &str, values: &[&Value]) -> Value {
    let numbers = || values.iter().filter_map(|v| v.as_f64());
    match function {
        "COUNT" => json!(values.len()),
        "COUNT_DISTINCT" => {
            let mut seen: Vec<&Value> = Vec::new();
            for v in values {
                if !seen.contains(v) {
                    seen.push(v);
                }
            }
            json!(seen.len())
        }
        "SUM" => json!(numbers().sum::<f64>()),
        "AVG" => {
            let n = numbers().count();
            if n == 0 {
                Value::Null
            } else {
                json!(numbers().sum::<f64>() / n as f64)
            }
        }
        "MIN" | "MAX" => {
            let mut best: Option<&Value> = None;
            for v in values {
                let better = best.is_none_or(|b| {
                    let ord = match (v.as_f64(), b.as_f64()) {
                        (Some(x), Some(y)) => x.partial_cmp(&y),
                        _ => Some(v.to_string().cmp(&b.to_string())),
                    };
                    ord.is_some_and(|o| {
                        if function == "MIN" {
                            o.is_lt()
                        } else {
                            o.is_gt()
                        }
                    })
                });
                if better {
                    best = Some(v);
                }
            }
            best.cloned().unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}
