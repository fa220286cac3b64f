//! Suggests a fideslang category per discovered field, with its reasons.
//!
//! Certainty comes from agreement: a typed field (`email`, `phone`, ids, system stamps) is
//! certain; a name or label match, or the org's classification alone, is a suggestion; free
//! text and custom fields without a cue are left `unclassified` for review (still dropped at
//! run time). Special categories (GDPR Art. 9) win over everything else: a field whose name
//! or label suggests health, religion, ethnicity, union membership, biometrics, sexual
//! orientation or political opinion, or that the org marks highly sensitive, is flagged.

use super::{DiscoveredField, FieldType};

/// How sure discovery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Certainty {
    /// The CRM's type or system role decides it.
    Certain,
    /// A name, label or org classification points at it: a person confirms.
    Suggested,
    /// Nothing reliable: `unclassified` until a person decides.
    Review,
}

/// One field's suggestion.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Suggestion {
    /// A fideslang category, or `unclassified`.
    pub category: String,
    pub certainty: Certainty,
    /// Evidence, each a short phrase (`type email`, `ComplianceGroup PII;GDPR`).
    pub reasons: Vec<String>,
    /// A GDPR Art. 9 suspect.
    pub special: bool,
    /// Would be `system` although the org or the name says it is personal.
    pub personal_but_system: bool,
}

/// Art. 9 cues in names and labels: (needle, category, what).
const SPECIAL: &[(&str, &str, &str)] = &[
    ("allerg", "user.health_and_medical", "health"),
    ("health", "user.health_and_medical", "health"),
    ("medical", "user.health_and_medical", "health"),
    ("diagnos", "user.health_and_medical", "health"),
    ("disab", "user.health_and_medical", "health"),
    ("illness", "user.health_and_medical", "health"),
    ("pregnan", "user.health_and_medical", "health"),
    ("genetic", "user.health_and_medical.genetic", "genetic"),
    ("religio", "user.demographic.religious_belief", "religion"),
    ("faith", "user.demographic.religious_belief", "religion"),
    ("ethnic", "user.demographic.race_ethnicity", "ethnicity"),
    ("race", "user.demographic.race_ethnicity", "ethnicity"),
    (
        "sexual",
        "user.demographic.sexual_orientation",
        "sexual orientation",
    ),
    (
        "orientation",
        "user.demographic.sexual_orientation",
        "sexual orientation",
    ),
    (
        "politic",
        "user.demographic.political_opinion",
        "political opinion",
    ),
    ("biometric", "user.biometric", "biometrics"),
    ("fingerprint", "user.biometric.fingerprint", "biometrics"),
    // no fideslang category for union membership: flagged, left for review
    ("union", "unclassified", "trade union membership"),
];

/// HubSpot sensitiveDataCategories that name an Art. 9 category.
const HS_SPECIAL: &[(&str, &str)] = &[
    ("HEALTH", "user.health_and_medical"),
    ("RELIGION", "user.demographic.religious_belief"),
    ("ETHNICITY", "user.demographic.race_ethnicity"),
    ("RACE", "user.demographic.race_ethnicity"),
    ("SEXUAL_ORIENTATION", "user.demographic.sexual_orientation"),
    ("POLITICAL", "user.demographic.political_opinion"),
    ("BIOMETRIC", "user.biometric"),
    ("GENETIC", "user.health_and_medical.genetic"),
];

