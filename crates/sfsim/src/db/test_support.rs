//! Fixtures the database's unit tests share: an org with two users, DML and query shortcuts.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};

use super::{Change, DmlContext, DmlOp, DmlResult, OrgDb};
use crate::error::ApiError;
use crate::value;

pub(super) const ORG: &str = "00DA0000000test1AAA";

pub(super) fn t(s: &str) -> DateTime<Utc> {
    value::parse_datetime(s).expect("datetime")
}

pub(super) fn body(v: Json) -> Map<String, Json> {
    v.as_object().cloned().expect("object")
}

pub(super) struct Fixture {
    pub(super) db: OrgDb,
    pub(super) user: String,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let mut db = OrgDb::new(ORG);
        let user = db.add_user("integration@a.sim", "Integration User");
        db.add_user("human@a.sim", "Human User");
        Fixture { db, user }
    }

    pub(super) fn ctx(&self, now: &str) -> DmlContext {
        DmlContext {
            user_id: self.user.clone(),
            now: t(now),
            reject_marker: None,
            forced_errors: Vec::new(),
        }
    }

    pub(super) fn apply(
        &mut self,
        ops: Vec<DmlOp>,
        all_or_none: bool,
        now: &str,
    ) -> (Vec<DmlResult>, Vec<Change>) {
        let ctx = self.ctx(now);
        self.db.apply(ops, all_or_none, &ctx)
    }

    pub(super) fn create(&mut self, object: &str, fields: Json, now: &str) -> DmlResult {
        let (mut r, _) = self.apply(
            vec![DmlOp::Create {
                object: object.into(),
                fields: body(fields),
            }],
            false,
            now,
        );
        r.remove(0)
    }

    pub(super) fn create_ok(&mut self, object: &str, fields: Json, now: &str) -> String {
        self.create(object, fields, now).expect("created").id
    }

    pub(super) fn q(&self, soql: &str) -> Vec<Json> {
        self.db
            .query(soql, false, "62.0", t("2024-03-10T12:00:00Z"))
            .unwrap_or_else(|e| panic!("{soql}: {e:?}"))
    }

    pub(super) fn q_all(&self, soql: &str) -> Vec<Json> {
        self.db
            .query(soql, true, "62.0", t("2024-03-10T12:00:00Z"))
            .expect("queryAll")
    }

    pub(super) fn q_err(&self, soql: &str) -> ApiError {
        self.db
            .query(soql, false, "62.0", t("2024-03-10T12:00:00Z"))
            .expect_err(soql)
    }
}

pub(super) fn opp(name: &str) -> Json {
    json!({"Name": name, "StageName": "Prospecting", "CloseDate": "2024-06-30"})
}

pub(super) fn errors(r: &DmlResult) -> Vec<String> {
    match r {
        Ok(_) => Vec::new(),
        Err((_, e)) => e.iter().map(|e| e.status_code.clone()).collect(),
    }
}
