//! What applying a document changes: the plan (each change one line of
//! the dry run), carried out through the gateway and the vault, and the
//! document the project has now.

use std::collections::BTreeMap;
use std::fmt;

use paddock_egress::{Action, Egress, HttpRuleSpec, PortRange, Scope, Target};
use paddock_vault::{Binding, BindingSpec, SecretUpdate, Vault};
use serde::Serialize;

use crate::doc::{HttpKey, HttpRuleDoc, PolicyDoc, RuleDoc, RuleKey, SecretDoc};
use crate::{PolicyError, expand};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    AddRule {
        rule: RuleDoc,
    },
    ChangeRule {
        id: i64,
        rule: RuleDoc,
        from: String,
    },
    RemoveRule {
        id: i64,
        rule: RuleDoc,
    },
    AddHttpRule {
        rule: HttpRuleDoc,
    },
    ChangeHttpRule {
        id: i64,
        rule: HttpRuleDoc,
        from: String,
    },
    RemoveHttpRule {
        id: i64,
        rule: HttpRuleDoc,
    },
    SetSecret {
        name: String,
        secret: SecretDoc,
    },
}

fn rule_text(r: &RuleDoc) -> String {
    match &r.ports {
        Some(p) => format!("{} {} port {p}", r.action, r.target),
        None => format!("{} {}", r.action, r.target),
    }
}

