//! Lookup tables for `generalise: { map: FILE }`: a CSV file under the policy directory that
//! maps a value to a coarser one (a city to its region, a job title to a job family).
//!
//! The file is part of the policy set: it counts towards the policy version, it travels in a
//! bundle, and `policy check` reads it with everything else. Two columns, a header row, RFC
//! 4180 quoting. Values are matched after trimming and ignoring letter case. A value the table
//! does not map becomes `null`: an action never passes a value through. A value that already
//! is one of the table's results stays as it is, so the action is idempotent; the loader
//! refuses a table where a result is also mapped to something else (it could not be).

use std::collections::{HashMap, HashSet};

/// A compiled lookup table.
#[derive(Debug, Clone)]
pub struct ValueMap {
    /// The file, relative to the policy directory (for messages and `policy diff`).
    pub source: String,
    /// Normalised value -> result.
    entries: HashMap<String, String>,
    /// Normalised results: these map to themselves.
    results: HashSet<String>,
}

impl PartialEq for ValueMap {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.entries == other.entries
    }
}

impl Eq for ValueMap {}

fn normalise(s: &str) -> String {
    s.trim().to_lowercase()
}

impl ValueMap {
    /// Parses the table's text. Errors name the line, never a value from the body (the
    /// table is the policy author's own data).
    pub fn parse(source: &str, text: &str) -> Result<ValueMap, String> {
        let rows = parse_csv(text)?;
        let mut rows = rows.into_iter();
        match rows.next() {
            Some((_, header)) if header.len() == 2 => {}
            Some((line, _)) => {
                return Err(format!(
                    "line {line}: the header row needs two columns (value, result)"
                ))
            }
            None => return Err("the table is empty: it needs a header row (value, result)".into()),
        }
        let mut entries: HashMap<String, String> = HashMap::new();
        let mut results = HashSet::new();
        for (line, row) in rows {
            let [from, to] = row.as_slice() else {
                return Err(format!("line {line}: {} columns, expected 2", row.len()));
            };
            let (from_n, to_n) = (normalise(from), normalise(to));
            if from_n.is_empty() || to_n.is_empty() {
                return Err(format!("line {line}: an empty value or result"));
            }
            match entries.get(&from_n) {
                Some(prev) if normalise(prev) != to_n => {
                    return Err(format!(
                        "line {line}: `{}` is mapped twice, to different results",
                        from.trim()
                    ))
                }
                _ => {}
            }
            entries.insert(from_n, to.trim().to_string());
            results.insert(to_n);
        }
        for r in &results {
            if let Some(other) = entries.get(r) {
                if normalise(other) != *r {
                    return Err(format!(
                        "`{r}` is a result and is also mapped to `{other}`: the action would not be idempotent"
                    ));
                }
            }
        }
        if entries.is_empty() {
            return Err("the table maps nothing".into());
        }
        Ok(ValueMap {
            source: source.to_string(),
            entries,
            results,
        })
    }

    /// The result for a value: its mapping, the value itself when it already is a result,
    /// else `None` (the caller turns it into `null`).
    pub fn lookup(&self, value: &str) -> Option<String> {
        let n = normalise(value);
        if let Some(to) = self.entries.get(&n) {
            return Some(to.clone());
        }
        self.results.contains(&n).then(|| value.trim().to_string())
    }

    /// Number of mapped values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true for a compiled table.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Rows of an RFC 4180 CSV text (comma, optional quotes, CRLF or LF) with their line numbers;
/// empty lines are skipped.
fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut line = 1;
    let mut start_line = 1;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    cell.push(c);
                }
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '"' => return Err(format!("line {line}: a quote inside an unquoted value")),
            ',' => {
                row.push(std::mem::take(&mut cell));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut cell));
                was_quoted = false;
                if !(row.len() == 1 && row[0].trim().is_empty()) {
                    rows.push((start_line, std::mem::take(&mut row)));
                }
                row.clear();
                line += 1;
                start_line = line;
            }
            _ if was_quoted => return Err(format!("line {line}: text after a closing quote")),
            _ => cell.push(c),
        }
    }
    if quoted {
        return Err(format!("line {start_line}: a quoted value is not closed"));
    }
    if !cell.is_empty() || !row.is_empty() || was_quoted {
        row.push(cell);
        rows.push((start_line, row));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_values_case_insensitively_and_keeps_results() {
        let m = ValueMap::parse(
            "maps/city.csv",
            "city,region\nMünchen,Bayern\n\"Frankfurt am Main\",Hessen\r\nBerlin,Berlin\n",
        )
        .expect("table");
        assert_eq!(m.len(), 3);
        assert_eq!(m.lookup(" münchen ").as_deref(), Some("Bayern"));
        assert_eq!(m.lookup("frankfurt am main").as_deref(), Some("Hessen"));
        assert_eq!(m.lookup("Bayern").as_deref(), Some("Bayern"));
        assert_eq!(m.lookup("Berlin").as_deref(), Some("Berlin"));
        assert_eq!(m.lookup("Hamburg"), None);
    }

    #[test]
    fn refuses_tables_that_cannot_be_idempotent_or_read() {
        for (text, want) in [
            ("", "empty"),
            ("a\nb\n", "two columns"),
            ("a,b\nx,y,z\n", "3 columns"),
            ("a,b\nx,y\ny,z\n", "idempotent"),
            ("a,b\nx,y\nX,z\n", "mapped twice"),
            ("a,b\n\"x,y\n", "not closed"),
            ("a,b\nx\"q,y\n", "quote inside"),
            ("a,b\n", "maps nothing"),
            ("a,b\n,y\n", "empty value"),
        ] {
            let e = ValueMap::parse("m.csv", text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
