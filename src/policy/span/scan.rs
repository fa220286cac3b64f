//! Byte-level JSON for the span walker: a strict validator and the readers and copiers the
//! walker uses on bytes the validator accepted.
//!
//! The validator is deliberately at least as strict as `crate::json::parse`: whatever it
//! accepts, the strict model accepts and reads the same way; whatever it doubts (including
//! forms the strict model accepts, such as serde_json's private number marker as a key) it
//! refuses, and the caller then runs the strict model, which gives the one answer. So the
//! validator never needs to say *why* a document is bad, only that it is not sure it is good.
//!
//! Output is written as serde_json writes a `Value` (compact, keys and strings escaped as its
//! formatter does, exponents `e` with an explicit sign): a string without a backslash is copied
//! byte for byte, one with escapes is decoded and written again by serde_json itself.

use std::borrow::Cow;
use std::collections::HashSet;

/// serde_json's marker key for arbitrary-precision numbers: a document that uses it as a key
/// anywhere is left to the strict model.
const NUMBER_TOKEN: &[u8] = b"$serde_json::private::Number";

/// Objects with more members than this check duplicates by hashing.
const FEW_KEYS: usize = 16;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

#[inline]
pub(super) fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// The first byte at or after `i` that is `"`, `\` or (when `controls`) below 0x20, eight
/// bytes at a time (SWAR); `b.len()` when there is none.
#[inline]
fn find_special(b: &[u8], mut i: usize, controls: bool) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        let mut hit = (quote.wrapping_sub(ONES) & !quote) | (slash.wrapping_sub(ONES) & !slash);
        if controls {
            hit |= w.wrapping_sub(ONES * 0x20) & !w;
        }
        hit &= HIGHS;
        if hit != 0 {
            // the lowest flagged byte is exact (borrows only move upwards)
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || (controls && c < 0x20) {
            return i;
        }
        i += 1;
    }
    b.len()
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut n = 0u32;
    for d in digits {
        n = n * 16 + (*d as char).to_digit(16)?;
    }
    Some(n)
}

/// The strict validator (see the module docs).
pub(super) struct Validator<'a> {
    b: &'a [u8],
    max_depth: usize,
    /// Key lists of finished objects, kept for the next (one allocation per depth, not per
    /// object).
    pool: Vec<Vec<Cow<'a, [u8]>>>,
}

impl<'a> Validator<'a> {
    /// True when `b` is one document the strict model accepts, nested at most `max_depth`
    /// deep (the caller passes the strict model's effective limit).
    pub fn check(b: &'a [u8], max_depth: usize) -> bool {
        if b.starts_with(&[0xEF, 0xBB, 0xBF]) || std::str::from_utf8(b).is_err() {
            return false;
        }
        let mut v = Validator {
            b,
            max_depth,
            pool: Vec::new(),
        };
        let i = ws(b, 0);
        match v.value(i, 0) {
            Some(end) => ws(b, end) == b.len(),
            None => false,
        }
    }

    fn value(&mut self, i: usize, depth: usize) -> Option<usize> {
        match *self.b.get(i)? {
            b'{' => self.object(i, depth + 1),
            b'[' => self.array(i, depth + 1),
            b'"' => self.string(i).map(|(end, _)| end),
            b't' => self.literal(i, b"true"),
            b'f' => self.literal(i, b"false"),
            b'n' => self.literal(i, b"null"),
            b'-' | b'0'..=b'9' => number_end(self.b, i),
            _ => None,
        }
    }

    fn literal(&self, i: usize, word: &[u8]) -> Option<usize> {
        (self.b.get(i..i + word.len())? == word).then_some(i + word.len())
    }

    fn array(&mut self, i: usize, depth: usize) -> Option<usize> {
        if depth > self.max_depth {
            return None;
        }
        let mut i = ws(self.b, i + 1);
        if self.b.get(i) == Some(&b']') {
            return Some(i + 1);
        }
        loop {
            i = ws(self.b, self.value(i, depth)?);
            match self.b.get(i)? {
                b',' => i = ws(self.b, i + 1),
                b']' => return Some(i + 1),
                _ => return None,
            }
        }
    }

    fn object(&mut self, i: usize, depth: usize) -> Option<usize> {
        if depth > self.max_depth {
            return None;
        }
        let mut i = ws(self.b, i + 1);
        if self.b.get(i) == Some(&b'}') {
            return Some(i + 1);
        }
        let mut few = self.pool.pop().unwrap_or_default();
        few.clear();
        let mut many: Option<HashSet<Cow<'a, [u8]>, foldhash::fast::RandomState>> = None;
        loop {
            if self.b.get(i) != Some(&b'"') {
                return None;
            }
            let (end, escaped) = self.string(i)?;
            let key = key_bytes(self.b, i, end, escaped)?;
            if *key == *NUMBER_TOKEN {
                return None;
            }
            match &mut many {
                Some(set) => {
                    if !set.insert(key) {
                        return None;
                    }
                }
                None => {
                    if few.contains(&key) {
                        return None;
                    }
                    few.push(key);
                    if few.len() > FEW_KEYS {
                        many = Some(few.drain(..).collect());
                    }
                }
            }
            i = ws(self.b, end);
            if self.b.get(i) != Some(&b':') {
                return None;
            }
            i = ws(self.b, self.value(ws(self.b, i + 1), depth)?);
            match self.b.get(i)? {
                b',' => i = ws(self.b, i + 1),
                b'}' => {
                    few.clear();
                    self.pool.push(few);
                    return Some(i + 1);
                }
                _ => return None,
            }
        }
    }

