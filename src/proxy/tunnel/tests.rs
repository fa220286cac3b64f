//! Tunnels against the shipped policies and the CRM fixtures: every part is filtered exactly
//! as if it had been sent alone, and the bypass table shows each way of hiding a sub-request
//! refused (never with a value in the error).

use std::path::Path;
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::*;
use crate::body::multipart::{parse_batch, HttpMessage};
use crate::error::{ForPurpose, ProxyError};

fn set() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        PolicySet::load(&dir).expect("shipped policies load").0
    })
}

fn key() -> PseudonymKey {
    PseudonymKey::new(b"tunnel-test-key")
}

fn purpose(name: &str) -> &'static Purpose {
    set().purpose(name).expect("purpose")
}

/// The shipped policies, a test key and default caps, for `purpose` on `tunnel`.
fn cx<'a>(purpose: &'a Purpose, tunnel: Tunnel<'a>) -> Cx<'a> {
    static KEY: OnceLock<PseudonymKey> = OnceLock::new();
    Cx {
        set: set(),
        purpose,
        key: Some(KEY.get_or_init(key)),
        tunnel,
        limits: TunnelLimits::default(),
    }
}

const ORIGINS: [&str; 2] = [
    "https://contoso-fict.crm4.dynamics.com",
    "https://zweck.example:8443",
];

fn origins() -> Vec<String> {
    ORIGINS
        .iter()
        .map(std::string::ToString::to_string)
        .collect()
}

fn op(dialect: Dialect, method: &str, path: &str) -> Operation {
    let m = http::Method::from_bytes(method.as_bytes()).expect("method");
    match set().classify(dialect, &m, path) {
        RouteMatch::Operation(op) => op.clone(),
        other => panic!("{method} {path} is not an operation: {other:?}"),
    }
}

/// What `apply` makes of a body when the part is sent alone.
fn alone(p: &str, o: &Operation, dir: Direction, body: &Value) -> (Value, Outcome) {
    let mut v = body.clone();
    let out = policy::apply(set(), purpose(p), o, dir, &mut v, Some(&key())).expect("applies");
    (v, out)
}

// ---------------------------------------------------------------------------------------
// $batch

const DV_PATH: &str = "/api/data/v9.2/$batch";
const CT: &str = "multipart/mixed; boundary=b";

fn dv_tunnel(origins: &[String]) -> Tunnel<'_> {
    Tunnel {
        dialect: Dialect::Dynamics,
        kind: TunnelKind::OdataBatch,
        path: DV_PATH,
        origins,
    }
}

fn http_part(msg: &str) -> String {
    format!("--b\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n{msg}\n")
}

fn change_set(msgs: &[(&str, &str)]) -> String {
    let mut out = String::from("--b\nContent-Type: multipart/mixed; boundary=cs\n\n");
    for (id, msg) in msgs {
        out.push_str(&format!(
            "--cs\nContent-Type: application/http\nContent-Transfer-Encoding: binary\nContent-ID: {id}\n\n{msg}\n"
        ));
    }
    out.push_str("--cs--\n");
    out
}

fn batch(items: &[String]) -> String {
    format!("{}--b--\n", items.concat())
}

fn dv_request(purpose_name: &str, body: &str) -> Result<GovernedRequest, TunnelRefusal> {
    let o = origins();
    govern_request(
        &cx(purpose(purpose_name), dv_tunnel(&o)),
        CT,
        body.as_bytes(),
    )
}

fn dv_response(
    purpose_name: &str,
    req: &GovernedRequest,
    content_type: &str,
    body: &str,
) -> Result<GovernedResponse, TunnelRefusal> {
    let o = origins();
    let links = LinkRewriter::new(ORIGINS[0], ORIGINS[1]);
    govern_response(
        &cx(purpose(purpose_name), dv_tunnel(&o)),
        req,
        content_type,
        body.as_bytes(),
        Some(&links),
    )
}

/// A fixture `.http` file: (Content-Type, body).
fn http_fixture(text: &str) -> (String, String) {
    let (head, body) = text.split_once("\n\n").expect("head and body");
    let ct = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .expect("content type")
        .to_string();
    (ct, body.to_string())
}

fn bodies(bytes: &[u8], content_type: &str) -> Vec<(String, Vec<u8>)> {
    parse_batch(content_type, bytes, &MultipartLimits::default())
        .expect("reparses")
        .parts()
        .map(|p| match &p.message {
            HttpMessage::Request { target, body, .. } => (target.clone(), body.to_vec()),
            HttpMessage::Response { status, body, .. } => (status.to_string(), body.to_vec()),
        })
        .collect()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("json")
}

#[test]
fn batch_fixture_each_part_filtered_as_if_alone() {
    let (ct, body) = http_fixture(include_str!(
        "../../../tests/fixtures/crm/dynamics/batch.request.http"
    ));
    let o = origins();
    // support writes no birthdates: the create would lose it, so the whole batch is refused
    let err = govern_request(&cx(purpose("support"), dv_tunnel(&o)), &ct, body.as_bytes())
        .expect_err("the create would lose its birthdate");
    assert_eq!(
        (err.part, err.cause),
        (
            1,
            Cause::Policy(Refusal::WriteFieldsDropped {
                field_paths: vec!["$.birthdate".into()],
                nothing_left: false
            })
        )
    );
    // without it, every part passes, each as if alone
    let body = body.replace(",\n  \"birthdate\": \"1990-04-01\"", "");
    let req = govern_request(&cx(purpose("support"), dv_tunnel(&o)), &ct, body.as_bytes())
        .expect("support may write contacts");
    assert_eq!(req.parts.len(), 2);
    assert_eq!(req.parts[0].id.as_deref(), Some("1"));
    assert_eq!(req.parts[0].route.template(), "POST /api/data/v*/contacts");
    assert_eq!(req.parts[1].route.template(), "GET /api/data/v*/contacts");
    assert_eq!(req.parts[1].method, "GET");
    // the write part, exactly as alone
    let sent = bodies(&req.body, &req.content_type);
    let create = json!({"firstname": "Saoirse", "lastname": "Vandermolen",
        "emailaddress1": "saoirse.v@example.ie"});
    let contacts = op(Dialect::Dynamics, "POST", "/api/data/v9.2/contacts");
    let (expected, out) = alone("support", &contacts, Direction::Request, &create);
    assert_eq!(json_of(&sent[0].1), expected);
    assert_eq!(req.parts[0].outcome, out);
    assert!(json_of(&sent[0].1).get("birthdate").is_none());
    // the read part: target forwarded canonical, query as sent
    assert!(sent[1].0.starts_with("/api/data/v9.2/contacts?$select="));
    assert_eq!(req.outcome().records, out.records);

    let (rct, rbody) = http_fixture(include_str!(
        "../../../tests/fixtures/crm/dynamics/batch.response.http"
    ));
    let resp = dv_response("support", &req, &rct, &rbody).expect("response governed");
    assert_eq!(resp.parts.len(), 2);
    assert_eq!(resp.parts[0].status, Some(204));
    // absolute upstream links in part headers are rewritten
    let entity = resp.parts[0]
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("odata-entityid"))
        .expect("entity id");
    assert!(entity
        .1
        .starts_with("https://zweck.example:8443/api/data/v9.2/contacts("));
    let got = bodies(&resp.body, &resp.content_type);
    let page: Value = json_of(&bodies(rbody.as_bytes(), &rct)[1].1);
    let list = op(Dialect::Dynamics, "GET", "/api/data/v9.2/contacts");
    let (mut expected, out) = alone("support", &list, Direction::Response, &page);
    LinkRewriter::new(ORIGINS[0], ORIGINS[1]).rewrite_json(&mut expected);
    assert_eq!(json_of(&got[1].1), expected);
    assert_eq!(resp.parts[1].outcome, out);
    assert_eq!(resp.records_per_part(), vec![0, 1]);
    assert!(!String::from_utf8_lossy(&resp.body).contains("contoso-fict"));
}

