//! Presets: rules paddock ships as data (`presets.toml`), taken by name.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::PolicyError;
use crate::doc::{HttpRuleDoc, PolicyDoc, RuleDoc};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    #[serde(default)]
    pub http_rules: Vec<HttpRuleDoc>,
}

#[derive(Deserialize)]
struct Shipped {
    presets: Vec<Preset>,
}

/// Every shipped preset (read once).
pub fn presets() -> Result<&'static [Preset], PolicyError> {
    static PRESETS: OnceLock<Result<Vec<Preset>, String>> = OnceLock::new();
    PRESETS
        .get_or_init(|| {
            toml::from_str::<Shipped>(include_str!("presets.toml"))
                .map(|s| s.presets)
                .map_err(|e| e.to_string())
        })
        .as_deref()
        .map_err(|e| PolicyError::Invalid(format!("the shipped presets cannot be read: {e}")))
}

/// The document with its presets' rules added (and its preset list
/// emptied): what is planned and applied.
pub fn expand(doc: &PolicyDoc) -> Result<PolicyDoc, PolicyError> {
    let mut out = doc.clone();
    out.presets.clear();
    for name in &doc.presets {
        let shipped = presets()?;
        let preset = shipped.iter().find(|p| &p.name == name).ok_or_else(|| {
            let known: Vec<&str> = shipped.iter().map(|p| p.name.as_str()).collect();
            PolicyError::Invalid(format!(
                "no preset {name:?} (there are: {})",
                known.join(", ")
            ))
        })?;
        out.rules.extend(preset.rules.iter().cloned());
        out.http_rules.extend(preset.http_rules.iter().cloned());
    }
    Ok(out)
}
