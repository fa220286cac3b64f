//! The GDPR Art. 33(3) notification draft: (a) the nature of the breach, the categories and
//! approximate number of data subjects and of records; (b) the DPO or other contact point;
//! (c) the likely consequences; (d) the measures taken or proposed. Zweck fills in what the
//! verified log shows; what only people can say is a placeholder that cannot be mistaken for
//! an answer (`[TO BE COMPLETED BY THE CONTROLLER: ...]`), and the JSON lists every one of
//! them so a tool can refuse to send a draft that still has one.
//!
//! One [`Draft`] is built and rendered three ways (markdown, HTML, JSON), so the three say
//! the same thing. No value from a CRM body ever reaches it: the log holds none.

use std::fmt::Write as _;

use serde::Serialize;

use super::clock::{self, Deadline};
use super::facts::{Facts, PROTECTIVE_ACTIONS};
use super::store::Incident;
use crate::audit::html::{esc, Cell, Page};
use crate::audit::report::{unverified_banner, verification_json};
use crate::audit::verify::Fleet;
use crate::policy::Direction;

/// How every placeholder begins.
pub const PLACEHOLDER_PREFIX: &str = "[TO BE COMPLETED BY THE CONTROLLER: ";

/// The schema name of the JSON draft (docs/incidents.md describes its members).
pub const SCHEMA: &str = "zweck-incident-draft/v1";

/// The section headings, in order (docs/incidents.md's example is checked against them).
pub const HEADINGS: [&str; 9] = [
    "Incident",
    "72-hour deadline (Art. 33(1))",
    "Verification of the transfer log",
    "(a) Nature of the breach, data subjects and records concerned (Art. 33(3)(a))",
    "(b) Data protection officer or other contact point (Art. 33(3)(b))",
    "(c) Likely consequences (Art. 33(3)(c))",
    "(d) Measures taken or proposed (Art. 33(3)(d))",
    "Information in phases (Art. 33(4))",
    "Communication to data subjects (Art. 34)",
];

/// What the draft names besides the log: who the controller is.
#[derive(Debug, Clone, Default)]
pub struct Controller {
    pub name: Option<String>,
    pub contact: Option<String>,
    pub dpo: Option<String>,
    /// Categories of data subjects per purpose (`record_of_processing.data_subjects`).
    pub data_subjects: std::collections::BTreeMap<String, Vec<String>>,
}

/// A placeholder: what is to be completed, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placeholder {
    pub id: String,
    pub section: &'static str,
    pub text: String,
}

/// A table of a section.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One part of a section.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Paragraph { text: String },
    List { items: Vec<String> },
    Table(Table),
}

/// A section of the draft.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub id: &'static str,
    pub heading: &'static str,
    pub blocks: Vec<Block>,
}

/// The whole draft.
#[derive(Debug, Clone)]
pub struct Draft {
    pub title: String,
    pub sections: Vec<Section>,
    pub placeholders: Vec<Placeholder>,
    /// The JSON members besides the sections (facts, deadline, verification).
    pub data: serde_json::Value,
    pub banner: Option<String>,
}

struct Builder {
    sections: Vec<Section>,
    placeholders: Vec<Placeholder>,
}

impl Builder {
    fn section(&mut self, id: &'static str, heading: &'static str) {
        self.sections.push(Section {
            id,
            heading,
            blocks: Vec::new(),
        });
    }
    fn blocks(&mut self) -> &mut Vec<Block> {
        &mut self.sections.last_mut().expect("a section is open").blocks
    }
    fn p(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.blocks().push(Block::Paragraph { text });
    }
    fn list(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks().push(Block::List { items });
        }
    }
    fn table(&mut self, caption: &str, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks().push(Block::Table(Table {
            caption: caption.into(),
            header: header.iter().map(ToString::to_string).collect(),
            rows,
        }));
    }
    /// A placeholder in the current section: its text, registered.
    fn todo(&mut self, id: &str, what: &str) -> String {
        let section = self.sections.last().map_or("", |s| s.id);
        let text = format!("{PLACEHOLDER_PREFIX}{what}]");
        self.placeholders.push(Placeholder {
            id: id.into(),
            section,
            text: text.clone(),
        });
        text
    }
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Request => "to_processor",
        Direction::Response => "from_processor",
    }
}

fn or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn scope_text(f: &Facts) -> String {
    format!(
        "app {}, purpose {}, category {}",
        f.scope.app.as_deref().unwrap_or("(any)"),
        f.scope.purpose.as_deref().unwrap_or("(any)"),
        f.scope.category.as_deref().unwrap_or("(any)")
    )
}

