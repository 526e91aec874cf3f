//! Parents: the parent accounts of a page's writes (`account.sync_policy`), the I/O half.
//! The pure half (keys, the plan per parent, bodies, tokens) is `accounts`.
//!
//! Per page, at most: one store query of the Account links, one Account query by Name for
//! the parents without a link, one Account create per 200 missing parents (one account per
//! source parent, however many rows name it). The new links are stored in the page's
//! transaction (an Account merged away in the source hands its link to the master: see
//! [`Pass::follow_merges`]). A row whose parent cannot be resolved fails (its write is dropped); a limit
//! pauses the page. With `syncAccount`, the parent pseudo-field (`Account.Name`) of source
//! and target rows holds the parent's canonical value ([`parent_token`]: its A-side id) so
//! that it compares across orgs and with the snapshot.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::accounts::{
    ACCOUNT_ID_FIELD, ACCOUNT_NAME_PATH, ACCOUNT_OBJECT, AMBIGUOUS_ACCOUNT, AccountMode, ParentKey,
    ParentPlan, account_body, is_missing_reference, parent_name, parent_token, plan_parents,
    unlinked_names,
};
use super::errors::Stop;
use super::mapping::lookup;
use super::pass::{COLLECTION_LIMIT, Pass};
use super::plan::{SourceRow, TargetRow};
use super::ports::{FieldIn, OrgPort, QueryKind, RecordError, RecordQuery, StorePort};
use super::rows::{RowOutcome, RowState, Write, side_id};
use super::write::per_record;
use crate::events::record::ParentAccount;
use crate::store::{FailureClass, Link, LinkWrite, Org};

