//! `summary.md`: a short Markdown summary for a pull-request comment or a CI step summary
//! (`cat summary.md >> "$GITHUB_STEP_SUMMARY"`).

use std::fmt::Write;

use super::{cells, rows, RecordedRun};

/// Escapes `text` for a Markdown table cell: HTML is shown as text, Markdown punctuation as
/// itself, and a `|` cannot end the cell.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\n' | '\r' => escaped.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#' => {
                escaped.push('\\');
                escaped.push(c);
            }
            _ => escaped.push(c),
        }
    }
    escaped
}

/// A Markdown table: `header` cells, `right` says which columns are numbers, cells escaped.
pub fn table(header: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let mut text = line(header.iter().map(|h| escape(h)).collect());
    text += &line(
        right
            .iter()
            .map(|&r| if r { "--:" } else { "---" }.to_owned())
            .collect(),
    );
    for row in rows {
        text += &line(row.iter().map(|c| escape(c)).collect());
    }
    text
}

/// An emoji for a verdict class, so the state reads at a glance in a PR.
pub fn mark(class: &str) -> &'static str {
    match class {
        "passed" => "✅",
        "failed" => "❌",
        _ => "⚠️",
    }
}

/// `summary.md` of a run.
pub fn summary(run: &RecordedRun) -> String {
    let verdict = rows::Verdict::of(run);
    let info = &run.info;
    let mut text = format!(
        "## {} precheck `{}`: {}\n\n{} · {} on {} · precheck {}\n\n",
        mark(verdict.class),
        escape(&info.suite.name),
        verdict.headline,
        verdict.counts,
        escape(info.backend.name()),
        escape(&info.device_name),
        escape(&info.precheck_version),
    );
    if run.interrupted() {
        text += "**The run was interrupted**: these are the variants that finished.\n\n";
    }
    let rows = cells::failing_first(&run.records);
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.summary_cells().to_vec()).collect();
    text += &table(
        &cells::SUMMARY_COLUMNS,
        &[false, true, true, true, true, true, true, false],
        &cells,
    );
    let problems: Vec<&cells::VariantRow> = rows.iter().filter(|r| !r.why.is_empty()).collect();
    if !problems.is_empty() {
        text += "\n";
        for row in problems {
            let _ = writeln!(
                text,
                "- **{}** {}: {}",
                row.verdict,
                escape(&row.id),
                escape(&row.why)
            );
        }
    }
    if let Some(depth) = rows::DepthTable::of(&run.records) {
        text += "\n### Cosine after each layer\n\n";
        let header: Vec<&str> = std::iter::once("variant")
            .chain(depth.layers.iter().map(String::as_str))
            .collect();
        let right: Vec<bool> = header.iter().enumerate().map(|(i, _)| i > 0).collect();
        let cells: Vec<Vec<String>> = depth
            .rows
            .into_iter()
            .map(|row| std::iter::once(row.id).chain(row.cos).collect())
            .collect();
        text += &table(&header, &right, &cells);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_html_and_pipes_as_text() {
        assert_eq!(
            escape("<script>|a_b</script>"),
            "&lt;script&gt;\\|a\\_b&lt;/script&gt;"
        );
        assert_eq!(escape("two\nlines"), "two lines");
    }

    #[test]
    fn table_aligns_numbers_right() {
        let text = table(
            &["a", "n"],
            &[false, true],
            &[vec!["x|y".into(), "1".into()]],
        );
        assert_eq!(text, "| a | n |\n| --- | --: |\n| x\\|y | 1 |\n");
    }
}
