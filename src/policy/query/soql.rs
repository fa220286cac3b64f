//! SOQL (Salesforce `query`/`queryAll`, composite parts, Bulk API 2.0 query jobs): every
//! field in `WHERE`, `HAVING`, `GROUP BY` and `ORDER BY` at every level, semi-join and child
//! subqueries included, is checked against the object of its query level.
//!
//! A small lexer and a parser that walks the clauses; it reads no more of SOQL than needed to
//! tell a field from a value, and refuses (as not checkable) what it cannot place. The select
//! list is read item by item, for two things: an aggregate query (`COUNT`, `SUM`, `GROUP BY`,
//! ...) must only aggregate fields the purpose sees unaltered and only for a purpose that
//! removes no records, and its rows (`AggregateResult`) are classified column by column; and a
//! purpose that decides consent from a field (`HasOptedOutOfEmail`) gets that field added to
//! every select list whose rows it decides (the statement, child subqueries, parents), so an
//! app that did not select it still receives the records that have consent. The rewrite only
//! inserts text: everything else of the statement is forwarded as the app wrote it.

use serde_json::Value;

use super::{
    form_decode, is, query_params, relation, replace_param, Aggregate, AggregateRefusal, Carried,
    Checker, Enforce, QueryRefusal, Reviewed, Shape,
};
use crate::dialect::Dialect;
use crate::policy::select::FieldNode;
use crate::policy::set::{Operation, PolicySet, Purpose};

/// SOQL in `q` of Salesforce's `query`/`queryAll` (the next page of a query carries none),
/// and the `fields` list of a record read or sObject Collections retrieve.
pub(super) fn review_url(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    path: &str,
    query: Option<&str>,
    enforce: Enforce,
) -> Result<Reviewed, QueryRefusal> {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if !(last == "query" || last == "queryAll") {
        return review_fields_param(set, purpose, op, query);
    }
    let mut soql = None;
    for (i, (name, value)) in query_params(query)?.into_iter().enumerate() {
        if name == "q" {
            if soql.is_some() {
                return Err(QueryRefusal::Unreadable("more than one q parameter"));
            }
            soql = Some((i, form_decode(value)?));
        }
    }
    let Some((i, q)) = soql else {
        return Ok(Reviewed::default());
    };
    let (rewritten, shape, carried) = soql_reviewed(set, purpose, &q, enforce)?;
    Ok(Reviewed {
        query: rewritten.map(|q| replace_param(query, Some(i), "q", &q)),
        shape,
        carried,
    })
}

/// A record addressed by a field's value, `/sobjects/{Object}/{field}/{value}` (read, upsert
/// or delete by an External ID field, or by `Id`), tests that field like a predicate.
/// `resource` is the operation's, the object of the path.
pub(super) fn check_external_id(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    path: &str,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let Some(at) = segments.iter().position(|s| *s == "sobjects") else {
        return Ok(Carried::new());
    };
    let [object, field, _value] = &segments[at + 1..] else {
        return Ok(Carried::new());
    };
    let inv = set
        .inventory(Dialect::Salesforce)
        .ok_or(QueryRefusal::Unreadable("no Salesforce inventory"))?;
    let mut checker = Checker::new(set, inv, purpose, enforce);
    checker.field(Some(resource), object, &[field]);
    checker.finish()?;
    Ok(checker.carried)
}

/// A Bulk API 2.0 query job (`POST .../jobs/query`) names its SOQL in `query`; a rewritten
/// statement replaces it in the body.
pub(super) fn review_query_job(
    set: &PolicySet,
    purpose: &Purpose,
    body: &mut Value,
    enforce: Enforce,
) -> Result<(Shape, Carried), QueryRefusal> {
    let Some(q) = body.get("query").and_then(|q| q.as_str()) else {
        return Err(QueryRefusal::Unreadable(
            "a query job names its query in `query`",
        ));
    };
    let (rewritten, shape, carried) = soql_reviewed(set, purpose, q, enforce)?;
    if let (Some(q), Some(obj)) = (rewritten, body.as_object_mut()) {
        obj.insert("query".into(), Value::String(q));
    }
    Ok((shape, carried))
}

/// `fields=A,B` of `GET .../sobjects/{Object}/{id}` and `GET .../composite/sobjects/{Object}`
/// (without it the CRM returns every field, consent fields included).
fn review_fields_param(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    query: Option<&str>,
) -> Result<Reviewed, QueryRefusal> {
    let mut fields = None;
    for (i, (name, value)) in query_params(query)?.into_iter().enumerate() {
        if name == "fields" {
            if fields.is_some() {
                return Err(QueryRefusal::Unreadable("more than one fields parameter"));
            }
            fields = Some((i, form_decode(value)?));
        }
    }
    let Some((i, list)) = fields else {
        return Ok(Reviewed::default());
    };
    let mut names: Vec<String> = list.split(',').map(|f| f.trim().to_string()).collect();
    let shape = add_to_field_list(set, purpose, op.resource_idx, &mut names)?;
    let query = (!shape.consent_added.is_empty())
        .then(|| replace_param(query, Some(i), "fields", &names.join(",")));
    Ok(Reviewed {
        query,
        shape,
        carried: Carried::new(),
    })
}

