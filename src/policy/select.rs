//! Compiled selectors: JSONPath parsed once (jsonpath-rust) and turned into walkers.
//!
//! Field maps are never evaluated as queries. Each resource's `fields` (and `envelope`) paths
//! are merged into one `FieldNode` tree consulted while the engine walks a record once, key by
//! key. Record selectors take a fast path for the simple shapes CRMs use (`$`, `$.records[*]`,
//! `$.a.b`, `$['a','b']`, `$[0]`) and fall back to jsonpath-rust for anything else; both end
//! up as a `LocNode` tree that marks where records sit.
//!
//! A field selector that misses classifies nothing, so the field stays `unclassified` and the
//! purpose's `otherwise` removes it: a selector bug costs over-redaction, never a leak.

use std::borrow::Cow;

use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use serde_json::Value;

use super::taxonomy::CatId;

/// One step of a simple path relative to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member by name.
    Key(String),
    /// `[*]`: every array item (and, in field maps, every member not named otherwise).
    Any,
}

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("invalid JSONPath: {0}")]
    Syntax(String),
    #[error("{0}")]
    Unsupported(&'static str),
}

fn parse(path: &str) -> Result<JpQuery, SelectorError> {
    // the parser's own message for this common slip is its grammar's rule name (`jp_query`)
    if !path.starts_with('$') {
        let rest = path.trim_start_matches('.');
        let sep = if rest.starts_with('[') { "" } else { "." };
        return Err(SelectorError::Syntax(format!(
            "`{path}`: a JSONPath starts with `$` (did you mean `${sep}{rest}`?)"
        )));
    }
    parse_json_path(path).map_err(|e| {
        // jsonpath-rust errors may quote the input; the input is a selector from a policy
        // file, never body data, so it may appear in diagnostics.
        SelectorError::Syntax(summarise(&e.to_string()))
    })
}

/// pest errors span several lines (a caret drawing); keep the position and the expectation.
fn summarise(s: &str) -> String {
    let pos = s
        .lines()
        .find_map(|l| l.split_once("-->").map(|(_, p)| p))
        .and_then(|p| p.trim().split(':').nth(1))
        .map(|c| format!("at character {c}"));
    let what = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("= "))
        .map(str::to_string);
    match (pos, what) {
        (Some(p), Some(w)) => format!("{p}: {w}"),
        (Some(p), None) => p,
        (None, Some(w)) => w,
        (None, None) => s.lines().next().unwrap_or("").trim().to_string(),
    }
}

