//! The text exposition format (version 0.0.4), as Prometheus and promtool
//! read it.

use std::fmt::Write as _;

use crate::Registry;

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// Every family of `registry`, with its HELP and TYPE lines.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    for family in registry.families() {
        let name = family.name();
        let _ = writeln!(out, "# HELP {name} {}", escape_help(family.help()));
        let _ = writeln!(out, "# TYPE {name} {}", family.kind());
        for sample in family.samples() {
            out.push_str(name);
            out.push_str(sample.suffix);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_value(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(sample.value));
        }
    }
    out
}