/// `fields: [...]` of `POST .../composite/sobjects/{Object}` (a retrieve by ids).
pub(super) fn review_fields_body(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    body: &mut Value,
) -> Result<Shape, QueryRefusal> {
    let Some(list) = body.get_mut("fields") else {
        return Ok(Shape::default());
    };
    let Some(items) = list.as_array_mut() else {
        return Err(QueryRefusal::Unreadable("fields is a list of names"));
    };
    let mut names = Vec::with_capacity(items.len());
    for item in items.iter() {
        names.push(
            item.as_str()
                .ok_or(QueryRefusal::Unreadable("fields is a list of names"))?
                .to_string(),
        );
    }
    let before = names.len();
    let shape = add_to_field_list(set, purpose, op.resource_idx, &mut names)?;
    items.extend(names.into_iter().skip(before).map(Value::String));
    Ok(shape)
}

/// Adds the purpose's consent fields of `resource` that `names` lacks (case-insensitively).
fn add_to_field_list(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    names: &mut Vec<String>,
) -> Result<Shape, QueryRefusal> {
    let mut shape = Shape::default();
    let Some(inv) = set.inventory(Dialect::Salesforce) else {
        return Ok(shape);
    };
    let checker = Checker::new(set, inv, purpose, Enforce::Yes);
    for field in checker.signal_fields(resource) {
        let name = field.join(".");
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            names.push(name);
            shape.consent_added.push((resource, field.to_vec()));
        }
    }
    Ok(shape)
}

/// Checks one SOQL statement for `purpose`; returns the categories its conditions send.
pub fn check_soql(set: &PolicySet, purpose: &Purpose, soql: &str) -> Result<Carried, QueryRefusal> {
    soql_reviewed(set, purpose, soql, Enforce::Yes).map(|(_, _, carried)| carried)
}

/// Checks one SOQL statement for `purpose` and adds the consent fields the purpose decides
/// from: the statement to forward instead (None: unchanged) and the shape of its answer.
pub fn review_soql(
    set: &PolicySet,
    purpose: &Purpose,
    soql: &str,
) -> Result<(Option<String>, Shape), QueryRefusal> {
    soql_reviewed(set, purpose, soql, Enforce::Yes).map(|(q, shape, _)| (q, shape))
}

/// [`review_soql`] that also returns the categories the statement's conditions send (the
/// consent fields it adds go to select lists only, so the rewritten statement sends what the
/// app's did); with [`Enforce::No`] nothing is refused for a field the purpose may not see.
fn soql_reviewed(
    set: &PolicySet,
    purpose: &Purpose,
    soql: &str,
    enforce: Enforce,
) -> Result<(Option<String>, Shape, Carried), QueryRefusal> {
    let inv = set
        .inventory(Dialect::Salesforce)
        .ok_or(QueryRefusal::Unreadable("no Salesforce inventory"))?;
    let (tokens, spans) = lex(soql)?;
    let mut checker = Checker::new(set, inv, purpose, enforce);
    let mut parser = Parser {
        tokens: &tokens,
        spans: &spans,
        pos: 0,
        checker: &mut checker,
        levels: Vec::new(),
    };
    parser.query(None, true)?;
    if parser.pos != tokens.len() {
        return Err(QueryRefusal::Unreadable("text after the query"));
    }
    let levels = std::mem::take(&mut parser.levels);
    let aggregate = aggregate(&mut checker, &levels)?;
    checker.finish()?;
    let carried = std::mem::take(&mut checker.carried);
    if let Some(aggregate) = aggregate {
        return Ok((
            None,
            Shape {
                consent_added: Vec::new(),
                aggregate: Some(aggregate),
            },
            carried,
        ));
    }
    let (inserts, consent_added) = consent_inserts(&checker, &levels);
    if inserts.is_empty() {
        return Ok((None, Shape::default(), carried));
    }
    let mut out = soql.to_string();
    // back to front, so the offsets still hold
    for (at, text) in inserts.iter().rev() {
        out.insert_str(*at, text);
    }
    Ok((
        Some(out),
        Shape {
            consent_added,
            aggregate: None,
        },
        carried,
    ))
}

/// SOQL's aggregate functions: a select list with one of them makes an aggregate query.
const AGGREGATES: [&str; 6] = ["COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"];

/// The aggregate functions whose value is a count (`system`), not a value of the argument.
const COUNTS: [&str; 3] = ["COUNT", "COUNT_DISTINCT", "GROUPING"];

