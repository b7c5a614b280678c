//! `paddock serve`: open the store, reconcile with Docker, then serve.
//!
//! Start is transactional: everything that can fail to bind is bound before
//! any component starts, and a failure stops whatever was started before
//! the error surfaces.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use paddock_clearance::Hub;
use paddock_clearance::varlink::VarlinkServer;
use paddock_core::BoxService;
use paddock_docker::Engine;
use paddock_egress::host_guard::{HostGuard, host_log_group};
use paddock_egress::host_log::report_host_attempts;
use paddock_egress::nflog::NflogSocket;
use paddock_egress::{Egress, HostFence};
use paddock_store::Store;
use tokio::net::TcpListener;

use crate::ServeArgs;
use crate::components::Components;
use crate::config::{self, Resolved};
use crate::extensions::egress::EmbeddedEgress;
use crate::extensions::gate::EmbeddedGate;
use crate::startup::{egress_ca, host_key, init_logging, reconcile_at_start, spoke_ca};

/// A paddock that is also a spoke: it runs the boxes its hub places on
/// it, linked to the hub with the certificate `paddock spoke enroll`
/// wrote in `dir`.
pub struct SpokeRole {
    pub hub: String,
    pub dir: PathBuf,
    pub max_boxes: u32,
}

/// `passed`: the API listener systemd passed (socket activation), which
/// replaces `listen`; `role`: this paddock is a spoke of a hub.
pub async fn run(
    args: ServeArgs,
    passed: Option<std::net::TcpListener>,
    role: Option<SpokeRole>,
) -> anyhow::Result<()> {
    let config = config::load(&args)?;
    init_logging(&config.log_format);
    let Resolved {
        listen,
        data_dir,
        docker_host,
        shutdown_timeout_secs,
        allowed_hosts,
        tls,
        tls_reload_secs,
        explicit_public_url,
        mut core,
        git,
        egress: egress_config,
        clearance,
        clearance_socket,
        iam: iam_config,
        webhooks,
        audit,
        metrics,
        traces,
        spokes: spokes_config,
        store: store_config,
        ..
    } = config;
    paddock_metrics::set_enabled(metrics.enabled);
    let trace_stop = tokio_util::sync::CancellationToken::new();
    let trace_exporter = paddock_trace::Tracer::install(&traces, trace_stop.clone())
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;

    let _data_dir_lock = crate::data_lock::hold(&data_dir)?;
    // Bind before starting anything, so a taken port leaves nothing running.
    let listener = match passed {
        Some(passed) => {
            tracing::info!(address = ?passed.local_addr().ok(), "serving the API on the socket systemd passed");
            TcpListener::from_std(passed).context("cannot take the socket systemd passed")?
        }
        None => TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?,
    };
    let bound = listener.local_addr()?;
    let ping_every = spokes_config.ping_every()?;
    let spoke_listener = match spokes_config.listener()? {
        Some((addr, names)) => Some((
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for spokes on {addr}"))?,
            names,
        )),
        None => None,
    };
    let api = crate::api_listener::ApiListener::new(listener, tls.as_ref())?;
    let scheme = api.scheme();
    if !explicit_public_url {
        core.public_url = format!("{scheme}://{bound}");
    }

    let store = Arc::new(store_config.open(&data_dir)?);
    // Before anything is named after the instance (the host fence's table
    // above all): at their defaults, two paddocks differ only here.
    register_store_size(&store);
    register_runtime_tasks();
    core.instance = paddock_core::resolve_instance(&store, &core.instance)
        .context("cannot read the instance id from the store")?;
    // Before any child of this process: what a killed paddock of this
    // instance left running goes now, and every child is marked so the
    // next one can do the same.
    let host_key = host_key(&store, &core.instance, &data_dir);
    paddock_children::sweep_leftovers(&host_key);
    paddock_children::global().mark_children_of(&host_key);
    let engine = Arc::new(Engine::new(docker_host));
    let crate::iam::Built { iam, first_admin } = crate::iam::build(&iam_config, store.clone())?;
    let signin = crate::iam::signin(&iam_config, &core.public_url)?;
    let secure_cookies = core.public_url.starts_with("https://");

    // The hub and its socket come before the boxes: a box must never run
    // while nobody can be asked about its connections.
    let terok_discovery = clearance.terok_discovery;
    let hub = Hub::new(clearance);
    let varlink = VarlinkServer::bind(&clearance_socket, hub.clone(), env!("CARGO_PKG_VERSION"))
        .context("cannot open the clearance socket")?;
    // Where terok's own clients look for hubs; the same hub, the same
    // same-uid rule.
    let terok_varlink = if terok_discovery {
        let path = paddock_clearance::varlink::terok_socket_path(&host_key);
        Some(
            VarlinkServer::bind(&path, hub.clone(), env!("CARGO_PKG_VERSION")).with_context(
                || {
                    format!(
                        "cannot open the clearance socket terok's clients discover ({})",
                        path.display()
                    )
                },
            )?,
        )
    } else {
        None
    };

    // The decision log goes to its sinks from the start (after their
    // cursors); a bad sink stops paddock here, before any box runs.
    let exporter = paddock_export::Exporter::start(&audit, store.clone())
        .map_err(|e| anyhow::anyhow!("invalid [audit]: {e}"))?;

    // Webhooks hear of every hold from the start; a bad endpoint stops
    // paddock here, before any box runs.
    let webhook_stop = tokio_util::sync::CancellationToken::new();
    paddock_webhook::Webhooks::start(&webhooks, &hub, &core.public_url, webhook_stop.clone())
        .map_err(|e| anyhow::anyhow!("invalid [[webhooks]]: {e}"))?;
    if !webhooks.is_empty() {
        tracing::info!(
            endpoints = webhooks.len(),
            "webhooks are told of every hold"
        );
    }

    let gate_stop = tokio_util::sync::CancellationToken::new();
    let egress_stop = tokio_util::sync::CancellationToken::new();
    let mut extensions: Vec<Arc<dyn paddock_core::BoxExtension>> = Vec::new();
    let mut host_guard: Option<Arc<HostGuard>> = None;
    // Secrets: sealed under a key kept outside the store; read by the
    // gateway for the hosts they are bound to.
    let vault_key =
        paddock_vault::VaultKey::load(&data_dir).context("cannot load the secrets key")?;
    tracing::info!(source = ?vault_key.source, "secrets key loaded");
    let vault = Arc::new(paddock_vault::Vault::new(store.clone(), vault_key));
    let bundle_path = data_dir.join("tls").join("box-ca-bundle.pem");
    let mut own_proxy = None;
    let egress = if egress_config.enabled {
        let egress = Egress::new(egress_config, store.clone(), hub.clone())
            .context("cannot start the egress gateway")?;
        let tls_dir = data_dir.join("tls");
        let ca = egress_ca(&vault, &store, &tls_dir, &core.instance)?;
        let upstream =
            paddock_egress::intercept::client_config(egress.config().upstream_ca_file.as_deref())
                .context("cannot set up upstream TLS")?;
        let interceptor = paddock_egress::intercept::Interceptor::new(vault.clone(), ca, upstream)
            .with_box_bundle(&bundle_path)
            .context("cannot write the boxes' trust bundle")?;
        egress.intercept_with(Arc::new(interceptor));
        // paddock's own traffic (the gate and projects' upstreams) goes
        // through the gateway too.
        own_proxy = Some(
            paddock_egress::own::OwnProxy::start(egress.clone(), egress_stop.clone())
                .await
                .context("cannot start paddock's own egress listener")?,
        );
        let extra_ports = if git.enabled {
            vec![git.port]
        } else {
            Vec::new()
        };
        let fence = if egress.config().firewall {
            let mut tcp_ports = vec![egress.config().proxy_port];
            tcp_ports.extend(&extra_ports);
            let installed = async {
                // Refusals at the fence are reported, so the group is
                // bound before the table that logs to it exists.
                let (log, group) = NflogSocket::open_on_host(host_log_group(&host_key), 64).await?;
                let guard = Arc::new(HostGuard::new(
                    &host_key,
                    tcp_ports,
                    egress.config().dns_port,
                    group,
                ));
                guard.install().await?;
                Ok::<_, paddock_egress::EgressError>((guard, log))
            };
            match installed.await {
                Ok((guard, log)) => {
                    tokio::spawn(report_host_attempts(
                        egress.clone(),
                        log,
                        egress_stop.clone(),
                    ));
                    host_guard = Some(guard.clone());
                    HostFence::Ready(guard)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot fence box networks on the host; boxes will not be created");
                    HostFence::Failed(e.to_string())
                }
            }
        } else {
            HostFence::Off
        };
        egress.watch_fence(fence.clone());
        extensions.push(EmbeddedEgress::new(
            egress.clone(),
            extra_ports,
            fence,
            egress_stop.clone(),
        ));
        Some(egress)
    } else {
        tracing::warn!("the egress gateway is disabled: boxes are not firewalled");
        None
    };
    let mut upstreams = None;
    let mut embedded_gate = None;
    if git.enabled {
        let base = git
            .base_path
            .clone()
            .unwrap_or_else(|| data_dir.join("git"));
        std::fs::create_dir_all(&base)
            .with_context(|| format!("cannot create the git base path {}", base.display()))?;
        let exe =
            // The program this process runs, whatever became of its path
        // since (see paddock_gate's hooks directory).
        std::path::PathBuf::from("/proc/self/exe");
        let mut gate_config = paddock_gate::GateConfig::new(base, exe);
        gate_config.policy = git.push.clone();
        gate_config.audit_log = Some(data_dir.join("git-audit.jsonl"));
        paddock_gate::metrics::register(data_dir.join("git-audit.jsonl"));
        gate_config.hooks_parent = Some(data_dir.clone());
        let gate = paddock_gate::Gate::new(gate_config)?;
        // A spoke's boxes use the hub's repositories.
        if let Some(role) = &role {
            gate.forward_to(
                paddock_spoke::HubGit::new(&role.hub, &role.dir).context("git through the hub")?,
            );
        }
        upstreams =
            crate::upstream::from_config(&git, own_proxy.clone(), &bundle_path, gate.base())?;
        if let Some(u) = &upstreams {
            u.clone().push_automatically(gate_stop.clone());
        }
        let embedded = EmbeddedGate::new(
            gate,
            store.clone(),
            &git,
            upstreams.clone(),
            gate_stop.clone(),
        );
        embedded_gate = Some(embedded.clone());
        extensions.push(embedded);
    }
    let boxes_store = store.clone();
    let peer_store = store.clone();
    let spoke_store = store.clone();
    let git_enabled = git.enabled;
    // The spoke CA is made on first start and kept in the data dir.
    let spokes = Arc::new(paddock_spoke::Enrolment::new(
        store.clone(),
        spoke_ca(&vault, &store, &data_dir.join(SPOKE_CA_DIR), &core.instance)?,
        Duration::from_secs(spokes_config.cert_life_days.max(1) * 86_400),
        paddock_spoke::SpokeLinks::new(store.clone(), env!("CARGO_PKG_VERSION")),
    ));
    let spoke_listener = match spoke_listener {
        Some((listener, names)) => Some(crate::api_listener::spoke_listener(
            listener, &names, &spokes,
        )?),
        None => None,
    };
    let boxes = BoxService::new(store, engine, core, extensions)?;
    if !spokes_config.boxes_here {
        spokes.links().keep_boxes_off_the_hub();
    }
    spokes.links().set_ping_every(ping_every);
    spokes.links().attach(hub.clone(), &boxes);
    if let Some(gate) = embedded_gate {
        spokes.links().serve_git_with(gate);
    }

    let shutdown = tokio_util::sync::CancellationToken::new();
    let app = paddock_http::router(
        boxes.clone(),
        paddock_http::HttpOptions {
            allowed_hosts,
            shutdown: shutdown.clone(),
            egress: egress.clone(),
            vault: vault.clone(),
            upstream: upstreams
                .clone()
                .map(|u| u as Arc<dyn paddock_http::GitUpstream>),
            hub: hub.clone(),
            clearance_socket: Some(clearance_socket.clone()),
            iam,
            session_recheck: Duration::from_secs(iam_config.session_recheck_secs),
            signin,
            secure_cookies,
            spokes: Some(spokes.clone()),
        },
    );
    // A handler without its operation, or an operation nothing serves, is
    // found here, before any box is touched.
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            if let Some(guard) = &host_guard {
                guard.uninstall().await;
            }
            return Err(e).context("the HTTP surface disagrees with the operation registry");
        }
    };

    let reconciled = if !boxes.leads() {
        tracing::info!(
            "another hub on this database leads: it reconciles and reaps, and this one takes over if it goes"
        );
        false
    } else {
        reconcile_at_start(&boxes).await
    };

    let mut components = Components::new(Duration::from_secs(shutdown_timeout_secs));
    let maintained = boxes.clone();
    components.start("maintenance", move |stop| {
        maintained.maintain(reconciled, stop)
    });

    let watched = boxes.clone();
    components.start("docker-events", move |stop| watched.watch_containers(stop));

    components.start("git-gate", move |stop| async move {
        stop.cancelled().await;
        gate_stop.cancel();
    });

    let closing_hub = hub.clone();
    tracing::info!(socket = %varlink.path().display(), "clearance hub listening");
    components.start("clearance", move |stop| async move {
        varlink.serve(stop).await;
        closing_hub.close();
    });
    if let Some(terok_varlink) = terok_varlink {
        tracing::info!(socket = %terok_varlink.path().display(), "clearance hub listening for terok's clients");
        components.start("clearance-terok", move |stop| async move {
            let dir = terok_varlink.path().parent().map(Path::to_owned);
            terok_varlink.serve(stop).await;
            // The instance's own directory goes with its socket, so
            // terok's clients find no stale hub.
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir(dir);
            }
        });
    }

    // Started before the gateway so it stops after it: the decisions the
    // gateway flushes on its way out are delivered too.
    components.start("audit-export", move |stop| async move {
        stop.cancelled().await;
        exporter.finish(Duration::from_secs(5)).await;
    });
    let retention = crate::retention::Retention {
        audit,
        store: boxes_store.clone(),
        git_audit: git_enabled.then(|| data_dir.join("git-audit.jsonl")),
    };
    components.start("retention", move |stop| retention.run(stop));

    let stopping_egress = egress.clone();
    components.start("egress", move |stop| async move {
        stop.cancelled().await;
        egress_stop.cancel();
        webhook_stop.cancel();
        if let Some(egress) = stopping_egress {
            egress.flush_audit();
        }
        if let Some(guard) = host_guard {
            guard.uninstall().await;
        }
    });

    if let Some(listener) = spoke_listener {
        let links = spokes.links().clone();
        components.start("spokes", move |stop| links.serve(listener, stop));
    }
    // Hubs on one database show one pending queue.
    if peer_store.is_shared() {
        let rules = egress.clone();
        let reread = Box::new(move || {
            if let Some(egress) = &rules
                && let Err(e) = egress
                    .reload_rules()
                    .and_then(|()| egress.reload_http_rules())
            {
                tracing::warn!(error = %e, "cannot read the egress rules another hub changed");
            }
        });
        let peers = paddock_peers::Peers::new(hub.clone(), peer_store, &host_key, reread);
        components.start("peers", move |stop| peers.run(stop));
    }
    if let Some(role) = role {
        let local = paddock_spoke::Local::new(
            boxes.clone(),
            hub.clone(),
            egress.clone(),
            spoke_store.clone(),
        );
        let info = paddock_spoke::dial::SpokeInfo {
            max_boxes: role.max_boxes,
            ping_every,
        };
        components.start("spoke-link", move |stop| async move {
            // Returns early only when the hub refused this spoke: the
            // process ends, saying why.
            if let Err(e) = paddock_spoke::dial::run(&role.hub, role.dir, info, local, stop).await {
                tracing::error!(error = %e, "this spoke cannot link to its hub");
            }
        });
    }
    if let Some(cert) = api.certificate() {
        let every = Duration::from_secs(tls_reload_secs);
        components.start("tls", move |stop| {
            crate::api_listener::watch_certificate(cert, every, stop)
        });
    }
    components.start("http", move |stop| async move {
        let graceful = stop.clone();
        let served = api
            .serve(app, async move {
                graceful.cancelled().await;
                shutdown.cancel();
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "http server failed");
        }
    });

    tracing::info!(instance = boxes.instance(), data_dir = %data_dir.display(), "paddock serving");
    // A line on stdout for scripts and tests that start paddock on port 0.
    println!("paddock: listening on {scheme}://{bound}");
    if let Some(token) = first_admin {
        // Shown here once and never again: only its hash is stored, and it
        // goes to stdout, never to the log.
        println!(
            "paddock: first start: admin token (shown once, keep it): {token}\n\
             paddock: use it as PADDOCK_TOKEN, or mint narrower ones with `paddock token create`"
        );
    }

    if let Some(every) = crate::systemd::watchdog_interval() {
        let store = boxes_store.clone();
        components.start("watchdog", move |stop| {
            crate::lifetime::watchdog(store, every, stop)
        });
    }
    // Before READY: from then on a SIGHUP reloads, and must never be
    // the signal's default (the end of the process).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    crate::systemd::ready(&format!(
        "serving on {scheme}://{bound}, instance {}",
        boxes.instance()
    ));

    let failure = components.failure();
    let gave_up = crate::lifetime::until_stopped(&args, &boxes, &failure, hangups).await;
    crate::systemd::stopping();
    // Children ending from here on are expected (a component's stop
    // ends what it started); what is left after the components stop gets
    // SIGTERM, then SIGKILL, newest first.
    let children = paddock_children::global();
    children.begin_shutdown();
    components.shutdown().await;
    let stop_timeout = Duration::from_secs(shutdown_timeout_secs);
    let report = children
        .shutdown(stop_timeout.min(CHILD_GRACE), stop_timeout)
        .await;
    if report.killed + report.unaccounted > 0 {
        tracing::warn!(
            killed = report.killed,
            unaccounted = report.unaccounted,
            "child processes did not end on SIGTERM"
        );
    }
    // The spans of the way out, too, within a bound.
    trace_stop.cancel();
    if let Some(exporter) = trace_exporter {
        let _ = tokio::time::timeout(Duration::from_secs(5), exporter).await;
    }
    if failure.is_cancelled() {
        anyhow::bail!("a component failed; see the log");
    }
    if let Some(why) = gave_up {
        anyhow::bail!("--exit-when-idle: {why}");
    }
    Ok(())
}