/// Builds the draft.
pub fn build(
    incident: &Incident,
    facts: &Facts,
    deadline: &Deadline,
    controller: &Controller,
    fleet: &Fleet,
) -> Draft {
    let tz = &deadline.tz;
    let at = |ms: i64| {
        let t = clock::from_millis(ms);
        format!("{} ({})", clock::local(t, tz), clock::utc(t))
    };
    let log_at = |ts: &str| crate::audit::period::log_millis(ts).map_or_else(|| ts.to_string(), at);
    let log_local = |ts: &str| {
        crate::audit::period::log_millis(ts).map_or_else(
            || ts.to_string(),
            |ms| clock::local(clock::from_millis(ms), tz),
        )
    };
    let mut b = Builder {
        sections: Vec::new(),
        placeholders: Vec::new(),
    };

    b.section("incident", HEADINGS[0]);
    let controller_name = match &controller.name {
        Some(n) => n.clone(),
        None => b.todo("controller_name", "the controller's name"),
    };
    b.table(
        "The incident as opened",
        &["item", "value"],
        vec![
            vec!["incident".into(), incident.id.clone()],
            vec!["controller".into(), controller_name],
            vec!["scope".into(), scope_text(facts)],
            vec![
                "window of the transfers counted".into(),
                format!(
                    "{} to {} (end exclusive); start: {}",
                    at(facts.window.from_ms),
                    at(facts.window.to_ms),
                    facts.window.basis
                ),
            ],
            vec!["opened".into(), incident.opened_at.clone()],
            vec![
                "status".into(),
                "DRAFT: review and complete before sending".into(),
            ],
        ],
    );

    b.section("deadline", HEADINGS[1]);
    b.table(
        &format!(
            "Times in the controller's time zone, {}",
            clock::zone_name(tz)
        ),
        &["item", "time"],
        vec![
            vec![
                "the controller became aware (--detected-at)".into(),
                format!(
                    "{} ({})",
                    clock::local(deadline.aware, tz),
                    clock::utc(deadline.aware)
                ),
            ],
            vec![
                "notify the supervisory authority by (72 h later)".into(),
                format!(
                    "{} ({})",
                    clock::local(deadline.due, tz),
                    clock::utc(deadline.due)
                ),
            ],
            vec![
                format!("time left as of {}", clock::local(deadline.as_of, tz)),
                deadline.left_text(),
            ],
        ],
    );
    if deadline.offset_changes() {
        b.p(format!(
            "The clocks in {} change between awareness and the deadline: the deadline is 72 real hours later, so the wall clock shows it an hour off the same time three days later.",
            clock::zone_name(tz)
        ));
    }
    if deadline.overdue() {
        b.p("The 72 hours have passed: Art. 33(1) requires the notification to give the reasons for the delay.");
        let t = b.todo("delay_reasons", "the reasons for the delay (Art. 33(1))");
        b.p(t);
    }

    b.section("verification", HEADINGS[2]);
    b.p(fleet.summary());
    b.list(
        fleet
            .logs
            .iter()
            .flat_map(|l| {
                std::iter::once(format!("{}", l.log.display()))
                    .chain(l.details().into_iter().map(|d| format!("  {d}")))
            })
            .collect(),
    );

    b.section("a", HEADINGS[3]);
    let nature = b.todo(
        "nature",
        "how the breach happened (e.g. a leaked API key, a compromised app) and whether it affects confidentiality, integrity or availability",
    );
    b.p(nature);
    let from = &facts.from_processor;
    let to = &facts.to_processor;
    b.p(format!(
        "What Zweck's verified transfer log shows for {} between {} and {}: {} records delivered from the processors to the app(s) in {} transfers ({} of them refused by Zweck), and {} records sent to the processors in {} transfers ({} refused).",
        scope_text(facts),
        at(facts.window.from_ms),
        at(facts.window.to_ms),
        from.records,
        from.entries,
        from.refused,
        to.records,
        to.entries,
        to.refused
    ));
    b.p(format!(
        "Approximate number of personal data records concerned: {} (records delivered in both directions).",
        facts.records_concerned
    ));
    b.p(format!(
        "Approximate number of data subjects concerned: at most {} ({}).",
        facts.data_subjects.upper_bound, facts.data_subjects.method
    ));
    let purposes: std::collections::BTreeSet<&str> =
        facts.flows.iter().map(|f| f.purpose.as_str()).collect();
    let mut subjects = Vec::new();
    for p in &purposes {
        match controller.data_subjects.get(*p) {
            Some(s) if !s.is_empty() => subjects.push(format!("{p}: {}", s.join(", "))),
            _ => {
                let t = b.todo(
                    &format!("data_subjects.{p}"),
                    &format!("the categories of data subjects of purpose {p} (not in record_of_processing.data_subjects)"),
                );
                subjects.push(format!("{p}: {t}"));
            }
        }
    }
    if subjects.is_empty() {
        subjects.push(
            "no transfer in the window, so no data subjects are concerned according to the log"
                .into(),
        );
    }
    b.p("Categories of data subjects, per purpose:");
    b.list(subjects);
    b.table(
        "Categories of personal data: records of the transfers that carried each category, per direction",
        &["category", "special category", "transfers", "records to processor", "records from processor"],
        facts
            .categories
            .iter()
            .map(|c| {
                vec![
                    c.category.clone(),
                    match c.special {
                        Some("art9") => "yes, Art. 9".into(),
                        Some(_) => "yes, Art. 10".into(),
                        None => "no".into(),
                    },
                    c.entries.to_string(),
                    c.records_to_processor.to_string(),
                    c.records_from_processor.to_string(),
                ]
            })
            .collect(),
    );
    b.table(
        "Who received what: per direction, app, purpose and processor, with the country and the transfer mechanism",
        &["direction", "app", "purpose", "processor (upstream)", "country", "transfer mechanism", "categories", "transfers", "records", "refused", "first (local)", "last (local)"],
        facts
            .flows
            .iter()
            .map(|f| {
                vec![
                    direction_name(f.direction).into(),
                    f.app.clone(),
                    f.purpose.clone(),
                    format!("{} ({})", f.processor, f.upstream),
                    format!(
                        "{}{}",
                        f.jurisdiction,
                        if f.cross_border { " (third country)" } else { "" }
                    ),
                    match &f.mechanism_ref {
                        Some(r) => format!("{} ({r})", f.mechanism),
                        None => f.mechanism.clone(),
                    },
                    f.categories.join(", "),
                    f.sums.entries.to_string(),
                    f.sums.records.to_string(),
                    f.sums.refused.to_string(),
                    log_local(&f.first),
                    log_local(&f.last),
                ]
            })
            .collect(),
    );
    b.p(format!(
        "Detections by Zweck in the window ({}):",
        facts.detections.len()
    ));
    b.list(
        facts
            .detections
            .iter()
            .map(|d| {
                format!(
                    "{}: {} rule {} for app {} purpose {} (seq {}); observed {}{}{}; categories {}; on_anomaly {}",
                    log_at(&d.ts),
                    d.incident,
                    d.rule,
                    d.app,
                    d.purpose.as_deref().unwrap_or("(all)"),
                    d.seq,
                    d.observed.map_or("-".into(), |o| o.to_string()),
                    d.baseline.map_or(String::new(), |x| format!(", baseline {x}")),
                    d.threshold.map_or(String::new(), |x| format!(", threshold {x}")),
                    or_none(&d.categories),
                    d.on_anomaly.as_deref().unwrap_or("-")
                )
            })
            .collect(),
    );

    b.section("b", HEADINGS[4]);
    match &controller.dpo {
        Some(dpo) => b.p(format!("Data protection officer: {dpo}")),
        None => {
            let t = b.todo(
                "dpo",
                "the name and contact details of the data protection officer or other contact point (record_of_processing.dpo is not set)",
            );
            b.p(format!("Data protection officer: {t}"));
        }
    }
    if let Some(c) = &controller.contact {
        b.p(format!(
            "Controller's contact (policies/purposes.yaml): {c}"
        ));
    }

    b.section("c", HEADINGS[5]);
    let consequences = b.todo(
        "consequences",
        "the likely consequences for the data subjects (e.g. phishing, identity theft, discrimination, loss of confidentiality), weighed against the facts below",
    );
    b.p(consequences);
    let m = &facts.minimisation;
    let total_fields = m.fields_kept + m.fields_protected;
    b.p("Facts that inform it:");
    b.list(vec![
        format!(
            "Special categories (Art. 9) or criminal-conviction data (Art. 10) concerned: {}.",
            if facts.special_categories.is_empty() {
                "none in the log".to_string()
            } else {
                format!("YES: {}", facts.special_categories.join(", "))
            }
        ),
        format!(
            "Pseudonymised: {} of {} transfers ({} records) carried keyed pseudonyms (HMAC) instead of identifiers; generalised: {} transfers ({} records).",
            m.entries_pseudonymised,
            from.entries + to.entries,
            m.records_pseudonymised,
            m.entries_generalised,
            m.records_generalised
        ),
        format!(
            "Field values changed before they left Zweck (pseudonymised, generalised, masked, redacted or truncated): {} of {} ({}); unchanged: {}.",
            m.fields_protected,
            total_fields,
            PROTECTIVE_ACTIONS
                .iter()
                .map(|a| format!("{a} {}", m.fields_by_action.get(*a).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", "),
            m.fields_kept
        ),
        format!(
            "Cross-border: {}.",
            if facts.third_countries.is_empty() {
                "no transfer to or from a third country".to_string()
            } else {
                format!(
                    "data went to or came from processors in {} (see the transfer mechanisms above)",
                    facts.third_countries.join(", ")
                )
            }
        ),
    ]);

    b.section("d", HEADINGS[6]);
    b.p(format!(
        "Containment steps on record in the transfer log ({}):",
        facts.containment.len()
    ));
    let steps: Vec<String> = facts
        .containment
        .iter()
        .map(|c| {
            format!(
                "{}: {} of app {}{} by {}{}{} (seq {})",
                log_at(&c.ts),
                c.action,
                c.app,
                c.purpose
                    .as_ref()
                    .map_or(" (all purposes)".into(), |p| format!(" purpose {p}")),
                c.by.as_deref().unwrap_or("-"),
                c.incident
                    .as_ref()
                    .map_or(String::new(), |i| format!(" for {i}")),
                c.reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(", reason: {r}")),
                c.seq
            )
        })
        .collect();
    if steps.is_empty() {
        b.p("None: no throttle, block or revocation is on record for this scope since the window began.");
    }
    b.list(steps);
    b.p("Zweck's measures in force throughout: purpose-bound default-deny policies filtered every governed request and response (the minimisation above), and every transfer above was recorded before it happened in the hash-chained, signed transfer log.");
    let measures = b.todo(
        "measures",
        "further measures taken or proposed to address the breach and mitigate its effects (e.g. keys rotated, recipients asked to delete, policy tightened)",
    );
    b.p(measures);

    b.section("art33_4", HEADINGS[7]);
    b.p("Where not all information can be provided at the same time, it may be provided in phases without undue further delay (Art. 33(4)). The placeholders still open in this draft are:");
    // the list is filled in once every section has registered its placeholders (below)

    b.section("art34", HEADINGS[8]);
    let mut indicators = Vec::new();
    if !facts.special_categories.is_empty() {
        indicators.push("special categories of personal data were concerned".to_string());
    }
    if facts.from_processor.records > 0 && m.fields_protected < m.fields_kept {
        indicators.push(
            "most field values left Zweck unchanged (not pseudonymised or generalised)".into(),
        );
    }
    if !facts.third_countries.is_empty() {
        indicators.push("data went to or came from a third country".into());
    }
    if indicators.is_empty() {
        b.p("The log shows none of the usual indicators of a high risk (special categories, unprotected identifiers at scale, third countries); the controller decides.");
    } else {
        b.p(format!(
            "Indicators of a high risk to the rights and freedoms of natural persons: {}. If the risk is high, the data subjects must be told without undue delay (Art. 34(1)), unless Art. 34(3) applies (e.g. the data were unintelligible to the recipient).",
            indicators.join("; ")
        ));
    }
    let decision = b.todo(
        "art34_decision",
        "whether the breach is likely to result in a high risk to the data subjects, and so whether they are to be told (Art. 34)",
    );
    b.p(decision);

    let open: Vec<String> = b
        .placeholders
        .iter()
        .map(|p| format!("{} (section {})", p.id, p.section))
        .collect();
    if let Some(s) = b.sections.iter_mut().find(|s| s.id == "art33_4") {
        s.blocks.push(Block::List { items: open });
    }
    let banner = (!fleet.verified()).then(|| unverified_banner(fleet));
    let data = serde_json::json!({
        "document": "zweck incident notification draft (GDPR Art. 33(3))",
        "schema": SCHEMA,
        "unverified_warning": banner,
        "incident": incident,
        "controller": {
            "name": controller.name,
            "contact": controller.contact,
            "dpo": controller.dpo,
        },
        "deadline": {
            "time_zone": clock::zone_name(tz),
            "aware_at": clock::utc(deadline.aware),
            "aware_at_local": clock::local(deadline.aware, tz),
            "notify_by": clock::utc(deadline.due),
            "notify_by_local": clock::local(deadline.due, tz),
            "hours": 72,
            "as_of": clock::utc(deadline.as_of),
            "seconds_left": deadline.left().as_secs(),
            "left": deadline.left_text(),
            "overdue": deadline.overdue(),
            "offset_changes": deadline.offset_changes(),
        },
        "verification": verification_json(fleet),
        "facts": facts,
    });
    Draft {
        title: format!(
            "Personal data breach notification draft (GDPR Art. 33): {}",
            incident.id
        ),
        sections: b.sections,
        placeholders: b.placeholders,
        data,
        banner,
    }
}

