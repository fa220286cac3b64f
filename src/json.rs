//! The one JSON document model of Zweck: strict parsing into `serde_json::Value`.
//!
//! A data-minimisation proxy is only as strong as its parser. Where parsers disagree, an
//! attacker hides data in the disagreement, so this model refuses every form that another
//! parser could read differently:
//!
//! - **Duplicate keys** (compared on the decoded key: `"\u0065mail"` is `email`). A parser that
//!   keeps one of two values silently leaks the other to whoever reads it with another parser.
//! - **A byte-order mark, invalid UTF-8, lone surrogates** (`"\ud800"`), in keys and values.
//! - **Nesting deeper than the limit**, checked while descending, before recursing further,
//!   so 100,000 `[` cost an error and not the stack. serde_json's own recursion limit (128)
//!   stays on as a backstop: the effective limit is `min(max_depth, 128)`.
//! - **Trailing content** after the document, and anything else RFC 8259 forbids.
//!
//! Numbers keep their digits exactly (serde_json's `arbitrary_precision`): no number is ever
//! converted to a float, so `18446744073709551617`, `-0` and `0.10` leave Zweck byte for byte
//! as they came. The one normalisation is serde_json's: an exponent is written `e` with an
//! explicit sign (`1E400` leaves as `1e+400`), the same number. Key order is kept
//! (`preserve_order`).
//! Errors name reasons, positions and keys, never values. The outcome of every file of the
//! JSONTestSuite corpus is pinned by `tests/json_corpus.rs` and documented in docs/json.md.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects accepted (the top level is depth 1).
    pub max_depth: usize,
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_depth: 128,
            max_bytes: 8 << 20,
        }
    }
}

/// Why a document was refused. No variant carries a value from the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("not valid JSON at line {line}, column {column}")]
    Syntax { line: usize, column: usize },
    #[error("duplicate key {key:?} in one object (line {line})")]
    DuplicateKey { key: String, line: usize },
    #[error("nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("starts with a byte-order mark")]
    ByteOrderMark,
    #[error("not valid UTF-8")]
    InvalidUtf8,
    #[error("a \\u escape is a lone surrogate (line {line})")]
    LoneSurrogate { line: usize },
    #[error("content after the end of the document (line {line})")]
    TrailingContent { line: usize },
    #[error("empty document")]
    Empty,
}

impl JsonError {
    /// A stable short code for problem+json details and logs: the spelling of its
    /// [`Inspection`](crate::error::Inspection) reason.
    pub fn reason(&self) -> &'static str {
        crate::error::Inspection::from(self).as_str()
    }
}

// Markers carried through serde's custom errors, turned back into variants in `classify`.
const DUP: &str = "zweck-json:duplicate-key:";
const DEEP: &str = "zweck-json:too-deep";

/// The key serde_json uses to hand arbitrary-precision numbers to a visitor.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Parses one document strictly.
pub fn parse(bytes: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(JsonError::ByteOrderMark);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::InvalidUtf8)?;
    if text.trim_matches([' ', '\t', '\n', '\r']).is_empty() {
        return Err(JsonError::Empty);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ValueSeed {
        depth: 0,
        max_depth: limits.max_depth,
    }
    .deserialize(&mut de)
    .map_err(|e| classify(&e, limits))?;
    de.end()
        .map_err(|e| JsonError::TrailingContent { line: e.line() })?;
    Ok(value)
}

fn classify(e: &serde_json::Error, limits: &JsonLimits) -> JsonError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix(DUP) {
        let key = rest
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_string();
        return JsonError::DuplicateKey {
            key,
            line: e.line(),
        };
    }
    if msg.starts_with(DEEP) || msg.starts_with("recursion limit exceeded") {
        return JsonError::TooDeep {
            limit: limits.max_depth.min(128),
        };
    }
    if msg.contains("surrogate") {
        return JsonError::LoneSurrogate { line: e.line() };
    }
    if msg.starts_with("trailing characters") {
        return JsonError::TrailingContent { line: e.line() };
    }
    JsonError::Syntax {
        line: e.line(),
        column: e.column(),
    }
}

/// Serializes compactly.
pub fn to_bytes(value: &Value) -> Bytes {
    to_bytes_sized(value, 256)
}

/// `to_bytes` into a buffer of `capacity` bytes to start with (the size of the body the value
/// was parsed from: a filtered body is rarely larger, so the buffer seldom grows).
pub fn to_bytes_sized(value: &Value, capacity: usize) -> Bytes {
    let mut out = Vec::with_capacity(capacity);
    // Writing a Value into a Vec cannot fail: no I/O, and keys are strings.
    let _ = serde_json::to_writer(&mut out, value);
    Bytes::from(out)
}

/// Builds a `Value`, refusing duplicate keys and excess depth on the way down.
struct ValueSeed {
    depth: usize,
    max_depth: usize,
}

