//! Optional value sampling (`--sample N`): reads N records per object through the same
//! upstream (TLS, credential) and runs detectors on the values of the fields discovery could
//! not classify (free text, unknown custom fields): e-mail addresses, phone numbers (E.164 and
//! national forms), IBANs (mod 97), payment cards (Luhn), dates of birth, postal codes.
//!
//! Only counts and field names leave this module: a value is looked at, matched and
//! forgotten; it is never stored, logged, printed or written (a test captures everything the
//! command prints and logs and checks).

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

use super::classify::{Certainty, Suggestion};
use super::yaml::Classified;
use super::{DiscoverError, Discovered, MetadataClient};
use crate::dialect::Dialect;

/// What the detectors found in one field: detector name -> values matched, of `sampled`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Findings {
    pub sampled: u64,
    pub hits: BTreeMap<&'static str, u64>,
}

/// Samples every object's review fields and adds the findings to their suggestions.
///
/// # Errors
/// A failed record read.
pub async fn sample(
    client: &MetadataClient,
    found: &Discovered,
    objects: &mut [Classified],
    n: u32,
) -> Result<(), DiscoverError> {
    let dialect = found.dialect;
    for c in objects.iter_mut() {
        let fields: Vec<String> = c
            .fields
            .iter()
            .filter(|(_, s)| s.certainty == Certainty::Review)
            .map(|(f, _)| f.name.clone())
            .collect();
        if fields.is_empty() || n == 0 {
            continue;
        }
        let records = match read(client, found, &c.object, &fields, n).await {
            Ok(r) => r,
            // an object the CRM will not list (not queryable, no permission): its fields keep
            // their review mark, the evidence says why there is no sample
            Err(DiscoverError::Status { status, .. }) => {
                for (_, s) in c
                    .fields
                    .iter_mut()
                    .filter(|(_, s)| s.certainty == Certainty::Review)
                {
                    s.reasons
                        .push(format!("sample: records not readable ({status})"));
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        for (f, s) in &mut c.fields {
            if s.certainty != Certainty::Review {
                continue;
            }
            let mut found = Findings::default();
            for r in &records {
                let v = match dialect {
                    Dialect::HubSpot => r.get("properties").and_then(|p| p.get(&f.name)),
                    _ => r.get(&f.name),
                };
                if let Some(Value::String(text)) = v {
                    found.sampled += 1;
                    for d in detect(text) {
                        *found.hits.entry(d).or_insert(0) += 1;
                    }
                }
            }
            apply(s, &found);
        }
    }
    Ok(())
}

/// Adds the findings as evidence; a field whose every sampled value is one kind gets that
/// kind's category as a suggestion (free text stays for review: it holds anything).
fn apply(s: &mut Suggestion, found: &Findings) {
    if found.sampled == 0 {
        return;
    }
    if found.hits.is_empty() {
        s.reasons
            .push(format!("sample: nothing detected in {}", found.sampled));
        return;
    }
    let hits: Vec<String> = found
        .hits
        .iter()
        .map(|(d, n)| format!("{n}/{} {d}", found.sampled))
        .collect();
    s.reasons.push(format!("sample: {}", hits.join(", ")));
    let free_text = s.reasons.iter().any(|r| r.starts_with("free text"));
    if free_text {
        return;
    }
    if let Some((d, _)) = found.hits.iter().find(|(_, n)| **n == found.sampled) {
        if let Some(cat) = category(d) {
            s.category = cat.to_string();
            s.certainty = Certainty::Suggested;
        }
    }
}

fn category(detector: &str) -> Option<&'static str> {
    Some(match detector {
        "e-mail" => "user.contact.email",
        "phone" => "user.contact.phone_number",
        "IBAN" => "user.financial.bank_account",
        "payment card" => "user.financial.credit_card",
        "date of birth" => "user.demographic.date_of_birth",
        "postal code" => "user.contact.address.postal_code",
        _ => return None,
    })
}

/// N records of one object with the named fields.
async fn read(
    client: &MetadataClient,
    found: &Discovered,
    o: &super::DiscoveredObject,
    fields: &[String],
    n: u32,
) -> Result<Vec<Value>, DiscoverError> {
    let route = o
        .route_names
        .first()
        .map_or(o.name.as_str(), String::as_str);
    let base = &found.api_base;
    let (path, query, list) = match found.dialect {
        Dialect::Salesforce => {
            let soql = format!("SELECT Id, {} FROM {} LIMIT {n}", fields.join(", "), o.name);
            (
                format!("{base}/query"),
                format!("q={}", utf8_percent_encode(&soql, NON_ALPHANUMERIC)),
                "records",
            )
        }
        Dialect::HubSpot => (
            format!("{base}/objects/{route}"),
            format!("limit={n}&properties={}", fields.join(",")),
            "results",
        ),
        Dialect::Dynamics | Dialect::Generic => (
            format!("{base}/{route}"),
            format!("$top={n}&$select={}", fields.join(",")),
            "value",
        ),
    };
    let answer = client.get(&path, Some(&query)).await?;
    Ok(answer
        .get(list)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// The detectors that match somewhere in `text`.
pub fn detect(text: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '<' | '>'))
        .map(|w| w.trim_end_matches(['.', ':', '!', '?']))
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| is_email(w)) {
        out.push("e-mail");
    }
    if phone(text) {
        out.push("phone");
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if words.iter().any(|w| iban(w)) || iban(&compact) {
        out.push("IBAN");
    }
    if digit_runs(text)
        .iter()
        .any(|d| (13..=19).contains(&d.len()) && luhn(d))
    {
        out.push("payment card");
    }
    if words.iter().any(|w| birth_date(w)) {
        out.push("date of birth");
    }
    if words.len() <= 3 && words.iter().any(|w| postcode(w)) {
        out.push("postal code");
    }
    out
}

fn is_email(w: &str) -> bool {
    let Some((local, domain)) = w.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
}

/// `+` and 8 to 15 digits (E.164, spaces and dashes allowed), or a national number: a
/// leading 0 and 9 to 12 digits.
fn phone(text: &str) -> bool {
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let start = bytes[i];
        if start == '+' || start == '0' || start == '(' {
            let mut digits = String::new();
            let mut j = if start == '+' { i + 1 } else { i };
            while j < bytes.len()
                && (bytes[j].is_ascii_digit() || matches!(bytes[j], ' ' | '-' | '(' | ')' | '/'))
            {
                if bytes[j].is_ascii_digit() {
                    digits.push(bytes[j]);
                }
                j += 1;
            }
            let ok = if start == '+' {
                (8..=15).contains(&digits.len())
            } else {
                digits.starts_with('0') && (10..=13).contains(&digits.len())
            };
            if ok {
                return true;
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    false
}

/// An IBAN: two letters, two check digits, up to 30 alphanumerics, mod 97 == 1.
fn iban(w: &str) -> bool {
    let w: String = w.chars().filter(|c| *c != ' ').collect();
    if !(15..=34).contains(&w.len()) {
        return false;
    }
    let b = w.as_bytes();
    let shape = b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit()
        && w.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !shape {
        return false;
    }
    let rearranged = format!("{}{}", &w[4..], &w[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = if c.is_ascii_digit() {
            c as u32 - '0' as u32
        } else {
            c as u32 - 'A' as u32 + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Runs of digits, spaces and dashes inside allowed (card numbers are written in groups).
fn digit_runs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut gap = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            cur.push(c);
            gap = false;
        } else if matches!(c, ' ' | '-') && !cur.is_empty() && !gap {
            gap = true;
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            gap = false;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// `YYYY-MM-DD` or `DD.MM.YYYY` with a year of a living adult's birth (1900..=2012).
fn birth_date(w: &str) -> bool {
    let parts: Vec<&str> = w.split(['-', '.', '/']).collect();
    let [a, b, c] = parts.as_slice() else {
        return false;
    };
    let num = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|_| s.chars().all(|c| c.is_ascii_digit()))
    };
    let (year, month, day) = match (a.len(), c.len()) {
        (4, 2) => (num(a), num(b), num(c)),
        (2 | 1, 4) => (num(c), num(b), num(a)),
        _ => return false,
    };
    matches!((year, month, day), (Some(y), Some(m), Some(d)) if (1900..=2012).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d))
}

/// A short value that is a postal code: 4-5 digits, or a UK-style outward + inward code.
fn postcode(w: &str) -> bool {
    (4..=5).contains(&w.len()) && w.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detectors_match_what_they_name_and_little_else() {
        assert_eq!(
            detect("Send the catalogue to ada.l@example.org please."),
            ["e-mail"]
        );
        assert_eq!(detect("Call back on +49 30 000 123 after 5pm."), ["phone"]);
        assert_eq!(detect("ring 030 1234 5678"), ["phone"]);
        assert_eq!(detect("DE89 3704 0044 0532 0130 00"), ["IBAN"]);
        assert!(!detect("DE89 3704 0044 0532 0130 01").contains(&"IBAN"));
        assert!(detect("card 4111 1111 1111 1111").contains(&"payment card"));
        assert!(!detect("card 4111 1111 1111 1112").contains(&"payment card"));
        assert_eq!(detect("born 1984-03-12"), ["date of birth"]);
        assert_eq!(detect("10115"), ["postal code"]);
        assert!(detect("Met at the trade show.").is_empty());
        assert!(detect("Order 2024 of 12 items").is_empty());
    }

    #[test]
    fn findings_become_evidence_and_a_uniform_field_a_suggestion() {
        let mut s = Suggestion {
            category: "unclassified".into(),
            certainty: Certainty::Review,
            reasons: vec!["custom field, type string".into()],
            special: false,
            personal_but_system: false,
        };
        let found = Findings {
            sampled: 4,
            hits: BTreeMap::from([("IBAN", 4)]),
        };
        apply(&mut s, &found);
        assert_eq!(s.category, "user.financial.bank_account");
        assert_eq!(s.certainty, Certainty::Suggested);
        assert_eq!(s.reasons[1], "sample: 4/4 IBAN");
        let mut free = Suggestion {
            reasons: vec!["free text (type textarea)".into()],
            ..s.clone()
        };
        free.category = "unclassified".into();
        free.certainty = Certainty::Review;
        apply(
            &mut free,
            &Findings {
                sampled: 10,
                hits: BTreeMap::from([("e-mail", 2), ("phone", 1)]),
            },
        );
        assert_eq!(free.certainty, Certainty::Review);
        assert_eq!(free.reasons[1], "sample: 2/10 e-mail, 1/10 phone");
    }
}
