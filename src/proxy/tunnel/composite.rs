//! Salesforce Composite tunnels (CRM-APIS.md §1.2): `/composite` (`compositeRequest`),
//! `/composite/batch` (`batchRequests`), `/composite/tree/{SObject}` (records with nested
//! children) and `/composite/graph` (`graphs`, each a `compositeRequest` Salesforce commits
//! whole), governed sub-request by sub-request.
//!
//! Envelopes are read strictly: an unknown key in a request envelope or sub-request is
//! refused (Salesforce might act on it), an unknown key in a response envelope is dropped
//! (default deny). `referenceId`s must be `[A-Za-z0-9_]+` and unique; they are the app's own
//! labels and match sub-responses to sub-requests. sObject Collections
//! (`/composite/sobjects`) need no tunnel: they are inventory operations whose records the
//! engine locates by `attributes.type`, and they are governed that way inside `/composite`.
//!
//! `/composite/tree`: every record (nested ones included, in pre-order) is one part,
//! governed as `POST /sobjects/{attributes.type}`; child collections (`{"records": [...]}`
//! under a relationship name) are taken out, governed record by record, and put back.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::{
    resolve_target, service_root, value_references_ok, withheld_outcome, Cause, Cx,
    GovernedRequest, GovernedResponse, PartPlan, PartRecord, PartRoute, TunnelRefusal, UrlForm,
};
use crate::body::headers::allowlist;
use crate::body::media::{self, BodyKind};
use crate::error::Inspection;
use crate::json;
use crate::links::LinkRewriter;
use crate::policy::{Direction, OpKind, Outcome, TunnelKind};

fn refusal(direction: Direction, part: usize, cause: Cause) -> TunnelRefusal {
    TunnelRefusal::new(direction, part, cause)
}

fn malformed(direction: Direction, part: usize, reason: Inspection) -> TunnelRefusal {
    TunnelRefusal::new(direction, part, Cause::Malformed(reason))
}

fn keys_within(map: &Map<String, Value>, allowed: &[&str]) -> bool {
    map.keys().all(|k| allowed.contains(&k.as_str()))
}

fn word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) fn govern_request(
    cx: &Cx<'_>,
    content_type: &str,
    body: &[u8],
) -> Result<GovernedRequest, TunnelRefusal> {
    let rq = Direction::Request;
    if media::classify(content_type) != BodyKind::Json {
        return Err(refusal(rq, 0, Cause::MediaType));
    }
    let mut doc = json::parse(body, &cx.limits.json).map_err(|e| malformed(rq, 0, (&e).into()))?;
    let root = doc
        .as_object_mut()
        .ok_or(malformed(rq, 0, Inspection::EnvelopeShape))?;
    let parts = match cx.tunnel.kind {
        TunnelKind::SfComposite => composite_request(cx, root)?,
        TunnelKind::SfCompositeBatch => batch_request(cx, root)?,
        TunnelKind::SfTree => tree_request(cx, root)?,
        TunnelKind::SfGraph => graph_request(cx, root)?,
        TunnelKind::OdataBatch => return Err(malformed(rq, 0, Inspection::TunnelKind)),
    };
    Ok(GovernedRequest {
        kind: cx.tunnel.kind,
        dialect: cx.tunnel.dialect,
        body: json::to_bytes(&doc),
        content_type: "application/json".into(),
        parts,
        layout: Vec::new(),
    })
}

fn bool_keys(map: &Map<String, Value>, keys: &[&str]) -> bool {
    keys.iter()
        .all(|k| map.get(*k).is_none_or(Value::is_boolean))
}

/// The sub-request array of an envelope, capped.
fn subrequests<'a>(
    cx: &Cx<'_>,
    root: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Vec<Value>, TunnelRefusal> {
    let subs = root
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .ok_or(malformed(Direction::Request, 0, Inspection::EnvelopeShape))?;
    if subs.len() > cx.limits.multipart.max_parts {
        return Err(malformed(Direction::Request, 0, Inspection::TooManyParts));
    }
    Ok(subs)
}

