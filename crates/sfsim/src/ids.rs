//! 18-character Salesforce record ids (reference §10): a 3-character key prefix naming the
//! object, a 3-character org part, a base-62 counter, then the 3-character case-safe checksum
//! suffix that lets case-insensitive tools tell `a` from `A`.
//!
//! The counter uses the alphabet `0-9A-Za-z`, which is also ASCII order, and is padded to a
//! fixed width: the ids one generator hands out sort as strings in the order they were made.
//! The database relies on that (its SystemModstamp index orders ties by creation order, which is
//! then the same as ordering by `Id`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// Key prefix of Account ids.
pub const ACCOUNT_PREFIX: &str = "001";
/// Key prefix of Contact ids.
pub const CONTACT_PREFIX: &str = "003";
/// Key prefix of Task records.
pub const TASK_PREFIX: &str = "00T";
/// Key prefix of User ids.
pub const USER_PREFIX: &str = "005";
/// Key prefix of Opportunity ids.
pub const OPPORTUNITY_PREFIX: &str = "006";
/// Key prefix of Organization ids.
pub const ORG_PREFIX: &str = "00D";
/// Key prefix of outbound notification ids.
pub const NOTIFICATION_PREFIX: &str = "04l";
/// Key prefix of outbound message action ids.
pub const ACTION_PREFIX: &str = "04k";
/// Key prefix of query locators (`nextRecordsUrl`).
pub const QUERY_LOCATOR_PREFIX: &str = "01g";

/// Base 62 in ASCII order, so fixed-width numbers sort as strings.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Indexes of the checksum suffix: 5 bits per chunk of 5 characters.
const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
/// Width of the counter inside the 15-character id: prefix (3) + org part (3) + counter (9).
const COUNTER_WIDTH: usize = 9;
const ORG_PART_WIDTH: usize = 3;

/// Why a string is not a record id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("id must be 15 or 18 characters long, got {0}")]
    Length(usize),
    #[error("id contains a character that is not a letter or digit")]
    Charset,
    #[error("checksum suffix does not match the id")]
    Checksum,
}

/// The 3-character case-safe suffix of a 15-character id. Characters past the 15th are
/// ignored; a shorter input is treated as if padded with non-letters.
pub fn checksum(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in 0..3 {
        let mut bits = 0usize;
        for i in 0..5 {
            if let Some(b) = bytes.get(chunk * 5 + i)
                && b.is_ascii_uppercase()
            {
                bits |= 1 << i;
            }
        }
        out.push(char::from(CHECKSUM_ALPHABET[bits]));
    }
    out
}

/// Validates a 15- or 18-character id and returns its 18-character form. An 18-character id
/// must carry the right suffix (compared case-insensitively, as Salesforce does).
pub fn to_18(id: &str) -> Result<String, IdError> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IdError::Charset);
    }
    match id.len() {
        15 => Ok(format!("{id}{}", checksum(id))),
        18 => {
            let expected = checksum(&id[..15]);
            if id[15..].eq_ignore_ascii_case(&expected) {
                Ok(format!("{}{}", &id[..15], expected))
            } else {
                Err(IdError::Checksum)
            }
        }
        n => Err(IdError::Length(n)),
    }
}

/// Whether `id` is a well-formed 15- or 18-character id.
pub fn is_valid(id: &str) -> bool {
    to_18(id).is_ok()
}

/// The key prefix of an id (its first three characters), if it has one.
pub fn key_prefix(id: &str) -> Option<&str> {
    id.get(..3)
}

/// `n` in base 62, left-padded with `0` to `width` characters. Returns `None` if it does not fit.
fn base62(mut n: u64, width: usize) -> Option<String> {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    if n != 0 {
        return None;
    }
    String::from_utf8(digits).ok()
}

/// FNV-1a: a stable hash (std's hasher is randomly keyed per process).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// An org id (`00D...`, 18 characters) for a simulated org, stable for a given name and seed,
/// so that a restarted simulator keeps its org ids.
pub fn org_id_for(name: &str, seed: u64) -> String {
    let mut data = name.to_ascii_lowercase().into_bytes();
    data.extend_from_slice(&seed.to_le_bytes());
    let h = fnv1a(&data) % 62u64.pow(10);
    // Below 62^10 by construction, so it fits in 10 base-62 digits.
    let body = base62(h, 10).unwrap_or_else(|| "0000000000".to_string());
    let id15 = format!("{ORG_PREFIX}00{body}");
    format!("{id15}{}", checksum(&id15))
}

/// Hands out the record ids of one org. Ids of different orgs differ in their org part, which
/// is derived from the org id.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    org_part: String,
    next: u64,
}

impl IdGenerator {
    /// A generator for the org `org_id`. The org part is a stable hash of the org id, so two
    /// orgs get different ids (unless their 3-character parts collide: 1 in 238,328).
    pub fn new(org_id: &str) -> Self {
        Self::starting_at(org_id, 1)
    }