    /// The end of the string starting at `i` (after its closing quote) and whether it has
    /// escapes; None for control characters, bad escapes and lone surrogates.
    fn string(&self, i: usize) -> Option<(usize, bool)> {
        let b = self.b;
        let mut j = i + 1;
        let mut escaped = false;
        loop {
            j = find_special(b, j, true);
            match *b.get(j)? {
                b'"' => return Some((j + 1, escaped)),
                b'\\' => {
                    escaped = true;
                    match *b.get(j + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                        b'u' => {
                            let cp = hex4(b, j + 2)?;
                            j += 6;
                            if (0xDC00..0xE000).contains(&cp) {
                                return None;
                            }
                            if (0xD800..0xDC00).contains(&cp) {
                                if b.get(j..j + 2)? != b"\\u" {
                                    return None;
                                }
                                let low = hex4(b, j + 2)?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                                j += 6;
                            }
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }
}

/// The end of the number starting at `i`, by RFC 8259's grammar.
pub(super) fn number_end(b: &[u8], i: usize) -> Option<usize> {
    let digits = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    match *b.get(j)? {
        b'0' => j += 1,
        b'1'..=b'9' => j = digits(j + 1),
        _ => return None,
    }
    if b.get(j) == Some(&b'.') {
        let k = digits(j + 1);
        if k == j + 1 {
            return None;
        }
        j = k;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let k = digits(j);
        if k == j {
            return None;
        }
        j = k;
    }
    Some(j)
}

/// The end of a (valid) string starting at `i`, and whether it has escapes.
#[inline]
pub(super) fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        j = find_special(b, j, false);
        match *b.get(j)? {
            b'"' => return Some((j + 1, escaped)),
            _ => {
                escaped = true;
                j += 2;
            }
        }
    }
}

/// The decoded bytes of the key `b[i..end]` (quotes included in the span) for the duplicate
/// check: two keys are the same decoded string exactly when these bytes are equal. A key
/// without escapes is its raw bytes (the body's UTF-8 was checked whole before), so only keys
/// with escapes are decoded.
fn key_bytes(b: &[u8], i: usize, end: usize, escaped: bool) -> Option<Cow<'_, [u8]>> {
    if !escaped {
        return b.get(i + 1..end.checked_sub(1)?).map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(b.get(i..end)?)
        .ok()
        .map(|s| Cow::Owned(s.into_bytes()))
}

/// The text of the (valid) string `b[i..end]`, quotes included in the span.
pub(super) fn decode(b: &[u8], i: usize, end: usize, escaped: bool) -> Option<Cow<'_, str>> {
    let raw = b.get(i..end)?;
    if !escaped {
        return std::str::from_utf8(raw.get(1..raw.len() - 1)?)
            .ok()
            .map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
}

/// The end of the (valid) value starting at `i`.
pub(super) fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i).map(|(e, _)| e),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => j = string_end(b, j)?.0,
                    b'{' | b'[' => {
                        depth += 1;
                        j += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                    _ => j += 1,
                }
            }
        }
        b't' | b'n' => Some(i + 4),
        b'f' => Some(i + 5),
        _ => number_end(b, i),
    }
}

/// Writes the number `b[i..end]` as serde_json writes it back: an exponent as `e` with an
/// explicit sign.
fn write_number(b: &[u8], i: usize, end: usize, out: &mut Vec<u8>) {
    let n = &b[i..end];
    match n.iter().position(|c| matches!(c, b'e' | b'E')) {
        None => out.extend_from_slice(n),
        Some(e) => {
            out.extend_from_slice(&n[..e]);
            out.push(b'e');
            let rest = &n[e + 1..];
            if !matches!(rest.first(), Some(b'+' | b'-')) {
                out.push(b'+');
            }
            out.extend_from_slice(rest);
        }
    }
}