fn selector_names(seg: &Segment) -> Option<Vec<Option<String>>> {
    // Some(vec of Some(name) | None for wildcard)
    match seg {
        Segment::Selector(Selector::Name(n)) => Some(vec![Some(n.clone())]),
        Segment::Selector(Selector::Wildcard) => Some(vec![None]),
        Segment::Selectors(sels) => sels
            .iter()
            .map(|s| match s {
                Selector::Name(n) => Some(Some(n.clone())),
                Selector::Wildcard => Some(None),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Parses a field-map path (`$.a.b`, `$.a[*].b`, `$['x','y']`) into the alternatives it names.
pub fn parse_field_path(path: &str) -> Result<Vec<Vec<Step>>, SelectorError> {
    let q = parse(path)?;
    let mut alts: Vec<Vec<Step>> = vec![Vec::new()];
    for seg in &q.segments {
        let names = selector_names(seg).ok_or(SelectorError::Unsupported(
            "field paths may use names, `*`/`[*]` and `['a','b']` only (no filters, indices, slices or `..`)",
        ))?;
        let mut next = Vec::with_capacity(alts.len() * names.len());
        for alt in &alts {
            for n in &names {
                let mut a = alt.clone();
                a.push(match n {
                    Some(n) => Step::Key(n.clone()),
                    None => Step::Any,
                });
                next.push(a);
            }
        }
        alts = next;
    }
    Ok(alts)
}

/// Parses a path that must name exactly one node by member names (`$.attributes.type`).
pub fn parse_key_path(path: &str) -> Result<Vec<String>, SelectorError> {
    let alts = parse_field_path(path)?;
    match alts.as_slice() {
        [one] => one
            .iter()
            .map(|s| match s {
                Step::Key(k) => Ok(k.clone()),
                Step::Any => Err(SelectorError::Unsupported(
                    "this path must name one field: member names only",
                )),
            })
            .collect(),
        _ => Err(SelectorError::Unsupported(
            "this path must name one field: member names only",
        )),
    }
}

/// Follows member names from `v`.
pub fn navigate<'a>(v: &'a Value, keys: &[String]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |cur, k| cur.as_object()?.get(k))
}

/// A classification tree: one walk over a record consults it key by key.
#[derive(Debug, Clone, Default)]
pub struct FieldNode {
    /// Category of this node's whole subtree, unless a deeper node says otherwise.
    pub cat: Option<CatId>,
    /// Named members.
    pub keys: super::FastMap<String, FieldNode>,
    /// `[*]`: array items, and members not named in `keys`.
    pub any: Option<Box<FieldNode>>,
    /// Nested records of this resource sit here (parent objects, child subqueries).
    pub child: Option<usize>,
    /// The inventory entry that set `cat` (`Contact $.Email`), for explain and coverage.
    pub source: Option<std::sync::Arc<str>>,
    /// Where the node sits in its resource's tree, set once the tree is complete
    /// ([`FieldNode::place_all`]); a copy of the tree carries its original's.
    pub place: Option<std::sync::Arc<NodePlace>>,
}

/// The place of a node in its resource's tree: the steps from the root (`None`: `[*]`) and
/// their path as the drift report writes it (`.properties.email`, without the `$`). A report
/// of an unknown field names its parent's place without searching the tree.
#[derive(Debug)]
pub struct NodePlace {
    pub steps: Vec<Option<String>>,
    pub path: String,
}

impl FieldNode {
    /// The node at `steps`, created on the way.
    pub fn entry(&mut self, steps: &[Step]) -> &mut FieldNode {
        let mut node = self;
        for s in steps {
            node = match s {
                Step::Key(k) => node.keys.entry(k.clone()).or_default(),
                Step::Any => node.any.get_or_insert_with(Default::default),
            };
        }
        node
    }

    /// Records in every node below this root (itself included) where it sits: called once
    /// the tree is complete.
    pub fn place_all(&mut self) {
        fn go(node: &mut FieldNode, steps: &mut Vec<Option<String>>, path: &mut String) {
            node.place = Some(std::sync::Arc::new(NodePlace {
                steps: steps.clone(),
                path: path.clone(),
            }));
            let len = path.len();
            for (k, child) in &mut node.keys {
                steps.push(Some(k.clone()));
                push_key(path, k);
                go(child, steps, path);
                steps.pop();
                path.truncate(len);
            }
            if let Some(any) = &mut node.any {
                steps.push(None);
                path.push_str("[*]");
                go(any, steps, path);
                steps.pop();
                path.truncate(len);
            }
        }
        go(self, &mut Vec::new(), &mut String::new());
    }

    /// The node `steps` below this one (`None`: `[*]`), if there is one.
    pub fn at(&self, steps: &[Option<String>]) -> Option<&FieldNode> {
        steps.iter().try_fold(self, |node, step| match step {
            Some(k) => node.keys.get(k),
            None => node.any.as_deref(),
        })
    }

    /// True when deeper nodes exist.
    pub fn has_structure(&self) -> bool {
        !self.keys.is_empty() || self.any.is_some()
    }

    /// The node for member `key` and the category it inherits. An annotation key
    /// `X@Annotation` inherits X's category unless it is named itself.
    pub fn member<'a>(
        node: Option<&'a FieldNode>,
        key: &str,
        inherited: Option<CatId>,
    ) -> (Option<&'a FieldNode>, Option<CatId>) {
        if let Some(n) = node {
            if let Some(c) = n.keys.get(key) {
                return (Some(c), inherited);
            }
            if let Some(pos) = key.find('@') {
                if pos > 0 {
                    if let Some(base) = n.keys.get(&key[..pos]) {
                        return (None, base.cat.or(inherited));
                    }
                }
            }
            if let Some(a) = &n.any {
                return (Some(a), inherited);
            }
        }
        (None, inherited)
    }
}

/// Where records sit in one body.
#[derive(Debug, Clone, Default)]
pub struct LocNode {
    /// The node here is a record.
    pub record: bool,
    /// Named members on the way to records.
    pub keys: super::FastMap<String, LocNode>,
    /// Every array item.
    pub any: Option<Box<LocNode>>,
    /// Specific array items.
    pub idx: super::FastMap<usize, LocNode>,
}

impl LocNode {
    /// The node for array item `i`.
    pub fn item(&self, i: usize) -> Option<&LocNode> {
        self.idx.get(&i).or(self.any.as_deref())
    }
}

/// One step of a record selector on the compiled fast path.
#[derive(Debug, Clone)]
pub(crate) enum FastStep {
    Keys(Vec<String>),
    Items,
    Index(usize),
}

/// A compiled record selector.
#[derive(Debug, Clone)]
pub struct RecordSelector {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Fast(Vec<FastStep>, LocNode),
    Query(JpQuery),
}

impl RecordSelector {
    /// Parses and compiles a record selector.
    pub fn compile(text: &str) -> Result<RecordSelector, SelectorError> {
        let q = parse(text)?;
        let mut steps = Vec::new();
        let mut fast = true;
        for seg in &q.segments {
            match seg {
                Segment::Selector(Selector::Index(i)) if *i >= 0 => {
                    steps.push(FastStep::Index(*i as usize));
                }
                Segment::Selectors(s) if matches!(s.as_slice(), [Selector::Index(i)] if *i >= 0) => {
                    if let [Selector::Index(i)] = s.as_slice() {
                        steps.push(FastStep::Index(*i as usize));
                    }
                }
                _ => match selector_names(seg) {
                    Some(names) if names.iter().all(Option::is_some) => {
                        steps.push(FastStep::Keys(names.into_iter().flatten().collect()));
                    }
                    Some(names) if names.len() == 1 => steps.push(FastStep::Items),
                    _ => {
                        fast = false;
                        break;
                    }
                },
            }
        }
        let kind = if fast {
            let mut root = LocNode::default();
            build_pattern(&mut root, &steps);
            Kind::Fast(steps, root)
        } else {
            Kind::Query(q)
        };
        Ok(RecordSelector {
            text: text.to_string(),
            kind,
        })
    }

    /// The selector as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when this selector takes the compiled fast path.
    pub fn is_fast(&self) -> bool {
        matches!(self.kind, Kind::Fast(..))
    }

    /// The steps and record pattern of a selector on the compiled fast path (None for a
    /// jsonpath-rust query): the span walker (`super::span`) follows them over raw bytes.
    pub(crate) fn fast_parts(&self) -> Option<(&[FastStep], &LocNode)> {
        match &self.kind {
            Kind::Fast(steps, node) => Some((steps, node)),
            Kind::Query(_) => None,
        }
    }

    /// Where the records sit in `body`, or `None` when the selector does not match.
    /// A selector ending in `[*]` matches an existing array even when it is empty, so an
    /// empty page is not mistaken for a single record by a later `$`. In the fast path `[*]`
    /// walks arrays only: the members of an object are never records by wildcard.
    pub fn locate(&self, body: &Value) -> Option<Cow<'_, LocNode>> {
        match &self.kind {
            Kind::Fast(steps, node) => fast_matches(steps, body).then_some(Cow::Borrowed(node)),
            Kind::Query(q) => {
                let found = jsonpath_rust::query::js_path_process(q, body).ok()?;
                if found.is_empty() {
                    return None;
                }
                let mut root = LocNode::default();
                for r in found {
                    let Ok(p) = parse_json_path(&r.path) else {
                        continue;
                    };
                    let mut node = &mut root;
                    for seg in &p.segments {
                        node = match seg {
                            Segment::Selector(Selector::Name(n)) => {
                                node.keys.entry(n.clone()).or_default()
                            }
                            Segment::Selector(Selector::Index(i)) if *i >= 0 => {
                                node.idx.entry(*i as usize).or_default()
                            }
                            _ => break,
                        };
                    }
                    node.record = true;
                }
                Some(Cow::Owned(root))
            }
        }
    }
}

