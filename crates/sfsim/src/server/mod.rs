//! HTTP for one org. OWNER: the server helper.

/// Settings of one simulated org.
#[derive(Debug, Clone, Default)]
pub struct OrgConfig {
    /// Short name, e.g. "A": users are integration@a.sim and human@a.sim.
    pub name: String,
    pub seed: u64,
    pub latency_ms: u64,
}

/// A running org: its base URL and handles for tests.
pub struct SimOrg {
    pub name: String,
    pub base_url: String,
}

/// Starts an org listening on `addr` ("127.0.0.1:0" for any port).
pub async fn start_org(config: OrgConfig, addr: &str) -> std::io::Result<SimOrg> {
    let _ = (config, addr);
    todo!()
}
