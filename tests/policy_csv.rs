//! Property tests for CSV bodies (Salesforce Bulk API 2.0 results) under the shipped
//! policies, through the public API the proxy calls (`policy::csv_plan` and the governor):
//! - no value of a dropped column, of an unclassified column, or of a removed row appears
//!   in the output, however the body is split into chunks and whatever the cells contain
//!   (quotes, delimiters, line breaks);
//! - the output does not depend on the chunking;
//! - the output is strict CSV with the kept columns, one row per opted-in input row.

use std::sync::Arc;

use http::Method;
use proptest::prelude::*;
use zweck::body::csv::{CellAction, CsvLimits, CsvTransformer, Delimiter};
use zweck::dialect::Dialect;
use zweck::policy::{csv_plan, CsvJob, PolicySet, PseudonymKey, RouteMatch};

const RESULTS: &str = "/services/data/v66.0/jobs/query/750Qy00000Fict01AAA/results";

fn shipped() -> Arc<PolicySet> {
    static SET: std::sync::OnceLock<Arc<PolicySet>> = std::sync::OnceLock::new();
    let set = SET.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        match PolicySet::load(&dir) {
            Ok((set, _)) => Arc::new(set),
            Err(e) => panic!("{e:?}"),
        }
    });
    Arc::clone(set)
}

/// Columns of a Contact export and whether the newsletter purpose lets values through.
const COLUMNS: [(&str, bool); 10] = [
    ("Id", true),
    ("FirstName", true),
    ("LastName", false),
    ("Email", true),
    ("MobilePhone", false),
    ("Birthdate", true),
    ("MailingCity", false),
    ("MailingCountry", true),
    ("HasOptedOutOfEmail", false),
    ("Account.Name", false),
];

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// Kept cells: lower case text with CSV-special characters; never the marker.
fn kept_text() -> impl Strategy<Value = String> {
    "[a-z ,;|\"\n\r\t^`@.-]{0,12}"
}

#[derive(Debug, Clone)]
struct Export {
    /// Per row: opted in, cells of the withheld columns' markers are derived from the row.
    rows: Vec<(bool, Vec<String>)>,
    /// An extra column no inventory classifies, at this position (None: absent).
    extra: Option<usize>,
    crlf: bool,
    delimiter: usize,
    cuts: Vec<usize>,
}

fn export() -> impl Strategy<Value = Export> {
    (
        prop::collection::vec(
            (
                any::<bool>(),
                prop::collection::vec(kept_text(), COLUMNS.len()),
            ),
            0..8,
        ),
        prop::option::of(0..=COLUMNS.len()),
        any::<bool>(),
        0..6usize,
        prop::collection::vec(1..64usize, 0..12),
    )
        .prop_map(|(rows, extra, crlf, delimiter, cuts)| Export {
            rows,
            extra,
            crlf,
            delimiter,
            cuts,
        })
}

const DELIMITERS: [Delimiter; 6] = [
    Delimiter::Comma,
    Delimiter::Tab,
    Delimiter::Pipe,
    Delimiter::Semicolon,
    Delimiter::Caret,
    Delimiter::Backquote,
];

/// The CSV text, with every withheld value (dropped column, unclassified column, opted-out
/// row) carrying the marker `SECRET`.
fn render(e: &Export) -> String {
    let sep = DELIMITERS[e.delimiter].byte() as char;
    let eol = if e.crlf { "\r\n" } else { "\n" };
    let mut header: Vec<String> = COLUMNS.iter().map(|(c, _)| quote(c)).collect();
    if let Some(at) = e.extra {
        header.insert(at, quote("Unlisted__c"));
    }
    let mut out = header.join(&sep.to_string());
    out.push_str(eol);
    for (r, (opted_in, cells)) in e.rows.iter().enumerate() {
        let mut row: Vec<String> = COLUMNS
            .iter()
            .zip(cells)
            .enumerate()
            .map(|(i, ((name, passes), text))| match *name {
                "HasOptedOutOfEmail" => quote(if *opted_in { "false" } else { "true" }),
                "Id" => quote(&format!("003{r}")),
                "Birthdate" if *opted_in => quote("1984-02-29"),
                _ if *passes && *opted_in => quote(text),
                _ => quote(&format!("SECRET{r}x{i}{text}")),
            })
            .collect();
        if let Some(at) = e.extra {
            row.insert(at, quote(&format!("SECRET{r}extra")));
        }
        out.push_str(&row.join(&sep.to_string()));
        out.push_str(eol);
    }
    out
}