/// Name cues for ordinary personal data: (needle, category). First match wins, so the more
/// specific needles come first.
const NAMES: &[(&str, &str)] = &[
    ("firstname", "user.name.first"),
    ("first_name", "user.name.first"),
    ("givenname", "user.name.first"),
    ("lastname", "user.name.last"),
    ("last_name", "user.name.last"),
    ("surname", "user.name.last"),
    ("familyname", "user.name.last"),
    ("fullname", "user.name"),
    ("salutation", "user.name"),
    ("birth", "user.demographic.date_of_birth"),
    ("dob", "user.demographic.date_of_birth"),
    ("gender", "user.demographic.gender"),
    ("language", "user.demographic.language"),
    ("marital", "user.demographic.marital_status"),
    ("iban", "user.financial.bank_account"),
    ("bankaccount", "user.financial.bank_account"),
    ("bank_account", "user.financial.bank_account"),
    ("creditcard", "user.financial.credit_card"),
    ("passport", "user.government_id.passport_number"),
    (
        "nationalid",
        "user.government_id.national_identification_number",
    ),
    ("ssn", "user.government_id.national_identification_number"),
    ("street", "user.contact.address.street"),
    ("address", "user.contact.address.street"),
    ("postalcode", "user.contact.address.postal_code"),
    ("postal_code", "user.contact.address.postal_code"),
    ("zip", "user.contact.address.postal_code"),
    ("city", "user.contact.address.city"),
    ("state", "user.contact.address.state"),
    ("country", "user.contact.address.country"),
    ("jobtitle", "user.job_title"),
    ("title", "user.job_title"),
    ("department", "user.workplace"),
    ("company", "user.workplace"),
    ("optout", "user.privacy_preferences"),
    ("optedout", "user.privacy_preferences"),
    ("donot", "user.privacy_preferences"),
    ("consent", "user.privacy_preferences"),
    ("legal_basis", "user.privacy_preferences"),
    ("fax", "user.contact.fax_number"),
    ("email", "user.contact.email"),
    ("phone", "user.contact.phone_number"),
    ("mobile", "user.contact.phone_number"),
];

/// System stamps and bookkeeping every CRM has.
const SYSTEM_NAMES: &[&str] = &[
    "createddate",
    "createdbyid",
    "lastmodifieddate",
    "lastmodifiedbyid",
    "systemmodstamp",
    "isdeleted",
    "createdon",
    "modifiedon",
    "createdate",
    "lastmodifieddate",
    "hs_createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
    "lastvieweddate",
    "lastreferenceddate",
];

/// Org classification values that say "personal data".
const PERSONAL_GROUPS: &[&str] = &["PII", "GDPR", "PersonalInfo", "CCPA", "COPPA"];

