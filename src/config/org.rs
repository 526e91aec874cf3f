//! One org's connection settings, validated: login URL, auth mode and the secrets it needs,
//! user and account ids, API version and budget.

use secrecy::ExposeSecret;

use super::error::Origin;
use super::keys::ENV_PREFIX;
use super::load::Secrets;
use super::raw::{Choice, RawOrg};
use super::secrets::secret;
use super::settings::{AccountPolicy, AuthMode, Credentials, OrgSettings};
use super::validate::{Checker, is_record_id};
use secrecy::SecretString;

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

    let auth = match raw.auth {
        Choice::Known(auth) => auth,
        Choice::Unknown(other) => {
            c.problem(
                &key("auth"),
                format!(
                    "unknown auth mode {:?}: use \"password\", \"oauth_password\", \"jwt\", \
                 \"client_credentials\" or \"refresh_token\"",
                    other
                ),
            );
            AuthMode::Password
        }
    };

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
    let given = Given {
        username: !username.is_empty(),
        client_id: !client_id.is_empty(),
        password,
        security_token,
        client_secret,
        private_key: private_key.clone(),
        refresh_token,
    };
    let auth_origin = c.origins.of(&key("auth"));
    let credentials = match credentials_for(auth, &client_id, given) {
        Ok(credentials) => credentials,
        Err(missing) => {
            for Need { field, secret } in missing {
                if secret && c.secrets == Secrets::Optional {
                    continue;
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
                        "is required by orgs.{name}.auth = \"{}\" (from {auth_origin}) but not \
                         set: {how}",
                        auth.as_str()
                    ),
                );
            }
            Credentials::Withheld {
                auth,
                client_id: client_id.clone(),
            }
        }
    };
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
        username,
        credentials,
        integration_user_id,
        account_id,
        api_version,
        api_budget_percent,
        outbound_secret,
    }
}

/// A key an auth mode needs: its name under `orgs.X` and whether it is a secret (set through
/// the environment or its `_file` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Need {
    pub(super) field: &'static str,
    pub(super) secret: bool,
}

const USERNAME: Need = Need {
    field: "username",
    secret: false,
};
const CLIENT_ID: Need = Need {
    field: "client_id",
    secret: false,
};
const PASSWORD: Need = Need {
    field: "password",
    secret: true,
};
const CLIENT_SECRET: Need = Need {
    field: "client_secret",
    secret: true,
};
const PRIVATE_KEY: Need = Need {
    field: "private_key",
    secret: true,
};
const REFRESH_TOKEN: Need = Need {
    field: "refresh_token",
    secret: true,
};

/// What each auth mode needs, in the order missing keys are reported. The security token
/// (`password`, `oauth_password`) and the client secret of `refresh_token` are optional and
/// used when set.
pub(super) fn needs(auth: AuthMode) -> &'static [Need] {
    match auth {
        AuthMode::Password => &[USERNAME, PASSWORD],
        AuthMode::OauthPassword => &[USERNAME, PASSWORD, CLIENT_ID, CLIENT_SECRET],
        AuthMode::Jwt => &[USERNAME, CLIENT_ID, PRIVATE_KEY],
        AuthMode::ClientCredentials => &[CLIENT_ID, CLIENT_SECRET],
        AuthMode::RefreshToken => &[CLIENT_ID, REFRESH_TOKEN],
    }
}

/// What an org's keys give, before the auth mode picks what it needs.
pub(super) struct Given {
    pub(super) username: bool,
    pub(super) client_id: bool,
    pub(super) password: Option<SecretString>,
    pub(super) security_token: Option<SecretString>,
    pub(super) client_secret: Option<SecretString>,
    pub(super) private_key: Option<SecretString>,
    pub(super) refresh_token: Option<SecretString>,
}

impl Given {
    fn has(&self, field: &str) -> bool {
        match field {
            "username" => self.username,
            "client_id" => self.client_id,
            "password" => self.password.is_some(),
            "security_token" => self.security_token.is_some(),
            "client_secret" => self.client_secret.is_some(),
            "private_key" => self.private_key.is_some(),
            "refresh_token" => self.refresh_token.is_some(),
            _ => false,
        }
    }
}

