//! What a governed body is, decided from its `Content-Type` alone.
//!
//! Zweck may only release a governed body it has fully inspected, and it can only inspect the
//! formats it has a parser for. This module is the gate in front of those parsers: it maps a
//! `Content-Type` to a [`BodyKind`], and everything it is not sure about becomes
//! [`BodyKind::Other`], which the pipeline refuses (fail closed). In particular:
//!
//! - JSON and CSV are only accepted as UTF-8 (charset absent or `utf-8`): the parsers read
//!   UTF-8, and a body declared in another charset could hide field names from them.
//! - `multipart/mixed` needs a valid RFC 2046 boundary, otherwise parts cannot be delimited.
//! - Anything ambiguous (two `Content-Type` headers, a list such as
//!   `application/json, text/plain`, a duplicated parameter, bytes that are not visible ASCII)
//!   is `Other`: an upstream and Zweck must never disagree about what a body is.
//!
//! `Other` carries the lowercase `type/subtype` when one could be read (for logs and problem
//! details; parameters are left out), or `"invalid"`.

use std::borrow::Cow;

use http::header::CONTENT_TYPE;
use http::HeaderMap;

/// The kind of a body, as far as Zweck's parsers are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` or any `*/*+json`, UTF-8.
    Json,
    /// `text/csv`, UTF-8 (Salesforce Bulk API 2.0 results and ingest uploads).
    Csv,
    /// `multipart/mixed` with its boundary (OData `$batch`).
    MultipartMixed { boundary: String },
    /// `application/x-www-form-urlencoded` (OAuth token endpoints).
    FormUrlEncoded,
    /// Anything else, including values that could not be read unambiguously.
    Other(String),
    /// No `Content-Type` header at all.
    Missing,
}

impl BodyKind {
    /// The value logs and problem details use for this kind.
    pub fn name(&self) -> &str {
        match self {
            BodyKind::Json => "json",
            BodyKind::Csv => "csv",
            BodyKind::MultipartMixed { .. } => "multipart/mixed",
            BodyKind::FormUrlEncoded => "form-urlencoded",
            BodyKind::Other(essence) => essence,
            BodyKind::Missing => "missing",
        }
    }
}

/// The marker `Other` carries when not even `type/subtype` could be read.
const INVALID: &str = "invalid";

/// Classifies the `Content-Type` headers of a message. Zero headers is [`BodyKind::Missing`];
/// more than one is `Other` (RFC 9110 allows only one, and two readers could pick different
/// ones).
pub fn classify_headers(headers: &HeaderMap) -> BodyKind {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let Some(first) = values.next() else {
        return BodyKind::Missing;
    };
    if values.next().is_some() {
        return BodyKind::Other(INVALID.to_string());
    }
    match first.to_str() {
        Ok(value) => classify(value),
        Err(_) => BodyKind::Other(INVALID.to_string()),
    }
}

/// The `Content-Type` values CRM APIs send on nearly every JSON response, compared (ASCII
/// case-insensitively) before anything is parsed; the parse gives each of them `Json` too.
const PLAIN_JSON: [&str; 3] = [
    "application/json",
    "application/json;charset=utf-8",
    "application/json; charset=utf-8",
];

/// Classifies one `Content-Type` header value.
pub fn classify(value: &str) -> BodyKind {
    if PLAIN_JSON.iter().any(|j| value.eq_ignore_ascii_case(j)) {
        return BodyKind::Json;
    }
    classify_parsed(value)
}

/// [`classify`] by parsing the value.
fn classify_parsed(value: &str) -> BodyKind {
    let Some(media) = MediaType::parse(value) else {
        return BodyKind::Other(INVALID.to_string());
    };
    let is = |kind: &str, subtype: &str| {
        media.kind.eq_ignore_ascii_case(kind) && media.subtype.eq_ignore_ascii_case(subtype)
    };
    // tokens are ASCII (tchar), so byte slicing is on character boundaries
    let structured_json = media.subtype.len() > "+json".len()
        && media.subtype[media.subtype.len() - "+json".len()..].eq_ignore_ascii_case("+json");
    if is("application", "json") || structured_json {
        utf8_only(&media, BodyKind::Json)
    } else if is("text", "csv") {
        utf8_only(&media, BodyKind::Csv)
    } else if is("multipart", "mixed") {
        match media.param("boundary") {
            Some(boundary) if valid_boundary(boundary) => BodyKind::MultipartMixed {
                boundary: boundary.to_string(),
            },
            _ => BodyKind::Other(media.essence()),
        }
    } else if is("application", "x-www-form-urlencoded") {
        BodyKind::FormUrlEncoded
    } else {
        BodyKind::Other(media.essence())
    }
}

