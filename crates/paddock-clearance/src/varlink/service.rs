//! What each varlink call does. Pure dispatch: the connection loop in
//! `server` owns the socket, this decides the reply.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::codec::{Call, Reply};
use super::interfaces::{self, PADDOCK, SERVICE, TEROK};
use crate::hub::{Hub, PendingView, Verdict, VerdictError, VerdictScope};
use crate::request::{VerdictRequest, VerdictRequestError};
use paddock_iam::{Access, Identity, Resource, Surface, grant_decision, registry};

pub(crate) enum Outcome {
    Reply(Reply),
    /// Start streaming events on this connection.
    Subscribe,
}

fn invalid_parameter(parameter: &str) -> Outcome {
    Outcome::Reply(Reply::error(
        format!("{SERVICE}.InvalidParameter"),
        json!({ "parameter": parameter }),
    ))
}

/// serde names the offending field in backticks; that is the parameter.
fn parameter_from(error: &serde_json::Error) -> String {
    let text = error.to_string();
    text.split('`').nth(1).unwrap_or("parameters").to_owned()
}

fn parse<T: for<'de> Deserialize<'de>>(call: &Call) -> Result<T, Outcome> {
    let params = call.parameters.clone().unwrap_or_else(|| json!({}));
    serde_json::from_value(params).map_err(|e| invalid_parameter(&parameter_from(&e)))
}

#[derive(Deserialize)]
struct InterfaceParam {
    interface: String,
}

#[derive(Deserialize)]
struct TerokVerdict {
    container: String,
    request_id: String,
    dest: String,
    action: String,
}

/// The registry's word on a method for this peer: unregistered methods
/// are not found, a refused capability is `PermissionDenied`.
fn authorised(caller: &Identity, method: &str) -> Result<(), Outcome> {
    let Some(op) = registry::find(Surface::Varlink, method) else {
        return Err(method_not_found(method));
    };
    if let Access::Requires(capability) = op.access {
        let decision = grant_decision(caller, capability, &Resource::Global, Duration::ZERO);
        if !decision.allow {
            return Err(Outcome::Reply(Reply::error(
                format!("{PADDOCK}.PermissionDenied"),
                json!({ "reason": decision.reason.unwrap_or_default() }),
            )));
        }
    }
    Ok(())
}

pub(crate) async fn dispatch(hub: &Hub, version: &str, call: &Call, caller: &Identity) -> Outcome {
    let (interface, method) = match call.method.rsplit_once('.') {
        Some(split) => split,
        None => return method_not_found(&call.method),
    };
    if matches!(interface, SERVICE | TEROK | PADDOCK)
        && let Err(refusal) = authorised(caller, &call.method)
    {
        return refusal;
    }
    let decided_by = format!("varlink:{}", caller.principal);
    let result = match (interface, method) {
        (SERVICE, "GetInfo") => Ok(get_info(version)),
        (SERVICE, "GetInterfaceDescription") => {
            parse::<InterfaceParam>(call).map(|p| match interfaces::description(&p.interface) {
                Some(d) => Outcome::Reply(Reply::ok(json!({ "description": d }))),
                None => interface_not_found(&p.interface),
            })
        }
        (TEROK, "Subscribe") if call.more => Ok(Outcome::Subscribe),
        (TEROK, "Subscribe") => Ok(Outcome::Reply(Reply::error(
            format!("{SERVICE}.ExpectedMore"),
            json!({}),
        ))),
        (TEROK, "Verdict") => match parse::<TerokVerdict>(call) {
            Ok(p) => Ok(verdict(
                hub,
                TEROK,
                Verdict {
                    container: p.container,
                    request_id: p.request_id,
                    dest: p.dest,
                    action: p.action,
                    scope: VerdictScope::Box,
                    ttl: None,
                    decided_by: decided_by.clone(),
                },
            )
            .await),
            Err(refusal) => Err(refusal),
        },
        (PADDOCK, "Pending") => Ok(pending(hub)),
        (PADDOCK, "Verdict") => match scoped(call, &decided_by) {
            Ok(v) => Ok(verdict(hub, PADDOCK, v).await),
            Err(refusal) => Err(refusal),
        },
        (SERVICE | TEROK | PADDOCK, _) => Ok(method_not_found(&call.method)),
        _ => Ok(interface_not_found(interface)),
    };
    result.unwrap_or_else(|refusal| refusal)
}

/// `org.paddock.Clearance1.Verdict`'s parameters, checked.
fn scoped(call: &Call, decided_by: &str) -> Result<Verdict, Outcome> {
    parse::<VerdictRequest>(call)?
        .into_verdict(decided_by)
        .map_err(|e| match e {
            VerdictRequestError::InvalidScope(scope) => Outcome::Reply(Reply::error(
                format!("{PADDOCK}.InvalidScope"),
                json!({ "scope": scope }),
            )),
            VerdictRequestError::InvalidTtl(_) => invalid_parameter("ttl_secs"),
        })
}

fn get_info(version: &str) -> Outcome {
    Outcome::Reply(Reply::ok(json!({
        "vendor": "paddock",
        "product": "paddock clearance hub",
        "version": version,
        "url": "https://github.com/paddock/paddock",
        "interfaces": [SERVICE, TEROK, PADDOCK],
    })))
}

fn method_not_found(method: &str) -> Outcome {
    Outcome::Reply(Reply::error(
        format!("{SERVICE}.MethodNotFound"),
        json!({ "method": method }),
    ))
}

fn interface_not_found(interface: &str) -> Outcome {
    Outcome::Reply(Reply::error(
        format!("{SERVICE}.InterfaceNotFound"),
        json!({ "interface": interface }),
    ))
}

