//! One org's connection settings, validated: login URL, auth mode and the secrets it needs,
//! user and account ids, API version and budget.

use secrecy::ExposeSecret;

use super::error::Origin;
use super::keys::ENV_PREFIX;
use super::load::Secrets;
use super::raw::RawOrg;
use super::secrets::secret;
use super::settings::{AccountPolicy, AuthMode, OrgSettings};
use super::validate::{Checker, is_record_id};

pub(super) fn validate_org(
    c: &mut Checker<'_>,
    name: &str,
    raw: RawOrg,
    account_policy: AccountPolicy,
    needs_outbound_secret: bool,
) -> OrgSettings {
    let key = |k: &str| format!("orgs.{name}.{k}");

    let login_url = raw.login_url.trim().trim_end_matches('/').to_string();
    match url::Url::parse(&login_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            if url.query().is_some() || url.fragment().is_some() {
                c.problem(&key("login_url"), "must not have a query or fragment");
            }
        }
        Ok(_) => c.problem(
            &key("login_url"),
            format!("{login_url:?} must be an http(s) URL such as https://login.salesforce.com"),
        ),
        Err(e) => c.problem(
            &key("login_url"),
            format!("{login_url:?} is not a URL: {e}"),
        ),
    }

    let auth = AuthMode::parse(raw.auth.as_str()).unwrap_or_else(|| {
        c.problem(
            &key("auth"),
            format!(
                "unknown auth mode {:?}: use \"password\", \"oauth_password\", \"jwt\", \
                 \"client_credentials\" or \"refresh_token\"",
                raw.auth
            ),
        );
        AuthMode::Password
    });

    let password = secret(c, &key("password"), raw.password, raw.password_file);
    let security_token = secret(
        c,
        &key("security_token"),
        raw.security_token,
        raw.security_token_file,
    );
    let client_secret = secret(
        c,
        &key("client_secret"),
        raw.client_secret,
        raw.client_secret_file,
    );
    let private_key = secret(
        c,
        &key("private_key"),
        raw.private_key,
        raw.private_key_file,
    );
    let refresh_token = secret(
        c,
        &key("refresh_token"),
        raw.refresh_token,
        raw.refresh_token_file,
    );
    let outbound_secret = secret(
        c,
        &key("outbound_secret"),
        raw.outbound_secret,
        raw.outbound_secret_file,
    );

    let username = raw.username.trim().to_string();
    let client_id = raw.client_id.trim().to_string();
    let (need_username, need_password, need_client, need_client_secret, need_key, need_refresh) =
        match auth {
            AuthMode::Password => (true, true, false, false, false, false),
            AuthMode::OauthPassword => (true, true, true, true, false, false),
            AuthMode::Jwt => (true, false, true, false, true, false),
            AuthMode::ClientCredentials => (false, false, true, true, false, false),
            AuthMode::RefreshToken => (false, false, true, false, false, true),
        };
    let auth_origin = c.origins.of(&key("auth"));
    let require = |c: &mut Checker<'_>, field: &str, present: bool, secret: bool| {
        if present || (secret && c.secrets == Secrets::Optional) {
            return;
        }
        let k = key(field);
        let env = format!("{ENV_PREFIX}{}", k.to_ascii_uppercase().replace('.', "__"));
        let how = if secret {
            format!("set {env} or {k}_file")
        } else {
            format!("set {k} or {env}")
        };
        c.missing(
            &k,
            format!(
                "is required by orgs.{name}.auth = \"{}\" (from {auth_origin}) but not set: {how}",
                auth.as_str()
            ),
        );
    };
    require(c, "username", !need_username || !username.is_empty(), false);
    require(c, "password", !need_password || password.is_some(), true);
    require(c, "client_id", !need_client || !client_id.is_empty(), false);
    require(
        c,
        "client_secret",
        !need_client_secret || client_secret.is_some(),
        true,
    );
    require(c, "private_key", !need_key || private_key.is_some(), true);
    require(
        c,
        "refresh_token",
        !need_refresh || refresh_token.is_some(),
        true,
    );
    if let Some(pem) = &private_key
        && jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).is_err()
    {
        let k = if c.origins.of(&key("private_key_file")) != Origin::Default {
            key("private_key_file")
        } else {
            key("private_key")
        };
        c.problem(&k, "is not an RSA private key in PEM format");
    }
    if needs_outbound_secret && outbound_secret.is_none() && c.secrets == Secrets::Required {
        let k = key("outbound_secret");
        c.missing(
            &k,
            format!(
                "is required when trigger.policy is push or hybrid (the listener rejects \
                 notifications without it): set {ENV_PREFIX}ORGS__{}__OUTBOUND_SECRET or {k}_file",
                name.to_ascii_uppercase()
            ),
        );
    }

    let integration_user_id = match raw.integration_user_id.trim() {
        "" => None,
        id => {
            if !is_record_id(id, "005") {
                c.problem(
                    &key("integration_user_id"),
                    format!("{id:?} is not a User id (15 or 18 characters starting with 005)"),
                );
            }
            Some(id.to_string())
        }
    };
    let account_id = match raw.account_id.trim() {
        "" => None,
        id => {
            if !is_record_id(id, "001") {
                c.problem(
                    &key("account_id"),
                    format!("{id:?} is not an Account id (15 or 18 characters starting with 001)"),
                );
            }
            Some(id.to_string())
        }
    };
    if account_policy == AccountPolicy::Assign && account_id.is_none() {
        c.missing(
            &key("account_id"),
            "is required by account.sync_policy = \"assign\"",
        );
    }

    let api_version = raw.api_version.trim().to_string();
    let version_ok = api_version.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()) && minor == "0"
    });
    if !version_ok {
        c.problem(
            &key("api_version"),
            format!("{api_version:?} is not an API version such as \"62.0\""),
        );
    }

    let api_budget_percent = match u8::try_from(raw.api_budget_percent) {
        Ok(p) if (1..=100).contains(&p) => p,
        _ => {
            c.problem(
                &key("api_budget_percent"),
                format!("must be between 1 and 100, got {}", raw.api_budget_percent),
            );
            100
        }
    };

    OrgSettings {
        name: name.to_string(),
        login_url,
        auth,
        username,
        password,
        security_token,
        client_id,
        client_secret,
        private_key,
        refresh_token,
        integration_user_id,
        account_id,
        api_version,
        api_budget_percent,
        outbound_secret,
    }
}
