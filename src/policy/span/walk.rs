//! The span walker: the DOM walker of `super::super::engine` over raw bytes.
//!
//! Every method mirrors the DOM walker's method of the same name, in the same order of
//! decisions, so that the two count and decide alike (the differential test in
//! `tests/span_differential.rs` holds them to it). Where the DOM walker changes a value in
//! place, this one writes the output as it goes: a kept value is copied, a transformed one is
//! parsed alone (one scalar, not the record), transformed and written, a removed member is
//! cut from the output again. Whatever the DOM walker would refuse (a `block` rule meeting a
//! value, a missing pseudonym key, a body that is one withheld record) stops the walk with a
//! [`Fallback`], and the caller runs the DOM walker, which gives the refusal.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use super::scan::{self, Checker, Rewrite, Skip, StrHook};
use super::Fallback;
use crate::json::{self, JsonLimits};
use crate::policy::actions::{self, PseudonymKey, PurposeKey};
use crate::policy::engine::{action_index, granted_value, Verdict, A_RECORD_REMOVED};
use crate::policy::query::Shape;
use crate::policy::select::{FieldNode, LocNode};
use crate::policy::set::{Action, ConsentSignal, Inventory, Purpose, Resolved, RuleSlot};
use crate::policy::taxonomy::{CatId, Taxonomy};

/// A member of the root object that counts records (`counts:`), written as received: where
/// it sits in the output, to be rewritten once the walk knows how many records stayed.
pub(super) struct CountSlot {
    /// Start of the member (its comma included, if it has one).
    pub member: usize,
    /// The number's bytes.
    pub value: std::ops::Range<usize>,
}

