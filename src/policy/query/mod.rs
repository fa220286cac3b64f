//! Query minimisation: a query may filter and sort only on fields its purpose may see.
//!
//! Filtering the response is not enough. `SELECT Id FROM Contact WHERE Phone = '+49…'`
//! returns no phone number, yet tells an app whose purpose may not see phone numbers which
//! record has that number; with the Id it then reads what it may see. A predicate is an
//! oracle on the field it tests. So before a query reaches the CRM, every field it filters,
//! groups or sorts on is classified like a response field, and the purpose must `keep` its
//! category (system fields and the purpose's own consent signals are always allowed). Any
//! other action (drop, redact, mask, pseudonymise, generalise, truncate, block), an
//! unclassified field without `keep_unclassified`, or an object the inventory does not know
//! refuses the query (403 `query-not-allowed`), naming the fields, never the values. A query
//! that cannot be read is refused too (400 `query-not-checkable`): fail closed.
//!
//! Covered: SOQL (Salesforce `query`/`queryAll`, composite parts, Bulk API 2.0 query jobs),
//! in `WHERE`, `HAVING`, `GROUP BY` and `ORDER BY` at every level, semi-join and child
//! subqueries included; Dataverse `$filter`, `$orderby`, `$apply`, also nested in `$expand`
//! (FetchXML is refused as not checkable); HubSpot CRM search bodies (`filterGroups`,
//! `sorts`, free-text `query`) and `idProperty` lookups. The `SELECT` list needs no check:
//! the response filter removes what may not be seen. docs/policy.md has the user's view.

use super::select::FieldNode;
use super::set::{Action, Inventory, OpKind, Operation, PolicySet, Purpose, Resolved};
use super::taxonomy::CatId;
use crate::dialect::Dialect;

/// Why a query may not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryRefusal {
    /// Predicates or sort keys on fields the purpose may not see (`Object.Field` names).
    #[error("the query filters or sorts on fields this purpose may not see: {}", fields.join(", "))]
    NotAllowed { fields: Vec<String> },
    /// The query could not be read, so it could not be checked.
    #[error("the query cannot be checked: {0}")]
    Unreadable(&'static str),
}

/// HubSpot's free-text `query` searches these contact properties (HubSpot CRM search docs:
/// "default searchable properties"); a purpose must be allowed to filter on all of them.
const HUBSPOT_CONTACT_SEARCHABLE: [&str; 8] = [
    "firstname",
    "lastname",
    "email",
    "phone",
    "hs_additional_emails",
    "fax",
    "mobilephone",
    "company",
];

/// Checks the query a request carries in its URL: SOQL in `q` of Salesforce's
/// `query`/`queryAll`. `path` is the canonical path, `query` the raw query string.
pub fn check_url(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    query: Option<&str>,
) -> Result<(), QueryRefusal> {
    if op.op != OpKind::Read {
        return Ok(());
    }
    if op.dialect == Dialect::Hubspot {
        return check_hubspot_id_property(set, purpose, op.resource_idx, query);
    }
    if op.dialect == Dialect::Dynamics {
        check_alternate_key(set, purpose, op.resource_idx, path)?;
        return check_odata(set, purpose, op.resource_idx, query);
    }
    if op.dialect != Dialect::Salesforce {
        return Ok(());
    }
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if !(last == "query" || last == "queryAll") {
        return Ok(());
    }
    let mut soql = None;
    for (name, value) in query_params(query)? {
        if name == "q" {
            if soql.is_some() {
                return Err(QueryRefusal::Unreadable("more than one q parameter"));
            }
            soql = Some(form_decode(value)?);
        }
    }
    match soql {
        Some(q) => check_soql(set, purpose, &q),
        None => Ok(()),
    }
}

/// HubSpot reads a record by any unique property (`/contacts/{email}?idProperty=email`,
/// batch reads with `idProperty` in the body): looking up by a property tests it.
fn check_hubspot_id_property(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    query: Option<&str>,
) -> Result<(), QueryRefusal> {
    let Some(inv) = set.inventory(Dialect::Hubspot) else {
        return Ok(());
    };
    let mut checker = Checker::new(set, inv, purpose);
    for (name, value) in query_params(query)? {
        if name == "idProperty" {
            checker.property(resource, &form_decode(value)?);
        }
    }
    checker.finish()
}

/// The (decoded name, raw value) pairs of a query string; values are decoded by the
/// caller, only for the parameters it reads.
fn query_params(query: Option<&str>) -> Result<Vec<(String, &str)>, QueryRefusal> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((form_decode(name)?, value))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding of one name or value (`+` is a space).
fn form_decode(s: &str) -> Result<String, QueryRefusal> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| QueryRefusal::Unreadable("a query parameter that is not UTF-8"))
}

/// Checks the query a governed request body carries: SOQL in a Bulk API 2.0 query job, a
/// HubSpot CRM search. `path` is the canonical path.
pub fn check_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    body: &serde_json::Value,
) -> Result<(), QueryRefusal> {
    if op.op != OpKind::Read {
        return Ok(());
    }
    let path = path.trim_end_matches('/');
    match op.dialect {
        Dialect::Salesforce if path.ends_with("/jobs/query") => {
            match body.get("query").and_then(|q| q.as_str()) {
                Some(q) => check_soql(set, purpose, q),
                None => Err(QueryRefusal::Unreadable(
                    "a query job names its query in `query`",
                )),
            }
        }
        Dialect::Hubspot if path.ends_with("/search") => {
            check_hubspot_search(set, purpose, op.resource_idx, body)
        }
        Dialect::Hubspot => match body.get("idProperty") {
            None => Ok(()),
            Some(p) => {
                let inv = set
                    .inventory(Dialect::Hubspot)
                    .ok_or(QueryRefusal::Unreadable("no HubSpot inventory"))?;
                let name = p
                    .as_str()
                    .ok_or(QueryRefusal::Unreadable("idProperty names a property"))?;
                let mut checker = Checker::new(set, inv, purpose);
                checker.property(op.resource_idx, name);
                checker.finish()
            }
        },
        _ => Ok(()),
    }
}

/// Checks one SOQL statement for `purpose`.
pub fn check_soql(set: &PolicySet, purpose: &Purpose, soql: &str) -> Result<(), QueryRefusal> {
    let inv = set
        .inventory(Dialect::Salesforce)
        .ok_or(QueryRefusal::Unreadable("no Salesforce inventory"))?;
    let tokens = lex(soql)?;
    let mut checker = Checker::new(set, inv, purpose);
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        checker: &mut checker,
    };
    parser.query(None)?;
    if parser.pos != tokens.len() {
        return Err(QueryRefusal::Unreadable("text after the query"));
    }
    checker.finish()
}