/// `httpHeaders` of a sub-request: string values, no overrides, no content coding,
/// allowlisted names only.
fn request_headers(
    cx: &Cx<'_>,
    index: usize,
    headers: Option<&mut Value>,
) -> Result<(), TunnelRefusal> {
    let rq = Direction::Request;
    let Some(headers) = headers else {
        return Ok(());
    };
    let map = headers
        .as_object_mut()
        .ok_or(malformed(rq, index, Inspection::HttpHeaders))?;
    for (name, value) in map.iter() {
        let Some(value) = value.as_str() else {
            return Err(malformed(rq, index, Inspection::HttpHeaders));
        };
        if crate::proxy::route::is_override_header(name) {
            return Err(refusal(rq, index, Cause::MethodOverride));
        }
        if name.eq_ignore_ascii_case("content-encoding") && !value.eq_ignore_ascii_case("identity")
        {
            return Err(refusal(rq, index, Cause::MediaType));
        }
        if !super::references_ok(value) {
            return Err(refusal(rq, index, Cause::Reference));
        }
    }
    let list = allowlist(cx.tunnel.dialect);
    map.retain(|name, _| list.allows_request(&name.to_ascii_lowercase()));
    Ok(())
}

fn composite_request(
    cx: &Cx<'_>,
    root: &mut Map<String, Value>,
) -> Result<Vec<PartPlan>, TunnelRefusal> {
    let rq = Direction::Request;
    if !keys_within(
        root,
        &["allOrNone", "collateSubrequests", "compositeRequest"],
    ) || !bool_keys(root, &["allOrNone", "collateSubrequests"])
    {
        return Err(malformed(rq, 0, Inspection::EnvelopeKey));
    }
    let subs = subrequests(cx, root, "compositeRequest")?;
    let mut plans = Vec::with_capacity(subs.len());
    composite_parts(cx, subs, None, &mut plans)?;
    Ok(plans)
}

/// `/composite/graph`: `{"graphs": [{"graphId", "compositeRequest": [...]}]}`. Each graph is
/// a composite request that Salesforce commits whole or not at all; every node is governed
/// like a composite subrequest, and one refused node refuses the whole request. A node's
/// part id is `graphId/referenceId` (reference ids are unique within their graph only).
fn graph_request(
    cx: &Cx<'_>,
    root: &mut Map<String, Value>,
) -> Result<Vec<PartPlan>, TunnelRefusal> {
    let rq = Direction::Request;
    if !keys_within(root, &["graphs"]) {
        return Err(malformed(rq, 0, Inspection::EnvelopeKey));
    }
    let graphs = subrequests(cx, root, "graphs")?;
    let mut graph_ids = HashSet::new();
    let mut plans = Vec::new();
    for graph in graphs.iter_mut() {
        let g = graph
            .as_object_mut()
            .ok_or(malformed(rq, 0, Inspection::EnvelopeShape))?;
        if !keys_within(g, &["graphId", "compositeRequest"]) {
            return Err(malformed(rq, 0, Inspection::EnvelopeKey));
        }
        let id = g
            .get("graphId")
            .and_then(Value::as_str)
            .filter(|id| word(id))
            .ok_or(malformed(rq, 0, Inspection::ReferenceId))?
            .to_string();
        if !graph_ids.insert(id.clone()) {
            return Err(malformed(rq, 0, Inspection::DuplicateReferenceId));
        }
        let subs = g
            .get_mut("compositeRequest")
            .and_then(Value::as_array_mut)
            .ok_or(malformed(rq, 0, Inspection::EnvelopeShape))?;
        if plans.len() + subs.len() > cx.limits.multipart.max_parts {
            return Err(malformed(rq, 0, Inspection::TooManyParts));
        }
        composite_parts(cx, subs, Some(&id), &mut plans)?;
    }
    Ok(plans)
}