#[test]
fn batch_fixture_hidden_write_of_a_denied_purpose_is_refused() {
    let (ct, body) = http_fixture(include_str!(
        "../../../tests/fixtures/crm/dynamics/batch.request.http"
    ));
    let o = origins();
    let err = govern_request(
        &cx(purpose("newsletter"), dv_tunnel(&o)),
        &ct,
        body.as_bytes(),
    )
    .expect_err("newsletter may not write");
    assert_eq!(err.part, 1);
    assert_eq!(err.cause, Cause::Policy(Refusal::WriteDenied));
    let pe = ProxyError::from(ForPurpose(err.clone(), "newsletter"));
    assert_eq!(pe.status().as_u16(), 403);
    assert_eq!(pe.slug(), "write-denied");
    assert!(pe.to_string().contains("part 1"));
}

#[test]
fn batch_read_only_for_newsletter_consent_per_part() {
    let body = batch(&[
        http_part("GET /api/data/v9.2/contacts?$select=firstname HTTP/1.1\n"),
        http_part("GET contacts(6f0c1a2b-0000-4000-8000-00000000f020) HTTP/1.1\n"),
        http_part("GET /api/data/v9.2/WhoAmI HTTP/1.1\n"),
    ]);
    let req = dv_request("newsletter", &body).expect("reads pass");
    assert_eq!(req.parts.len(), 3);
    // a relative target stays relative, canonical; a `$select` gets the consent field
    let sent = bodies(&req.body, &req.content_type);
    assert_eq!(
        sent[0].0,
        "/api/data/v9.2/contacts?$select=firstname,donotbulkemail"
    );
    assert_eq!(sent[1].0, "contacts(6f0c1a2b-0000-4000-8000-00000000f020)");
    assert!(matches!(req.parts[2].route, PartRoute::Ungoverned { .. }));

    let list = r#"{"value":[{"contactid":"1","firstname":"Ada","emailaddress1":"ada@example.com","birthdate":"1990-04-01","donotbulkemail":false},{"contactid":"2","firstname":"Bob","donotbulkemail":true}]}"#;
    let single = r#"{"contactid":"2","firstname":"Bob","donotbulkemail":true}"#;
    let who = r#"{"UserId":"u","BusinessUnitId":"b","OrganizationId":"o"}"#;
    let resp_body = batch(&[
        http_part(&format!(
            "HTTP/1.1 200 OK\nContent-Type: application/json\n\n{list}"
        )),
        http_part(&format!(
            "HTTP/1.1 200 OK\nContent-Type: application/json\nETag: W/\"1\"\n\n{single}"
        )),
        http_part(&format!(
            "HTTP/1.1 200 OK\nContent-Type: application/json\n\n{who}"
        )),
    ]);
    let resp = dv_response("newsletter", &req, CT, &resp_body).expect("governed");
    let got = bodies(&resp.body, &resp.content_type);
    let list_op = op(Dialect::Dynamics, "GET", "/api/data/v9.2/contacts");
    let mut expected = json_of(list.as_bytes());
    let out = policy::apply_shaped(
        set(),
        purpose("newsletter"),
        &list_op,
        Direction::Response,
        &mut expected,
        Some(&key()),
        &req.parts[0].shape,
    )
    .expect("applies");
    assert_eq!(json_of(&got[0].1), expected);
    assert_eq!(resp.parts[0].outcome, out);
    assert!(!got[0].1.windows(14).any(|w| w == b"donotbulkemail"));
    // the single record lacks consent: the part answers 404, as it would alone
    assert_eq!(got[1].0, "404");
    assert!(resp.parts[1].withheld);
    assert!(!String::from_utf8_lossy(&got[1].1).contains("Bob"));
    // ungoverned part passes untouched
    assert_eq!(got[2].1, who.as_bytes());
    assert_eq!(resp.records_per_part(), vec![1, 0, 0]);
}

#[test]
fn batch_content_id_references_resolve_in_the_change_set() {
    let body = batch(&[change_set(&[
        ("1", "POST /api/data/v9.2/contacts HTTP/1.1\nContent-Type: application/json\n\n{\"firstname\":\"Ada\"}"),
        ("2", "PATCH $1 HTTP/1.1\nContent-Type: application/json\n\n{\"lastname\":\"Lovelace\"}"),
    ])]);
    let req = dv_request("support", &body).expect("reference to the created contact");
    assert_eq!(
        req.parts[1].route.template(),
        "PATCH /api/data/v*/contacts(*)"
    );
    assert_eq!(bodies(&req.body, &req.content_type)[1].0, "$1");
    for bad in [
        "PATCH $1/parentcustomerid_account HTTP/1.1",
        "PATCH $9 HTTP/1.1",
    ] {
        let body = batch(&[change_set(&[
            (
                "1",
                "POST /api/data/v9.2/contacts HTTP/1.1\nContent-Type: application/json\n\n{}",
            ),
            ("2", bad),
        ])]);
        let err = dv_request("support", &body).expect_err(bad);
        assert_eq!((err.part, err.cause), (2, Cause::UnknownResource), "{bad}");
    }
    // outside a change set there is nothing to refer to
    let err = dv_request("support", &batch(&[http_part("DELETE $1 HTTP/1.1\n")]))
        .expect_err("no change set");
    assert_eq!(err.cause, Cause::UnknownResource);
}

