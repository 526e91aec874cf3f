//! Query execution: the rows a SOQL plan selects, through the Id, value-index and
//! SystemModstamp-index fast paths or a scan and sort, then OFFSET and LIMIT.

use std::ops::Bound;

use super::table::indexed_fields;
use super::{OrgDb, RowRef};
use crate::schema::ObjectDef;
use crate::soql::ast::CmpOp;
use crate::soql::eval::{compare_rows, matches};
use crate::soql::plan::{Filter, Operand, Plan};
use crate::value::Value;

impl OrgDb {
    /// The index the fast paths of [`OrgDb::execute`] would lead with, by field name: `Id`,
    /// a value-indexed field, or `SystemModstamp` (a bounded or ordered walk of its index);
    /// `None` for a table scan.
    pub(super) fn leading_index(&self, plan: &Plan, include_deleted: bool) -> Option<String> {
        let obj = &self.schema.objects[plan.object];
        let conjuncts: Vec<&Filter> = match &plan.filter {
            Some(Filter::And(terms)) => terms.iter().collect(),
            Some(f) => vec![f],
            None => Vec::new(),
        };
        let field = if id_candidates(&conjuncts, obj.system.id).is_some() {
            Some(obj.system.id)
        } else if let Some((field, _)) =
            indexed_candidates(&conjuncts, obj).filter(|_| !include_deleted)
        {
            Some(field)
        } else {
            let bounded = plan
                .filter
                .as_ref()
                .and_then(|f| modstamp_bounds(f, obj.system.system_modstamp))
                .is_some();
            (bounded || index_order(plan, obj).is_some()).then_some(obj.system.system_modstamp)
        };
        field.map(|f| obj.fields[f].name.clone())
    }