/// Governs the subrequests of one `compositeRequest` in place, appending their plans (part
/// numbers continue from `plans`); `graph`: the graph they belong to, which prefixes their ids.
fn composite_parts(
    cx: &Cx<'_>,
    subs: &mut [Value],
    graph: Option<&str>,
    plans: &mut Vec<PartPlan>,
) -> Result<(), TunnelRefusal> {
    let rq = Direction::Request;
    let mut ids = HashSet::new();
    for sub in subs.iter_mut() {
        let index = plans.len() + 1;
        let s = sub
            .as_object_mut()
            .ok_or(malformed(rq, index, Inspection::SubrequestShape))?;
        if !keys_within(s, &["method", "url", "referenceId", "body", "httpHeaders"]) {
            return Err(malformed(rq, index, Inspection::SubrequestKey));
        }
        let method = s
            .get("method")
            .and_then(Value::as_str)
            .ok_or(malformed(rq, index, Inspection::Method))?
            .to_string();
        let reference_id = s
            .get("referenceId")
            .and_then(Value::as_str)
            .filter(|r| word(r))
            .ok_or(malformed(rq, index, Inspection::ReferenceId))?
            .to_string();
        if !ids.insert(reference_id.clone()) {
            return Err(malformed(rq, index, Inspection::DuplicateReferenceId));
        }
        let url =
            s.get("url")
                .and_then(Value::as_str)
                .ok_or(malformed(rq, index, Inspection::Url))?;
        if !super::references_ok(url) {
            return Err(refusal(rq, index, Cause::Reference));
        }
        let target = resolve_target(&cx.tunnel, index, url, UrlForm::AbsolutePath)?;
        let route = cx.classify(index, &method, &target.path, false)?;
        let (forward, mut shape, mut carried) =
            cx.review_query_url(index, &route, &target.path, &target.forward)?;
        if let Some(body) = s.get_mut("body").filter(|b| !b.is_null()) {
            let (body_shape, mut body_carried) =
                cx.review_query_body(index, &route, &target.path, body)?;
            carried.append(&mut body_carried);
            if !body_shape.is_plain() {
                shape = body_shape;
            }
        }
        s.insert("url".into(), Value::String(forward));
        request_headers(cx, index, s.get_mut("httpHeaders"))?;
        let (mut outcome, bytes) = sub_body(cx, index, &method, &route, s.get_mut("body"), true)?;
        outcome.add_carried(&carried);
        plans.push(PartPlan {
            index,
            id: Some(graph_part_id(graph, &reference_id)),
            method,
            route,
            outcome,
            bytes,
            shape,
        });
    }
    Ok(())
}

/// A part's id: its reference id, inside a graph `graphId/referenceId`.
fn graph_part_id(graph: Option<&str>, reference_id: &str) -> String {
    match graph {
        Some(g) => format!("{g}/{reference_id}"),
        None => reference_id.to_string(),
    }
}

/// Governs a sub-request body in place (`null` or absent: none).
fn sub_body(
    cx: &Cx<'_>,
    index: usize,
    method: &str,
    route: &PartRoute,
    body: Option<&mut Value>,
    references: bool,
) -> Result<(Outcome, u64), TunnelRefusal> {
    match body {
        None | Some(Value::Null) => Ok((cx.request_body(index, method, route, None)?, 0)),
        Some(body) => {
            let outcome = cx.request_body(index, method, route, Some(body))?;
            // Checked on what is forwarded: a reference in a dropped field never flows.
            if references && !value_references_ok(body) {
                return Err(refusal(Direction::Request, index, Cause::Reference));
            }
            Ok((outcome, json::to_bytes(body).len() as u64))
        }
    }
}

fn batch_request(
    cx: &Cx<'_>,
    root: &mut Map<String, Value>,
) -> Result<Vec<PartPlan>, TunnelRefusal> {
    let rq = Direction::Request;
    if !keys_within(root, &["batchRequests", "haltOnError"]) || !bool_keys(root, &["haltOnError"]) {
        return Err(malformed(rq, 0, Inspection::EnvelopeKey));
    }
    let subs = subrequests(cx, root, "batchRequests")?;
    let mut plans = Vec::with_capacity(subs.len());
    for (i, sub) in subs.iter_mut().enumerate() {
        let index = i + 1;
        let s = sub
            .as_object_mut()
            .ok_or(malformed(rq, index, Inspection::SubrequestShape))?;
        // binaryPartName / binaryPartNameAlias (multipart uploads) are not inspected: refused.
        if !keys_within(s, &["method", "url", "richInput"]) {
            return Err(malformed(rq, index, Inspection::SubrequestKey));
        }
        let method = s
            .get("method")
            .and_then(Value::as_str)
            .ok_or(malformed(rq, index, Inspection::Method))?
            .to_string();
        let url =
            s.get("url")
                .and_then(Value::as_str)
                .ok_or(malformed(rq, index, Inspection::Url))?;
        // No references exist in composite/batch; text that looks like one is refused
        // anyway, in case a later API version resolves it.
        if !super::references_ok(url) || url.contains("@{") {
            return Err(refusal(rq, index, Cause::Reference));
        }
        let target = resolve_target(&cx.tunnel, index, url, UrlForm::DataRelative)?;
        let route = cx.classify(index, &method, &target.path, false)?;
        let (forward, mut shape, mut carried) =
            cx.review_query_url(index, &route, &target.path, &target.forward)?;
        if let Some(body) = s.get_mut("richInput").filter(|b| !b.is_null()) {
            let (body_shape, mut body_carried) =
                cx.review_query_body(index, &route, &target.path, body)?;
            carried.append(&mut body_carried);
            if !body_shape.is_plain() {
                shape = body_shape;
            }
        }
        s.insert("url".into(), Value::String(forward));
        let (mut outcome, bytes) =
            sub_body(cx, index, &method, &route, s.get_mut("richInput"), true)?;
        outcome.add_carried(&carried);
        plans.push(PartPlan {
            index,
            id: None,
            method,
            route,
            outcome,
            bytes,
            shape,
        });
    }
    Ok(plans)
}