/// Checks a HubSpot CRM search body (`POST /crm/v3/objects/{type}/search`) against the
/// resource `resource` of the HubSpot inventory.
pub fn check_hubspot_search(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    body: &serde_json::Value,
) -> Result<(), QueryRefusal> {
    let inv = set
        .inventory(Dialect::Hubspot)
        .ok_or(QueryRefusal::Unreadable("no HubSpot inventory"))?;
    let mut checker = Checker::new(set, inv, purpose);
    let bad =
        QueryRefusal::Unreadable("a search body is an object of filterGroups, sorts and query");
    let obj = body.as_object().ok_or(bad.clone())?;
    if let Some(groups) = obj.get("filterGroups") {
        for group in groups.as_array().ok_or(bad.clone())? {
            let filters = group.get("filters").and_then(|f| f.as_array());
            for filter in filters.ok_or(bad.clone())? {
                checker.property(resource, property(filter).ok_or(bad.clone())?);
            }
        }
    }
    if let Some(sorts) = obj.get("sorts") {
        for sort in sorts.as_array().ok_or(bad.clone())? {
            // `["createdate"]` or `[{"propertyName": "createdate", "direction": ...}]`
            let name = sort.as_str().or_else(|| property(sort));
            checker.property(resource, name.ok_or(bad.clone())?);
        }
    }
    if obj
        .get("query")
        .is_some_and(|q| q.as_str().is_none_or(|s| !s.trim().is_empty()))
    {
        for p in HUBSPOT_CONTACT_SEARCHABLE {
            checker.property(resource, p);
        }
    }
    checker.finish()
}

fn property(v: &serde_json::Value) -> Option<&str> {
    v.get("propertyName").and_then(|p| p.as_str())
}

/// A Dataverse read by alternate key, `contacts(emailaddress1='x')` or
/// `contacts(firstname='a',lastname='b')`, tests the key properties like a filter; a read by
/// id, `contacts(00000000-…)`, tests nothing.
fn check_alternate_key(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    path: &str,
) -> Result<(), QueryRefusal> {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let Some(open) = last.find('(') else {
        return Ok(());
    };
    let key = last[open + 1..]
        .strip_suffix(')')
        .ok_or(QueryRefusal::Unreadable("a key in parentheses"))?;
    let key = form_decode(key)?;
    if !key.contains('=') {
        return Ok(());
    }
    let Some(inv) = set.inventory(Dialect::Dynamics) else {
        return Ok(());
    };
    let mut checker = Checker::new(set, inv, purpose);
    for part in split_top_level(&key, ',') {
        let (name, _) = part.split_once('=').ok_or(QueryRefusal::Unreadable(
            "an alternate key is name=value pairs",
        ))?;
        let name = name.trim();
        if checker.allowed(resource, &[name]) {
            continue;
        }
        let object = checker.inv.resources[resource].name.clone();
        checker.deny(format!("{object}.{name}"));
    }
    checker.finish()
}

/// Dataverse (OData) query options that test fields: `$filter` and `$orderby`, `$apply`,
/// and the same options nested in `$expand=nav($filter=...;$orderby=...)`.
fn check_odata(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    query: Option<&str>,
) -> Result<(), QueryRefusal> {
    let Some(inv) = set.inventory(Dialect::Dynamics) else {
        return Ok(());
    };
    let mut checker = Checker::new(set, inv, purpose);
    for (name, value) in query_params(query)? {
        odata_option(&mut checker, resource, &name, &form_decode(value)?)?;
    }
    checker.finish()
}

/// One query option (`$filter`, ...) of `resource`.
fn odata_option(
    checker: &mut Checker<'_>,
    resource: usize,
    name: &str,
    value: &str,
) -> Result<(), QueryRefusal> {
    match name.trim_start_matches('$').to_ascii_lowercase().as_str() {
        "filter" | "orderby" | "apply" => {
            let tokens = odata_lex(value)?;
            let mut scan = ODataScan {
                tokens: &tokens,
                pos: 0,
                checker,
                resource,
                lambda: Vec::new(),
            };
            scan.expression(false)?;
            if scan.pos != tokens.len() {
                return Err(QueryRefusal::Unreadable("unbalanced parentheses"));
            }
            Ok(())
        }
        "expand" => odata_expand(checker, resource, value),
        // FetchXML and saved or user queries carry conditions Zweck does not read
        "fetchxml" => Err(QueryRefusal::Unreadable("FetchXML is not checked")),
        _ => Ok(()),
    }
}

/// `$expand=nav1($filter=...;$orderby=...),nav2`: the nested options of each navigation
/// property apply to the related records.
fn odata_expand(
    checker: &mut Checker<'_>,
    resource: usize,
    value: &str,
) -> Result<(), QueryRefusal> {
    let mut rest = value;
    while !rest.is_empty() {
        let end = rest.find([',', '(']).unwrap_or(rest.len());
        let nav = rest[..end].trim();
        rest = &rest[end..];
        if let Some(inner) = rest.strip_prefix('(') {
            // the options run to the matching parenthesis (strings may hold parentheses)
            let close = matching_paren(inner).ok_or(QueryRefusal::Unreadable(
                "unbalanced parentheses in $expand",
            ))?;
            let options = &inner[..close];
            rest = &inner[close + 1..];
            match relation(checker.inv, resource, nav) {
                Some(child) => {
                    for option in split_top_level(options, ';') {
                        let (name, value) = option.split_once('=').unwrap_or((option, ""));
                        odata_option(checker, child, name.trim(), value)?;
                    }
                }
                None if options.trim().is_empty() => {}
                None => {
                    let object = checker.inv.resources[resource].name.clone();
                    checker.deny(format!("{object}.{nav}"));
                }
            }
        }
        rest = rest.trim_start().strip_prefix(',').unwrap_or(rest);
        if rest.starts_with(|c: char| c != ',' && !c.is_ascii_alphanumeric() && c != '_') {
            return Err(QueryRefusal::Unreadable(
                "$expand is a list of navigation properties",
            ));
        }
    }
    Ok(())
}

/// The index of the `)` closing an already opened parenthesis, skipping '...' strings.
fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    let mut in_string = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'\'' => in_string = !in_string,
            b'(' if !in_string => depth += 1,
            b')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at `sep` outside parentheses and strings.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut in_string, mut start) = (0usize, false, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => depth = depth.saturating_sub(1),
            c if c == sep && !in_string && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OToken<'s> {
    /// A name or path (`parentcustomerid_account/name`, `Microsoft.Dynamics.CRM.LastXDays`).
    Word(&'s str),
    /// A string literal, unquoted (CRM query functions name properties in strings).
    Str(String),
    /// Numbers, dates, GUIDs, and other literals.
    Literal,
    Open,
    Close,
    Comma,
    Colon,
    Equals,
}

