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

mod table;

pub use table::OPERATIONS;

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
    use Surface::{Mcp, Page, Rest, Varlink, WebSocket};

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
