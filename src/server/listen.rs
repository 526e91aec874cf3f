//! Starting the HTTP face: `orgsync run`'s [`serve`] (the daemon, its logins, the listener
//! and the worker), [`start`] (bind, route, spawn the server and the worker), and the checks
//! push mode needs first.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::routing::{get, post};
use secrecy::ExposeSecret as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, TriggerPolicy};
use crate::daemon::Daemon;

/// Shared by the handlers and the worker.
pub(crate) struct Shared {
    pub(crate) daemon: Arc<Daemon>,
    /// Signalled by the listener after a message is stored; the worker drains the inbox.
    pub(crate) wake: Arc<Notify>,
}

/// The listener and its worker, running.
pub struct Running {
    /// The address the server is bound to (useful with `http.port = 0`).
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    worker: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until both the server and the worker have stopped (after `cancel` fires).
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await.context("the HTTP server task panicked")?;
        self.worker.await.context("the worker task panicked")?;
        served.context("the HTTP server failed")
    }
}

/// `orgsync run`, in every trigger mode: builds the daemon (push and hybrid check that both
/// orgs have an outbound secret first), logs in to both orgs, then serves HTTP on
/// `http.bind`:`http.port` and runs the worker until `cancel`. In poll mode a listener that
/// cannot bind is logged and the daemon syncs without it (monitoring is lost, not data); in
/// push and hybrid modes it is the trigger, so it is an error.
pub async fn serve(settings: &Settings, cancel: CancellationToken) -> anyhow::Result<()> {
    let push = settings.trigger.policy != TriggerPolicy::Poll;
    if push {
        check_push_settings(settings)?;
    }
    let daemon = Arc::new(Daemon::new(settings).await?);
    daemon.recover().await?;
    daemon.login_all().await;
    let addr = SocketAddr::new(settings.http.bind, settings.http.port);
    match start(daemon.clone(), addr, cancel.clone()).await {
        Ok(running) => running.wait().await?,
        Err(e) if !push => {
            tracing::error!(
                error = %format!("{e:#}"),
                "no HTTP listener (health, readiness, metrics, status): syncing without it; \
                 set http.port (and http.bind) to a free address"
            );
            crate::worker::run(daemon.clone(), Arc::new(Notify::new()), cancel).await;
        }
        Err(e) => {
            daemon.shutdown().await;
            return Err(e);
        }
    }
    // A leader releases the sync lease: a standby takes over at its next try.
    daemon.shutdown().await;
    tracing::info!("orgsync stopped: the pages in flight were committed");
    Ok(())
}

/// The settings push mode needs: a secret per org (a listener without one would accept
/// anybody's messages).
pub fn check_push_settings(settings: &Settings) -> anyhow::Result<()> {
    for org in [&settings.a, &settings.b] {
        let ok = org
            .outbound_secret
            .as_ref()
            .is_some_and(|s| !s.expose_secret().is_empty());
        if !ok {
            anyhow::bail!(
                "trigger.policy = {:?} needs orgs.{}.outbound_secret (or outbound_secret_file): \
                 the shared secret carried as ?secret=... in the outbound message's endpoint URL",
                settings.trigger.policy,
                org.name
            );
        }
    }
    Ok(())
}

/// Binds `addr`, then runs the HTTP server and the worker ([`crate::worker::run`]) until
/// `cancel` fires. In push and hybrid modes, pending inbox rows (left by a previous process)
/// are drained at once.
pub async fn start(
    daemon: Arc<Daemon>,
    addr: SocketAddr,
    cancel: CancellationToken,
) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP listener on {addr} (http.bind, http.port)"))?;
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let shared = Arc::new(Shared {
        daemon,
        wake: Arc::new(Notify::new()),
    });
    let policy = shared.daemon.settings().trigger.policy;
    if policy == TriggerPolicy::Poll {
        tracing::info!(%addr, policy = ?policy, "orgsync listening (health, readiness, metrics, status)");
    } else {
        tracing::info!(%addr, policy = ?policy, "orgsync listening for outbound messages (and health, readiness, metrics, status)");
    }
    let app = router(shared.clone());
    let server_cancel = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_cancel.cancelled().await })
            .await
    });
    let worker = tokio::spawn(crate::worker::run(
        shared.daemon.clone(),
        shared.wake.clone(),
        cancel,
    ));
    Ok(Running {
        addr,
        server,
        worker,
    })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", post(super::outbound::outbound_root))
        .route("/outbound/{org}", post(super::outbound::outbound_path))
        .route("/healthz", get(super::health::healthz))
        .route("/readyz", get(super::health::readyz))
        .route("/status", get(super::health::status))
        .route("/metrics", get(super::health::metrics))
        .with_state(shared)
}
