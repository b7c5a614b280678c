//! The operation registry: every REST route, page, MCP tool, WebSocket
//! message kind and varlink method, with the capability it needs and where
//! its resource comes from. It is the only place that says so; a surface
//! looks its operation up here per request and refuses what is missing.

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
    /// An egress rule's box or project, in the body.
    RuleInBody,
    /// `{id}` in the path is an egress rule.
    RuleInPath,
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
    op(Mcp, "create_box", Requires(BoxCreate), ProjectInBody),
    op(Mcp, "get_box", Requires(BoxRead), BoxInBody),
    op(Mcp, "list_boxes", Requires(BoxRead), Listing),
    op(Mcp, "destroy_box", Requires(BoxDestroy), BoxInBody),
    op(Mcp, "box_logs", Requires(BoxLogs), BoxInBody),
    op(Mcp, "exec_box", Requires(BoxExec), BoxInBody),
    op(WebSocket, "auth", Authenticated, Global),
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

#[cfg(test)]
mod tests {
    use super::*;

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
