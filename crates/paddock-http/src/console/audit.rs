//! `/console/audit`: every egress decision, newest first, filtered by box,
//! project, decision and time, a page at a time (`before` the oldest shown),
//! and the same selection exported as JSON Lines or CSV.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use paddock_store::{AuditQuery, AuditRow};
use serde::Deserialize;

use super::{Frame, Section, failed, when};
use crate::AppState;
use crate::auth::Caller;
use crate::pages::escape;
use crate::routes::Routes;

const PAGE_ROWS: u32 = 100;
/// An export is bounded like everything else a request can ask for.
const EXPORT_ROWS: u32 = 100_000;
/// The decisions the log records, for the filter's choices.
fn decisions() -> impl Iterator<Item = &'static str> {
    paddock_egress::AuditDecision::ALL
        .iter()
        .map(|d| d.as_str())
}

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /console/audit", page)
        .bind("GET /console/audit/export", export)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Filter {
    #[serde(default)]
    box_id: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    decision: String,
    /// `YYYY-MM-DDTHH:MM` (UTC), as a datetime-local field sends it.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: Option<i64>,
    /// `jsonl` or `csv` (export only).
    #[serde(default)]
    format: String,
}

/// `YYYY-MM-DDTHH:MM[:SS]` read as UTC, in ms since the epoch.
fn parse_time(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let with_seconds = if text.len() == 16 {
        format!("{text}:00")
    } else {
        text.to_owned()
    };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(&with_seconds, &format)
        .map(|t| Some((t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| format!("{text:?} is not a time like 2026-12-02T14:30"))
}

fn non_empty(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

impl Filter {
    fn query(&self, limit: u32) -> Result<AuditQuery, String> {
        if !self.decision.is_empty() && !decisions().any(|d| d == self.decision) {
            return Err(format!("no decision is called {:?}", self.decision));
        }
        Ok(AuditQuery {
            box_id: non_empty(&self.box_id),
            project: non_empty(&self.project),
            decision: non_empty(&self.decision),
            from_ms: parse_time(&self.from)?,
            to_ms: parse_time(&self.to)?,
            before: self.before,
            after: None,
            limit,
        })
    }

    /// The filter as a query string (for the next page and the exports).
    fn to_query(&self, before: Option<i64>, format: &str) -> String {
        let mut pairs: Vec<String> = Vec::new();
        for (k, v) in [
            ("box_id", &self.box_id),
            ("project", &self.project),
            ("decision", &self.decision),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                pairs.push(format!("{k}={}", crate::signin::form_urlencoded(v)));
            }
        }
        if let Some(b) = before {
            pairs.push(format!("before={b}"));
        }
        if !format.is_empty() {
            pairs.push(format!("format={format}"));
        }
        pairs.join("&")
    }
}

fn rows(s: &AppState, caller: &Caller, q: &AuditQuery) -> Result<Vec<AuditRow>, String> {
    let egress = s
        .egress
        .as_ref()
        .ok_or("egress is disabled in this paddock")?;
    let mut rows = egress.store().egress_audit(q).map_err(|e| e.to_string())?;
    rows.retain(|r| caller.sees(&r.project));
    rows.reverse(); // newest first
    Ok(rows)
}

fn table_row(r: &AuditRow) -> String {
    format!(
        "<tr><td data-label=\"When\">{at}</td><td data-label=\"Box\">{box_id}</td>\
         <td data-label=\"Project\">{project}</td><td data-label=\"Destination\">{dest}:{port}</td>\
         <td data-label=\"Domain\">{domain}</td><td data-label=\"Decision\">{decision}</td>\
         <td data-label=\"By\">{by}</td><td data-label=\"Reason\">{reason}</td></tr>",
        at = when(r.at_ms),
        box_id = escape(&r.box_id),
        project = escape(&r.project),
        dest = escape(&r.dest),
        port = r.port,
        domain = escape(&r.domain),
        decision = escape(&r.decision),
        by = escape(&r.decided_by),
        reason = escape(&r.reason),
    )
}

fn filter_form(f: &Filter) -> String {
    let options: String = std::iter::once("")
        .chain(decisions())
        .map(|d| {
            let selected = if d == f.decision { " selected" } else { "" };
            let label = if d.is_empty() { "any" } else { d };
            format!("<option value=\"{d}\"{selected}>{label}</option>")
        })
        .collect();
    format!(
        "<form method=\"get\" action=\"/console/audit\" class=\"grid\" id=\"audit-filter\">\
         <label>Box <input name=\"box_id\" value=\"{b}\"></label>\
         <label>Project <input name=\"project\" value=\"{p}\"></label>\
         <label>Decision <select name=\"decision\">{options}</select></label>\
         <label>From (UTC) <input type=\"datetime-local\" name=\"from\" value=\"{from}\"></label>\
         <label>To (UTC) <input type=\"datetime-local\" name=\"to\" value=\"{to}\"></label>\
         <button type=\"submit\">Filter</button></form>",
        b = escape(&f.box_id),
        p = escape(&f.project),
        from = escape(&f.from),
        to = escape(&f.to),
    )
}

async fn page(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    query: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let frame = Frame::new(&s, &headers, &caller, Section::Audit);
    let Ok(Query(filter)) = query else {
        return failed(
            StatusCode::BAD_REQUEST,
            "the filter was malformed",
            Section::Audit,
        );
    };
    let found = filter.query(PAGE_ROWS).and_then(|q| rows(&s, &caller, &q));
    let found = match found {
        Ok(rows) => rows,
        Err(e) => return failed(StatusCode::BAD_REQUEST, &e, Section::Audit),
    };
    let body: String = found.iter().map(table_row).collect();
    // A full page may have more behind it (filtered rows make it shorter,
    // never longer).
    let older = match found.last() {
        Some(oldest) if found.len() as u32 == PAGE_ROWS => format!(
            "<a href=\"/console/audit?{}\" id=\"older\">Older</a>",
            escape(&filter.to_query(Some(oldest.id), ""))
        ),
        _ => String::new(),
    };
    let exports = format!(
        "<a href=\"/console/audit/export?{jsonl}\" id=\"export-jsonl\">Export JSONL</a> · \
         <a href=\"/console/audit/export?{csv}\" id=\"export-csv\">Export CSV</a>",
        jsonl = escape(&filter.to_query(None, "jsonl")),
        csv = escape(&filter.to_query(None, "csv")),
    );
    frame.render(
        StatusCode::OK,
        &format!(
            "{form}<p class=\"bar\">{exports}</p>\
             <table class=\"stack\" id=\"audit\"><thead><tr><th>When (UTC)</th><th>Box</th><th>Project</th>\
             <th>Destination</th><th>Domain</th><th>Decision</th><th>By</th><th>Reason</th></tr></thead>\
             <tbody>{body}</tbody></table><p>{older}</p>",
            form = filter_form(&filter),
        ),
    )
}

fn csv_field(text: &str) -> String {
    // A cell a spreadsheet would run as a formula is quoted as text.
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn as_csv(rows: &[AuditRow]) -> String {
    let mut out = String::from(
        "id,at_ms,box_id,project,dest,port,proto,domain,decision,decided_by,request_id,reason\n",
    );
    for r in rows {
        let cells = [
            r.id.to_string(),
            r.at_ms.to_string(),
            csv_field(&r.box_id),
            csv_field(&r.project),
            csv_field(&r.dest),
            r.port.to_string(),
            r.proto.to_string(),
            csv_field(&r.domain),
            csv_field(&r.decision),
            csv_field(&r.decided_by),
            csv_field(&r.request_id),
            csv_field(&r.reason),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

async fn export(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let Ok(Query(filter)) = query else {
        return failed(
            StatusCode::BAD_REQUEST,
            "the filter was malformed",
            Section::Audit,
        );
    };
    let found = filter
        .query(EXPORT_ROWS)
        .and_then(|q| rows(&s, &caller, &q));
    let mut found = match found {
        Ok(rows) => rows,
        Err(e) => return failed(StatusCode::BAD_REQUEST, &e, Section::Audit),
    };
    found.reverse(); // an export reads oldest first
    let (body, content_type, name) = match filter.format.as_str() {
        "jsonl" | "" => (
            found
                .iter()
                .map(|r| format!("{}\n", crate::egress::audit_json(r)))
                .collect::<String>(),
            "application/jsonl; charset=utf-8",
            "paddock-audit.jsonl",
        ),
        "csv" => (
            as_csv(&found),
            "text/csv; charset=utf-8",
            "paddock-audit.csv",
        ),
        other => {
            return failed(
                StatusCode::BAD_REQUEST,
                &format!("export as jsonl or csv, not {other:?}"),
                Section::Audit,
            );
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_utc_minutes_or_seconds() {
        assert_eq!(parse_time("").unwrap(), None);
        assert_eq!(parse_time("1970-01-01T00:01").unwrap(), Some(60_000));
        assert_eq!(parse_time("1970-01-01T00:00:02").unwrap(), Some(2_000));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }
}
