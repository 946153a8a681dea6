//! The one text-table formatter of the project: every metric table (`yolo3 eval`'s, training's
//! per-class table) is a [`Table`], so column widths are worked out in one place.
//!
//! Columns are right-aligned and as wide as their widest cell or header; the first column gets
//! two spaces of indent so that a table reads apart from the lines around it.

use std::fmt::Write as _;

/// A table of text cells under a header row.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    #[must_use]
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|&h| h.to_owned()).collect(), rows: Vec::new() }
    }

    /// Appends a row; missing cells are blank and extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, each ending in a newline.
    #[must_use]
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::from("  ");
            for (c, &width) in widths.iter().enumerate().take(columns) {
                let cell = row.get(c).map_or("", String::as_str);
                let sep = if c == 0 { "" } else { "  " };
                let _ = write!(line, "{sep}{cell:>width$}");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A figure with `digits` decimals, `-` where it is undefined.
#[must_use]
pub fn figure(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut t = Table::new(&["class", "AP"]);
        t.row(vec!["triangle".into(), figure(Some(0.5), 3)]);
        t.row(vec!["c".into(), figure(None, 3)]);
        assert_eq!(t.render(), "     class     AP\n  triangle  0.500\n         c      -\n");
    }

    #[test]
    fn short_rows_are_blank_and_long_rows_cut() {
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["x".into()]);
        t.row(vec!["1".into(), "2".into(), "3".into()]);
        assert_eq!(t.render(), "  a  b\n  x\n  1  2\n");
    }
}
