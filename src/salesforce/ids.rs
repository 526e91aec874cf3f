//! Salesforce record ids (salesforce-api.md §10), checked before anything stores one: a
//! 3-character key prefix naming the object, and for the 18-character form a 3-character
//! case-safe suffix computed from the first 15 characters. An id that only looks like one
//! (right length, wrong suffix or prefix) would be refused later by the org as a whole query
//! (`Id IN (...)` answers `INVALID_QUERY_FILTER_OPERATOR`), so the push listener refuses it
//! before the Ack instead.
//!
//! Pure functions. The simulator has its own id code; the daemon does not depend on sfsim, so
//! the checksum is computed here again.

/// Key prefix of Account ids.
pub const ACCOUNT_PREFIX: &str = "001";
/// Key prefix of Contact ids.
pub const CONTACT_PREFIX: &str = "003";
/// Key prefix of Opportunity ids.
pub const OPPORTUNITY_PREFIX: &str = "006";
/// Key prefix of Organization ids (`OrganizationId` of an outbound message).
pub const ORGANIZATION_PREFIX: &str = "00D";
/// Key prefix of outbound notification ids (a notification's `Id`).
pub const NOTIFICATION_PREFIX: &str = "04l";
/// Key prefix of outbound message actions (`ActionId`).
pub const ACTION_PREFIX: &str = "04k";

/// The suffix's alphabet: a 5-bit number per chunk of 5 characters indexes it.
const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Why a string is not the id wanted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an id has 15 or 18 characters, not {0}")]
    Length(usize),
    #[error("an id holds only letters and digits")]
    Charset,
    #[error("the checksum suffix is {found}, not {expected}")]
    Checksum { found: String, expected: String },
    #[error("the key prefix is {found}, not {expected}")]
    Prefix { found: String, expected: String },
}

/// The key prefix of `object`'s ids, for the objects whose prefix is fixed in every org.
/// `None` for others (custom objects get a prefix per org).
pub fn key_prefix(object: &str) -> Option<&'static str> {
    [
        ("Account", ACCOUNT_PREFIX),
        ("Contact", CONTACT_PREFIX),
        ("Opportunity", OPPORTUNITY_PREFIX),
    ]
    .into_iter()
    .find(|(name, _)| name.eq_ignore_ascii_case(object))
    .map(|(_, prefix)| prefix)
}

/// The 3-character case-safe suffix of a 15-character id: in each chunk of 5 characters, bit
/// i is set when character i is an upper-case letter (first character = least significant).
/// Characters past the 15th are ignored.
pub fn checksum(id15: &str) -> String {
    let bytes = id15.as_bytes();
    (0..3)
        .map(|chunk| {
            let bits = (0..5).fold(0usize, |bits, i| {
                let upper = bytes
                    .get(chunk * 5 + i)
                    .is_some_and(|b| b.is_ascii_uppercase());
                bits | (usize::from(upper) << i)
            });
            char::from(SUFFIX_ALPHABET[bits])
        })
        .collect()
}

/// Checks that `id` is an id, with `prefix` when given. An 18-character id must carry the
/// suffix of its first 15 characters (compared without regard to case, as Salesforce does). A
/// 15-character id has no suffix to verify: it is accepted on its prefix alone (Salesforce
/// still accepts that form; a typo in it is not detectable).
pub fn check(id: &str, prefix: Option<&str>) -> Result<(), IdError> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IdError::Charset);
    }
    if !matches!(id.len(), 15 | 18) {
        return Err(IdError::Length(id.len()));
    }
    if let Some(expected) = prefix
        && !id.starts_with(expected)
    {
        return Err(IdError::Prefix {
            found: id[..3].to_string(),
            expected: expected.to_string(),
        });
    }
    if id.len() == 18 {
        let expected = checksum(&id[..15]);
        if !id[15..].eq_ignore_ascii_case(&expected) {
            return Err(IdError::Checksum {
                found: id[15..].to_string(),
                expected,
            });
        }
    }
    Ok(())
}

/// Checks a record id of `object`: the object's key prefix when it is known (see
/// [`key_prefix`]), the checksum always.
pub fn check_record_id(object: &str, id: &str) -> Result<(), IdError> {
    check(id, key_prefix(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_matches_the_reference_examples() {
        assert_eq!(checksum("001RM000003oLnn"), "YAE");
        assert_eq!(checksum("a00D0000008pQRA"), "IA2");
        assert_eq!(checksum("00Di0000000icUB"), "EAY");
        // no upper-case letter: AAA; all five upper-case: 5
        assert_eq!(checksum("006000000000001"), "AAA");
        assert_eq!(checksum("ABCDEABCDEABCDE"), "555");
    }

    #[test]
    fn an_18_character_id_must_carry_its_suffix() {
        assert_eq!(check("001RM000003oLnnYAE", None), Ok(()));
        assert_eq!(check("001RM000003oLnnyae", None), Ok(()), "any case");
        assert_eq!(
            check("001RM000003oLnnYAA", None),
            Err(IdError::Checksum {
                found: "YAA".into(),
                expected: "YAE".into()
            })
        );
        // one letter's case changed: the 15 characters name another record
        assert!(matches!(
            check("001rM000003oLnnYAE", None),
            Err(IdError::Checksum { .. })
        ));
    }

    #[test]
    fn a_15_character_id_is_checked_on_its_prefix_only() {
        assert_eq!(check("001RM000003oLnn", Some("001")), Ok(()));
        assert!(matches!(
            check("001RM000003oLnn", Some("006")),
            Err(IdError::Prefix { .. })
        ));
    }

    #[test]
    fn the_prefix_must_be_the_objects() {
        assert_eq!(check_record_id("Opportunity", "006000000000001AAA"), Ok(()));
        assert_eq!(check_record_id("opportunity", "006000000000001AAA"), Ok(()));
        assert_eq!(
            check_record_id("Opportunity", "001000000000001AAA"),
            Err(IdError::Prefix {
                found: "001".into(),
                expected: "006".into()
            })
        );
        assert_eq!(check_record_id("Account", "001RM000003oLnnYAE"), Ok(()));
        assert!(check_record_id("Contact", "001RM000003oLnnYAE").is_err());
        // a custom object: any prefix, the checksum still counts
        assert_eq!(check_record_id("Invoice__c", "a00D0000008pQRAIA2"), Ok(()));
        assert!(check_record_id("Invoice__c", "a00D0000008pQRAAAA").is_err());
        assert_eq!(
            check("00Di0000000icUBEAY", Some(ORGANIZATION_PREFIX)),
            Ok(())
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        assert_eq!(check("", None), Err(IdError::Length(0)));
        assert_eq!(check("006000000000001AA", None), Err(IdError::Length(17)));
        assert_eq!(check("006' OR Id != '00", None), Err(IdError::Charset));
        assert_eq!(check("006000000000001ÅAA", None), Err(IdError::Charset));
    }
}
