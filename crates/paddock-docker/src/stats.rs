//! What a running container uses, read once (no stream, no waiting for a
//! second sample).

use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;
use serde::Serialize;

use crate::{Engine, EngineError, Result};

/// A container's resource use at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// CPU time used since the container started, in nanoseconds: the
    /// difference of two readings over their interval is the CPU share.
    pub cpu_ns: u64,
    /// Memory in use, without the page cache the kernel can drop (as
    /// `docker stats` counts it).
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub pids: u64,
}

impl Engine {
    /// None when the container does not run.
    pub async fn usage(&self, container: &str) -> Result<Option<Usage>> {
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let docker = self.client().await?;
        let mut stream = std::pin::pin!(docker.stats(container, Some(options)));
        let stats = match stream.next().await {
            Some(Ok(stats)) => stats,
            Some(Err(e)) => {
                return match EngineError::from(e) {
                    EngineError::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
            None => return Ok(None),
        };
        let pids = stats.pids_stats.and_then(|p| p.current).unwrap_or(0);
        let memory = stats.memory_stats.unwrap_or_default();
        let Some(usage) = memory.usage else {
            // A stopped container reports no memory at all.
            return Ok(None);
        };
        let cache = memory.stats.as_ref().and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
                .copied()
        });
        Ok(Some(Usage {
            cpu_ns: stats
                .cpu_stats
                .and_then(|c| c.cpu_usage)
                .and_then(|u| u.total_usage)
                .unwrap_or(0),
            memory_bytes: usage.saturating_sub(cache.unwrap_or(0)),
            memory_limit_bytes: memory.limit.unwrap_or(0),
            pids,
        }))
    }
}
