//! The table itself: one line per operation, by surface. Adding a route,
//! tool, message kind or method starts here.

use super::Access::{Authenticated, CapabilityUrl, Public, Requires};
use super::Target::*;
use super::{Operation, op};
use crate::capability::Capability::*;
use crate::identity::Surface::{Mcp, Page, Rest, Varlink, WebSocket};

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
    op(Rest, "GET /api/v1/spokes", Requires(AdminSpokes), Global),
    op(
        Rest,
        "POST /api/v1/spokes/tokens",
        Requires(AdminSpokes),
        Global,
    ),
    op(
        Rest,
        "DELETE /api/v1/spokes/{name}",
        Requires(AdminSpokes),
        Global,
    ),
    // The enrolment token in the body is the credential: a spoke has no
    // API token, and gets no access to the API by enrolling.
    op(Rest, "POST /api/v1/spokes/enroll", Public, Global),
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
    op(Page, "GET /console/spokes", Requires(AdminSpokes), Global),
    op(
        Page,
        "POST /console/spokes/{name}/revoke",
        Requires(AdminSpokes),
        Global,
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