fn odata_lex(text: &str) -> Result<Vec<OToken<'_>>, QueryRefusal> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'(' | b')' | b',' | b':' | b'=' => {
                out.push(match bytes[i] {
                    b'(' => OToken::Open,
                    b')' => OToken::Close,
                    b',' => OToken::Comma,
                    b':' => OToken::Colon,
                    _ => OToken::Equals,
                });
                i += 1;
            }
            b'\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(QueryRefusal::Unreadable("an unterminated string")),
                        Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => {
                            let c = text[i..].chars().next().unwrap_or('\u{fffd}');
                            value.push(c);
                            i += c.len_utf8();
                        }
                    }
                }
                out.push(OToken::Str(value));
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'@' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'.' | b'/' | b'-' | b'+' | b'@'))
                {
                    i += 1;
                }
                let word = &text[start..i];
                let first = word.as_bytes()[0];
                // numbers, dates, datetimes, GUIDs (which may start with a letter), aliases
                let literal =
                    first.is_ascii_digit() || first == b'-' || first == b'@' || is_guid(word);
                out.push(if literal {
                    OToken::Literal
                } else {
                    OToken::Word(word)
                });
                // datetimes carry colons: 2026-01-31T10:00:00Z
                while literal
                    && bytes.get(i) == Some(&b':')
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                {
                    i += 1;
                    while i < bytes.len()
                        && (bytes[i].is_ascii_alphanumeric()
                            || matches!(bytes[i], b'.' | b'-' | b'+'))
                    {
                        i += 1;
                    }
                }
            }
            _ => return Err(QueryRefusal::Unreadable("a character OData does not use")),
        }
    }
    Ok(out)
}

fn is_guid(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// OData operators and literals that are words.
const ODATA_KEYWORDS: [&str; 20] = [
    "eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "has", "in", "add", "sub", "mul",
    "div", "mod", "true", "false", "null", "asc",
];

/// Operators after which the next operand is a value.
const ODATA_COMPARE: [&str; 8] = ["eq", "ne", "gt", "ge", "lt", "le", "has", "in"];

struct ODataScan<'t, 's, 'c, 'a> {
    tokens: &'t [OToken<'s>],
    pos: usize,
    checker: &'c mut Checker<'a>,
    resource: usize,
    /// Lambda variables in scope (`o` of `contact_customer_accounts/any(o: o/name eq 'x')`)
    /// and the resource each ranges over.
    lambda: Vec<(&'s str, Option<usize>)>,
}

impl<'s> ODataScan<'_, 's, '_, '_> {
    /// Scans to the end or, `nested`, to the `)` closing the current group (consumed).
    fn expression(&mut self, nested: bool) -> Result<(), QueryRefusal> {
        let mut value_next = false;
        while let Some(t) = self.tokens.get(self.pos).cloned() {
            self.pos += 1;
            match t {
                OToken::Close if nested => return Ok(()),
                OToken::Close => return Err(QueryRefusal::Unreadable("unbalanced parentheses")),
                OToken::Open => {
                    self.expression(true)?;
                    value_next = false;
                }
                OToken::Word(w) if is(w, &ODATA_COMPARE) => value_next = true,
                OToken::Word(w) if is(w, &ODATA_KEYWORDS) || w.eq_ignore_ascii_case("desc") => {
                    value_next = false
                }
                OToken::Word(w) if self.tokens.get(self.pos) == Some(&OToken::Open) => {
                    self.pos += 1;
                    self.call(w)?;
                    value_next = false;
                }
                OToken::Word(_) if value_next => value_next = false,
                OToken::Word(w) => self.field(w),
                OToken::Str(_)
                | OToken::Literal
                | OToken::Comma
                | OToken::Colon
                | OToken::Equals => value_next = false,
            }
        }
        if nested {
            return Err(QueryRefusal::Unreadable("unbalanced parentheses"));
        }
        Ok(())
    }

    /// A function call whose `(` was consumed: CRM query functions name the property in
    /// `PropertyName='...'`; `nav/any(x: ...)` and `nav/all(x: ...)` range over related
    /// records; other functions (contains, year, ...) take operands.
    fn call(&mut self, name: &'s str) -> Result<(), QueryRefusal> {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("microsoft.dynamics.crm.") {
            let mut depth = 1usize;
            while depth > 0 {
                let t = self.tokens.get(self.pos).cloned();
                self.pos += 1;
                match t {
                    None => return Err(QueryRefusal::Unreadable("unbalanced parentheses")),
                    Some(OToken::Open) => depth += 1,
                    Some(OToken::Close) => depth -= 1,
                    Some(OToken::Word(w)) if w.eq_ignore_ascii_case("PropertyName") => {
                        match (self.tokens.get(self.pos), self.tokens.get(self.pos + 1)) {
                            (Some(OToken::Equals), Some(OToken::Str(p))) => {
                                let p = p.clone();
                                self.pos += 2;
                                self.field(&p);
                            }
                            _ => {
                                return Err(QueryRefusal::Unreadable(
                                    "PropertyName names a property in quotes",
                                ))
                            }
                        }
                    }
                    Some(_) => {}
                }
            }
            return Ok(());
        }
        if let Some(nav) = lower
            .strip_suffix("/any")
            .or_else(|| lower.strip_suffix("/all"))
            .map(|_| &name[..name.len() - 4])
        {
            let target = self.resolve_relation(nav);
            // `x:` declares the variable; `any()` without one tests existence only
            let var = match (self.tokens.get(self.pos), self.tokens.get(self.pos + 1)) {
                (Some(OToken::Word(v)), Some(OToken::Colon)) => {
                    self.pos += 2;
                    Some(*v)
                }
                _ => None,
            };
            if let Some(v) = var {
                self.lambda.push((v, target));
            }
            let result = self.expression(true);
            if var.is_some() {
                self.lambda.pop();
            }
            return result;
        }
        self.expression(true)
    }

    /// The resource a navigation path leads to from this scan's resource (or a variable's).
    fn resolve_relation(&self, path: &str) -> Option<usize> {
        let mut segments = path.split('/');
        let first = segments.next()?;
        let mut res = match self.lambda.iter().rev().find(|(v, _)| *v == first) {
            Some((_, r)) => (*r)?,
            None => relation(self.checker.inv, self.resource, first)?,
        };
        for seg in segments {
            res = relation(self.checker.inv, res, seg)?;
        }
        Some(res)
    }

    /// A field reference: `name`, `nav/name`, `var/name`.
    fn field(&mut self, word: &str) {
        let (path, last) = match word.rsplit_once('/') {
            Some((p, l)) => (Some(p), l),
            None => (None, word),
        };
        let lambda_var = path.is_none() && self.lambda.iter().any(|(v, _)| *v == word);
        if lambda_var {
            return;
        }
        let resource = match path {
            Some(p) => self.resolve_relation(p),
            None => Some(self.resource),
        };
        let object = self.checker.inv.resources[self.resource].name.clone();
        match resource {
            Some(r) if self.checker.allowed(r, &[last]) => {}
            _ => self.checker.deny(format!("{object}.{word}")),
        }
    }
}

