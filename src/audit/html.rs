//! `--format html`: one self-contained page an auditor opens offline. Inline CSS and inline
//! SVG charts; no script, no font, no image, nothing fetched. Every chart is followed by the
//! table it was drawn from, so the page reads the same printed, on a screen reader or with
//! the SVG ignored. The verification's result comes first; a page whose logs did not verify
//! carries a fixed banner, which browsers repeat on every printed page.

use std::fmt::Write as _;

use super::period::format_ms;
use super::report::{unverified_banner, Dimension, Report, Totals, CATEGORY_NOTE, DECISIONS};
use super::verify::{Fleet, Status};

/// Series colours (distinguishable in colour and in greyscale print, in this order).
const PALETTE: [&str; 8] = [
    "#1b6ca8", "#e07b39", "#3a9d5d", "#c0392b", "#8e6bbf", "#7f8c8d", "#d4ac0d", "#17a589",
];

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330;margin:0 auto;max-width:1000px;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d5dae3;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}p.meta{color:#56607a;margin:0 0 16px}
table{border-collapse:collapse;width:100%;margin:8px 0 4px;font-size:13px}
th,td{border:1px solid #d5dae3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;background:#f7f8fb}
.verdict{padding:12px 16px;border-radius:6px;font-size:16px;font-weight:600;margin:8px 0 12px}
.ok{background:#e3f4e8;border:1px solid #3a9d5d;color:#1e5c33}
.bad{background:#fbe5e3;border:1px solid #c0392b;color:#7d1f16}
.banner{position:fixed;top:0;left:0;right:0;background:#c0392b;color:#fff;text-align:center;font-weight:700;padding:6px;z-index:10}
body.unverified{padding-top:56px}
.note{color:#56607a;font-size:13px}
svg{display:block;margin:8px 0;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#1d2330}
code{font-size:12px;word-break:break-all}
@media print{h2{break-after:avoid}table,svg{break-inside:avoid}}
";

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table cell: text, or a right-aligned number.
pub enum Cell {
    Text(String),
    Num(u64),
    /// Already escaped HTML.
    Html(String),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}
impl From<u64> for Cell {
    fn from(n: u64) -> Cell {
        Cell::Num(n)
    }
}

/// An HTML page being written.
pub struct Page {
    out: String,
    unverified: Option<String>,
}

impl Page {
    /// Starts a page; `unverified` is the banner of a page whose logs did not verify.
    pub fn new(title: &str, unverified: Option<String>) -> Page {
        let mut out = String::with_capacity(64 << 10);
        let full_title = match &unverified {
            Some(_) => format!("UNVERIFIED - {title}"),
            None => title.to_string(),
        };
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>{}</title><style>{CSS}</style></head>\n<body{}>\n",
            esc(&full_title),
            if unverified.is_some() {
                " class=\"unverified\""
            } else {
                ""
            }
        );
        if let Some(b) = &unverified {
            let _ = writeln!(out, "<div class=\"banner\" role=\"alert\">{}</div>", esc(b));
        }
        let _ = writeln!(out, "<h1>{}</h1>", esc(&full_title));
        Page { out, unverified }
    }

    pub fn h2(&mut self, text: &str, id: &str) {
        let _ = writeln!(self.out, "<h2 id=\"{}\">{}</h2>", esc(id), esc(text));
    }

    pub fn h3(&mut self, text: &str) {
        let _ = writeln!(self.out, "<h3>{}</h3>", esc(text));
    }

    pub fn p(&mut self, text: &str) {
        let _ = writeln!(self.out, "<p>{}</p>", esc(text));
    }

    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "<p class=\"note\">{}</p>", esc(text));
    }

    pub fn meta(&mut self, text: &str) {
        let _ = writeln!(self.out, "<p class=\"meta\">{}</p>", esc(text));
    }

    pub fn raw(&mut self, html: &str) {
        self.out.push_str(html);
    }

    /// A table; a last row whose first cell is `(all entries)`/`total` is styled as a total.
    pub fn table(&mut self, caption: &str, header: &[&str], rows: Vec<Vec<Cell>>) {
        let _ = write!(
            self.out,
            "<table><caption class=\"note\" style=\"text-align:left\">{}</caption><thead><tr>",
            esc(caption)
        );
        for h in header {
            let _ = write!(self.out, "<th scope=\"col\">{}</th>", esc(h));
        }
        self.out.push_str("</tr></thead><tbody>\n");
        for row in rows {
            let total =
                matches!(row.first(), Some(Cell::Text(t)) if t == "(all entries)" || t == "total");
            self.out.push_str(if total {
                "<tr class=\"total\">"
            } else {
                "<tr>"
            });
            for c in row {
                match c {
                    Cell::Text(t) => {
                        let _ = write!(self.out, "<td>{}</td>", esc(&t));
                    }
                    Cell::Num(n) => {
                        let _ = write!(self.out, "<td class=\"n\">{n}</td>");
                    }
                    Cell::Html(h) => {
                        let _ = write!(self.out, "<td>{h}</td>");
                    }
                }
            }
            self.out.push_str("</tr>\n");
        }
        self.out.push_str("</tbody></table>\n");
    }

    /// Ends the page (repeating the banner at the bottom for a reader who scrolled there).
    pub fn finish(mut self) -> String {
        if let Some(b) = &self.unverified {
            let _ = writeln!(
                self.out,
                "<p class=\"verdict bad\" role=\"alert\">{}</p>",
                esc(b)
            );
        }
        self.out.push_str("</body></html>\n");
        self.out
    }
}

/// The verification section: the verdict, then one row per log.
pub fn verification(page: &mut Page, fleet: &Fleet) {
    page.h2("1. Verification of the transfer logs", "verification");
    let class = if fleet.verified() { "ok" } else { "bad" };
    page.raw(&format!(
        "<p class=\"verdict {class}\">{}</p>\n",
        esc(&fleet.summary())
    ));
    let rows = fleet
        .logs
        .iter()
        .map(|l| {
            let status = match &l.status {
                Status::Verified => "verified".to_string(),
                Status::Tampered(w) => format!("TAMPERED: {w}"),
                Status::Unverified(w) => format!("UNVERIFIED: {w}"),
            };
            vec![
                Cell::Text(l.log.display().to_string()),
                Cell::Text(l.origin.clone().unwrap_or_default()),
                Cell::Text(status),
                Cell::Num(l.entries),
                Cell::Text(format!("{} on-box, {} off-box", l.onbox, l.offbox)),
                Cell::Text(if l.signatures_checked {
                    "verified".into()
                } else {
                    "NOT checked".into()
                }),
                Cell::Text(match &l.newest {
                    Some(n) => format!(
                        "size {} at {}",
                        n.size,
                        n.time.as_deref().unwrap_or("no time")
                    ),
                    None => "none".into(),
                }),
                Cell::Text(format!("{} of {}", l.offbox_size.min(l.entries), l.entries)),
                Cell::Text(l.notes.join("; ")),
            ]
        })
        .collect();
    page.table(
        "Each log's chain, checkpoints (Merkle roots), signatures and off-box coverage, as `zweck audit verify` checks them.",
        &[
            "log",
            "origin",
            "result",
            "entries",
            "checkpoints",
            "signatures",
            "newest checkpoint",
            "off-box covers",
            "notes",
        ],
        rows,
    );
    for n in &fleet.notes {
        page.note(&format!("Note: {n}"));
    }
}

/// A stacked bar chart: one bar per x label, one segment per series.
pub fn stacked_bars(title: &str, xs: &[String], series: &[(String, Vec<u64>)]) -> String {
    let (w, h, left, bottom, top) = (760.0_f64, 260.0_f64, 56.0_f64, 60.0_f64, 16.0_f64);
    let totals: Vec<u64> = (0..xs.len())
        .map(|i| {
            series
                .iter()
                .map(|(_, v)| v.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_h = h - bottom - top;
    let plot_w = w - left - 160.0;
    let slot = plot_w / xs.len().max(1) as f64;
    let bar = (slot * 0.7).clamp(2.0, 48.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        esc(title),
        esc(title)
    );
    // axis and gridlines at 0, 50 %, 100 % of the maximum
    for frac in [0.0, 0.5, 1.0] {
        let y = top + plot_h * (1.0 - frac);
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#d5dae3\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            (max as f64 * frac).round() as u64
        );
    }
    for (i, x) in xs.iter().enumerate() {
        let cx = left + slot * (i as f64 + 0.5);
        let mut y = top + plot_h;
        for (k, (name, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let hgt = plot_h * v as f64 / max as f64;
            y -= hgt;
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{hgt:.1}\" fill=\"{}\"><title>{}: {} {v}</title></rect>",
                cx - bar / 2.0,
                PALETTE[k % PALETTE.len()],
                esc(x),
                esc(name)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {cx:.1} {:.1})\">{}</text>",
            top + plot_h + 14.0,
            top + plot_h + 14.0,
            esc(x)
        );
    }
    legend(
        &mut s,
        left + plot_w + 16.0,
        top,
        series.iter().map(|(n, _)| n.as_str()),
    );
    s.push_str("</svg>\n");
    s
}

fn legend<'a>(s: &mut String, x: f64, y: f64, names: impl Iterator<Item = &'a str>) {
    for (k, name) in names.enumerate() {
        let yy = y + 18.0 * k as f64;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{yy}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            PALETTE[k % PALETTE.len()],
            x + 18.0,
            yy + 10.0,
            esc(name)
        );
    }
}

/// Horizontal bars, one per label.
pub fn hbars(title: &str, items: &[(String, u64)]) -> String {
    let (w, row, left) = (760.0_f64, 20.0_f64, 280.0_f64);
    let h = row * items.len().max(1) as f64 + 16.0;
    let max = items.iter().map(|i| i.1).max().unwrap_or(0).max(1);
    let plot = w - left - 80.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        esc(title),
        esc(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 8.0 + row * i as f64;
        let len = plot * *v as f64 / max as f64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{v}</text>",
            left - 6.0,
            y + 12.0,
            esc(label),
            row - 6.0,
            PALETTE[0],
            left + len + 4.0,
            y + 12.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// 100 % bars: each row's shares of four parts.
pub fn share_bars(title: &str, parts: [&str; 4], rows: &[(String, [u64; 4])]) -> String {
    let (w, row, left) = (760.0_f64, 24.0_f64, 200.0_f64);
    let h = row * rows.len().max(1) as f64 + 40.0;
    let plot = w - left - 20.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        esc(title),
        esc(title)
    );
    for (i, (label, counts)) in rows.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let total: u64 = counts.iter().sum();
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 14.0,
            esc(label)
        );
        let mut x = left;
        for (k, c) in counts.iter().enumerate() {
            if *c == 0 || total == 0 {
                continue;
            }
            let len = plot * *c as f64 / total as f64;
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {}: {c} of {total}</title></rect>",
                row - 6.0,
                PALETTE[k % PALETTE.len()],
                esc(label),
                parts[k]
            );
            x += len;
        }
    }
    let ly = row * rows.len().max(1) as f64 + 14.0;
    for (k, p) in parts.iter().enumerate() {
        let x = left + 130.0 * k as f64;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{ly}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            PALETTE[k % PALETTE.len()],
            x + 18.0,
            ly + 10.0,
            esc(p)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Segments on a time axis: when each item was seen.
pub fn timeline(title: &str, items: &[(String, i64, i64)]) -> String {
    let (w, row, left) = (760.0_f64, 22.0_f64, 200.0_f64);
    let h = row * items.len().max(1) as f64 + 36.0;
    let plot = w - left - 20.0;
    let from = items.iter().map(|i| i.1).min().unwrap_or(0);
    let to = items.iter().map(|i| i.2).max().unwrap_or(0).max(from + 1);
    let x_of = |t: i64| left + plot * (t - from) as f64 / (to - from) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        esc(title),
        esc(title)
    );
    for (i, (label, a, b)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let (x0, x1) = (x_of(*a), x_of(*b));
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
            left - 6.0,
            y + 13.0,
            esc(label),
            (x1 - x0).max(2.0),
            row - 8.0,
            PALETTE[i % PALETTE.len()]
        );
    }
    let axis = row * items.len().max(1) as f64 + 20.0;
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{axis}\">{}</text><text x=\"{}\" y=\"{axis}\" text-anchor=\"end\">{}</text></svg>",
        esc(&format_ms(from)[..16]),
        left + plot,
        esc(&format_ms(to)[..16])
    );
    s
}

fn pct(part: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / total as f64)
    }
}

