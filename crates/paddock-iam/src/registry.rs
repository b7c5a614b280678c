//! The operation registry: every REST route, page, MCP tool, WebSocket
//! message kind and varlink method, with the capability it needs and where
//! its resource comes from. It is the only place that says so. Each surface
//! binds its handlers to their operations when it is built and calls
//! [`check_served`]: a handler with no operation, or an operation with no
//! handler, stops paddock from starting rather than being found by a
//! caller.

use crate::capability::Capability;
use crate::identity::Surface;

/// What it takes to perform an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the address (`/healthz`).
    Public,
    /// The secret in the URL is the credential (activation links).
    CapabilityUrl,
    /// Any authenticated caller; what follows authorises on its own (the
    /// MCP transport, whose tools are registered one by one).
    Authenticated,
    Requires(Capability),
}

/// Where the operation's resource is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// paddock itself.
    Global,
    /// A listing: allowed as such, then filtered to the caller's projects.
    Listing,
    /// `{id}` in the path is a box.
    BoxInPath,
    /// A box named in the body or arguments.
    BoxInBody,
    /// A project named in the body or arguments.
    ProjectInBody,
    /// `{project}` in the path (checked by the handler on the decoded
    /// value it uses, never on the raw path).
    ProjectInPath,
    /// An egress rule's box or project, in the body.
    RuleInBody,
    /// `{id}` in the path is an egress rule.
    RuleInPath,
}

/// Why a surface cannot start: what it serves and what the registry names
/// disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("the {surface} surface serves {name:?}, which the operation registry does not name")]
    Unregistered { surface: &'static str, name: String },
    #[error(
        "the operation registry names {name:?} on the {surface} surface, but nothing serves it"
    )]
    Unbound {
        surface: &'static str,
        name: &'static str,
    },
    #[error("the {surface} surface binds {name:?} twice")]
    BoundTwice { surface: &'static str, name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub surface: Surface,
    /// `METHOD /route/template` for REST and pages, the tool name for MCP,
    /// the message `type` for WebSocket, the qualified method for varlink.
    pub name: &'static str,
    pub access: Access,
    pub target: Target,
}

const fn op(surface: Surface, name: &'static str, access: Access, target: Target) -> Operation {
    Operation {
        surface,
        name,
        access,
        target,
    }
}

use Access::{Authenticated, CapabilityUrl, Public, Requires};
use Capability::*;
use Surface::{Mcp, Page, Rest, Varlink, WebSocket};
use Target::*;