/// Collects the fields a query tests that the purpose may not see.
struct Checker<'a> {
    set: &'a PolicySet,
    inv: &'a Inventory,
    purpose: &'a Purpose,
    denied: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(set: &'a PolicySet, inv: &'a Inventory, purpose: &'a Purpose) -> Self {
        Checker {
            set,
            inv,
            purpose,
            denied: Vec::new(),
        }
    }

    fn finish(self) -> Result<(), QueryRefusal> {
        if self.denied.is_empty() {
            Ok(())
        } else {
            Err(QueryRefusal::NotAllowed {
                fields: self.denied,
            })
        }
    }

    /// A SOQL field: `path` is relationship names, then the field, from `resource` (None:
    /// an object the inventory does not know, named `object` in the refusal).
    fn field(&mut self, resource: Option<usize>, object: &str, path: &[&str]) {
        let allowed = match (resource, path.split_last()) {
            (Some(res), Some((last, relations))) => relations
                .iter()
                .try_fold(res, |r, rel| {
                    member(&self.inv.resources[r].fields, rel)?.child
                })
                .is_some_and(|r| self.allowed(r, &[last])),
            _ => false,
        };
        if !allowed {
            let object = resource.map_or(object, |r| self.inv.resources[r].name.as_str());
            self.deny(format!("{object}.{}", path.join(".")));
        }
    }

    /// A HubSpot property of `resource` (in records under `properties`).
    fn property(&mut self, resource: usize, name: &str) {
        if !self.allowed(resource, &["properties", name]) {
            self.deny(format!("{}.{name}", self.inv.resources[resource].name));
        }
    }

    fn deny(&mut self, name: String) {
        if !self.denied.contains(&name) {
            self.denied.push(name);
        }
    }

    /// Whether the purpose sees the field at `path` of `resource` unaltered: its category
    /// is kept (the deepest node's, else the nearest ancestor's, as in the engine), it is
    /// one of the purpose's consent signals, or it is unclassified on a resource that keeps
    /// unclassified fields.
    fn allowed(&self, resource: usize, path: &[&str]) -> bool {
        let resource = &self.inv.resources[resource];
        let is_signal = |field: &[String]| {
            field.len() == path.len()
                && field
                    .iter()
                    .zip(path)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
        };
        if resource.consent.iter().any(|(signal, s)| {
            self.purpose.requires_consent.contains(signal) && is_signal(&s.field)
        }) {
            return true;
        }
        let mut node = Some(&resource.fields);
        let mut cat = None;
        for seg in path {
            node = node.and_then(|n| member(n, seg));
            cat = node.and_then(|n| n.cat).or(cat);
        }
        match (node, cat) {
            (Some(_), Some(cat)) => self.may_see(cat),
            // a name no selector classifies
            _ => resource.keep_unclassified,
        }
    }

    /// Whether the purpose keeps values of `cat` unaltered.
    fn may_see(&self, cat: CatId) -> bool {
        if self.set.taxonomy.is_system(cat) {
            return true;
        }
        match self.purpose.by_cat.get(cat as usize) {
            Some(Resolved::Rule(i)) => self
                .purpose
                .rules
                .get(*i as usize)
                .is_some_and(|r| r.action == Action::Keep),
            Some(Resolved::System) => true,
            Some(Resolved::Otherwise) | None => false,
        }
    }
}

/// A member of a field tree by name, ASCII case-insensitively (SOQL names are
/// case-insensitive; HubSpot's are lowercase).
fn member<'n>(node: &'n FieldNode, name: &str) -> Option<&'n FieldNode> {
    node.keys.get(name).or_else(|| {
        node.keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, n)| n)
    })
}

/// The object a relationship leads to from `resource`: a parent (`Account`) or the records
/// of a child subquery (`Cases`).
fn relation(inv: &Inventory, resource: usize, name: &str) -> Option<usize> {
    let node = member(&inv.resources[resource].fields, name)?;
    node.child.or_else(|| {
        node.keys
            .get("records")
            .and_then(|r| r.any.as_deref())
            .and_then(|n| n.child)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'s> {
    /// A name, possibly dotted (`Account.Owner.Name`); keywords too.
    Word(&'s str),
    /// A string, number, date or datetime literal.
    Literal,
    /// A comparison operator.
    Compare,
    Open,
    Close,
    Comma,
    Colon,
}

fn lex(soql: &str) -> Result<Vec<Token<'_>>, QueryRefusal> {
    let bytes = soql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let single = match b {
            b'(' => Some(Token::Open),
            b')' => Some(Token::Close),
            b',' => Some(Token::Comma),
            b':' => Some(Token::Colon),
            b'=' => Some(Token::Compare),
            _ => None,
        };
        if let Some(t) = single {
            out.push(t);
            i += 1;
            continue;
        }
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'!' | b'<' | b'>' => {
                i += 1;
                if i < bytes.len() && matches!(bytes[i], b'=' | b'>') {
                    i += 1;
                }
                if b == b'!' && bytes.get(start + 1) != Some(&b'=') {
                    return Err(QueryRefusal::Unreadable("a stray '!'"));
                }
                out.push(Token::Compare);
            }
            b'\'' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(QueryRefusal::Unreadable("an unterminated string")),
                        Some(b'\\') => i += 2,
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                out.push(Token::Literal);
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                // numbers, dates (2026-01-31), datetimes (2026-01-31T10:00:00+01:00),
                // currency-free decimals; a sign is part of the literal
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'.' | b'-' | b'+' | b':'))
                {
                    i += 1;
                }
                out.push(Token::Literal);
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.'))
                {
                    i += 1;
                }
                out.push(Token::Word(&soql[start..i]));
            }
            _ => return Err(QueryRefusal::Unreadable("a character SOQL does not use")),
        }
    }
    Ok(out)
}

/// Words that end a clause (and start the next).
const CLAUSES: [&str; 9] = [
    "WHERE", "WITH", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "FOR", "UPDATE",
];