/// Decides an aggregate statement (None: not one). Every grouped and aggregated field must be
/// one the purpose sees unaltered (filters and sorts are checked by the parser); a purpose
/// that removes records is refused any aggregate; the rows' columns are classified.
fn aggregate(
    checker: &mut Checker<'_>,
    levels: &[Level<'_>],
) -> Result<Option<Aggregate>, QueryRefusal> {
    for level in levels.iter().skip(1) {
        if level.is_aggregate() && level.returns_rows {
            return Err(QueryRefusal::Unreadable("an aggregate in a subquery"));
        }
    }
    let Some(top) = levels.first().filter(|l| l.is_aggregate()) else {
        return Ok(None);
    };
    // the select list sends no values: its fields are checked, not counted as carried
    checker.carrying = false;
    let object = top.scope.names[0].unwrap_or("?").to_string();
    let Some(resource) = top.scope.resource else {
        return Err(QueryRefusal::AggregateNotAllowed {
            object,
            reason: AggregateRefusal::UnknownObject,
        });
    };
    let system = checker.set.taxonomy.get("system");
    // the resource's own map underneath: an error list in answer to the query keeps its
    // codes; the query's columns win over it
    let mut columns = checker.inv.resources[resource].fields.clone();
    if let Some(sys) = system {
        columns.keys.insert(
            "attributes".into(),
            FieldNode {
                cat: Some(sys),
                ..FieldNode::default()
            },
        );
    }
    let mut expr = 0usize;
    for item in &top.items {
        let (key, cat) = match item {
            Item::Field { name, alias } => {
                top.scope.check(checker, name);
                let path = top.scope.path(name);
                let found = checker.category(resource, &path);
                let key = alias
                    .map(str::to_string)
                    .or_else(|| found.as_ref().map(|(_, k)| k.clone()));
                (key, found.map(|(c, _)| c))
            }
            // `COUNT()` alone fills `totalSize`; its rows are none
            Item::Call { name, args, .. }
                if args.is_empty() && name.eq_ignore_ascii_case("COUNT") =>
            {
                continue;
            }
            Item::Call { name, args, alias } => {
                let mut cat = None;
                for arg in args {
                    top.scope.check(checker, arg);
                    if cat.is_none() {
                        cat = checker
                            .category(resource, &top.scope.path(arg))
                            .map(|(c, _)| c);
                    }
                }
                if is(name, &COUNTS) {
                    cat = system;
                }
                let key = match alias {
                    Some(a) => (*a).to_string(),
                    None => {
                        expr += 1;
                        format!("expr{}", expr - 1)
                    }
                };
                (Some(key), cat)
            }
            Item::Fields(_) | Item::Subquery | Item::TypeOf => {
                return Err(QueryRefusal::Unreadable(
                    "FIELDS(), subqueries or TYPEOF in an aggregate query",
                ))
            }
        };
        if let (Some(key), Some(cat)) = (key, cat) {
            columns.keys.insert(
                key,
                FieldNode {
                    cat: Some(cat),
                    ..FieldNode::default()
                },
            );
        }
    }
    if checker.purpose.filters_records() {
        return Err(QueryRefusal::AggregateNotAllowed {
            object: checker.inv.resources[resource].name.clone(),
            reason: AggregateRefusal::RecordsFiltered,
        });
    }
    Ok(Some(Aggregate {
        resource,
        row_type: Some("AggregateResult"),
        columns,
    }))
}

/// Where the purpose's consent fields go: after the last item of every select list whose
/// rows the engine checks for consent (the statement and child subqueries of a resource that
/// defines the signal), and as `Parent.Field` for parents the list reads that define one.
/// Returns (byte offset, text) in statement order and what was added per resource.
#[allow(clippy::type_complexity)]
fn consent_inserts(
    checker: &Checker<'_>,
    levels: &[Level<'_>],
) -> (Vec<(usize, String)>, Vec<(usize, Vec<String>)>) {
    let mut inserts = Vec::new();
    // (resource, field, selected by the app somewhere)
    let mut wanted: Vec<(usize, Vec<String>, bool)> = Vec::new();
    let mut note = |resource: usize, field: &[String], selected: bool| match wanted
        .iter_mut()
        .find(|(r, f, _)| *r == resource && f.as_slice() == field)
    {
        Some(w) => w.2 |= selected,
        None => wanted.push((resource, field.to_vec(), selected)),
    };
    for level in levels.iter().filter(|l| l.returns_rows) {
        let Some(resource) = level.scope.resource else {
            continue;
        };
        let mut added = Vec::new();
        // the level's own records
        for field in checker.signal_fields(resource) {
            let selected = level.selects(&field.join("."), field.last().map(String::as_str));
            note(resource, field, selected);
            if !selected {
                added.push(field.join("."));
            }
        }
        // parents the list reads (`Account.Name`): nested records with their own consent
        let mut parents: Vec<&str> = Vec::new();
        for item in &level.items {
            if let Item::Field { name, .. } = item {
                let path = level.scope.path(name);
                if let Some((rel, _)) = path.split_first().filter(|(_, rest)| !rest.is_empty()) {
                    if !parents.iter().any(|p| p.eq_ignore_ascii_case(rel)) {
                        parents.push(rel);
                    }
                }
            }
        }
        for rel in parents {
            let Some(parent) =
                super::member(&checker.inv.resources[resource].fields, rel).and_then(|n| n.child)
            else {
                continue;
            };
            for field in checker.signal_fields(parent) {
                let full = format!("{rel}.{}", field.join("."));
                let selected = level.selects(&full, None);
                note(parent, field, selected);
                if !selected {
                    added.push(full);
                }
            }
        }
        if !added.is_empty() {
            inserts.push((level.insert_at, format!(", {}", added.join(", "))));
        }
    }
    inserts.sort_by_key(|(at, _)| *at);
    let consent_added = wanted
        .into_iter()
        .filter(|(_, _, selected)| !selected)
        .map(|(r, f, _)| (r, f))
        .collect();
    (inserts, consent_added)
}

/// One `SELECT` of a statement: its object, its select list, where a field can be added.
struct Level<'s> {
    scope: Scope<'s>,
    /// The statement and its child subqueries return rows; semi-joins in `WHERE` do not.
    returns_rows: bool,
    /// Byte offset just after the select list's last item.
    insert_at: usize,
    items: Vec<Item<'s>>,
    /// `GROUP BY` or `HAVING`.
    grouped: bool,
}

impl Level<'_> {
    fn is_aggregate(&self) -> bool {
        self.grouped
            || self
                .items
                .iter()
                .any(|i| matches!(i, Item::Call { name, .. } if is(name, &AGGREGATES)))
    }

    /// Whether the select list already reads `field` (`Rel.Field` for a parent's): named, or
    /// by `FIELDS(ALL)`, or by `FIELDS(STANDARD)` / `FIELDS(CUSTOM)` for a field of the level's
    /// own object (`own`: its name; custom fields end in `__c`).
    fn selects(&self, field: &str, own: Option<&str>) -> bool {
        self.items.iter().any(|item| match item {
            Item::Field { name, .. } => self.scope.path(name).join(".").eq_ignore_ascii_case(field),
            Item::Fields(kind) => own.is_some_and(|f| {
                let custom = f.to_ascii_lowercase().ends_with("__c");
                kind.eq_ignore_ascii_case("ALL")
                    || (kind.eq_ignore_ascii_case("STANDARD") && !custom)
                    || (kind.eq_ignore_ascii_case("CUSTOM") && custom)
            }),
            _ => false,
        })
    }
}