impl<S, T, St> Pass<'_, S, T, St>
where
    S: OrgPort,
    T: OrgPort,
    St: StorePort,
{
    /// For rows of `org` = B: the A-side ids of their parent accounts, from the Account links
    /// (one store query). Empty for A (its parents are their own A-side ids).
    pub(super) async fn a_ids_of_b_parents<'r>(
        &self,
        org: Org,
        parents: impl Iterator<Item = Option<&'r Map<String, Value>>>,
    ) -> Result<HashMap<String, String>, Stop> {
        if org != Org::B {
            return Ok(HashMap::new());
        }
        let mut ids: Vec<String> = parents
            .flatten()
            .filter_map(|p| p.get("Id").and_then(Value::as_str))
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .store
            .links_by_ids(Org::B, ACCOUNT_OBJECT, &ids)
            .await?
            .into_iter()
            .filter(Link::is_live)
            .map(|l| (l.b_id, l.a_id))
            .collect())
    }

    /// With `syncAccount`, sets the source rows' parent pseudo-field to its canonical value
    /// ([`parent_token`]) so that it compares across orgs and with the snapshot.
    pub(super) async fn source_parent_tokens(&self, rows: &mut [SourceRow]) -> Result<(), Stop> {
        if !matches!(self.config.account, AccountMode::SyncByName { .. }) {
            return Ok(());
        }
        let org = self.source_org();
        let links = self
            .a_ids_of_b_parents(org, rows.iter().map(|r| r.parent.as_ref()))
            .await?;
        for row in rows.iter_mut() {
            if let Some(token) = parent_token(org, row.parent.as_ref(), &links) {
                row.values
                    .insert(ACCOUNT_NAME_PATH.to_string(), Value::String(token));
            }
        }
        Ok(())
    }

    /// [`Self::source_parent_tokens`] for the target rows of the lookup (`records[i]` is the
    /// record `rows[i]` was parsed from).
    pub(super) async fn target_parent_tokens(
        &self,
        records: &[Map<String, Value>],
        rows: &mut [TargetRow],
    ) -> Result<(), Stop> {
        if !matches!(self.config.account, AccountMode::SyncByName { .. }) {
            return Ok(());
        }
        let org = self.target_org();
        let parent_of = |r: &Map<String, Value>| match lookup(r, ACCOUNT_OBJECT) {
            Some(Value::Object(p)) => Some(p.clone()),
            _ => None,
        };
        let parents: Vec<Option<Map<String, Value>>> = records.iter().map(parent_of).collect();
        let links = self
            .a_ids_of_b_parents(org, parents.iter().map(Option::as_ref))
            .await?;
        for (row, parent) in rows.iter_mut().zip(&parents) {
            if let Some(token) = parent_token(org, parent.as_ref(), &links) {
                row.values
                    .insert(ACCOUNT_NAME_PATH.to_string(), Value::String(token));
            }
        }
        Ok(())
    }

    /// Rows whose write failed because the parent account a stored link gave them is gone
    /// from the target (deleted, or merged into another account): their failure says so and
    /// is retried, and the links to drop are returned, so that the retry resolves the parent
    /// again (by Name, else by creating it).
    pub(super) fn stale_account_links(&self, rows: &mut [RowState]) -> Vec<(String, String)> {
        let cfg = self.config;
        let tgt = self.target_org().as_str().to_ascii_uppercase();
        let mut stale: Vec<(String, String)> = Vec::new();
        for state in rows.iter_mut() {
            let Some((source_id, target_id)) = &state.account_link else {
                continue;
            };
            let RowOutcome::Failed {
                code,
                message,
                class,
                ..
            } = &mut state.outcome
            else {
                continue;
            };
            if !is_missing_reference(code) {
                continue;
            }
            *message = format!(
                "the parent account {target_id} linked to {source_id} is gone from org {tgt} \
                 ({code}: {message}); the link is dropped and the parent resolved again on retry"
            );
            *class = FailureClass::Transient;
            let pair = (source_id.clone(), target_id.clone());
            if !stale.contains(&pair) {
                tracing::warn!(
                    cycle = cfg.cycle,
                    direction = %cfg.direction,
                    source_id = %source_id,
                    target_id = %target_id,
                    "parent account link is stale (the target account is gone): dropped"
                );
                stale.push(pair);
            }
        }
        stale
    }

    /// Applies `account.sync_policy` to the page's writes: `assign` sets the configured
    /// account on creates; `syncAccount` turns the `Account.Name` pseudo-field into the
    /// `AccountId` of the parent's target account: linked in the store, else found by one
    /// query by Name for the page, else created by one collections call for the page (one
    /// account per source parent, however many rows name it). A row whose parent could not
    /// be resolved fails (its write is dropped); a written row learns its parent's target id
    /// and the Account link it came from. Returns the new account links, and the links of
    /// parents merged away in the source, to drop (their target account now mirrors the
    /// master: see [`Self::follow_merges`]).
    pub(super) async fn resolve_accounts(
        &self,
        rows: &mut [RowState],
    ) -> Result<(Vec<LinkWrite>, Vec<(String, String)>), Stop> {
        let (src, tgt) = (self.source_org(), self.target_org());
        let cfg = self.config;
        let fields = match &cfg.account {
            AccountMode::None => return Ok((Vec::new(), Vec::new())),
            AccountMode::Assign { account_id } => {
                for state in rows.iter_mut() {
                    if let Some(Write::Create(body)) = &mut state.write {
                        body.insert(
                            ACCOUNT_ID_FIELD.to_string(),
                            Value::String(account_id.clone()),
                        );
                    }
                }
                return Ok((Vec::new(), Vec::new()));
            }
            AccountMode::SyncByName { fields } => fields,
        };
        // The parents the writes name, and the parent record of the first write naming each
        // (creates first: its fields are used to create the account).
        let mut parents: BTreeMap<ParentKey, String> = BTreeMap::new();
        let mut carrier: HashMap<ParentKey, Option<Map<String, Value>>> = HashMap::new();
        let creates = rows
            .iter()
            .filter(|s| matches!(s.write, Some(Write::Create(_))));
        let updates = rows
            .iter()
            .filter(|s| matches!(s.write, Some(Write::Update { .. })));
        for state in creates.chain(updates) {
            if let Some((key, name)) = state
                .write
                .as_ref()
                .and_then(|w| parent_of_write(&state.row, w.body()))
            {
                parents.entry(key.clone()).or_insert(name);
                carrier
                    .entry(key)
                    .or_insert_with(|| state.row.parent.clone());
            }
        }

        // 1. The store's account links (no API call).
        let source_ids: Vec<String> = parents
            .keys()
            .filter_map(|k| k.source_id().map(str::to_string))
            .collect();
        let mut links: HashMap<String, String> = if source_ids.is_empty() {
            HashMap::new()
        } else {
            self.store
                .links_by_ids(src, ACCOUNT_OBJECT, &source_ids)
                .await?
                .iter()
                .filter(|l| l.is_live())
                .map(|l| (side_id(l, src).to_string(), side_id(l, tgt).to_string()))
                .collect()
        };

        // 1b. Parents of synced opportunities that have no link: merged away in the source?
        let merged = self.follow_merges(rows, &mut links).await?;
        let mut new_links: Vec<LinkWrite> = merged
            .iter()
            .map(|(_, master, target)| account_link(src, master, target))
            .collect();
        let merged_away: Vec<(String, String)> = merged
            .into_iter()
            .map(|(loser, _, target)| (loser, target))
            .collect();

        // 2. One query by Name for the unlinked parents.
        let names = unlinked_names(&parents, &links);
        let mut by_name: Vec<(String, String)> = Vec::new();
        if !names.is_empty() {
            let query = RecordQuery {
                object: ACCOUNT_OBJECT.to_string(),
                fields: vec!["Name".to_string()],
                kind: QueryKind::Lookup {
                    any_of: vec![vec![FieldIn {
                        field: "Name".to_string(),
                        values: names.iter().cloned().map(Value::String).collect(),
                    }]],
                },
            };
            let records = self.query_all(self.target, tgt, &query).await?;
            by_name = records
                .iter()
                .filter_map(|r| {
                    Some((
                        r.get("Id")?.as_str()?.to_string(),
                        r.get("Name")?.as_str()?.to_string(),
                    ))
                })
                .collect();
        }
        // Target accounts found by name that already mirror another source account.
        let found_ids: Vec<String> = by_name.iter().map(|(id, _)| id.clone()).collect();
        let linked_targets: HashSet<String> = if found_ids.is_empty() {
            HashSet::new()
        } else {
            self.store
                .links_by_ids(tgt, ACCOUNT_OBJECT, &found_ids)
                .await?
                .iter()
                .filter(|l| l.is_live())
                .map(|l| side_id(l, tgt).to_string())
                .collect()
        };

        let mut resolved: HashMap<ParentKey, Result<String, RecordError>> = HashMap::new();
        let mut to_create: Vec<ParentKey> = Vec::new();
        let mut linked: HashMap<ParentKey, (String, String)> = HashMap::new();
        let tgt_name = tgt.as_str().to_ascii_uppercase();
        for (key, plan) in plan_parents(&parents, &links, &by_name, &linked_targets) {
            let name = parents.get(&key).cloned().unwrap_or_default();
            let outcome = match plan {
                ParentPlan::Linked(id) => {
                    if let Some(source_id) = key.source_id() {
                        linked.insert(key.clone(), (source_id.to_string(), id.clone()));
                    }
                    Ok(id)
                }
                ParentPlan::Found(id) => {
                    if let Some(source_id) = key.source_id() {
                        ParentAccount {
                            cycle: cfg.cycle,
                            direction: cfg.direction,
                            account: &name,
                            source_id,
                            target_id: &id,
                            created: false,
                        }
                        .emit(self.metrics);
                        new_links.push(account_link(src, source_id, &id));
                    }
                    Ok(id)
                }
                ParentPlan::Create => {
                    to_create.push(key);
                    continue;
                }
                ParentPlan::Ambiguous(ids) => Err(RecordError::new(
                    AMBIGUOUS_ACCOUNT,
                    format!(
                        "{} accounts named {name:?} in org {tgt_name}: {}; the parent is never \
                         guessed: rename or merge them, or link one by hand",
                        ids.len(),
                        ids.join(", ")
                    ),
                )),
                ParentPlan::Twins { target_id, parents } => Err(RecordError::new(
                    AMBIGUOUS_ACCOUNT,
                    format!(
                        "{parents} accounts of org {} named {name:?} are not yet linked, and \
                         org {tgt_name} has one such account ({target_id}): which one it \
                         mirrors is never guessed: rename one of them",
                        src.as_str().to_ascii_uppercase()
                    ),
                )),
            };
            resolved.insert(key, outcome);
        }

        // 3. One collections call per 200 missing parents.
        for chunk in to_create.chunks(COLLECTION_LIMIT) {
            let bodies: Vec<Map<String, Value>> = chunk
                .iter()
                .map(|key| {
                    let name = parents.get(key).map(String::as_str).unwrap_or_default();
                    let parent = carrier.get(key).and_then(Option::as_ref);
                    account_body(name, parent, fields)
                })
                .collect();
            let result = self.call(self.target.create(ACCOUNT_OBJECT, &bodies)).await;
            if let Some(stop) = result.as_ref().err().and_then(|e| Stop::pause(tgt, e)) {
                return Err(stop);
            }
            // Any other error of the call fails every parent of it.
            let results = per_record(result, chunk.len());
            for (key, outcome) in chunk.iter().zip(results) {
                let name = parents.get(key).cloned().unwrap_or_default();
                let outcome = match outcome {
                    Ok(ok) => {
                        ParentAccount {
                            cycle: cfg.cycle,
                            direction: cfg.direction,
                            account: &name,
                            source_id: key.source_id().unwrap_or(""),
                            target_id: &ok.id,
                            created: true,
                        }
                        .emit(self.metrics);
                        if let Some(source_id) = key.source_id() {
                            new_links.push(account_link(src, source_id, &ok.id));
                        }
                        Ok(ok.id)
                    }
                    Err(e) => Err(RecordError {
                        code: e.code,
                        message: format!("creating the parent account {name:?}: {}", e.message),
                        class: e.class,
                    }),
                };
                resolved.insert(key.clone(), outcome);
            }
        }

        for state in rows.iter_mut() {
            let Some(write) = state.write.as_mut() else {
                continue;
            };
            match apply_parent(&state.row, write.body_mut(), &resolved) {
                Ok(Some(key)) => {
                    if let Some(Ok(account_id)) = resolved.get(&key) {
                        state.account_id = Some(account_id.clone());
                    }
                    state.account_link = linked.get(&key).cloned();
                }
                Ok(None) => {}
                Err(e) => {
                    let target_id = write.target_id().map(str::to_string);
                    state.fail(target_id, e.code, e.message, e.class);
                }
            }
        }
        Ok((new_links, merged_away))
    }

    /// An Account merged away in the source (deleted, with `MasterRecordId` = the master)
    /// moves its opportunities to the master, which may have no link yet: the loser's account
    /// link follows the master (the target account is kept, now mirroring the master; no
    /// account is created or looked up by Name). Only parents of opportunities already
    /// synced, with no link of their own, are asked about: one `queryAll` of the source's
    /// Accounts merged into them (`MasterRecordId IN (...)`), so a page of new records, or a
    /// quiet one, costs nothing more. Returns (loser, master, target account) for each link
    /// that follows its master, and records the master's link in `links`.
    async fn follow_merges(
        &self,
        rows: &[RowState],
        links: &mut HashMap<String, String>,
    ) -> Result<Vec<(String, String, String)>, Stop> {
        let (src, tgt) = (self.source_org(), self.target_org());
        let cfg = self.config;
        let mut masters: Vec<String> = rows
            .iter()
            .filter(|s| s.link.is_some())
            .filter_map(|s| match &s.write {
                Some(w @ Write::Update { .. }) => parent_of_write(&s.row, w.body()),
                _ => None,
            })
            .filter_map(|(key, _)| key.source_id().map(str::to_string))
            .filter(|id| !links.contains_key(id))
            .collect();
        masters.sort();
        masters.dedup();
        if masters.is_empty() {
            return Ok(Vec::new());
        }
        let query = RecordQuery {
            object: ACCOUNT_OBJECT.to_string(),
            fields: vec!["MasterRecordId".to_string()],
            kind: QueryKind::MergedInto(masters),
        };
        let losers: Vec<(String, String)> = self
            .query_all(self.source, src, &query)
            .await?
            .iter()
            .filter_map(|r| {
                Some((
                    r.get("Id")?.as_str()?.to_string(),
                    r.get("MasterRecordId")?.as_str()?.to_string(),
                ))
            })
            .collect();
        if losers.is_empty() {
            return Ok(Vec::new());
        }
        let loser_ids: Vec<String> = losers.iter().map(|(id, _)| id.clone()).collect();
        let loser_links: HashMap<String, String> = self
            .store
            .links_by_ids(src, ACCOUNT_OBJECT, &loser_ids)
            .await?
            .iter()
            .filter(|l| l.is_live())
            .map(|l| (side_id(l, src).to_string(), side_id(l, tgt).to_string()))
            .collect();
        let mut out = Vec::new();
        for (loser, master) in losers {
            if links.contains_key(&master) {
                continue;
            }
            let Some(target) = loser_links.get(&loser) else {
                continue;
            };
            tracing::info!(
                cycle = cfg.cycle,
                direction = %cfg.direction,
                source_id = %loser,
                master_id = %master,
                target_id = %target,
                "parent account merged away in the source: its account link follows the master"
            );
            links.insert(master.clone(), target.clone());
            out.push((loser, master, target.clone()));
        }
        Ok(out)
    }
}

