//! The `Content-Type` classifier as it was before it stopped allocating (975fa02), kept as
//! an oracle: the property test in `media.rs` checks that the borrowed parser classifies
//! every generated value exactly as this one did. Test-only.

use super::{valid_boundary, BodyKind, INVALID};

/// Classifies one `Content-Type` header value.
pub fn classify(value: &str) -> BodyKind {
    let Some(media) = MediaType::parse(value) else {
        return BodyKind::Other(INVALID.to_string());
    };
    match (media.kind.as_str(), media.subtype.as_str()) {
        ("application", "json") => utf8_only(&media, BodyKind::Json),
        (_, sub) if sub.ends_with("+json") && sub.len() > "+json".len() => {
            utf8_only(&media, BodyKind::Json)
        }
        ("text", "csv") => utf8_only(&media, BodyKind::Csv),
        ("multipart", "mixed") => match media.param("boundary") {
            Some(boundary) if valid_boundary(boundary) => BodyKind::MultipartMixed {
                boundary: boundary.to_string(),
            },
            _ => BodyKind::Other(media.essence()),
        },
        ("application", "x-www-form-urlencoded") => BodyKind::FormUrlEncoded,
        _ => BodyKind::Other(media.essence()),
    }
}

/// `kind` if the charset is absent or UTF-8, else `Other`.
fn utf8_only(media: &MediaType, kind: BodyKind) -> BodyKind {
    match media.param("charset") {
        None => kind,
        Some(charset) if charset.eq_ignore_ascii_case("utf-8") => kind,
        Some(_) => BodyKind::Other(media.essence()),
    }
}

/// A parsed media type: lowercase type and subtype, parameters with lowercase names.
struct MediaType {
    kind: String,
    subtype: String,
    params: Vec<(String, String)>,
}

impl MediaType {
    /// `type/subtype`, for naming what was refused.
    fn essence(&self) -> String {
        format!("{}/{}", self.kind, self.subtype)
    }

    /// RFC 9110 §8.3.1 `media-type`; `None` for anything that is not exactly one media type
    /// (lists, duplicate parameters, stray characters).
    fn parse(value: &str) -> Option<MediaType> {
        let mut rest = value.trim_matches(is_ows);
        let kind = take_token(&mut rest)?;
        rest = rest.strip_prefix('/')?;
        let subtype = take_token(&mut rest)?;
        let mut params: Vec<(String, String)> = Vec::new();
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
            let name = take_token(&mut rest)?.to_ascii_lowercase();
            rest = rest.strip_prefix('=')?;
            let value = if rest.starts_with('"') {
                take_quoted(&mut rest)?
            } else {
                take_token(&mut rest)?.to_string()
            };
            if params.iter().any(|(n, _)| *n == name) {
                return None;
            }
            params.push((name, value));
        }
        Some(MediaType {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params,
        })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Takes a non-empty token from the front of `rest`.
fn take_token<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let end = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let (token, tail) = rest.split_at(end);
    *rest = tail;
    Some(token)
}

/// Takes a quoted-string (with `\` escapes) from the front of `rest`, unquoted.
fn take_quoted(rest: &mut &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                *rest = &rest[i + 1..];
                return Some(out);
            }
            '\\' => {
                let (_, escaped) = chars.next()?;
                if !is_qdtext(escaped) && escaped != '"' && escaped != '\\' {
                    return None;
                }
                out.push(escaped);
            }
            c if is_qdtext(c) => out.push(c),
            _ => return None,
        }
    }
    None
}

/// Visible ASCII and blanks; obs-text is refused (it has no agreed meaning).
fn is_qdtext(c: char) -> bool {
    c == '\t' || c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\')
}
