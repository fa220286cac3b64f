//! Just enough SOQL: `SELECT <list> FROM <Object> [... LIMIT n]`.
//!
//! There is no query engine: `WHERE` and `ORDER BY` are ignored and rows come in index order.
//! The SELECT list is honoured when it is a plain comma list of fields, dotted parent fields
//! (`Account.Name`) and child subqueries (`(SELECT CaseNumber FROM Cases)`); anything else
//! (`FIELDS(ALL)`, functions) returns all fields. Aggregate statements are answered by
//! `aggregate.rs`. Pagination is real: server-side cursors,
//! `nextRecordsUrl` locators `<cursor>-<offset>` and `Sforce-Query-Options: batchSize=N`.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::super::reply::Reply;
use super::super::request::Req;
use super::super::CrmDouble;
use super::records::{self, canonical, SObject};
use super::{error, ok_json, SfError};

/// Default and maximum rows per page; the minimum a client may ask for is 200.
pub(crate) const MAX_BATCH: u64 = 2000;
const MIN_BATCH: u64 = 200;

/// A parent relationship in the SELECT list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parent {
    Account,
    Individual,
}

/// One item of the SELECT list, resolved against the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Field(String),
    Parent {
        rel: Parent,
        fields: Vec<String>,
    },
    /// The `Cases` child subquery of Contact.
    Cases {
        fields: Vec<String>,
    },
}

/// A compiled query: what to return for each row, and how many rows there are at most.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub object: SObject,
    /// `None` means all fields (plus relationships, for Contact).
    pub items: Option<Vec<Item>>,
    pub limit: Option<u64>,
}

struct Raw {
    items: Option<Vec<RawItem>>,
    from: String,
    limit: Option<u64>,
}

enum RawItem {
    Field(String),
    Dotted(String, String),
    Sub(Raw),
}

/// Splits at `sep` outside parentheses and quotes.
pub(super) fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Byte offset of keyword `kw` as a whole word outside parentheses and quotes.
pub(super) fn find_keyword(s: &str, kw: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let (mut depth, mut quoted) = (0i32, false);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            _ if depth == 0 && !quoted => {
                let end = i + kw.len();
                let word = s.get(i..end).is_some_and(|w| w.eq_ignore_ascii_case(kw));
                let before = i == 0 || bytes[i - 1].is_ascii_whitespace();
                let after = end == s.len() || bytes.get(end).is_some_and(u8::is_ascii_whitespace);
                if word && before && after {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse(q: &str) -> Result<Raw, String> {
    let q = q.trim();
    let rest = q
        .get(..6)
        .filter(|w| w.eq_ignore_ascii_case("select"))
        .and_then(|_| q.get(6..))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_whitespace()))
        .ok_or("unexpected token: expected SELECT")?;
    let from_at = find_keyword(rest, "from").ok_or("unexpected token: expected FROM")?;
    let list = &rest[..from_at];
    let tail = &rest[from_at + 4..];
    let mut words = tail.split_whitespace();
    let from = words
        .next()
        .ok_or("unexpected end of query: expected an object")?
        .to_string();
    let tail_words: Vec<&str> = words.collect();
    let mut limit = None;
    for pair in tail_words.windows(2) {
        if pair[0].eq_ignore_ascii_case("limit") {
            limit = Some(
                pair[1]
                    .parse::<u64>()
                    .map_err(|_| "LIMIT must be a number")?,
            );
        }
    }
    let mut items = Some(Vec::new());
    for item in split_top(list, ',') {
        let item = item.trim();
        if item.is_empty() {
            return Err("unexpected token: ','".into());
        }
        let parsed = if item.starts_with('(') && item.ends_with(')') {
            RawItem::Sub(parse(&item[1..item.len() - 1])?)
        } else if item.contains('(') || item.contains(' ') {
            // FIELDS(ALL), functions, aliases: no attempt, return everything.
            items = None;
            continue;
        } else if let Some((rel, field)) = item.split_once('.') {
            RawItem::Dotted(rel.to_string(), field.to_string())
        } else {
            RawItem::Field(item.to_string())
        };
        if let Some(v) = items.as_mut() {
            v.push(parsed);
        }
    }
    Ok(Raw { items, from, limit })
}

fn invalid_field(name: &str, object: &str) -> SfError {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_FIELD",
        format!("No such column '{name}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name."),
    )
}

