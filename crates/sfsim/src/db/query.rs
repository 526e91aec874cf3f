//! Queries as the REST API answers them: a SOQL query's cursor (its rows kept for paging),
//! rendering a page of rows in the REST shape, and retrieving one record by id.

use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};

use super::{OrgDb, RowRef};
use crate::error::ApiError;
use crate::ids;
use crate::soql::ast::ForClause;
use crate::soql::eval::render;
use crate::soql::plan::Plan;
use crate::value::Value;

/// The matching rows of a query, to be rendered page by page (`nextRecordsUrl`). Rendering
/// reads the records' current values; a cursor of an org that was reset since is refused.
#[derive(Debug, Clone)]
pub struct QueryCursor {
    epoch: u64,
    plan: Arc<Plan>,
    rows: Vec<u32>,
    total_size: usize,
}

impl QueryCursor {
    /// `totalSize` of the reply: the number of rows (or the count of `SELECT COUNT()`).
    pub fn total_size(&self) -> usize {
        self.total_size
    }
    /// Number of rows to render (0 for `SELECT COUNT()`).
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Whether this is a `SELECT COUNT()` query.
    pub fn is_count(&self) -> bool {
        self.plan.count_only
    }
    /// The query's `FOR VIEW` / `FOR REFERENCE` clause.
    pub fn for_clause(&self) -> Option<ForClause> {
        self.plan.for_clause
    }
}

