//! OData `$batch` (Dataverse): `multipart/mixed` with `application/http` parts and change
//! sets, governed part by part (CRM-APIS.md §3.2, §3.3).
//!
//! Request side: every part's MIME headers are reduced to `Content-Type`,
//! `Content-Transfer-Encoding` and `Content-ID`; its start line target is resolved and
//! forwarded in canonical form; its HTTP headers pass the dialect's request allowlist
//! (method overrides and content codings refused); a body must be JSON and goes through the
//! write policy. `$N` targets (a `Content-ID` of an earlier POST in the same change set) are
//! classified as the entity created there (`contacts($1)`); anything after `$N/` is refused.
//!
//! Response side: top-level items line up with the request's in order (Dataverse stops at
//! the first failure unless asked to continue, so the response may be shorter, never longer);
//! a change set answers with its members (matched by `Content-ID`, else in order) or with one
//! error part for the whole change set.

use std::collections::HashSet;

use bytes::Bytes;

use super::{
    multipart_refusal, resolve_target, withheld_outcome, Cause, Cx, GovernedRequest,
    GovernedResponse, Item, PartPlan, PartRecord, PartRoute, TunnelRefusal, UrlForm,
};
use crate::body::headers::allowlist;
use crate::body::media::{self, BodyKind};
use crate::body::multipart::{parse_batch, BatchItem, HttpMessage, HttpPart};
use crate::error::Inspection;
use crate::json;
use crate::links::LinkRewriter;
use crate::policy::{Direction, Outcome};

/// MIME headers a part keeps.
const PART_HEADERS: [&str; 3] = ["content-type", "content-transfer-encoding", "content-id"];

/// Inner response headers that hold absolute links.
const LINK_HEADERS: [&str; 3] = ["location", "content-location", "odata-entityid"];

pub(crate) fn govern_request(
    cx: &Cx<'_>,
    content_type: &str,
    body: &[u8],
) -> Result<GovernedRequest, TunnelRefusal> {
    let mut batch = parse_batch(content_type, body, &cx.limits.multipart)
        .map_err(|e| multipart_refusal(Direction::Request, &e))?;
    let mut plans: Vec<PartPlan> = Vec::new();
    let mut layout = Vec::with_capacity(batch.items.len());
    let mut ids: HashSet<String> = HashSet::new();
    for item in &mut batch.items {
        match item {
            BatchItem::Part(part) => {
                let plan = request_part(cx, plans.len() + 1, part, None, &mut ids)?;
                layout.push(Item::Single(plans.len()));
                plans.push(plan);
            }
            BatchItem::ChangeSet { parts, .. } => {
                // Content-ID -> entity set path of the POSTs so far in this change set.
                let mut created: Vec<(String, String)> = Vec::new();
                let mut members = Vec::with_capacity(parts.len());
                for part in parts.iter_mut() {
                    let plan =
                        request_part(cx, plans.len() + 1, part, Some(&mut created), &mut ids)?;
                    members.push(plans.len());
                    plans.push(plan);
                }
                layout.push(Item::ChangeSet(members));
            }
        }
    }
    let out = batch
        .to_bytes()
        .map_err(|e| multipart_refusal(Direction::Request, &e))?;
    Ok(GovernedRequest {
        kind: cx.tunnel.kind,
        dialect: cx.tunnel.dialect,
        body: out,
        content_type: batch.content_type(),
        parts: plans,
        layout,
    })
}

