//! The interface descriptions served by `GetInterfaceDescription`. Clients
//! such as Python's `varlink` build their proxies from these texts, so they
//! must parse as varlink IDL and match what the dispatcher does.

pub const SERVICE: &str = "org.varlink.service";
pub const TEROK: &str = "org.terok.Clearance1";
pub const PADDOCK: &str = "org.paddock.Clearance1";

pub const SERVICE_IDL: &str = "\
# The Varlink Service Interface is provided by every varlink service.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

error InterfaceNotFound (interface: string)
error MethodNotFound (method: string)
error MethodNotImplemented (method: string)
error InvalidParameter (parameter: string)
error PermissionDenied ()
error ExpectedMore ()
";

pub const TEROK_IDL: &str = "\
# Egress clearance: held connections are announced, verdicts come back.
interface org.terok.Clearance1

type ClearanceEvent (
  type: string,
  container: string,
  request_id: string,
  dest: string,
  port: int,
  proto: int,
  domain: string,
  action: string,
  ok: bool,
  reason: string,
  dossier: [string]string
)

# An endless stream of events; call with more=true.
method Subscribe() -> (event: ClearanceEvent)

# Allow or deny a held request, citing the triple its event carried.
method Verdict(container: string, request_id: string, dest: string, action: string) -> (ok: bool)

error UnknownRequest (request_id: string)
error VerdictTupleMismatch (expected_container: string, expected_dest: string, got_container: string, got_dest: string)
error InvalidAction (action: string)
error ShieldCliFailed (action: string, stderr: string)
";

pub const PADDOCK_IDL: &str = "\
# paddock's own clearance calls: the pending list, and verdicts with a scope
# and a lifetime. org.terok.Clearance1 stays as terok's clients know it.
interface org.paddock.Clearance1

type PendingRequest (
  container: string,
  request_id: string,
  dest: string,
  port: int,
  proto: int,
  domain: string,
  project: string,
  first_seen: string,
  first_seen_ms: int,
  times_blocked: int,
  deadline_ms: int,
  agent_reason: string
)

# Requests held right now, oldest first.
method Pending() -> (requests: []PendingRequest)

# scope: once (this request), box (default) or project; ttl_secs bounds a
# box or project verdict.
method Verdict(container: string, request_id: string, dest: string, action: string, scope: ?string, ttl_secs: ?int) -> (ok: bool)

error UnknownRequest (request_id: string)
# The request ended before this verdict: decided by someone else, or
# withdrawn (deadline, box gone, shield change); how says which.
error RequestEnded (request_id: string, how: string)
error VerdictTupleMismatch (expected_container: string, expected_dest: string, got_container: string, got_dest: string)
error InvalidAction (action: string)
error InvalidScope (scope: string)
error ApplyFailed (action: string, stderr: string)
# The caller's identity lacks the capability a method needs.
error PermissionDenied (reason: string)
";

pub fn description(interface: &str) -> Option<&'static str> {
    match interface {
        SERVICE => Some(SERVICE_IDL),
        TEROK => Some(TEROK_IDL),
        PADDOCK => Some(PADDOCK_IDL),
        _ => None,
    }
}

/// Every method of every interface served, qualified
/// (`org.terok.Clearance1.Verdict`), read from the interface descriptions
/// themselves: what a client can call is what is checked against the
/// registry when the socket is bound.
pub(crate) fn methods() -> Vec<String> {
    [
        (SERVICE, SERVICE_IDL),
        (TEROK, TEROK_IDL),
        (PADDOCK, PADDOCK_IDL),
    ]
    .into_iter()
    .flat_map(|(interface, idl)| {
        idl.lines()
            .filter_map(|l| l.trim().strip_prefix("method "))
            .filter_map(move |rest| {
                let name = rest.split('(').next()?.trim();
                Some(format!("{interface}.{name}"))
            })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use paddock_iam::{Surface, registry};

    use super::*;

    #[test]
    fn the_interfaces_serve_exactly_the_registered_methods() {
        let methods = methods();
        assert!(methods.len() >= 6, "{methods:?}");
        registry::check_served(
            &[Surface::Varlink],
            methods.iter().map(|m| (Surface::Varlink, m.as_str())),
        )
        .unwrap();
    }
}
