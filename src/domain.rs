//! The ground floor: the words every layer shares and that depend on nothing else in the
//! crate. Which org ([`Org`]), which way records move ([`Direction`]) and which class a failed
//! record is in ([`FailureClass`]); each is stored in the state tables by its `as_str`
//! spelling and used in logs and metrics the same way. [`FailureClass::of_code`] is the one
//! table from Salesforce's status codes (and orgsync's own codes) to the three classes that
//! decide how the failure queue retries; [`ErrorKind`] is the one classification of every
//! error (transient, needs an edit, needs an operator, limit, auth).
//! Nothing here imports another module of orgsync, so config, store, salesforce and sync can
//! all use it without importing upward.

use std::fmt;
use std::str::FromStr;

/// One of the two orgs. Stored as `'a'` / `'b'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Org {
    A,
    B,
}

impl Org {
    pub fn as_str(self) -> &'static str {
        match self {
            Org::A => "a",
            Org::B => "b",
        }
    }

    /// The other org.
    pub fn other(self) -> Org {
        match self {
            Org::A => Org::B,
            Org::B => Org::A,
        }
    }
}

impl fmt::Display for Org {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Org {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a" | "A" => Ok(Org::A),
            "b" | "B" => Ok(Org::B),
            other => Err(format!("unknown org {other:?} (expected a or b)")),
        }
    }
}

/// The way records move in a pass. Stored as `'a_to_b'` / `'b_to_a'`, the word used in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    AToB,
    BToA,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::AToB, Direction::BToA];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::AToB => "a_to_b",
            Direction::BToA => "b_to_a",
        }
    }

    /// The org records are read from.
    pub fn source(self) -> Org {
        match self {
            Direction::AToB => Org::A,
            Direction::BToA => Org::B,
        }
    }

    /// The org records are written to.
    pub fn target(self) -> Org {
        self.source().other()
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a_to_b" => Ok(Direction::AToB),
            "b_to_a" => Ok(Direction::BToA),
            other => Err(format!(
                "unknown direction {other:?} (expected a_to_b or b_to_a)"
            )),
        }
    }
}

/// What a failed record needs before it can succeed; decides how the failure queue retries it.
/// Stored (and serialized) as `transient` / `needs_edit` / `needs_operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Lock contention, server trouble, timeouts, limits: the same write can succeed later
    /// unchanged. Retried on a timer with backoff, up to `sync.max_attempts`.
    Transient,
    /// The record's values were refused (validation rule, required field, bad value,
    /// duplicate): it waits until the source record is edited, or an operator retries it.
    NeedsEdit,
    /// Something only an operator can settle (an ambiguous match, a missing linked target, a
    /// permission or configuration problem): dead until an operator retries or discards it.
    NeedsOperator,
}