async fn verdict(hub: &Hub, interface: &str, verdict: Verdict) -> Outcome {
    Outcome::Reply(match hub.verdict(verdict).await {
        Ok(ok) => Reply::ok(json!({ "ok": ok })),
        Err(e) => error_reply(interface, e),
    })
}

pub(crate) fn error_reply(interface: &str, error: VerdictError) -> Reply {
    let (name, params) = match error {
        VerdictError::UnknownRequest { request_id } => {
            ("UnknownRequest", json!({ "request_id": request_id }))
        }
        // terok's interface keeps terok's error names; paddock's says how.
        VerdictError::AlreadyEnded { request_id, .. } if interface == TEROK => {
            ("UnknownRequest", json!({ "request_id": request_id }))
        }
        VerdictError::AlreadyEnded { request_id, how } => (
            "RequestEnded",
            json!({ "request_id": request_id, "how": how }),
        ),
        VerdictError::VerdictTupleMismatch {
            expected_container,
            expected_dest,
            got_container,
            got_dest,
        } => (
            "VerdictTupleMismatch",
            json!({
                "expected_container": expected_container,
                "expected_dest": expected_dest,
                "got_container": got_container,
                "got_dest": got_dest,
            }),
        ),
        VerdictError::InvalidAction { action } => ("InvalidAction", json!({ "action": action })),
        VerdictError::ApplyFailed { action, stderr } => (
            if interface == TEROK {
                "ShieldCliFailed"
            } else {
                "ApplyFailed"
            },
            json!({ "action": action, "stderr": stderr }),
        ),
    };
    Reply::error(format!("{interface}.{name}"), params)
}

fn pending(hub: &Hub) -> Outcome {
    let requests: Vec<PendingView> = hub.pending().iter().map(PendingView::from).collect();
    Outcome::Reply(Reply::ok(json!({ "requests": requests })))
}

#[cfg(test)]
mod tests {
    use paddock_iam::Capabilities;

    use super::*;
    use crate::hub::HubConfig;

    fn call(method: &str, parameters: serde_json::Value) -> Call {
        serde_json::from_value(json!({ "method": method, "parameters": parameters })).unwrap()
    }

    fn error_of(outcome: Outcome) -> Option<String> {
        match outcome {
            Outcome::Reply(reply) => reply.error,
            Outcome::Subscribe => None,
        }
    }

    /// Generated from the registry: every varlink method that needs a
    /// capability refuses an identity one capability short, and lets the
    /// full one past the check (what happens next is the method's own).
    #[tokio::test]
    async fn every_registered_method_refuses_an_identity_without_its_capability() {
        let hub = Hub::new(HubConfig {
            queue_capacity: 4,
            ..HubConfig::default()
        });
        let denied = Some("org.paddock.Clearance1.PermissionDenied".to_owned());
        let mut checked = 0;
        for op in registry::of(Surface::Varlink) {
            let request = call(op.name, json!({}));
            let Access::Requires(capability) = op.access else {
                let nobody = Identity::local_user(1000, Capabilities::parse([]).unwrap());
                let outcome = dispatch(&hub, "v", &request, &nobody).await;
                assert_ne!(error_of(outcome), denied, "{} needs nothing", op.name);
                continue;
            };
            let short = Identity::local_user(1000, Capabilities::all().without(capability));
            assert_eq!(
                error_of(dispatch(&hub, "v", &request, &short).await),
                denied,
                "{} without {capability}",
                op.name
            );
            let full = Identity::local_user(1000, Capabilities::all());
            assert_ne!(
                error_of(dispatch(&hub, "v", &request, &full).await),
                denied,
                "{} with every capability",
                op.name
            );
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} methods need a capability");
    }

    /// A late verdict: paddock's interface says how the request ended;
    /// terok's keeps terok's error names.
    #[test]
    fn a_request_that_ended_is_named_per_interface() {
        let ended = || VerdictError::AlreadyEnded {
            request_id: "r1".into(),
            how: "allowed by person via rest".into(),
        };
        let terok = error_reply(TEROK, ended());
        assert_eq!(
            terok.error.as_deref(),
            Some("org.terok.Clearance1.UnknownRequest")
        );
        let paddock = error_reply(PADDOCK, ended());
        assert_eq!(
            paddock.error.as_deref(),
            Some("org.paddock.Clearance1.RequestEnded")
        );
        assert_eq!(
            paddock.parameters,
            Some(json!({"request_id": "r1", "how": "allowed by person via rest"}))
        );
    }

    /// The uid's identity goes through the registry: a peer whose grants
    /// lack a method's capability is refused, typed, before anything runs.
    #[tokio::test]
    async fn a_peer_without_the_capability_is_refused_per_method() {
        let hub = Hub::new(HubConfig {
            queue_capacity: 4,
            ..HubConfig::default()
        });
        let viewer = Identity::local_user(1000, Capabilities::parse(["viewer"]).unwrap());
        let verdict = call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "b", "request_id": "r", "dest": "d", "action": "allow"}),
        );
        assert_eq!(
            error_of(dispatch(&hub, "v", &verdict, &viewer).await).as_deref(),
            Some("org.paddock.Clearance1.PermissionDenied")
        );
        let pending = call("org.paddock.Clearance1.Pending", json!({}));
        assert_eq!(error_of(dispatch(&hub, "v", &pending, &viewer).await), None);
        let owner = Identity::local_user(1000, Capabilities::all());
        assert_eq!(
            error_of(dispatch(&hub, "v", &verdict, &owner).await).as_deref(),
            Some("org.terok.Clearance1.UnknownRequest"),
            "allowed through to the hub, which knows no such request"
        );
    }
}
