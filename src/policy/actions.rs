//! Value transformations behind the field actions.
//!
//! Each is a pure function over one JSON value. Anything an action cannot transform
//! meaningfully (an object under `mask`, a word under `generalise: year`) becomes `null`:
//! an action never falls back to passing the value through. `null` stays `null` everywhere,
//! which also keeps the actions idempotent.

use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::set::Generalise;

type HmacSha256 = Hmac<Sha256>;

/// The master pseudonym key (bytes from `ZWECK_PSEUDONYM_KEY_FILE`) and its version.
/// Per-purpose keys are derived as HMAC(master, "zweck-pseudonym-v1:" + purpose), so the
/// same input gives the same pseudonym within a purpose and different ones across purposes.
/// The version goes into every pseudonym (`pz1_...`), so keys can rotate visibly.
///
/// Derived keys are cached (clones share the cache): deriving costs six SHA-256
/// compressions, more than pseudonymising a few values, and every body would pay it.
#[derive(Clone)]
pub struct PseudonymKey {
    master: Arc<[u8]>,
    version: u32,
    derived: Arc<RwLock<super::FastMap<String, Arc<PurposeKey>>>>,
}

/// At most this many purposes keep a cached key; beyond it keys are derived per call.
/// Purpose names come from the compiled policies, so this bound is never reached in practice.
const DERIVED_CACHE_MAX: usize = 1024;

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PseudonymKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl PseudonymKey {
    /// Key version 1 from master key bytes.
    pub fn new(master: &[u8]) -> PseudonymKey {
        PseudonymKey::with_version(master, 1)
    }

    /// A key with an explicit version (the `N` in `pzN_`).
    pub fn with_version(master: &[u8], version: u32) -> PseudonymKey {
        PseudonymKey {
            master: master.into(),
            version,
            derived: Arc::default(),
        }
    }

    /// The key version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The key of one purpose (derived once, then from the cache).
    pub fn derive(&self, purpose: &str) -> Arc<PurposeKey> {
        // a poisoned lock only means another thread panicked mid-insert: the map is intact
        if let Some(k) = self
            .derived
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(purpose)
        {
            return k.clone();
        }
        let key = Arc::new(self.derive_uncached(purpose));
        let mut cache = self.derived.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < DERIVED_CACHE_MAX {
            cache.insert(purpose.to_string(), key.clone());
        }
        key
    }

    fn derive_uncached(&self, purpose: &str) -> PurposeKey {
        let mut mac = mac_for(&self.master);
        mac.update(b"zweck-pseudonym-v1:");
        mac.update(purpose.as_bytes());
        let key = mac.finalize().into_bytes();
        PurposeKey {
            mac: mac_for(&key),
            prefix: format!("pz{}_", self.version),
        }
    }
}

