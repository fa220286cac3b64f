//! SOQL (Salesforce `query`/`queryAll`, composite parts, Bulk API 2.0 query jobs): every
//! field in `WHERE`, `HAVING`, `GROUP BY` and `ORDER BY` at every level, semi-join and child
//! subqueries included, is checked against the object of its query level.
//!
//! A small lexer and a parser that walks the clauses; it reads no more of SOQL than needed to
//! tell a field from a value, and refuses (as not checkable) what it cannot place.

use super::{form_decode, is, query_params, relation, Carried, Checker, Enforce, QueryRefusal};
use crate::dialect::Dialect;
use crate::policy::set::{PolicySet, Purpose};

/// SOQL in `q` of Salesforce's `query`/`queryAll` (the next page of a query carries none).
pub(super) fn check_url(
    set: &PolicySet,
    purpose: &Purpose,
    path: &str,
    query: Option<&str>,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if !(last == "query" || last == "queryAll") {
        return Ok(Carried::new());
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
        Some(q) => soql_checked(set, purpose, &q, enforce),
        None => Ok(Carried::new()),
    }
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
    checker.finish()
}

/// A Bulk API 2.0 query job (`POST .../jobs/query`) names its SOQL in `query`.
pub(super) fn check_query_job(
    set: &PolicySet,
    purpose: &Purpose,
    body: &serde_json::Value,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    match body.get("query").and_then(|q| q.as_str()) {
        Some(q) => soql_checked(set, purpose, q, enforce),
        None => Err(QueryRefusal::Unreadable(
            "a query job names its query in `query`",
        )),
    }
}

/// Checks one SOQL statement for `purpose`; returns the categories its conditions send.
pub fn check_soql(set: &PolicySet, purpose: &Purpose, soql: &str) -> Result<Carried, QueryRefusal> {
    soql_checked(set, purpose, soql, Enforce::Yes)
}

fn soql_checked(
    set: &PolicySet,
    purpose: &Purpose,
    soql: &str,
    enforce: Enforce,
) -> Result<Carried, QueryRefusal> {
    let inv = set
        .inventory(Dialect::Salesforce)
        .ok_or(QueryRefusal::Unreadable("no Salesforce inventory"))?;
    let tokens = lex(soql)?;
    let mut checker = Checker::new(set, inv, purpose, enforce);
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
                "WHERE" | "HAVING" => self.carrying(true, |p| p.condition(scope))?,
                "GROUP" | "ORDER" => {
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
