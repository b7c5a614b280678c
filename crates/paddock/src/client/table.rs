//! Plain aligned tables for people; `--json` is for scripts.

/// Seconds since the epoch as RFC 3339 UTC; `None` for no time (or one
/// out of range), which each table words its own way.
pub fn utc(secs: Option<i64>) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A JSON value as a table cell: strings as they are, null as nothing,
/// anything else as JSON.
pub(crate) fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align() {
        let t = super::render(
            &["ID", "STATE"],
            &[vec!["a-long-id".into(), "ready".into()]],
        );
        assert_eq!(t, "ID         STATE\na-long-id  ready");
    }
}