/// Governs one request part in place.
fn request_part(
    cx: &Cx<'_>,
    index: usize,
    part: &mut HttpPart,
    created: Option<&mut Vec<(String, String)>>,
    ids: &mut HashSet<String>,
) -> Result<PartPlan, TunnelRefusal> {
    let refuse = |cause| TunnelRefusal::new(Direction::Request, index, cause);
    part.headers
        .retain(|(n, _)| PART_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)));
    let content_id = part.header("content-id").map(str::to_string);
    if let Some(id) = &content_id {
        if id.is_empty() || !ids.insert(id.clone()) {
            return Err(refuse(Cause::Malformed(Inspection::DuplicateContentId)));
        }
    }
    let in_change_set = created.is_some();
    let HttpMessage::Request {
        method,
        target,
        headers,
        body,
    } = &mut part.message
    else {
        return Err(refuse(Cause::Malformed(Inspection::NotARequest)));
    };
    // `$N`: the entity created by an earlier POST of the same change set.
    let (path, forward) = match reference(target) {
        Some(n) => {
            let set = created
                .as_deref()
                .and_then(|c| c.iter().find(|(id, _)| id == n))
                .map(|(_, path)| path.clone())
                .ok_or(refuse(Cause::UnknownResource))?;
            if target.len() != n.len() + 1 {
                return Err(refuse(Cause::UnknownResource));
            }
            (format!("{set}(${n})"), target.clone())
        }
        None => {
            let t = resolve_target(&cx.tunnel, index, target, UrlForm::ServiceRelative)?;
            (t.path, t.forward)
        }
    };
    let route = cx.classify(index, method, &path, in_change_set)?;
    let (forward, mut shape, mut carried) = cx.review_query_url(index, &route, &path, &forward)?;
    if let (Some(created), Some(id), "POST") = (created, &content_id, method.as_str()) {
        created.push((id.clone(), path.clone()));
    }
    *target = forward;
    if headers
        .iter()
        .any(|(n, _)| crate::proxy::route::is_override_header(n))
    {
        return Err(refuse(Cause::MethodOverride));
    }
    if headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("content-encoding") && !v.eq_ignore_ascii_case("identity")
    }) {
        return Err(refuse(Cause::MediaType));
    }
    let list = allowlist(cx.tunnel.dialect);
    headers.retain(|(n, _)| list.allows_request(&n.to_ascii_lowercase()));
    let (mut outcome, bytes) = if body.is_empty() {
        (cx.request_body(index, method, &route, None)?, 0)
    } else {
        let ct = super::batch::content_type(headers);
        if media::classify(ct.unwrap_or("")) != BodyKind::Json {
            return Err(refuse(Cause::MediaType));
        }
        let mut doc = json::parse(body, &cx.limits.json)
            .map_err(|e| refuse(Cause::Malformed((&e).into())))?;
        let (body_shape, mut body_carried) =
            cx.review_query_body(index, &route, &path, &mut doc)?;
        carried.append(&mut body_carried);
        let rewritten = !body_shape.is_plain();
        if rewritten {
            shape = body_shape;
        }
        let outcome = cx.request_body(index, method, &route, Some(&mut doc))?;
        if rewritten || (outcome.changed && !outcome.shadow) {
            let new = json::to_bytes(&doc);
            part.message.set_body(new);
        }
        (outcome, part.message.body().len() as u64)
    };
    outcome.add_carried(&carried);
    let method = match &part.message {
        HttpMessage::Request { method, .. } => method.clone(),
        HttpMessage::Response { .. } => String::new(),
    };
    Ok(PartPlan {
        index,
        id: content_id,
        method,
        route,
        outcome,
        bytes,
        shape,
    })
}