    /// The slots of the rows a plan selects, in order, after OFFSET and LIMIT.
    pub(super) fn execute(&self, plan: &Plan, include_deleted: bool) -> Vec<u32> {
        let oi = plan.object;
        let table = &self.tables[oi];
        let obj = &self.schema.objects[oi];
        let keep = |slot: u32| -> bool {
            table.visible(slot, include_deleted)
                && plan.filter.as_ref().is_none_or(|f| {
                    matches(
                        self,
                        RowRef {
                            object: oi as u32,
                            slot,
                        },
                        f,
                    )
                })
        };
        let conjuncts: Vec<&Filter> = match &plan.filter {
            Some(Filter::And(terms)) => terms.iter().collect(),
            Some(f) => vec![f],
            None => Vec::new(),
        };
        // Id fast path: `Id = '...'` or `Id IN (...)` at the top level.
        if let Some(ids) = id_candidates(&conjuncts, obj.system.id) {
            let mut slots: Vec<u32> = ids
                .iter()
                .filter_map(|id| self.locations.get(id))
                .filter(|(o, _)| *o as usize == oi)
                .map(|(_, s)| *s)
                .collect();
            slots.sort_unstable();
            slots.dedup();
            slots.retain(|s| keep(*s));
            return self.finish(plan, slots);
        }
        // Value-index fast path (`Name IN (...)`, an external id, a lookup): live rows only,
        // so not for queryAll.
        if !include_deleted && let Some((field, values)) = indexed_candidates(&conjuncts, obj) {
            let mut slots: Vec<u32> = values.iter().flat_map(|v| table.lookup(field, v)).collect();
            slots.sort_unstable();
            slots.dedup();
            slots.retain(|s| keep(*s));
            return self.finish(plan, slots);
        }
        let bounds = plan
            .filter
            .as_ref()
            .and_then(|f| modstamp_bounds(f, obj.system.system_modstamp));
        let range = match bounds {
            Some((lo, hi)) if lo >= hi => return Vec::new(),
            Some((lo, hi)) => (
                Bound::Included((lo, 0u32)),
                if hi == i64::MAX {
                    Bound::Unbounded
                } else {
                    Bound::Excluded((hi, 0u32))
                },
            ),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        if let Some(descending) = index_order(plan, obj) {
            // Walk the (SystemModstamp, Id) index and stop once OFFSET + LIMIT rows matched.
            let want = plan.limit.map(|l| plan.offset.saturating_add(l));
            let mut out = Vec::new();
            let mut visit = |slot: u32| {
                if keep(slot) {
                    out.push(slot);
                }
                want.is_some_and(|w| out.len() >= w)
            };
            let iter = table.by_modstamp.range(range);
            if descending {
                for (_, slot) in iter.rev() {
                    if visit(*slot) {
                        break;
                    }
                }
            } else {
                for (_, slot) in iter {
                    if visit(*slot) {
                        break;
                    }
                }
            }
            return page(out, plan.offset, plan.limit);
        }
        let mut slots: Vec<u32> = if bounds.is_some() {
            let mut s: Vec<u32> = table.by_modstamp.range(range).map(|(_, s)| *s).collect();
            s.sort_unstable();
            s
        } else {
            (0..table.records.len() as u32).collect()
        };
        slots.retain(|s| keep(*s));
        self.finish(plan, slots)
    }

    /// The reference the indexed paths are tested against: every row, filtered and sorted.
    #[cfg(test)]
    fn execute_by_scan(&self, plan: &Plan, include_deleted: bool) -> Vec<u32> {
        let oi = plan.object;
        let slots = (0..self.tables[oi].records.len() as u32)
            .filter(|s| self.tables[oi].visible(*s, include_deleted))
            .filter(|s| {
                plan.filter.as_ref().is_none_or(|f| {
                    matches(
                        self,
                        RowRef {
                            object: oi as u32,
                            slot: *s,
                        },
                        f,
                    )
                })
            })
            .collect();
        self.finish(plan, slots)
    }

    /// Sorts (stably, so ties stay in Id order) and applies OFFSET and LIMIT.
    fn finish(&self, plan: &Plan, mut slots: Vec<u32>) -> Vec<u32> {
        if plan.order.is_empty() {
            return page(slots, plan.offset, plan.limit);
        }
        let object = plan.object as u32;
        // Ties fall back to slot order (= Id order), which makes the order total: the partial
        // sort below then gives the same rows as a full stable sort.
        let cmp = |a: &u32, b: &u32| {
            compare_rows(
                self,
                RowRef { object, slot: *a },
                RowRef { object, slot: *b },
                &plan.order,
            )
            .then(a.cmp(b))
        };
        match plan.limit.map(|l| plan.offset.saturating_add(l)) {
            Some(want) if want < slots.len() / 2 => {
                // LIMIT: select the first OFFSET + LIMIT rows in O(n), then sort only those.
                if want == 0 {
                    return Vec::new();
                }
                slots.select_nth_unstable_by(want - 1, cmp);
                slots.truncate(want);
                slots.sort_unstable_by(cmp);
            }
            _ => slots.sort_unstable_by(cmp),
        }
        page(slots, plan.offset, plan.limit)
    }
}

/// Ids named by a top-level `Id = '...'` or `Id IN (...)` conjunct.
fn id_candidates(conjuncts: &[&Filter], id_field: usize) -> Option<Vec<String>> {
    let own = |p: &crate::soql::plan::FieldPath| p.hops.is_empty() && p.field == id_field;
    for c in conjuncts {
        match c {
            Filter::Compare {
                path,
                op: CmpOp::Eq,
                operand,
            } if own(path) => {
                return Some(match operand {
                    Operand::Value(Value::Str(id)) => vec![id.clone()],
                    _ => Vec::new(),
                });
            }
            Filter::In {
                path,
                negated: false,
                operands,
            } if own(path) => {
                return Some(
                    operands
                        .iter()
                        .filter_map(|o| match o {
                            Operand::Value(Value::Str(id)) => Some(id.clone()),
                            _ => None,
                        })
                        .collect(),
                );
            }
            _ => {}
        }
    }
    None
}

/// The SystemModstamp window `[lo, hi)` in epoch milliseconds outside which no row can
/// satisfy `filter`, or `None` when the filter does not bound SystemModstamp. AND intersects,
/// OR takes the hull (a superset is safe: the full filter still runs on every candidate).
fn modstamp_bounds(filter: &Filter, field: usize) -> Option<(i64, i64)> {
    match filter {
        Filter::And(terms) => terms
            .iter()
            .filter_map(|t| modstamp_bounds(t, field))
            .reduce(|(a, b), (c, d)| (a.max(c), b.min(d))),
        Filter::Or(terms) => {
            let mut hull: Option<(i64, i64)> = None;
            for t in terms {
                let (l, h) = modstamp_bounds(t, field)?;
                hull = Some(match hull {
                    None => (l, h),
                    Some((a, b)) => (a.min(l), b.max(h)),
                });
            }
            hull
        }
        Filter::Compare { path, op, operand } if path.hops.is_empty() && path.field == field => {
            let ms = |v: &Value| v.as_datetime().map(|d| d.timestamp_millis());
            // The literal (or relative date) covers [a, b).
            let (a, b) = match operand {
                Operand::Value(v) => {
                    let m = ms(v)?;
                    (m, m.saturating_add(1))
                }
                Operand::Range(l, h) => (ms(l)?, ms(h)?),
                Operand::Null => return None,
            };
            match op {
                CmpOp::Eq => Some((a, b)),
                CmpOp::Gt => Some((b, i64::MAX)),
                CmpOp::Ge => Some((a, i64::MAX)),
                CmpOp::Lt => Some((i64::MIN, a)),
                CmpOp::Le => Some((i64::MIN, b)),
                CmpOp::Ne => None,
            }
        }
        _ => None,
    }
}

/// Values named by a top-level `F = 'x'` or `F IN (...)` conjunct on a text or id field that
/// has a value index, as (field, values).
fn indexed_candidates<'a>(
    conjuncts: &[&'a Filter],
    obj: &ObjectDef,
) -> Option<(usize, Vec<&'a Value>)> {
    let usable = |p: &crate::soql::plan::FieldPath| {
        p.hops.is_empty()
            && (p.field_type.is_text() || p.field_type.is_id())
            && indexed_fields(obj).any(|f| f == p.field)
    };
    for c in conjuncts {
        match c {
            Filter::Compare {
                path,
                op: CmpOp::Eq,
                operand: Operand::Value(v),
            } if usable(path) => {
                return Some((path.field, vec![v]));
            }
            Filter::In {
                path,
                negated: false,
                operands,
            } if usable(path) => {
                let values: Option<Vec<&Value>> = operands
                    .iter()
                    .map(|o| match o {
                        Operand::Value(v) => Some(v),
                        _ => None,
                    })
                    .collect();
                if let Some(values) = values {
                    return Some((path.field, values));
                }
            }
            _ => {}
        }
    }
    None
}

/// `Some(descending)` when ORDER BY is SystemModstamp [, Id] in one direction: the order of
/// the (SystemModstamp, slot) index. `SystemModstamp DESC` alone is left to the sort, whose
/// ties stay in ascending Id order (walking the index backwards would reverse them).
fn index_order(plan: &Plan, obj: &ObjectDef) -> Option<bool> {
    let own =
        |k: &crate::soql::plan::OrderKey, f: usize| k.path.hops.is_empty() && k.path.field == f;
    match plan.order.as_slice() {
        [a] if own(a, obj.system.system_modstamp) && !a.descending => Some(false),
        [a, b]
            if own(a, obj.system.system_modstamp)
                && own(b, obj.system.id)
                && a.descending == b.descending =>
        {
            Some(a.descending)
        }
        _ => None,
    }
}

fn page(mut rows: Vec<u32>, offset: usize, limit: Option<usize>) -> Vec<u32> {
    if offset > 0 {
        rows.drain(..offset.min(rows.len()));
    }
    if let Some(l) = limit {
        rows.truncate(l);
    }
    rows
}

#[cfg(test)]
mod tests {
    use crate::db::test_support::*;
    use crate::db::*;
    use serde_json::{Value as Json, json};

