//! The results table.

use crate::measure::Cost;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    /// Events delivered by a sink, or records fetched by a baseline.
    pub events: u64,
    pub cost: Cost,
    /// HTTP requests made to the fake (token exchanges included).
    pub requests: Option<u64>,
    /// Anything odd about this row, printed under the table.
    pub note: Option<String>,
}

impl Row {
    pub fn rate(&self) -> f64 {
        let secs = self.cost.wall.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }

    /// CPU seconds per million events: the cost of the work, whatever the wall time.
    pub fn cpu_per_million(&self) -> Option<f64> {
        (self.events > 0).then(|| self.cost.cpu.as_secs_f64() * 1e6 / self.events as f64)
    }
}

/// A rate the rows are compared with, as a column `vs <name>`.
pub struct Baseline<'a> {
    pub name: &'a str,
    /// Its events (records) per second, if it ran.
    pub rate: Option<f64>,
}

fn ratio(rate: f64, base: Option<f64>) -> String {
    match base {
        Some(base) if base > 0.0 => format!("{:.2}x", rate / base),
        _ => "-".to_owned(),
    }
}

/// Renders the rows as a Markdown table (readable in a terminal, pasteable in the README),
/// with one ratio column per baseline.
pub fn table(rows: &[Row], baselines: &[Baseline<'_>]) -> String {
    let mut header: Vec<String> = [
        "sink / row",
        "events",
        "wall s",
        "events/s",
        "CPU s",
        "CPU s per million events",
        "peak RSS MiB",
        "requests",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    header.extend(baselines.iter().map(|b| format!("vs {}", b.name)));
    let mut cells: Vec<Vec<String>> = vec![header];
    for row in rows {
        let rate = row.rate();
        let mut line = vec![
            row.name.clone(),
            group(row.events),
            format!("{:.2}", row.cost.wall.as_secs_f64()),
            group(rate.round() as u64),
            format!("{:.2}", row.cost.cpu.as_secs_f64()),
            row.cpu_per_million()
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
            format!("{:.1}", row.cost.max_rss_kib as f64 / 1024.0),
            row.requests.map_or_else(|| "-".to_owned(), group),
        ];
        line.extend(baselines.iter().map(|b| ratio(rate, b.rate)));
        cells.push(line);
    }
    markdown(&cells)
}

/// Renders rows of cells as a Markdown table: the first row is the header, the first column
/// is left-aligned and the others right-aligned.
pub fn markdown(cells: &[Vec<String>]) -> String {
    let n_columns = cells.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..n_columns)
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", line.join(" | ")));
        if i == 0 {
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    if c == 0 {
                        "-".repeat(*w)
                    } else {
                        format!("{}:", "-".repeat(w - 1))
                    }
                })
                .collect();
            out.push_str(&format!("| {} |\n", rule.join(" | ")));
        }
    }
    out
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