impl FailureClass {
    pub const ALL: [FailureClass; 3] = [
        FailureClass::Transient,
        FailureClass::NeedsEdit,
        FailureClass::NeedsOperator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::NeedsEdit => "needs_edit",
            FailureClass::NeedsOperator => "needs_operator",
        }
    }

    /// The class of a status code: Salesforce's per-record `StatusCode` (the `statusCode` of an
    /// sObject Collections item; the full list is in the org's WSDL, see "Core Data Types Used
    /// in API Calls", <https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm>),
    /// a whole call's `errorCode` spread over its records, orgsync's client codes (`TIMEOUT`,
    /// `CONNECTION_FAILED`, ...) and the pass's own codes (`AMBIGUOUS_MATCH`, ...).
    ///
    /// A code not in the table is `needs_edit`: most per-record status codes name something
    /// wrong with the record's values, so retrying the same values on a timer would fail the
    /// same way and spend API calls, while `needs_operator` would keep the record dead even
    /// after someone fixed it in the source. `needs_edit` retries on the next edit of the
    /// source record, and `failures retry` covers the rest.
    pub fn of_code(code: &str) -> FailureClass {
        match code {
            // Row locks (a transaction held the row more than 10 s), server trouble, limits,
            // an expired session, and our client's transport codes.
            "UNABLE_TO_LOCK_ROW"
            | "SERVER_UNAVAILABLE"
            | "SERVER_ERROR"
            | "BAD_GATEWAY"
            | "GATEWAY_TIMEOUT"
            | "REQUEST_RUNNING_TOO_LONG"
            | "UNKNOWN_EXCEPTION"
            | "TIMEOUT"
            | "CONNECTION_FAILED"
            | "BAD_RESPONSE"
            | "HTTP_ERROR"
            | "TOO_MANY_REQUESTS"
            | "REQUEST_LIMIT_EXCEEDED"
            | "API_BUDGET_EXCEEDED"
            | "INVALID_SESSION_ID"
            // Rolled back only because another record of an all-or-none call failed.
            | "ALL_OR_NONE_OPERATION_ROLLED_BACK"
            // orgsync's: the reply had no item for the record; the parent account could not
            // be resolved this time.
            | "NO_RESULT"
            | "ACCOUNT_UNRESOLVED" => FailureClass::Transient,

            // The values sent were refused: an edit of the source record fixes them.
            "FIELD_CUSTOM_VALIDATION_EXCEPTION"
            | "FIELD_FILTER_VALIDATION_EXCEPTION"
            | "FIELD_INTEGRITY_EXCEPTION"
            | "REQUIRED_FIELD_MISSING"
            | "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
            | "STRING_TOO_LONG"
            | "INVALID_TYPE_ON_FIELD_IN_RECORD"
            | "NUMBER_OUTSIDE_VALID_RANGE"
            | "INVALID_EMAIL_ADDRESS"
            | "MALFORMED_ID"
            | "TOO_MANY_ENUM_VALUE"
            | "DUPLICATE_VALUE"
            | "DUPLICATES_DETECTED"
            // A trigger or flow of the target org threw on these values.
            | "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" => FailureClass::NeedsEdit,

            // orgsync never guesses: a match or link only an operator can settle.
            "AMBIGUOUS_MATCH"
            | "AMBIGUOUS_ACCOUNT"
            | "LINKED_TARGET_MISSING"
            | "LINK_CONFLICT"
            // A delete the mass-delete breaker held (sync.max_deletes_per_cycle).
            | "DELETE_HELD"
            // The target record or a record it points to is gone, or matched twice.
            | "ENTITY_IS_DELETED"
            | "INVALID_CROSS_REFERENCE_KEY"
            | "DUPLICATE_EXTERNAL_ID"
            | "INVALID_ID_FIELD"
            // Locked by an approval process: someone must approve or unlock it.
            | "ENTITY_IS_LOCKED"
            // Permissions and configuration: the integration user or the mapping.
            | "INVALID_FIELD"
            | "INVALID_FIELD_FOR_INSERT_UPDATE"
            | "INVALID_TYPE"
            | "MALFORMED_QUERY"
            | "INVALID_QUERY_FILTER_OPERATOR"
            | "NOT_FOUND"
            | "FORBIDDEN"
            | "API_DISABLED_FOR_ORG"
            | "API_CURRENTLY_DISABLED" => FailureClass::NeedsOperator,
            // INSUFFICIENT_ACCESS, INSUFFICIENT_ACCESS_OR_READONLY,
            // INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY, ...
            c if c.starts_with("INSUFFICIENT_ACCESS") => FailureClass::NeedsOperator,
            _ => FailureClass::NeedsEdit,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown failure class {s:?} (expected transient, needs_edit or needs_operator)"
                )
            })
    }
}

/// What an error needs: the one classification of failures, used by the client
/// (`SalesforceError::kind`), the engine's ports and its errors (`PortError`,
/// `PassError::kind`), the daemon's direction errors and the failure queue (which stores the
/// [`FailureClass`] of a record's error: `PortError::failure_class`). The client's
/// `salesforce::ErrorClass` is not a second classification but its retry mechanics (what to
/// do with the call: back off, log in again, pause); `SalesforceError::kind` maps it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Trying again later can succeed (5xx, timeouts, `UNABLE_TO_LOCK_ROW`, an expired
    /// session).
    Transient,
    /// The same request fails the same way until the data it names is edited.
    NeedsEdit,
    /// The same request fails the same way until an operator changes something (a field or
    /// object the configuration names, a permission, an id that is not an id).
    NeedsOperator,
    /// The org's daily API limit (`REQUEST_LIMIT_EXCEEDED`) or configured budget: pause the
    /// pass without recording anything, resume next cycle.
    Limit,
    /// The login was refused: the credentials need an operator.
    Auth,
}

impl ErrorKind {
    /// The kind of a refusal that is neither transient, a limit nor a refused login, by the
    /// failure queue's one code table ([`FailureClass::of_code`]): `needs_operator` codes
    /// need an operator, every other code an edit.
    pub fn of_refusal(code: &str) -> ErrorKind {
        match FailureClass::of_code(code) {
            FailureClass::NeedsOperator => ErrorKind::NeedsOperator,
            FailureClass::Transient | FailureClass::NeedsEdit => ErrorKind::NeedsEdit,
        }
    }