/// `kind` if the charset is absent or UTF-8, else `Other`.
fn utf8_only(media: &MediaType<'_>, kind: BodyKind) -> BodyKind {
    match media.param("charset") {
        None => kind,
        Some(charset) if charset.eq_ignore_ascii_case("utf-8") => kind,
        Some(_) => BodyKind::Other(media.essence()),
    }
}

/// RFC 2046 §5.1.1: 1 to 70 characters from `bchars`, not ending in a space.
pub fn valid_boundary(boundary: &str) -> bool {
    const SPECIALS: &[u8] = b"'()+_,-./:=? ";
    !boundary.is_empty()
        && boundary.len() <= 70
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
}

/// A parsed media type, borrowed from the header value: type, subtype and parameter names
/// compare case-insensitively, so nothing is lowercased (or allocated) to classify a body;
/// only a quoted parameter value with escapes is copied.
struct MediaType<'a> {
    kind: &'a str,
    subtype: &'a str,
    params: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> MediaType<'a> {
    /// `type/subtype` in lowercase, for naming what was refused.
    fn essence(&self) -> String {
        let mut out = String::with_capacity(self.kind.len() + 1 + self.subtype.len());
        out.push_str(self.kind);
        out.push('/');
        out.push_str(self.subtype);
        out.make_ascii_lowercase();
        out
    }

    /// RFC 9110 §8.3.1 `media-type`; `None` for anything that is not exactly one media type
    /// (lists, duplicate parameters, stray characters).
    fn parse(value: &'a str) -> Option<MediaType<'a>> {
        let mut rest = value.trim_matches(is_ows);
        let kind = take_token(&mut rest)?;
        rest = rest.strip_prefix('/')?;
        let subtype = take_token(&mut rest)?;
        let mut params: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
        loop {
            rest = rest.trim_start_matches(is_ows);
            if rest.is_empty() {
                break;
            }
            rest = rest.strip_prefix(';')?;
            rest = rest.trim_start_matches(is_ows);
            if rest.is_empty() {
                // A trailing `;` is tolerated, as most servers do.
                break;
            }
            if rest.starts_with(';') {
                continue;
            }
            let name = take_token(&mut rest)?;
            rest = rest.strip_prefix('=')?;
            let value = if rest.starts_with('"') {
                take_quoted(&mut rest)?
            } else {
                Cow::Borrowed(take_token(&mut rest)?)
            };
            if params.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return None;
            }
            params.push((name, value));
        }
        Some(MediaType {
            kind,
            subtype,
            params,
        })
    }

    /// A parameter's value; `name` in lowercase.
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// RFC 9110 `tchar` (ASCII only).
fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// Takes a non-empty token from the front of `rest`. Scans bytes: a tchar is ASCII, so the
/// first byte that is not one starts a character (or ends the string).
fn take_token<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let end = rest
        .bytes()
        .position(|b| !is_tchar(b))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let (token, tail) = rest.split_at(end);
    *rest = tail;
    Some(token)
}

/// Takes a quoted-string (with `\` escapes) from the front of `rest`, unquoted.
fn take_quoted<'a>(rest: &mut &'a str) -> Option<Cow<'a, str>> {
    let mut out = String::new();
    let mut escaped_any = false;
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let whole: &'a str = rest;
                *rest = &whole[i + 1..];
                return Some(if escaped_any {
                    Cow::Owned(out)
                } else {
                    Cow::Borrowed(&whole[1..i])
                });
            }
            '\\' => {
                let (_, escaped) = chars.next()?;
                if !is_qdtext(escaped) && escaped != '"' && escaped != '\\' {
                    return None;
                }
                if !escaped_any {
                    // the unescaped prefix so far, then this and every later character
                    out.push_str(&rest[1..i]);
                    escaped_any = true;
                }
                out.push(escaped);
            }
            c if is_qdtext(c) => {
                if escaped_any {
                    out.push(c);
                }
            }
            _ => return None,
        }
    }
    None
}

