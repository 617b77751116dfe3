//! Aligned text tables and the short forms of figures in them.

use butte::support::format_size;

/// Gap between columns.
const GAP: &str = "   ";

/// HEADERS over ROWS, each column as wide as its widest cell (counted in
/// characters), the last one unpadded; one line each, `\n`-terminated.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            if i > 0 {
                line.push_str(GAP);
            }
            line.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `-` for what is unknown.
pub fn or_dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

/// CPU time: `0.25s`, `1m12s`, `3h05m`.
pub fn cpu_time(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        format!("{s:.2}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// How long ago: `12s`, `5m`, `3h`, `2d`.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Memory used over its limit: `12.3 MiB / 64.0 MiB` (the limit left out
/// when there is none).
pub fn memory(used: u64, limit: u64) -> String {
    if limit == 0 {
        format_size(used)
    } else {
        format!("{} / {}", format_size(used), format_size(limit))
    }
}

/// A percentage with two decimals, as `docker stats`.
pub fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "--".into(), |p| format!("{p:.2}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell_and_lines_do_not_trail() {
        let rows = vec![
            vec!["web-1".into(), "TASK_RUNNING".into(), "-".into()],
            vec!["a-much-longer-id".into(), "TASK_KILLED".into(), "".into()],
        ];
        let t = render(&["TASK ID", "STATE", "IMAGE"], &rows);
        assert_eq!(
            t,
            "TASK ID            STATE          IMAGE\n\
             web-1              TASK_RUNNING   -\n\
             a-much-longer-id   TASK_KILLED\n"
        );
        // Widths count characters, not bytes.
        let t = render(&["A", "B"], &[vec!["é".into(), "x".into()]]);
        assert_eq!(t, "A   B\né   x\n");
        assert_eq!(render(&["ONLY"], &[]), "ONLY\n");
    }

    #[test]
    fn figures_are_short() {
        assert_eq!(cpu_time(0.05), "0.05s");
        assert_eq!(cpu_time(72.4), "1m12s");
        assert_eq!(cpu_time(3600.0 * 3.0 + 300.0), "3h05m");
        assert_eq!(age(12.7), "12s");
        assert_eq!(age(300.0), "5m");
        assert_eq!(age(7200.0), "2h");
        assert_eq!(age(200000.0), "2d");
        assert_eq!(memory(72470528, 67108864), "69.1 MiB / 64.0 MiB");
        assert_eq!(memory(512, 0), "512 B");
        assert_eq!(percent(Some(12.345)), "12.35%");
        assert_eq!(percent(None), "--");
        assert_eq!(or_dash(Some(String::new())), "-");
    }
}