    /// Whether trying the same request again fails the same way.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ErrorKind::NeedsEdit | ErrorKind::NeedsOperator | ErrorKind::Auth
        )
    }
}

/// `url` with the password of its userinfo (`scheme://user:password@host`), and the value of
/// a `password=` query parameter (PostgreSQL URLs accept one), replaced by `***`, for errors,
/// logs and `status`: a `state.url` can hold a database password.
pub fn redact_url(url: &str) -> String {
    let url = redact_userinfo(url);
    let Some(query_start) = url.find('?') else {
        return url;
    };
    let (base, query) = url.split_at(query_start + 1);
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}{}", query.join("&"))
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    format!(
        "{}://{}:***{}",
        &url[..scheme_end],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for d in Direction::BOTH {
            assert_eq!(d.as_str().parse::<Direction>(), Ok(d));
            assert_eq!(d.target(), d.source().other());
        }
        assert_eq!("a".parse::<Org>(), Ok(Org::A));
        assert!("c".parse::<Org>().is_err());
    }

    #[test]
    fn status_codes_map_to_failure_classes() {
        use FailureClass::*;
        let table = [
            ("UNABLE_TO_LOCK_ROW", Transient),
            ("SERVER_UNAVAILABLE", Transient),
            ("SERVER_ERROR", Transient),
            ("GATEWAY_TIMEOUT", Transient),
            ("TIMEOUT", Transient),
            ("CONNECTION_FAILED", Transient),
            ("REQUEST_LIMIT_EXCEEDED", Transient),
            ("FIELD_CUSTOM_VALIDATION_EXCEPTION", NeedsEdit),
            ("REQUIRED_FIELD_MISSING", NeedsEdit),
            ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", NeedsEdit),
            ("STRING_TOO_LONG", NeedsEdit),
            ("INVALID_TYPE_ON_FIELD_IN_RECORD", NeedsEdit),
            ("DUPLICATE_VALUE", NeedsEdit),
            ("DUPLICATES_DETECTED", NeedsEdit),
            ("FIELD_INTEGRITY_EXCEPTION", NeedsEdit),
            ("AMBIGUOUS_MATCH", NeedsOperator),
            ("AMBIGUOUS_ACCOUNT", NeedsOperator),
            ("LINKED_TARGET_MISSING", NeedsOperator),
            ("LINK_CONFLICT", NeedsOperator),
            ("INSUFFICIENT_ACCESS", NeedsOperator),
            ("INSUFFICIENT_ACCESS_OR_READONLY", NeedsOperator),
            (
                "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                NeedsOperator,
            ),
            ("ENTITY_IS_DELETED", NeedsOperator),
            ("INVALID_CROSS_REFERENCE_KEY", NeedsOperator),
            ("INVALID_FIELD_FOR_INSERT_UPDATE", NeedsOperator),
            ("DELETE_HELD", NeedsOperator),
            // Unknown codes wait for an edit: never retried on a timer, never stuck forever.
            ("SOME_FUTURE_STATUS_CODE", NeedsEdit),
            ("", NeedsEdit),
        ];
        for (code, class) in table {
            assert_eq!(FailureClass::of_code(code), class, "{code}");
        }
        for class in FailureClass::ALL {
            assert_eq!(class.as_str().parse::<FailureClass>(), Ok(class));
            assert_eq!(
                serde_json::to_value(class).unwrap(),
                serde_json::json!(class.as_str())
            );
        }
        assert!("dead".parse::<FailureClass>().is_err());
    }

    #[test]
    fn a_url_password_never_shows() {
        assert_eq!(
            redact_url("postgres://orgsync:s3cret@db.example.com:5432/orgsync?sslmode=require"),
            "postgres://orgsync:***@db.example.com:5432/orgsync?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://p%40ss:x@y@host/db"),
            "postgres://p%40ss:***@host/db"
        );
        assert_eq!(
            redact_url("postgres://orgsync@host/db"),
            "postgres://orgsync@host/db"
        );
        assert_eq!(redact_url("sqlite://orgsync.db"), "sqlite://orgsync.db");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=s3cret&x=1"),
            "postgres://u@h/db?sslmode=require&password=***&x=1"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h/db?password=s3cret"),
            "postgres://u:***@h/db?password=***"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
