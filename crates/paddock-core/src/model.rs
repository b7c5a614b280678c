//! What front-ends send and receive. Nothing here carries a secret except
//! `CreatedBox::activation_url`, whose token is single-use and is the one
//! thing a chatbot is meant to pass on to its person.

use paddock_store::{BoxRow, BoxState};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBox {
    /// Project the box works on (a-z, 0-9, '-').
    pub project: String,
    /// Docker image; the configured default when absent.
    #[serde(default)]
    pub image: Option<String>,
    /// Id to give the box (a-z, 0-9, '-'); generated when absent.
    #[serde(default)]
    pub box_id: Option<String>,
    /// Free text shown in listings.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoxView {
    pub box_id: String,
    pub project: String,
    pub image: String,
    pub description: String,
    pub state: BoxState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The Docker container's name.
    pub container: String,
}

impl From<&BoxRow> for BoxView {
    fn from(row: &BoxRow) -> Self {
        let created = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(row.created_at_ms) * 1_000_000,
        )
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Self {
            box_id: row.id.clone(),
            project: row.project.clone(),
            image: row.image.clone(),
            description: row.description.clone(),
            state: row.state,
            error: row.error.clone(),
            created_at: created
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            container: crate::labels::object_name(&row.id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedBox {
    #[serde(flatten)]
    pub view: BoxView,
    /// Present when the image needs a login: the page the person opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExecResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

pub(crate) use paddock_store::clock::now_ms;