impl Draft {
    /// The JSON document: `data` plus the sections, the placeholders and `complete`.
    pub fn json(&self) -> String {
        let mut doc = self.data.clone();
        if let serde_json::Value::Object(m) = &mut doc {
            m.insert(
                "sections".into(),
                serde_json::to_value(&self.sections).unwrap_or_default(),
            );
            m.insert(
                "placeholders".into(),
                serde_json::to_value(&self.placeholders).unwrap_or_default(),
            );
            m.insert("complete".into(), self.placeholders.is_empty().into());
        }
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if let Some(b) = &self.banner {
            let _ = writeln!(out, "> **{b}**\n");
        }
        let _ = writeln!(out, "# {}\n", self.title);
        let _ = writeln!(
            out,
            "Prepared by Zweck from the verified transfer log. Every `{PLACEHOLDER_PREFIX}...]` is for people to complete before this is sent.\n"
        );
        for s in &self.sections {
            let _ = writeln!(out, "## {}\n", s.heading);
            for block in &s.blocks {
                match block {
                    Block::Paragraph { text } => {
                        let _ = writeln!(out, "{}\n", md_text(text));
                    }
                    Block::List { items } => {
                        for i in items {
                            // an item indented by two spaces is nested under the one before
                            let nested = if i.starts_with("  ") { "  " } else { "" };
                            let _ = writeln!(out, "{nested}- {}", md_text(i.trim_start()));
                        }
                        out.push('\n');
                    }
                    Block::Table(t) => {
                        let _ = writeln!(out, "{}:\n", md_text(&t.caption));
                        let _ = writeln!(out, "| {} |", t.header.join(" | "));
                        let _ = writeln!(out, "|{}", "---|".repeat(t.header.len()));
                        if t.rows.is_empty() {
                            let mut none = vec!["none".to_string()];
                            none.resize(t.header.len(), String::new());
                            let _ = writeln!(out, "| {} |", none.join(" | "));
                        }
                        for r in &t.rows {
                            let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
                            let _ = writeln!(out, "| {} |", cells.join(" | "));
                        }
                        out.push('\n');
                    }
                }
            }
        }
        if let Some(b) = &self.banner {
            let _ = writeln!(out, "> **{b}**");
        }
        out
    }