fn http_text(r: &HttpRuleDoc) -> String {
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    let refs = if r.refs.is_empty() {
        String::new()
    } else {
        format!(" refs {}", r.refs.join(","))
    };
    format!("{} {}{port} {}{refs}", r.action, r.host, r.request)
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddRule { rule } => write!(f, "+ rule {}", rule_text(rule)),
            Self::ChangeRule { id, rule, from } => {
                write!(f, "~ rule #{id} {} (was {from})", rule_text(rule))
            }
            Self::RemoveRule { id, rule } => write!(f, "- rule #{id} {}", rule_text(rule)),
            Self::AddHttpRule { rule } => write!(f, "+ http rule {}", http_text(rule)),
            Self::ChangeHttpRule { id, rule, from } => {
                write!(f, "~ http rule #{id} {} (was {from})", http_text(rule))
            }
            Self::RemoveHttpRule { id, rule } => write!(f, "- http rule #{id} {}", http_text(rule)),
            Self::SetSecret { name, secret } => {
                let hosts: Vec<String> =
                    secret.bindings.iter().map(|b| b.hosts.join(",")).collect();
                write!(
                    f,
                    "~ secret {name}: env {}, bound to {}",
                    secret.env.as_deref().unwrap_or("-"),
                    if hosts.is_empty() {
                        "nothing".to_owned()
                    } else {
                        hosts.join("; ")
                    }
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub project: String,
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether applying it writes secrets (which takes `secret:write`).
    pub fn touches_secrets(&self) -> bool {
        self.changes
            .iter()
            .any(|c| matches!(c, Change::SetSecret { .. }))
    }
}

/// The project's durable rules, as the document describes them.
fn current_rules(egress: &Egress, project: &str) -> BTreeMap<RuleKey, (i64, RuleDoc)> {
    egress
        .rules()
        .iter()
        .filter(|r| r.scope == Scope::Project(project.to_owned()) && r.expires_at.is_none())
        .map(|r| {
            let doc = RuleDoc {
                target: r.target.to_string(),
                ports: r.ports.map(|p| p.to_string()),
                action: r.action.as_str().to_owned(),
            };
            let key = RuleKey {
                target: doc.target.clone(),
                ports: doc.ports.clone(),
            };
            (key, (r.id, doc))
        })
        .collect()
}

fn current_http(egress: &Egress, project: &str) -> BTreeMap<HttpKey, (i64, HttpRuleDoc)> {
    egress
        .http_rules()
        .iter()
        .filter(|r| r.scope == Scope::Project(project.to_owned()) && r.expires_at_ms.is_none())
        .map(|r| {
            let mut refs = r.refs.clone();
            refs.sort();
            let doc = HttpRuleDoc {
                host: r.host.clone(),
                port: r.port,
                request: r.request_text(),
                refs: refs.clone(),
                action: r.action.as_str().to_owned(),
            };
            let key = HttpKey {
                host: r.host.clone(),
                port: r.port,
                request: r.request_text(),
                refs,
            };
            (key, (r.id, doc))
        })
        .collect()
}

/// Bindings written one way, so the same bindings compare equal.
fn normalised(bindings: &[BindingSpec]) -> Result<Vec<BindingSpec>, PolicyError> {
    bindings
        .iter()
        .map(|b| {
            Binding::try_from(b)
                .map(|b| BindingSpec::from(&b))
                .map_err(PolicyError::from)
        })
        .collect()
}

/// What is wanted against what is there, by key: added, its action
/// changed, or removed.
fn diff<K: Ord, D>(
    want: BTreeMap<K, D>,
    mut current: BTreeMap<K, (i64, D)>,
    action: impl Fn(&D) -> String,
    add: impl Fn(D) -> Change,
    change: impl Fn(i64, D, String) -> Change,
    remove: impl Fn(i64, D) -> Change,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, wanted) in want {
        match current.remove(&key) {
            None => changes.push(add(wanted)),
            Some((id, now)) if action(&now) != action(&wanted) => {
                changes.push(change(id, wanted, action(&now)))
            }
            Some(_) => {}
        }
    }
    changes.extend(current.into_values().map(|(id, d)| remove(id, d)));
    changes
}

/// The changes that make `project` match `doc` (its presets expanded).
/// A document that would not apply whole is refused here, before any
/// change: a bad entry, two entries for one rule, a secret with no value.
pub fn plan(
    project: &str,
    doc: &PolicyDoc,
    egress: &Egress,
    vault: &Vault,
) -> Result<Plan, PolicyError> {
    let doc = expand(doc)?;
    let mut changes = Vec::new();

    let mut want: BTreeMap<RuleKey, RuleDoc> = BTreeMap::new();
    for rule in &doc.rules {
        let (key, action) = rule.key()?;
        let normal = RuleDoc {
            target: key.target.clone(),
            ports: key.ports.clone(),
            action: action.as_str().to_owned(),
        };
        if let Some(other) = want.insert(key, normal.clone())
            && other.action != normal.action
        {
            return Err(PolicyError::Invalid(format!(
                "two rules for {} say {} and {}",
                rule.target, other.action, normal.action
            )));
        }
    }
    changes.extend(diff(
        want,
        current_rules(egress, project),
        |r| r.action.clone(),
        |rule| Change::AddRule { rule },
        |id, rule, from| Change::ChangeRule { id, rule, from },
        |id, rule| Change::RemoveRule { id, rule },
    ));

    let mut want: BTreeMap<HttpKey, HttpRuleDoc> = BTreeMap::new();
    for rule in &doc.http_rules {
        let (key, action) = rule.key()?;
        let normal = HttpRuleDoc {
            host: key.host.clone(),
            port: key.port,
            request: key.request.clone(),
            refs: key.refs.clone(),
            action: action.as_str().to_owned(),
        };
        if let Some(other) = want.insert(key, normal.clone())
            && other.action != normal.action
        {
            return Err(PolicyError::Invalid(format!(
                "two HTTP rules for {} {} say {} and {}",
                rule.host, rule.request, other.action, normal.action
            )));
        }
    }
    changes.extend(diff(
        want,
        current_http(egress, project),
        |r| r.action.clone(),
        |rule| Change::AddHttpRule { rule },
        |id, rule, from| Change::ChangeHttpRule { id, rule, from },
        |id, rule| Change::RemoveHttpRule { id, rule },
    ));

    let secrets = vault.list(Some(project))?;
    for (name, wanted) in &doc.secrets {
        wanted.check(name)?;
        let Some(now) = secrets.iter().find(|s| &s.name == name) else {
            return Err(PolicyError::Invalid(format!(
                "project {project} has no secret {name}: set its value first (paddock secret set {name} --project {project})"
            )));
        };
        let wanted = SecretDoc {
            env: wanted.env.clone(),
            bindings: normalised(&wanted.bindings)?,
        };
        if now.env != wanted.env || normalised(&now.bindings)? != wanted.bindings {
            changes.push(Change::SetSecret {
                name: name.clone(),
                secret: wanted,
            });
        }
    }
    Ok(Plan {
        project: project.to_owned(),
        changes,
    })
}

/// Carries the plan out, change by change, as `by`.
pub fn apply(
    plan: &Plan,
    egress: &Egress,
    vault: &Vault,
    by: &str,
    now_ms: i64,
) -> Result<(), PolicyError> {
    let scope = || Scope::Project(plan.project.clone());
    for change in &plan.changes {
        match change {
            Change::AddRule { rule } | Change::ChangeRule { rule, .. } => {
                let target: Target = rule
                    .target
                    .parse()
                    .map_err(paddock_egress::EgressError::from)?;
                let ports = rule
                    .ports
                    .as_deref()
                    .map(str::parse::<PortRange>)
                    .transpose()
                    .map_err(paddock_egress::EgressError::from)?;
                let action: Action = rule
                    .action
                    .parse()
                    .map_err(paddock_egress::EgressError::from)?;
                egress.put_rule(scope(), target, ports, action, None, by)?;
            }
            Change::RemoveRule { id, .. } => {
                egress.delete_rule(*id, by)?;
            }
            Change::AddHttpRule { rule } | Change::ChangeHttpRule { rule, .. } => {
                let action: Action = rule
                    .action
                    .parse()
                    .map_err(paddock_egress::EgressError::from)?;
                let spec = HttpRuleSpec {
                    scope: scope(),
                    host: rule.host.clone(),
                    port: rule.port,
                    request: rule.request.clone(),
                    refs: rule.refs.clone(),
                    action,
                    ttl: None,
                };
                egress.put_http_rule(spec, by)?;
            }
            Change::RemoveHttpRule { id, .. } => {
                egress.delete_http_rule(*id, by)?;
            }
            Change::SetSecret { name, secret } => {
                let update = SecretUpdate {
                    value: None,
                    env: Some(secret.env.clone()),
                    bindings: Some(secret.bindings.clone()),
                };
                vault.set(&plan.project, name, update, now_ms)?;
            }
        }
    }
    Ok(())
}

/// The document `project` has now: applying it changes nothing.
pub fn export(project: &str, egress: &Egress, vault: &Vault) -> Result<PolicyDoc, PolicyError> {
    let rules = current_rules(egress, project)
        .into_values()
        .map(|(_, r)| r)
        .collect();
    let http_rules = current_http(egress, project)
        .into_values()
        .map(|(_, r)| r)
        .collect();
    let secrets = vault
        .list(Some(project))?
        .into_iter()
        .map(|s| {
            (
                s.name,
                SecretDoc {
                    env: s.env,
                    bindings: s.bindings,
                },
            )
        })
        .collect();
    Ok(PolicyDoc {
        presets: Vec::new(),
        rules,
        http_rules,
        secrets,
    })
}