fn build_pattern(node: &mut LocNode, steps: &[FastStep]) {
    match steps.split_first() {
        None => node.record = true,
        Some((FastStep::Keys(ks), rest)) => {
            for k in ks {
                build_pattern(node.keys.entry(k.clone()).or_default(), rest);
            }
        }
        Some((FastStep::Items, rest)) => {
            build_pattern(node.any.get_or_insert_with(Default::default), rest);
        }
        Some((FastStep::Index(i), rest)) => build_pattern(node.idx.entry(*i).or_default(), rest),
    }
}

fn fast_matches(steps: &[FastStep], v: &Value) -> bool {
    match steps.split_first() {
        None => true,
        Some((FastStep::Items, rest)) => match v {
            Value::Array(a) => rest.is_empty() || a.iter().any(|x| fast_matches(rest, x)),
            _ => false,
        },
        Some((FastStep::Keys(ks), rest)) => match v {
            Value::Object(m) => ks
                .iter()
                .any(|k| m.get(k).is_some_and(|x| fast_matches(rest, x))),
            _ => false,
        },
        Some((FastStep::Index(i), rest)) => match v {
            Value::Array(a) => a.get(*i).is_some_and(|x| fast_matches(rest, x)),
            _ => false,
        },
    }
}

/// Renders a member name as a path segment (`.Email` or `['@odata.etag']`).
pub fn push_key(path: &mut String, key: &str) {
    // bytes, not chars: no byte of a non-ASCII character is ASCII alphanumeric
    let plain = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str("['");
        for c in key.chars() {
            match c {
                '\'' => path.push_str("\\'"),
                '\\' => path.push_str("\\\\"),
                c if (c as u32) < 0x20 => path.push_str(&format!("\\u{:04x}", c as u32)),
                c => path.push(c),
            }
        }
        path.push_str("']");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_paths() {
        assert_eq!(
            parse_field_path("$.a.b").expect("ok"),
            vec![vec![Step::Key("a".into()), Step::Key("b".into())]]
        );
        assert_eq!(parse_field_path("$['x','y']").expect("ok").len(), 2);
        assert_eq!(
            parse_field_path("$.e[*].c").expect("ok"),
            vec![vec![
                Step::Key("e".into()),
                Step::Any,
                Step::Key("c".into())
            ]]
        );
        assert_eq!(
            parse_field_path("$['@odata.etag']").expect("ok"),
            vec![vec![Step::Key("@odata.etag".into())]]
        );
        assert!(parse_field_path("$..a").is_err());
        assert!(parse_field_path("$[?@.a]").is_err());
        assert!(parse_field_path("$.a[").is_err());
        assert!(parse_key_path("$.attributes.type").is_ok());
        assert!(parse_key_path("$.a[*]").is_err());
    }

    #[test]
    fn fast_record_selectors() {
        let s = RecordSelector::compile("$.records[*]").expect("ok");
        assert!(s.is_fast());
        assert!(s.locate(&json!({"records": []})).is_some());
        assert!(s.locate(&json!({"records": null})).is_none());
        assert!(s.locate(&json!([1])).is_none());
        let root = RecordSelector::compile("$").expect("ok");
        assert!(root.locate(&json!({})).expect("root").record);
        let items = RecordSelector::compile("$[*]").expect("ok");
        assert!(items.locate(&json!({"a": {}})).is_none());
        assert!(items.locate(&json!([{}])).is_some());
        assert!(RecordSelector::compile("$['a','b']").expect("ok").is_fast());
    }

    #[test]
    fn query_fallback_locates_concrete_nodes() {
        let s = RecordSelector::compile("$.value[?@.kind == 'c']").expect("ok");
        assert!(!s.is_fast());
        let body = json!({"value": [{"kind": "a"}, {"kind": "c"}]});
        let loc = s.locate(&body).expect("match");
        let v = &loc.keys["value"];
        assert!(v.item(1).expect("1").record);
        assert!(v.item(0).is_none());
        assert!(s.locate(&json!({"value": []})).is_none());
    }

    #[test]
    fn annotation_inherits_base() {
        let mut root = FieldNode::default();
        root.entry(&[Step::Key("firstname".into())]).cat = Some(7);
        let (n, c) = FieldNode::member(
            Some(&root),
            "firstname@OData.Community.Display.V1.FormattedValue",
            None,
        );
        assert!(n.is_none());
        assert_eq!(c, Some(7));
        assert_eq!(FieldNode::member(Some(&root), "@odata.etag", None).1, None);
    }
}