fn tree_request(
    cx: &Cx<'_>,
    root: &mut Map<String, Value>,
) -> Result<Vec<PartPlan>, TunnelRefusal> {
    let rq = Direction::Request;
    if !keys_within(root, &["records"]) {
        return Err(malformed(rq, 0, Inspection::EnvelopeKey));
    }
    let sobject = cx
        .tunnel
        .path
        .rsplit('/')
        .next()
        .filter(|s| word(s))
        .ok_or(malformed(rq, 0, Inspection::TreeObject))?
        .to_string();
    let records = root
        .get_mut("records")
        .and_then(Value::as_array_mut)
        .ok_or(malformed(rq, 0, Inspection::EnvelopeShape))?;
    let mut tree = Tree {
        cx,
        plans: Vec::new(),
        ids: HashSet::new(),
        root: service_root(&cx.tunnel).ok_or(malformed(rq, 0, Inspection::TreeObject))?,
    };
    for record in records.iter_mut() {
        tree.record(record, Some(&sobject))?;
    }
    Ok(tree.plans)
}

struct Tree<'a, 'c> {
    cx: &'a Cx<'c>,
    plans: Vec<PartPlan>,
    ids: HashSet<String>,
    root: String,
}

impl Tree<'_, '_> {
    fn record(&mut self, rec: &mut Value, expected: Option<&str>) -> Result<(), TunnelRefusal> {
        let rq = Direction::Request;
        let index = self.plans.len() + 1;
        if index > self.cx.limits.multipart.max_parts {
            return Err(malformed(rq, 0, Inspection::TooManyParts));
        }
        let obj = rec
            .as_object_mut()
            .ok_or(malformed(rq, index, Inspection::TreeRecord))?;
        let attributes = obj
            .get("attributes")
            .and_then(Value::as_object)
            .ok_or(malformed(rq, index, Inspection::TreeAttributes))?;
        if !keys_within(attributes, &["type", "referenceId"]) {
            return Err(malformed(rq, index, Inspection::TreeAttributes));
        }
        let ty = attributes
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| word(t))
            .ok_or(malformed(rq, index, Inspection::TreeType))?
            .to_string();
        if expected.is_some_and(|e| !e.eq_ignore_ascii_case(&ty)) {
            return Err(malformed(rq, index, Inspection::TreeType));
        }
        let reference_id = attributes
            .get("referenceId")
            .and_then(Value::as_str)
            .filter(|r| word(r))
            .ok_or(malformed(rq, index, Inspection::ReferenceId))?
            .to_string();
        if !self.ids.insert(reference_id.clone()) {
            return Err(malformed(rq, index, Inspection::DuplicateReferenceId));
        }
        // Child collections out: governed record by record, under their own types.
        let child_keys: Vec<String> = obj
            .iter()
            .filter(|(k, v)| {
                *k != "attributes" && v.as_object().is_some_and(|o| o.contains_key("records"))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut children = Vec::with_capacity(child_keys.len());
        for k in child_keys {
            if !word(&k) {
                return Err(malformed(rq, index, Inspection::TreeRelationship));
            }
            if let Some(v) = obj.remove(&k) {
                children.push((k, v));
            }
        }
        let path = format!("{}sobjects/{ty}", self.root);
        let route = self.cx.classify(index, "POST", &path, false)?;
        if route.operation().is_none_or(|op| op.op() != OpKind::Write) {
            return Err(refusal(rq, index, Cause::UnknownResource));
        }
        let outcome = self.cx.request_body(index, "POST", &route, Some(rec))?;
        let bytes = json::to_bytes(rec).len() as u64;
        self.plans.push(PartPlan {
            index,
            id: Some(reference_id),
            method: "POST".into(),
            route,
            outcome,
            bytes,
            shape: Default::default(),
        });
        let mut back = Vec::with_capacity(children.len());
        for (k, mut container) in children {
            let c = container
                .as_object_mut()
                .filter(|c| keys_within(c, &["records"]))
                .ok_or(malformed(rq, index, Inspection::TreeChildren))?;
            let records = c
                .get_mut("records")
                .and_then(Value::as_array_mut)
                .ok_or(malformed(rq, index, Inspection::TreeChildren))?;
            for child in records.iter_mut() {
                self.record(child, None)?;
            }
            back.push((k, container));
        }
        if let Some(obj) = rec.as_object_mut() {
            obj.extend(back);
        } else if !back.is_empty() {
            // the policy removed the record whole: its children go with it
            return Err(malformed(rq, index, Inspection::TreeRecord));
        }
        Ok(())
    }
}

pub(crate) fn govern_response(
    cx: &Cx<'_>,
    request: &GovernedRequest,
    content_type: &str,
    body: &[u8],
    links: Option<&LinkRewriter>,
) -> Result<GovernedResponse, TunnelRefusal> {
    let rs = Direction::Response;
    if media::classify(content_type) != BodyKind::Json {
        return Err(refusal(rs, 0, Cause::MediaType));
    }
    let mut doc = json::parse(body, &cx.limits.json).map_err(|e| malformed(rs, 0, (&e).into()))?;
    let mut parts = Vec::new();
    match &mut doc {
        // The tunnel itself failed: `[{errorCode, message}]`. Only codes pass.
        Value::Array(errors) => error_list(errors),
        Value::Object(root) => {
            let mut s = Responses {
                cx,
                request,
                links,
                used: vec![false; request.parts.len()],
                parts: &mut parts,
            };
            match request.kind {
                TunnelKind::SfComposite => s.composite(root)?,
                TunnelKind::SfCompositeBatch => s.batch(root)?,
                TunnelKind::SfTree => s.tree(root)?,
                TunnelKind::SfGraph => s.graph(root)?,
                TunnelKind::OdataBatch => return Err(malformed(rs, 0, Inspection::TunnelKind)),
            }
        }
        _ => return Err(malformed(rs, 0, Inspection::EnvelopeShape)),
    }
    Ok(GovernedResponse {
        body: json::to_bytes(&doc),
        content_type: "application/json".into(),
        parts,
    })
}

/// An error list: objects keep their codes (`errorCode`, `statusCode`, `fields`); messages
/// (which echo values) and anything else go.
fn error_list(errors: &mut Vec<Value>) {
    errors.retain_mut(|e| match e.as_object_mut() {
        Some(o) => {
            o.retain(|k, _| matches!(k.as_str(), "errorCode" | "statusCode" | "fields"));
            true
        }
        None => false,
    });
}

const NOT_FOUND_CODE: &str = "NOT_FOUND";
const NOT_FOUND_MESSAGE: &str = "The requested resource does not exist";

struct Responses<'a, 'c> {
    cx: &'a Cx<'c>,
    request: &'a GovernedRequest,
    links: Option<&'a LinkRewriter>,
    used: Vec<bool>,
    parts: &'a mut Vec<PartRecord>,
}

impl Responses<'_, '_> {
    fn unmatched(&self, part: usize) -> TunnelRefusal {
        refusal(Direction::Response, part, Cause::Unmatched)
    }