#[test]
fn batch_response_must_line_up_with_the_request() {
    let body = batch(&[http_part("GET /api/data/v9.2/contacts HTTP/1.1\n")]);
    let req = dv_request("support", &body).expect("ok");
    let ok = "HTTP/1.1 200 OK\nContent-Type: application/json\n\n{\"value\":[]}";
    let two = batch(&[http_part(ok), http_part(ok)]);
    let err = dv_response("support", &req, CT, &two).expect_err("more parts than asked");
    assert_eq!(err.cause, Cause::Unmatched);
    let text = batch(&[http_part(
        "HTTP/1.1 200 OK\nContent-Type: text/plain\n\nSECRET-VALUE-42",
    )]);
    let err = dv_response("support", &req, CT, &text).expect_err("not JSON");
    assert_eq!((err.part, err.cause.clone()), (1, Cause::MediaType));
    assert_eq!(
        ProxyError::from(ForPurpose(err.clone(), "support"))
            .status()
            .as_u16(),
        502
    );
    let broken = batch(&[http_part(
        "HTTP/1.1 200 OK\nContent-Type: application/json\n\n{\"value\":[",
    )]);
    let err = dv_response("support", &req, CT, &broken).expect_err("bad JSON");
    assert!(matches!(err.cause, Cause::Malformed(_)));
    let blocked = batch(&[http_part(
        "HTTP/1.1 200 OK\nContent-Type: application/json\n\n{\"value\":[{\"contactid\":\"1\",\"governmentid\":\"SECRET-VALUE-42\"}]}",
    )]);
    let err = dv_response("support", &req, CT, &blocked).expect_err("blocked category");
    assert!(matches!(err.cause, Cause::Policy(Refusal::Blocked { .. })));
    assert!(!err.to_string().contains("SECRET"));
    // a change set that failed as a whole answers with one error part
    let cs = batch(&[change_set(&[(
        "1",
        "POST /api/data/v9.2/contacts HTTP/1.1\nContent-Type: application/json\n\n{\"firstname\":\"Ada\"}",
    )])]);
    let req = dv_request("support", &cs).expect("ok");
    let failed = batch(&[http_part(
        "HTTP/1.1 400 Bad Request\nContent-Type: application/json\n\n{\"error\":{\"code\":\"0x1\",\"message\":\"SECRET-VALUE-42 is bad\"}}",
    )]);
    let resp = dv_response("support", &req, CT, &failed).expect("error part governed");
    assert!(!String::from_utf8_lossy(&resp.body).contains("SECRET"));
}

/// One row: a $batch that must be refused, the part it names and the cause.
fn dv_refused(name: &str, purpose_name: &str, body: &str, part: usize, cause: fn(&Cause) -> bool) {
    let err = dv_request(purpose_name, body).expect_err(name);
    assert_eq!(err.part, part, "{name}: {err}");
    assert!(cause(&err.cause), "{name}: {err}");
    let shown = format!(
        "{err} {}",
        ProxyError::from(ForPurpose(err.clone(), purpose_name))
    );
    assert!(!shown.contains("SECRET"), "{name}: {shown}");
}

/// (name, purpose, body, refused part, expected cause).
type DvRow = (
    &'static str,
    &'static str,
    String,
    usize,
    fn(&Cause) -> bool,
);

#[test]
fn batch_bypass_table() {
    let get = |t: &str| http_part(&format!("GET {t} HTTP/1.1\n"));
    let ok = get("/api/data/v9.2/contacts");
    let unknown = |c: &Cause| *c == Cause::UnknownResource;
    let bad_url = |c: &Cause| matches!(c, Cause::BadUrl(_));
    let malformed = |c: &Cause| matches!(c, Cause::Malformed(_));
    let rows: Vec<DvRow> = vec![
        ("unknown entity set", "support", batch(&[ok.clone(), get("/api/data/v9.2/systemusers")]), 2, unknown),
        ("unknown relative entity set", "support", batch(&[get("systemusers?$top=1")]), 1, unknown),
        ("navigation past a key", "support", batch(&[get("/api/data/v9.2/contacts(1)/parentcustomerid_account")]), 1, unknown),
        ("dot segments", "support", batch(&[get("/api/data/v9.2/contacts/../systemusers")]), 1, bad_url),
        ("encoded slash", "support", batch(&[get("/api/data/v9.2/contacts%2F..%2Fsystemusers")]), 1, bad_url),
        ("double slash", "support", batch(&[get("/api/data/v9.2//contacts")]), 1, bad_url),
        ("other service root", "support", batch(&[get("/api/data/v9.1/contacts")]), 1, bad_url),
        ("another upstream's path", "support", batch(&[get("/services/data/v66.0/query")]), 1, bad_url),
        ("foreign origin", "support", batch(&[get("https://evil.example/api/data/v9.2/contacts")]), 1, bad_url),
        ("look-alike origin", "support", batch(&[get("https://contoso-fict.crm4.dynamics.com.evil.example/api/data/v9.2/contacts")]), 1, bad_url),
        ("userinfo", "support", batch(&[get("https://x@contoso-fict.crm4.dynamics.com/api/data/v9.2/contacts")]), 1, bad_url),
        ("network path", "support", batch(&[get("//evil.example/api/data/v9.2/contacts")]), 1, bad_url),
        ("other scheme", "support", batch(&[get("file:/etc/passwd")]), 1, bad_url),
        ("fragment", "support", batch(&[get("contacts#x")]), 1, bad_url),
        ("GET in a change set", "support", batch(&[change_set(&[("1", "GET /api/data/v9.2/contacts HTTP/1.1\n")])]), 1, |c| *c == Cause::NotAllowed(Inspection::GetInChangeSet)),
        ("nested batch", "support", batch(&[http_part("POST /api/data/v9.2/$batch HTTP/1.1\nContent-Type: multipart/mixed; boundary=x\n\n--x--")]), 1, |c| *c == Cause::Nested),
        ("change set in a change set", "support", "--b\nContent-Type: multipart/mixed; boundary=cs\n\n--cs\nContent-Type: multipart/mixed; boundary=inner\n\n--inner--\n--cs--\n--b--\n".to_string(), 1, |c| *c == Cause::Nested),
        ("override header", "support", batch(&[http_part("POST /api/data/v9.2/contacts HTTP/1.1\nX-HTTP-Method: DELETE\nContent-Type: application/json\n\n{}")]), 1, |c| *c == Cause::MethodOverride),
        ("override parameter", "support", batch(&[get("contacts?_HttpMethod=DELETE")]), 1, |c| *c == Cause::MethodOverride),
        ("encoded override parameter", "support", batch(&[get("contacts?%5FMethod=DELETE")]), 1, |c| *c == Cause::MethodOverride),
        ("odd method", "support", batch(&[http_part("MERGE /api/data/v9.2/contacts(1) HTTP/1.1\n")]), 1, |c| *c == Cause::NotAllowed(Inspection::Method)),
        ("hidden delete of a denied purpose", "newsletter", batch(&[ok.clone(), http_part("DELETE /api/data/v9.2/contacts(1) HTTP/1.1\n")]), 2, |c| *c == Cause::Policy(Refusal::WriteDenied)),
        ("hidden write in a change set", "analytics", batch(&[ok.clone(), change_set(&[("1", "PATCH contacts(1) HTTP/1.1\nContent-Type: application/json\n\n{\"firstname\":\"SECRET\"}")])]), 2, |c| *c == Cause::Policy(Refusal::WriteDenied)),
        ("blocked category in a write", "support", batch(&[http_part("PATCH contacts(1) HTTP/1.1\nContent-Type: application/json\n\n{\"governmentid\":\"SECRET-1\"}")]), 1, |c| matches!(c, Cause::Policy(Refusal::Blocked { .. }))),
        ("body on GET", "support", batch(&[http_part("GET contacts HTTP/1.1\nContent-Type: application/json\n\n{\"a\":1}")]), 1, |c| *c == Cause::NotAllowed(Inspection::BodyNotAllowed)),
        ("non-JSON write", "support", batch(&[http_part("PATCH contacts(1) HTTP/1.1\nContent-Type: text/plain\n\nfirstname=SECRET")]), 1, |c| *c == Cause::MediaType),
        ("encoded write", "support", batch(&[http_part("PATCH contacts(1) HTTP/1.1\nContent-Type: application/json\nContent-Encoding: gzip\n\n{}")]), 1, |c| *c == Cause::MediaType),
        ("duplicate keys", "support", batch(&[http_part("PATCH contacts(1) HTTP/1.1\nContent-Type: application/json\n\n{\"firstname\":\"a\",\"firstname\":\"SECRET\"}")]), 1, malformed),
        ("duplicate Content-ID", "support", batch(&[change_set(&[("1", "DELETE contacts(1) HTTP/1.1\n"), ("1", "DELETE contacts(2) HTTP/1.1\n")])]), 2, malformed),
        ("a response in a request", "support", batch(&[http_part("HTTP/1.1 200 OK\n")]), 1, malformed),
        ("no close delimiter", "support", http_part("GET contacts HTTP/1.1\n"), 0, malformed),
        ("bad part content type", "support", "--b\nContent-Type: text/plain\n\nGET contacts HTTP/1.1\n\n--b--\n".to_string(), 1, malformed),
        ("wrong Content-Length", "support", batch(&[http_part("PATCH contacts(1) HTTP/1.1\nContent-Type: application/json\nContent-Length: 2\n\n{\"firstname\":\"x\"}")]), 1, malformed),
    ];
    for (name, p, body, part, cause) in rows {
        dv_refused(name, p, &body, part, cause);
    }
    // the whole batch is refused with 403 unknown-resource naming the part
    let err = dv_request("support", &batch(&[ok, get("/api/data/v9.2/systemusers")]))
        .expect_err("unknown");
    let pe = ProxyError::from(ForPurpose(err.clone(), "support"));
    assert_eq!((pe.status().as_u16(), pe.slug()), (403, "unknown-resource"));
    assert!(pe.to_string().starts_with("part 2 of the batch"));
}

