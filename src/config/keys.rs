//! Every key `zweck.yaml` accepts, derived from the raw types themselves, so the reference in
//! docs/configuration.md cannot drift from them: a test compares the two in both directions.
//!
//! The key list is found by asking the real deserializer: a document with an unknown key at
//! some place makes serde's `deny_unknown_fields` name every field that place accepts
//! ("unknown field `x`, expected one of `a`, `b`"). Walking down each field that answers the
//! same way (directly, as a list item or as a named map entry) visits every nested section. A
//! value that is not a mapping (a string, a number, an untagged choice like `audit.offbox`) is
//! a leaf. Anything the walk does not understand fails the test loudly rather than skipping
//! a section.

use super::raw::RawConfig;

/// A key that no type has, so every struct rejects it.
const PROBE: &str = "zweck_probe_key";

/// How a nested place is reached from its parent.
#[derive(Clone)]
enum Step {
    Field(String),
    /// The items of a list (`[]` in the key).
    Item,
    /// The values of a map with user-chosen names (`<name>` in the key).
    Entry,
}

/// A document with `inner` at the place `steps` lead to, in YAML flow style.
fn document(steps: &[Step], inner: &str) -> String {
    steps
        .iter()
        .rev()
        .fold(inner.to_string(), |acc, step| match step {
            Step::Field(f) => format!("{{ {f}: {acc} }}"),
            Step::Item => format!("[ {acc} ]"),
            Step::Entry => format!("{{ some-name: {acc} }}"),
        })
}

/// The fields the place accepts, if it is a struct; `None` for a leaf.
fn fields_at(steps: &[Step]) -> Option<Vec<String>> {
    let text = document(steps, &format!("{{ {PROBE}: 0 }}"));
    let message = match serde_saphyr::from_str::<RawConfig>(&text) {
        Ok(_) => panic!("the probe key was accepted at {text}"),
        Err(e) => e.to_string(),
    };
    let unknown = format!("unknown field `{PROBE}`");
    let at = message.find(&unknown)?;
    let rest = &message[at + unknown.len()..];
    if rest.starts_with(", there are no fields") {
        return Some(Vec::new());
    }
    let list = rest
        .strip_prefix(", expected one of ")
        .or_else(|| rest.strip_prefix(", expected "))
        .unwrap_or_else(|| panic!("unexpected serde message at {text}: {message}"));
    let list = list.lines().next().unwrap_or_default();
    Some(
        list.split(", ")
            .map(|f| f.trim().trim_matches('`').to_string())
            .collect(),
    )
}

/// Every key below the place `steps` lead to, named `prefix.<field>`.
fn walk(steps: &mut Vec<Step>, prefix: &str, out: &mut Vec<String>) {
    let Some(fields) = fields_at(steps) else {
        return;
    };
    for field in fields {
        let key = if prefix.is_empty() {
            field.clone()
        } else {
            format!("{prefix}.{field}")
        };
        out.push(key.clone());
        steps.push(Step::Field(field));
        // A struct directly, a list of structs, or a map of named structs; else a leaf.
        for (step, suffix) in [
            (None, ""),
            (Some(Step::Item), "[]"),
            (Some(Step::Entry), ".<name>"),
        ] {
            if let Some(step) = step.clone() {
                steps.push(step);
            }
            let nested = fields_at(steps).is_some();
            if nested {
                walk(steps, &format!("{key}{suffix}"), out);
            }
            if step.is_some() {
                steps.pop();
            }
            if nested {
                break;
            }
        }
        steps.pop();
    }
}

/// Every key of `zweck.yaml`, e.g. `limits.idle_timeout`, `apps.<name>.api_keys[].sha256`.
pub(crate) fn all() -> Vec<String> {
    let mut out = Vec::new();
    walk(&mut Vec::new(), "", &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The first cell of every row of the "Every key" table in docs/configuration.md.
    fn documented() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let text = std::fs::read_to_string(path).expect("docs/configuration.md");
        let section = text
            .split("\n## ")
            .find(|s| s.starts_with("Every key"))
            .expect("an `## Every key` section");
        section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(key, _)| key.to_string()))
            .collect()
    }

    #[test]
    fn the_walk_finds_nested_sections_lists_and_named_maps() {
        let keys = super::all();
        for key in [
            "listen",
            "limits.idle_timeout",
            "audit.offbox",
            "budgets.refusal",
            "apps.<name>.api_keys[].sha256_file",
            "upstreams.<name>.auth.oauth2_client_credentials.client_secret_env",
            "upstreams.<name>.transfer_mechanism.type",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} not found in {keys:?}");
        }
    }

    #[test]
    fn docs_list_every_key_and_no_other() {
        let keys: BTreeSet<String> = super::all().into_iter().collect();
        let listed = documented();
        let docs: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(listed.len(), docs.len(), "a key is listed twice");
        let missing: Vec<_> = keys.difference(&docs).collect();
        let unknown: Vec<_> = docs.difference(&keys).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "docs/configuration.md misses {missing:?} and names keys the config does not have: {unknown:?}"
        );
    }

    /// Every key the annotated example in the docs uses exists (its top-level sections at least
    /// are real), so the example cannot teach a key that the loader refuses.
    #[test]
    fn the_docs_example_uses_only_real_top_level_keys() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let text = std::fs::read_to_string(path).expect("docs/configuration.md");
        let example = text
            .split("```yaml\n")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .expect("an example");
        let keys = super::all();
        for line in example.lines() {
            let Some((key, _)) = line.split_once(':') else {
                continue;
            };
            if key.is_empty() || key.starts_with([' ', '#']) {
                continue;
            }
            assert!(keys.iter().any(|k| k == key), "example key {key:?}");
        }
    }
}