/// Writes a string value, escaped as serde_json escapes.
pub(super) fn write_str(s: &str, out: &mut Vec<u8>) {
    // writing into a Vec cannot fail
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Rewrites one string value (the upstream links of the proxy); None leaves it.
pub(super) type StrHook<'h> = &'h dyn Fn(&str) -> Option<String>;

/// Copies the (valid) value at `i` compactly, as serde_json would write it; string values
/// (not keys) go through `hook` when there is one. Returns the end of the value.
pub(super) fn copy_value(
    b: &[u8],
    i: usize,
    out: &mut Vec<u8>,
    hook: Option<StrHook<'_>>,
) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    loop {
        let c = *b.get(j)?;
        match c {
            b'"' => {
                let (end, escaped) = string_end(b, j)?;
                let is_key = b.get(ws(b, end)) == Some(&b':') && depth > 0;
                let rewritten = match hook {
                    Some(h) if !is_key => h(&decode(b, j, end, escaped)?),
                    _ => None,
                };
                match rewritten {
                    Some(s) => write_str(&s, out),
                    None if escaped => write_str(&decode(b, j, end, true)?, out),
                    None => out.extend_from_slice(&b[j..end]),
                }
                j = end;
            }
            b'{' | b'[' => {
                depth += 1;
                out.push(c);
                j += 1;
                continue;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                out.push(c);
                j += 1;
            }
            b',' | b':' => {
                out.push(c);
                j += 1;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                j = ws(b, j);
                continue;
            }
            b't' | b'n' => {
                out.extend_from_slice(b.get(j..j + 4)?);
                j += 4;
            }
            b'f' => {
                out.extend_from_slice(b.get(j..j + 5)?);
                j += 5;
            }
            _ => {
                let end = number_end(b, j)?;
                write_number(b, j, end, out);
                j = end;
            }
        }
        if depth == 0 {
            return Some(j);
        }
    }
}

/// The member `key` of the (valid) object at `i`: the position of its value.
pub(super) fn member(b: &[u8], i: usize, key: &str) -> Option<usize> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut j = ws(b, i + 1);
    if b.get(j) == Some(&b'}') {
        return None;
    }
    loop {
        let (end, escaped) = string_end(b, j)?;
        let hit = if escaped {
            decode(b, j, end, true)? == key
        } else {
            b.get(j + 1..end - 1)? == key.as_bytes()
        };
        let v = ws(b, ws(b, end) + 1);
        if hit {
            return Some(v);
        }
        j = ws(b, skip_value(b, v)?);
        match b.get(j)? {
            b',' => j = ws(b, j + 1),
            _ => return None,
        }
    }
}

/// Follows member names from the value at `i` (`navigate` of the DOM).
pub(super) fn navigate(b: &[u8], i: usize, keys: &[String]) -> Option<usize> {
    keys.iter().try_fold(i, |at, k| member(b, at, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn min(s: &str) -> String {
        let mut out = Vec::new();
        let end = copy_value(s.as_bytes(), ws(s.as_bytes(), 0), &mut out, None).expect("copy");
        assert_eq!(ws(s.as_bytes(), end), s.len());
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn copies_as_serde_json_writes() {
        for doc in [
            r#" { "a" : [ 1 , 2.50E-3, -0, 1e400, "x\u0041\/y", true, false, null, {} , [ ] ] } "#,
            r#"{"k\u00e9y":"\ud834\udd1e","e":"\u0000\u001f\"\\"}"#,
            "[\"tab\\t\", \"caf\u{e9}\"]",
        ] {
            let v = crate::json::parse(doc.as_bytes(), &crate::json::JsonLimits::default())
                .expect("valid");
            assert_eq!(min(doc).as_bytes(), &crate::json::to_bytes(&v)[..], "{doc}");
        }
    }

    #[test]
    fn validator_is_strict() {
        for bad in [
            "",
            " ",
            "{} {}",
            "[1,]",
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"["\ud800"]"#,
            r#"["\udc00"]"#,
            r#"["\ud800\u0041"]"#,
            "[01]",
            "[1.]",
            "[1e]",
            "[-]",
            "[\"\t\"]",
            r#"{"$serde_json::private::Number":"1"}"#,
            "[tru]",
            "{\"a\" 1}",
            "{1:2}",
        ] {
            assert!(!Validator::check(bad.as_bytes(), 128), "{bad:?}");
        }
        assert!(!Validator::check(b"\xEF\xBB\xBF{}", 128));
        assert!(!Validator::check(b"[\"\xff\"]", 128));
        assert!(!Validator::check(b"[[[[[1]]]]]", 4));
        assert!(Validator::check(b"[[[[1]]]]", 4));
        assert!(Validator::check(
            r#" {"a":[1,-0.5e+3,"\ud834\udd1e",{}]} "#.as_bytes(),
            128
        ));
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let doc = format!("{{{},\"k7\":0}}", many.join(","));
        assert!(!Validator::check(doc.as_bytes(), 128));
    }

    #[test]
    fn members_by_decoded_name() {
        let b = br#"{"a":1, "b\u0063" : {"d":[1,{"x":2}]}, "e":"}"}"#;
        let at = navigate(b, 0, &["bc".into(), "d".into()]).expect("found");
        assert_eq!(b[at], b'[');
        assert!(navigate(b, 0, &["zz".into()]).is_none());
        assert_eq!(b[member(b, 0, "e").expect("e")], b'"');
    }
}