pub static OPERATIONS: &[Operation] = &[
    op(Rest, "GET /healthz", Public, Global),
    op(Rest, "GET /api/v1/whoami", Authenticated, Global),
    op(Rest, "GET /api/v1/boxes", Requires(BoxRead), Listing),
    op(
        Rest,
        "POST /api/v1/boxes",
        Requires(BoxCreate),
        ProjectInBody,
    ),
    op(Rest, "GET /api/v1/boxes/{id}", Requires(BoxRead), BoxInPath),
    op(
        Rest,
        "DELETE /api/v1/boxes/{id}",
        Requires(BoxDestroy),
        BoxInPath,
    ),
    op(
        Rest,
        "POST /api/v1/boxes/{id}/exec",
        Requires(BoxExec),
        BoxInPath,
    ),
    // Files are as powerful as exec: whoever writes the box's files can
    // make it run anything.
    op(
        Rest,
        "GET /api/v1/boxes/{id}/files",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "PUT /api/v1/boxes/{id}/files",
        Requires(BoxExec),
        BoxInPath,
    ),
    // Published ports: opening and closing them is control over the box;
    // reaching what listens there is as much as exec.
    op(
        Rest,
        "GET /api/v1/boxes/{id}/ports",
        Requires(BoxRead),
        BoxInPath,
    ),
    op(
        Rest,
        "POST /api/v1/boxes/{id}/ports",
        Requires(BoxControl),
        BoxInPath,
    ),
    op(
        Rest,
        "DELETE /api/v1/boxes/{id}/ports/{port}",
        Requires(BoxControl),
        BoxInPath,
    ),
    op(Rest, "GET /ports/{id}/{port}", Requires(BoxExec), BoxInPath),
    op(
        Rest,
        "GET /ports/{id}/{port}/",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "GET /ports/{id}/{port}/{*rest}",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "POST /ports/{id}/{port}/",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "POST /ports/{id}/{port}/{*rest}",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "PUT /ports/{id}/{port}/",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "PUT /ports/{id}/{port}/{*rest}",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "PATCH /ports/{id}/{port}/",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "PATCH /ports/{id}/{port}/{*rest}",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "DELETE /ports/{id}/{port}/",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "DELETE /ports/{id}/{port}/{*rest}",
        Requires(BoxExec),
        BoxInPath,
    ),
    // A terminal over a WebSocket: exec with a person at the keys.
    op(
        Rest,
        "GET /api/v1/boxes/{id}/shell",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Rest,
        "POST /api/v1/boxes/{id}/stop",
        Requires(BoxControl),
        BoxInPath,
    ),
    op(
        Rest,
        "POST /api/v1/boxes/{id}/start",
        Requires(BoxControl),
        BoxInPath,
    ),
    op(
        Rest,
        "GET /api/v1/boxes/{id}/logs",
        Requires(BoxLogs),
        BoxInPath,
    ),
    op(
        Rest,
        "PUT /api/v1/boxes/{id}/shield",
        Requires(EgressShield),
        BoxInPath,
    ),
    op(
        Rest,
        "GET /api/v1/egress/rules",
        Requires(EgressRead),
        Listing,
    ),
    op(
        Rest,
        "POST /api/v1/egress/rules",
        Requires(EgressRules),
        RuleInBody,
    ),
    op(
        Rest,
        "DELETE /api/v1/egress/rules/{id}",
        Requires(EgressRules),
        RuleInPath,
    ),
    op(
        Rest,
        "GET /api/v1/egress/http-rules",
        Requires(EgressRead),
        Listing,
    ),
    op(
        Rest,
        "POST /api/v1/egress/http-rules",
        Requires(EgressRules),
        RuleInBody,
    ),
    op(
        Rest,
        "DELETE /api/v1/egress/http-rules/{id}",
        Requires(EgressRules),
        RuleInPath,
    ),
    op(Rest, "GET /api/v1/secrets", Requires(EgressRead), Listing),
    op(Rest, "GET /metrics", Requires(MetricsRead), Global),
    op(Rest, "GET /api/v1/worldview", Requires(BoxRead), Listing),
    op(
        Rest,
        "POST /api/v1/projects/{project}/git/push-upstream",
        Requires(GitUpstream),
        ProjectInPath,
    ),
    op(
        Rest,
        "GET /api/v1/projects/{project}/policy",
        Requires(EgressRead),
        ProjectInPath,
    ),
    op(
        Rest,
        "PUT /api/v1/projects/{project}/policy",
        Requires(EgressRules),
        ProjectInPath,
    ),
    op(
        Rest,
        "GET /api/v1/policy/presets",
        Requires(EgressRead),
        Global,
    ),
    op(
        Rest,
        "PUT /api/v1/projects/{project}/secrets/{name}",
        Requires(SecretWrite),
        ProjectInPath,
    ),
    op(
        Rest,
        "DELETE /api/v1/projects/{project}/secrets/{name}",
        Requires(SecretWrite),
        ProjectInPath,
    ),
    op(
        Rest,
        "GET /api/v1/egress/log",
        Requires(EgressRead),
        Listing,
    ),
    op(
        Rest,
        "GET /api/v1/egress/pending",
        Requires(EgressRead),
        Listing,
    ),
    op(
        Rest,
        "POST /api/v1/egress/verdicts",
        Requires(EgressVerdict),
        BoxInBody,
    ),
    op(
        Rest,
        "GET /api/v1/events",
        Requires(EventsSubscribe),
        Listing,
    ),
    op(Rest, "GET /api/v1/tokens", Requires(AdminTokens), Global),
    op(Rest, "POST /api/v1/tokens", Requires(AdminTokens), Global),
    op(
        Rest,
        "DELETE /api/v1/tokens/{id}",
        Requires(AdminTokens),
        Global,
    ),
    // A link for the console acting exactly as the caller's credential.
    op(Rest, "POST /api/v1/console/links", Authenticated, Global),
    op(Rest, "POST /mcp", Authenticated, Global),
    op(Rest, "GET /mcp", Authenticated, Global),
    op(Rest, "DELETE /mcp", Authenticated, Global),
    op(Page, "GET /auth/login", Public, Global),
    op(Page, "GET /auth/callback", Public, Global),
    // Checks its session and CSRF token itself: signing out needs no capability.
    op(Page, "POST /auth/logout", Public, Global),
    op(Page, "GET /admin", Requires(AdminTokens), Global),
    op(
        Page,
        "POST /admin/tokens/{id}/revoke",
        Requires(AdminTokens),
        Global,
    ),
    // The token in the path names the box and is its own credential.
    op(Page, "GET /activate/{token}", CapabilityUrl, Global),
    op(Page, "POST /activate/{token}", CapabilityUrl, Global),
    // The handler decides: a signed-in person with egress:verdict on the
    // link's box, never the link alone.
    op(
        Page,
        "POST /activate/{token}/verdict",
        CapabilityUrl,
        Global,
    ),
    // The console. Its assets are the same for everyone; its sign-in page
    // and the link's exchange authenticate with the link itself.
    op(Page, "GET /console/assets/{file}", Public, Global),
    op(Page, "GET /console/signin", Public, Global),
    op(Page, "POST /console/signin", Public, Global),
    op(Page, "GET /console", Requires(EventsSubscribe), Listing),
    op(
        Page,
        "GET /console/events",
        Requires(EventsSubscribe),
        Listing,
    ),
    op(Page, "GET /console/boxes", Requires(BoxRead), Listing),
    op(
        Page,
        "GET /console/boxes/{id}/logs",
        Requires(BoxLogs),
        BoxInPath,
    ),
    // A terminal in the page: exec with a person at the keys, as the
    // REST shell.
    op(
        Page,
        "GET /console/boxes/{id}/terminal",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Page,
        "GET /console/boxes/{id}/terminal/socket",
        Requires(BoxExec),
        BoxInPath,
    ),
    op(
        Page,
        "POST /console/boxes/{id}/shield",
        Requires(EgressShield),
        BoxInPath,
    ),
    op(
        Page,
        "POST /console/boxes/{id}/destroy",
        Requires(BoxDestroy),
        BoxInPath,
    ),
    op(
        Page,
        "POST /console/projects/{project}/push-upstream",
        Requires(GitUpstream),
        ProjectInPath,
    ),
    op(
        Page,
        "POST /console/boxes/{id}/activation",
        Requires(BoxCreate),
        BoxInPath,
    ),
    op(Page, "GET /console/rules", Requires(EgressRead), Listing),
    op(
        Page,
        "POST /console/rules",
        Requires(EgressRules),
        RuleInBody,
    ),
    op(
        Page,
        "POST /console/rules/{id}/delete",
        Requires(EgressRules),
        RuleInPath,
    ),
    op(Page, "GET /console/audit", Requires(EgressRead), Listing),
    op(
        Page,
        "GET /console/audit/export",
        Requires(EgressRead),
        Listing,
    ),
    op(Page, "GET /console/tokens", Requires(AdminTokens), Global),
    op(
        Page,
        "POST /console/tokens/{id}/revoke",
        Requires(AdminTokens),
        Global,
    ),
    op(Mcp, "create_box", Requires(BoxCreate), ProjectInBody),
    op(Mcp, "get_box", Requires(BoxRead), BoxInBody),
    op(Mcp, "list_boxes", Requires(BoxRead), Listing),
    op(Mcp, "destroy_box", Requires(BoxDestroy), BoxInBody),
    op(Mcp, "stop_box", Requires(BoxControl), BoxInBody),
    op(Mcp, "read_file", Requires(BoxExec), BoxInBody),
    op(Mcp, "write_file", Requires(BoxExec), BoxInBody),
    op(Mcp, "start_box", Requires(BoxControl), BoxInBody),
    op(Mcp, "box_logs", Requires(BoxLogs), BoxInBody),
    op(Mcp, "exec_box", Requires(BoxExec), BoxInBody),
    op(Mcp, "request_egress", Requires(EgressRequest), BoxInBody),
    op(Mcp, "egress_status", Requires(EgressRead), BoxInBody),
    op(WebSocket, "auth", Authenticated, Global),
    // The console's first frame: its session's CSRF token.
    op(WebSocket, "hello", Authenticated, Global),
    op(WebSocket, "verdict", Requires(EgressVerdict), BoxInBody),
    op(
        Varlink,
        "org.varlink.service.GetInfo",
        Authenticated,
        Global,
    ),
    op(
        Varlink,
        "org.varlink.service.GetInterfaceDescription",
        Authenticated,
        Global,
    ),
    op(
        Varlink,
        "org.terok.Clearance1.Subscribe",
        Requires(EventsSubscribe),
        Listing,
    ),
    op(
        Varlink,
        "org.terok.Clearance1.Verdict",
        Requires(EgressVerdict),
        BoxInBody,
    ),
    op(
        Varlink,
        "org.paddock.Clearance1.Pending",
        Requires(EgressRead),
        Listing,
    ),
    op(
        Varlink,
        "org.paddock.Clearance1.Verdict",
        Requires(EgressVerdict),
        BoxInBody,
    ),
];

