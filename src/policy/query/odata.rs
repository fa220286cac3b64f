//! Dataverse (OData) queries: `$filter`, `$orderby` and `$apply`, the same options nested in
//! `$expand`, navigation paths, `any`/`all` lambdas, functions and the CRM query functions
//! that name a property in a string; reads by alternate key test their key properties.
//! FetchXML is refused as not checkable.
//!
//! `$apply` is read transformation by transformation (`filter`, `groupby`, `aggregate`): a
//! grouped or aggregated property is tested like a filter, a purpose that removes records gets
//! no aggregate, and the rows' columns are classified. A `$select` (also nested in `$expand`)
//! that lacks a consent field the purpose decides from gets it appended.

use super::{
    form_decode, is, query_params, relation, replace_param, Aggregate, AggregateRefusal, Carried,
    Checker, Enforce, QueryRefusal, Reviewed, Shape,
};
use crate::dialect::Dialect;
use crate::policy::select::FieldNode;
use crate::policy::set::{PolicySet, Purpose};

/// A Dataverse read by alternate key, `contacts(emailaddress1='x')` or
/// `contacts(firstname='a',lastname='b')`, tests the key properties like a filter; a read by
/// id, `contacts(00000000-…)`, tests nothing. The key properties' values are sent.
pub(super) fn check_alternate_key(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    path: &str,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let Some(open) = last.find('(') else {
        return Ok(Carried::new());
    };
    let key = last[open + 1..]
        .strip_suffix(')')
        .ok_or(QueryRefusal::Unreadable("a key in parentheses"))?;
    let key = form_decode(key)?;
    if !key.contains('=') {
        return Ok(Carried::new());
    }
    let Some(inv) = set.inventory(Dialect::Dynamics) else {
        return Ok(Carried::new());
    };
    let mut checker = Checker::new(set, inv, purpose, enforce);
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
    checker.finish()?;
    Ok(checker.carried)
}

/// Dataverse (OData) query options that test fields: `$filter` and `$orderby`, `$apply`,
/// and the same options nested in `$expand=nav($filter=...;$orderby=...)`; and `$select`
/// lists (top-level and nested) that lack the purpose's consent fields, which are appended.
pub(super) fn review_options(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    query: Option<&str>,
    enforce: Enforce,
) -> Result<Reviewed, QueryRefusal> {
    let Some(inv) = set.inventory(Dialect::Dynamics) else {
        return Ok(Reviewed::default());
    };
    let mut checker = Checker::new(set, inv, purpose, enforce);
    let mut aggregate = None;
    let params = query_params(query)?;
    let mut decoded = Vec::with_capacity(params.len());
    for (name, value) in &params {
        let value = form_decode(value)?;
        if option_name(name) == "apply" {
            aggregate = odata_apply(&mut checker, resource, &value)?.or(aggregate);
        } else {
            odata_option(&mut checker, resource, name, &value)?;
        }
        decoded.push((name.clone(), value));
    }
    checker.finish()?;
    let carried = std::mem::take(&mut checker.carried);
    if let Some(columns) = aggregate {
        if purpose.filters_records() {
            return Err(QueryRefusal::AggregateNotAllowed {
                object: inv.resources[resource].name.clone(),
                reason: AggregateRefusal::RecordsFiltered,
            });
        }
        return Ok(Reviewed {
            query: None,
            shape: Shape {
                consent_added: Vec::new(),
                aggregate: Some(Aggregate {
                    resource,
                    row_type: None,
                    columns,
                }),
            },
            carried,
        });
    }
    // consent fields into `$select` (absent: every column comes back) and nested `$expand`
    let mut shape = Shape::default();
    let mut query = query.map(str::to_string);
    for (i, (name, value)) in decoded.iter().enumerate() {
        let rewritten = match option_name(name).as_str() {
            "select" => select_with_consent(&checker, resource, value, &mut shape)?,
            "expand" => expand_with_consent(&checker, resource, value, &mut shape)?,
            _ => None,
        };
        if let Some(v) = rewritten {
            query = Some(replace_param(query.as_deref(), Some(i), name, &v));
        }
    }
    if shape.consent_added.is_empty() {
        query = None;
    }
    Ok(Reviewed {
        query,
        shape,
        carried,
    })
}