/// Words that are never field names inside conditions and sort lists.
const KEYWORDS: [&str; 17] = [
    "AND", "OR", "NOT", "LIKE", "IN", "INCLUDES", "EXCLUDES", "NULL", "TRUE", "FALSE", "ASC",
    "DESC", "NULLS", "FIRST", "LAST", "BY", "ABOVE",
];

/// Words after which the next operand is a value, not a field.
const VALUE_AFTER: [&str; 5] = ["LIKE", "IN", "INCLUDES", "EXCLUDES", "NOT"];

fn is(word: &str, list: &[&str]) -> bool {
    list.iter().any(|k| k.eq_ignore_ascii_case(word))
}

struct Parser<'t, 's, 'c, 'a> {
    tokens: &'t [Token<'s>],
    pos: usize,
    checker: &'c mut Checker<'a>,
}

impl<'s> Parser<'_, 's, '_, '_> {
    fn peek(&self) -> Option<Token<'s>> {
        self.tokens.get(self.pos).copied()
    }

    fn peek_word(&self) -> Option<&'s str> {
        match self.peek() {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token<'s>> {
        let t = self.peek();
        self.pos += 1;
        t
    }

    /// `SELECT ... FROM object [alias] [clauses]`, up to (not including) a closing `)` or
    /// the end. `parent`: the resource of the enclosing query, for child subqueries
    /// (`FROM Cases` names a relationship, not an object).
    fn query(&mut self, parent: Option<usize>) -> Result<(), QueryRefusal> {
        match self.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("SELECT") => {}
            _ => return Err(QueryRefusal::Unreadable("a query starts with SELECT")),
        }
        // the select list: only nested subqueries matter; they need this query's object,
        // which comes after FROM, so note where they are and visit them afterwards
        let mut subqueries = Vec::new();
        let mut depth = 0usize;
        loop {
            match self.next() {
                None => return Err(QueryRefusal::Unreadable("a query without FROM")),
                Some(Token::Open) => {
                    if depth == 0
                        && self
                            .peek_word()
                            .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
                    {
                        subqueries.push(self.pos);
                        self.skip_group()?;
                    } else {
                        depth += 1;
                    }
                }
                Some(Token::Close) => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or(QueryRefusal::Unreadable("unbalanced parentheses"))?;
                }
                Some(Token::Word(w)) if depth == 0 && w.eq_ignore_ascii_case("FROM") => break,
                Some(_) => {}
            }
        }
        let object = match self.next() {
            Some(Token::Word(w)) => w,
            _ => return Err(QueryRefusal::Unreadable("FROM names no object")),
        };
        let inv = self.checker.inv;
        let resource = match parent {
            Some(p) => relation(inv, p, object),
            None => inv
                .by_type
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(object))
                .map(|(_, r)| *r),
        };
        let mut alias = None;
        if let Some(w) = self.peek_word() {
            if !is(w, &CLAUSES) && !w.eq_ignore_ascii_case("USING") {
                alias = Some(w);
                self.pos += 1;
            }
        }
        let scope = Scope {
            resource,
            names: [Some(object), alias],
        };
        let end = self.pos;
        for at in subqueries {
            self.pos = at;
            self.query(resource)?;
        }
        self.pos = end;
        self.clauses(&scope)
    }

    /// Skips from just after a `(` to just after its `)`.
    fn skip_group(&mut self) -> Result<(), QueryRefusal> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next() {
                None => return Err(QueryRefusal::Unreadable("unbalanced parentheses")),
                Some(Token::Open) => depth += 1,
                Some(Token::Close) => depth -= 1,
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn clauses(&mut self, scope: &Scope<'s>) -> Result<(), QueryRefusal> {
        while let Some(t) = self.peek() {
            let Token::Word(w) = t else {
                if t == Token::Close {
                    return Ok(());
                }
                return Err(QueryRefusal::Unreadable("unexpected text between clauses"));
            };
            self.pos += 1;
            let upper = w.to_ascii_uppercase();
            match upper.as_str() {
                "WHERE" | "HAVING" => self.condition(scope)?,
                "GROUP" | "ORDER" => {
                    self.expect_word("BY")?;
                    self.field_list(scope)?;
                }
                "USING" => {
                    self.expect_word("SCOPE")?;
                    self.pos += 1;
                }
                "LIMIT" | "OFFSET" => match self.next() {
                    Some(Token::Literal) => {}
                    _ => return Err(QueryRefusal::Unreadable("LIMIT and OFFSET take a number")),
                },
                // WITH SECURITY_ENFORCED, WITH DATA CATEGORY ..., FOR VIEW/REFERENCE/UPDATE,
                // UPDATE TRACKING/VIEWSTAT: no fields of the object
                "WITH" | "FOR" | "UPDATE" => self.skip_clause()?,
                _ => return Err(QueryRefusal::Unreadable("an unknown clause")),
            }
        }
        Ok(())
    }

    fn expect_word(&mut self, word: &str) -> Result<(), QueryRefusal> {
        match self.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => Ok(()),
            _ => Err(QueryRefusal::Unreadable("a clause keyword is incomplete")),
        }
    }

    /// Skips to the next clause keyword, `)` or the end (balanced).
    fn skip_clause(&mut self) -> Result<(), QueryRefusal> {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Token::Open => depth += 1,
                Token::Close if depth == 0 => return Ok(()),
                Token::Close => depth -= 1,
                Token::Word(w) if depth == 0 && is(w, &CLAUSES) => return Ok(()),
                _ => {}
            }
            self.pos += 1;
        }
        balanced(depth)
    }

    /// A boolean condition: every name in an operand position is a field; values (after a
    /// comparison, LIKE, IN, INCLUDES, EXCLUDES) are skipped; `(SELECT ...)` is a semi-join.
    fn condition(&mut self, scope: &Scope<'s>) -> Result<(), QueryRefusal> {
        let mut depth = 0usize;
        let mut value_next = false;
        while let Some(t) = self.peek() {
            match t {
                Token::Word(w) if depth == 0 && is(w, &CLAUSES) => return Ok(()),
                Token::Close if depth == 0 => return Ok(()),
                Token::Close => {
                    depth -= 1;
                    self.pos += 1;
                }
                Token::Open => {
                    self.pos += 1;
                    if self
                        .peek_word()
                        .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
                    {
                        self.query(None)?;
                        match self.next() {
                            Some(Token::Close) => {}
                            _ => return Err(QueryRefusal::Unreadable("unbalanced parentheses")),
                        }
                    } else if value_next {
                        // a value list: `IN ('a', 'b')`
                        self.skip_group()?;
                    } else {
                        depth += 1;
                    }
                    value_next = false;
                }
                Token::Compare => {
                    value_next = true;
                    self.pos += 1;
                }
                Token::Word(w) if is(w, &VALUE_AFTER) => {
                    // NOT before a field negates; before IN / LIKE it is part of the operator
                    let before_operator = w.eq_ignore_ascii_case("NOT")
                        && self
                            .tokens
                            .get(self.pos + 1)
                            .is_some_and(|n| matches!(n, Token::Word(x) if is(x, &VALUE_AFTER)));
                    value_next = !w.eq_ignore_ascii_case("NOT") || before_operator;
                    self.pos += 1;
                }
                Token::Word(w) if is(w, &KEYWORDS) => {
                    value_next = false;
                    self.pos += 1;
                }
                Token::Word(w) => {
                    self.pos += 1;
                    let call = self.peek() == Some(Token::Open);
                    if value_next {
                        // a date literal (TODAY, LAST_N_DAYS:30), or a function of values
                        if call {
                            self.pos += 1;
                            self.skip_group()?;
                        } else if self.peek() == Some(Token::Colon) {
                            self.pos += 2;
                        }
                        value_next = false;
                    } else if !call {
                        scope.check(self.checker, w);
                    }
                    // a function's arguments are operands: the loop visits them
                }
                Token::Literal | Token::Comma | Token::Colon => {
                    value_next = false;
                    self.pos += 1;
                }
            }
        }
        balanced(depth)
    }

    /// `GROUP BY` / `ORDER BY`: fields, function arguments, ASC/DESC/NULLS FIRST/LAST.
    fn field_list(&mut self, scope: &Scope<'s>) -> Result<(), QueryRefusal> {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Token::Word(w) if depth == 0 && is(w, &CLAUSES) => return Ok(()),
                Token::Close if depth == 0 => return Ok(()),
                Token::Close => depth -= 1,
                Token::Open => depth += 1,
                // a function name (ROLLUP, CALENDAR_YEAR): its arguments are visited
                Token::Word(w)
                    if !is(w, &KEYWORDS) && self.tokens.get(self.pos + 1) != Some(&Token::Open) =>
                {
                    scope.check(self.checker, w);
                }
                _ => {}
            }
            self.pos += 1;
        }
        balanced(depth)
    }
}

