//! Property tests of the streaming CSV transformer: chunking never changes the output, dropped
//! columns never leak, keep-all is canonical re-quoting.

use proptest::prelude::*;
use zweck::body::csv::{CellAction, CsvLimits, CsvStats, CsvTransformer, Delimiter};

/// A table: header names and rows of cells, plus how to write it.
#[derive(Debug, Clone)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    crlf: bool,
    trailing_newline: bool,
    /// Per cell (header first), whether to quote a cell that does not need it.
    quote_anyway: Vec<bool>,
}

const CELL: &str = "[a-z\",\r\n é|;]{0,6}";

fn table(secret_column: bool) -> impl Strategy<Value = (Table, usize)> {
    (1usize..5, 0usize..7).prop_flat_map(move |(cols, rows)| {
        let names = prop::collection::vec("[a-z \",]{0,3}", cols);
        let cells = prop::collection::vec(prop::collection::vec(CELL, cols), rows);
        let secrets = prop::collection::vec("§[A-Z]{1,5}", rows);
        let quotes = prop::collection::vec(any::<bool>(), (rows + 1) * cols);
        (
            names,
            cells,
            secrets,
            quotes,
            any::<bool>(),
            any::<bool>(),
            0..cols,
        )
            .prop_map(
                move |(names, mut cells, secrets, quotes, crlf, trailing, secret)| {
                    let header = names
                        .into_iter()
                        .enumerate()
                        .map(|(i, n)| format!("c{i}_{n}"))
                        .collect();
                    if secret_column {
                        for (row, value) in cells.iter_mut().zip(secrets) {
                            row[secret] = value;
                        }
                    }
                    (
                        Table {
                            header,
                            rows: cells,
                            crlf,
                            trailing_newline: trailing,
                            quote_anyway: quotes,
                        },
                        secret,
                    )
                },
            )
    })
}

fn write(table: &Table, delimiter: u8) -> Vec<u8> {
    let ending: &[u8] = if table.crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::new();
    let lines = std::iter::once(&table.header).chain(table.rows.iter());
    let count = table.rows.len() + 1;
    let mut cell_no = 0;
    for (line_no, line) in lines.enumerate() {
        for (i, cell) in line.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            let needs = cell.is_empty()
                || cell
                    .bytes()
                    .any(|b| matches!(b, b'"' | b'\r' | b'\n') || b == delimiter);
            if needs || table.quote_anyway[cell_no] {
                out.push(b'"');
                out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
                out.push(b'"');
            } else {
                out.extend_from_slice(cell.as_bytes());
            }
            cell_no += 1;
        }
        if line_no + 1 < count || table.trailing_newline {
            out.extend_from_slice(ending);
        }
    }
    out
}