    /// The plan a sub-response answers: by id, or by position.
    fn plan_for(&mut self, number: usize, id: Option<&str>) -> Result<usize, TunnelRefusal> {
        let i = match id {
            Some(id) => self
                .request
                .parts
                .iter()
                .position(|p| p.id.as_deref() == Some(id))
                .ok_or(self.unmatched(number))?,
            None => number - 1,
        };
        if i >= self.used.len() || self.used[i] {
            return Err(self.unmatched(number));
        }
        self.used[i] = true;
        Ok(i)
    }

    fn results<'v>(
        &self,
        root: &'v mut Map<String, Value>,
        keep: &[&str],
        key: &str,
    ) -> Result<&'v mut Vec<Value>, TunnelRefusal> {
        root.retain(|k, _| keep.contains(&k.as_str()));
        let items = root
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .ok_or(malformed(Direction::Response, 0, Inspection::EnvelopeShape))?;
        if items.len() > self.request.parts.len() {
            return Err(self.unmatched(0));
        }
        Ok(items)
    }

    /// Governs one sub-response body in place; `Ok(false)` when its record is withheld.
    fn body(
        &mut self,
        number: usize,
        i: usize,
        body: Option<&mut Value>,
    ) -> Result<(Outcome, bool), TunnelRefusal> {
        let plan = &self.request.parts[i];
        let Some(body) = body.filter(|b| !b.is_null()) else {
            return Ok((Outcome::default(), true));
        };
        match self.cx.response_body(number, plan, body)? {
            Some(outcome) => {
                if let Some(l) = self.links {
                    l.rewrite_json(body);
                }
                Ok((outcome, true))
            }
            None => Ok((withheld_outcome(), false)),
        }
    }

    fn record(
        &mut self,
        i: usize,
        id: Option<String>,
        status: Option<u16>,
        outcome: Outcome,
        headers: Vec<(String, String)>,
        withheld: bool,
    ) {
        let plan = &self.request.parts[i];
        self.parts.push(PartRecord {
            index: plan.index,
            id,
            status,
            route: plan.route.template().to_string(),
            outcome,
            headers,
            withheld,
        });
    }

    fn composite(&mut self, root: &mut Map<String, Value>) -> Result<(), TunnelRefusal> {
        let items = self.results(root, &["compositeResponse"], "compositeResponse")?;
        self.composite_items(items, None)
    }

    /// `{"graphs": [{"graphId", "graphResponse": {"compositeResponse": [...]},
    /// "isSuccessful"}]}`: each graph's results matched to its nodes by `graphId/referenceId`.
    fn graph(&mut self, root: &mut Map<String, Value>) -> Result<(), TunnelRefusal> {
        let rs = Direction::Response;
        let graphs = self.results(root, &["graphs"], "graphs")?;
        for graph in graphs.iter_mut() {
            let g = graph
                .as_object_mut()
                .ok_or(malformed(rs, 0, Inspection::EnvelopeShape))?;
            g.retain(|k, _| matches!(k.as_str(), "graphId" | "graphResponse" | "isSuccessful"));
            if !bool_keys(g, &["isSuccessful"]) {
                return Err(malformed(rs, 0, Inspection::EnvelopeShape));
            }
            let id = g
                .get("graphId")
                .and_then(Value::as_str)
                .ok_or(self.unmatched(0))?
                .to_string();
            let Some(response) = g.get_mut("graphResponse") else {
                continue;
            };
            let response =
                response
                    .as_object_mut()
                    .ok_or(malformed(rs, 0, Inspection::EnvelopeShape))?;
            let items = self.results(response, &["compositeResponse"], "compositeResponse")?;
            self.composite_items(items, Some(&id))?;
        }
        Ok(())
    }

    /// The results of one `compositeRequest` (`graph`: of that graph).
    fn composite_items(
        &mut self,
        items: &mut [Value],
        graph: Option<&str>,
    ) -> Result<(), TunnelRefusal> {
        let rs = Direction::Response;
        for item in items.iter_mut() {
            let number = self.parts.len() + 1;
            let o =
                item.as_object_mut()
                    .ok_or(malformed(rs, number, Inspection::SubresponseShape))?;
            o.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "body" | "httpHeaders" | "httpStatusCode" | "referenceId"
                )
            });
            let reference = o
                .get("referenceId")
                .and_then(Value::as_str)
                .ok_or(self.unmatched(number))?;
            let id = graph_part_id(graph, reference);
            let i = self.plan_for(number, Some(&id))?;
            let status = status_of(o.get("httpStatusCode"), number)?;
            let mut headers = self.response_headers(o.get_mut("httpHeaders"), number)?;
            let (outcome, kept) = self.body(number, i, o.get_mut("body"))?;
            let status = if kept {
                status
            } else {
                o.insert("body".into(), not_found_errors());
                o.insert("httpStatusCode".into(), json!(404));
                if let Some(h) = o.get_mut("httpHeaders").and_then(Value::as_object_mut) {
                    h.retain(|k, _| !k.eq_ignore_ascii_case("location"));
                }
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case("location"));
                Some(404)
            };
            self.record(i, Some(id), status, outcome, headers, !kept);
        }
        Ok(())
    }

    fn batch(&mut self, root: &mut Map<String, Value>) -> Result<(), TunnelRefusal> {
        let rs = Direction::Response;
        let items = self.results(root, &["hasErrors", "results"], "results")?;
        for (n, item) in items.iter_mut().enumerate() {
            let number = n + 1;
            let o =
                item.as_object_mut()
                    .ok_or(malformed(rs, number, Inspection::SubresponseShape))?;
            o.retain(|k, _| matches!(k.as_str(), "statusCode" | "result"));
            let i = self.plan_for(number, None)?;
            let status = status_of(o.get("statusCode"), number)?;
            let (outcome, kept) = self.body(number, i, o.get_mut("result"))?;
            let status = if kept {
                status
            } else {
                o.insert("result".into(), not_found_errors());
                o.insert("statusCode".into(), json!(404));
                Some(404)
            };
            self.record(i, None, status, outcome, Vec::new(), !kept);
        }
        Ok(())
    }

    fn tree(&mut self, root: &mut Map<String, Value>) -> Result<(), TunnelRefusal> {
        let rs = Direction::Response;
        let items = self.results(root, &["hasErrors", "results"], "results")?;
        for (n, item) in items.iter_mut().enumerate() {
            let number = n + 1;
            let o =
                item.as_object_mut()
                    .ok_or(malformed(rs, number, Inspection::SubresponseShape))?;
            // The app's own label, checked against the request: kept as it is.
            let Some(Value::String(id)) = o.remove("referenceId") else {
                return Err(self.unmatched(number));
            };
            let i = self.plan_for(number, Some(&id))?;
            let (outcome, kept) = self.body(number, i, Some(item))?;
            let rest = match std::mem::take(item) {
                Value::Object(m) if kept => m,
                _ => {
                    let mut m = Map::new();
                    m.insert(
                        "errors".into(),
                        json!([{ "statusCode": NOT_FOUND_CODE, "message": NOT_FOUND_MESSAGE }]),
                    );
                    m
                }
            };
            let mut out = Map::new();
            out.insert("referenceId".into(), Value::String(id.clone()));
            out.extend(rest);
            *item = Value::Object(out);
            self.record(i, Some(id), None, outcome, Vec::new(), !kept);
        }
        Ok(())
    }

    /// `httpHeaders` of a sub-response: allowlisted, string values, links rewritten.
    fn response_headers(
        &self,
        headers: Option<&mut Value>,
        number: usize,
    ) -> Result<Vec<(String, String)>, TunnelRefusal> {
        let Some(headers) = headers.filter(|h| !h.is_null()) else {
            return Ok(Vec::new());
        };
        let map = headers.as_object_mut().ok_or(malformed(
            Direction::Response,
            number,
            Inspection::HttpHeaders,
        ))?;
        let list = allowlist(self.cx.tunnel.dialect);
        map.retain(|k, v| v.is_string() && list.allows_response(&k.to_ascii_lowercase()));
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map.iter_mut() {
            if let (Some(l), Value::String(s)) = (self.links, &mut *v) {
                if let Some(new) = l.rewrite(s) {
                    *s = new;
                }
            }
            out.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
        }
        Ok(out)
    }
}

fn status_of(v: Option<&Value>, number: usize) -> Result<Option<u16>, TunnelRefusal> {
    match v {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (100..=599).contains(n))
            .map(Some)
            .ok_or(malformed(Direction::Response, number, Inspection::Status)),
    }
}

fn not_found_errors() -> Value {
    json!([{ "errorCode": NOT_FOUND_CODE, "message": NOT_FOUND_MESSAGE }])
}
