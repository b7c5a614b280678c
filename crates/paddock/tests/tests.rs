//! The integration tests: the real `paddock` binary against the real
//! Docker engine, git, SQLite and clients we did not write. One test binary
//! (as ripgrep's `tests/tests.rs`): it links once, and what the modules
//! share — the test images, the Python venv's clients — is built once.

mod common;

mod activation;
mod activation_device;
mod agent_image;
mod api_tls;
mod audit_export;
mod backup;
mod boxes_cli;
mod boxes_files;
mod boxes_isolation;
mod boxes_lifecycle;
mod boxes_pool;
mod boxes_ports;
mod boxes_pull;
mod boxes_rest;
mod chaos;
mod children;
mod clearance_clients;
mod clearance_terok;
mod console_browser;
mod console_feed;
mod console_pages;
mod console_terminal;
mod doctor;
mod egress;
mod egress_ahead;
mod egress_controls;
mod egress_escapes;
mod egress_host_fence;
mod engine_restart;
mod gate_faults;
mod gate_policy;
mod gate_spare;
mod git_in_box;
mod git_upstream;
mod health;
mod hooks;
mod iam;
mod iam_browser;
mod iam_remote;
mod iam_signin;
mod iam_sockets;
mod iam_tokens;
mod mcp;
mod metrics;
mod notify_desktop;
mod policy;
mod reload;
mod restore;
mod secrets;
mod serve;
mod spoke_boxes;
mod spoke_cut;
mod spoke_git;
mod spoke_terminal;
mod spokes;
mod store_postgres;
mod systemd;
mod traces;
mod versions;
mod webhooks;
mod worldview;
