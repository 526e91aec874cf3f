//! Layered settings: `config/default.toml`, `config/<env>.toml`, `ORGSYNC__SECTION__KEY`
//! variables; validated once into [`Settings`]. OWNER: the foundation helper.
//!
//! The types below are the contract with `salesforce/` (the client reads [`OrgSettings`]).

use secrecy::SecretString;

/// How orgsync logs in to an org (`orgs.X.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// SOAP `login()` with password + security token (the template's way).
    Password,
    /// OAuth username-password flow (connected app + password + token).
    OauthPassword,
    /// OAuth JWT bearer flow (connected app + private key).
    Jwt,
    /// OAuth client credentials flow (connected app's run-as user).
    ClientCredentials,
    /// OAuth refresh token flow.
    RefreshToken,
}

/// One org's connection settings, validated.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    /// "a" or "b": used in logs and error messages.
    pub name: String,
    /// e.g. `https://login.salesforce.com` or a My Domain URL (no trailing slash).
    pub login_url: String,
    pub auth: AuthMode,
    pub username: String,
    pub password: Option<SecretString>,
    pub security_token: Option<SecretString>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// PEM of the RSA private key for `jwt`.
    pub private_key: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// Empty: learned at login.
    pub integration_user_id: Option<String>,
    /// For `account.sync_policy = "assign"`.
    pub account_id: Option<String>,
    /// e.g. "62.0".
    pub api_version: String,
    /// Pause this org when Sforce-Limit-Info says usage is past this share of the daily max.
    pub api_budget_percent: u8,
    /// Shared secret expected in the outbound messaging URL.
    pub outbound_secret: Option<SecretString>,
}