pub(super) struct SpanWalker<'a, 'b> {
    pub b: &'b [u8],
    pub out: Vec<u8>,
    /// The strict model, checked as the walk goes.
    pub ck: Checker<'b>,
    /// How deep the walk is nested now (the root value is at 0).
    pub depth: usize,
    /// Member names answered before.
    pub memo: Memo<'a, 'b>,
    pub tax: &'a Taxonomy,
    pub inv: &'a Inventory,
    pub purpose: &'a Purpose,
    pub consent: bool,
    pub withheld_null: bool,
    pub observing: bool,
    pub master: Option<&'a PseudonymKey>,
    pub pkey: Option<Arc<PurposeKey>>,
    pub email_cat: Option<CatId>,
    pub actions: [u64; 9],
    pub rule_hits: Vec<u64>,
    pub received: Vec<bool>,
    pub delivered: Vec<bool>,
    pub records: u64,
    pub located_kept: u64,
    pub personal: bool,
    pub changed: bool,
    pub unknown: Vec<(usize, Option<&'a FieldNode>, String)>,
    pub shape: &'a Shape,
    /// The upstream-link rewrite of copied strings.
    pub hook: Option<StrHook<'b>>,
    /// The upstream-link rewrite of the values actions write.
    pub rewrite: Rewrite<'b>,
    /// The resource's count members' names, looked for in the root object (empty: none).
    pub count_keys: Vec<&'a str>,
    /// True until the first object is entered: the root, where count members sit.
    pub at_root: bool,
    pub counts: Vec<CountSlot>,
    /// Member names of the record object about to be walked that Zweck added to the query
    /// (`Shape::consent_added`), to be taken out with their annotations.
    pub strip_next: Vec<&'a str>,
    /// The record being walked whose consent was read by a search ([`ConsentProbe`]).
    pub probe: Option<ConsentProbe>,
    /// The searcher of the last consent field looked for, by resource.
    pub finder: Option<(usize, memchr::memmem::Finder<'static>)>,
    /// Bytes of the last record walked (how far a consent search may look).
    pub last_record: usize,
    /// The last record type read (its string's bytes, quotes included, without escapes) and
    /// its resource.
    pub last_type: Option<(&'b [u8], usize)>,
}

/// A record's consent field found by searching for its name's bytes instead of reading the
/// members of the object that holds it (the record, or an object in it such as HubSpot's
/// `properties`) up to it: what was found counts only once the walk has met that object's
/// members. `name_at` must then be where one of its own members' name starts; `None` (no such
/// name in the rest of the body) holds only if none of its members has an escaped name,
/// which could spell the field. Otherwise the body goes to the DOM path.
pub(super) struct ConsentProbe {
    /// Where the object that holds the field starts.
    object_at: usize,
    /// Where the name found starts (its opening quote), or none found.
    name_at: Option<usize>,
    /// The walk read the object (checking its names), and met a member of it at `name_at`.
    visited: bool,
    met: bool,
}

impl ConsentProbe {
    /// Whether the walk confirmed what the search found.
    fn confirmed(&self) -> bool {
        self.visited && (self.name_at.is_none() || self.met)
    }
}

type Step = Result<(Verdict, usize), Fallback>;

/// What [`FieldNode::member`] answered for one member position of one field node. A page's
/// records repeat the same names in the same order, so most names are answered by comparing
/// their bytes with the last record's at the same position, not by decoding and hashing them.
type Recalled<'a, 'b> = Option<Answer<'a, 'b>>;

/// One remembered name: its bytes (a checked name without escapes) and where they start in
/// the body, its hash for the duplicate check, and the field node's answer.
#[derive(Clone, Copy)]
struct Answer<'a, 'b> {
    name: &'b [u8],
    at: usize,
    hash: u64,
    found: (Option<&'a FieldNode>, Option<CatId>),
    /// The category of the leaf the member's value is, when `found` makes it one whatever the
    /// value (no record and no structure below; `unclassified` for an unknown member, noted
    /// already): such a member is walked without the general dispatch
    /// ([`SpanWalker::leaves`]).
    leaf: Option<CatId>,
}

/// Where [`SpanWalker::leaves`] left an object.
enum Members {
    /// At the member starting at this index, for the general loop.
    Open(usize),
    /// Closed: at its `}`.
    Closed(usize),
}

/// The remembered answers of one field node (under one inherited category), by position.
struct NodeMemo<'a, 'b> {
    node: &'a FieldNode,
    inherited: Option<CatId>,
    /// The resource whose records hold the node (an unknown member is noted per resource).
    res: usize,
    names: Vec<Recalled<'a, 'b>>,
    /// Positions `0..whole` hold the names of one object, which the duplicate check passed:
    /// an object whose names are those, in that order, has no duplicate among them either.
    whole: usize,
}

/// Remembered member answers per field node: a handful of nodes (the record's, its nested
/// objects'), a few hundred positions each; past that nothing is remembered and names are
/// looked up as they come.
pub(super) struct Memo<'a, 'b> {
    nodes: Vec<NodeMemo<'a, 'b>>,
}

impl<'a, 'b> Memo<'a, 'b> {
    const NODES: usize = 32;
    const POSITIONS: usize = 512;

    pub fn new() -> Self {
        Memo { nodes: Vec::new() }
    }

    /// The table of `node` under `inherited` in records of `res`, made on first use (None
    /// when full).
    fn table(
        &mut self,
        node: &'a FieldNode,
        inherited: Option<CatId>,
        res: usize,
    ) -> Option<usize> {
        let found = self
            .nodes
            .iter()
            .position(|m| std::ptr::eq(m.node, node) && m.inherited == inherited && m.res == res);
        if found.is_some() || self.nodes.len() >= Self::NODES {
            return found;
        }
        self.nodes.push(NodeMemo {
            node,
            inherited,
            res,
            names: Vec::new(),
            whole: 0,
        });
        Some(self.nodes.len() - 1)
    }

    /// The name last seen at `pos` of the node of `table`.
    #[inline]
    fn recall(&self, table: usize, pos: usize) -> Option<Answer<'a, 'b>> {
        *self.nodes.get(table)?.names.get(pos)?
    }

    /// How many leading positions of `table` hold one duplicate-free object's names.
    #[inline]
    fn whole(&self, table: usize) -> usize {
        self.nodes.get(table).map_or(0, |m| m.whole)
    }

    /// An object of `table`'s node closed: `names` of its names, all remembered at their
    /// positions (0 when not: one had escapes, or it had more than are remembered).
    fn closed(&mut self, table: usize, names: usize) {
        if let Some(m) = self.nodes.get_mut(table) {
            m.whole = if names <= Self::POSITIONS { names } else { 0 };
        }
    }

    fn remember(&mut self, table: usize, pos: usize, answer: Answer<'a, 'b>) {
        let Some(m) = self.nodes.get_mut(table) else {
            return;
        };
        if pos >= Self::POSITIONS {
            return;
        }
        if m.names.len() <= pos {
            m.names.resize(pos + 1, None);
        }
        m.names[pos] = Some(answer);
    }
}

/// Bytes at `i` that are `null`.
fn is_null(b: &[u8], i: usize) -> bool {
    b.get(i..i + 4) == Some(b"null")
}

/// Limits for parsing one value alone (the document around it was already accepted).
const VALUE_LIMITS: JsonLimits = JsonLimits {
    max_depth: 128,
    max_bytes: usize::MAX,
};

impl<'a> SpanWalker<'a, '_> {
    pub fn walk(
        &mut self,
        i: usize,
        node: Option<&'a FieldNode>,
        inherited: Option<CatId>,
        loc: Option<&LocNode>,
        res: usize,
    ) -> Step {
        if let Some(l) = loc {
            if l.record {
                return self.record(i, res, false);
            }
        }
        if let Some(child) = node.and_then(|n| n.child) {
            return self.record(i, child, true);
        }
        let cat = node.and_then(|n| n.cat).or(inherited);
        let structured = loc.is_some() || node.is_some_and(FieldNode::has_structure);
        if structured {
            match self.b.get(i) {
                Some(b'{') => {
                    let end = self.object(i, node, cat, loc, res)?;
                    return Ok((Verdict::Keep, end));
                }
                Some(b'[') => {
                    let end = self.array(i, node, cat, loc, res)?;
                    return Ok((Verdict::Keep, end));
                }
                _ => {}
            }
        }
        let cat = cat.unwrap_or_else(|| self.tax.unclassified());
        self.leaf(i, cat, res)
    }

    /// Cuts the output back to `mark` (a member or item removed), with any count slot in it.
    fn cut(&mut self, mark: usize) {
        self.out.truncate(mark);
        while self.counts.last().is_some_and(|c| c.member >= mark) {
            self.counts.pop();
        }
    }

    fn object(
        &mut self,
        i: usize,
        node: Option<&'a FieldNode>,
        cat: Option<CatId>,
        loc: Option<&LocNode>,
        res: usize,
    ) -> Result<usize, Fallback> {
        let b = self.b;
        self.enter()?;
        let root = std::mem::replace(&mut self.at_root, false);
        let strip = std::mem::take(&mut self.strip_next);
        let mut stripped = false;
        if let Some(p) = self.probe.as_mut().filter(|p| p.object_at == i) {
            p.visited = true;
        }
        self.out.push(b'{');
        let mut j = scan::ws(b, i + 1);
        let mut first = true;
        if b.get(j) == Some(&b'}') {
            self.out.push(b'}');
            self.depth -= 1;
            return Ok(j + 1);
        }
        let names = self.ck.open();
        let memo = node.and_then(|n| self.memo.table(n, cat, res));
        let mut pos = 0usize;
        // While the names are those of the last whole object at this node, in its order, they
        // cannot repeat each other, and they are not added to the duplicate check; at the
        // first that differs, the ones before it are (`replay`). Not with members to strip,
        // which are checked but take no position.
        let whole = match memo {
            Some(t) if strip.is_empty() => self.memo.whole(t),
            _ => 0,
        };
        let mut deferred = whole > 0;
        // every name is remembered at its position (none had escapes or was stripped)
        let mut remembered = strip.is_empty();
        // members that are leaves, under names repeated from the last record, take a shorter way
        let fast = memo.filter(|_| loc.is_none() && !root);
        loop {
            if let Some(t) = fast.filter(|_| deferred && pos < whole) {
                match self.leaves(t, whole, i, j, &mut pos, &mut first, res)? {
                    Members::Open(at) => j = at,
                    Members::Closed(at) => {
                        j = at;
                        break;
                    }
                }
            }
            // the name the last record had here, when it is the same bytes
            let recalled = memo.and_then(|t| self.memo.recall(t, pos));
            let (kend, escaped, hash, known) =
                match recalled.and_then(|r| self.ck.same_name(j, r.name).map(|e| (e, r))) {
                    Some((end, r)) => {
                        if !(deferred && pos < whole) {
                            if deferred {
                                self.replay(memo, pos)?;
                                deferred = false;
                            }
                            self.ck
                                .add_known(j + 1, r.name.len(), r.hash)
                                .ok_or(Fallback::Bytes)?;
                        }
                        (end, false, r.hash, Some(r.found))
                    }
                    None => {
                        if deferred {
                            self.replay(memo, pos)?;
                            deferred = false;
                        }
                        let (end, escaped, hash) = self.ck.name(j).ok_or(Fallback::Bytes)?;
                        remembered &= !escaped;
                        (end, escaped, hash, None)
                    }
                };
            if let Some(p) = self.probe.as_mut().filter(|p| p.object_at == i) {
                if escaped {
                    // an escaped name could spell the consent field the search did not find
                    return Err(Fallback::Shape);
                }
                p.met |= p.name_at == Some(j);
            }
            let raw = b.get(j + 1..kend - 1).ok_or(Fallback::Bytes)?;
            // the name as text, only where it is needed (most names are matched as bytes)
            let text = || -> Result<Cow<'_, str>, Fallback> {
                if escaped {
                    scan::decode(b, j, kend, true).ok_or(Fallback::Bytes)
                } else {
                    std::str::from_utf8(raw)
                        .map(Cow::Borrowed)
                        .map_err(|_| Fallback::Bytes)
                }
            };
            let colon = scan::ws(b, kend);
            if b.get(colon) != Some(&b':') {
                return Err(Fallback::Bytes);
            }
            let v = scan::ws(b, colon + 1);
            if !strip.is_empty() && self.strip_member(&strip, &text()?, v, res) {
                stripped = true;
                let end = self.skip(v)?;
                j = scan::ws(b, end);
            } else {
                let mark = self.out.len();
                if !first {
                    self.out.push(b',');
                }
                if escaped {
                    scan::write_str(&text()?, &mut self.out);
                } else {
                    self.out.extend_from_slice(&b[j..kend]);
                }
                self.out.push(b':');
                let value_at = self.out.len();
                let (cn, ccat) = match node {
                    None => (None, cat),
                    Some(_) if !escaped => match known {
                        Some(found) => found,
                        None => {
                            let found = FieldNode::member(node, &text()?, cat);
                            if let Some(t) = memo {
                                let answer = Answer {
                                    name: raw,
                                    at: j + 1,
                                    hash,
                                    found,
                                    leaf: self.leaf_of(found),
                                };
                                self.memo.remember(t, pos, answer);
                            }
                            found
                        }
                    },
                    Some(_) => FieldNode::member(node, &text()?, cat),
                };
                pos += 1;
                if cn.is_none() && ccat.is_none() {
                    self.note_unknown(res, node, &text()?);
                }
                let cl = match loc {
                    Some(l) => l.keys.get(text()?.as_ref()),
                    None => None,
                };
                let (verdict, end) = self.walk(v, cn, ccat, cl, res)?;
                match verdict {
                    Verdict::Keep => first = false,
                    _ if self.observing => first = false,
                    Verdict::Remove => self.cut(mark),
                    Verdict::RemoveRecord => {
                        self.cut(value_at);
                        self.out.extend_from_slice(b"null");
                        first = false;
                    }
                }
                let kept_number = verdict == Verdict::Keep
                    && matches!(self.out.get(value_at), Some(b'-' | b'0'..=b'9'));
                if root
                    && kept_number
                    && !self.count_keys.is_empty()
                    && self.count_keys.contains(&text()?.as_ref())
                {
                    self.counts.push(CountSlot {
                        member: mark,
                        value: value_at..self.out.len(),
                    });
                }
                j = scan::ws(b, end);
            }
            match b.get(j) {
                Some(b',') => j = scan::ws(b, j + 1),
                Some(b'}') => break,
                _ => return Err(Fallback::Bytes),
            }
        }
        self.ck.close(names).ok_or(Fallback::Bytes)?;
        if let Some(t) = memo {
            self.memo.closed(t, if remembered { pos } else { 0 });
        }
        self.depth -= 1;
        if stripped {
            self.changed = true;
        }
        self.out.push(b'}');
        Ok(j + 1)
    }

    /// The members of the object at `i` from the one at `j` (position `pos`) on, for as long
    /// as each has the name the last whole object of memo table `t` had at its position
    /// (before `whole`) and that name's value is a leaf ([`Answer::leaf`]): the general
    /// loop's steps for such a member without its dispatch. Such names are not added to the
    /// duplicate check (the general loop defers them alike, see `object`). Not for the root
    /// object, an object a locator reads, or one with members to strip.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn leaves(
        &mut self,
        t: usize,
        whole: usize,
        i: usize,
        mut j: usize,
        pos: &mut usize,
        first: &mut bool,
        res: usize,
    ) -> Result<Members, Fallback> {
        let b = self.b;
        let probed = self.probe.as_ref().is_some_and(|p| p.object_at == i);
        while *pos < whole {
            let Some(r) = self.memo.recall(t, *pos) else {
                break;
            };
            let Some(cat) = r.leaf else {
                break;
            };
            let Some(kend) = self.ck.same_name(j, r.name) else {
                break;
            };
            if probed {
                if let Some(p) = self.probe.as_mut() {
                    p.met |= p.name_at == Some(j);
                }
            }
            let colon = scan::ws(b, kend);
            if b.get(colon) != Some(&b':') {
                return Err(Fallback::Bytes);
            }
            let v = scan::ws(b, colon + 1);
            let mark = self.out.len();
            // an observed record's output is cut again: its members need not be written
            if !self.observing {
                if !*first {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(&b[j..kend]);
                self.out.push(b':');
            }
            let value_at = self.out.len();
            *pos += 1;
            let (verdict, end) = self.leaf(v, cat, res)?;
            match verdict {
                Verdict::Keep => *first = false,
                _ if self.observing => *first = false,
                Verdict::Remove => self.cut(mark),
                Verdict::RemoveRecord => {
                    self.cut(value_at);
                    self.out.extend_from_slice(b"null");
                    *first = false;
                }
            }
            j = scan::ws(b, end);
            match b.get(j) {
                Some(b',') => j = scan::ws(b, j + 1),
                Some(b'}') => return Ok(Members::Closed(j)),
                _ => return Err(Fallback::Bytes),
            }
        }
        Ok(Members::Open(j))
    }

    /// The category of the leaf a member with `found` (its field node and inherited
    /// category) is, when `walk` would make it one whatever its value ([`Answer::leaf`]).
    fn leaf_of(&self, found: (Option<&'a FieldNode>, Option<CatId>)) -> Option<CatId> {
        match found {
            // an unknown member was noted (for its node and resource, those of the memo
            // table) when its answer was remembered
            (None, None) => Some(self.tax.unclassified()),
            (Some(n), _) if n.child.is_some() || n.has_structure() => None,
            (n, inherited) => Some(
                n.and_then(|n| n.cat)
                    .or(inherited)
                    .unwrap_or_else(|| self.tax.unclassified()),
            ),
        }
    }

    /// Adds the names at positions `0..upto` of `memo`'s table to the open object's duplicate
    /// check: the names this object had there, matched but not added yet.
    fn replay(&mut self, memo: Option<usize>, upto: usize) -> Result<(), Fallback> {
        let t = memo.ok_or(Fallback::Bytes)?;
        for p in 0..upto {
            let r = self.memo.recall(t, p).ok_or(Fallback::Bytes)?;
            self.ck
                .add_known(r.at, r.name.len(), r.hash)
                .ok_or(Fallback::Bytes)?;
        }
        Ok(())
    }

    /// One level deeper (an object or array), within the strict model's depth.
    fn enter(&mut self) -> Result<(), Fallback> {
        self.depth += 1;
        if self.depth > self.ck.max_depth {
            return Err(Fallback::Bytes);
        }
        Ok(())
    }

    /// Checks the value at `i` without writing it; its end.
    fn skip(&mut self, i: usize) -> Result<usize, Fallback> {
        self.ck
            .value(i, self.depth, &mut Skip, None)
            .ok_or(Fallback::Bytes)
    }

    /// A member Zweck added to the query to read consent (or one of its annotations,
    /// `field@...`): left out, and received when not null (`strip_added` of the DOM walker).
    fn strip_member(&mut self, strip: &[&'a str], key: &str, v: usize, res: usize) -> bool {
        let Some(name) = strip.iter().find(|s| {
            key.strip_prefix(**s)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
        }) else {
            return false;
        };
        if !is_null(self.b, v) {
            if let Some(cat) = self.inv.resources[res]
                .fields
                .keys
                .get(*name)
                .and_then(|n| n.cat)
            {
                self.received[cat as usize] = true;
            }
        }
        true
    }

    fn array(
        &mut self,
        i: usize,
        node: Option<&'a FieldNode>,
        cat: Option<CatId>,
        loc: Option<&LocNode>,
        res: usize,
    ) -> Result<usize, Fallback> {
        let b = self.b;
        self.enter()?;
        self.at_root = false;
        let item_node = node.and_then(|n| n.any.as_deref());
        self.out.push(b'[');
        let mut j = scan::ws(b, i + 1);
        if b.get(j) == Some(&b']') {
            self.out.push(b']');
            self.depth -= 1;
            return Ok(j + 1);
        }
        let mut first = true;
        let mut idx = 0usize;
        loop {
            let cl = loc.and_then(|l| l.item(idx));
            idx += 1;
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            let value_at = self.out.len();
            let located = cl.is_some_and(|l| l.record);
            let (verdict, end) = self.walk(j, item_node, cat, cl, res)?;
            if verdict == Verdict::RemoveRecord && located && self.withheld_null {
                self.cut(value_at);
                self.out.extend_from_slice(b"null");
                first = false;
            } else if verdict == Verdict::Keep || self.observing {
                first = false;
            } else {
                self.cut(mark);
            }
            j = scan::ws(b, end);
            match b.get(j) {
                Some(b',') => j = scan::ws(b, j + 1),
                Some(b']') => break,
                _ => return Err(Fallback::Bytes),
            }
        }
        self.depth -= 1;
        self.out.push(b']');
        Ok(j + 1)
    }

    #[cold]
    fn note_unknown(&mut self, res: usize, parent: Option<&'a FieldNode>, key: &str) {
        let seen = self.unknown.iter().any(|(r, p, k)| {
            *r == res && k == key && p.map(std::ptr::from_ref) == parent.map(std::ptr::from_ref)
        });
        if !seen && self.unknown.len() < crate::policy::engine::MAX_UNKNOWN_PER_BODY {
            self.unknown.push((res, parent, key.to_string()));
        }
    }

    /// Removes the record at `i`, which ends at `end`.
    fn remove_record(&mut self, end: usize, rule: RuleSlot) -> Step {
        if !self.observing {
            let slot = self.purpose.slot(rule);
            self.actions[A_RECORD_REMOVED] += 1;
            self.rule_hits[slot] += 1;
            self.changed = true;
        }
        Ok((Verdict::RemoveRecord, end))
    }

    /// Walks a removed record only to learn which categories were received; its end.
    fn observe(&mut self, i: usize, res: usize) -> Result<usize, Fallback> {
        let was = std::mem::replace(&mut self.observing, true);
        let mark = self.out.len();
        let fields = &self.inv.resources[res].fields;
        let (_, end) = self.walk(i, Some(fields), None, None, res)?;
        self.cut(mark);
        self.observing = was;
        Ok(end)
    }

    fn record(&mut self, i: usize, res: usize, child: bool) -> Step {
        let b = self.b;
        if is_null(b, i) {
            self.out.extend_from_slice(b"null");
            return Ok((Verdict::Keep, i + 4));
        }
        if b.get(i) != Some(&b'{') {
            let u = self.tax.unclassified();
            return self.leaf(i, u, res);
        }
        if self.shape.aggregate.is_some() && !child {
            return Err(Fallback::Shape);
        }
        let mut res = res;
        if let Some(tk) = &self.inv.resources[res].type_key {
            if let Some(t) = scan::navigate(b, i, tk) {
                if b.get(t) != Some(&b'"') {
                    let end = self.skip(i)?;
                    return self.remove_record(end, RuleSlot::UnknownType);
                }
                let (end, escaped) = scan::string_end(b, t).ok_or(Fallback::Bytes)?;
                let raw = b.get(t..end).ok_or(Fallback::Bytes)?;
                // a page's records mostly share their type: the same bytes, the same resource
                let known = self
                    .last_type
                    .filter(|(last, _)| !escaped && *last == raw)
                    .map(|(_, r)| r);
                let found = match known {
                    Some(r) => Some(r),
                    None => {
                        let name = scan::decode(b, t, end, escaped).ok_or(Fallback::Bytes)?;
                        let found = self.inv.by_type.get(name.as_ref()).copied();
                        if let (Some(r), false) = (found, escaped) {
                            self.last_type = Some((raw, r));
                        }
                        found
                    }
                };
                match found {
                    Some(r) => res = r,
                    None => {
                        let end = self.skip(i)?;
                        return self.remove_record(end, RuleSlot::UnknownType);
                    }
                }
            }
        }
        // a record nested in this one has its own probe; this one's is put back after it
        let outer = self.probe.take();
        let step = self.consented_record(i, res, child);
        let probe = std::mem::replace(&mut self.probe, outer);
        let step = step?;
        if probe.is_some_and(|p| !p.confirmed()) {
            // the name found is not the member looked for, or the object was not read: the
            // record's consent may have been misread
            return Err(Fallback::Shape);
        }
        self.last_record = step.1.saturating_sub(i);
        Ok(step)
    }

    /// Where the consent field `sig` of the record at `i` holds its value, if the record has
    /// it. The objects on its path are read member by member; in the last, the field is found
    /// by searching the bytes for its quoted name, with a [`ConsentProbe`] for the walk to
    /// confirm.
    fn consent_at(&mut self, i: usize, res: usize, sig: &ConsentSignal) -> Option<usize> {
        let b = self.b;
        let Some((key, path)) = sig.field.split_last() else {
            return scan::navigate(b, i, &sig.field);
        };
        let holder = scan::navigate(b, i, path)?;
        if b.get(holder) != Some(&b'{') {
            return None;
        }
        let i = holder;
        if self.finder.as_ref().is_none_or(|(r, _)| *r != res) {
            if !key.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
                return scan::member(b, i, key);
            }
            let needle = format!("\"{key}\"").into_bytes();
            self.finder = Some((res, memchr::memmem::Finder::new(&needle).into_owned()));
        }
        let (_, finder) = self.finder.as_ref()?;
        // as far as two records like the last, at least 4 KiB; past that, read the members
        let reach = i.saturating_add(self.last_record.saturating_mul(2).max(4096));
        let window = b.get(i..reach.min(b.len()))?;
        let mut from = 0;
        let found = loop {
            let Some(at) = finder.find(window.get(from..)?).map(|p| i + from + p) else {
                break None;
            };
            let colon = scan::ws(b, at + finder.needle().len());
            if b.get(colon) == Some(&b':') {
                break Some((at, scan::ws(b, colon + 1)));
            }
            // a string value that reads like the name
            from = at + 1 - i;
        };
        if found.is_none() && reach < b.len() {
            return scan::member(b, i, key);
        }
        self.probe = Some(ConsentProbe {
            object_at: i,
            name_at: found.map(|(at, _)| at),
            visited: false,
            met: false,
        });
        found.map(|(_, value)| value)
    }

    /// The record at `i` of resource `res` once its type is known: removed (and observed)
    /// when it lacks a consent the purpose requires, else walked. [`SpanWalker::record`]
    /// confirms the consent search's probe after it.
    fn consented_record(&mut self, i: usize, res: usize, child: bool) -> Step {
        let b = self.b;
        if self.consent && !self.observing {
            let single = self.purpose.requires_consent.len() == 1;
            for (idx, c) in self.purpose.requires_consent.iter().enumerate() {
                let granted = match self.inv.resources[res].consent.get(c) {
                    Some(sig) => {
                        let at = if single {
                            self.consent_at(i, res, sig)
                        } else {
                            scan::navigate(b, i, &sig.field)
                        };
                        let v = match at {
                            Some(at) => Some(self.parse_at(at)?.0),
                            None => None,
                        };
                        granted_value(sig, v.as_ref(), self.inv.dialect)
                    }
                    None => child,
                };
                if !granted {
                    let end = self.observe(i, res)?;
                    return self.remove_record(end, RuleSlot::Consent(idx));
                }
            }
        }
        if self.consent && !self.observing {
            self.strip_next = self.stripped_names(res)?;
        }
        let saved = std::mem::replace(&mut self.personal, false);
        let fields = &self.inv.resources[res].fields;
        let (_, end) = self.walk(i, Some(fields), None, None, res)?;
        self.strip_next.clear();
        if self.personal && !self.observing {
            self.records += 1;
        }
        if !child && !self.observing {
            self.located_kept += 1;
        }
        self.personal = saved;
        Ok((Verdict::Keep, end))
    }

    /// The top-level member names Zweck added to the query for records of `res`. A deeper
    /// added field (or a resource whose record is no object to the field map) is left to the
    /// DOM walker.
    fn stripped_names(&self, res: usize) -> Result<Vec<&'a str>, Fallback> {
        let shape: &'a Shape = self.shape;
        let fields = &self.inv.resources[res].fields;
        let mut names = Vec::new();
        for (r, path) in &shape.consent_added {
            if *r != res {
                continue;
            }
            match path.as_slice() {
                [one] if fields.has_structure() && fields.child.is_none() => {
                    names.push(one.as_str());
                }
                [] => {}
                _ => return Err(Fallback::Shape),
            }
        }
        Ok(names)
    }

    /// The value at `i`, parsed alone, and its end.
    fn parse_at(&mut self, i: usize) -> Result<(Value, usize), Fallback> {
        if self.b.get(i) == Some(&b'"') {
            // most transformed values are strings: decoded without a parser
            let (end, escaped) = scan::string(self.b, i, self.ck.text).ok_or(Fallback::Bytes)?;
            let text = scan::decode(self.b, i, end, escaped).ok_or(Fallback::Bytes)?;
            return Ok((Value::String(text.into_owned()), end));
        }
        let end = self.skip(i)?;
        // a consent flag is read once per record: literals need no parser
        let v = match &self.b[i..end] {
            b"true" => Value::Bool(true),
            b"false" => Value::Bool(false),
            b"null" => Value::Null,
            bytes => json::parse(bytes, &VALUE_LIMITS).map_err(|_| Fallback::Bytes)?,
        };
        Ok((v, end))
    }

    /// Writes a value an action produced, links rewritten as the proxy rewrites them.
    fn write_value(&mut self, mut v: Value) {
        if let Value::String(s) = &v {
            if let Some(new) = (self.rewrite)(s) {
                v = Value::String(new);
            }
        }
        // writing a Value into a Vec cannot fail
        let _ = serde_json::to_writer(&mut self.out, &v);
    }

    fn copy(&mut self, i: usize) -> Step {
        let end = self
            .ck
            .value(i, self.depth, &mut self.out, self.hook)
            .ok_or(Fallback::Bytes)?;
        Ok((Verdict::Keep, end))
    }

    fn leaf(&mut self, i: usize, cat: CatId, res: usize) -> Step {
        let null = is_null(self.b, i);
        if !null {
            self.received[cat as usize] = true;
            if !self.tax.is_system(cat) {
                self.personal = true;
            }
        }
        if self.observing {
            // what an observed record would write is cut again: only its end matters
            let end = self.skip(i)?;
            return Ok((Verdict::Keep, end));
        }
        let p = self.purpose;
        let (rule, action): (RuleSlot, &'a Action) = if cat == self.tax.unclassified() {
            if self.inv.resources[res].keep_unclassified {
                (RuleSlot::UnclassifiedKeep, &Action::Keep)
            } else {
                (RuleSlot::Otherwise, &p.otherwise)
            }
        } else {
            match p.by_cat[cat as usize] {
                Resolved::Rule(r) => (RuleSlot::Field(r as usize), &p.rules[r as usize].action),
                Resolved::Otherwise => (RuleSlot::Otherwise, &p.otherwise),
                Resolved::System => (RuleSlot::System, &Action::Keep),
            }
        };
        let slot = p.slot(rule);
        self.rule_hits[slot] += 1;
        self.actions[action_index(action)] += 1;
        let new = match action {
            Action::Keep => {
                if !null {
                    self.delivered[cat as usize] = true;
                }
                return self.copy(i);
            }
            Action::Drop => {
                self.changed = true;
                let end = self.skip(i)?;
                return Ok((Verdict::Remove, end));
            }
            Action::Block => {
                if !null {
                    return Err(Fallback::Refusal);
                }
                return self.copy(i);
            }
            Action::Redact(s) => {
                let new = s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()));
                let (old, end) = self.parse_at(i)?;
                if old != new {
                    self.changed = true;
                }
                self.write_value(new);
                return Ok((Verdict::Keep, end));
            }
            _ if null => return self.copy(i),
            Action::Pseudonymise if self.b.get(i) == Some(&b'"') => {
                // a string, the common case: its text is hashed as it stands in the body
                if self.pkey.is_none() {
                    self.pkey = self.master.map(|k| k.derive(&self.purpose.name));
                }
                let Some(k) = &self.pkey else {
                    return Err(Fallback::Refusal);
                };
                let (end, escaped) =
                    scan::string(self.b, i, self.ck.text).ok_or(Fallback::Bytes)?;
                let text = scan::decode(self.b, i, end, escaped).ok_or(Fallback::Bytes)?;
                let pseudonym = k.pseudonym(&text);
                self.delivered[cat as usize] = true;
                if *text != pseudonym {
                    self.changed = true;
                }
                match (self.rewrite)(&pseudonym) {
                    Some(link) => scan::write_str(&link, &mut self.out),
                    None => scan::write_str(&pseudonym, &mut self.out),
                }
                end
            }
            _ => {
                let (old, end) = self.parse_at(i)?;
                let new = match action {
                    Action::Mask { keep_last } => {
                        let email = self
                            .email_cat
                            .is_some_and(|e| self.tax.lineage(cat).any(|c| c == e));
                        actions::mask(&old, *keep_last, email)
                    }
                    Action::Truncate(n) => actions::truncate(&old, *n),
                    Action::Generalise(g) => actions::generalise(&old, g),
                    _ => {
                        if self.pkey.is_none() {
                            self.pkey = self.master.map(|k| k.derive(&self.purpose.name));
                        }
                        match &self.pkey {
                            Some(k) => actions::pseudonymise(&old, k),
                            None => return Err(Fallback::Refusal),
                        }
                    }
                };
                if !new.is_null() {
                    self.delivered[cat as usize] = true;
                }
                if old != new {
                    self.changed = true;
                }
                self.write_value(new);
                end
            }
        };
        Ok((Verdict::Keep, new))
    }
}