/// A query option's name without `$`, lower case.
fn option_name(name: &str) -> String {
    name.trim_start_matches('$').to_ascii_lowercase()
}

/// `$select=a,b` with the consent fields of `resource` the purpose requires appended (None:
/// nothing to add). A consent field deeper than one property cannot be selected.
fn select_with_consent(
    checker: &Checker<'_>,
    resource: usize,
    value: &str,
    shape: &mut Shape,
) -> Result<Option<String>, QueryRefusal> {
    let mut list = value.to_string();
    let mut changed = false;
    for field in checker.signal_fields(resource) {
        let [name] = field else {
            return Err(QueryRefusal::ConsentFieldMissing {
                fields: vec![format!(
                    "{}.{}",
                    checker.inv.resources[resource].name,
                    field.join("/")
                )],
            });
        };
        // `*` selects every column, the consent field included
        let selected = list
            .split(',')
            .map(str::trim)
            .any(|p| p == "*" || p.eq_ignore_ascii_case(name));
        if !selected {
            if !list.trim().is_empty() {
                list.push(',');
            }
            list.push_str(name);
            shape.consent_added.push((resource, field.to_vec()));
            changed = true;
        }
    }
    Ok(changed.then_some(list))
}

/// `$expand=nav($select=a;...),...` with the consent fields of each related resource that
/// decides its own consent appended to its nested `$select` (None: nothing to add).
fn expand_with_consent(
    checker: &Checker<'_>,
    resource: usize,
    value: &str,
    shape: &mut Shape,
) -> Result<Option<String>, QueryRefusal> {
    let mut changed = false;
    let mut items = Vec::new();
    for item in split_top_level(value, ',') {
        let Some((nav, rest)) = item.split_once('(') else {
            items.push(item.to_string());
            continue;
        };
        let Some(options) = rest.trim_end().strip_suffix(')') else {
            return Err(QueryRefusal::Unreadable(
                "unbalanced parentheses in $expand",
            ));
        };
        let Some(child) = relation(checker.inv, resource, nav.trim()) else {
            items.push(item.to_string());
            continue;
        };
        let mut opts = Vec::new();
        let mut touched = false;
        for option in split_top_level(options, ';') {
            let (name, v) = option.split_once('=').unwrap_or((option, ""));
            let rewritten = match option_name(name.trim()).as_str() {
                "select" => select_with_consent(checker, child, v, shape)?,
                "expand" => expand_with_consent(checker, child, v, shape)?,
                _ => None,
            };
            match rewritten {
                Some(v) => {
                    opts.push(format!("{name}={v}"));
                    touched = true;
                }
                None => opts.push(option.to_string()),
            }
        }
        if touched {
            changed = true;
            items.push(format!("{nav}({})", opts.join(";")));
        } else {
            items.push(item.to_string());
        }
    }
    Ok(changed.then(|| items.join(",")))
}