/// Suggests a category for one field of `object` (`Name` of a person object is a name).
pub fn suggest(object_is_person: bool, f: &DiscoveredField) -> Suggestion {
    let mut reasons = org_evidence(f);
    let key = normalise(&f.name);
    let label = normalise(&f.label);
    let org_personal = org_says_personal(f);

    // 1. special categories, from names/labels or the org's own marking
    let by_name = SPECIAL
        .iter()
        .find(|(needle, _, _)| contains_word(&key, needle) || contains_word(&label, needle));
    let by_org = f.sensitive_categories.iter().find_map(|c| {
        HS_SPECIAL
            .iter()
            .find(|(k, _)| c.eq_ignore_ascii_case(k))
            .map(|(_, cat)| *cat)
    });
    let hipaa = f.compliance.iter().any(|g| g.eq_ignore_ascii_case("HIPAA"));
    if by_name.is_some() || by_org.is_some() || hipaa {
        let category = by_org
            .or(by_name.map(|(_, c, _)| *c))
            .unwrap_or("user.health_and_medical");
        if let Some((needle, _, what)) = by_name {
            reasons.push(format!("name matches {needle} ({what}, Art. 9)"));
        }
        let confirmed = by_org.is_some() || hipaa;
        let certainty = match (category, confirmed) {
            ("unclassified", _) => Certainty::Review,
            (_, true) => Certainty::Certain,
            (_, false) => Certainty::Suggested,
        };
        return Suggestion {
            category: category.to_string(),
            certainty,
            reasons,
            special: true,
            personal_but_system: false,
        };
    }
    if f.sensitivity.as_deref() == Some("highly_sensitive") {
        reasons.push("highly sensitive without an Art. 9 cue: which category?".into());
        return review(reasons, true);
    }

    // 2. what the type decides
    let typed = match f.field_type {
        FieldType::Id => Some("system"),
        FieldType::Reference => Some("system"),
        FieldType::Email => Some("user.contact.email"),
        FieldType::Phone => Some("user.contact.phone_number"),
        FieldType::Address => Some("user.contact.address"),
        _ => None,
    };
    if let Some(category) = typed {
        reasons.insert(0, format!("type {}", f.wire_type));
        let personal_but_system = category == "system" && org_personal;
        return Suggestion {
            category: category.to_string(),
            certainty: Certainty::Certain,
            reasons,
            special: false,
            personal_but_system,
        };
    }
    if SYSTEM_NAMES.contains(&key.as_str()) {
        reasons.insert(0, "system stamp".into());
        return Suggestion {
            category: "system".into(),
            certainty: Certainty::Certain,
            reasons,
            special: false,
            personal_but_system: org_personal,
        };
    }

    // 3. names and labels
    let named = NAMES
        .iter()
        .find(|(needle, _)| key.contains(needle) || label.contains(needle))
        .map(|(needle, c)| (*needle, *c))
        .or_else(|| {
            (object_is_person && (key == "name" || label == "name" || label == "fullname"))
                .then_some(("name", "user.name"))
        });
    if let Some((needle, category)) = named {
        // a date field named like a birth date, a text field named like an address part
        let fits = match category {
            "user.demographic.date_of_birth" => {
                matches!(f.field_type, FieldType::Date | FieldType::DateTime)
            }
            "user.privacy_preferences" => f.field_type == FieldType::Bool,
            _ => !matches!(f.field_type, FieldType::Bool | FieldType::Currency),
        };
        if fits {
            reasons.push(format!("name matches {needle}"));
            let certainty = if org_personal {
                Certainty::Certain
            } else {
                Certainty::Suggested
            };
            return Suggestion {
                category: category.to_string(),
                certainty,
                reasons,
                special: false,
                personal_but_system: false,
            };
        }
    }

    // 4. what is left
    match f.field_type {
        FieldType::TextArea => {
            reasons.insert(0, format!("free text (type {})", f.wire_type));
            review(reasons, false)
        }
        _ if org_personal => {
            reasons.push("personal per the org: which category?".into());
            review(reasons, false)
        }
        _ if f.custom => {
            reasons.insert(0, format!("custom field, type {}", f.wire_type));
            review(reasons, false)
        }
        FieldType::Picklist | FieldType::Bool => {
            reasons.insert(0, format!("type {}", f.wire_type));
            Suggestion {
                category: "system.operations".into(),
                certainty: Certainty::Suggested,
                reasons,
                special: false,
                personal_but_system: false,
            }
        }
        FieldType::Url if object_is_person => {
            reasons.insert(0, format!("type {}", f.wire_type));
            Suggestion {
                category: "user.contact.url".into(),
                certainty: Certainty::Suggested,
                reasons,
                special: false,
                personal_but_system: false,
            }
        }
        _ => {
            reasons.insert(0, format!("type {}", f.wire_type));
            review(reasons, false)
        }
    }
}

fn review(reasons: Vec<String>, special: bool) -> Suggestion {
    Suggestion {
        category: "unclassified".into(),
        certainty: Certainty::Review,
        reasons,
        special,
        personal_but_system: false,
    }
}

/// The org's own classification as evidence phrases.
fn org_evidence(f: &DiscoveredField) -> Vec<String> {
    let mut out = Vec::new();
    if !f.compliance.is_empty() {
        out.push(format!("ComplianceGroup {}", f.compliance.join(";")));
    }
    if let Some(s) = &f.security {
        out.push(format!("SecurityClassification {s}"));
    }
    if let Some(s) = &f.sensitivity {
        if f.sensitive_categories.is_empty() {
            out.push(format!("HubSpot {s}"));
        } else {
            out.push(format!("HubSpot {s}: {}", f.sensitive_categories.join(",")));
        }
    }
    out
}

fn org_says_personal(f: &DiscoveredField) -> bool {
    f.compliance
        .iter()
        .any(|g| PERSONAL_GROUPS.iter().any(|p| g.eq_ignore_ascii_case(p)))
        || f.sensitivity.is_some()
        || matches!(
            f.security.as_deref(),
            Some("Confidential" | "Restricted" | "MissionCritical")
        )
}

