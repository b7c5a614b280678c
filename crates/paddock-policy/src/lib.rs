//! Policy as code: a project's connection rules, HTTP rules and secret
//! bindings as one document (`doc.rs`), the changes that would make the
//! project match it (`plan.rs`, shown by `--dry-run`), applied through the
//! gateway and the vault as any other change is, and the document that
//! describes the project now (`export`). Presets (`presets.toml`) are
//! rules shipped as data, expanded into the document by name.
//!
//! The document owns what it can describe: project-scoped rules and HTTP
//! rules without an expiry, and the variable and bindings of the secrets it
//! names. Box rules, rules with a time to live (a person's verdict "for an
//! hour"), secret values and secrets it does not name are left alone.

mod doc;
mod plan;
mod presets;

pub use doc::{HttpRuleDoc, PolicyDoc, RuleDoc, SecretDoc};
pub use plan::{Change, Plan, apply, export, plan};
pub use presets::{Preset, expand, presets};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Egress(#[from] paddock_egress::EgressError),
    #[error(transparent)]
    Vault(#[from] paddock_vault::VaultError),
}
#[cfg(test)]
mod tests;
