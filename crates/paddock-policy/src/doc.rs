//! The policy document, as TOML files and REST bodies write it; each entry
//! read into the gateway's own types once, so a document that would not
//! apply is refused before anything changes.

use std::collections::BTreeMap;

use paddock_egress::http_rules::{parse_host, parse_ref, parse_request};
use paddock_egress::{Action, PortRange, Target};
use paddock_vault::{Binding, BindingSpec, check_env};
use serde::{Deserialize, Serialize};

use crate::PolicyError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Shipped presets taken by name (`paddock policy presets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_rules: Vec<HttpRuleDoc>,
    /// By secret name: its variable and bindings (never its value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// `example.com`, `*.example.com` or a CIDR.
    pub target: String,
    /// `P` or `P-Q`; none: any port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRuleDoc {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `GET,HEAD /repos/acme/**`.
    pub request: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    pub action: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default)]
    pub bindings: Vec<BindingSpec>,
}

/// A connection rule as compared: target and ports written one way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RuleKey {
    pub target: String,
    pub ports: Option<String>,
}

/// An HTTP rule as compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HttpKey {
    pub host: String,
    pub port: Option<u16>,
    pub request: String,
    pub refs: Vec<String>,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Invalid(format!("{what}: {e}"))
}

impl RuleDoc {
    pub(crate) fn key(&self) -> Result<(RuleKey, Action), PolicyError> {
        let what = format!("rule for {}", self.target);
        let target: Target = self.target.parse().map_err(|e| invalid(&what, e))?;
        let ports = self
            .ports
            .as_deref()
            .map(str::parse::<PortRange>)
            .transpose()
            .map_err(|e| invalid(&what, e))?;
        let action: Action = self.action.parse().map_err(|e| invalid(&what, e))?;
        Ok((
            RuleKey {
                target: target.to_string(),
                ports: ports.map(|p| p.to_string()),
            },
            action,
        ))
    }
}

impl HttpRuleDoc {
    pub(crate) fn key(&self) -> Result<(HttpKey, Action), PolicyError> {
        let what = format!("HTTP rule {} {}", self.host, self.request);
        let host = parse_host(&self.host).map_err(|e| invalid(&what, e))?;
        let (methods, path) = parse_request(&self.request).map_err(|e| invalid(&what, e))?;
        let mut refs = self
            .refs
            .iter()
            .map(|r| parse_ref(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&what, e))?;
        refs.sort();
        if self.port == Some(0) {
            return Err(invalid(&what, "port 0"));
        }
        let action: Action = self.action.parse().map_err(|e| invalid(&what, e))?;
        let methods = if methods.is_empty() {
            "*".to_owned()
        } else {
            methods.join(",")
        };
        Ok((
            HttpKey {
                host,
                port: self.port,
                request: format!("{methods} {path}"),
                refs,
            },
            action,
        ))
    }
}

impl SecretDoc {
    pub(crate) fn check(&self, name: &str) -> Result<(), PolicyError> {
        if let Some(env) = &self.env {
            check_env(env).map_err(|e| invalid(&format!("secret {name}"), e))?;
        }
        for spec in &self.bindings {
            Binding::try_from(spec).map_err(|e| invalid(&format!("secret {name}"), e))?;
        }
        Ok(())
    }
}