/// Lowercase, without a custom suffix or publisher prefix, `_` kept.
fn normalise(s: &str) -> String {
    let s = s.to_ascii_lowercase();
    let s = s.strip_suffix("__c").unwrap_or(&s);
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// `needle` at the start of `hay` or after `_` (so `race` does not match `trace`, `union`
/// not `reunion`); long needles anywhere.
fn contains_word(hay: &str, needle: &str) -> bool {
    if needle.len() >= 6 {
        return hay.contains(needle);
    }
    hay.match_indices(needle)
        .any(|(i, _)| i == 0 || hay.as_bytes().get(i - 1) == Some(&b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, label: &str, t: FieldType) -> DiscoveredField {
        DiscoveredField {
            name: name.into(),
            label: label.into(),
            field_type: t,
            wire_type: t.word().into(),
            custom: name.ends_with("__c"),
            path: format!("$.{name}"),
            compliance: Vec::new(),
            security: None,
            sensitivity: None,
            sensitive_categories: Vec::new(),
        }
    }

    #[test]
    fn types_decide_with_certainty() {
        let s = suggest(true, &field("Email", "Email", FieldType::Email));
        assert_eq!(s.category, "user.contact.email");
        assert_eq!(s.certainty, Certainty::Certain);
        assert_eq!(s.reasons, ["type email"]);
        let s = suggest(
            true,
            &field("AccountId", "Account ID", FieldType::Reference),
        );
        assert_eq!(
            (s.category.as_str(), s.certainty),
            ("system", Certainty::Certain)
        );
    }

    #[test]
    fn art9_names_and_org_marks_are_special() {
        let s = suggest(
            true,
            &field("Allergies__c", "Allergies", FieldType::TextArea),
        );
        assert_eq!(s.category, "user.health_and_medical");
        assert_eq!(s.certainty, Certainty::Suggested);
        assert!(s.special);
        let mut f = field("x_notes", "Something", FieldType::TextArea);
        f.sensitivity = Some("highly_sensitive".into());
        f.sensitive_categories = vec!["HEALTH".into()];
        let s = suggest(true, &f);
        assert_eq!(
            (s.category.as_str(), s.certainty),
            ("user.health_and_medical", Certainty::Certain)
        );
        assert!(s
            .reasons
            .iter()
            .any(|r| r == "HubSpot highly_sensitive: HEALTH"));
        let s = suggest(
            true,
            &field("Union_Member__c", "Union member", FieldType::Bool),
        );
        assert_eq!(
            (s.category.as_str(), s.certainty),
            ("unclassified", Certainty::Review)
        );
        assert!(s.special);
        // not every "race" is a race
        let s = suggest(true, &field("Trace_Id__c", "Trace", FieldType::Text));
        assert!(!s.special);
    }

    #[test]
    fn free_text_and_unknown_custom_fields_are_reviewed() {
        let s = suggest(true, &field("Notes__c", "Notes", FieldType::TextArea));
        assert_eq!(
            (s.category.as_str(), s.certainty),
            ("unclassified", Certainty::Review)
        );
        assert!(s.reasons[0].starts_with("free text"));
        let s = suggest(
            true,
            &field("Preferred_Store__c", "Preferred Store", FieldType::Text),
        );
        assert_eq!(s.certainty, Certainty::Review);
    }

    #[test]
    fn names_suggest_and_org_classification_confirms() {
        let s = suggest(true, &field("Birthdate", "Birthdate", FieldType::Date));
        assert_eq!(
            (s.category.as_str(), s.certainty),
            ("user.demographic.date_of_birth", Certainty::Suggested)
        );
        let mut f = field("Birthdate", "Birthdate", FieldType::Date);
        f.compliance = vec!["GDPR".into()];
        let s = suggest(true, &f);
        assert_eq!(s.certainty, Certainty::Certain);
        assert_eq!(s.reasons, ["ComplianceGroup GDPR", "name matches birth"]);
        // a boolean named like an address is no address
        let s = suggest(
            true,
            &field("Has_Address__c", "Has address", FieldType::Bool),
        );
        assert_ne!(s.category, "user.contact.address.street");
    }

    #[test]
    fn personal_fields_classified_system_are_flagged() {
        let mut f = field("Ext_Ref__c", "Reference", FieldType::Reference);
        f.compliance = vec!["PII".into()];
        assert!(suggest(true, &f).personal_but_system);
    }
}