fn mac_for(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; the error branch is unreachable but handled.
    HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

/// A derived per-purpose key, ready to use.
#[derive(Clone)]
pub struct PurposeKey {
    mac: HmacSha256,
    prefix: String,
}

impl PurposeKey {
    /// `pzN_` + base64url of the first 16 bytes of HMAC-SHA-256 over the value's text.
    pub fn pseudonym(&self, text: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(text.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut s = self.prefix.clone();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&out[..16], &mut s);
        s
    }
}

/// The text of a scalar (strings as they are, numbers as written, booleans as words).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `pseudonymise`.
pub fn pseudonymise(v: &Value, key: &PurposeKey) -> Value {
    match scalar_text(v) {
        Some(t) => Value::String(key.pseudonym(&t)),
        None => Value::Null,
    }
}

/// `mask`: all but the last `keep_last` characters become `*`. For e-mail addresses
/// (`email` true) the local part is masked whole and the domain is kept.
pub fn mask(v: &Value, keep_last: usize, email: bool) -> Value {
    let Some(t) = scalar_text(v) else {
        return Value::Null;
    };
    if email {
        if let Some((local, domain)) = t.rsplit_once('@') {
            let mut out: String = "*".repeat(local.chars().count().max(1));
            out.push('@');
            out.push_str(domain);
            return Value::String(out);
        }
    }
    let n = t.chars().count();
    let keep = keep_last.min(n);
    let mut out = "*".repeat(n - keep);
    out.extend(t.chars().skip(n - keep));
    Value::String(out)
}

/// `truncate: N` (characters, not bytes).
pub fn truncate(v: &Value, n: usize) -> Value {
    match v {
        Value::String(s) => match s.char_indices().nth(n) {
            Some((i, _)) => Value::String(s[..i].to_string()),
            None => v.clone(),
        },
        _ => match scalar_text(v) {
            Some(t) => Value::String(t.chars().take(n).collect()),
            None => Value::Null,
        },
    }
}

/// `generalise`.
pub fn generalise(v: &Value, g: &Generalise) -> Value {
    match g {
        Generalise::Year | Generalise::Month => {
            let Value::String(s) = v else {
                return Value::Null;
            };
            let b = s.as_bytes();
            let digits = |r: std::ops::Range<usize>| {
                b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit))
            };
            if !digits(0..4) || (b.len() > 4 && b[4] != b'-') {
                return Value::Null;
            }
            if *g == Generalise::Year || b.len() == 4 {
                return Value::String(s[..4].to_string());
            }
            if digits(5..7) && (b.len() == 7 || b.get(7) == Some(&b'-')) {
                Value::String(s[..7].to_string())
            } else {
                Value::Null
            }
        }
        Generalise::Range(width) => {
            let width = i128::from((*width).max(1));
            let lower = match v {
                Value::Number(n) => n.to_string().parse::<f64>().ok(),
                Value::String(s) => {
                    if let Some(lo) = parse_range(s, width) {
                        return Value::String(format_range(lo, width));
                    }
                    s.trim().parse::<f64>().ok()
                }
                _ => None,
            };
            match lower {
                Some(x) if x.is_finite() && x.abs() < 1e30 => {
                    let lo = ((x.floor() as i128).div_euclid(width)) * width;
                    Value::String(format_range(lo, width))
                }
                _ => Value::Null,
            }
        }
        Generalise::Map(table) => match code_text(v) {
            Some(s) => table.lookup(&s).map_or(Value::Null, Value::String),
            None => Value::Null,
        },
        Generalise::PostalPrefix(n) => match code_text(v) {
            Some(s) => postal_prefix(&s, *n).map_or(Value::Null, Value::String),
            None => Value::Null,
        },
    }
}

/// A string, or a number's text (postal codes and codes in tables arrive as either).
fn code_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first `n` letters and digits of a postal code, upper case; spaces and hyphens are
/// ignored, anything else (or fewer than `n`) means it is no postal code.
fn postal_prefix(s: &str, n: usize) -> Option<String> {
    let mut out = String::with_capacity(n);
    for c in s.trim().chars() {
        match c {
            ' ' | '-' => {}
            c if c.is_ascii_alphanumeric() => {
                if out.len() < n {
                    out.push(c.to_ascii_uppercase());
                }
            }
            _ => return None,
        }
    }
    (out.len() == n && n > 0).then_some(out)
}

fn format_range(lo: i128, width: i128) -> String {
    format!("{}-{}", lo, lo + width - 1)
}

