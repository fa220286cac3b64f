//! The span path: a governed JSON response minimised over its bytes, without a DOM.
//!
//! The DOM path (`crate::json::parse` into a `serde_json::Value`, `engine::apply`,
//! `serde_json` to write it again) builds a tree of the whole page, which costs several times
//! the page's bytes and most of a governed request's CPU. This path reads the page once
//! instead: it walks it with the compiled locators and field trees, copying what is kept and
//! writing anew only the values an action changes, and checks every byte it walks, copies
//! or skips against the strict document model as it goes (docs/json.md: grammar, UTF-8, BOM,
//! depth, duplicate keys on the decoded key, lone surrogates, trailing content; `scan`). A
//! record selector or a record's type and consent fields are read ahead on bytes not yet
//! checked; a bad byte anywhere still ends the walk with a fallback before anything is used. Its output is byte-identical to the DOM
//! path's (same member order, same escaping, same number spelling), its outcome identical
//! (records, categories, actions and rules counted by the same [`Counted`]).
//!
//! It never decides anything the DOM path would decide differently: whatever it does not
//! cover it hands back as a [`Fallback`] before writing anything the caller uses, and the
//! caller runs the DOM path, whose answer (a refusal included) then stands. Falling back is
//! never a weaker check, only a slower one. It falls back for:
//! - a body the validator is not sure about (any malformed body: the DOM path names the
//!   refusal), larger than `max_bytes`, or using serde_json's private number marker as a key;
//! - a refusal (a `block` rule meeting a value, a missing pseudonym key, a body that is one
//!   withheld record, a delete of a `writes: deny` purpose);
//! - `mode: shadow` purposes, tunnels, aggregate answers, consent fields Zweck added below
//!   a record's top level, record selectors that are jsonpath-rust queries and counts below
//!   the root object.
//!
//! Requests (writes) stay on the DOM path: they are small, and a write's refusals name paths.
//! `tests/span_differential.rs` runs both paths on the same bytes and requires the same
//! bytes, the same outcome and the same fallbacks-to-refusals.
//!
//! [`Counted`]: super::engine::Counted

mod scan;
mod walk;

use super::engine::{Counted, Outcome, Verdict};
use super::query::Shape;
use super::select::{FastStep, LocNode};
use super::set::{Counts, OpKind, Operation, PolicySet, Purpose};
use super::{Mode, PseudonymKey, Writes};
use crate::json::JsonLimits;
use crate::links::LinkRewriter;
use scan::{Checker, StrHook};
use walk::{Memo, SpanWalker};

/// Why the span path handed a body back to the DOM path (never an error to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The bytes are not certainly valid under the strict model (the DOM path refuses them,
    /// or reads a form this path leaves alone).
    Bytes,
    /// The DOM path refuses the exchange (and says why).
    Refusal,
    /// A shape this path does not walk (aggregates, deep consent fields, deep counts).
    Shape,
    /// A record selector that is a jsonpath-rust query.
    Selector,
    /// Shadow purposes and tunnels.
    Mode,
}

impl Fallback {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Bytes => "bytes",
            Fallback::Refusal => "refusal",
            Fallback::Shape => "shape",
            Fallback::Selector => "selector",
            Fallback::Mode => "mode",
        }
    }
}

/// A response minimised on the span path.
#[derive(Debug)]
pub struct Minimised {
    /// The body as the DOM path would have written it.
    pub body: Vec<u8>,
    pub outcome: Outcome,
}

