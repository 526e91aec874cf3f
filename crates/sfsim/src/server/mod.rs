//! HTTP for one simulated org: [`start_org`] binds a listener, creates the org's users and
//! serves auth (`auth`), the REST API (`rest`) and the control API (`control`) on it, and
//! starts Outbound Messaging delivery and Bulk job processing. [`SimOrg`] is the handle tests hold: base URL, ids,
//! in-process shortcuts to the control operations, and shutdown.

mod auth;
pub mod control;
mod delivery;
mod header_case;
mod identity;
mod reply;
mod rest;
mod soap;
mod soap_data;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard};

use axum::Router;
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{any, get, post};
use serde_json::{Map, Value as Json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::info;

use crate::db::OrgDb;
use crate::error::ApiError;
use crate::outbound::{OutboundConfig, OutboundStats};
pub use state::{CLIENT_ID, CLIENT_SECRET, Faults, OrgState, PASSWORD, SECURITY_TOKEN, SimUser};

/// The public key verifying JWT bearer assertions unless an org is given another one: the
/// committed test key pair of `testdata/` (not a secret; see its README).
pub const TEST_JWT_PUBLIC_KEY_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/jwt-public.pem"
));
/// The private half of the test key pair, for tests that sign assertions.
pub const TEST_JWT_PRIVATE_KEY_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/jwt-private.pem"
));

/// Settings of one simulated org.
#[derive(Debug, Clone, Default)]
pub struct OrgConfig {
    /// Short name, e.g. "A": users are integration@a.sim and human@a.sim.
    pub name: String,
    /// Makes the org id differ between runs that want it to (same name and seed, same id).
    pub seed: u64,
    /// Delay added to every API call (a simulated round trip).
    pub latency_ms: u64,
    /// PEM public key (SPKI) that verifies JWT bearer assertions; `None` = the test key.
    pub jwt_public_key_pem: Option<String>,
}

impl OrgConfig {
    pub fn named(name: &str) -> Self {
        OrgConfig {
            name: name.to_string(),
            ..OrgConfig::default()
        }
    }
}

/// A running org: its base URL and handles for tests. Dropping it stops the server.
pub struct SimOrg {
    pub name: String,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub addr: SocketAddr,
    pub org_id: String,
    pub integration_username: String,
    pub integration_user_id: String,
    pub human_username: String,
    pub human_user_id: String,
    state: Arc<OrgState>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// The username of one of an org's users: `integration@a.sim`.
pub fn username(kind: &str, org_name: &str) -> String {
    format!("{kind}@{}.sim", org_name.to_ascii_lowercase())
}

fn invalid_input(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

/// Starts an org listening on `addr` ("127.0.0.1:0" for any port).
pub async fn start_org(config: OrgConfig, addr: &str) -> std::io::Result<SimOrg> {
    let name = config.name.trim().to_string();
    let valid_name = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(invalid_input(format!(
            "org name {:?} must be 1-40 letters, digits, '-' or '_'",
            config.name
        )));
    }
    let jwt_key = config
        .jwt_public_key_pem
        .clone()
        .unwrap_or_else(|| TEST_JWT_PUBLIC_KEY_PEM.to_string());
    jsonwebtoken::DecodingKey::from_rsa_pem(jwt_key.as_bytes())
        .map_err(|e| invalid_input(format!("JWT public key of org {name}: {e}")))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let base_url = format!("http://{local}");
    let org_id = crate::ids::org_id_for(&name, config.seed);
    let mut db = OrgDb::new(&org_id);
    let mut users = Vec::new();
    for (kind, full_name) in [("integration", "Integration User"), ("human", "Human User")] {
        let uname = username(kind, &name);
        let id = db.add_user(&uname, full_name);
        users.push(SimUser {
            id,
            username: uname,
            refresh_token: format!("5Aep861{}", state::random_token(80)),
        });
    }
    let state = Arc::new(OrgState::new(
        name.clone(),
        org_id.clone(),
        base_url.clone(),
        config.latency_ms,
        jwt_key,
        db,
        users.clone(),
    ));
    let app = router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let org_name = name.clone();
    let server = tokio::spawn(async move {
        let serve = axum::serve(header_case::CaseListener(listener), app).with_graceful_shutdown(
            async move {
                let _ = rx.await;
            },
        );
        if let Err(e) = serve.await {
            tracing::error!(org = %org_name, error = %e, "server stopped");
        }
    });
    tokio::spawn(delivery::run_delivery(Arc::downgrade(&state)));
    tokio::spawn(rest::bulk::worker::run(Arc::downgrade(&state)));
    info!(org = %name, url = %base_url, org_id = %org_id, "org listening");
    Ok(SimOrg {
        name,
        base_url,
        addr: local,
        org_id,
        integration_username: users[0].username.clone(),
        integration_user_id: users[0].id.clone(),
        human_username: users[1].username.clone(),
        human_user_id: users[1].id.clone(),
        state,
        shutdown: Some(tx),
        server: Some(server),
    })
}

async fn not_found(uri: Uri) -> Response {
    tracing::debug!(path = %uri.path(), "no such resource");
    reply::api_error(&ApiError::not_found())
}

fn router(state: Arc<OrgState>) -> Router {
    Router::new()
        .route("/services/Soap/u/{version}", post(auth::soap_login))
        .route(
            "/services/Soap/u/{version}/{org}",
            post(auth::soap_server_url),
        )
        .route("/services/oauth2/token", post(auth::oauth_token))
        .route(
            "/services/oauth2/revoke",
            post(auth::oauth_revoke).get(auth::oauth_revoke),
        )
        .route(
            "/services/oauth2/userinfo",
            get(identity::userinfo).post(identity::userinfo),
        )
        .route("/id/{org}/{user}", get(identity::identity))
        .route("/services/data", get(rest::versions))
        .route("/services/data/", get(rest::versions))
        .route("/services/data/{version}", any(rest::version_root))
        .route("/services/data/{version}/", any(rest::version_root))
        .route("/services/data/{version}/{*rest}", any(rest::rest))
        .nest("/__sim", control::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(reply::buffer_body))
        .with_state(state)
}

impl SimOrg {
    /// Direct access to the org's records (hold the guard briefly: the server waits on it).
    pub fn db(&self) -> MutexGuard<'_, OrgDb> {
        state::lock(&self.state.db)
    }

