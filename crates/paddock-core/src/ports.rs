//! Published ports: a service listening inside a box, reached through
//! paddock's own listener (`/ports/{box}/{port}/…`). paddock dials the box
//! on its network — the box still initiates nothing, and its firewall
//! answers only what was asked of it. A port is published until it is
//! unpublished or its box is destroyed.

use std::net::SocketAddr;

use crate::model::now_ms;
use crate::{BoxService, CoreError, Result, validate};

fn port_number(port: u16) -> Result<u16> {
    if port == 0 {
        return Err(CoreError::Invalid("port must be 1 to 65535".into()));
    }
    Ok(port)
}

impl BoxService {
    /// Publishes `port` of the box; publishing it again is not an error.
    pub fn publish_port(&self, id: &str, port: u16) -> Result<Vec<u16>> {
        let port = port_number(port)?;
        self.user_box(id)?;
        self.store.publish_port(id, port, now_ms())?;
        tracing::info!(box_id = %id, port, "port published");
        Ok(self.store.published_ports(id)?)
    }

    pub fn unpublish_port(&self, id: &str, port: u16) -> Result<Vec<u16>> {
        self.user_box(id)?;
        if !self.store.unpublish_port(id, port)? {
            return Err(CoreError::NotFound(format!("{id}:{port} (not published)")));
        }
        Ok(self.store.published_ports(id)?)
    }

    pub fn published_ports(&self, id: &str) -> Result<Vec<u16>> {
        self.user_box(id)?;
        Ok(self.store.published_ports(id)?)
    }

    /// Where to dial a published port: the running box's address on its
    /// own network. An unpublished port is not found, whatever listens.
    pub async fn port_target(&self, id: &str, port: u16) -> Result<SocketAddr> {
        validate::box_id(id).map_err(|_| CoreError::NotFound(id.to_owned()))?;
        if !self.store.port_published(id, port)? {
            return Err(CoreError::NotFound(format!("{id}:{port} (not published)")));
        }
        let container = self.container_of(id, true)?;
        let network = self
            .store
            .get_box(id)?
            .and_then(|r| r.network_id)
            .ok_or_else(|| CoreError::Conflict(format!("box {id:?} has no network")))?;
        let address = self
            .engine
            .container_address(&container, &network)
            .await?
            .ok_or_else(|| CoreError::Conflict(format!("box {id:?} has no address yet")))?;
        self.note_use(id);
        Ok(SocketAddr::from((address, port)))
    }
}