/// Parses and resolves a query against the double's objects.
pub(crate) fn compile(double: &CrmDouble, q: &str) -> Result<Plan, SfError> {
    let raw = parse(q).map_err(|m| SfError::new(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", m))?;
    let object = SObject::parse(&raw.from).ok_or_else(|| {
        SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("sObject type '{}' is not supported.", raw.from),
        )
    })?;
    // Field names are checked against a rendered sample: record 0 always renders.
    let sample = records::full(double, object, 0, "v66.0").unwrap_or_default();
    let Some(raw_items) = raw.items else {
        return Ok(Plan {
            object,
            items: None,
            limit: raw.limit,
        });
    };
    let mut items: Vec<Item> = Vec::new();
    for raw_item in raw_items {
        match raw_item {
            RawItem::Field(name) => {
                let field =
                    canonical(&sample, &name).ok_or_else(|| invalid_field(&name, object.name()))?;
                items.push(Item::Field(field));
            }
            RawItem::Dotted(rel, field) => {
                let (parent, parent_sample) = match (object, rel.to_ascii_lowercase().as_str()) {
                    (SObject::Contact, "account") => (
                        Parent::Account,
                        records::full(double, SObject::Account, 0, "v66.0").unwrap_or_default(),
                    ),
                    (SObject::Contact | SObject::Lead, "individual") => {
                        (Parent::Individual, individual_sample())
                    }
                    _ => return Err(invalid_field(&format!("{rel}.{field}"), object.name())),
                };
                let field = canonical(&parent_sample, &field)
                    .ok_or_else(|| invalid_field(&format!("{rel}.{field}"), object.name()))?;
                match items
                    .iter_mut()
                    .find(|i| matches!(i, Item::Parent { rel, .. } if *rel == parent))
                {
                    Some(Item::Parent { fields, .. }) => fields.push(field),
                    _ => items.push(Item::Parent {
                        rel: parent,
                        fields: vec![field],
                    }),
                }
            }
            RawItem::Sub(sub) => {
                if object != SObject::Contact || !sub.from.eq_ignore_ascii_case("cases") {
                    return Err(SfError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_TYPE",
                        format!(
                            "Didn't understand relationship '{}' in FROM part of query call.",
                            sub.from
                        ),
                    ));
                }
                let case_sample = case_sample();
                let mut fields = Vec::new();
                for f in sub.items.unwrap_or_default() {
                    let RawItem::Field(name) = f else {
                        return Err(SfError::new(
                            StatusCode::BAD_REQUEST,
                            "MALFORMED_QUERY",
                            "nested relationships are not supported by the double",
                        ));
                    };
                    fields.push(
                        canonical(&case_sample, &name)
                            .ok_or_else(|| invalid_field(&name, "Case"))?,
                    );
                }
                items.push(Item::Cases { fields });
            }
        }
    }
    Ok(Plan {
        object,
        items: Some(items),
        limit: raw.limit,
    })
}

fn individual_sample() -> Map<String, Value> {
    records::into_map(json!({
        "Id": "", "FirstName": "", "LastName": "", "HasOptedOutProcessing": false,
        "HasOptedOutProfiling": false, "HasOptedOutSolicit": false, "HasOptedOutTracking": false,
        "CanStorePiiElsewhere": false,
    }))
}

fn case_sample() -> Map<String, Value> {
    records::into_map(json!({
        "Id": "", "CaseNumber": "", "Subject": "", "Status": "", "Origin": "",
        "SuppliedName": "", "SuppliedEmail": "", "ContactId": "",
    }))
}

/// Number of rows the plan yields.
pub(crate) fn total(double: &CrmDouble, plan: &Plan) -> u64 {
    let all = double.store.total(plan.object.kind());
    plan.limit.map_or(all, |l| l.min(all))
}

/// One row as the query endpoint returns it.
pub(crate) fn row(
    double: &CrmDouble,
    plan: &Plan,
    index: u64,
    ver: &str,
) -> Option<Map<String, Value>> {
    let record = records::full(double, plan.object, index, ver)?;
    let account = |fields: Option<&[String]>| -> Value {
        let account = record
            .get("AccountId")
            .and_then(Value::as_str)
            .and_then(|id| records::parse_id(SObject::Account.prefix(), id))
            .and_then(|a| records::full(double, SObject::Account, a, ver));
        match (account, fields) {
            (Some(a), Some(f)) => Value::Object(records::pick(&a, f)),
            (Some(a), None) => Value::Object(records::pick(&a, &["Name".to_string()])),
            (None, _) => Value::Null,
        }
    };
    let individual = |fields: Option<&[String]>| -> Value {
        match (records::individual(double, index, ver), fields) {
            (Some(i), Some(f)) => Value::Object(records::pick(&i, f)),
            (Some(mut i), None) => {
                i.remove("Id");
                Value::Object(i)
            }
            (None, _) => Value::Null,
        }
    };
    let cases = |fields: Option<&[String]>| -> Value {
        let cases = records::cases(double, index, ver);
        if cases.is_empty() {
            return Value::Null;
        }
        let rows: Vec<Value> = cases
            .iter()
            .map(|c| match fields {
                Some(f) => Value::Object(records::pick(c, f)),
                None => Value::Object(c.clone()),
            })
            .collect();
        json!({ "totalSize": rows.len(), "done": true, "records": rows })
    };
    let Some(items) = &plan.items else {
        let mut out = record.clone();
        if plan.object == SObject::Contact {
            out.insert("Account".into(), account(None));
            out.insert("Individual".into(), individual(None));
            out.insert("Cases".into(), cases(None));
        }
        return Some(out);
    };
    let mut out = Map::new();
    if let Some(a) = record.get("attributes") {
        out.insert("attributes".into(), a.clone());
    }
    for item in items {
        match item {
            Item::Field(f) => {
                out.insert(f.clone(), record.get(f).cloned().unwrap_or(Value::Null));
            }
            Item::Parent {
                rel: Parent::Account,
                fields,
            } => {
                out.insert("Account".into(), account(Some(fields)));
            }
            Item::Parent {
                rel: Parent::Individual,
                fields,
            } => {
                out.insert("Individual".into(), individual(Some(fields)));
            }
            Item::Cases { fields } => {
                out.insert("Cases".into(), cases(Some(fields)));
            }
        }
    }
    Some(out)
}

