//! Byte-level JSON for the span walker: the strict document model checked in the walk's one
//! pass ([`Checker`]), and the readers the walker uses to look ahead.
//!
//! The checker is deliberately at least as strict as `crate::json::parse`: whatever it
//! accepts, the strict model accepts and reads the same way; whatever it doubts (including
//! forms the strict model accepts, such as serde_json's private number marker as a key) it
//! refuses, and the caller then runs the strict model, which gives the one answer. So it never
//! needs to say *why* a document is bad, only that it is not sure it is good. UTF-8 is checked
//! where bytes above 0x7F may stand, inside strings: anywhere else such a byte is no token. A
//! compact body (UTF-8 as a whole, no byte below 0x20: what CRM APIs send) is checked once up
//! front instead, and its strings then skip their own UTF-8 and control checks; in one without
//! a backslash anywhere, a string ends at its next quote ([`Text`]).
//!
//! Duplicate member names are found by a hash filter per open object ([`Checker::open`]); a
//! name the walk already checked at the same place of the last record is taken by comparing
//! its bytes ([`Checker::same_name`]). An object whose names are, so far, those of the last
//! whole object at the same place in the same order cannot have repeated one, and the walk
//! adds them to the filter only once they differ.
//!
//! The look-ahead readers (`member`, `navigate`, `skip_value`, `string_end`) read bytes the
//! walk has not checked yet (a record's type or consent field before the record is walked):
//! they never panic on bad bytes, and what they find counts only once the walk has checked
//! the same bytes, since a bad body ends the walk with a fallback.
//!
//! Output is written as serde_json writes a `Value` (compact, keys and strings escaped as its
//! formatter does, exponents `e` with an explicit sign): a string without a backslash is copied
//! byte for byte, one with escapes is decoded and written again by serde_json itself.

use std::borrow::Cow;
use std::hash::BuildHasher;

/// serde_json's marker key for arbitrary-precision numbers: a document that uses it as a key
/// anywhere is left to the strict model.
const NUMBER_TOKEN: &[u8] = b"$serde_json::private::Number";

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