#[test]
fn batch_urls_are_forwarded_canonical() {
    let body = batch(&[
        http_part("GET https://ZWECK.example:8443/api/data/v9.2/contact%73?$top=1 HTTP/1.1\n"),
        http_part(
            "GET https://contoso-fict.crm4.dynamics.com:443/api/data/v9.2/accounts HTTP/1.1\n",
        ),
        http_part("GET contact%73 HTTP/1.1\n"),
    ]);
    let req = dv_request("support", &body).expect("accepted origins");
    let sent: Vec<String> = bodies(&req.body, &req.content_type)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        sent,
        [
            "/api/data/v9.2/contacts?$top=1",
            "/api/data/v9.2/accounts",
            "contacts"
        ]
    );
}

#[test]
fn batch_part_headers_are_allowlisted() {
    let body = batch(&[http_part(
        "PATCH contacts(1) HTTP/1.1\nContent-Type: application/json\nAuthorization: Bearer SECRET\nPrefer: return=representation\nCookie: a=b\n\n{\"firstname\":\"Ada\"}",
    )]);
    let req = dv_request("support", &body).expect("ok");
    let text = String::from_utf8_lossy(&req.body).to_string();
    assert!(!text.contains("SECRET") && !text.contains("Cookie"));
    assert!(text.contains("Prefer: return=representation"));
}

// ---------------------------------------------------------------------------------------
// Salesforce composite

fn sf_tunnel<'a>(kind: TunnelKind, path: &'a str, origins: &'a [String]) -> Tunnel<'a> {
    Tunnel {
        dialect: Dialect::Salesforce,
        kind,
        path,
        origins,
    }
}

fn kind_path(kind: TunnelKind) -> &'static str {
    match kind {
        TunnelKind::SfComposite => "/services/data/v66.0/composite",
        TunnelKind::SfCompositeBatch => "/services/data/v66.0/composite/batch",
        TunnelKind::SfTree => "/services/data/v66.0/composite/tree/Account",
        TunnelKind::SfGraph => "/services/data/v66.0/composite/graph",
        TunnelKind::OdataBatch => DV_PATH,
    }
}

fn sf_request(kind: TunnelKind, p: &str, body: &Value) -> Result<GovernedRequest, TunnelRefusal> {
    let o = origins();
    govern_request(
        &cx(purpose(p), sf_tunnel(kind, kind_path(kind), &o)),
        "application/json",
        body.to_string().as_bytes(),
    )
}

fn sf_response(
    p: &str,
    req: &GovernedRequest,
    body: &Value,
) -> Result<GovernedResponse, TunnelRefusal> {
    let o = origins();
    govern_response(
        &cx(purpose(p), sf_tunnel(req.kind, kind_path(req.kind), &o)),
        req,
        "application/json",
        body.to_string().as_bytes(),
        None,
    )
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture")
}