impl ValueSeed {
    fn deeper<E: de::Error>(&self) -> Result<ValueSeed, E> {
        if self.depth + 1 > self.max_depth {
            return Err(E::custom(DEEP));
        }
        Ok(ValueSeed {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper::<A::Error>()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(ValueSeed { ..inner })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let first = match map.next_key_seed(KeySeed)? {
            None => {
                self.deeper::<A::Error>()?;
                return Ok(Value::Object(Map::new()));
            }
            // arbitrary_precision hands numbers over as a one-entry map with their text
            Some(Key::NumberToken) => {
                let text: String = map.next_value()?;
                return Number::from_str(&text)
                    .map(Value::Number)
                    .map_err(|_| de::Error::custom("an invalid number"));
            }
            Some(Key::Name(k)) => k,
        };
        let inner = self.deeper::<A::Error>()?;
        let value = map.next_value_seed(ValueSeed { ..inner })?;
        let mut few = Vec::with_capacity(FEW_FIELDS + 1);
        few.push((first, value));
        let mut fields = Fields::Few(few);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let key = key.into_name();
            match &mut fields {
                Fields::Few(few) => {
                    if few.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("{DUP}{key}")));
                    }
                    let value = map.next_value_seed(ValueSeed { ..inner })?;
                    few.push((key, value));
                    if few.len() > FEW_FIELDS {
                        let mut object = Map::with_capacity(few.len() * 2);
                        object.extend(few.drain(..));
                        fields = Fields::Many(object);
                    }
                }
                Fields::Many(object) => match object.entry(key) {
                    Entry::Occupied(o) => {
                        return Err(de::Error::custom(format_args!("{DUP}{}", o.key())));
                    }
                    Entry::Vacant(v) => {
                        v.insert(map.next_value_seed(ValueSeed { ..inner })?);
                    }
                },
            }
        }
        Ok(Value::Object(match fields {
            Fields::Few(few) => {
                let mut object = Map::with_capacity(few.len());
                object.extend(few);
                object
            }
            Fields::Many(object) => object,
        }))
    }
}

/// Up to this many members an object's keys are checked for duplicates by comparing them
/// one by one, which is cheaper than hashing them (most CRM records have 5 to 30 fields);
/// larger objects switch to the map's hash. The map is then built once at its final size
/// instead of growing (callgrind: hashing and regrowing the map were ~15 % of a governed
/// response's instructions).
const FEW_FIELDS: usize = 16;

/// The members of an object being read.
enum Fields {
    Few(Vec<(String, Value)>),
    Many(Map<String, Value>),
}

/// An object key, or serde_json's arbitrary-precision number marker (told apart without
/// allocating the marker).
enum Key {
    NumberToken,
    Name(String),
}

