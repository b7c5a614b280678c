//! SIGHUP: the configuration read again and what can change live taken —
//! hooks, profiles, registry logins and warm pools, from the next box on.
//! Boxes, held requests and their connections are untouched. Rules,
//! shields, tokens and secrets live in the store and change the moment
//! they are changed, with no reload. What changed but needs a restart is
//! named in the log; a configuration that does not load changes nothing.

use paddock_core::BoxService;

use crate::ServeArgs;

pub fn reload(args: &ServeArgs, boxes: &BoxService) {
    crate::systemd::notify("RELOADING=1\nSTATUS=reloading the configuration");
    match crate::config::load(args) {
        Err(e) => tracing::warn!(
            error = format!("{e:#}"),
            "reload refused; the configuration in force stays"
        ),
        Ok(resolved) => {
            let mut core = resolved.core;
            let current = boxes.config();
            // What serve settled at start, not what the file says: the
            // address actually bound, the instance the store keeps.
            if !resolved.explicit_public_url {
                core.public_url = current.public_url.clone();
            }
            if core.instance.is_empty() {
                core.instance = current.instance.clone();
            }
            match boxes.reload(core) {
                Ok(needs_restart) if needs_restart.is_empty() => tracing::info!(
                    "configuration reloaded: hooks, profiles, registry logins and pools apply from the next box"
                ),
                Ok(needs_restart) => tracing::warn!(
                    needs_restart = needs_restart.join(", "),
                    "configuration reloaded: hooks, profiles, registry logins and pools apply from the next box; the sections named take effect at a restart"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "reload refused; the configuration in force stays"
                ),
            }
        }
    }
    crate::systemd::notify("READY=1\nSTATUS=serving");
}