/// `$apply`: transformations separated by `/`. `filter(...)` tests its properties like
/// `$filter`; `groupby((a,b)[,aggregate(...)])` and `aggregate(x with sum as s, $count as
/// n)` test the properties they group and aggregate. Returns the rows' columns when the
/// result is aggregated (None: `filter` only, the rows are records).
fn odata_apply(
    checker: &mut Checker<'_>,
    resource: usize,
    value: &str,
) -> Result<Option<FieldNode>, QueryRefusal> {
    let bad = QueryRefusal::Unreadable("$apply is filter, groupby and aggregate transformations");
    let mut columns: Option<FieldNode> = None;
    for step in split_top_level(value, '/') {
        let step = step.trim();
        let (name, rest) = step.split_once('(').ok_or(bad.clone())?;
        let inner = rest.strip_suffix(')').ok_or(bad.clone())?;
        match name.trim().to_ascii_lowercase().as_str() {
            "filter" => odata_option(checker, resource, "$filter", inner)?,
            "groupby" => {
                let cols = columns.get_or_insert_with(|| aggregate_columns(checker, resource));
                let parts = split_top_level(inner, ',');
                let (grouped, more) = parts.split_first().ok_or(bad.clone())?;
                let grouped = grouped
                    .trim()
                    .strip_prefix('(')
                    .and_then(|g| g.strip_suffix(')'))
                    .ok_or(bad.clone())?;
                for prop in grouped.split(',') {
                    let prop = prop.trim();
                    odata_option(checker, resource, "$orderby", prop)?;
                    column(checker, cols, resource, prop, prop, false);
                }
                match more {
                    [] => {}
                    [agg] => {
                        let agg = agg.trim();
                        let args = agg
                            .strip_prefix("aggregate(")
                            .and_then(|a| a.strip_suffix(')'))
                            .ok_or(bad.clone())?;
                        checker.not_carrying(|c| aggregate_list(c, cols, resource, args))?;
                    }
                    _ => return Err(bad),
                }
            }
            "aggregate" => {
                let cols = columns.get_or_insert_with(|| aggregate_columns(checker, resource));
                checker.not_carrying(|c| aggregate_list(c, cols, resource, inner))?;
            }
            _ => return Err(bad),
        }
    }
    Ok(columns)
}

/// The columns every aggregated row has: the OData annotations, `system`, over the
/// resource's own map (an error body in answer to the query keeps its codes; the query's
/// columns win over it).
fn aggregate_columns(checker: &Checker<'_>, resource: usize) -> FieldNode {
    let mut node = checker.inv.resources[resource].fields.clone();
    if let Some(sys) = checker.set.taxonomy.get("system") {
        for key in ["@odata.id", "@odata.etag"] {
            node.keys.insert(
                key.into(),
                FieldNode {
                    cat: Some(sys),
                    ..FieldNode::default()
                },
            );
        }
    }
    node
}

/// `x with sum as s, $count as n, y with countdistinct as d`.
fn aggregate_list(
    checker: &mut Checker<'_>,
    cols: &mut FieldNode,
    resource: usize,
    list: &str,
) -> Result<(), QueryRefusal> {
    let bad = QueryRefusal::Unreadable("an aggregate is `property with method as alias`");
    for item in split_top_level(list, ',') {
        let words: Vec<&str> = item.split_whitespace().collect();
        match words.as_slice() {
            [count, as_, alias]
                if count.eq_ignore_ascii_case("$count") && as_.eq_ignore_ascii_case("as") =>
            {
                column(checker, cols, resource, "", alias, true);
            }
            [prop, with, method, as_, alias]
                if with.eq_ignore_ascii_case("with") && as_.eq_ignore_ascii_case("as") =>
            {
                odata_option(checker, resource, "$orderby", prop)?;
                let count = match method.to_ascii_lowercase().as_str() {
                    "countdistinct" => true,
                    "sum" | "min" | "max" | "average" => false,
                    _ => return Err(bad),
                };
                column(checker, cols, resource, prop, alias, count);
            }
            _ => return Err(bad),
        }
    }
    Ok(())
}

/// Adds the row column `key`: a count is `system`, otherwise the property's category.
fn column(
    checker: &Checker<'_>,
    cols: &mut FieldNode,
    resource: usize,
    prop: &str,
    key: &str,
    count: bool,
) {
    let cat = if count {
        checker.set.taxonomy.get("system")
    } else {
        checker.category(resource, &[prop]).map(|(c, _)| c)
    };
    if let Some(cat) = cat {
        cols.keys.insert(
            key.to_string(),
            FieldNode {
                cat: Some(cat),
                ..FieldNode::default()
            },
        );
    }
}

