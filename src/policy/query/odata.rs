//! Dataverse (OData) queries: `$filter`, `$orderby` and `$apply`, the same options nested in
//! `$expand`, navigation paths, `any`/`all` lambdas, functions and the CRM query functions
//! that name a property in a string; reads by alternate key test their key properties.
//! FetchXML is refused as not checkable.

use super::{form_decode, is, query_params, relation, Carried, Checker, Enforce, QueryRefusal};
use crate::dialect::Dialect;
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
    checker.finish()
}

/// Dataverse (OData) query options that test fields: `$filter` and `$orderby`, `$apply`,
/// and the same options nested in `$expand=nav($filter=...;$orderby=...)`.
pub(super) fn check_options(
    set: &PolicySet,
    purpose: &Purpose,
    resource: usize,
    query: Option<&str>,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    let Some(inv) = set.inventory(Dialect::Dynamics) else {
        return Ok(Carried::new());
    };
    let mut checker = Checker::new(set, inv, purpose, enforce);
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
    let option = name.trim_start_matches('$').to_ascii_lowercase();
    match option.as_str() {
        "filter" | "orderby" | "apply" => {
            // a sort order sends no value; filters and $apply's filter() do
            let before = std::mem::replace(&mut checker.carrying, option != "orderby");
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
    use super::super::check_url;
    use super::super::tests::{refused, shipped};
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
}