/// The parent a write names (its `Account.Name` token) and the parent's name.
fn parent_of_write(row: &SourceRow, body: &Map<String, Value>) -> Option<(ParentKey, String)> {
    let Some(Value::String(token)) = body.get(ACCOUNT_NAME_PATH) else {
        return None;
    };
    let parent = row.parent.as_ref();
    let name = parent_name(parent).unwrap_or(token);
    Some((ParentKey::of(parent, name), name.to_string()))
}

/// Replaces a write's parent pseudo-field by the resolved `AccountId` (`null` when the source
/// has no parent); the parent's key when it had one, or the error that fails the row.
fn apply_parent(
    row: &SourceRow,
    body: &mut Map<String, Value>,
    resolved: &HashMap<ParentKey, Result<String, RecordError>>,
) -> Result<Option<ParentKey>, RecordError> {
    let key = parent_of_write(row, body).map(|(key, _)| key);
    match body.remove(ACCOUNT_NAME_PATH) {
        None => Ok(None),
        Some(Value::String(name)) => match key.as_ref().and_then(|key| resolved.get(key)) {
            Some(Ok(id)) => {
                body.insert(ACCOUNT_ID_FIELD.to_string(), Value::String(id.clone()));
                Ok(key)
            }
            Some(Err(e)) => Err(e.clone()),
            None => Err(RecordError::new(
                "ACCOUNT_UNRESOLVED",
                format!("the parent account {name:?} could not be resolved"),
            )),
        },
        // No parent in the source: clear it in the target.
        Some(_) => {
            body.insert(ACCOUNT_ID_FIELD.to_string(), Value::Null);
            Ok(None)
        }
    }
}

/// The link of a source parent account to its target account (no modstamps, no snapshot:
/// accounts are created, never updated, so nothing of theirs is compared).
fn account_link(source: Org, source_id: &str, target_id: &str) -> LinkWrite {
    let (a_id, b_id) = match source {
        Org::A => (source_id.to_string(), target_id.to_string()),
        Org::B => (target_id.to_string(), source_id.to_string()),
    };
    LinkWrite {
        object: ACCOUNT_OBJECT.to_string(),
        a_id,
        b_id,
        a_modstamp: None,
        b_modstamp: None,
        snapshot: Map::new(),
    }
}
