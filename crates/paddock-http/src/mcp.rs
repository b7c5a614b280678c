//! MCP over streamable HTTP. Tools return structured results; failures are
//! tool errors (`isError`) whose text starts with the same stable code REST
//! uses, e.g. `not_found: no box with id "x"`.

use std::sync::Arc;

use paddock_core::{BoxView, CoreError, CreateBox, CreatedBox, ExecResult};
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use axum::http::request::Parts;
use paddock_iam::{Surface, registry};

use crate::auth::{Caller, Named};
use crate::{AppState, HttpOptions, error::classify};

#[derive(Clone)]
pub(crate) struct BoxTools {
    state: AppState,
    tool_router: ToolRouter<Self>,
}

fn tool_error(e: CoreError) -> String {
    let (status, code) = classify(&e);
    if status.is_server_error() {
        tracing::warn!(code = code.as_str(), error = %e, "MCP tool failed");
    }
    format!("{code}: {e}")
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct BoxIdArgs {
    /// The box's id.
    box_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct LogsArgs {
    box_id: String,
    /// Trailing lines to return (default 100, at most 10000).
    #[serde(default)]
    tail: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ReadFileArgs {
    box_id: String,
    /// Absolute path of a text file in the box.
    path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct WriteFileArgs {
    box_id: String,
    /// Absolute path of the file; its directories are made as needed.
    path: String,
    /// The file's new content (UTF-8 text).
    content: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct FileText {
    box_id: String,
    path: String,
    content: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct FileWritten {
    box_id: String,
    path: String,
    bytes: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ExecArgs {
    box_id: String,
    /// A shell command line, run with /bin/sh -c.
    command: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct BoxList {
    boxes: Vec<BoxView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Destroyed {
    box_id: String,
    destroyed: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Logs {
    box_id: String,
    logs: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct RequestEgressArgs {
    box_id: String,
    /// A host name (api.example.com) or an IP address.
    destination: String,
    /// TCP port (default 443).
    #[serde(default)]
    port: Option<u16>,
    /// Why the box needs it, for the person who decides: shown to them as
    /// "agent says" (one line, at most 500 characters).
    reason: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EgressRequested {
    box_id: String,
    destination: String,
    port: u16,
    /// `allowed` (the rules already let it through), `refused` (nobody
    /// can), or `pending` (a person will decide; connect and wait, or
    /// check egress_status).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    /// When a pending request is withdrawn undecided (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline_ms: Option<i64>,
    detail: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PendingDestination {
    destination: String,
    port: i64,
    request_id: String,
    attempts: u64,
    deadline_ms: i64,
    agent_reason: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct RuleSummary {
    target: String,
    ports: Option<String>,
    /// `box` or `project`.
    scope: &'static str,
    expires_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Refusal {
    at_ms: i64,
    destination: String,
    port: u16,
    decision: String,
    reason: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EgressStatusView {
    box_id: String,
    pending: Vec<PendingDestination>,
    allowed: Vec<RuleSummary>,
    denied: Vec<RuleSummary>,
    recent_refusals: Vec<Refusal>,
}

fn rule_summary(r: &paddock_egress::Rule) -> RuleSummary {
    RuleSummary {
        target: r.target.to_string(),
        ports: r.ports.map(|p| p.to_string()),
        scope: r.scope.kind(),
        expires_at_ms: r.expires_at,
    }
}

/// The box (as the gateway names it) and the gateway, for an egress tool.
fn egress_of(
    state: &AppState,
    box_id: &str,
) -> Result<(Arc<paddock_egress::Egress>, paddock_egress::BoxIdentity), String> {
    let egress = crate::egress_gateway(state).map_err(|e| format!("{}: {}", e.code, e.message))?;
    let view = state.boxes.get_here(box_id).map_err(tool_error)?;
    Ok((
        egress.clone(),
        paddock_egress::BoxIdentity {
            box_id: view.box_id,
            project: view.project,
        },
    ))
}

fn egress_tool_error(e: paddock_egress::EgressError) -> String {
    let e = crate::ApiError::from(e);
    format!("{}: {}", e.code, e.message)
}

/// The names of every tool this server offers, checked against the
/// registry when the router is built.
pub fn tool_names() -> Vec<String> {
    BoxTools::tool_router()
        .list_all()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

#[tool_router(router = tool_router)]
impl BoxTools {
    fn new(state: AppState) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    fn boxes(&self) -> &Arc<paddock_core::BoxService> {
        &self.state.boxes
    }

    /// The caller of this HTTP request, performing the tool's registered
    /// operation, authorised on what the tool's arguments name.
    async fn authorise(
        &self,
        parts: &Parts,
        tool: &str,
        named: Named<'_>,
    ) -> Result<Caller, String> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .ok_or("unauthenticated: no credential")?;
        // Every tool was checked against the registry at start-up.
        let op = registry::bind(Surface::Mcp, tool).map_err(|e| format!("forbidden: {e}"))?;
        let caller = caller.acting_as(op);
        caller
            .check(&self.state, named)
            .await
            .map_err(|e| format!("{}: {}", e.code, e.message))?;
        Ok(caller)
    }

    #[tool(
        name = "create_box",
        description = "Create a sandboxed box for a project. If the image needs a login, the result carries activation_url: give that link to the person; they finish the login there. Never ask them for the code."
    )]
    async fn create_box(
        &self,
        Parameters(args): Parameters<CreateBox>,
        Extension(parts): Extension<Parts>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<CreatedBox>, String> {
        self.authorise(&parts, "create_box", Named::Project(&args.project))
            .await?;
        let report = crate::mcp_progress::pull_reporter(&context);
        self.boxes()
            .create_reporting(args, &report)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "get_box",
        description = "Describe one box: project, image, state (ready, pending_activation, stopped, exited with its exit_code, ...) and, while it runs, its CPU time, memory and processes."
    )]
    async fn get_box(
        &self,
        Parameters(args): Parameters<BoxIdArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<BoxView>, String> {
        self.authorise(&parts, "get_box", Named::Box(&args.box_id))
            .await?;
        self.boxes()
            .get_with_usage(&args.box_id)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(name = "list_boxes", description = "List the boxes you may see.")]
    async fn list_boxes(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<BoxList>, String> {
        let caller = self.authorise(&parts, "list_boxes", Named::Nothing).await?;
        let mut boxes = self.boxes().list().map_err(tool_error)?;
        boxes.retain(|b| caller.sees(&b.project));
        Ok(Json(BoxList { boxes }))
    }

    #[tool(
        name = "destroy_box",
        description = "Destroy a box and everything it holds."
    )]
    async fn destroy_box(
        &self,
        Parameters(args): Parameters<BoxIdArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<Destroyed>, String> {
        self.authorise(&parts, "destroy_box", Named::Box(&args.box_id))
            .await?;
        self.boxes()
            .destroy(&args.box_id)
            .await
            .map(|()| {
                Json(Destroyed {
                    box_id: args.box_id,
                    destroyed: true,
                })
            })
            .map_err(tool_error)
    }

    #[tool(
        name = "stop_box",
        description = "Stop a box's processes, keeping its files; start_box brings it back. Stopping a stopped box does nothing."
    )]
    async fn stop_box(
        &self,
        Parameters(args): Parameters<BoxIdArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<BoxView>, String> {
        self.authorise(&parts, "stop_box", Named::Box(&args.box_id))
            .await?;
        self.boxes()
            .stop(&args.box_id)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "start_box",
        description = "Start a stopped or exited box again, with the files it had. Starting a running box does nothing."
    )]
    async fn start_box(
        &self,
        Parameters(args): Parameters<BoxIdArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<BoxView>, String> {
        self.authorise(&parts, "start_box", Named::Box(&args.box_id))
            .await?;
        self.boxes()
            .start(&args.box_id)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "read_file",
        description = "Read a text file in a box (UTF-8, up to the server's text file limit)."
    )]
    async fn read_file(
        &self,
        Parameters(args): Parameters<ReadFileArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<FileText>, String> {
        self.authorise(&parts, "read_file", Named::Box(&args.box_id))
            .await?;
        let content = self
            .boxes()
            .read_text_file(&args.box_id, &args.path)
            .await
            .map_err(tool_error)?;
        Ok(Json(FileText {
            box_id: args.box_id,
            path: args.path,
            content,
        }))
    }

    #[tool(
        name = "write_file",
        description = "Write a text file in a box, replacing it; its directories are made as needed."
    )]
    async fn write_file(
        &self,
        Parameters(args): Parameters<WriteFileArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<FileWritten>, String> {
        self.authorise(&parts, "write_file", Named::Box(&args.box_id))
            .await?;
        let bytes = self
            .boxes()
            .write_text_file(&args.box_id, &args.path, &args.content)
            .await
            .map_err(tool_error)?;
        Ok(Json(FileWritten {
            box_id: args.box_id,
            path: args.path,
            bytes,
        }))
    }

    #[tool(
        name = "box_logs",
        description = "The last lines of a box's console output."
    )]
    async fn box_logs(
        &self,
        Parameters(args): Parameters<LogsArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<Logs>, String> {
        self.authorise(&parts, "box_logs", Named::Box(&args.box_id))
            .await?;
        self.boxes()
            .logs(&args.box_id, args.tail)
            .await
            .map(|logs| {
                Json(Logs {
                    box_id: args.box_id,
                    logs,
                })
            })
            .map_err(tool_error)
    }

    #[tool(
        name = "exec_box",
        description = "Run a shell command in a box; returns stdout, stderr and exit_code."
    )]
    async fn exec_box(
        &self,
        Parameters(args): Parameters<ExecArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<ExecResult>, String> {
        self.authorise(&parts, "exec_box", Named::Box(&args.box_id))
            .await?;
        self.boxes()
            .exec(&args.box_id, &args.command)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "request_egress",
        description = "Ask a person ahead of time to let the box reach a destination, saying why. Only a person decides; the answer says whether the rules already allow or refuse it, or that it now waits for a person (until its deadline). A connection made meanwhile waits on the same decision."
    )]
    async fn request_egress(
        &self,
        Parameters(args): Parameters<RequestEgressArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<EgressRequested>, String> {
        self.authorise(&parts, "request_egress", Named::Box(&args.box_id))
            .await?;
        let (egress, who) = egress_of(&self.state, &args.box_id)?;
        let port = args.port.unwrap_or(443);
        let ahead = egress
            .ask_ahead(&who, &args.destination, port, &args.reason)
            .map_err(egress_tool_error)?;
        Ok(Json(Self::requested(args, port, ahead)))
    }

    #[tool(
        name = "egress_status",
        description = "What the box waits for and what is decided: requests pending a person (with their deadlines), the destinations rules allow or deny, and the latest refusals. Use it to tell the person what you are waiting for."
    )]
    async fn egress_status(
        &self,
        Parameters(args): Parameters<BoxIdArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<EgressStatusView>, String> {
        self.authorise(&parts, "egress_status", Named::Box(&args.box_id))
            .await?;
        let (egress, who) = egress_of(&self.state, &args.box_id)?;
        let status = egress.status_of(&who).map_err(egress_tool_error)?;
        let by_action = |action: paddock_egress::Action| {
            status
                .rules
                .iter()
                .filter(|r| r.action == action)
                .map(rule_summary)
                .collect()
        };
        Ok(Json(EgressStatusView {
            box_id: args.box_id,
            pending: status
                .pending
                .iter()
                .map(|p| PendingDestination {
                    destination: if p.domain.is_empty() {
                        p.dest.clone()
                    } else {
                        p.domain.clone()
                    },
                    port: p.port,
                    request_id: p.request_id.clone(),
                    attempts: p.times_blocked,
                    deadline_ms: p.deadline_ms,
                    agent_reason: p.agent_reason.clone(),
                })
                .collect(),
            allowed: by_action(paddock_egress::Action::Allow),
            denied: by_action(paddock_egress::Action::Deny),
            recent_refusals: status
                .refused
                .iter()
                .map(|r| Refusal {
                    at_ms: r.at_ms,
                    destination: if r.domain.is_empty() {
                        r.dest.clone()
                    } else {
                        r.domain.clone()
                    },
                    port: r.port,
                    decision: r.decision.clone(),
                    reason: r.reason.clone(),
                })
                .collect(),
        }))
    }
}

impl BoxTools {
    fn requested(
        args: RequestEgressArgs,
        port: u16,
        ahead: paddock_egress::Ahead,
    ) -> EgressRequested {
        use paddock_egress::Ahead;
        let (status, request_id, deadline_ms, detail) = match ahead {
            Ahead::Allowed { by } => ("allowed", None, None, format!("already allowed by {by}")),
            Ahead::Refused { reason } => ("refused", None, None, reason),
            Ahead::Held {
                request_id,
                joined,
                deadline_ms,
            } => (
                "pending",
                Some(request_id),
                Some(deadline_ms),
                if joined {
                    "already waiting for a person; your reason was not added".to_owned()
                } else {
                    "waiting for a person to allow or deny it; a connection made now waits on the same decision".to_owned()
                },
            ),
        };
        EgressRequested {
            box_id: args.box_id,
            destination: args.destination,
            port,
            status,
            request_id,
            deadline_ms,
            detail,
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BoxTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new(
                "paddock",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "paddock runs sandboxed boxes for coding agents. Create a box per task, run commands with exec_box, destroy it when done.",
            )
    }
}

pub(crate) fn service(
    state: AppState,
    options: &HttpOptions,
) -> StreamableHttpService<BoxTools, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(options.allowed_hosts.clone())
        .with_cancellation_token(options.shutdown.child_token());
    StreamableHttpService::new(
        move || Ok(BoxTools::new(state.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