    /// A generator whose first counter value is `first` (taken modulo the counter's range).
    /// A database that is reset starts further on, so it never hands out an id again.
    pub fn starting_at(org_id: &str, first: u64) -> Self {
        let h = fnv1a(org_id.as_bytes()) % 62u64.pow(ORG_PART_WIDTH as u32);
        let org_part = base62(h, ORG_PART_WIDTH).unwrap_or_else(|| "000".to_string());
        IdGenerator {
            org_part,
            next: first % 62u64.pow(COUNTER_WIDTH as u32),
        }
    }

    /// A counter start that no earlier generator of this process, nor (unless the clock went
    /// back) of an earlier process, has reached: the wall clock in microseconds, and at least
    /// 2^32 past the previous start in this process. Real orgs never reuse an id, and a reset
    /// simulated org must not either, or a client's stored links would point at new records.
    pub fn fresh_start() -> u64 {
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(1);
        let mut prev = LAST.load(Ordering::Relaxed);
        loop {
            let start = now.max(prev.saturating_add(1 << 32));
            match LAST.compare_exchange(prev, start, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return start,
                Err(seen) => prev = seen,
            }
        }
    }

    /// The next 18-character id with the given 3-character key prefix. The counter is shared by
    /// every prefix, so ids made later always sort after ids made earlier.
    pub fn next_id(&mut self, prefix: &str) -> String {
        let n = self.next;
        self.next += 1;
        // 62^9 ids (about 1.3e16) cannot be exhausted by a simulator; wrap rather than panic.
        let counter = base62(n % 62u64.pow(COUNTER_WIDTH as u32), COUNTER_WIDTH)
            .unwrap_or_else(|| "0".repeat(COUNTER_WIDTH));
        let id15 = format!("{prefix}{}{counter}", self.org_part);
        format!("{id15}{}", checksum(&id15))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_the_reference_examples() {
        assert_eq!(checksum("001RM000003oLnn"), "YAE");
        assert_eq!(checksum("a00D0000008pQRA"), "IA2");
        assert_eq!(checksum("00Di0000000icUB"), "EAY");
    }

    #[test]
    fn to_18_extends_and_validates() {
        assert_eq!(
            to_18("001RM000003oLnn").as_deref(),
            Ok("001RM000003oLnnYAE")
        );
        assert_eq!(
            to_18("001RM000003oLnnYAE").as_deref(),
            Ok("001RM000003oLnnYAE")
        );
        assert_eq!(
            to_18("001RM000003oLnnyae").as_deref(),
            Ok("001RM000003oLnnYAE")
        );
        assert_eq!(to_18("001RM000003oLnnYAA"), Err(IdError::Checksum));
        assert_eq!(to_18("001RM000003oLn"), Err(IdError::Length(14)));
        assert_eq!(to_18("001RM000003oLn'"), Err(IdError::Charset));
        assert_eq!(to_18(""), Err(IdError::Length(0)));
        assert!(!is_valid("invalid"));
    }

    #[test]
    fn generated_ids_are_valid_ordered_and_org_specific() {
        let mut a = IdGenerator::new("00DA00000000001AAA");
        let mut b = IdGenerator::new("00DB00000000002AAA");
        let a1 = a.next_id(OPPORTUNITY_PREFIX);
        let a2 = a.next_id(OPPORTUNITY_PREFIX);
        let b1 = b.next_id(OPPORTUNITY_PREFIX);
        assert_eq!(a1.len(), 18);
        assert!(a1.starts_with("006"));
        assert_eq!(to_18(&a1).as_deref(), Ok(a1.as_str()));
        assert!(a1 < a2);
        assert_ne!(a1, b1);
        // Ordering holds across the base-62 digit boundaries.
        let mut g = IdGenerator::new("00Dx");
        let ids: Vec<String> = (0..200).map(|_| g.next_id("001")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn fresh_starts_never_repeat_and_keep_ids_ordered() {
        let a = IdGenerator::fresh_start();
        let b = IdGenerator::fresh_start();
        assert!(b >= a + (1 << 32));
        let mut g = IdGenerator::starting_at("00Dx", a);
        let x = g.next_id("006");
        let y = g.next_id("006");
        assert!(x < y && is_valid(&x));
        let mut h = IdGenerator::starting_at("00Dx", b);
        assert!(h.next_id("006") > y);
    }

    #[test]
    fn org_ids_are_stable_and_distinct() {
        let a = org_id_for("A", 1);
        assert_eq!(a, org_id_for("a", 1));
        assert_ne!(a, org_id_for("B", 1));
        assert_ne!(a, org_id_for("A", 2));
        assert!(a.starts_with("00D"));
        assert!(is_valid(&a));
    }

    #[test]
    fn base62_rejects_overflow() {
        assert_eq!(base62(61, 1).as_deref(), Some("z"));
        assert_eq!(base62(62, 1), None);
        assert_eq!(base62(62, 2).as_deref(), Some("10"));
    }
}