#[test]
fn composite_fixture_each_part_filtered_as_if_alone() {
    let body = fixture(include_str!(
        "../../../tests/fixtures/crm/salesforce/composite.request.json"
    ));
    let req = sf_request(TunnelKind::SfComposite, "support", &body).expect("support writes");
    assert_eq!(req.parts.len(), 3);
    assert_eq!(req.parts[2].id.as_deref(), Some("refQuery"));
    assert_eq!(req.parts[2].route.template(), "GET /services/data/v*/query");
    let sent = json_of(&req.body);
    for (i, path) in [
        (0, "/services/data/v66.0/sobjects/Account"),
        (1, "/services/data/v66.0/sobjects/Contact"),
    ] {
        let o = op(Dialect::Salesforce, "POST", path);
        let (expected, out) = alone(
            "support",
            &o,
            Direction::Request,
            &body["compositeRequest"][i]["body"],
        );
        assert_eq!(sent["compositeRequest"][i]["body"], expected);
        assert_eq!(req.parts[i].outcome, out);
    }
    // the id reference in the query passes as opaque text
    assert!(sent["compositeRequest"][2]["url"]
        .as_str()
        .expect("url")
        .contains("@{refAccount.id}"));

    let resp_body = fixture(include_str!(
        "../../../tests/fixtures/crm/salesforce/composite.response.json"
    ));
    let resp = sf_response("support", &req, &resp_body).expect("governed");
    let got = json_of(&resp.body);
    let q = op(Dialect::Salesforce, "GET", "/services/data/v66.0/query/");
    let (expected, out) = alone(
        "support",
        &q,
        Direction::Response,
        &resp_body["compositeResponse"][2]["body"],
    );
    assert_eq!(got["compositeResponse"][2]["body"], expected);
    assert_eq!(resp.parts[2].outcome, out);
    assert_eq!(resp.records_per_part(), vec![0, 0, 1]);
    assert_eq!(resp.parts[0].headers[0].0, "Location");
    assert_eq!(got["compositeResponse"][1]["referenceId"], "refContact");
}