fn govern(set: &Arc<PolicySet>, input: &[u8], cuts: &[usize]) -> Result<Vec<u8>, String> {
    let RouteMatch::Operation(op) = set.classify(Dialect::Salesforce, &Method::GET, RESULTS) else {
        return Err("the results route is not governed".into());
    };
    let purpose = set.purpose("newsletter").ok_or("no newsletter purpose")?;
    let key = PseudonymKey::new(b"k");
    let plan =
        csv_plan(set, purpose, op, Some(&key), &CsvJob::default()).map_err(|e| e.to_string())?;
    let mut g = plan.governor(CsvLimits::default());
    let mut out = Vec::new();
    let mut rest = input;
    for cut in cuts {
        let (a, b) = rest.split_at((*cut).min(rest.len()));
        out.extend_from_slice(&g.feed(a).map_err(|e| e.to_string())?);
        rest = b;
    }
    out.extend_from_slice(&g.feed(rest).map_err(|e| e.to_string())?);
    out.extend_from_slice(&g.finish().map_err(|e| e.to_string())?);
    Ok(out)
}

/// Parses `out` back with the strict reader: (header, rows).
fn parse(out: &[u8], delimiter: Delimiter) -> (Vec<String>, Vec<Vec<String>>) {
    let rows = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&rows);
    let mut t = CsvTransformer::new(
        delimiter,
        CsvLimits::default(),
        |_| CellAction::Keep,
        move |row| {
            if let Ok(mut r) = sink.lock() {
                r.push(row.iter().map(|(_, v)| v.to_string()).collect::<Vec<_>>());
            }
            true
        },
    );
    t.feed(out).expect("the output is strict CSV");
    t.finish().expect("the output ends cleanly");
    let header = t.columns().to_vec();
    let rows = rows.lock().map(|r| r.clone()).unwrap_or_default();
    (header, rows)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn withheld_values_never_leave_for_any_chunking(e in export()) {
        let set = shipped();
        let input = render(&e);
        let whole = govern(&set, input.as_bytes(), &[]).expect("whole");
        let chunked = govern(&set, input.as_bytes(), &e.cuts).expect("chunked");
        prop_assert_eq!(&whole, &chunked);
        let text = String::from_utf8(whole.clone()).expect("utf-8");
        prop_assert!(!text.contains("SECRET"), "{}", text);
        prop_assert!(!text.contains("Unlisted__c"));
        prop_assert!(!text.contains("MobilePhone") && !text.contains("LastName"));

        let (header, rows) = parse(&whole, DELIMITERS[e.delimiter]);
        prop_assert_eq!(
            header,
            vec!["Id", "FirstName", "Email", "Birthdate", "MailingCountry"]
        );
        let opted_in = e.rows.iter().filter(|(o, _)| *o).count();
        prop_assert_eq!(rows.len(), opted_in);
        for row in &rows {
            prop_assert_eq!(row.len(), 5);
            prop_assert_eq!(&row[3], "1984");
        }
    }

    #[test]
    fn any_split_of_the_fixture_gives_the_same_output(cuts in prop::collection::vec(1..40usize, 0..10)) {
        let set = shipped();
        let fixture = include_bytes!("fixtures/crm/salesforce/bulk2-query-results.page1.csv");
        let whole = govern(&set, fixture, &[]).expect("whole");
        let chunked = govern(&set, fixture, &cuts).expect("chunked");
        prop_assert_eq!(&whole, &chunked);
        let text = String::from_utf8(whole).expect("utf-8");
        prop_assert!(!text.contains("+49 151") && !text.contains("Tomasz"));
    }
}