/// One item of a select list.
enum Item<'s> {
    /// A field, possibly through relationships (`Account.Name`), and its alias.
    Field {
        name: &'s str,
        alias: Option<&'s str>,
    },
    /// A function (`COUNT(Id)`, `toLabel(Status)`, `CALENDAR_YEAR(CreatedDate)`): its name,
    /// the field names among its arguments, its alias.
    Call {
        name: &'s str,
        args: Vec<&'s str>,
        alias: Option<&'s str>,
    },
    /// `FIELDS(ALL)`, `FIELDS(STANDARD)`, `FIELDS(CUSTOM)`.
    Fields(&'s str),
    /// `(SELECT ... FROM Relationship)`.
    Subquery,
    /// `TYPEOF ... END`.
    TypeOf,
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

/// The tokens of a statement and, per token, its byte span (for inserting text after one).
type Lexed<'s> = (Vec<Token<'s>>, Vec<(usize, usize)>);

fn lex(soql: &str) -> Result<Lexed<'_>, QueryRefusal> {
    let bytes = soql.as_bytes();
    let mut out = Vec::new();
    let mut spans = Vec::new();
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
            spans.push((start, start + 1));
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
                spans.push((start, i));
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
                spans.push((start, i));
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
                spans.push((start, i));
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.'))
                {
                    i += 1;
                }
                out.push(Token::Word(&soql[start..i]));
                spans.push((start, i));
            }
            _ => return Err(QueryRefusal::Unreadable("a character SOQL does not use")),
        }
    }
    Ok((out, spans))
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

