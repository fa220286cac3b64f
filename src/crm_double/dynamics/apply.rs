//! `$apply` on `contacts`: `filter(col eq value)`, `groupby((a,b))`,
//! `groupby((a),aggregate(x with sum as s, $count as n))` and `aggregate(...)`, chained with
//! `/` (OData Data Aggregation, as Dataverse supports it: `sum`, `min`, `max`, `average`,
//! `countdistinct`, `$count`).
//!
//! The rows are `{"@odata.context": ..., "value": [{"address1_country": "Germany", "n": 42}]}`:
//! one object per group with the grouped columns and the aliases, no `contactid`, no ETag;
//! aggregated results do not page.

use http::StatusCode;
use serde_json::{json, Map, Value};

/// Rows by group key, in first-seen order.
type Groups<'a> = Vec<(Vec<Value>, Vec<&'a Map<String, Value>>)>;

use super::super::reply::Reply;
use super::super::store::Kind;
use super::super::CrmDouble;
use super::{dv_error, full, full_sample, ok, parse_filter, ROOT};

enum Step {
    Filter(String),
    GroupBy(Vec<String>, Vec<Aggregate>),
    Aggregate(Vec<Aggregate>),
}

struct Aggregate {
    /// None: `$count`.
    column: Option<String>,
    method: String,
    alias: String,
}

fn unsupported() -> Reply {
    dv_error(
        StatusCode::BAD_REQUEST,
        "0x80060888",
        "The double supports $apply as filter, groupby and aggregate transformations.",
    )
}

/// `inner` of `name(inner)`, at the outer parentheses.
fn call<'a>(step: &'a str, name: &str) -> Option<&'a str> {
    let step = step.trim();
    step.get(..name.len() + 1)
        .filter(|p| p.eq_ignore_ascii_case(&format!("{name}(")))
        .and_then(|_| step[name.len() + 1..].strip_suffix(')'))
}

fn aggregates(list: &str) -> Result<Vec<Aggregate>, Reply> {
    let mut out = Vec::new();
    for item in list.split(',') {
        let words: Vec<&str> = item.split_whitespace().collect();
        let aggregate = match words.as_slice() {
            ["$count", "as", alias] => Aggregate {
                column: None,
                method: "count".into(),
                alias: (*alias).to_string(),
            },
            [column, "with", method, "as", alias]
                if ["sum", "min", "max", "average", "countdistinct"].contains(method)
                    && full_sample().contains(column) =>
            {
                Aggregate {
                    column: Some((*column).to_string()),
                    method: (*method).to_string(),
                    alias: (*alias).to_string(),
                }
            }
            _ => return Err(unsupported()),
        };
        out.push(aggregate);
    }
    Ok(out)
}

fn parse(apply: &str) -> Result<Vec<Step>, Reply> {
    let mut steps = Vec::new();
    for step in split_steps(apply) {
        if let Some(inner) = call(step, "filter") {
            steps.push(Step::Filter(inner.to_string()));
        } else if let Some(inner) = call(step, "groupby") {
            let inner = inner.trim();
            let close = inner.find(')').ok_or_else(unsupported)?;
            let columns: Vec<String> = inner.strip_prefix('(').ok_or_else(unsupported)?
                [..close - 1]
                .split(',')
                .map(|c| c.trim().to_string())
                .collect();
            if columns.iter().any(|c| !full_sample().contains(&c.as_str())) {
                return Err(unsupported());
            }
            let rest = inner[close + 1..].trim().trim_start_matches(',').trim();
            let aggs = if rest.is_empty() {
                Vec::new()
            } else {
                aggregates(call(rest, "aggregate").ok_or_else(unsupported)?)?
            };
            steps.push(Step::GroupBy(columns, aggs));
        } else if let Some(inner) = call(step, "aggregate") {
            steps.push(Step::Aggregate(aggregates(inner)?));
        } else {
            return Err(unsupported());
        }
    }
    Ok(steps)
}

/// Splits at `/` outside parentheses and quotes.
fn split_steps(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '/' if depth == 0 && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The answer to `GET contacts?$apply=...`.
pub(super) fn answer(double: &CrmDouble, host: &str, apply: &str) -> Reply {
    let steps = match parse(apply) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let total = double.store.total(Kind::DvContact);
    let mut rows: Vec<Map<String, Value>> = (0..total).filter_map(|i| full(double, i)).collect();
    let mut grouped: Option<Vec<Map<String, Value>>> = None;
    for step in steps {
        match step {
            Step::Filter(f) => {
                let clauses = match parse_filter(&f) {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                rows.retain(|r| {
                    clauses
                        .iter()
                        .all(|c| r.get(&c.column).is_some_and(|v| *v == c.value))
                });
            }
            Step::GroupBy(columns, aggs) => grouped = Some(group(&rows, &columns, &aggs)),
            Step::Aggregate(aggs) => grouped = Some(group(&rows, &[], &aggs)),
        }
    }
    let value = grouped.unwrap_or(rows);
    let columns: Vec<String> = value
        .first()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    ok(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("https://{host}{ROOT}/$metadata#contacts({})", columns.join(",")),
            "value": value,
        }),
    )
}

fn group(
    rows: &[Map<String, Value>],
    columns: &[String],
    aggs: &[Aggregate],
) -> Vec<Map<String, Value>> {
    let mut groups: Groups<'_> = Vec::new();
    for row in rows {
        let key: Vec<Value> = columns
            .iter()
            .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    if columns.is_empty() && groups.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    groups
        .into_iter()
        .map(|(key, members)| {
            let mut out = Map::new();
            for (c, v) in columns.iter().zip(key) {
                out.insert(c.clone(), v);
            }
            for a in aggs {
                let values: Vec<&Value> = match &a.column {
                    None => Vec::new(),
                    Some(c) => members
                        .iter()
                        .filter_map(|m| m.get(c))
                        .filter(|v| !v.is_null())
                        .collect(),
                };
                let numbers = || values.iter().filter_map(|v| v.as_f64());
                let v = match a.method.as_str() {
                    "count" => json!(members.len()),
                    "countdistinct" => {
                        let mut seen: Vec<&Value> = Vec::new();
                        for v in &values {
                            if !seen.contains(v) {
                                seen.push(v);
                            }
                        }
                        json!(seen.len())
                    }
                    "sum" => json!(numbers().sum::<f64>()),
                    "average" if !values.is_empty() => {
                        json!(numbers().sum::<f64>() / values.len() as f64)
                    }
                    "min" => values
                        .iter()
                        .min_by(|x, y| x.to_string().cmp(&y.to_string()))
                        .map_or(Value::Null, |v| (*v).clone()),
                    "max" => values
                        .iter()
                        .max_by(|x, y| x.to_string().cmp(&y.to_string()))
                        .map_or(Value::Null, |v| (*v).clone()),
                    _ => Value::Null,
                };
                out.insert(a.alias.clone(), v);
            }
            out
        })
        .collect()
}