/// The `audit report --format html` page.
pub fn report(r: &Report) -> String {
    let banner = (!r.verified()).then(|| unverified_banner(&r.fleet));
    let mut page = Page::new("Transfer log report", banner);
    page.meta(&format!(
        "Period: {}. Logs: {}. Entries in the period: {} (intent lines of streamed bodies excluded: {}).",
        r.period.label(),
        r.fleet
            .logs
            .iter()
            .map(|l| l.log.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        r.agg.total.transfers,
        r.agg.intents
    ));
    verification(&mut page, &r.fleet);

    // 2. third-country transfers over time
    let (by_day, over) = r.agg.over_time();
    page.h2(
        "2. Transfers to third countries over time",
        "third-countries",
    );
    page.note(&format!(
        "Entries with cross_border = true (the processor's jurisdiction is outside the controller's area), per {} (UTC), by country; the table splits them by processor and transfer mechanism.",
        if by_day { "day" } else { "month" }
    ));
    let mut xs: Vec<String> = over.iter().map(|o| o.0.clone()).collect();
    xs.dedup();
    let mut countries: Vec<String> = over.iter().map(|o| o.1.clone()).collect();
    countries.sort();
    countries.dedup();
    let series: Vec<(String, Vec<u64>)> = countries
        .iter()
        .map(|c| {
            let v = xs
                .iter()
                .map(|x| {
                    over.iter()
                        .filter(|o| &o.0 == x && &o.1 == c)
                        .map(|o| o.4.transfers)
                        .sum()
                })
                .collect();
            (c.clone(), v)
        })
        .collect();
    if over.is_empty() {
        page.p("No transfers to third countries in the period.");
    } else {
        page.raw(&stacked_bars(
            "Transfers to third countries per period, by country",
            &xs,
            &series,
        ));
    }
    page.table(
        "Transfers to third countries per period, country, processor and mechanism (the chart's data).",
        &[
            if by_day { "day" } else { "month" },
            "country",
            "processor",
            "mechanism",
            "transfers",
            "records",
            "refused",
        ],
        over.iter()
            .map(|(p, c, pr, m, t)| {
                vec![
                    p.as_str().into(),
                    c.as_str().into(),
                    pr.as_str().into(),
                    m.as_str().into(),
                    t.transfers.into(),
                    t.records.into(),
                    t.refused.into(),
                ]
            })
            .collect(),
    );

    // 3. categories per purpose and app
    page.h2(
        "3. Categories of personal data per purpose and app",
        "categories",
    );
    page.note(&format!(
        "Categories delivered (after minimisation). {CATEGORY_NOTE}."
    ));
    let cats = r.agg.categories();
    let mut per_cat: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (p, _, c, t) in &cats {
        *per_cat.entry(format!("{p}: {c}")).or_default() += t.transfers;
    }
    if !per_cat.is_empty() {
        page.raw(&hbars(
            "Entries delivering each category, per purpose",
            &per_cat.into_iter().collect::<Vec<_>>(),
        ));
    }
    page.table(
        "Entries and records delivering each category, per purpose and app (the chart's data).",
        &["purpose", "app", "category", "entries", "records"],
        cats.iter()
            .map(|(p, a, c, t)| {
                vec![
                    p.as_str().into(),
                    a.as_str().into(),
                    c.as_str().into(),
                    t.transfers.into(),
                    t.records.into(),
                ]
            })
            .collect(),
    );

    // 4. decisions
    page.h2(
        "4. Allowed, minimised, blocked and rate-limited shares",
        "decisions",
    );
    let decisions = r.agg.decisions();
    let names = DECISIONS.map(super::record::Decision::as_str);
    let mut all = [0u64; 4];
    for (_, d) in &decisions {
        for (a, b) in all.iter_mut().zip(d) {
            *a += b;
        }
    }
    let mut chart_rows = vec![("all purposes".to_string(), all)];
    chart_rows.extend(decisions.iter().cloned());
    page.raw(&share_bars(
        "Share of entries per decision, overall and per purpose",
        names,
        &chart_rows,
    ));
    page.table(
        "Entries per decision (the chart's data); shares of the row's entries.",
        &[
            "purpose",
            "entries",
            "allowed",
            "minimised",
            "blocked",
            "rate_limited",
            "minimised share",
            "blocked share",
            "rate-limited share",
        ],
        chart_rows
            .iter()
            .map(|(p, d)| {
                let total: u64 = d.iter().sum();
                vec![
                    p.as_str().into(),
                    total.into(),
                    d[0].into(),
                    d[1].into(),
                    d[2].into(),
                    d[3].into(),
                    pct(d[1], total).into(),
                    pct(d[2], total).into(),
                    pct(d[3], total).into(),
                ]
            })
            .collect(),
    );

    // 5. policy versions
    page.h2("5. Policy versions in force", "policies");
    let policies = r.agg.policies();
    page.note("Each policy version (SHA-256 over policies/, also sent as Zweck-Policy) from the first to the last entry it decided; a new row is a change of policy.");
    if !policies.is_empty() {
        page.raw(&timeline(
            "When each policy version decided entries",
            &policies
                .iter()
                .map(|(v, f, l, _)| (v.get(..12).unwrap_or(v).to_string(), *f, *l))
                .collect::<Vec<_>>(),
        ));
    }
    page.table(
        "Policy versions (the chart's data).",
        &["policy version", "first entry", "last entry", "entries"],
        policies
            .iter()
            .map(|(v, f, l, n)| {
                vec![
                    Cell::Html(format!("<code>{}</code>", esc(v))),
                    format_ms(*f).into(),
                    format_ms(*l).into(),
                    (*n).into(),
                ]
            })
            .collect(),
    );

    // 6. the requested grouping
    let dims = r.agg.dims();
    let dim_names: Vec<&str> = dims.iter().map(|d| d.name()).collect();
    page.h2(
        &format!("6. Summary by {}", dim_names.join(", ")),
        "summary",
    );
    if dims.contains(&Dimension::Category) {
        page.note(&format!("{CATEGORY_NOTE}."));
    }
    let mut header: Vec<&str> = dim_names.clone();
    header.extend(super::report::TOTAL_COLUMNS);
    let mut rows: Vec<Vec<Cell>> = r
        .agg
        .rows()
        .into_iter()
        .map(|(k, t)| {
            k.into_iter()
                .map(Cell::Text)
                .chain(totals_cells(&t))
                .collect()
        })
        .collect();
    let mut total: Vec<Cell> = vec!["(all entries)".into()];
    total.extend((1..dims.len()).map(|_| Cell::Text(String::new())));
    total.extend(totals_cells(&r.agg.total));
    rows.push(total);
    page.table(
        "transfers = entries; records = records delivered; refused = blocked or rate-limited; cross_border = entries to a third country.",
        &header,
        rows,
    );
    page.finish()
}

fn totals_cells(t: &Totals) -> Vec<Cell> {
    vec![
        t.transfers.into(),
        t.records.into(),
        t.bytes.into(),
        t.minimised.into(),
        t.refused.into(),
        t.cross_border.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let svg = hbars("t<", &[("<script>".into(), 3)]);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        let mut p = Page::new("x", Some("UNVERIFIED <b>".into()));
        p.table("c", &["h"], vec![vec![Cell::Text("</td><script>".into())]]);
        let html = p.finish();
        assert!(!html.contains("<script>"), "{html}");
        assert_eq!(
            html.matches("UNVERIFIED &lt;b&gt;").count(),
            2,
            "top and bottom"
        );
        assert!(html.contains("class=\"banner\""));
    }

    #[test]
    fn charts_scale_to_their_largest_value_and_survive_empty_input() {
        let svg = stacked_bars(
            "t",
            &["2026-11".into(), "2026-12".into()],
            &[("US".into(), vec![10, 0]), ("IN".into(), vec![5, 20])],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(
            svg.contains(">20</text>"),
            "the axis shows the maximum: {svg}"
        );
        for empty in [
            stacked_bars("t", &[], &[]),
            hbars("t", &[]),
            share_bars("t", ["a", "b", "c", "d"], &[]),
            timeline("t", &[]),
        ] {
            assert!(
                empty.contains("</svg>") && !empty.contains("NaN"),
                "{empty}"
            );
        }
    }
}