struct Parser<'t, 's, 'c, 'a> {
    tokens: &'t [Token<'s>],
    spans: &'t [(usize, usize)],
    pos: usize,
    checker: &'c mut Checker<'a>,
    /// Every `SELECT` read so far; the statement's own is the first.
    levels: Vec<Level<'s>>,
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
    /// (`FROM Cases` names a relationship, not an object). `returns_rows`: the statement and
    /// child subqueries (not semi-joins).
    fn query(&mut self, parent: Option<usize>, returns_rows: bool) -> Result<(), QueryRefusal> {
        match self.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("SELECT") => {}
            _ => return Err(QueryRefusal::Unreadable("a query starts with SELECT")),
        }
        // the select list; nested subqueries need this query's object, which comes after
        // FROM, so note where they are and visit them afterwards
        let mut subqueries = Vec::new();
        let mut items = Vec::new();
        let insert_at = loop {
            let item = self.select_item(&mut subqueries)?;
            items.push(item);
            // an alias: `COUNT(Id) n`, `MailingCountry country`
            let alias = match self.peek() {
                Some(Token::Word(w)) if !w.eq_ignore_ascii_case("FROM") => {
                    self.pos += 1;
                    Some(w)
                }
                _ => None,
            };
            if let Some(a) = alias {
                match items.last_mut() {
                    Some(Item::Field { alias, .. } | Item::Call { alias, .. }) => *alias = Some(a),
                    _ => return Err(QueryRefusal::Unreadable("an alias after a subquery")),
                }
            }
            let end = self.spans.get(self.pos - 1).map_or(0, |s| s.1);
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("FROM") => break end,
                None => return Err(QueryRefusal::Unreadable("a query without FROM")),
                _ => {
                    return Err(QueryRefusal::Unreadable(
                        "a select list item SOQL does not have",
                    ))
                }
            }
        };
        let Some(Token::Word(object)) = self.next() else {
            return Err(QueryRefusal::Unreadable("FROM names no object"));
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
        let level = self.levels.len();
        self.levels.push(Level {
            scope,
            returns_rows,
            insert_at,
            items,
            grouped: false,
        });
        let end = self.pos;
        for at in subqueries {
            self.pos = at;
            self.query(resource, returns_rows)?;
        }
        self.pos = end;
        self.clauses(&scope, level)
    }

    /// One item of a select list (its alias aside). A subquery is skipped and its position
    /// noted in `subqueries`.
    fn select_item(&mut self, subqueries: &mut Vec<usize>) -> Result<Item<'s>, QueryRefusal> {
        match self.next() {
            Some(Token::Open)
                if self
                    .peek_word()
                    .is_some_and(|w| w.eq_ignore_ascii_case("SELECT")) =>
            {
                subqueries.push(self.pos);
                self.skip_group()?;
                Ok(Item::Subquery)
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("TYPEOF") => {
                // TYPEOF field WHEN Type THEN fields ... [ELSE fields] END
                loop {
                    match self.next() {
                        None => return Err(QueryRefusal::Unreadable("TYPEOF without END")),
                        Some(Token::Word(e)) if e.eq_ignore_ascii_case("END") => break,
                        Some(Token::Word(_) | Token::Comma) => {}
                        Some(_) => return Err(QueryRefusal::Unreadable("TYPEOF lists fields")),
                    }
                }
                Ok(Item::TypeOf)
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("FROM") => {
                Err(QueryRefusal::Unreadable("an empty select list"))
            }
            Some(Token::Word(w)) if self.peek() == Some(Token::Open) => {
                self.pos += 1;
                let start = self.pos;
                self.skip_group()?;
                let inner = &self.tokens[start..self.pos - 1];
                if w.eq_ignore_ascii_case("FIELDS") {
                    return match inner {
                        [Token::Word(kind)] if is(kind, &["ALL", "STANDARD", "CUSTOM"]) => {
                            Ok(Item::Fields(kind))
                        }
                        _ => Err(QueryRefusal::Unreadable(
                            "FIELDS() takes ALL, STANDARD or CUSTOM",
                        )),
                    };
                }
                // the field names among the arguments: words that are no function name
                let args = inner
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| match t {
                        Token::Word(a) if inner.get(i + 1) != Some(&Token::Open) => Some(*a),
                        _ => None,
                    })
                    .collect();
                Ok(Item::Call {
                    name: w,
                    args,
                    alias: None,
                })
            }
            Some(Token::Word(w)) => Ok(Item::Field {
                name: w,
                alias: None,
            }),
            None => Err(QueryRefusal::Unreadable("a query without FROM")),
            Some(_) => Err(QueryRefusal::Unreadable(
                "a select list item SOQL does not have",
            )),
        }
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

    fn clauses(&mut self, scope: &Scope<'s>, level: usize) -> Result<(), QueryRefusal> {
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
                "WHERE" => self.carrying(true, |p| p.condition(scope))?,
                "HAVING" => {
                    self.levels[level].grouped = true;
                    self.carrying(true, |p| p.condition(scope))?;
                }
                "GROUP" => {
                    self.levels[level].grouped = true;
                    self.expect_word("BY")?;
                    self.carrying(false, |p| p.field_list(scope))?;
                }
                "ORDER" => {
                    self.expect_word("BY")?;
                    self.carrying(false, |p| p.field_list(scope))?;
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

    /// Runs `clause` with the checker counting (conditions) or not counting (sort and group
    /// lists) the categories of the fields it visits, and restores the previous setting.
    fn carrying(
        &mut self,
        on: bool,
        clause: impl FnOnce(&mut Self) -> Result<(), QueryRefusal>,
    ) -> Result<(), QueryRefusal> {
        let before = std::mem::replace(&mut self.checker.carrying, on);
        let result = clause(self);
        self.checker.carrying = before;
        result
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
                        self.query(None, false)?;
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
#[derive(Clone, Copy)]
struct Scope<'s> {
    resource: Option<usize>,
    /// The object name and the alias (`FROM Contact c`: `Contact.Email`, `c.Email`).
    names: [Option<&'s str>; 2],
}

impl Scope<'_> {
    /// A field name's path from this level's object: relationship names, then the field
    /// (`c.Account.Name` -> `Account`, `Name` for `FROM Contact c`).
    fn path<'w>(&self, word: &'w str) -> Vec<&'w str> {
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
        path
    }

    fn check(&self, checker: &mut Checker<'_>, word: &str) {
        let path = self.path(word);
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
    use super::super::tests::{refused, shipped};
    use super::*;

    fn soql(set: &PolicySet, purpose: &str, q: &str) -> Result<(), QueryRefusal> {
        check_soql(set, set.purpose(purpose).expect("purpose"), q).map(drop)
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
            "SELECT Id FROM Contact c WHERE c.Email != null AND (NOT c.FirstName = 'x')",
            "SELECT Id, (SELECT Id FROM Cases ORDER BY CreatedDate) FROM Contact WHERE MailingCountry = 'DE'",
            "SELECT Id, toLabel(LeadSource), FORMAT(CreatedDate) created FROM Contact",
            "SELECT Id, TYPEOF Owner WHEN User THEN Name ELSE Id END FROM Contact",
            "SELECT FIELDS(STANDARD) FROM Contact LIMIT 200",
        ] {
            assert_eq!(soql(set, "newsletter", q), Ok(()), "{q}");
        }
    }

    fn review(
        set: &PolicySet,
        purpose: &str,
        q: &str,
    ) -> Result<(Option<String>, Shape), QueryRefusal> {
        review_soql(set, set.purpose(purpose).expect("purpose"), q)
    }

    /// The category of an aggregate row's column `key`.
    fn column(set: &PolicySet, shape: &Shape, key: &str) -> Option<String> {
        let agg = shape.aggregate.as_ref().expect("an aggregate");
        assert_eq!(agg.row_type, Some("AggregateResult"));
        agg.columns
            .keys
            .get(key)
            .and_then(|n| n.cat)
            .map(|c| set.taxonomy().name(c).to_string())
    }

    #[test]
    fn aggregates_of_fields_kept_unaltered_pass_with_their_columns() {
        let set = shipped();
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case<'_>] = &[
            (
                "support",
                "SELECT COUNT(Id), MailingCountry FROM Contact GROUP BY MailingCountry",
                &[("MailingCountry", "user.contact.address.country"), ("expr0", "system")],
            ),
            (
                "analytics",
                "select mailingcountry country, count(id) n from contact group by mailingcountry having count(id) > 1 order by count(id) desc",
                &[("country", "user.contact.address.country"), ("n", "system")],
            ),
            (
                "support",
                "SELECT FirstName, COUNT(Id), COUNT_DISTINCT(Email) FROM Contact GROUP BY ROLLUP(FirstName)",
                &[("FirstName", "user.name.first"), ("expr0", "system"), ("expr1", "system")],
            ),
            ("support", "SELECT COUNT() FROM Contact", &[]),
            (
                "support",
                "SELECT Account.Name, MAX(CreatedDate) last FROM Contact GROUP BY Account.Name",
                &[("Name", "user.workplace"), ("last", "system")],
            ),
            (
                "billing",
                "SELECT SUM(AnnualRevenue), MIN(Name) FROM Account",
                &[("expr0", "system.operations"), ("expr1", "user.workplace")],
            ),
        ];
        for (purpose, q, want) in cases {
            let (rewritten, shape) = review(set, purpose, q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(rewritten, None, "{q}");
            assert_eq!(column(set, &shape, "attributes").as_deref(), Some("system"));
            for (key, cat) in *want {
                assert_eq!(
                    column(set, &shape, key).as_deref(),
                    Some(*cat),
                    "{purpose}: {q}: {key}"
                );
            }
            let exprs = want.iter().filter(|(k, _)| k.starts_with("expr")).count();
            assert_eq!(column(set, &shape, &format!("expr{exprs}")), None, "{q}");
        }
    }

    #[test]
    fn aggregates_are_refused_for_hidden_fields_filtered_purposes_and_unknown_objects() {
        let set = shipped();
        // every grouped, aggregated, filtered and sorted field must be kept unaltered
        let cases: &[(&str, &str, &[&str])] = &[
            ("support", "SELECT MailingPostalCode, COUNT(Id) FROM Contact GROUP BY MailingPostalCode", &["Contact.MailingPostalCode"]),
            ("support", "SELECT MIN(Birthdate) FROM Contact", &["Contact.Birthdate"]),
            ("analytics", "SELECT COUNT_DISTINCT(Email) FROM Contact", &["Contact.Email"]),
            ("analytics", "SELECT MailingCountry, COUNT(Id) FROM Contact GROUP BY MailingCountry HAVING MAX(Birthdate) > 1990-01-01", &[]),
            ("support", "SELECT COUNT(Id) FROM Contact WHERE Birthdate > 1990-01-01", &["Contact.Birthdate"]),
        ];
        for (purpose, q, fields) in cases {
            let got = review(set, purpose, q).map(|_| ());
            if fields.is_empty() {
                // analytics sees birthdates only generalised: a predicate on them is refused
                assert_eq!(got, refused(&["Contact.Birthdate"]), "{q}");
            } else {
                assert_eq!(got, refused(fields), "{purpose}: {q}");
            }
        }
        // a purpose that removes records (consent) gets no aggregate the CRM computed over all
        for q in [
            "SELECT COUNT() FROM Contact",
            "SELECT COUNT(Id), MailingCountry FROM Contact GROUP BY MailingCountry",
            "SELECT Email FROM Contact GROUP BY Email",
        ] {
            assert_eq!(
                review(set, "newsletter", q).map(|_| ()),
                Err(QueryRefusal::AggregateNotAllowed {
                    object: "Contact".into(),
                    reason: AggregateRefusal::RecordsFiltered,
                }),
                "{q}"
            );
        }
        assert_eq!(
            review(set, "support", "SELECT COUNT() FROM Opportunity").map(|_| ()),
            Err(QueryRefusal::AggregateNotAllowed {
                object: "Opportunity".into(),
                reason: AggregateRefusal::UnknownObject,
            })
        );
        for q in [
            "SELECT Id, (SELECT COUNT(Id) FROM Cases) FROM Contact",
            "SELECT FIELDS(ALL), COUNT(Id) FROM Contact",
            "SELECT COUNT(Id) FROM Contact GROUP",
        ] {
            assert!(
                matches!(review(set, "support", q), Err(QueryRefusal::Unreadable(_))),
                "{q}"
            );
        }
    }

    #[test]
    fn consent_fields_are_added_where_the_purpose_decides_consent() {
        let set = shipped();
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "newsletter",
                "SELECT Id, Email FROM Contact",
                Some("SELECT Id, Email, HasOptedOutOfEmail FROM Contact"),
            ),
            (
                "newsletter",
                "SELECT Id,Email FROM Contact WHERE Email != null ORDER BY CreatedDate LIMIT 5",
                Some("SELECT Id,Email, HasOptedOutOfEmail FROM Contact WHERE Email != null ORDER BY CreatedDate LIMIT 5"),
            ),
            (
                "newsletter",
                "select c.Id from Contact c where c.Id in (select ContactId from Case)",
                Some("select c.Id, HasOptedOutOfEmail from Contact c where c.Id in (select ContactId from Case)"),
            ),
            (
                "newsletter",
                "SELECT Id, (SELECT Id FROM Cases) FROM Contact",
                Some("SELECT Id, (SELECT Id FROM Cases), HasOptedOutOfEmail FROM Contact"),
            ),
            (
                "newsletter",
                "SELECT FIELDS(CUSTOM) FROM Contact LIMIT 200",
                Some("SELECT FIELDS(CUSTOM), HasOptedOutOfEmail FROM Contact LIMIT 200"),
            ),
            ("newsletter", "SELECT Id FROM Lead", Some("SELECT Id, HasOptedOutOfEmail FROM Lead")),
            // selected already (in any case, qualified or not), or by FIELDS()
            ("newsletter", "SELECT Id, hasoptedoutofemail FROM Contact", None),
            ("newsletter", "SELECT Id, c.HasOptedOutOfEmail FROM Contact c", None),
            ("newsletter", "SELECT FIELDS(ALL) FROM Contact LIMIT 200", None),
            ("newsletter", "SELECT FIELDS(STANDARD) FROM Contact LIMIT 200", None),
            // an object without the signal: its records are withheld anyway
            ("newsletter", "SELECT Id, Name FROM Account", None),
            // purposes that need no consent: as sent
            ("support", "SELECT Id, Email FROM Contact", None),
            ("analytics", "SELECT Id, Email FROM Contact", None),
        ];
        for (purpose, q, want) in cases {
            let (rewritten, shape) = review(set, purpose, q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(rewritten.as_deref(), *want, "{purpose}: {q}");
            assert_eq!(shape.consent_added.is_empty(), want.is_none(), "{q}");
            assert!(shape.aggregate.is_none());
        }
        let inv = set.inventory(Dialect::Salesforce).expect("inventory");
        let contact = inv.resources().iter().position(|r| r.name() == "Contact");
        let (_, shape) = review(set, "newsletter", "SELECT Id FROM Contact").expect("ok");
        assert_eq!(
            shape.consent_added,
            vec![(
                contact.expect("Contact"),
                vec!["HasOptedOutOfEmail".to_string()]
            )]
        );
    }

    /// A relationship whose record decides its own consent gets the field as `Rel.Field`, and
    /// a child subquery of such an object gets it in its own select list.
    #[test]
    fn consent_fields_reach_parents_and_child_subqueries() {
        let inventory = r#"
dialect: salesforce
resources:
  Case:
    operations:
      - { method: GET, path: "/services/data/v*/query", op: read, class: list }
    records: ["$.records[*]"]
    type_key: $.attributes.type
    fields: { $.Id: system, $.Subject: user.content.private }
    children: { $.Contact: Contact }
  Contact:
    records: ["$.records[*]"]
    fields: { $.Id: system, $.Email: user.contact.email, $.Consent__c: user.privacy_preferences }
    children: { "$.Cases.records[*]": Case }
    consent: { mail: { field: $.Consent__c, granted_when: true } }
"#;
        let purposes = r"
controller: { name: X, jurisdiction: DE }
purposes:
  mail:
    data_use: marketing
    legal_basis: consent
    requires_consent: mail
    fields: { user.contact.email: keep }
";
        let (set, _) = PolicySet::from_texts(&[
            ("purposes.yaml", purposes),
            ("inventory/salesforce.yaml", inventory),
        ])
        .expect("compiles");
        let p = set.purpose("mail").expect("purpose");
        let (q, shape) = review_soql(&set, p, "SELECT Id, Contact.Email FROM Case").expect("ok");
        assert_eq!(
            q.as_deref(),
            Some("SELECT Id, Contact.Email, Contact.Consent__c FROM Case")
        );
        assert_eq!(
            shape.consent_added,
            vec![(1, vec!["Consent__c".to_string()])]
        );
        // FIELDS(STANDARD) does not read a custom field
        let (q, _) = review_soql(
            &set,
            p,
            "SELECT FIELDS(STANDARD), (SELECT Email FROM Contacts) FROM Case",
        )
        .expect("ok");
        assert_eq!(q, None, "Case has no Contacts relationship: nothing to add");
        let (q, _) = review_soql(&set, p, "SELECT FIELDS(STANDARD) FROM Contact").expect("ok");
        assert_eq!(
            q.as_deref(),
            Some("SELECT FIELDS(STANDARD), Consent__c FROM Contact")
        );
        let (q, _) = review_soql(
            &set,
            p,
            "SELECT Id, (SELECT Subject FROM Cases), Email, Consent__c FROM Contact",
        )
        .expect("ok");
        assert_eq!(q, None);
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
        let check = |path: &str, q: Option<&str>| {
            super::super::check_url(set, purpose, op, path, q).map(drop)
        };
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

    /// The select lists (item texts) of a statement's levels and the text from its top-level
    /// FROM on: what a rewrite may extend and what it must leave alone.
    fn anatomy(set: &PolicySet, soql: &str) -> (Vec<Vec<String>>, String) {
        let inv = set.inventory(Dialect::Salesforce).expect("inventory");
        let p = set.purpose("support").expect("purpose");
        let (tokens, spans) = lex(soql).expect("lexes");
        let mut checker = Checker::new(set, inv, p, Enforce::Yes);
        let mut parser = Parser {
            tokens: &tokens,
            spans: &spans,
            pos: 0,
            checker: &mut checker,
            levels: Vec::new(),
        };
        parser.query(None, true).expect("parses");
        let lists = parser
            .levels
            .iter()
            .map(|l| {
                l.items
                    .iter()
                    .map(|i| match i {
                        Item::Field { name, .. } => (*name).to_string(),
                        Item::Call { name, .. } => format!("{name}()"),
                        Item::Fields(k) => format!("FIELDS({k})"),
                        Item::Subquery => "(subquery)".into(),
                        Item::TypeOf => "TYPEOF".into(),
                    })
                    .collect()
            })
            .collect();
        let top = parser.levels.first().map_or(0, |l| l.insert_at);
        (lists, soql[top..].to_string())
    }

    const SELECTABLE: &[&str] = &[
        "Id",
        "Email",
        "FirstName",
        "MailingCountry",
        "CreatedDate",
        "HasOptedOutOfEmail",
        "FIELDS(CUSTOM)",
        "toLabel(LeadSource)",
        "Account.Name",
        "(SELECT Id, Subject FROM Cases WHERE Status = 'New')",
    ];
    const TAILS: &[&str] = &[
        "",
        " WHERE Email != null",
        " WHERE Id IN (SELECT ContactId FROM Case WHERE Status = 'Closed') ORDER BY CreatedDate DESC",
        " WHERE (MailingCountry = 'DE' OR MailingCountry = 'AT') AND HasOptedOutOfEmail = false LIMIT 10",
        " ORDER BY Email NULLS LAST LIMIT 5 OFFSET 10",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// A rewritten statement parses, selects a superset of what the app selected (each list
        /// keeps its items, in order), filters, sorts and limits identically (everything from
        /// the top-level FROM on is unchanged), and is a fixed point: reviewing it again adds
        /// nothing.
        #[test]
        fn consent_rewrites_extend_select_lists_only(
            items in proptest::sample::subsequence(SELECTABLE, 1..SELECTABLE.len()),
            tail in proptest::sample::select(TAILS),
        ) {
            let set = shipped();
            let soql = format!("SELECT {} FROM Contact{tail}", items.join(", "));
            let (rewritten, shape) = review(set, "newsletter", &soql).expect("reviewed");
            let selected = items.contains(&"HasOptedOutOfEmail");
            proptest::prop_assert_eq!(rewritten.is_none(), selected);
            proptest::prop_assert_eq!(shape.consent_added.is_empty(), selected);
            let out = rewritten.unwrap_or_else(|| soql.clone());
            let (before, rest_before) = anatomy(set, &soql);
            let (after, rest_after) = anatomy(set, &out);
            proptest::prop_assert_eq!(rest_before, rest_after);
            proptest::prop_assert_eq!(before.len(), after.len());
            for (b, a) in before.iter().zip(&after) {
                proptest::prop_assert_eq!(&a[..b.len()], &b[..]);
            }
            proptest::prop_assert!(after[0].iter().any(|i| i == "HasOptedOutOfEmail"));
            let again = review(set, "newsletter", &out).expect("reviewed again");
            proptest::prop_assert_eq!(again.0, None);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any soup of SOQL's own words and symbols: an answer, never a panic.
        #[test]
        fn never_panics_on_soql_soup(
            words in proptest::collection::vec(proptest::sample::select(SOUP), 0..30)
        ) {
            let set = shipped();
            let _ = soql(set, "newsletter", &words.join(" "));
        }
    }
}