fn canonical(table: &Table, delimiter: u8, keep: impl Fn(usize) -> bool) -> Vec<u8> {
    // The output uses the header's line ending; a lone unterminated header shows none: LF.
    let header_terminated = table.trailing_newline || !table.rows.is_empty();
    let ending: &[u8] = if table.crlf && header_terminated {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut out = Vec::new();
    for line in std::iter::once(&table.header).chain(table.rows.iter()) {
        let mut first = true;
        for (i, cell) in line.iter().enumerate() {
            if !keep(i) {
                continue;
            }
            if !first {
                out.push(delimiter);
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(ending);
    }
    out
}

fn transform(
    input: &[u8],
    delimiter: Delimiter,
    cuts: &[usize],
    plan: impl FnMut(&str) -> CellAction + Send + 'static,
) -> (Vec<u8>, CsvStats) {
    let mut t = CsvTransformer::new(delimiter, CsvLimits::default(), plan, |row| {
        row.cell(0).len() % 2 == 0
    });
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for point in points.into_iter().chain([input.len()]) {
        out.extend_from_slice(&t.feed(&input[start..point]).expect("valid csv"));
        start = point;
    }
    out.extend_from_slice(&t.finish().expect("valid csv"));
    (out, t.stats())
}

fn delimiter() -> impl Strategy<Value = Delimiter> {
    prop_oneof![
        Just(Delimiter::Comma),
        Just(Delimiter::Tab),
        Just(Delimiter::Pipe),
        Just(Delimiter::Semicolon),
        Just(Delimiter::Caret),
        Just(Delimiter::Backquote),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_gives_the_same_output(
        (table, _) in table(false),
        delimiter in delimiter(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let input = write(&table, delimiter.byte());
        let whole = transform(&input, delimiter, &[], |_| CellAction::Keep);
        let split = transform(&input, delimiter, &cuts, |_| CellAction::Keep);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn keep_all_is_canonical_requoting(
        (table, _) in table(false),
        delimiter in delimiter(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let input = write(&table, delimiter.byte());
        let mut t = CsvTransformer::new(delimiter, CsvLimits::default(), |_| CellAction::Keep, |_| true);
        let mut out = Vec::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut start = 0;
        for point in points.into_iter().chain([input.len()]) {
            out.extend_from_slice(&t.feed(&input[start..point]).expect("valid"));
            start = point;
        }
        out.extend_from_slice(&t.finish().expect("valid"));
        prop_assert_eq!(String::from_utf8(out).expect("utf-8"),
            String::from_utf8(canonical(&table, delimiter.byte(), |_| true)).expect("utf-8"));
        prop_assert_eq!(t.stats().rows_emitted, table.rows.len() as u64);
        // Canonical output is a fixed point.
        let again = transform(&canonical(&table, delimiter.byte(), |_| true), delimiter, &[], |_| CellAction::Keep);
        let once = transform(&input, delimiter, &[], |_| CellAction::Keep);
        prop_assert_eq!(again, once);
    }

    #[test]
    fn dropped_values_never_appear(
        (table, secret) in table(true),
        delimiter in delimiter(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let input = write(&table, delimiter.byte());
        let secret_name = table.header[secret].clone();
        let (out, stats) = transform(&input, delimiter, &cuts, move |name| {
            if name == secret_name { CellAction::Drop } else { CellAction::Keep }
        });
        let text = String::from_utf8(out).expect("utf-8");
        prop_assert!(!text.contains('§'), "secret leaked: {:?}", text);
        prop_assert_eq!(stats.rows_emitted + stats.rows_removed, table.rows.len() as u64);
        // What remains is exactly the kept columns of the rows the filter kept.
        let kept = Table {
            rows: table.rows.iter().filter(|r| r[0].len() % 2 == 0).cloned().collect(),
            // Keep the line ending the input showed, even when every row is filtered out.
            trailing_newline: table.trailing_newline || !table.rows.is_empty(),
            ..table.clone()
        };
        if table.header.len() == 1 {
            // The only column dropped: nothing is written, no row delivered.
            prop_assert_eq!(text, "");
            prop_assert_eq!(stats.rows_emitted, 0);
        } else {
            prop_assert_eq!(text, String::from_utf8(canonical(&kept, delimiter.byte(), |i| i != secret)).expect("utf-8"));
        }
    }

    #[test]
    fn replaced_values_are_the_replacements(
        (table, secret) in table(true),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let input = write(&table, b',');
        let secret_name = table.header[secret].clone();
        let (out, _) = transform(&input, Delimiter::Comma, &cuts, move |name| {
            if name == secret_name {
                CellAction::Replace(Box::new(|v: &str| format!("len={}", v.chars().count())))
            } else {
                CellAction::Keep
            }
        });
        let text = String::from_utf8(out).expect("utf-8");
        prop_assert!(!text.contains('§'));
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..256), cuts in prop::collection::vec(any::<usize>(), 0..4)) {
        let mut t = CsvTransformer::new(Delimiter::Comma, CsvLimits { max_row_bytes: 64 }, |_| CellAction::Keep, |_| true);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut start = 0;
        for point in points.into_iter().chain([input.len()]) {
            if t.feed(&input[start..point]).is_err() { return Ok(()); }
            start = point;
        }
        let _ = t.finish();
    }
}
