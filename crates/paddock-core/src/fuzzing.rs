//! Entry points for fuzzing what a configured hook can answer (its stdout
//! is untrusted: a hook may be anyone's script). See
//! `paddock_egress::fuzzing` for how they are driven.

/// A hook's answer, checked as `box.create` checks it.
pub fn hook_answer(data: &[u8]) {
    let hook = crate::config::HookConfig {
        name: "fuzz".into(),
        command: vec!["fuzz".into()],
        events: Vec::new(),
        timeout_secs: 1,
    };
    let _ = crate::hooks::parse_answer(&hook, data);
}