/// The first byte at or after `i` that is `"` or `\\`, eight bytes at a time (SWAR);
/// `b.len()` when there is none. For bytes already checked: control characters are not looked
/// for.
#[inline]
fn find_special(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        let hit =
            ((quote.wrapping_sub(ONES) & !quote) | (slash.wrapping_sub(ONES) & !slash)) & HIGHS;
        if hit != 0 {
            // the lowest flagged byte is exact (borrows only move upwards)
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// The first byte at or after `i` that is `"`, `\\` or below 0x20 (SWAR), for bytes not yet
/// checked; `high` is set when a byte at or above 0x80 may have been passed (a word holding
/// one was read), so that the caller checks the string's UTF-8.
#[inline]
fn find_special_checked(b: &[u8], mut i: usize, high: &mut bool) -> usize {
    let mut seen = 0u64;
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        seen |= w;
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        let hit = ((quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGHS;
        if hit != 0 {
            *high |= seen & HIGHS != 0;
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    *high |= seen & HIGHS != 0;
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        *high |= c >= 0x80;
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

/// `a == b` for the short slices member names are, eight bytes at a time and without a call
/// (the last word overlaps the one before it).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], k: usize) -> u64 {
        s.get(k..k + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut k = 0;
    while k + 8 < n {
        if word(a, k) != word(b, k) {
            return false;
        }
        k += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// What is known of a whole body's bytes before the walk (checked once, up front).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Text {
    /// Nothing: each string checks its own UTF-8 and control characters.
    Unchecked,
    /// UTF-8 without a byte below 0x20 (no control character, and no whitespace but spaces:
    /// a compact body, as CRM APIs send). Strings need no check of their own for either.
    Plain,
    /// Plain, and without a backslash anywhere: a string ends at the next quote.
    Bare,
}

impl Text {
    fn of(b: &[u8]) -> Text {
        // the least byte of 64 at a time, without a branch per byte (the fold vectorises)
        let no_controls = b
            .chunks(64)
            .all(|c| c.iter().fold(u8::MAX, |least, &x| least.min(x)) >= 0x20);
        if !no_controls || simdutf8::basic::from_utf8(b).is_err() {
            Text::Unchecked
        } else if memchr::memchr(b'\\', b).is_some() {
            Text::Plain
        } else {
            Text::Bare
        }
    }
}

/// The first `"` at or after `i` (SWAR, eight bytes at a time); `b.len()` when there is none.
#[inline]
fn find_quote(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let quote = u64::from_le_bytes(word) ^ (ONES * u64::from(b'"'));
        let hit = quote.wrapping_sub(ONES) & !quote & HIGHS;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// The end of the string starting at `i` (after its closing quote) and whether it has
/// escapes, checked: None for control characters, bad escapes, lone surrogates and bytes that
/// are not UTF-8. `text`: what is known of the whole body.
#[inline]
pub(super) fn string(b: &[u8], i: usize, text: Text) -> Option<(usize, bool)> {
    let mut j = i + 1;
    if text == Text::Bare {
        j = find_quote(b, j);
        return (b.get(j) == Some(&b'"')).then_some((j + 1, false));
    }
    let mut escaped = false;
    let mut high = false;
    loop {
        j = if text == Text::Plain {
            find_special(b, j)
        } else {
            find_special_checked(b, j, &mut high)
        };
        match *b.get(j)? {
            b'"' => {
                if high {
                    std::str::from_utf8(b.get(i + 1..j)?).ok()?;
                }
                return Some((j + 1, escaped));
            }
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

/// A member name of an object being read, for the duplicate check: its hash and where its
/// decoded bytes are (the body for a name without escapes, [`Checker`]'s own buffer for one
/// with).
#[derive(Clone, Copy)]
struct Name {
    hash: u64,
    start: usize,
    len: usize,
    decoded: bool,
}

/// Where an object's names start in [`Checker`]'s lists (`Checker::open`).
#[derive(Clone, Copy)]
pub(super) struct Names(usize, usize);

/// An open object's duplicate check: a 256-bit filter of its names' hashes, so that a new
/// name is compared with the others only when its bit is taken already. Past `FEW_NAMES`
/// names the filter fills up, and the object's names are sorted by hash once, when it closes.
struct Frame {
    first: usize,
    filter: [u64; 4],
}

/// Objects with up to this many members check each new name as it comes; larger ones sort.
const FEW_NAMES: usize = 64;

/// The strict document model over bytes (see the module docs), read in the walker's one pass:
/// every value the walker copies, skips or walks is checked by these methods or by the walker
/// itself with them (member names, separators, depth), so that a body the span path answers
/// is one the strict model accepts, read the same way.
pub(super) struct Checker<'b> {
    b: &'b [u8],
    /// The strict model's effective depth limit.
    pub max_depth: usize,
    /// What is known of the body's bytes (checked once, up front).
    pub text: Text,
    hasher: foldhash::fast::RandomState,
    /// Names of the objects open now, innermost last.
    names: Vec<Name>,
    /// The objects open now, innermost last.
    frames: Vec<Frame>,
    /// Decoded names that had escapes.
    decoded: Vec<u8>,
}

/// Where a checked value goes: into the output, written as serde_json writes it, or nowhere.
pub(super) trait Sink {
    fn byte(&mut self, c: u8);
    fn raw(&mut self, bytes: &[u8]);
    /// The (checked) string `b[i..end]`, a value unless `key`; values go through `hook`.
    fn string(
        &mut self,
        b: &[u8],
        i: usize,
        end: usize,
        escaped: bool,
        key: bool,
        hook: Option<StrHook<'_>>,
    ) -> Option<()>;
    fn number(&mut self, b: &[u8], i: usize, end: usize);
}

/// Checks without writing (a dropped or observed value, a member Zweck added).
pub(super) struct Skip;

impl Sink for Skip {
    #[inline]
    fn byte(&mut self, _: u8) {}
    #[inline]
    fn raw(&mut self, _: &[u8]) {}
    #[inline]
    fn string(
        &mut self,
        _: &[u8],
        _: usize,
        _: usize,
        _: bool,
        _: bool,
        _: Option<StrHook<'_>>,
    ) -> Option<()> {
        Some(())
    }
    #[inline]
    fn number(&mut self, _: &[u8], _: usize, _: usize) {}
}

impl Sink for Vec<u8> {
    #[inline]
    fn byte(&mut self, c: u8) {
        self.push(c);
    }
    #[inline]
    fn raw(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    #[inline]
    fn string(
        &mut self,
        b: &[u8],
        i: usize,
        end: usize,
        escaped: bool,
        key: bool,
        hook: Option<StrHook<'_>>,
    ) -> Option<()> {
        let rewritten = match hook {
            // a string starts with its first byte unless that begins an escape: most are no link
            Some(h) if !key && b.get(i + 1).is_some_and(|c| *c == b'\\' || h.may_start(*c)) => {
                (h.rewrite)(&decode(b, i, end, escaped)?)
            }
            _ => None,
        };
        match rewritten {
            Some(s) => write_str(&s, self),
            None if escaped && !serde_spelled(b.get(i + 1..end - 1)?) => {
                write_str(&decode(b, i, end, true)?, self);
            }
            None => self.extend_from_slice(b.get(i..end)?),
        }
        Some(())
    }
    #[inline]
    fn number(&mut self, b: &[u8], i: usize, end: usize) {
        write_number(b, i, end, self);
    }
}

impl<'b> Checker<'b> {
    pub fn new(b: &'b [u8], max_depth: usize) -> Checker<'b> {
        Checker {
            b,
            max_depth,
            text: Text::of(b),
            hasher: foldhash::fast::RandomState::default(),
            names: Vec::new(),
            frames: Vec::new(),
            decoded: Vec::new(),
        }
    }

    /// True when `b` is one document the strict model accepts (the checker alone, for tests).
    #[cfg(test)]
    pub fn document(b: &'b [u8], max_depth: usize) -> bool {
        let mut c = Checker::new(b, max_depth);
        let i = ws(b, 0);
        c.value(i, 0, &mut Skip, None)
            .is_some_and(|end| ws(b, end) == b.len())
    }

    /// Starts the names of an object.
    pub fn open(&mut self) -> Names {
        self.frames.push(Frame {
            first: self.names.len(),
            filter: [0; 4],
        });
        Names(self.names.len(), self.decoded.len())
    }

    /// Checks the member name (a string) at `i` and adds it to the open object's names;
    /// returns its end, whether it has escapes and its hash. None for a bad string and for
    /// serde_json's private number marker.
    pub fn name(&mut self, i: usize) -> Option<(usize, bool, u64)> {
        let b = self.b;
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = string(b, i, self.text)?;
        let name = if escaped {
            let s = serde_json::from_slice::<String>(b.get(i..end)?).ok()?;
            let start = self.decoded.len();
            self.decoded.extend_from_slice(s.as_bytes());
            Name {
                hash: self.hasher.hash_one(s.as_bytes()),
                start,
                len: s.len(),
                decoded: true,
            }
        } else {
            let bytes = b.get(i + 1..end - 1)?;
            Name {
                hash: self.hasher.hash_one(bytes),
                start: i + 1,
                len: bytes.len(),
                decoded: false,
            }
        };
        if self.bytes(name) == NUMBER_TOKEN {
            return None;
        }
        self.add(name)?;
        Some((end, escaped, name.hash))
    }

    /// The end of the name at `i` when it is `known` (the bytes of a name without escapes,
    /// checked before in this body); None when the bytes at `i` are not that name (check it
    /// with `name`). Not added to the open object's names: the caller adds it
    /// ([`Checker::add_known`]) or knows that it cannot repeat one.
    #[inline]
    pub fn same_name(&self, i: usize, known: &[u8]) -> Option<usize> {
        let b = self.b;
        let end = i + known.len() + 2;
        if b.get(i) != Some(&b'"')
            || !same_bytes(b.get(i + 1..end - 1)?, known)
            || b.get(end - 1) != Some(&b'"')
        {
            return None;
        }
        // a checked name's bytes hold no quote, backslash or control byte and are UTF-8 on
        // their own, so the same bytes here are the same valid name
        Some(end)
    }

    /// Adds the checked name without escapes `b[start..start + len]` (its hash `hash`) to the
    /// open object's names: None when the object has it already.
    #[inline]
    pub fn add_known(&mut self, start: usize, len: usize, hash: u64) -> Option<()> {
        self.add(Name {
            hash,
            start,
            len,
            decoded: false,
        })
    }

    /// Adds a name to the open object's names: None when the object has it already.
    #[inline]
    fn add(&mut self, name: Name) -> Option<()> {
        let frame = self.frames.last_mut()?;
        let own = self.names.len() - frame.first;
        if own < FEW_NAMES {
            let word = (name.hash >> 62) as usize;
            let bit = 1u64 << ((name.hash >> 56) & 63);
            let taken = frame.filter[word] & bit != 0;
            frame.filter[word] |= bit;
            let first = frame.first;
            if taken {
                let same = self
                    .names
                    .get(first..)
                    .unwrap_or_default()
                    .iter()
                    .any(|n| n.hash == name.hash && self.bytes(*n) == self.bytes(name));
                if same {
                    return None;
                }
            }
        }
        self.names.push(name);
        Some(())
    }

    fn bytes(&self, n: Name) -> &[u8] {
        let from = if n.decoded { &self.decoded[..] } else { self.b };
        from.get(n.start..n.start + n.len).unwrap_or_default()
    }

    /// Ends an object: None when two of its names decode to the same string.
    pub fn close(&mut self, at: Names) -> Option<()> {
        let Names(first, decoded) = at;
        self.frames.pop();
        let mut names = std::mem::take(&mut self.names);
        let unique = {
            let own = names.get_mut(first..).unwrap_or_default();
            if own.len() <= FEW_NAMES {
                // each name was checked as it came
                true
            } else {
                own.sort_unstable_by_key(|n| n.hash);
                own.chunk_by(|x, y| x.hash == y.hash).all(|run| {
                    (0..run.len()).all(|x| {
                        (x + 1..run.len()).all(|y| self.bytes(run[x]) != self.bytes(run[y]))
                    })
                })
            }
        };
        names.truncate(first);
        self.names = names;
        self.decoded.truncate(decoded);
        unique.then_some(())
    }

    /// Checks the value at `i`, nested `depth` deep, and writes it into `out` as serde_json
    /// writes it (strings that are values through `hook`). Returns its end.
    pub fn value<S: Sink>(
        &mut self,
        i: usize,
        depth: usize,
        out: &mut S,
        hook: Option<StrHook<'_>>,
    ) -> Option<usize> {
        let b = self.b;
        match *b.get(i)? {
            b'"' => {
                let (end, escaped) = string(b, i, self.text)?;
                out.string(b, i, end, escaped, false, hook)?;
                Some(end)
            }
            b'{' => self.object(i, depth + 1, out, hook),
            b'[' => self.array(i, depth + 1, out, hook),
            b't' => self.literal(i, b"true", out),
            b'f' => self.literal(i, b"false", out),
            b'n' => self.literal(i, b"null", out),
            b'-' | b'0'..=b'9' => {
                let end = number_end(b, i)?;
                out.number(b, i, end);
                Some(end)
            }
            _ => None,
        }
    }

    fn literal<S: Sink>(&self, i: usize, word: &[u8], out: &mut S) -> Option<usize> {
        if self.b.get(i..i + word.len())? != word {
            return None;
        }
        out.raw(word);
        Some(i + word.len())
    }

    fn array<S: Sink>(
        &mut self,
        i: usize,
        depth: usize,
        out: &mut S,
        hook: Option<StrHook<'_>>,
    ) -> Option<usize> {
        if depth > self.max_depth {
            return None;
        }
        let b = self.b;
        out.byte(b'[');
        let mut j = ws(b, i + 1);
        if b.get(j) == Some(&b']') {
            out.byte(b']');
            return Some(j + 1);
        }
        loop {
            j = ws(b, self.value(j, depth, out, hook)?);
            match *b.get(j)? {
                b',' => {
                    out.byte(b',');
                    j = ws(b, j + 1);
                }
                b']' => {
                    out.byte(b']');
                    return Some(j + 1);
                }
                _ => return None,
            }
        }
    }

    fn object<S: Sink>(
        &mut self,
        i: usize,
        depth: usize,
        out: &mut S,
        hook: Option<StrHook<'_>>,
    ) -> Option<usize> {
        if depth > self.max_depth {
            return None;
        }
        let b = self.b;
        out.byte(b'{');
        let mut j = ws(b, i + 1);
        if b.get(j) == Some(&b'}') {
            out.byte(b'}');
            return Some(j + 1);
        }
        let names = self.open();
        loop {
            let (end, escaped, _) = self.name(j)?;
            out.string(b, j, end, escaped, true, None)?;
            j = ws(b, end);
            if b.get(j) != Some(&b':') {
                return None;
            }
            out.byte(b':');
            j = ws(b, self.value(ws(b, j + 1), depth, out, hook)?);
            match *b.get(j)? {
                b',' => {
                    out.byte(b',');
                    j = ws(b, j + 1);
                }
                b'}' => break,
                _ => return None,
            }
        }
        self.close(names)?;
        out.byte(b'}');
        Some(j + 1)
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
        j = find_special(b, j);
        match *b.get(j)? {
            b'"' => return Some((j + 1, escaped)),
            _ => {
                escaped = true;
                j += 2;
            }
        }
    }
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

/// True when the escapes of the checked string content `s` are all spelled as serde_json
/// writes them (`\\"`, `\\\\`, the five short forms of control characters, and `\\u00xx` in
/// lower case for the other control characters): serde_json would write the decoded string
/// back as these very bytes, so they are copied instead of decoded and written again.
fn serde_spelled(s: &[u8]) -> bool {
    let mut k = 0;
    while let Some(p) = s.get(k..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let at = k + p;
        match s.get(at + 1) {
            Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => k = at + 2,
            Some(b'u') => {
                let Some(&[b'0', b'0', hi @ (b'0' | b'1'), lo]) = s.get(at + 2..at + 6) else {
                    return false;
                };
                let lo = match lo {
                    b'0'..=b'9' => lo - b'0',
                    b'a'..=b'f' => lo - b'a' + 10,
                    _ => return false,
                };
                // the ones with a short form are written short
                if matches!((hi - b'0') * 16 + lo, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                    return false;
                }
                k = at + 6;
            }
            _ => return false,
        }
    }
    true
}

/// Rewrites one string value (the upstream links of the proxy); None leaves it.
pub(super) type Rewrite<'h> = &'h dyn Fn(&str) -> Option<String>;

/// The link rewrite of copied strings: `rewrite` answers only for strings that start with one
/// of `starts` (lower case; a string's first byte in either case), so a string that starts
/// otherwise is copied without being decoded.
#[derive(Clone, Copy)]
pub(super) struct StrHook<'h> {
    pub rewrite: Rewrite<'h>,
    pub starts: &'h [u8],
}

impl StrHook<'_> {
    #[inline]
    fn may_start(&self, first: u8) -> bool {
        self.starts.contains(&first.to_ascii_lowercase())
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

    #[test]
    fn same_bytes_is_slice_equality() {
        let base: Vec<u8> = (0u8..40).map(|c| b'a' + c % 26).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(same_bytes(a, a));
            assert!(!same_bytes(a, &base[..n + 1]));
            for k in 0..n {
                let mut b = a.to_vec();
                b[k] ^= 0x20;
                assert!(!same_bytes(a, &b), "{n} {k}");
            }
        }
    }

    /// `serde_spelled` says yes exactly for the escapes serde_json writes itself.
    #[test]
    fn serde_spelled_matches_serde_json() {
        let mut spellings: Vec<String> = ["\\/", "\\\"", "\\\\", "\\b", "\\f", "\\n", "\\r", "\\t"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for c in 0u32..0x100 {
            spellings.push(format!("\\u{c:04x}"));
            spellings.push(format!("\\u{c:04X}"));
        }
        spellings.push("\\u00e9".into());
        spellings.push("\\ud83d\\ude00".into());
        for esc in &spellings {
            for text in [
                esc.clone(),
                format!("a{esc}b"),
                format!("{esc}{esc}"),
                format!("é{esc}"),
            ] {
                let quoted = format!("\"{text}\"");
                let decoded: String = serde_json::from_str(&quoted).expect("valid");
                let again = serde_json::to_string(&decoded).expect("string");
                assert_eq!(
                    serde_spelled(text.as_bytes()),
                    again == quoted,
                    "{quoted} -> {again}"
                );
            }
        }
        assert!(serde_spelled(b"plain"));
        assert!(!serde_spelled(b"cut \\u00"));
        assert!(!serde_spelled(b"cut \\"));
    }

    fn min(s: &str) -> String {
        let mut out = Vec::new();
        let end = Checker::new(s.as_bytes(), 128)
            .value(ws(s.as_bytes(), 0), 0, &mut out, None)
            .expect("copy");
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
            assert!(!Checker::document(bad.as_bytes(), 128), "{bad:?}");
        }
        assert!(!Checker::document(b"\xEF\xBB\xBF{}", 128));
        assert!(!Checker::document(b"[\"\xff\"]", 128));
        assert!(!Checker::document(b"[[[[[1]]]]]", 4));
        assert!(Checker::document(b"[[[[1]]]]", 4));
        assert!(Checker::document(
            r#" {"a":[1,-0.5e+3,"\ud834\udd1e",{}]} "#.as_bytes(),
            128
        ));
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let doc = format!("{{{},\"k7\":0}}", many.join(","));
        assert!(!Checker::document(doc.as_bytes(), 128));
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