    #[test]
    fn id_fast_path_accepts_15_and_18_character_ids() {
        let mut f = Fixture::new();
        let a = f.create_ok("Opportunity", opp("a"), "2024-03-10T09:00:00Z");
        let b = f.create_ok("Opportunity", opp("b"), "2024-03-10T09:00:00Z");
        f.create_ok("Opportunity", opp("c"), "2024-03-10T09:00:00Z");
        let rows = f.q(&format!(
            "SELECT Name FROM Opportunity WHERE Id IN ('{}', '{b}', '{}') ORDER BY Name DESC",
            &a[..15],
            f.user
        ));
        assert_eq!(
            rows.iter().map(|r| r["Name"].clone()).collect::<Vec<_>>(),
            [json!("b"), json!("a")]
        );
        assert_eq!(
            f.q(&format!(
                "SELECT Name FROM Opportunity WHERE Id = '{a}' AND Name = 'A'"
            ))
            .len(),
            1
        );
        assert_eq!(
            f.q(&format!(
                "SELECT Name FROM Opportunity WHERE Id = '{a}' AND Name = 'b'"
            ))
            .len(),
            0
        );
        assert_eq!(
            f.q(&format!("SELECT Name FROM Opportunity WHERE Id != '{a}'"))
                .len(),
            2
        );
    }

