//! A thin MCP client (rmcp over streamable HTTP) returning structured results.

use anyhow::{Context, bail};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::Value;

pub struct Client(RunningService<rmcp::RoleClient, ()>);

impl Client {
    pub async fn connect(url: &str, token: &str) -> anyhow::Result<Self> {
        let transport = StreamableHttpClientTransport::from_config(
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                url.to_owned(),
            )
            .auth_header(token),
        );
        Ok(Self(().serve(transport).await.context("MCP handshake")?))
    }

    pub async fn call(&self, tool: &'static str, args: Value) -> anyhow::Result<Value> {
        let Value::Object(args) = args else {
            bail!("arguments must be an object");
        };
        let result = self
            .0
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
            .await
            .with_context(|| format!("calling {tool}"))?;
        if result.is_error == Some(true) {
            bail!("{tool} failed: {:?}", result.content);
        }
        Ok(result.structured_content.unwrap_or(Value::Null))
    }

    pub async fn close(self) {
        let _ = self.0.cancel().await;
    }
}