    /// The shared state, for tests that need more than the shortcuts below.
    pub fn state(&self) -> &Arc<OrgState> {
        &self.state
    }

    /// Same as `POST /__sim/reset`.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Same as `GET /__sim/stats`.
    pub fn stats(&self) -> Json {
        control::stats(&self.state)
    }

    /// Calls of one kind so far (`query`, `collections_create`, ...).
    pub fn calls(&self, kind: &str) -> u64 {
        state::lock(&self.state.stats)
            .calls
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Same as `POST /__sim/faults` with the given fields.
    pub fn set_faults(&self, patch: Map<String, Json>) -> Result<Json, ApiError> {
        control::set_faults(&self.state, patch)
    }

    pub fn faults(&self) -> Faults {
        state::lock(&self.state.faults).clone()
    }

    /// Ends every session now (clients get 401 INVALID_SESSION_ID).
    pub fn expire_sessions(&self) {
        self.state.expire_sessions();
    }

    /// Skews this org's clock by `offset_ms`.
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        *state::lock(&self.state.clock_offset_ms) = offset_ms;
    }

    /// Same as `POST /__sim/schema` with a field spec.
    pub fn add_field(&self, spec: &Json) -> Result<(), ApiError> {
        self.db().add_field(spec)
    }

    /// Same as `POST /__sim/schema` with an object spec (no `name`): adds a custom object and
    /// returns its key prefix.
    pub fn add_object(&self, spec: &Json) -> Result<String, ApiError> {
        let spec = spec.as_object().ok_or_else(|| {
            ApiError::new(400, "INVALID_TYPE", "object spec must be a JSON object")
        })?;
        self.db().add_object(spec)
    }

    /// Same as `POST /__sim/records`: writes up to 10,000 records in one step.
    pub fn seed_records(
        &self,
        object: &str,
        as_user: Option<&str>,
        records: Vec<Map<String, Json>>,
    ) -> Result<Vec<Json>, ApiError> {
        control::seed_records(&self.state, object, as_user, records)
    }

    /// Replaces the Outbound Messaging settings.
    pub fn set_outbound(&self, config: OutboundConfig) {
        self.state.outbound.set_config(config);
    }

    pub fn outbound_stats(&self) -> OutboundStats {
        self.state.outbound.stats()
    }

    /// Waits until the outbound counters satisfy `done` (for tests: no sleeping).
    pub async fn wait_outbound(&self, done: impl Fn(&OutboundStats) -> bool) -> OutboundStats {
        let mut progress = self.state.outbound.progress();
        loop {
            progress.borrow_and_update();
            let stats = self.state.outbound.stats();
            if done(&stats) {
                return stats;
            }
            if progress.changed().await.is_err() {
                return self.state.outbound.stats();
            }
        }
    }

    /// Same as `GET /__sim/users`.
    pub fn users(&self) -> Vec<SimUser> {
        self.state.users.clone()
    }

    /// Stops the server and waits for it to finish serving.
    pub async fn shutdown(mut self) {
        self.state.outbound.close();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for SimOrg {
    fn drop(&mut self) {
        self.state.outbound.close();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