    /// The index path and the general scan-and-sort path must agree.
    #[test]
    fn modstamp_index_agrees_with_full_sort() {
        let mut f = Fixture::new();
        for call in 0..20 {
            let ops = (0..7)
                .map(|i| DmlOp::Create {
                    object: "Opportunity".into(),
                    fields: body(opp(&format!("c{call}-{i}"))),
                })
                .collect();
            f.apply(ops, false, &format!("2024-03-10T10:{:02}:00Z", call % 10));
        }
        // Updates move records to later stamps.
        let ids: Vec<String> = f
            .q("SELECT Id FROM Opportunity")
            .iter()
            .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
            .collect();
        let ops = ids
            .iter()
            .step_by(5)
            .map(|id| DmlOp::Update {
                object: None,
                id: id.clone(),
                fields: body(json!({"Amount": 1})),
            })
            .collect();
        f.apply(ops, false, "2024-03-10T10:30:00Z");
        let ops = ids
            .iter()
            .skip(1)
            .step_by(9)
            .map(|id| DmlOp::Delete { id: id.clone() })
            .collect();
        f.apply(ops, false, "2024-03-10T10:31:00Z");
        let tie = format!(
            "(SystemModstamp = 2024-03-10T10:05:00Z AND Id > '{}') OR SystemModstamp > 2024-03-10T10:05:00Z",
            ids[40]
        );
        let names = |rows: Vec<Json>| {
            rows.into_iter()
                .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        for (cond, tail) in [
            ("SystemModstamp >= 2024-03-10T10:03:00Z", ""),
            (
                "SystemModstamp > 2024-03-10T10:03:00Z AND SystemModstamp <= 2024-03-10T10:30:00Z",
                " LIMIT 11",
            ),
            (
                "SystemModstamp >= 2024-03-10T10:03:00Z AND LastModifiedById != '005000000000000AAA'",
                " LIMIT 5 OFFSET 3",
            ),
            ("SystemModstamp = 2024-03-10T10:05:00Z", ""),
            (
                "SystemModstamp < 2024-03-10T10:05:00Z AND SystemModstamp > 2024-03-10T10:06:00Z",
                "",
            ),
            ("SystemModstamp = TODAY", ""),
            ("Name LIKE 'c1%'", " LIMIT 4"),
            (tie.as_str(), " LIMIT 9"),
            (
                "Name IN ('c1-1', 'C2-2', 'c3-3', 'c19-6') AND SystemModstamp > 2024-03-10T10:01:00Z",
                "",
            ),
            ("(Name = 'c4-4' OR Name = 'c5-5')", ""),
            ("NOT (SystemModstamp < 2024-03-10T10:08:00Z)", ""),
        ] {
            for dir in ["ASC", "DESC"] {
                let fast = format!(
                    "SELECT Id FROM Opportunity WHERE {cond} ORDER BY SystemModstamp {dir}, Id {dir}{tail}"
                );
                let slow = format!(
                    "SELECT Id FROM Opportunity WHERE {cond} ORDER BY SystemModstamp {dir}, Id {dir}, Name{tail}"
                );
                assert_eq!(names(f.q(&fast)), names(f.q(&slow)), "{fast}");
                for soql in [&fast, &slow] {
                    let now = t("2024-03-10T12:00:00Z");
                    let plan = crate::soql::plan(
                        &crate::soql::parse(soql).expect("parse"),
                        &f.db.schema,
                        now,
                    )
                    .expect("plan");
                    for all in [false, true] {
                        assert_eq!(
                            f.db.execute(&plan, all),
                            f.db.execute_by_scan(&plan, all),
                            "{soql} all={all}"
                        );
                    }
                }
                let fast_all =
                    f.db.query(&fast, true, "62.0", t("2024-03-10T12:00:00Z"))
                        .expect("all");
                let slow_all =
                    f.db.query(&slow, true, "62.0", t("2024-03-10T12:00:00Z"))
                        .expect("all");
                assert_eq!(names(fast_all), names(slow_all), "queryAll {fast}");
            }
        }
        // Ties are ordered by Id, which is creation order.
        let rows = names(f.q("SELECT Id FROM Opportunity WHERE SystemModstamp = 2024-03-10T10:00:00Z ORDER BY SystemModstamp, Id"));
        let mut sorted = rows.clone();
        sorted.sort();
        assert_eq!(rows, sorted);
        assert!(!rows.is_empty());
    }

    /// Random queries over random data: every fast path must return what a plain scan returns.
    #[test]
    fn random_queries_agree_with_a_plain_scan() {
        let mut f = Fixture::new();
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        let mut rand = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n.max(1)
        };
        let accounts: Vec<String> = (0..4)
            .map(|i| {
                f.create_ok(
                    "Account",
                    json!({"Name": format!("Acc{i}")}),
                    "2024-03-10T09:00:00Z",
                )
            })
            .collect();
        for call in 0..30 {
            let ops = (0..1 + rand(12))
                .map(|_| {
                    let mut b = opp(&format!("N{}", rand(40)));
                    if rand(3) > 0 {
                        b["Amount"] = json!(rand(10_000));
                    }
                    if rand(2) == 0 {
                        b["AccountId"] = json!(accounts[rand(4) as usize]);
                    }
                    DmlOp::Create {
                        object: "Opportunity".into(),
                        fields: body(b),
                    }
                })
                .collect();
            f.apply(
                ops,
                false,
                &format!(
                    "2024-03-10T10:{:02}:{:02}.{:03}Z",
                    rand(20),
                    rand(60),
                    rand(3) * 250
                ),
            );
            let _ = call;
        }
        let ids: Vec<String> = f
            .q_all("SELECT Id FROM Opportunity")
            .iter()
            .filter_map(|r| r["Id"].as_str().map(str::to_string))
            .collect();
        for _ in 0..40 {
            let id = ids[rand(ids.len() as u64) as usize].clone();
            let op = if rand(4) == 0 {
                DmlOp::Delete { id }
            } else {
                DmlOp::Update {
                    object: None,
                    id,
                    fields: body(json!({"Amount": rand(10_000)})),
                }
            };
            f.apply(
                vec![op],
                false,
                &format!("2024-03-10T10:{:02}:00Z", 20 + rand(20)),
            );
        }
        let stamp =
            |r: &mut dyn FnMut(u64) -> u64| format!("2024-03-10T10:{:02}:{:02}Z", r(45), r(60));
        let ops = ["=", "!=", "<", "<=", ">", ">="];
        for _ in 0..400 {
            let mut terms: Vec<String> = Vec::new();
            for _ in 0..rand(4) {
                let term = match rand(8) {
                    0 | 1 => format!(
                        "SystemModstamp {} {}",
                        ops[rand(6) as usize],
                        stamp(&mut rand)
                    ),
                    2 => format!("Amount {} {}", ops[rand(6) as usize], rand(10_000)),
                    3 => format!("Name IN ('N{}', 'n{}')", rand(40), rand(40)),
                    4 => format!(
                        "Id {} '{}'",
                        ops[rand(6) as usize],
                        ids[rand(ids.len() as u64) as usize]
                    ),
                    5 => format!(
                        "Id IN ('{}', '{}')",
                        ids[rand(ids.len() as u64) as usize],
                        &ids[rand(ids.len() as u64) as usize][..15]
                    ),
                    6 => format!("AccountId = '{}'", accounts[rand(4) as usize]),
                    _ => format!(
                        "(SystemModstamp = {} AND Id > '{}') OR SystemModstamp > {}",
                        stamp(&mut rand),
                        ids[rand(ids.len() as u64) as usize],
                        stamp(&mut rand)
                    ),
                };
                terms.push(if term.contains(" OR ") {
                    format!("({term})")
                } else {
                    term
                });
            }
            let dir = if rand(2) == 0 { "ASC" } else { "DESC" };
            let order = match rand(5) {
                0 => String::new(),
                1 => format!(" ORDER BY SystemModstamp {dir}"),
                2 => format!(" ORDER BY SystemModstamp {dir}, Id {dir}"),
                3 => format!(" ORDER BY Amount {dir} NULLS LAST, Name"),
                _ => format!(" ORDER BY Account.Name {dir}, SystemModstamp, Id"),
            };
            let mut soql = String::from("SELECT Id FROM Opportunity");
            if !terms.is_empty() {
                soql += &format!(" WHERE {}", terms.join(" AND "));
            }
            soql += &order;
            if rand(2) == 0 {
                soql += &format!(" LIMIT {}", rand(30));
            }
            if rand(3) == 0 {
                soql += &format!(" OFFSET {}", rand(30));
            }
            let plan = crate::soql::plan(
                &crate::soql::parse(&soql).expect("parse"),
                &f.db.schema,
                t("2024-03-10T12:00:00Z"),
            )
            .unwrap_or_else(|e| panic!("{soql}: {e:?}"));
            for all in [false, true] {
                let fast = f.db.execute(&plan, all);
                let scan = f.db.execute_by_scan(&plan, all);
                if order.is_empty() {
                    // No ORDER BY: any order is right, the set must match.
                    if plan.limit.is_none() && plan.offset == 0 {
                        let (mut a, mut b) = (fast.clone(), scan.clone());
                        a.sort_unstable();
                        b.sort_unstable();
                        assert_eq!(a, b, "{soql} all={all}");
                    } else {
                        assert_eq!(fast.len(), scan.len(), "{soql} all={all}");
                    }
                } else {
                    assert_eq!(fast, scan, "{soql} all={all}");
                }
            }
        }
    }
}
