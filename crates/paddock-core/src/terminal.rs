//! A person's shell in a box (`paddock box shell`): a command on a
//! pseudo-terminal, its size and signals, and how it ended. The front-end
//! holds the exec's id for the length of one session and never shows it.

use paddock_docker::{InteractiveExec, TerminalSignal};

use crate::{BoxService, CoreError, Result, validate};

/// A login shell: bash where the image has it, else sh.
const DEFAULT_SHELL: &str =
    "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi";

/// The size a terminal may claim, in characters.
const MAX_TERMINAL_SIDE: u16 = 1000;

/// A terminal type as `TERM` names it: letters, digits, '-', '.', '+'.
fn term_name(term: &str) -> Result<&str> {
    let ok = !term.is_empty()
        && term.len() <= 64
        && term
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'+' | b'_'));
    if ok {
        Ok(term)
    } else {
        Err(CoreError::Invalid(format!(
            "{term:?} is not a terminal type"
        )))
    }
}

/// Columns and rows, each between 1 and 1000.
pub fn terminal_size(cols: u16, rows: u16) -> Result<(u16, u16)> {
    let side = 1..=MAX_TERMINAL_SIDE;
    if side.contains(&cols) && side.contains(&rows) {
        Ok((cols, rows))
    } else {
        Err(CoreError::Invalid(format!(
            "a terminal of {cols}x{rows}: each side must be 1 to {MAX_TERMINAL_SIDE}"
        )))
    }
}

impl BoxService {
    /// Starts `command` (a shell command line; default a login shell) on
    /// a pseudo-terminal in the running box.
    pub async fn open_terminal(
        &self,
        id: &str,
        command: Option<&str>,
        term: &str,
        size: (u16, u16),
    ) -> Result<InteractiveExec> {
        let size = terminal_size(size.0, size.1)?;
        let term = term_name(term)?;
        if let Some(c) = command {
            validate::command(c)?;
        }
        if let Some(remote) = self.remote_box(id)? {
            return self.remote_terminal(&remote, command, term, size).await;
        }
        let line = command.unwrap_or(DEFAULT_SHELL);
        let container = self.container_of(id, true)?;
        let argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), line.to_owned()];
        let env = vec![format!("TERM={term}")];
        let exec = self
            .engine
            .exec_terminal(&container, argv, env, size)
            .await?;
        self.note_use(id);
        tracing::info!(box_id = %id, "terminal opened");
        Ok(exec)
    }

    pub async fn resize_terminal(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        let size = terminal_size(cols, rows)?;
        if let Some(routed) = self.remote_resize(exec_id, cols, rows).await {
            return routed;
        }
        Ok(self.engine.resize_terminal(exec_id, size).await?)
    }

    pub async fn signal_terminal(&self, exec_id: &str, signal: TerminalSignal) -> Result<()> {
        if let Some(routed) = self.remote_signal(exec_id, signal).await {
            return routed;
        }
        Ok(self.engine.signal_exec(exec_id, signal).await?)
    }

    /// None while the terminal's command runs.
    pub async fn terminal_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        if let Some(routed) = self.remote_exit_code(exec_id).await {
            return routed;
        }
        Ok(self.engine.exec_exit_code(exec_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_terms() {
        assert!(terminal_size(80, 24).is_ok());
        assert!(terminal_size(0, 24).is_err());
        assert!(terminal_size(80, 1001).is_err());
        assert!(term_name("xterm-256color").is_ok());
        assert!(term_name("x; rm -rf /").is_err());
        assert!(term_name("").is_err());
    }
}