/// The span path of [`super::decide::response_body`] followed by the proxy's link rewrite:
/// `links` (when given) rewrites string values as [`LinkRewriter::rewrite_json`] does after
/// the DOM path. `limits` are the strict model's.
#[allow(clippy::too_many_arguments)]
pub fn response(
    set: &PolicySet,
    purpose: &Purpose,
    op: &Operation,
    body: &[u8],
    limits: &JsonLimits,
    key: Option<&PseudonymKey>,
    shape: &Shape,
    links: Option<&LinkRewriter>,
) -> Result<Minimised, Fallback> {
    if purpose.mode == Mode::Shadow || op.tunnel.is_some() {
        return Err(Fallback::Mode);
    }
    if op.op == OpKind::Delete && purpose.writes == Writes::Deny {
        return Err(Fallback::Refusal);
    }
    if shape.aggregate.is_some() {
        return Err(Fallback::Shape);
    }
    if body.len() > limits.max_bytes {
        return Err(Fallback::Bytes);
    }
    let inv = set.inventory(op.dialect).ok_or(Fallback::Refusal)?;
    let res = match inv.resources.get(op.resource_idx) {
        Some(r) if r.name == op.resource => r,
        _ => return Err(Fallback::Refusal),
    };
    let root = scan::ws(body, 0);
    let mut located: Option<&LocNode> = None;
    for selector in &res.records {
        let (steps, node) = selector.fast_parts().ok_or(Fallback::Selector)?;
        if matches(body, steps, root) {
            located = Some(node);
            break;
        }
    }
    let count_keys = if located.is_some() && op.op == OpKind::Read && purpose.counts != Counts::Pass
    {
        res.counts
            .iter()
            .map(|p| match p.as_slice() {
                [one] => Ok(one.as_str()),
                _ => Err(Fallback::Shape),
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let tax = &set.taxonomy;
    let rewrite = |s: &str| links.and_then(|l| l.rewrite(s));
    // copied strings are looked at only when one may start a link; written ones always
    let copy_hook = links.map(|l| StrHook {
        rewrite: &rewrite,
        starts: l.first_bytes(),
    });
    let mut w = SpanWalker {
        b: body,
        out: Vec::with_capacity(body.len()),
        // the strict model's effective depth: serde_json's own recursion limit allows 127
        ck: Checker::new(body, limits.max_depth.min(127)),
        depth: 0,
        memo: Memo::new(),
        tax,
        inv,
        purpose,
        consent: op.op == OpKind::Read,
        withheld_null: op.withheld == super::Withheld::Null,
        observing: false,
        master: key,
        pkey: None,
        email_cat: tax.get("user.contact.email"),
        actions: [0; 9],
        rule_hits: vec![0; purpose.rule_ids.len()],
        received: vec![false; tax.len()],
        delivered: vec![false; tax.len()],
        records: 0,
        located_kept: 0,
        personal: false,
        changed: false,
        unknown: Vec::new(),
        shape,
        hook: copy_hook,
        rewrite: &rewrite,
        count_keys,
        at_root: true,
        counts: Vec::new(),
        strip_next: Vec::new(),
        probe: None,
        finder: None,
        last_record: 0,
        last_type: None,
    };
    let (verdict, end) = w.walk(root, Some(&res.envelope), None, located, op.resource_idx)?;
    if scan::ws(body, end) != body.len() {
        return Err(Fallback::Bytes);
    }
    match verdict {
        Verdict::Keep => {}
        Verdict::Remove => {
            w.out.clear();
            w.out.extend_from_slice(b"null");
        }
        Verdict::RemoveRecord => return Err(Fallback::Refusal),
    }
    rewrite_counts(&mut w, purpose.counts);
    let outcome = Outcome {
        changed: w.changed,
        ..Counted {
            tax,
            purpose,
            inv,
            actions: &w.actions,
            rule_hits: &w.rule_hits,
            received: &w.received,
            delivered: &w.delivered,
            records: w.records,
            unknown: &w.unknown,
        }
        .outcome()
    };
    Ok(Minimised {
        body: w.out,
        outcome,
    })
}

/// `engine::rewrite_counts` on the written output: the root's count members, last first so
/// earlier positions hold.
fn rewrite_counts(w: &mut SpanWalker<'_, '_>, counts: Counts) {
    let slots = std::mem::take(&mut w.counts);
    for slot in slots.iter().rev() {
        match counts {
            Counts::Pass => {}
            Counts::Delivered => {
                let now = w.located_kept.to_string();
                if w.out.get(slot.value.clone()) != Some(now.as_bytes()) {
                    w.out.splice(slot.value.clone(), now.bytes());
                    w.changed = true;
                }
            }
            Counts::Drop => {
                let (start, mut end) = (slot.member, slot.value.end);
                // the first member takes the comma after it along
                if w.out.get(start) != Some(&b',') && w.out.get(end) == Some(&b',') {
                    end += 1;
                }
                w.out.drain(start..end);
                w.changed = true;
            }
        }
    }
}

/// `select::fast_matches` over bytes: does the selector find anything in the value at `i`?
fn matches(b: &[u8], steps: &[FastStep], i: usize) -> bool {
    match steps.split_first() {
        None => true,
        Some((FastStep::Items, rest)) => {
            b.get(i) == Some(&b'[') && (rest.is_empty() || any_item(b, i, |x| matches(b, rest, x)))
        }
        Some((FastStep::Keys(ks), rest)) => ks
            .iter()
            .any(|k| scan::member(b, i, k).is_some_and(|x| matches(b, rest, x))),
        Some((FastStep::Index(n), rest)) => {
            let mut at = 0usize;
            b.get(i) == Some(&b'[')
                && any_item(b, i, |x| {
                    at += 1;
                    at == n + 1 && matches(b, rest, x)
                })
        }
    }
}

/// True when `f` holds for an item of the (valid) array at `i`.
fn any_item(b: &[u8], i: usize, mut f: impl FnMut(usize) -> bool) -> bool {
    let mut j = scan::ws(b, i + 1);
    if b.get(j) == Some(&b']') {
        return false;
    }
    loop {
        if f(j) {
            return true;
        }
        let Some(end) = scan::skip_value(b, j) else {
            return false;
        };
        j = scan::ws(b, end);
        match b.get(j) {
            Some(b',') => j = scan::ws(b, j + 1),
            _ => return false,
        }
    }
}