/// The registered operation, if any. Linear: the table is small and a
/// scan of ~40 short strings is cheaper than hashing the name.
pub fn find(surface: Surface, name: &str) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|o| o.surface == surface && o.name == name)
}

/// Every registered operation of one surface.
pub fn of(surface: Surface) -> impl Iterator<Item = &'static Operation> {
    OPERATIONS.iter().filter(move |o| o.surface == surface)
}

/// The operation a handler is bound to: refuses a name the registry does
/// not know.
pub fn bind(surface: Surface, name: &str) -> Result<&'static Operation, RegistryError> {
    find(surface, name).ok_or_else(|| RegistryError::Unregistered {
        surface: surface.as_str(),
        name: name.to_owned(),
    })
}

/// Checks what a server binds against the registry: every served name is
/// registered and bound once, and every operation of `surfaces` is served.
pub fn check_served<'a>(
    surfaces: &[Surface],
    served: impl IntoIterator<Item = (Surface, &'a str)>,
) -> Result<(), RegistryError> {
    let mut bound: Vec<&'static Operation> = Vec::new();
    for (surface, name) in served {
        let op = bind(surface, name)?;
        if bound.iter().any(|b| std::ptr::eq(*b, op)) {
            return Err(RegistryError::BoundTwice {
                surface: surface.as_str(),
                name: name.to_owned(),
            });
        }
        bound.push(op);
    }
    for surface in surfaces {
        if let Some(op) = of(*surface).find(|op| !bound.iter().any(|b| std::ptr::eq(*b, *op))) {
            return Err(RegistryError::Unbound {
                surface: surface.as_str(),
                name: op.name,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(surface: Surface) -> Vec<(Surface, &'static str)> {
        of(surface).map(|op| (surface, op.name)).collect()
    }

    #[test]
    fn a_surface_serving_exactly_its_operations_passes() {
        for surface in [Rest, Mcp, WebSocket, Varlink, Page] {
            check_served(&[surface], names(surface)).unwrap();
        }
    }

    #[test]
    fn an_unregistered_handler_stops_the_surface() {
        let mut served = names(Mcp);
        served.push((Mcp, "format_disk"));
        assert_eq!(
            check_served(&[Mcp], served),
            Err(RegistryError::Unregistered {
                surface: "mcp",
                name: "format_disk".into()
            })
        );
        // A name registered on another surface is not this surface's.
        let err = check_served(&[Mcp], [(Mcp, "GET /healthz")]).unwrap_err();
        assert!(matches!(err, RegistryError::Unregistered { .. }), "{err}");
    }

    #[test]
    fn an_unbound_operation_stops_the_surface() {
        let served: Vec<_> = names(Varlink)
            .into_iter()
            .filter(|(_, n)| *n != "org.terok.Clearance1.Verdict")
            .collect();
        assert_eq!(
            check_served(&[Varlink], served),
            Err(RegistryError::Unbound {
                surface: "varlink",
                name: "org.terok.Clearance1.Verdict"
            })
        );
    }

    #[test]
    fn a_handler_bound_twice_stops_the_surface() {
        let mut served = names(WebSocket);
        served.push((WebSocket, "verdict"));
        let err = check_served(&[WebSocket], served).unwrap_err();
        assert!(matches!(err, RegistryError::BoundTwice { .. }), "{err}");
        assert!(err.to_string().contains("\"verdict\""), "{err}");
    }

    #[test]
    fn names_are_unique_per_surface() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            for b in &OPERATIONS[i + 1..] {
                assert!(
                    a.surface != b.surface || a.name != b.name,
                    "{} registered twice",
                    a.name
                );
            }
        }
    }

    #[test]
    fn every_capability_guards_something() {
        for c in Capability::ALL {
            assert!(
                OPERATIONS.iter().any(|o| o.access == Access::Requires(c)),
                "{c} guards no operation"
            );
        }
    }
}