#[test]
fn composite_reads_for_analytics_are_pseudonymised_per_part() {
    let body = json!({"compositeRequest": [
        {"method": "GET", "url": "/services/data/v66.0/query/?q=SELECT+Id,Email+FROM+Contact", "referenceId": "q"},
        {"method": "GET", "url": "/services/data/v66.0/sobjects/Contact/003A", "referenceId": "c"},
        {"method": "GET", "url": "/services/data/v66.0/limits", "referenceId": "l"},
    ]});
    let req = sf_request(TunnelKind::SfComposite, "analytics", &body).expect("reads");
    let page = json!({"totalSize": 1, "done": true, "records": [
        {"attributes": {"type": "Contact"}, "Id": "003A", "Email": "ada@example.com", "FirstName": "Ada", "Birthdate": "1990-04-01"}]});
    let one = json!({"attributes": {"type": "Contact"}, "Id": "003A", "Email": "ada@example.com", "Phone": "+49 30 1234"});
    let limits = json!({"DailyApiRequests": {"Max": 15000, "Remaining": 14998}});
    let resp_body = json!({"compositeResponse": [
        {"body": one, "httpHeaders": {"X-Debug": "SECRET"}, "httpStatusCode": 200, "referenceId": "c"},
        {"body": page, "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "q"},
        {"body": limits, "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "l"},
    ], "extra": "SECRET"});
    let resp = sf_response("analytics", &req, &resp_body).expect("governed");
    let got = json_of(&resp.body);
    assert!(got.get("extra").is_none());
    let q = op(Dialect::Salesforce, "GET", "/services/data/v66.0/query/");
    let (expected, _) = alone("analytics", &q, Direction::Response, &page);
    assert_eq!(got["compositeResponse"][1]["body"], expected);
    let c = op(
        Dialect::Salesforce,
        "GET",
        "/services/data/v66.0/sobjects/Contact/003A",
    );
    let (expected, _) = alone("analytics", &c, Direction::Response, &one);
    assert_eq!(got["compositeResponse"][0]["body"], expected);
    assert!(got["compositeResponse"][0]["body"]["Email"]
        .as_str()
        .expect("pz")
        .starts_with("pz1_"));
    assert_eq!(got["compositeResponse"][0]["httpHeaders"], json!({}));
    // matched by referenceId, not by position
    assert_eq!(resp.parts[0].index, 2);
    assert_eq!(got["compositeResponse"][2]["body"], limits);
}

#[test]
fn composite_withheld_record_becomes_404_part() {
    let body = json!({"compositeRequest": [
        {"method": "GET", "url": "/services/data/v66.0/sobjects/Contact/003B", "referenceId": "c"}]});
    let req = sf_request(TunnelKind::SfComposite, "newsletter", &body).expect("read");
    let resp_body = json!({"compositeResponse": [{"body":
        {"attributes": {"type": "Contact"}, "Id": "003B", "FirstName": "SECRET", "HasOptedOutOfEmail": true},
        "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "c"}]});
    let resp = sf_response("newsletter", &req, &resp_body).expect("governed");
    let got = json_of(&resp.body);
    assert_eq!(got["compositeResponse"][0]["httpStatusCode"], 404);
    assert!(!resp
        .body
        .iter()
        .as_slice()
        .windows(6)
        .any(|w| w == b"SECRET"));
    assert!(resp.parts[0].withheld);
    assert_eq!(resp.parts[0].status, Some(404));
}

#[test]
fn composite_sobjects_inside_composite_is_governed_by_type() {
    let create = fixture(include_str!(
        "../../../tests/fixtures/crm/salesforce/composite-sobjects-create.request.json"
    ));
    let body = json!({"compositeRequest": [
        {"method": "POST", "url": "/services/data/v66.0/composite/sobjects", "referenceId": "coll", "body": create}]});
    let req = sf_request(TunnelKind::SfComposite, "billing", &body).expect("billing writes");
    let o = op(
        Dialect::Salesforce,
        "POST",
        "/services/data/v66.0/composite/sobjects",
    );
    let (expected, out) = alone("billing", &o, Direction::Request, &create);
    assert_eq!(json_of(&req.body)["compositeRequest"][0]["body"], expected);
    assert_eq!(req.parts[0].outcome, out);
    let resp_body = json!({"compositeResponse": [{"body": fixture(include_str!("../../../tests/fixtures/crm/salesforce/composite-sobjects-create.response.json")),
        "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "coll"}]});
    let resp = sf_response("billing", &req, &resp_body).expect("governed");
    let got = json_of(&resp.body);
    assert!(
        !got.to_string().contains("not-an-email"),
        "messages echo values and go"
    );
}

#[test]
fn composite_top_level_errors_keep_codes_only() {
    let body = json!({"compositeRequest": [
        {"method": "GET", "url": "/services/data/v66.0/sobjects/Contact/003A", "referenceId": "c"}]});
    let req = sf_request(TunnelKind::SfComposite, "support", &body).expect("read");
    let resp = sf_response("support", &req, &json!([{"errorCode": "INVALID_FIELD", "message": "SECRET in Email", "fields": ["Email"]}, "SECRET"]))
        .expect("error list");
    assert_eq!(
        json_of(&resp.body),
        json!([{"errorCode": "INVALID_FIELD", "fields": ["Email"]}])
    );
}

#[test]
fn composite_batch_and_tree() {
    let lossy = json!({"haltOnError": false, "batchRequests": [
        {"method": "GET", "url": "v66.0/sobjects/Contact/003A"},
        {"method": "PATCH", "url": "v66.0/sobjects/Contact/003A", "richInput": {"FirstName": "Ada", "Birthdate": "1990-04-01"}},
    ]});
    let err = sf_request(TunnelKind::SfCompositeBatch, "support", &lossy).expect_err("lossy");
    assert_eq!(
        (err.part, err.cause),
        (
            2,
            Cause::Policy(Refusal::WriteFieldsDropped {
                field_paths: vec!["$.Birthdate".into()],
                nothing_left: false
            })
        )
    );
    let body = json!({"haltOnError": false, "batchRequests": [
        {"method": "GET", "url": "v66.0/sobjects/Contact/003A"},
        {"method": "PATCH", "url": "v66.0/sobjects/Contact/003A", "richInput": {"FirstName": "Ada"}},
    ]});
    let req = sf_request(TunnelKind::SfCompositeBatch, "support", &body).expect("batch");
    let sent = json_of(&req.body);
    assert_eq!(
        sent["batchRequests"][0]["url"],
        "v66.0/sobjects/Contact/003A"
    );
    assert_eq!(
        sent["batchRequests"][1]["richInput"],
        json!({"FirstName": "Ada"})
    );
    let resp_body = json!({"hasErrors": false, "results": [
        {"statusCode": 200, "result": {"attributes": {"type": "Contact"}, "Id": "003A", "Birthdate": "1990-04-01", "FirstName": "Ada"}},
        {"statusCode": 204, "result": null}]});
    let resp = sf_response("support", &req, &resp_body).expect("governed");
    let got = json_of(&resp.body);
    assert_eq!(
        got["results"][0]["result"]["Birthdate"],
        Value::Null,
        "support redacts"
    );
    assert_eq!(resp.records_per_part(), vec![1, 0]);
    let err = sf_request(TunnelKind::SfCompositeBatch, "newsletter", &body).expect_err("write");
    assert_eq!(
        (err.part, err.cause),
        (2, Cause::Policy(Refusal::WriteDenied))
    );

    let tree = |c1: Value| {
        json!({"records": [{
        "attributes": {"type": "Account", "referenceId": "acc1"}, "Name": "Imaginary Tooling",
        "Contacts": {"records": [
            c1,
            {"attributes": {"type": "Contact", "referenceId": "c2"}, "LastName": "Drury"}]}}]})
    };
    let lossy = tree(
        json!({"attributes": {"type": "Contact", "referenceId": "c1"}, "LastName": "Castellane", "Birthdate": "1990-04-01"}),
    );
    let err = sf_request(TunnelKind::SfTree, "support", &lossy).expect_err("lossy record");
    assert_eq!(err.part, 2, "{err}");
    let tree = tree(
        json!({"attributes": {"type": "Contact", "referenceId": "c1"}, "LastName": "Castellane"}),
    );
    let req = sf_request(TunnelKind::SfTree, "support", &tree).expect("tree");
    assert_eq!(req.parts.len(), 3);
    assert_eq!(req.parts[1].id.as_deref(), Some("c1"));
    let sent = json_of(&req.body);
    assert_eq!(
        sent["records"][0]["Contacts"]["records"][0]["LastName"],
        "Castellane"
    );
    assert_eq!(sent["records"][0]["Name"], "Imaginary Tooling");
    let resp_body = json!({"hasErrors": false, "results": [
        {"referenceId": "acc1", "id": "001A"}, {"referenceId": "c1", "id": "003A"},
        {"referenceId": "c2", "errors": [{"statusCode": "X", "message": "SECRET", "fields": ["LastName"]}]}]});
    let resp = sf_response("support", &req, &resp_body).expect("governed");
    let got = json_of(&resp.body);
    assert_eq!(
        got["results"][1],
        json!({"referenceId": "c1", "id": "003A"})
    );
    assert!(!got.to_string().contains("SECRET"));
    let bad = json!({"hasErrors": false, "results": [{"referenceId": "nope", "id": "001A"}]});
    assert_eq!(
        sf_response("support", &req, &bad)
            .expect_err("unknown ref")
            .cause,
        Cause::Unmatched
    );
}

/// One row: a composite body that must be refused.
type SfRow = (
    &'static str,
    TunnelKind,
    &'static str,
    Value,
    usize,
    fn(&Cause) -> bool,
);

#[test]
fn composite_bypass_table() {
    use TunnelKind::{SfComposite as C, SfCompositeBatch as B, SfGraph as G, SfTree as T};
    let sub = |m: &str, url: &str, r: &str| json!({"method": m, "url": url, "referenceId": r});
    let get_ok = sub("GET", "/services/data/v66.0/sobjects/Contact/003A", "ok");
    let comp = |subs: Vec<Value>| json!({"compositeRequest": subs});
    let unknown = |c: &Cause| *c == Cause::UnknownResource;
    let bad_url = |c: &Cause| matches!(c, Cause::BadUrl(_));
    let malformed = |c: &Cause| matches!(c, Cause::Malformed(_));
    let reference = |c: &Cause| *c == Cause::Reference;
    let denied = |c: &Cause| *c == Cause::Policy(Refusal::WriteDenied);
    let rows: Vec<SfRow> = vec![
        ("GET on an unclassified path", C, "support", comp(vec![get_ok.clone(), sub("GET", "/services/data/v66.0/sobjects/User/005A", "u")]), 2, unknown),
        ("unclassified query-like path", C, "support", comp(vec![sub("GET", "/services/data/v66.0/search/?q=FIND+{x}", "s")]), 1, unknown),
        ("tooling API", C, "support", comp(vec![sub("GET", "/services/data/v66.0/tooling/query/?q=x", "t")]), 1, unknown),
        ("nested composite", C, "support", comp(vec![json!({"method": "POST", "url": "/services/data/v66.0/composite", "referenceId": "n", "body": {"compositeRequest": []}})]), 1, |c| *c == Cause::Nested),
        ("nested composite batch", C, "support", comp(vec![json!({"method": "POST", "url": "/services/data/v66.0/composite/batch", "referenceId": "n", "body": {"batchRequests": []}})]), 1, |c| *c == Cause::Nested),
        ("relative url", C, "support", comp(vec![sub("GET", "v66.0/sobjects/Contact/003A", "r")]), 1, bad_url),
        ("absolute url", C, "support", comp(vec![sub("GET", "https://contoso-fict.crm4.dynamics.com/services/data/v66.0/sobjects/Contact/003A", "r")]), 1, bad_url),
        ("other version", C, "support", comp(vec![sub("GET", "/services/data/v20.0/sobjects/Contact/003A", "r")]), 1, bad_url),
        ("dot segments", C, "support", comp(vec![sub("GET", "/services/data/v66.0/sobjects/Contact/../../sobjects/User/1", "r")]), 1, bad_url),
        ("override parameter", C, "support", comp(vec![sub("GET", "/services/data/v66.0/sobjects/Contact/003A?_HttpMethod=DELETE", "r")]), 1, |c| *c == Cause::MethodOverride),
        ("override header", C, "support", comp(vec![json!({"method": "GET", "url": "/services/data/v66.0/sobjects/Contact/003A", "referenceId": "r", "httpHeaders": {"X-HTTP-Method-Override": "DELETE"}})]), 1, |c| *c == Cause::MethodOverride),
        ("lowercase method", C, "support", comp(vec![sub("delete", "/services/data/v66.0/sobjects/Contact/003A", "r")]), 1, |c| *c == Cause::NotAllowed(Inspection::Method)),
        ("hidden delete of a denied purpose", C, "newsletter", comp(vec![get_ok.clone(), sub("DELETE", "/services/data/v66.0/sobjects/Contact/003A", "d")]), 2, denied),
        ("hidden write of a denied purpose", C, "analytics", comp(vec![get_ok.clone(), json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003A", "referenceId": "w", "body": {"FirstName": "SECRET"}})]), 2, denied),
        ("collection write of a denied purpose", C, "newsletter", comp(vec![json!({"method": "PATCH", "url": "/services/data/v66.0/composite/sobjects", "referenceId": "w", "body": {"records": [{"attributes": {"type": "Contact"}, "Id": "003A", "FirstName": "SECRET"}]}})]), 1, denied),
        ("value reference in a write", C, "support", comp(vec![get_ok.clone(), json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003B", "referenceId": "w", "body": {"FirstName": "@{ok.Birthdate}"}})]), 2, reference),
        ("escaped reference", C, "support", comp(vec![json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003B", "referenceId": "w", "body": {"FirstName": "\u{40}{ok.records[0].Email}"}})]), 1, reference),
        ("value reference in a url", C, "support", comp(vec![sub("GET", "/services/data/v66.0/sobjects/Contact/@{ok.Email}", "r")]), 1, reference),
        ("encoded reference in a url", C, "support", comp(vec![sub("GET", "/services/data/v66.0/query/?q=SELECT+Id+FROM+Contact+WHERE+Email='@%7Bok.Email%7D'", "r")]), 1, reference),
        ("value reference in a header", C, "support", comp(vec![json!({"method": "GET", "url": "/services/data/v66.0/sobjects/Contact/003A", "referenceId": "r", "httpHeaders": {"If-Match": "@{ok.Email}"}})]), 1, reference),
        ("unknown envelope key", C, "support", json!({"compositeRequest": [], "graphs": []}), 0, malformed),
        ("unknown sub-request key", C, "support", comp(vec![json!({"method": "GET", "url": "/services/data/v66.0/sobjects/Contact/003A", "referenceId": "r", "binaryPartName": "x"})]), 1, malformed),
        ("duplicate referenceId", C, "support", comp(vec![get_ok.clone(), get_ok.clone()]), 2, malformed),
        ("missing referenceId", C, "support", comp(vec![json!({"method": "GET", "url": "/services/data/v66.0/sobjects/Contact/003A"})]), 1, malformed),
        ("odd referenceId", C, "support", comp(vec![sub("GET", "/services/data/v66.0/sobjects/Contact/003A", "a.b")]), 1, malformed),
        ("not an object", C, "support", json!(["x"]), 0, malformed),
        ("batch binary part", B, "support", json!({"batchRequests": [{"method": "PATCH", "url": "v66.0/sobjects/Contact/003A", "binaryPartName": "f"}]}), 1, malformed),
        ("batch unknown path", B, "support", json!({"batchRequests": [{"method": "GET", "url": "v66.0/sobjects/User/005A"}]}), 1, unknown),
        ("batch foreign root", B, "support", json!({"batchRequests": [{"method": "GET", "url": "../../crm/v3/objects/contacts"}]}), 1, bad_url),
        ("tree type not in the url", T, "support", json!({"records": [{"attributes": {"type": "Contact", "referenceId": "a"}, "LastName": "x"}]}), 1, malformed),
        ("tree child of an unknown type", T, "support", json!({"records": [{"attributes": {"type": "Account", "referenceId": "a"}, "Name": "x", "Opportunities": {"records": [{"attributes": {"type": "Opportunity", "referenceId": "o"}, "Name": "SECRET"}]}}]}), 2, unknown),
        ("tree nested-only type", T, "support", json!({"records": [{"attributes": {"type": "Account", "referenceId": "a"}, "Cases": {"records": [{"attributes": {"type": "Case", "referenceId": "k"}, "Subject": "SECRET"}]}}]}), 2, unknown),
        ("tree child container extras", T, "support", json!({"records": [{"attributes": {"type": "Account", "referenceId": "a"}, "Contacts": {"records": [], "done": true}}]}), 1, malformed),
        ("tree write of a denied purpose", T, "newsletter", json!({"records": [{"attributes": {"type": "Account", "referenceId": "a"}, "Name": "x"}]}), 1, denied),
        ("nested graph", C, "support", comp(vec![json!({"method": "POST", "url": "/services/data/v66.0/composite/graph", "referenceId": "n", "body": {"graphs": []}})]), 1, |c| *c == Cause::Nested),
        ("graph unknown envelope key", G, "support", json!({"graphs": [], "allOrNone": false}), 0, malformed),
        ("graph unknown graph key", G, "support", json!({"graphs": [{"graphId": "g", "compositeRequest": [], "x": 1}]}), 0, malformed),
        ("graph without an id", G, "support", json!({"graphs": [{"compositeRequest": [get_ok.clone()]}]}), 0, malformed),
        ("odd graphId", G, "support", json!({"graphs": [{"graphId": "a/b", "compositeRequest": [get_ok.clone()]}]}), 0, malformed),
        ("duplicate graphId", G, "support", json!({"graphs": [{"graphId": "g", "compositeRequest": [get_ok.clone()]}, {"graphId": "g", "compositeRequest": []}]}), 0, malformed),
        ("graph node on an unclassified path", G, "support", json!({"graphs": [{"graphId": "g1", "compositeRequest": [get_ok.clone()]}, {"graphId": "g2", "compositeRequest": [sub("GET", "/services/data/v66.0/sobjects/User/005A", "u")]}]}), 2, unknown),
        ("graph hidden write of a denied purpose", G, "newsletter", json!({"graphs": [{"graphId": "g", "compositeRequest": [get_ok.clone(), json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003A", "referenceId": "w", "body": {"FirstName": "SECRET"}})]}]}), 2, denied),
        ("graph value reference", G, "support", json!({"graphs": [{"graphId": "g", "compositeRequest": [get_ok.clone(), json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003B", "referenceId": "w", "body": {"FirstName": "@{ok.Birthdate}"}})]}]}), 2, reference),
    ];
    for (name, kind, p, body, part, cause) in rows {
        let err = sf_request(kind, p, &body).expect_err(name);
        assert_eq!(err.part, part, "{name}: {err}");
        assert!(cause(&err.cause), "{name}: {err:?}");
        let shown = format!("{err} {}", ProxyError::from(ForPurpose(err.clone(), p)));
        assert!(
            !shown.contains("SECRET") && !shown.contains("Email}"),
            "{name}: {shown}"
        );
    }
}

#[test]
fn references_in_dropped_fields_never_flow() {
    // an unclassified key is dropped by the write policy, which refuses the lossy write: the
    // reference is not forwarded
    let body = json!({"compositeRequest": [{"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003B",
        "referenceId": "w", "body": {"@{ok.Email}": "x", "FirstName": "Ada"}}]});
    let err = sf_request(TunnelKind::SfComposite, "support", &body).expect_err("lossy");
    assert!(
        matches!(err.cause, Cause::Policy(Refusal::WriteFieldsDropped { .. })),
        "{err:?}"
    );
    // a surviving key with a reference would be refused
    assert!(!value_references_ok(&json!({"@{ok.Email}": 1})));
}

#[test]
fn id_references_are_accepted() {
    for ok in [
        "@{a.id}",
        "x @{refAccount.id} y",
        "@{q.records[0].Id}",
        "@{a_1.b.ID}",
        "no refs",
    ] {
        assert!(references_ok(ok), "{ok}");
    }
    for bad in [
        "@{a}",
        "@{a.Email}",
        "@{a.id",
        "@{a..id}",
        "@{a[x].id}",
        "@{a.id}%7B",
        "@{ a.id}",
    ] {
        assert!(!references_ok(bad), "{bad}");
    }
}

#[test]
fn tunnel_operations_are_refused_by_apply() {
    // Until the proxy hands a tunnel to this module, its body is never filtered as a record.
    let o = op(
        Dialect::Salesforce,
        "POST",
        "/services/data/v66.0/composite",
    );
    assert_eq!(o.tunnel(), Some(TunnelKind::SfComposite));
    let mut body = json!({"compositeRequest": []});
    assert!(policy::apply(
        set(),
        purpose("support"),
        &o,
        Direction::Request,
        &mut body,
        None
    )
    .is_err());
    let o = op(Dialect::Dynamics, "POST", DV_PATH);
    assert_eq!(o.tunnel(), Some(TunnelKind::OdataBatch));
    for (path, kind) in [
        (
            "/services/data/v66.0/composite/batch",
            TunnelKind::SfCompositeBatch,
        ),
        (
            "/services/data/v66.0/composite/tree/Contact",
            TunnelKind::SfTree,
        ),
    ] {
        assert_eq!(op(Dialect::Salesforce, "POST", path).tunnel(), Some(kind));
    }
}

#[test]
fn composite_graph_nodes_governed_per_graph_and_a_lossy_node_refuses_all() {
    let node = |r: &str, body: Value| json!({"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/003A", "referenceId": r, "body": body});
    let graphs = |second: Value| {
        json!({"graphs": [
            {"graphId": "g1", "compositeRequest": [
                {"method": "POST", "url": "/services/data/v66.0/sobjects/Contact", "referenceId": "c", "body": {"LastName": "Graph"}},
                node("u", json!({"FirstName": "Ada"}))]},
            {"graphId": "g2", "compositeRequest": [node("u", second)]}]})
    };
    // a node that would lose a field refuses the whole request, naming its part
    let err = sf_request(
        TunnelKind::SfGraph,
        "support",
        &graphs(json!({"FirstName": "Ada", "Birthdate": "1990-04-01"})),
    )
    .expect_err("lossy node");
    assert_eq!(
        (err.part, err.cause),
        (
            3,
            Cause::Policy(Refusal::WriteFieldsDropped {
                field_paths: vec!["$.Birthdate".into()],
                nothing_left: false
            })
        )
    );
    let req = sf_request(
        TunnelKind::SfGraph,
        "support",
        &graphs(json!({"Title": "Dr"})),
    )
    .expect("support writes");
    let ids: Vec<_> = req.parts.iter().map(|p| p.id.as_deref()).collect();
    assert_eq!(ids, [Some("g1/c"), Some("g1/u"), Some("g2/u")]);
    let sent = json_of(&req.body);
    assert_eq!(
        sent["graphs"][1]["compositeRequest"][0]["body"],
        json!({"Title": "Dr"})
    );
    // reference ids repeat across graphs; results match by graph and reference
    let resp_body = json!({"graphs": [
        {"graphId": "g2", "isSuccessful": false, "graphResponse": {"compositeResponse": [
            {"body": [{"errorCode": "ENTITY_IS_DELETED", "message": "SECRET deleted"}], "httpHeaders": {}, "httpStatusCode": 404, "referenceId": "u"}]}},
        {"graphId": "g1", "isSuccessful": true, "extra": "SECRET", "graphResponse": {"compositeResponse": [
            {"body": {"id": "003N", "success": true, "errors": []}, "httpHeaders": {"Location": "/services/data/v66.0/sobjects/Contact/003N"}, "httpStatusCode": 201, "referenceId": "c"},
            {"body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "u"}]}}]});
    let resp = sf_response("support", &req, &resp_body).expect("governed");
    let got = json_of(&resp.body);
    assert!(!got.to_string().contains("SECRET"), "{got}");
    assert_eq!(got["graphs"][1]["isSuccessful"], true);
    assert_eq!(
        got["graphs"][0]["graphResponse"]["compositeResponse"][0]["body"][0]["errorCode"],
        "ENTITY_IS_DELETED"
    );
    let matched: Vec<_> = resp
        .parts
        .iter()
        .map(|p| (p.index, p.id.as_deref(), p.status))
        .collect();
    assert_eq!(
        matched,
        [
            (3, Some("g2/u"), Some(404)),
            (1, Some("g1/c"), Some(201)),
            (2, Some("g1/u"), Some(204))
        ]
    );
    // a result for a node nobody asked for is refused
    let stray = json!({"graphs": [{"graphId": "g3", "isSuccessful": true, "graphResponse": {"compositeResponse": [
        {"body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "u"}]}}]});
    assert!(sf_response("support", &req, &stray).is_err());
}