/// Recognises an already generalised `lo-hi` of this width (so the action is idempotent).
fn parse_range(s: &str, width: i128) -> Option<i128> {
    let (a, b) = if let Some(rest) = s.strip_prefix('-') {
        let (a, b) = rest.split_once('-')?;
        (format!("-{a}"), b.to_string())
    } else {
        let (a, b) = s.split_once('-')?;
        (a.to_string(), b.to_string())
    };
    let lo: i128 = a.parse().ok()?;
    let hi: i128 = b.parse().ok()?;
    (hi - lo + 1 == width && lo.rem_euclid(width) == 0).then_some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_keys_are_cached_per_purpose_and_match_a_fresh_derivation() {
        let key = PseudonymKey::new(b"master");
        let a = key.derive("newsletter");
        // a clone shares the cache
        assert!(Arc::ptr_eq(&a, &key.clone().derive("newsletter")));
        let fresh = PseudonymKey::new(b"master").derive_uncached("newsletter");
        assert_eq!(
            a.pseudonym("x@example.com"),
            fresh.pseudonym("x@example.com")
        );
        // pinned (Python: hmac(hmac(b"master", b"zweck-pseudonym-v1:newsletter"), value)):
        // a cache must not change what a pseudonym is
        assert_eq!(a.pseudonym("x@example.com"), "pz1_TWMARcs3vRts4KHKBUnjog");
        let other = key.derive("analytics");
        assert!(!Arc::ptr_eq(&a, &other));
        assert_ne!(
            a.pseudonym("x@example.com"),
            other.pseudonym("x@example.com")
        );
        // another master or version: another cache, other pseudonyms
        assert_ne!(
            PseudonymKey::new(b"other")
                .derive("newsletter")
                .pseudonym("x@example.com"),
            a.pseudonym("x@example.com")
        );
        assert!(PseudonymKey::with_version(b"master", 2)
            .derive("newsletter")
            .pseudonym("x@example.com")
            .starts_with("pz2_"));
    }

    #[test]
    fn masks() {
        assert_eq!(
            mask(&json!("+49 151 00000001"), 4, false),
            json!("************0001")
        );
        assert_eq!(
            mask(&json!("livia@example.com"), 0, true),
            json!("*****@example.com")
        );
        assert_eq!(mask(&json!("ab"), 4, false), json!("ab"));
        assert_eq!(mask(&json!({"a": 1}), 4, false), Value::Null);
        let once = mask(&json!("livia@example.com"), 2, true);
        assert_eq!(mask(&once, 2, true), once);
    }

    #[test]
    fn truncates_characters() {
        assert_eq!(truncate(&json!("Testikylä"), 8), json!("Testikyl"));
        assert_eq!(truncate(&json!("äöü"), 2), json!("äö"));
        assert_eq!(truncate(&json!("99999"), 2), json!("99"));
        assert_eq!(truncate(&json!(12345), 2), json!("12"));
    }

    #[test]
    fn generalises() {
        assert_eq!(
            generalise(&json!("1984-02-29"), &Generalise::Year),
            json!("1984")
        );
        assert_eq!(
            generalise(&json!("1984-02-29"), &Generalise::Month),
            json!("1984-02")
        );
        assert_eq!(
            generalise(&json!("1984"), &Generalise::Month),
            json!("1984")
        );
        assert_eq!(
            generalise(&json!("2024-05-02T08:15:00.000+0000"), &Generalise::Year),
            json!("2024")
        );
        assert_eq!(
            generalise(&json!("yesterday"), &Generalise::Year),
            Value::Null
        );
        assert_eq!(
            generalise(&json!(34), &Generalise::Range(10)),
            json!("30-39")
        );
        assert_eq!(
            generalise(&json!("34"), &Generalise::Range(10)),
            json!("30-39")
        );
        assert_eq!(
            generalise(&json!("30-39"), &Generalise::Range(10)),
            json!("30-39")
        );
        assert_eq!(
            generalise(&json!(-5), &Generalise::Range(10)),
            json!("-10--1")
        );
        assert_eq!(
            generalise(&json!("-10--1"), &Generalise::Range(10)),
            json!("-10--1")
        );
    }

    #[test]
    fn generalises_strings_by_table_and_postal_prefix() {
        let table = std::sync::Arc::new(
            crate::policy::lookup::ValueMap::parse("m.csv", "city,region\nMusterstadt,Nord\n")
                .expect("table"),
        );
        let map = Generalise::Map(table);
        assert_eq!(generalise(&json!("musterstadt"), &map), json!("Nord"));
        assert_eq!(generalise(&json!("Nord"), &map), json!("Nord"));
        assert_eq!(generalise(&json!("Elsewhere"), &map), Value::Null);
        assert_eq!(generalise(&json!({"a": 1}), &map), Value::Null);
        let postal = Generalise::PostalPrefix(3);
        assert_eq!(generalise(&json!("sw1a 1aa"), &postal), json!("SW1"));
        assert_eq!(generalise(&json!("SW1"), &postal), json!("SW1"));
        assert_eq!(generalise(&json!(10115), &postal), json!("101"));
        assert_eq!(generalise(&json!("0000 ZZ"), &postal), json!("000"));
        assert_eq!(generalise(&json!("12"), &postal), Value::Null);
        assert_eq!(generalise(&json!("a.b.c.d"), &postal), Value::Null);
    }

    #[test]
    fn pseudonyms_are_keyed_per_purpose() {
        let k = PseudonymKey::new(b"master");
        let a = k.derive("analytics");
        let b = k.derive("support");
        let p = a.pseudonym("x@example.com");
        assert!(p.starts_with("pz1_"));
        assert_eq!(p.len(), 4 + 22);
        assert_eq!(p, a.pseudonym("x@example.com"));
        assert_ne!(p, b.pseudonym("x@example.com"));
        assert_ne!(
            p,
            PseudonymKey::new(b"other")
                .derive("analytics")
                .pseudonym("x@example.com")
        );
        assert!(PseudonymKey::with_version(b"m", 2)
            .derive("a")
            .pseudonym("x")
            .starts_with("pz2_"));
        assert!(!format!("{k:?}").contains("master"));
    }
}