/// Visible ASCII and blanks; obs-text is refused (it has no agreed meaning).
fn is_qdtext(c: char) -> bool {
    c == '\t' || c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\')
}

#[cfg(test)]
#[path = "media_reference.rs"]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn other(essence: &str) -> BodyKind {
        BodyKind::Other(essence.to_string())
    }

    #[test]
    fn the_plain_json_values_classify_as_the_parser_does() {
        for v in PLAIN_JSON {
            for v in [v.to_string(), v.to_ascii_uppercase()] {
                assert_eq!(classify_parsed(&v), BodyKind::Json, "{v}");
                assert_eq!(classify(&v), BodyKind::Json, "{v}");
            }
        }
    }

    #[test]
    fn json_variants() {
        for value in [
            "application/json",
            "Application/JSON",
            "application/json;charset=UTF-8",
            " application/json ; charset=utf-8 ",
            "application/json; odata.metadata=minimal; odata.streaming=true",
            "application/json; charset=\"utf-8\"",
            "application/problem+json",
            "application/vnd.api+json",
            "application/json;",
        ] {
            assert_eq!(classify(value), BodyKind::Json, "{value}");
        }
    }

    #[test]
    fn json_in_another_charset_is_refused() {
        assert_eq!(
            classify("application/json; charset=iso-8859-1"),
            other("application/json")
        );
        assert_eq!(
            classify("application/json; charset=utf-16"),
            other("application/json")
        );
        assert_eq!(classify("text/csv; charset=latin1"), other("text/csv"));
    }

    #[test]
    fn csv_variants() {
        assert_eq!(classify("text/csv"), BodyKind::Csv);
        assert_eq!(classify("text/csv; charset=UTF-8"), BodyKind::Csv);
        assert_eq!(classify("TEXT/CSV;header=present"), BodyKind::Csv);
    }

    #[test]
    fn multipart_needs_a_valid_boundary() {
        assert_eq!(
            classify("multipart/mixed; boundary=\"batch_7c1e0f3a-0000-4000-8000-000000000001\""),
            BodyKind::MultipartMixed {
                boundary: "batch_7c1e0f3a-0000-4000-8000-000000000001".into()
            }
        );
        assert_eq!(
            classify("Multipart/Mixed;BOUNDARY=batchresponse_1"),
            BodyKind::MultipartMixed {
                boundary: "batchresponse_1".into()
            }
        );
        assert_eq!(classify("multipart/mixed"), other("multipart/mixed"));
        assert_eq!(
            classify("multipart/mixed; boundary=\"\""),
            other("multipart/mixed")
        );
        let long = "a".repeat(71);
        assert_eq!(
            classify(&format!("multipart/mixed; boundary={long}")),
            other("multipart/mixed")
        );
        assert_eq!(
            classify("multipart/mixed; boundary=\"ends in space \""),
            other("multipart/mixed")
        );
        assert_eq!(
            classify("multipart/mixed; boundary=\"bad;char\""),
            other("multipart/mixed")
        );
    }

    #[test]
    fn form_and_others() {
        assert_eq!(
            classify("application/x-www-form-urlencoded"),
            BodyKind::FormUrlEncoded
        );
        assert_eq!(classify("text/plain"), other("text/plain"));
        assert_eq!(classify("application/zip"), other("application/zip"));
        assert_eq!(classify("application/+json"), other("application/+json"));
        assert_eq!(classify("application/xml"), other("application/xml"));
        assert_eq!(classify("application/jsonx"), other("application/jsonx"));
        assert_eq!(classify("text/json+xml"), other("text/json+xml"));
    }

    #[test]
    fn confusing_values_are_other() {
        for value in [
            "",
            "   ",
            "application/json, text/plain",
            "application/json text/plain",
            "application",
            "application/",
            "/json",
            "application/json; charset=utf-8; charset=latin1",
            "multipart/mixed; boundary=a; boundary=b",
            "application/json; charset",
            "application/json; charset=",
            "application/json; charset=\"utf-8",
            "application/json; =utf-8",
            "application/jsön",
            "application/json\u{0}",
        ] {
            assert!(
                matches!(classify(value), BodyKind::Other(_)),
                "{value:?} -> {:?}",
                classify(value)
            );
        }
    }

    #[test]
    fn header_map_cases() {
        let mut headers = HeaderMap::new();
        assert_eq!(classify_headers(&headers), BodyKind::Missing);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(classify_headers(&headers), BodyKind::Json);
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(classify_headers(&headers), other(INVALID));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_bytes(b"application/json; x=\xff").expect("opaque bytes allowed"),
        );
        assert_eq!(classify_headers(&headers), other(INVALID));
    }

    #[test]
    fn names_for_logs() {
        assert_eq!(BodyKind::Json.name(), "json");
        assert_eq!(BodyKind::Missing.name(), "missing");
        assert_eq!(other("text/plain").name(), "text/plain");
        assert_eq!(
            BodyKind::MultipartMixed {
                boundary: "b".into()
            }
            .name(),
            "multipart/mixed"
        );
    }

    #[test]
    fn quoted_escapes() {
        assert_eq!(
            classify("multipart/mixed; boundary=\"a\\-b\""),
            BodyKind::MultipartMixed {
                boundary: "a-b".into()
            }
        );
    }

    #[test]
    fn quoted_values_with_and_without_escapes_and_names_in_any_case() {
        let mm = |b: &str| BodyKind::MultipartMixed {
            boundary: b.to_string(),
        };
        // no escape: the value as written; escapes anywhere: each removed once
        assert_eq!(classify("multipart/mixed; boundary=\"a b c\""), mm("a b c"));
        assert_eq!(
            classify("multipart/mixed; boundary=\"ab\\-cd\\.e\""),
            mm("ab-cd.e")
        );
        assert_eq!(classify("multipart/mixed; boundary=\"\\a\""), mm("a"));
        assert_eq!(classify("Multipart/Mixed; BOUNDARY=xyz"), mm("xyz"));
        assert_eq!(
            classify("application/JSON; Charset=\"UTF-8\""),
            BodyKind::Json
        );
        assert_eq!(classify("application/vnd.api+JSON"), BodyKind::Json);
        assert_eq!(classify("application/+json"), other("application/+json"));
        // a parameter twice, in two spellings: not one media type
        assert_eq!(
            classify("application/json; charset=utf-8; CHARSET=latin1"),
            other(INVALID)
        );
        // unterminated and bad escapes
        assert_eq!(classify("multipart/mixed; boundary=\"abc"), other(INVALID));
        assert_eq!(
            classify("multipart/mixed; boundary=\"a\\\u{1}\""),
            other(INVALID)
        );
        // non-ASCII never makes a token (and never splits a character)
        assert_eq!(classify("applicatiön/json"), other(INVALID));
        assert_eq!(classify("application/jsön"), other(INVALID));
        assert_eq!(classify("application/json; charset=ütf-8"), other(INVALID));
        // refused types are named in lowercase
        assert_eq!(classify("Text/XML; charset=utf-8"), other("text/xml"));
        assert_eq!(classify("text/csv; charset=ISO-8859-1"), other("text/csv"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// The borrowed classifier agrees with the allocating one it replaced on values made
        /// of the characters that matter to the grammar (and some that must be refused).
        #[test]
        fn agrees_with_the_previous_classifier(
            value in r#"[aApPjJsSoOnNtTcCvVxXmMuUlLiIdD+/;=" \\\t,\-_.*1é\x01]{0,40}"#
        ) {
            proptest::prop_assert_eq!(classify(&value), reference::classify(&value));
        }

        #[test]
        fn agrees_on_plausible_values(
            kind in "(application|Application|TEXT|text|multipart|MultiPart|image)",
            sub in "(json|JSON|csv|mixed|vnd\\.api\\+json|\\+json|x-www-form-urlencoded|png)",
            params in r#"(; ?(charset|Charset|boundary|BOUNDARY)=("[a-zA-Z0-9 \\\-]{0,8}"|[a-zA-Z0-9\-]{0,8})){0,3}"#,
        ) {
            let value = format!("{kind}/{sub}{params}");
            proptest::prop_assert_eq!(classify(&value), reference::classify(&value));
        }
    }
}