impl Key {
    fn into_name(self) -> String {
        match self {
            Key::NumberToken => NUMBER_TOKEN.to_string(),
            Key::Name(k) => k,
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(if v == NUMBER_TOKEN {
            Key::NumberToken
        } else {
            Key::Name(v.to_string())
        })
    }

    fn visit_string<E>(self, v: String) -> Result<Key, E> {
        Ok(if v == NUMBER_TOKEN {
            Key::NumberToken
        } else {
            Key::Name(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Value, JsonError> {
        parse(s.as_bytes(), &JsonLimits::default())
    }

    #[test]
    fn numbers_keep_their_digits_exactly() {
        // (input, output): digits are never rounded; an exponent is written `e` with a sign
        for (n, out) in [
            ("18446744073709551617", "18446744073709551617"),
            ("-0", "-0"),
            ("0.10", "0.10"),
            ("-1.5e-7", "-1.5e-7"),
            (
                "100000000000000000000000000000.000000000000000001",
                "100000000000000000000000000000.000000000000000001",
            ),
            ("1e400", "1e+400"),
            ("1E+2", "1e+2"),
            ("2.50E-3", "2.50e-3"),
        ] {
            let doc = format!("[{n},{{\"n\":{n}}}]");
            let v = p(&doc).expect("parses");
            let expected = format!("[{out},{{\"n\":{out}}}]");
            assert_eq!(String::from_utf8_lossy(&to_bytes(&v)), expected, "{n}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_also_when_escaped() {
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"email":"x","\u0065mail":"y"}"#,
            r#"{"outer":{"k":1,"k":1}}"#,
            r#"[{"ok":1},{"k":1,"k":2}]"#,
        ] {
            match p(doc) {
                Err(JsonError::DuplicateKey { key, .. }) => {
                    assert!(key == "a" || key == "email" || key == "k");
                }
                other => panic!("{doc}: {other:?}"),
            }
        }
        // the same key in sibling objects is fine
        assert!(p(r#"[{"k":1},{"k":2}]"#).is_ok());
    }

    #[test]
    fn duplicates_are_found_in_small_and_large_objects_alike() {
        // objects up to FEW_FIELDS members compare keys one by one, larger ones hash them:
        // a duplicate is refused wherever it sits, and every member keeps its place
        for n in [
            1,
            2,
            FEW_FIELDS - 1,
            FEW_FIELDS,
            FEW_FIELDS + 1,
            FEW_FIELDS + 2,
            100,
        ] {
            let members: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
            let doc = format!("{{{}}}", members.join(","));
            let v = p(&doc).expect("distinct keys");
            let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
            let want: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            assert_eq!(keys, want.iter().collect::<Vec<_>>(), "order kept for {n}");
            assert_eq!(
                to_bytes(&v),
                Bytes::from(doc.clone()),
                "{n} members round-trip"
            );
            for dup_of in [0, n / 2, n - 1] {
                for at in [n, n + 1] {
                    let mut m = members.clone();
                    if at > n {
                        m.push("\"other\":0".into());
                    }
                    m.push(format!("\"k{dup_of}\":\"again\""));
                    let doc = format!("{{{}}}", m.join(","));
                    match p(&doc) {
                        Err(JsonError::DuplicateKey { key, .. }) => {
                            assert_eq!(key, format!("k{dup_of}"));
                        }
                        other => panic!("{n} members, k{dup_of} again: {other:?}"),
                    }
                }
            }
        }
        // the number marker of arbitrary_precision is only a marker as the first key
        let v = p(r#"{"a":1,"$serde_json::private::Number":"2"}"#).expect("a plain key later");
        assert_eq!(v["$serde_json::private::Number"], "2");
    }

    #[test]
    fn error_messages_carry_no_values() {
        let e =
            p(r#"{"email":"secret@example.com","email":"other@example.com"}"#).expect_err("dup");
        assert!(!e.to_string().contains("example.com"), "{e}");
        let e = p(r#"{"email":"secret@example.com"#).expect_err("truncated");
        assert!(!e.to_string().contains("example.com"), "{e}");
    }

    #[test]
    fn bom_utf8_and_surrogates() {
        assert_eq!(
            parse(b"\xEF\xBB\xBF{}", &JsonLimits::default()),
            Err(JsonError::ByteOrderMark)
        );
        assert_eq!(
            parse(b"[\"\xff\"]", &JsonLimits::default()),
            Err(JsonError::InvalidUtf8)
        );
        // serde_json reports a lone high surrogate as an unfinished escape: refused either way
        for doc in [
            r#"["\ud800"]"#,
            r#"{"\udc00":1}"#,
            r#"["\ud800abc"]"#,
            r#"["\udc00"]"#,
            r#"["\ud800\u0041"]"#,
        ] {
            assert!(
                matches!(
                    p(doc),
                    Err(JsonError::LoneSurrogate { .. } | JsonError::Syntax { .. })
                ),
                "{doc}"
            );
        }
        assert!(matches!(
            p(r#"["\udc00"]"#),
            Err(JsonError::LoneSurrogate { .. })
        ));
        assert_eq!(
            p(r#"["\ud834\udd1e"]"#).expect("pair"),
            serde_json::json!(["𝄞"])
        );
    }

    #[test]
    fn depth_is_limited_before_recursing() {
        let limits = JsonLimits {
            max_depth: 4,
            max_bytes: 1 << 20,
        };
        assert!(parse(b"[[[[1]]]]", &limits).is_ok());
        assert_eq!(
            parse(b"[[[[[1]]]]]", &limits),
            Err(JsonError::TooDeep { limit: 4 })
        );
        assert_eq!(
            parse(br#"{"a":{"b":{"c":{"d":{}}}}}"#, &limits),
            Err(JsonError::TooDeep { limit: 4 })
        );
        // 100,000 nested arrays on a normal 2 MiB stack: an error, not a crash
        let deep = "[".repeat(100_000);
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse(deep.as_bytes(), &JsonLimits::default()))
            .expect("thread");
        assert!(matches!(
            handle.join().expect("no overflow"),
            Err(JsonError::TooDeep { .. })
        ));
    }

    #[test]
    fn trailing_empty_and_size() {
        assert!(matches!(p("{} {}"), Err(JsonError::TrailingContent { .. })));
        assert_eq!(p("  \n"), Err(JsonError::Empty));
        let small = JsonLimits {
            max_depth: 8,
            max_bytes: 4,
        };
        assert_eq!(
            parse(b"[1,2,3]", &small),
            Err(JsonError::TooLarge { limit: 4 })
        );
        assert!(matches!(p("[1,]"), Err(JsonError::Syntax { .. })));
        assert!(p(" {\"a\" : [true, false, null]}\n").is_ok());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| format!("{n}{n}")),
                (any::<i32>(), 0u32..1000, -400i32..400)
                    .prop_map(|(a, b, e)| format!("{a}.{b:03}e{e}")),
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                number().prop_map(|n| Value::Number(Number::from_str(&n).expect("number"))),
                ".*".prop_map(Value::String),
            ];
            leaf.prop_recursive(6, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                    prop::collection::btree_map(".*", inner, 0..8)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn serialize_then_parse_is_identity(v in value()) {
                let bytes = to_bytes(&v);
                let back = parse(&bytes, &JsonLimits::default()).expect("own output parses");
                prop_assert_eq!(&back, &v);
                prop_assert_eq!(to_bytes(&back), bytes);
            }
        }
    }
}