    pub fn html(&self) -> String {
        let mut page = Page::new(&self.title, self.banner.clone());
        page.meta("Prepared by Zweck from the verified transfer log. Highlighted placeholders are for people to complete before this is sent.");
        for s in &self.sections {
            page.h2(s.heading, s.id);
            for block in &s.blocks {
                match block {
                    Block::Paragraph { text } => page.raw(&format!("<p>{}</p>\n", html_text(text))),
                    Block::List { items } => {
                        let mut h = String::from("<ul>");
                        for i in items {
                            let _ = write!(h, "<li>{}</li>", html_text(i.trim_start()));
                        }
                        h.push_str("</ul>\n");
                        page.raw(&h);
                    }
                    Block::Table(t) => {
                        let header: Vec<&str> = t.header.iter().map(String::as_str).collect();
                        let rows = t
                            .rows
                            .iter()
                            .map(|r| {
                                r.iter()
                                    .map(|c| match c.parse::<u64>() {
                                        Ok(n) => Cell::Num(n),
                                        Err(_) => Cell::Html(html_text(c)),
                                    })
                                    .collect()
                            })
                            .collect();
                        page.table(&t.caption, &header, rows);
                    }
                }
            }
        }
        page.finish()
    }
}

/// Markdown text: placeholders in bold so they stand out.
fn md_text(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(PLACEHOLDER_PREFIX) {
        let end = rest[at..].find(']').map_or(rest.len(), |e| at + e + 1);
        out.push_str(&rest[..at]);
        let _ = write!(out, "**{}**", &rest[at..end]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.replace('\n', " ")
}

fn md_cell(s: &str) -> String {
    md_text(s).replace('|', "\\|")
}

/// HTML text: escaped, placeholders marked.
fn html_text(s: &str) -> String {
    let escaped = esc(s);
    let prefix = esc(PLACEHOLDER_PREFIX);
    let mut out = String::new();
    let mut rest = escaped.as_str();
    while let Some(at) = rest.find(&prefix) {
        let end = rest[at..].find(']').map_or(rest.len(), |e| at + e + 1);
        out.push_str(&rest[..at]);
        let _ = write!(
            out,
            "<mark style=\"background:#ffe08a;font-weight:600\">{}</mark>",
            &rest[at..end]
        );
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