/// Where in the data dir the hub's spoke CA lives.
pub(crate) const SPOKE_CA_DIR: &str = "spoke-ca";

/// How long a child process left at shutdown has between SIGTERM and
/// SIGKILL.
const CHILD_GRACE: Duration = Duration::from_secs(3);

/// The tasks alive on the runtime in `/metrics`: with resident memory
/// and open descriptors, what the soak watches for leaks.
fn register_runtime_tasks() {
    let runtime = tokio::runtime::Handle::current();
    paddock_metrics::global().register(Arc::new(paddock_metrics::ReadFn::gauge(
        "paddock_runtime_alive_tasks",
        "Tasks alive on paddock's async runtime.",
        &[],
        move || vec![(Vec::new(), runtime.metrics().num_alive_tasks() as f64)],
    )));
}

/// The store's size in `/metrics`: what retention keeps in check, since a
/// full disk stops decisions. Beside it, the memory SQLite holds: it
/// grows with the store up to its cache's cap, which a long run's
/// resident memory shows as a slow climb that is not a leak.
fn register_store_size(store: &Arc<Store>) {
    paddock_metrics::global().register(Arc::new(paddock_metrics::ReadFn::gauge(
        "paddock_store_memory_bytes",
        "Memory the store's SQLite holds (page cache, statements), in bytes.",
        &[],
        || vec![(Vec::new(), paddock_store::sqlite_memory_bytes() as f64)],
    )));
    let store = Arc::downgrade(store);
    paddock_metrics::global().register(Arc::new(paddock_metrics::ReadFn::gauge(
        "paddock_store_bytes",
        "The store's database file, in bytes.",
        &[],
        move || {
            let size = store.upgrade().and_then(|s| s.size_bytes().ok());
            size.map(|n| vec![(Vec::new(), n as f64)])
                .unwrap_or_default()
        },
    )));
}
