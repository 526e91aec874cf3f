//! The status report's replicas section (PostgreSQL; README "Replicas"): the sync lease's
//! holder, the other replicas seen recently and, on `/status`, this process's role; built from
//! the stored lease and `replicas` rows (pure), and its lines of the text report.

use std::fmt::Write as _;

use chrono::Utc;
use serde::Serialize;

use crate::store::format_timestamp;

/// Who syncs among a pair's replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaStatus {
    /// This process's role, `leader` or `standby` (`/status` only: `orgsync status` is not a
    /// replica).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// `ha.lease_ttl`, in seconds.
    pub lease_ttl_seconds: u64,
    /// The sync lease as stored (`null` before any replica took it).
    pub leader: Option<LeaderStatus>,
    /// The other replicas seen within three TTLs, the latest first.
    pub standbys: Vec<StandbyStatus>,
}

/// The sync lease's holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderStatus {
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub epoch: i64,
    pub acquired_at: String,
    pub expires_at: String,
    /// Whether the lease had expired by the database's clock (its holder stopped renewing:
    /// a standby takes over at its next try).
    pub expired: bool,
}

/// A replica seen recently that does not hold the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandbyStatus {
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub seen_at: String,
}

/// The HA section from the stored lease and replicas, judged at the database's `now` (pure).
pub fn ha_status(
    lease: Option<&crate::store::Lease>,
    seen: &[crate::store::SeenReplica],
    now: chrono::DateTime<Utc>,
    ttl: std::time::Duration,
) -> HaStatus {
    let holder = lease
        .filter(|l| l.is_valid_at(now))
        .map(|l| l.holder.as_str());
    HaStatus {
        role: None,
        lease_ttl_seconds: ttl.as_secs(),
        leader: lease.map(|l| LeaderStatus {
            holder: l.holder.clone(),
            host: l.host.clone(),
            pid: l.pid,
            epoch: l.epoch,
            acquired_at: format_timestamp(l.acquired_at),
            expires_at: format_timestamp(l.expires_at),
            expired: !l.is_valid_at(now),
        }),
        standbys: seen
            .iter()
            .filter(|r| Some(r.holder.as_str()) != holder)
            .map(|r| StandbyStatus {
                holder: r.holder.clone(),
                host: r.host.clone(),
                pid: r.pid,
                seen_at: format_timestamp(r.seen_at),
            })
            .collect(),
    }
}

/// The section's lines of the text report.
pub(super) fn render_text(out: &mut String, ha: &HaStatus) {
    match &ha.leader {
        Some(l) => {
            let _ = writeln!(
                out,
                "Leader    {} pid {} (epoch {}), lease {} {}{}",
                l.host,
                l.pid,
                l.epoch,
                if l.expired { "expired at" } else { "until" },
                l.expires_at,
                if l.expired {
                    ": no replica syncs until one takes it"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Leader    none yet (no replica has taken the sync lease)"
            );
        }
    }
    let standbys = ha
        .standbys
        .iter()
        .map(|r| format!("{} pid {} (seen {})", r.host, r.pid, r.seen_at))
        .collect::<Vec<_>>();
    let _ = writeln!(
        out,
        "Standbys  {}",
        if standbys.is_empty() {
            "none seen".to_string()
        } else {
            standbys.join("; ")
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ha_section_names_the_leader_and_the_other_replicas() {
        let now = Utc::now();
        let lease = crate::store::Lease {
            name: "sync".into(),
            holder: "h1-10-aa".into(),
            host: "h1".into(),
            pid: 10,
            epoch: 4,
            acquired_at: now,
            renewed_at: now,
            expires_at: now + chrono::Duration::seconds(10),
        };
        let seen = |holder: &str, host: &str| crate::store::SeenReplica {
            holder: holder.into(),
            host: host.into(),
            pid: 20,
            role: "standby".into(),
            seen_at: now,
        };
        let replicas = [seen("h1-10-aa", "h1"), seen("h2-20-bb", "h2")];
        let ha = ha_status(
            Some(&lease),
            &replicas,
            now,
            std::time::Duration::from_secs(15),
        );
        assert_eq!(
            ha.leader.as_ref().map(|l| (l.epoch, l.expired)),
            Some((4, false))
        );
        assert_eq!(ha.standbys.len(), 1);
        assert_eq!(ha.standbys[0].host, "h2");
        let mut text = String::new();
        render_text(&mut text, &ha);
        assert!(
            text.contains("Leader    h1 pid 10 (epoch 4), lease until"),
            "{text}"
        );
        assert!(text.contains("Standbys  h2 pid 20"), "{text}");
        // Expired: its holder stopped renewing.
        let later = now + chrono::Duration::seconds(11);
        let ha = ha_status(
            Some(&lease),
            &replicas,
            later,
            std::time::Duration::from_secs(15),
        );
        assert!(ha.leader.as_ref().is_some_and(|l| l.expired));
        assert_eq!(
            ha.standbys.len(),
            2,
            "an expired lease's holder is listed as a replica"
        );
    }
}