/// The credentials of `auth` from what the keys give (pure), or every key it needs that is
/// not set, in [`needs`] order. Values the mode does not use are dropped.
pub(super) fn credentials_for(
    auth: AuthMode,
    client_id: &str,
    given: Given,
) -> Result<Credentials, Vec<Need>> {
    let missing: Vec<Need> = needs(auth)
        .iter()
        .copied()
        .filter(|need| !given.has(need.field))
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let client_id = client_id.to_string();
    let built = match auth {
        AuthMode::Password => given.password.map(|password| Credentials::Password {
            password,
            security_token: given.security_token,
        }),
        AuthMode::OauthPassword => {
            given
                .password
                .zip(given.client_secret)
                .map(|(password, client_secret)| Credentials::OAuthPassword {
                    client_id,
                    client_secret,
                    password,
                    security_token: given.security_token,
                })
        }
        AuthMode::Jwt => given.private_key.map(|private_key| Credentials::Jwt {
            client_id,
            private_key,
        }),
        AuthMode::ClientCredentials => {
            given
                .client_secret
                .map(|client_secret| Credentials::ClientCredentials {
                    client_id,
                    client_secret,
                })
        }
        AuthMode::RefreshToken => {
            given
                .refresh_token
                .map(|refresh_token| Credentials::RefreshToken {
                    client_id,
                    client_secret: given.client_secret,
                    refresh_token,
                })
        }
    };
    // `needs` lists every value a variant requires, so `built` is always `Some` here.
    built.ok_or_else(|| needs(auth).to_vec())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::error::{ConfigError, Origin};
    use crate::config::load::load_layers;

    fn s(text: &str) -> Option<SecretString> {
        Some(SecretString::from(text.to_string()))
    }

    /// Everything set: each mode takes what it needs.
    fn all() -> Given {
        Given {
            username: true,
            client_id: true,
            password: s("pw"),
            security_token: s("tok"),
            client_secret: s("cs"),
            private_key: s("pem"),
            refresh_token: s("rt"),
        }
    }

    /// Nothing set.
    fn none() -> Given {
        Given {
            username: false,
            client_id: false,
            password: None,
            security_token: None,
            client_secret: None,
            private_key: None,
            refresh_token: None,
        }
    }

    fn missing(auth: AuthMode, given: Given) -> Vec<&'static str> {
        match credentials_for(auth, "cid", given) {
            Ok(c) => panic!("{auth:?}: expected missing keys, got {c:?}"),
            Err(needs) => needs.into_iter().map(|n| n.field).collect(),
        }
    }

    #[test]
    fn password_needs_username_and_password_and_keeps_an_optional_token() {
        let c = credentials_for(AuthMode::Password, "", all()).unwrap();
        let Credentials::Password {
            password,
            security_token,
        } = &c
        else {
            panic!("{c:?}")
        };
        assert_eq!(password.expose_secret(), "pw");
        assert_eq!(security_token.as_ref().unwrap().expose_secret(), "tok");
        assert_eq!(c.mode(), AuthMode::Password);
        assert_eq!(c.client_id(), None);
        let no_token = Given {
            security_token: None,
            ..all()
        };
        let c = credentials_for(AuthMode::Password, "", no_token).unwrap();
        assert!(c.security_token().is_none());
        assert_eq!(
            missing(AuthMode::Password, none()),
            ["username", "password"]
        );
    }

    #[test]
    fn oauth_password_needs_the_connected_app_too() {
        let c = credentials_for(AuthMode::OauthPassword, "cid", all()).unwrap();
        assert!(matches!(c, Credentials::OAuthPassword { .. }), "{c:?}");
        assert_eq!(c.client_id(), Some("cid"));
        assert_eq!(c.client_secret().unwrap().expose_secret(), "cs");
        assert_eq!(c.password().unwrap().expose_secret(), "pw");
        assert_eq!(
            missing(AuthMode::OauthPassword, none()),
            ["username", "password", "client_id", "client_secret"]
        );
        let no_secret = Given {
            client_secret: None,
            ..all()
        };
        assert_eq!(
            missing(AuthMode::OauthPassword, no_secret),
            ["client_secret"]
        );
    }

    #[test]
    fn jwt_needs_username_client_id_and_key_but_no_password() {
        let given = Given {
            password: None,
            client_secret: None,
            ..all()
        };
        let c = credentials_for(AuthMode::Jwt, "cid", given).unwrap();
        assert_eq!(c.private_key().unwrap().expose_secret(), "pem");
        assert!(
            c.password().is_none(),
            "values jwt does not use are dropped"
        );
        assert_eq!(
            missing(AuthMode::Jwt, none()),
            ["username", "client_id", "private_key"]
        );
    }

    #[test]
    fn client_credentials_need_no_user() {
        let given = Given {
            username: false,
            password: None,
            ..all()
        };
        let c = credentials_for(AuthMode::ClientCredentials, "cid", given).unwrap();
        assert!(matches!(c, Credentials::ClientCredentials { .. }), "{c:?}");
        assert_eq!(
            missing(AuthMode::ClientCredentials, none()),
            ["client_id", "client_secret"]
        );
    }

    #[test]
    fn refresh_token_needs_the_token_and_keeps_an_optional_client_secret() {
        let c = credentials_for(AuthMode::RefreshToken, "cid", all()).unwrap();
        assert_eq!(c.refresh_token().unwrap().expose_secret(), "rt");
        assert_eq!(c.client_secret().unwrap().expose_secret(), "cs");
        let no_secret = Given {
            client_secret: None,
            username: false,
            ..all()
        };
        let c = credentials_for(AuthMode::RefreshToken, "cid", no_secret).unwrap();
        assert!(c.client_secret().is_none());
        assert_eq!(
            missing(AuthMode::RefreshToken, none()),
            ["client_id", "refresh_token"]
        );
    }

    fn load(toml: &str, secrets: Secrets) -> Result<crate::config::Settings, ConfigError> {
        let layers = [(Origin::Inline("t".into()), toml.to_string())];
        load_layers("t", &layers, &HashMap::new(), secrets)
    }

    const ORGS: &str = "[orgs.a]\nauth = \"client_credentials\"\nclient_id = \"app\"\n\
                        [orgs.b]\nusername = \"u@b\"\npassword = \"pw\"\n";

    #[test]
    fn a_missing_secret_is_a_problem_naming_the_key_or_withheld_without_secrets() {
        let err = load(ORGS, Secrets::Required).unwrap_err();
        let ConfigError::Invalid(problems) = err else {
            panic!("{err:?}")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["orgs.a.client_secret"], "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("orgs.a.auth = \"client_credentials\""),
            "{}",
            problems[0].message
        );

        let settings = load(ORGS, Secrets::Optional).unwrap();
        let Credentials::Withheld { auth, client_id } = &settings.a.credentials else {
            panic!("{:?}", settings.a.credentials)
        };
        assert_eq!(*auth, AuthMode::ClientCredentials);
        assert_eq!(client_id, "app");
        assert_eq!(settings.a.login_name(), "client app");
        // The org whose secrets are all there gets its credentials.
        assert!(matches!(
            settings.b.credentials,
            Credentials::Password { .. }
        ));
    }

    #[test]
    fn a_missing_user_or_client_id_is_a_problem_even_without_secrets() {
        let toml = "[orgs.a]\nauth = \"jwt\"\n[orgs.b]\nusername = \"u@b\"\n";
        let err = load(toml, Secrets::Optional).unwrap_err();
        let ConfigError::Invalid(problems) = err else {
            panic!("{err:?}")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["orgs.a.username", "orgs.a.client_id"],
            "{problems:?}"
        );
    }
}