/// `$N` -> `N` (the Content-ID), also for `$N/...`.
fn reference(target: &str) -> Option<&str> {
    let rest = target.strip_prefix('$')?;
    let id = rest.split('/').next().unwrap_or("");
    (!id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(id)
}

/// The single `Content-Type` of a header list (two are ambiguous: None).
pub(crate) fn content_type(headers: &[(String, String)]) -> Option<&str> {
    let mut it = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    match (it.next(), it.next()) {
        (Some((_, v)), None) => Some(v.as_str()),
        _ => None,
    }
}

pub(crate) fn govern_response(
    cx: &Cx<'_>,
    request: &GovernedRequest,
    content_type: &str,
    body: &[u8],
    links: Option<&LinkRewriter>,
) -> Result<GovernedResponse, TunnelRefusal> {
    let mut batch = parse_batch(content_type, body, &cx.limits.multipart)
        .map_err(|e| multipart_refusal(Direction::Response, &e))?;
    let unmatched = |part| TunnelRefusal::new(Direction::Response, part, Cause::Unmatched);
    if batch.items.len() > request.layout.len() {
        return Err(unmatched(0));
    }
    let mut records = Vec::new();
    let mut number = 0usize;
    for (item, shape) in batch.items.iter_mut().zip(&request.layout) {
        match (item, shape) {
            (BatchItem::Part(part), Item::Single(i)) => {
                number += 1;
                records.push(response_part(cx, request, number, *i, part, links)?);
            }
            // The change set failed as a whole and answers with one part.
            (BatchItem::Part(part), Item::ChangeSet(members)) => {
                number += 1;
                let first = *members.first().ok_or(unmatched(number))?;
                let i = match part.header("content-id") {
                    Some(id) => *members
                        .iter()
                        .find(|m| request.parts[**m].id.as_deref() == Some(id))
                        .ok_or(unmatched(number))?,
                    None => first,
                };
                records.push(response_part(cx, request, number, i, part, links)?);
            }
            (BatchItem::ChangeSet { parts, .. }, Item::ChangeSet(members)) => {
                if parts.len() > members.len() {
                    return Err(unmatched(number + 1));
                }
                let mut used = vec![false; members.len()];
                for (k, part) in parts.iter_mut().enumerate() {
                    number += 1;
                    let slot = match part.header("content-id") {
                        Some(id) => members
                            .iter()
                            .position(|m| request.parts[*m].id.as_deref() == Some(id))
                            .ok_or(unmatched(number))?,
                        None => k,
                    };
                    if used[slot] {
                        return Err(unmatched(number));
                    }
                    used[slot] = true;
                    records.push(response_part(
                        cx,
                        request,
                        number,
                        members[slot],
                        part,
                        links,
                    )?);
                }
            }
            (BatchItem::ChangeSet { .. }, Item::Single(_)) => {
                return Err(unmatched(number + 1));
            }
        }
    }
    let out = batch
        .to_bytes()
        .map_err(|e| multipart_refusal(Direction::Response, &e))?;
    Ok(GovernedResponse {
        body: out,
        content_type: batch.content_type(),
        parts: records,
    })
}

/// Governs one response part in place; `i` is the plan it answers.
fn response_part(
    cx: &Cx<'_>,
    request: &GovernedRequest,
    number: usize,
    i: usize,
    part: &mut HttpPart,
    links: Option<&LinkRewriter>,
) -> Result<PartRecord, TunnelRefusal> {
    let refuse = |cause| TunnelRefusal::new(Direction::Response, number, cause);
    let plan = &request.parts[i];
    part.headers
        .retain(|(n, _)| PART_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)));
    let id = part.header("content-id").map(str::to_string);
    if let (Some(got), Some(want)) = (&id, &plan.id) {
        if got != want {
            return Err(refuse(Cause::Unmatched));
        }
    }
    let HttpMessage::Response {
        status,
        reason,
        headers,
        body,
    } = &mut part.message
    else {
        return Err(refuse(Cause::Malformed(Inspection::NotAResponse)));
    };
    let list = allowlist(cx.tunnel.dialect);
    headers.retain(|(n, _)| list.allows_response(&n.to_ascii_lowercase()));
    if let Some(links) = links {
        for (n, v) in headers.iter_mut() {
            if LINK_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)) {
                if let Some(new) = links.rewrite(v) {
                    *v = new;
                }
            }
        }
    }
    let mut withheld = false;
    let outcome = if body.is_empty() {
        Outcome::default()
    } else {
        if headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("content-encoding") && !v.eq_ignore_ascii_case("identity")
        }) {
            return Err(refuse(Cause::MediaType));
        }
        let json_body = media::classify(content_type(headers).unwrap_or("")) == BodyKind::Json;
        match (&plan.route, json_body) {
            // Ungoverned: no personal data; passed as it came (links aside).
            (PartRoute::Ungoverned { .. }, false) => Outcome::default(),
            (PartRoute::Governed(_), false) => return Err(refuse(Cause::MediaType)),
            (_, true) => {
                let mut doc = json::parse(body, &cx.limits.json)
                    .map_err(|e| refuse(Cause::Malformed((&e).into())))?;
                match cx.response_body(number, plan, &mut doc)? {
                    Some(outcome) => {
                        let linked = links.map_or(0, |l| l.rewrite_json(&mut doc));
                        if (outcome.changed && !outcome.shadow) || linked > 0 {
                            *body = json::to_bytes(&doc);
                        }
                        outcome
                    }
                    None => {
                        withheld = true;
                        *status = 404;
                        *reason = "Not Found".into();
                        *body = Bytes::from_static(
                            br#"{"error":{"code":"0x80040217","message":"The record is not available for this purpose."}}"#,
                        );
                        headers.retain(|(n, _)| {
                            !LINK_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h))
                                && !n.eq_ignore_ascii_case("etag")
                        });
                        withheld_outcome()
                    }
                }
            }
        }
    };
    // Content-Length (if any) follows the body.
    let new_body = body.clone();
    part.message.set_body(new_body);
    let (status, headers) = match &part.message {
        HttpMessage::Response {
            status, headers, ..
        } => (Some(*status), headers.clone()),
        HttpMessage::Request { .. } => (None, Vec::new()),
    };
    Ok(PartRecord {
        index: plan.index,
        id,
        status,
        route: plan.route.template().to_string(),
        outcome,
        headers,
        withheld,
    })
}