/// `batchSize=N` from `Sforce-Query-Options`, clamped to 200..=2000.
fn batch_size(req: &Req) -> Option<u64> {
    let options = req.header("sforce-query-options")?;
    options.split(',').find_map(|opt| {
        let (k, v) = opt.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("batchSize") {
            return None;
        }
        v.trim()
            .parse::<u64>()
            .ok()
            .map(|n| n.clamp(MIN_BATCH, MAX_BATCH))
    })
}

/// `GET .../query?q=` (and `queryAll`): first page.
pub(crate) fn start(double: &Arc<CrmDouble>, req: &Req, ver: &str, resource: &str) -> Reply {
    let Some(q) = req.param("q") else {
        return error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    if let Some(reply) = super::describe::field_definitions(&q) {
        return reply;
    }
    match super::aggregate::parse(double, &q) {
        Ok(Some(aggregation)) => return super::aggregate::answer(double, &aggregation, ver),
        Ok(None) => {}
        Err(e) => return e.reply(),
    }
    let plan = match compile(double, &q) {
        Ok(plan) => plan,
        Err(e) => return e.reply(),
    };
    let batch = batch_size(req).unwrap_or(MAX_BATCH);
    page(double, Arc::new(plan), None, 0, batch, ver, resource)
}

/// `GET .../query/{cursor}-{offset}`: a follow-up page.
pub(crate) fn more(
    double: &Arc<CrmDouble>,
    req: &Req,
    ver: &str,
    resource: &str,
    locator: &str,
) -> Reply {
    let invalid = || {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((cursor, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<u64>() else {
        return invalid();
    };
    let Some((plan, stored_batch)) = double.salesforce.cursor(cursor) else {
        return invalid();
    };
    let batch = batch_size(req).unwrap_or(stored_batch);
    page(
        double,
        plan,
        Some(cursor.to_string()),
        offset,
        batch,
        ver,
        resource,
    )
}

fn page(
    double: &Arc<CrmDouble>,
    plan: Arc<Plan>,
    cursor: Option<String>,
    offset: u64,
    batch: u64,
    ver: &str,
    resource: &str,
) -> Reply {
    let total = total(double, &plan);
    let end = offset.saturating_add(batch).min(total);
    let rows: Vec<Value> = (offset..end)
        .filter_map(|i| row(double, &plan, i, ver).map(Value::Object))
        .collect();
    let mut body = Map::new();
    body.insert("totalSize".into(), json!(total));
    body.insert("done".into(), json!(end >= total));
    if end < total {
        let cursor =
            cursor.unwrap_or_else(|| double.salesforce.new_cursor(Arc::clone(&plan), batch));
        body.insert(
            "nextRecordsUrl".into(),
            json!(format!("/services/data/{ver}/{resource}/{cursor}-{end}")),
        );
    }
    body.insert("records".into(), Value::Array(rows));
    ok_json(StatusCode::OK, &Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_finds_keywords_outside_parentheses() {
        assert_eq!(
            split_top("a, (SELECT b, c FROM Cases), d", ','),
            vec!["a", " (SELECT b, c FROM Cases)", " d"]
        );
        assert_eq!(
            find_keyword("a, (SELECT x FROM y) FROM Contact", "from"),
            Some(21)
        );
        assert_eq!(find_keyword("Fromage FROM x", "from"), Some(8));
        assert_eq!(
            find_keyword("x WHERE Name = ' from ' LIMIT 2", "from"),
            None
        );
    }

    #[test]
    fn parses_fields_relations_and_limit() {
        let raw = parse("select Id, Account.Name, (SELECT CaseNumber FROM Cases) from Contact where X = 'LIMIT 3' limit 5");
        let Ok(raw) = raw else { panic!("parse failed") };
        assert_eq!(raw.from, "Contact");
        assert_eq!(raw.limit, Some(5));
        assert_eq!(raw.items.map(|i| i.len()), Some(3));
        assert!(parse("SELECT FIELDS(ALL) FROM Contact").is_ok_and(|r| r.items.is_none()));
        assert!(parse("SELECT Id Contact").is_err());
        assert!(parse("DELETE FROM Contact").is_err());
        assert!(parse("SELECT Id FROM Contact LIMIT x").is_err());
        assert!(parse("SELECT Id,,Name FROM Contact").is_err());
    }
}