/// A clause that ended with parentheses still open cannot be read.
fn balanced(depth: usize) -> Result<(), QueryRefusal> {
    if depth == 0 {
        Ok(())
    } else {
        Err(QueryRefusal::Unreadable("unbalanced parentheses"))
    }
}

/// The object of one query level and the names that may prefix its fields.
struct Scope<'s> {
    resource: Option<usize>,
    /// The object name and the alias (`FROM Contact c`: `Contact.Email`, `c.Email`).
    names: [Option<&'s str>; 2],
}

impl Scope<'_> {
    fn check(&self, checker: &mut Checker<'_>, word: &str) {
        let mut path: Vec<&str> = word.split('.').collect();
        if path.len() > 1
            && self
                .names
                .iter()
                .flatten()
                .any(|n| n.eq_ignore_ascii_case(path[0]))
        {
            path.remove(0);
        }
        let object = self.names[0].unwrap_or("?");
        if path.iter().any(|s| s.is_empty()) {
            checker.deny(format!("{object}.{word}"));
            return;
        }
        checker.field(self.resource, object, &path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shipped policies, compiled once for all tests of this module.
    fn shipped() -> &'static PolicySet {
        static SET: std::sync::OnceLock<PolicySet> = std::sync::OnceLock::new();
        SET.get_or_init(|| {
            let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
            PolicySet::load(dir).expect("shipped policies").0
        })
    }

    fn soql(set: &PolicySet, purpose: &str, q: &str) -> Result<(), QueryRefusal> {
        check_soql(set, set.purpose(purpose).expect("purpose"), q)
    }

    fn refused(fields: &[&str]) -> Result<(), QueryRefusal> {
        Err(QueryRefusal::NotAllowed {
            fields: fields.iter().map(|f| f.to_string()).collect(),
        })
    }

    #[test]
    fn predicates_on_kept_system_and_consent_fields_pass() {
        let set = shipped();
        for q in [
            "SELECT Id, Email FROM Contact WHERE Email = 'livia@example.com'",
            "SELECT Id FROM Contact WHERE HasOptedOutOfEmail = false AND IsDeleted = false",
            "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:30 OR CreatedDate > 2026-01-31T10:00:00+01:00",
            "SELECT Id FROM Contact WHERE Email NOT IN ('a@example.com', 'b@example.com') ORDER BY CreatedDate DESC NULLS LAST LIMIT 10 OFFSET 20",
            "select id from contact where EMAIL like '%@example.com' with SECURITY_ENFORCED",
            "SELECT FirstName, COUNT(Id) FROM Contact GROUP BY ROLLUP(FirstName) HAVING COUNT(Id) > 1",
            "SELECT Id FROM Contact c WHERE c.Email != null AND (NOT c.FirstName = 'x')",
            "SELECT COUNT() FROM Contact",
            "SELECT Id, (SELECT Id FROM Cases ORDER BY CreatedDate) FROM Contact WHERE MailingCountry = 'DE'",
        ] {
            assert_eq!(soql(set, "newsletter", q), Ok(()), "{q}");
        }
    }

    #[test]
    fn predicates_on_fields_the_purpose_may_not_see_are_refused_by_name() {
        let set = shipped();
        let cases: &[(&str, &str, &[&str])] = &[
            ("newsletter", "SELECT Id FROM Contact WHERE Phone = '+49 151 0000001'", &["Contact.Phone"]),
            // generalised or truncated is not kept: the exact value is the oracle
            ("newsletter", "SELECT Id FROM Contact WHERE Birthdate = 1990-05-01", &["Contact.Birthdate"]),
            ("newsletter", "SELECT Id FROM Contact WHERE CALENDAR_YEAR(Birthdate) = 1990", &["Contact.Birthdate"]),
            ("newsletter", "SELECT Id FROM Contact WHERE MailingPostalCode LIKE '10%'", &["Contact.MailingPostalCode"]),
            // pseudonymised: filtering on the clear value would undo the pseudonym
            ("analytics", "SELECT Id FROM Contact WHERE Email = 'livia@example.com'", &["Contact.Email"]),
            ("newsletter", "select id from contact c where c.MOBILEPHONE != null order by LastName", &["Contact.MOBILEPHONE", "Contact.LastName"]),
            // relationships, semi-joins and child subqueries are checked against their object
            ("newsletter", "SELECT Id FROM Contact WHERE Account.Name = 'Fict GmbH'", &["Contact.Account.Name"]),
            ("support", "SELECT Id FROM Contact WHERE Id IN (SELECT ContactId FROM Case WHERE Subject LIKE '%refund%')", &[]),
            ("newsletter", "SELECT Id FROM Contact WHERE Id IN (SELECT ContactId FROM Case WHERE Subject LIKE '%refund%')", &["Case.Subject"]),
            ("newsletter", "SELECT Id, (SELECT Id FROM Cases WHERE Description = 'x') FROM Contact", &["Case.Description"]),
            // an object the inventory does not know: nothing about it may be tested
            ("support", "SELECT Id FROM Opportunity WHERE Amount > 5", &["Opportunity.Amount"]),
            // unclassified fields follow `otherwise`
            ("newsletter", "SELECT Id FROM Contact WHERE Secret__c = 'x'", &["Contact.Secret__c"]),
        ];
        for (purpose, q, fields) in cases {
            let want = if fields.is_empty() {
                Ok(())
            } else {
                refused(fields)
            };
            assert_eq!(soql(set, purpose, q), want, "{purpose}: {q}");
        }
    }

    #[test]
    fn a_refusal_names_fields_never_values() {
        let set = shipped();
        let err = soql(
            set,
            "newsletter",
            "SELECT Id FROM Contact WHERE Phone = '+49 151 0000001'",
        )
        .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("Contact.Phone"), "{text}");
        assert!(!text.contains("0000001"), "{text}");
    }

    #[test]
    fn unreadable_queries_are_refused_not_passed() {
        let set = shipped();
        for q in [
            "",
            "DELETE FROM Contact",
            "SELECT Id Contact",
            "SELECT Id FROM",
            "SELECT Id FROM Contact WHERE Email = 'unterminated",
            "SELECT Id FROM Contact WHERE (Email = 'x'",
            "SELECT Id FROM Contact WHERE Email = 'x')",
            "SELECT Id FROM Contact WHERE Email = 'x'; DROP",
            "SELECT Id FROM Contact WHERE Email = \"x\"",
            "SELECT Id FROM Contact WHERE Émail = 'x'",
            "SELECT Id FROM Contact LIMIT",
            "SELECT Id FROM Contact GROUP Email",
            "SELECT Id FROM Contact BOGUS Email",
            "SELECT Id FROM Contact WHERE Email ! 'x'",
            "SELECT Id FROM Contact WITH DATA CATEGORY Geography__c AT (usa__c",
        ] {
            assert!(
                matches!(soql(set, "support", q), Err(QueryRefusal::Unreadable(_))),
                "{q:?}: {:?}",
                soql(set, "support", q)
            );
        }
    }

    #[test]
    fn url_queries_are_form_decoded_and_only_query_endpoints_are_checked() {
        let set = shipped();
        let purpose = set.purpose("newsletter").expect("purpose");
        let inv = set.inventory(Dialect::Salesforce).expect("inventory");
        let op = inv
            .operations()
            .iter()
            .find(|o| o.template().ends_with("/query"))
            .expect("query operation");
        let check = |path: &str, q: Option<&str>| check_url(set, purpose, op, path, q);
        assert_eq!(
            check(
                "/services/data/v66.0/query",
                Some("q=SELECT+Id+FROM+Contact+WHERE+Phone%3D%27%2B49%27")
            ),
            refused(&["Contact.Phone"])
        );
        assert_eq!(
            check(
                "/services/data/v66.0/queryAll/",
                Some("q=SELECT%20Id%20FROM%20Contact%20WHERE%20Email%20%3D%20'x'")
            ),
            Ok(())
        );
        // the next page of a query carries no SOQL
        assert_eq!(check("/services/data/v66.0/query/01gQy-2000", None), Ok(()));
        assert!(matches!(
            check(
                "/services/data/v66.0/query",
                Some("q=SELECT+Id+FROM+Contact&q=x")
            ),
            Err(QueryRefusal::Unreadable(_))
        ));
        assert!(matches!(
            check("/services/data/v66.0/query", Some("q=%FF")),
            Err(QueryRefusal::Unreadable(_))
        ));
    }

    #[test]
    fn hubspot_search_filters_sorts_and_free_text() {
        let set = shipped();
        let inv = set.inventory(Dialect::Hubspot).expect("inventory");
        let op = inv
            .operations()
            .iter()
            .find(|o| o.template().ends_with("/contacts/search"))
            .expect("search operation");
        let check = |purpose: &str, body: serde_json::Value| {
            check_body(
                set,
                set.purpose(purpose).expect("purpose"),
                op,
                "/crm/v3/objects/contacts/search",
                &body,
            )
        };
        let filter = |p: &str| json!({"filterGroups": [{"filters": [{"propertyName": p, "operator": "EQ", "value": "x"}]}]});
        assert_eq!(check("newsletter", filter("email")), Ok(()));
        assert_eq!(check("newsletter", filter("hs_email_optout")), Ok(()));
        assert_eq!(check("newsletter", filter("createdate")), Ok(()));
        assert_eq!(
            check("newsletter", filter("phone")),
            refused(&["contacts.phone"])
        );
        assert_eq!(
            check("analytics", filter("email")),
            refused(&["contacts.email"])
        );
        assert_eq!(
            check(
                "newsletter",
                json!({"sorts": ["lastname", {"propertyName": "createdate", "direction": "DESCENDING"}]})
            ),
            refused(&["contacts.lastname"])
        );
        // free text searches names, e-mail, phone and company: all must be visible
        assert!(matches!(
            check("newsletter", json!({"query": "livia"})),
            Err(QueryRefusal::NotAllowed { .. })
        ));
        assert_eq!(
            check("newsletter", json!({"query": "", "limit": 10})),
            Ok(())
        );
        // lookups by a unique property test it: in the URL and in batch reads
        let single = inv
            .operations()
            .iter()
            .find(|o| {
                o.template().ends_with("/crm/v3/objects/contacts/*") && o.op() == OpKind::Read
            })
            .expect("single read");
        let get = |purpose: &str, q: &str| {
            let p = set.purpose(purpose).expect("purpose");
            check_url(set, p, single, "/crm/v3/objects/contacts/x", Some(q))
        };
        assert_eq!(
            get("newsletter", "idProperty=email&properties=email"),
            Ok(())
        );
        assert_eq!(
            get("analytics", "idProperty=email"),
            refused(&["contacts.email"])
        );
        assert_eq!(get("analytics", "properties=email"), Ok(()));
        let batch = inv
            .operations()
            .iter()
            .find(|o| o.template().ends_with("/contacts/batch/read"))
            .expect("batch read");
        let read = |purpose: &str, body: serde_json::Value| {
            let p = set.purpose(purpose).expect("purpose");
            check_body(set, p, batch, "/crm/v3/objects/contacts/batch/read", &body)
        };
        let by_email = json!({"idProperty": "email", "inputs": [{"id": "x"}]});
        assert_eq!(read("analytics", by_email), refused(&["contacts.email"]));
        assert_eq!(read("analytics", json!({"inputs": [{"id": "1"}]})), Ok(()));
        for bad in [
            json!([]),
            json!({"filterGroups": {}}),
            json!({"filterGroups": [{"filters": [{}]}]}),
            json!({"sorts": [1]}),
        ] {
            assert!(
                matches!(
                    check("support", bad.clone()),
                    Err(QueryRefusal::Unreadable(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn dataverse_filter_orderby_expand_and_crm_functions() {
        let set = shipped();
        let inv = set.inventory(Dialect::Dynamics).expect("inventory");
        let list = inv
            .operations()
            .iter()
            .find(|o| o.template().ends_with("/contacts") && o.op() == OpKind::Read)
            .expect("contacts list");
        let check = |purpose: &str, q: &str| {
            let p = set.purpose(purpose).expect("purpose");
            check_url(set, p, list, "/api/data/v9.2/contacts", Some(q))
        };
        for q in [
            "$select=fullname,emailaddress1&$filter=emailaddress1 eq 'livia@example.com'",
            "$filter=donotbulkemail eq false and statecode eq 0&$orderby=createdon desc",
            "%24filter=contains(emailaddress1,%27example.com%27)&%24top=5",
            "$filter=_parentcustomerid_value eq a1b2c3d4-0000-4000-8000-000000000001",
            "$filter=createdon ge 2026-01-31T10:00:00Z and (emailaddress1 ne null)",
            "$filter=Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=7)",
            "$filter=address1_country eq 'DE'&$count=true",
        ] {
            assert_eq!(check("newsletter", q), Ok(()), "{q}");
        }
        let cases: &[(&str, &str, &[&str])] = &[
            ("newsletter", "$filter=mobilephone eq '+49 151 0000001'", &["contact.mobilephone"]),
            ("newsletter", "$filter=contains(lastname,'Dru')", &["contact.lastname"]),
            ("newsletter", "$orderby=lastname asc,createdon desc", &["contact.lastname"]),
            ("newsletter", "$filter=year(birthdate) eq 1990", &["contact.birthdate"]),
            ("analytics", "$filter=emailaddress1 eq 'x@example.com'", &["contact.emailaddress1"]),
            // the property of a CRM query function is named in a string
            ("newsletter", "$filter=Microsoft.Dynamics.CRM.On(PropertyName='birthdate',PropertyValue='1990-05-01')", &["contact.birthdate"]),
            // navigation properties and nested options of $expand test the related record
            ("newsletter", "$filter=parentcustomerid_account/telephone1 eq '1'", &["contact.parentcustomerid_account/telephone1"]),
            ("newsletter", "$expand=parentcustomerid_account($select=name;$filter=emailaddress1 eq 'x')", &[]),
            ("newsletter", "$expand=parentcustomerid_account($filter=telephone1 eq '1')", &["account.telephone1"]),
            ("newsletter", "$filter=unknown_nav/any(o:o/name eq 'x')", &["contact.o/name"]),
            ("newsletter", "$apply=groupby((lastname))", &["contact.lastname"]),
        ];
        let single = inv
            .operations()
            .iter()
            .find(|o| o.template().ends_with("/contacts(*)") && o.op() == OpKind::Read)
            .expect("contacts single");
        let by_key = |purpose: &str, path: &str| {
            let p = set.purpose(purpose).expect("purpose");
            check_url(set, p, single, path, None)
        };
        let guid = "/api/data/v9.2/contacts(a1b2c3d4-0000-4000-8000-000000000001)";
        assert_eq!(by_key("analytics", guid), Ok(()));
        let email = "/api/data/v9.2/contacts(emailaddress1='x%40example.com')";
        assert_eq!(by_key("newsletter", email), Ok(()));
        assert_eq!(
            by_key("analytics", email),
            refused(&["contact.emailaddress1"])
        );
        let names = "/api/data/v9.2/contacts(firstname='Piet',lastname='O''Neill')";
        assert_eq!(by_key("newsletter", names), refused(&["contact.lastname"]));
        for (purpose, q, fields) in cases {
            let want = if fields.is_empty() {
                Ok(())
            } else {
                refused(fields)
            };
            assert_eq!(check(purpose, q), want, "{purpose}: {q}");
        }
        for q in [
            "$filter=emailaddress1 eq 'unterminated",
            "$filter=(emailaddress1 eq 'x'",
            "$filter=emailaddress1 eq 'x')",
            "$filter=emailaddress1 eq \"x\"",
            "fetchXml=%3Cfetch%3E%3C%2Ffetch%3E",
            "$expand=parentcustomerid_account($filter=name eq 'x'",
            "$filter=Microsoft.Dynamics.CRM.On(PropertyName=birthdate)",
        ] {
            assert!(
                matches!(check("support", q), Err(QueryRefusal::Unreadable(_))),
                "{q:?}: {:?}",
                check("support", q)
            );
        }
    }

    /// SOQL's own words and symbols, for the soup test.
    const SOUP: &[&str] = &[
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "GROUP",
        "BY",
        "HAVING",
        "LIMIT",
        "WITH",
        "USING",
        "SCOPE",
        "Contact",
        "Cases",
        "Account.Name",
        "Email",
        "Phone",
        "Birthdate",
        "CALENDAR_YEAR",
        "LAST_N_DAYS",
        "TODAY",
        "(",
        ")",
        ",",
        ":",
        "=",
        "!=",
        "<=",
        "'x'",
        "'a\\'b'",
        "42",
        "2026-01-31",
        "c.Email",
        "c",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any text, and any soup of SOQL's own words and symbols: an answer, never a panic.
        #[test]
        fn never_panics_on_any_text(q in "\\PC{0,80}") {
            let set = shipped();
            let _ = soql(set, "newsletter", &q);
            let p = set.purpose("newsletter").expect("purpose");
            for option in ["$filter=", "$orderby=", "$expand=", "$apply="] {
                let _ = check_odata(set, p, 0, Some(&format!("{option}{q}")));
            }
        }

        #[test]
        fn never_panics_on_soql_soup(
            words in proptest::collection::vec(proptest::sample::select(SOUP), 0..30)
        ) {
            let set = shipped();
            let _ = soql(set, "newsletter", &words.join(" "));
        }
    }
}