impl OrgDb {
    /// Runs a SOQL query. `include_deleted` for queryAll. Records come back in the REST
    /// shape (`attributes` with `type` and `url` under `/services/data/v{api_version}/`,
    /// parent relationships nested or `null`, datetimes as `2013-05-20T20:49:32.000+0000`).
    /// For `SELECT COUNT()` the list is empty: use [`OrgDb::query_cursor`] for `totalSize`.
    pub fn query(
        &self,
        soql: &str,
        include_deleted: bool,
        api_version: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Json>, ApiError> {
        let cursor = self.query_cursor(soql, include_deleted, now)?;
        self.render_rows(&cursor, 0..cursor.len(), api_version)
    }

    /// Runs a SOQL query and keeps the matching rows for paging: render them a batch at a
    /// time with [`OrgDb::render_rows`]. Cheap even for 100k rows (no JSON is built here).
    pub fn query_cursor(
        &self,
        soql: &str,
        include_deleted: bool,
        now: DateTime<Utc>,
    ) -> Result<QueryCursor, ApiError> {
        let parsed = crate::soql::parse(soql)?;
        let plan = crate::soql::plan(&parsed, &self.schema, now)?;
        let mut rows = self.execute(&plan, include_deleted);
        let total_size = rows.len();
        if plan.count_only {
            rows.clear();
        }
        Ok(QueryCursor {
            epoch: self.epoch,
            plan: Arc::new(plan),
            rows,
            total_size,
        })
    }

    /// Renders the rows `range` of a cursor in the REST shape (the range is clipped to the
    /// cursor). A cursor from before a reset gets `INVALID_QUERY_LOCATOR`.
    pub fn render_rows(
        &self,
        cursor: &QueryCursor,
        range: Range<usize>,
        api_version: &str,
    ) -> Result<Vec<Json>, ApiError> {
        if cursor.epoch != self.epoch {
            return Err(ApiError::new(
                400,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            ));
        }
        let end = range.end.min(cursor.rows.len());
        let start = range.start.min(end);
        let object = cursor.plan.object as u32;
        // Sized up front: growing a large vector after freeing the previous page's many small
        // values made glibc consolidate its free lists on every page.
        let mut out = Vec::with_capacity(end - start);
        out.extend(
            cursor.rows[start..end]
                .iter()
                .filter(|slot| self.tables[object as usize].records.len() > **slot as usize)
                .map(|slot| {
                    render(
                        self,
                        &self.schema,
                        &cursor.plan,
                        RowRef {
                            object,
                            slot: *slot,
                        },
                        api_version,
                    )
                }),
        );
        Ok(out)
    }

    /// `query?explain=`: the plans Salesforce's Query Plan tool would show, best first — an
    /// `Index` plan when a fast path applies (its field, the rows it yields), then the
    /// `TableScan` — without running the query for the caller. SOQL errors are the query's.
    pub fn explain(&self, soql: &str, now: DateTime<Utc>) -> Result<Json, ApiError> {
        let parsed = crate::soql::parse(soql)?;
        let plan = crate::soql::plan(&parsed, &self.schema, now)?;
        let obj = &self.schema.objects[plan.object];
        let live = self.tables[plan.object].live;
        let rows = self.execute(&plan, false).len();
        let scan_cost = if live == 0 { 0.0 } else { 1.0 };
        let scan = json!({
            "cardinality": rows,
            "fields": [],
            "leadingOperationType": "TableScan",
            "notes": [],
            "relativeCost": scan_cost,
            "sobjectCardinality": live,
            "sobjectType": obj.name,
        });
        let mut plans = Vec::new();
        if let Some(field) = self.leading_index(&plan, false) {
            let cost = if live == 0 {
                0.0
            } else {
                rows as f64 / live as f64
            };
            plans.push(json!({
                "cardinality": rows,
                "fields": [field],
                "leadingOperationType": "Index",
                "notes": [],
                "relativeCost": cost,
                "sobjectCardinality": live,
                "sobjectType": obj.name,
            }));
        }
        plans.push(scan);
        Ok(json!({ "plans": plans }))
    }

    /// The ids of a cursor's first `limit` rows (deleted rows left out).
    pub fn row_ids(&self, cursor: &QueryCursor, limit: usize) -> Vec<String> {
        let object = cursor.plan.object;
        let (Some(table), Some(obj)) = (self.tables.get(object), self.schema.objects.get(object))
        else {
            return Vec::new();
        };
        cursor
            .rows
            .iter()
            .filter_map(|slot| table.records.get(*slot as usize))
            .filter(|rec| !rec.deleted)
            .filter_map(|rec| rec.values.get(obj.system.id).and_then(Value::as_str))
            .take(limit)
            .map(str::to_string)
            .collect()
    }

    /// GET sobjects/{object}/{id}[?fields=a,b]: 404 NOT_FOUND when absent or deleted.
    pub fn retrieve(
        &self,
        object: &str,
        id: &str,
        fields: Option<&[String]>,
        api_version: &str,
    ) -> Result<Json, ApiError> {
        let oi = self
            .schema
            .object_index(object)
            .ok_or_else(ApiError::not_found)?;
        let id18 = ids::to_18(id).map_err(|_| ApiError::not_found())?;
        let (o, slot) = *self.locations.get(&id18).ok_or_else(ApiError::not_found)?;
        let rec = &self.tables[o as usize].records[slot as usize];
        if o as usize != oi || rec.deleted {
            return Err(ApiError::not_found());
        }
        let obj = &self.schema.objects[oi];
        let positions: Vec<usize> = match fields {
            None => (0..obj.fields.len()).collect(),
            Some(list) => list
                .iter()
                .map(|f| f.trim())
                .filter(|f| !f.is_empty())
                .map(|f| {
                    obj.field_index(f).ok_or_else(|| {
                        ApiError::invalid_field(format!(
                            "No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                            obj.name
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut m = Map::new();
        m.insert(
            "attributes".into(),
            crate::soql::eval::attributes(&obj.name, &id18, api_version),
        );
        for fi in positions {
            m.insert(
                obj.fields[fi].name.clone(),
                rec.values.get(fi).unwrap_or(&Value::Null).to_json(),
            );
        }
        Ok(Json::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_support::*;
    use crate::db::*;
    use serde_json::json;

    #[test]
    fn queries_render_relationships_and_count() {
        let mut f = Fixture::new();
        let acc = f.create_ok(
            "Account",
            json!({"Name": "Acme", "NumberOfEmployees": 12}),
            "2024-03-10T09:00:00Z",
        );
        f.create_ok("Opportunity", json!({"Name": "with", "StageName": "Prospecting", "CloseDate": "2024-01-01", "AccountId": acc, "Amount": 6000}), "2024-03-10T09:00:00Z");
        f.create_ok("Opportunity", json!({"Name": "without", "StageName": "Prospecting", "CloseDate": "2024-01-01", "Amount": "100.5"}), "2024-03-10T09:00:00Z");
        let rows = f.q("SELECT Name, Amount, Account.Name, Account.NumberOfEmployees, CreatedBy.Username, Owner.Username FROM Opportunity ORDER BY Name");
        assert_eq!(rows[0]["Owner"]["Username"], "integration@a.sim");
        assert_eq!(rows[0]["Account"]["Name"], "Acme");
        assert_eq!(rows[0]["Account"]["NumberOfEmployees"], 12);
        assert_eq!(rows[0]["Account"]["attributes"]["type"], "Account");
        assert_eq!(rows[0]["Amount"], 6000.0);
        assert_eq!(rows[0]["CreatedBy"]["Username"], "integration@a.sim");
        assert_eq!(rows[1]["Account"], Json::Null);
        assert_eq!(rows[1]["Amount"], 100.5);
        assert_eq!(
            f.q("SELECT Name FROM Opportunity WHERE Amount > 5000 AND Account.Name LIKE 'ac%'")
                .len(),
            1
        );
        let c =
            f.db.query_cursor(
                "SELECT COUNT() FROM Opportunity WHERE Amount > 50",
                false,
                t("2024-03-10T12:00:00Z"),
            )
            .expect("count");
        assert!(c.is_count() && c.is_empty());
        assert_eq!(c.total_size(), 2);
        assert_eq!(
            f.q("SELECT Name FROM Opportunity ORDER BY Name LIMIT 1 OFFSET 1")[0]["Name"],
            "without"
        );
        assert_eq!(
            f.q("SELECT Name FROM Opportunity WHERE CreatedDate = TODAY")
                .len(),
            2
        );
        assert_eq!(
            f.q("SELECT Name FROM Opportunity WHERE CreatedDate = YESTERDAY")
                .len(),
            0
        );
        assert_eq!(
            f.q_err("SELECT Foo FROM Opportunity").error_code,
            "INVALID_FIELD"
        );
        assert_eq!(f.q_err("SELECT Id FROM Nope").error_code, "INVALID_TYPE");
        assert_eq!(
            f.q_err("SELECT Id FROM Opportunity WHERE").error_code,
            "MALFORMED_QUERY"
        );
    }

    #[test]
    fn cursors_page_and_expire_with_the_database() {
        let mut f = Fixture::new();
        let ops = (0..30)
            .map(|i| DmlOp::Create {
                object: "Opportunity".into(),
                fields: body(opp(&format!("o{i:02}"))),
            })
            .collect();
        f.apply(ops, false, "2024-03-10T10:00:00Z");
        let now = t("2024-03-10T12:00:00Z");
        let c =
            f.db.query_cursor("SELECT Name FROM Opportunity ORDER BY Name", false, now)
                .expect("cursor");
        assert_eq!((c.len(), c.total_size()), (30, 30));
        let page = f.db.render_rows(&c, 10..20, "62.0").expect("page");
        assert_eq!(page.len(), 10);
        assert_eq!(page[0]["Name"], "o10");
        assert_eq!(f.db.render_rows(&c, 25..99, "62.0").expect("tail").len(), 5);
        let other = OrgDb::new(ORG);
        assert_eq!(
            other
                .render_rows(&c, 0..1, "62.0")
                .expect_err("stale")
                .error_code,
            "INVALID_QUERY_LOCATOR"
        );
    }
}