/// One query option (`$filter`, ...) of `resource`.
fn odata_option(
    checker: &mut Checker<'_>,
    resource: usize,
    name: &str,
    value: &str,
) -> Result<(), QueryRefusal> {
    let option = option_name(name);
    match option.as_str() {
        "filter" | "orderby" => {
            // a sort order (and a grouping, read as one) sends no value; a filter does
            let before = std::mem::replace(&mut checker.carrying, option == "filter");
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
            checker.carrying = before;
            Ok(())
        }
        // in `$expand`, an aggregate of related records is not read: refused
        "apply" => Err(QueryRefusal::Unreadable("$apply inside $expand")),
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
                    value_next = false;
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

#[cfg(test)]
mod tests {
    use super::super::tests::{refused, shipped};
    use super::super::{check_url, review_url};
    use super::*;
    use crate::policy::set::OpKind;

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
            check_url(set, p, list, "/api/data/v9.2/contacts", Some(q)).map(drop)
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
            check_url(set, p, single, path, None).map(drop)
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

    fn contacts_list() -> &'static crate::policy::Operation {
        let set = shipped();
        let inv = set.inventory(Dialect::Dynamics).expect("inventory");
        inv.operations()
            .iter()
            .find(|o| o.template().ends_with("/contacts") && o.op() == OpKind::Read)
            .expect("contacts list")
    }

    fn reviewed(purpose: &str, q: &str) -> Result<super::super::Reviewed, QueryRefusal> {
        let set = shipped();
        let p = set.purpose(purpose).expect("purpose");
        review_url(set, p, contacts_list(), "/api/data/v9.2/contacts", Some(q))
    }

    #[test]
    fn select_and_expand_get_the_consent_fields_the_purpose_decides_from() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "$select=fullname,emailaddress1&$top=5",
                Some("$select=fullname,emailaddress1,donotbulkemail&$top=5"),
            ),
            (
                "%24select=fullname%2Cemailaddress1&%24filter=statecode%20eq%200",
                Some("%24select=fullname,emailaddress1,donotbulkemail&%24filter=statecode%20eq%200"),
            ),
            ("$select=fullname,DoNotBulkEMail", None),
            ("$select=*", None),
            // no $select: every column comes back, the consent field included
            ("$top=5", None),
            // the expanded account decides no consent of its own: as sent
            (
                "$select=fullname&$expand=parentcustomerid_account($select=name)",
                Some("$select=fullname,donotbulkemail&$expand=parentcustomerid_account($select=name)"),
            ),
        ];
        for (q, want) in cases {
            let r = reviewed("newsletter", q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(r.query.as_deref(), *want, "{q}");
            assert_eq!(r.shape.consent_added.is_empty(), want.is_none(), "{q}");
        }
        // purposes that need no consent get the query as sent
        let r = reviewed("support", "$select=fullname").expect("ok");
        assert_eq!(r.query, None);
    }

    #[test]
    fn apply_aggregates_are_decided_like_soql() {
        let set = shipped();
        let r = reviewed(
            "analytics",
            "$apply=groupby((address1_country),aggregate($count as total))",
        )
        .expect("allowed");
        let agg = r.shape.aggregate.expect("an aggregate");
        assert_eq!(agg.row_type, None);
        let cat = |k: &str| {
            agg.columns
                .keys
                .get(k)
                .and_then(|n| n.cat)
                .map(|c| set.taxonomy().name(c))
        };
        assert_eq!(
            cat("address1_country"),
            Some("user.contact.address.country")
        );
        assert_eq!(cat("total"), Some("system"));
        assert_eq!(cat("@odata.id"), Some("system"));
        let r = reviewed(
            "support",
            "$apply=filter(statecode eq 0)/aggregate(versionnumber with max as latest, emailaddress1 with countdistinct as mails)",
        );
        assert!(r.is_ok(), "{r:?}");
        // grouped or aggregated fields the purpose does not keep unaltered
        assert_eq!(
            reviewed(
                "analytics",
                "$apply=aggregate(birthdate with max as youngest)"
            )
            .map(|_| ()),
            refused(&["contact.birthdate"])
        );
        assert_eq!(
            reviewed(
                "support",
                "$apply=filter(birthdate gt 1990-01-01)/aggregate($count as n)"
            )
            .map(|_| ()),
            refused(&["contact.birthdate"])
        );
        // a purpose that removes records gets none
        assert_eq!(
            reviewed("newsletter", "$apply=aggregate($count as n)").map(|_| ()),
            Err(QueryRefusal::AggregateNotAllowed {
                object: "contact".into(),
                reason: AggregateRefusal::RecordsFiltered,
            })
        );
        // a filter alone is no aggregate: rows are records
        let r = reviewed("newsletter", "$apply=filter(statecode eq 0)").expect("ok");
        assert!(r.shape.aggregate.is_none());
        for q in [
            "$apply=topcount(5,revenue)",
            "$apply=groupby(address1_country)",
            "$apply=aggregate(revenue with median as m)",
            "$expand=parentcustomerid_account($apply=aggregate($count as n))",
        ] {
            assert!(
                matches!(reviewed("support", q), Err(QueryRefusal::Unreadable(_))),
                "{q}: {:?}",
                reviewed("support", q).map(|_| ())
            );
        }
    }

    const COLUMNS: &[&str] = &[
        "contactid",
        "fullname",
        "emailaddress1",
        "address1_country",
        "createdon",
        "donotbulkemail",
        "DoNotBulkEMail",
    ];
    const OPTIONS: &[&str] = &[
        "$top=5",
        "$filter=statecode%20eq%200%20and%20emailaddress1%20ne%20null",
        "%24orderby=createdon%20desc",
        "$count=true",
        "$expand=parentcustomerid_account($select=name;$filter=statecode%20eq%200)",
        "$skiptoken=%3Ccookie%20page%3D%222%22%20%2F%3E",
    ];

    /// `(raw name, decoded value)` of each parameter of a query string.
    fn decoded(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                (n.to_string(), form_decode(v).expect("decodes"))
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// A rewritten Dataverse query parses and passes the same check, selects a superset of
        /// what the app selected (its `$select` items, in order, then the consent column),
        /// filters, sorts, expands and pages identically (every other parameter byte for
        /// byte), and is a fixed point: reviewing it again adds nothing.
        #[test]
        fn select_rewrites_append_the_consent_column_only(
            columns in proptest::sample::subsequence(COLUMNS, 1..COLUMNS.len()),
            options in proptest::sample::subsequence(OPTIONS, 0..OPTIONS.len()),
            at in 0usize..OPTIONS.len(),
            encoded in proptest::bool::ANY,
        ) {
            let (name, sep) = if encoded { ("%24select", "%2C") } else { ("$select", ",") };
            let mut params: Vec<String> = options.iter().map(|o| (*o).to_string()).collect();
            let at = at.min(params.len());
            params.insert(at, format!("{name}={}", columns.join(sep)));
            let q = params.join("&");
            let r = reviewed("newsletter", &q).expect("reviewed");
            let selected = columns.iter().any(|c| c.eq_ignore_ascii_case("donotbulkemail"));
            proptest::prop_assert_eq!(r.query.is_none(), selected);
            proptest::prop_assert_eq!(r.shape.consent_added.is_empty(), selected);
            let out = r.query.unwrap_or_else(|| q.clone());
            proptest::prop_assert!(reviewed("support", &out).is_ok());
            let (before, after) = (decoded(&q), decoded(&out));
            proptest::prop_assert_eq!(before.len(), after.len());
            let raw: Vec<&str> = out.split('&').collect();
            for (i, ((bn, bv), (an, av))) in before.iter().zip(&after).enumerate() {
                proptest::prop_assert_eq!(bn, an);
                if i == at {
                    let want = if selected {
                        bv.clone()
                    } else {
                        format!("{bv},donotbulkemail")
                    };
                    proptest::prop_assert_eq!(av, &want);
                } else {
                    proptest::prop_assert_eq!(raw[i], params[i].as_str());
                }
            }
            let again = reviewed("newsletter", &out).expect("reviewed again");
            proptest::prop_assert_eq!(again.query, None);
        }
    }
}
