//! The describe sub-resources of an sObject, in Salesforce's shapes with one minimal page
//! layout per object (no record types beyond Master, no compact layouts of its own, no
//! approval processes):
//! - `sobjects/{type}/describe/layouts/` → `{"layouts":[layout],"recordTypeMappings":[Master],
//!   "recordTypeSelectorRequired":[false]}`; `describe/layouts/{recordTypeId}` → the layout;
//! - `describe/compactLayouts/` → `{"compactLayouts":[],"defaultCompactLayoutId":null,
//!   "recordTypeCompactLayoutMappings":[Master → null]}` (an object without compact layouts of
//!   its own uses the system default, whose id is null);
//! - `describe/approvalLayouts/` → `{"approvalLayouts":[]}`.

use serde_json::{Value as Json, json};

use crate::ids;
use crate::schema::{FieldDef, ObjectDef};

/// The Master record type's id: the one every org has.
pub const MASTER_RECORD_TYPE_ID: &str = "012000000000000AAA";

/// A stable 18-character id with a key prefix for an object's layout parts.
fn stable_id(prefix: &str, object: &ObjectDef, n: usize) -> String {
    let digits: String = object
        .key_prefix
        .chars()
        .chain(format!("{n:09}").chars())
        .collect();
    let id15: String = format!("{prefix}{digits}").chars().take(15).collect();
    ids::to_18(&id15).unwrap_or(id15)
}

fn layout_item(f: &FieldDef) -> Json {
    json!({
        "editableForNew": f.createable,
        "editableForUpdate": f.updateable,
        "label": f.label,
        "layoutComponents": [{
            "displayLines": 1,
            "tabOrder": 1,
            "type": "Field",
            "value": f.name,
        }],
        "placeholder": false,
        "required": !f.nillable && !f.defaulted_on_create && f.createable,
    })
}

fn section(object: &ObjectDef, heading: &str, fields: &[&FieldDef], n: usize) -> Json {
    let rows: Vec<Json> = fields
        .iter()
        .map(|f| json!({"layoutItems": [layout_item(f)], "numItems": 1}))
        .collect();
    json!({
        "collapsed": false,
        "columns": 1,
        "heading": heading,
        "layoutRows": rows,
        "layoutSectionId": stable_id("01B", object, n),
        "parentLayoutId": stable_id("00h", object, 0),
        "rows": fields.len(),
        "tabOrder": "TopToBottom",
        "useCollapsibleSection": false,
        "useHeading": true,
    })
}

/// The object's one page layout: a detail section with every field and an edit section with
/// the writable ones.
pub fn layout(object: &ObjectDef) -> Json {
    let all: Vec<&FieldDef> = object.fields.iter().collect();
    let writable: Vec<&FieldDef> = object
        .fields
        .iter()
        .filter(|f| f.createable || f.updateable)
        .collect();
    json!({
        "buttonLayoutSection": {"detailButtons": []},
        "detailLayoutSections": [section(object, "Information", &all, 1)],
        "editLayoutSections": [section(object, "Information", &writable, 2)],
        "feedView": null,
        "highlightsPanelLayoutSection": null,
        "id": stable_id("00h", object, 0),
        "multirowEditLayoutSections": [],
        "offlineLinks": [],
        "quickActionList": {"quickActionListItems": []},
        "relatedContent": null,
        "relatedLists": [],
        "saveOptions": [],
    })
}

/// `describe/layouts/`.
pub fn layouts(object: &ObjectDef, api_version: &str) -> Json {
    json!({
        "layouts": [layout(object)],
        "recordTypeMappings": [{
            "active": true,
            "available": true,
            "defaultRecordTypeMapping": true,
            "developerName": "Master",
            "layoutId": stable_id("00h", object, 0),
            "master": true,
            "name": "Master",
            "picklistsForRecordType": [],
            "recordTypeId": MASTER_RECORD_TYPE_ID,
            "urls": {"layout": format!(
                "/services/data/v{api_version}/sobjects/{}/describe/layouts/{MASTER_RECORD_TYPE_ID}",
                object.name
            )},
        }],
        "recordTypeSelectorRequired": [false],
    })
}

/// `describe/layouts/{recordTypeId}`: the layout of the Master record type, the only one.
pub fn layout_for_record_type(object: &ObjectDef, record_type_id: &str) -> Option<Json> {
    let id18 = ids::to_18(record_type_id).ok()?;
    (id18 == MASTER_RECORD_TYPE_ID).then(|| layout(object))
}

/// `describe/compactLayouts/`.
pub fn compact_layouts() -> Json {
    json!({
        "compactLayouts": [],
        "defaultCompactLayoutId": null,
        "recordTypeCompactLayoutMappings": [{
            "available": true,
            "compactLayoutId": null,
            "compactLayoutName": "SYSTEM",
            "recordTypeId": MASTER_RECORD_TYPE_ID,
            "recordTypeName": "Master",
        }],
    })
}

/// `describe/approvalLayouts/`: no approval processes.
pub fn approval_layouts() -> Json {
    json!({"approvalLayouts": []})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn the_layout_lists_the_objects_fields() {
        let schema = Schema::standard();
        let opp = schema.object("Opportunity").expect("Opportunity");
        let l = layouts(opp, "62.0");
        let layout = &l["layouts"][0];
        assert_eq!(layout["id"].as_str().map(str::len), Some(18));
        assert!(
            layout["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("00h"))
        );
        let rows = layout["detailLayoutSections"][0]["layoutRows"]
            .as_array()
            .map(Vec::len);
        assert_eq!(rows, Some(opp.fields.len()));
        let edit = layout["editLayoutSections"][0]["layoutRows"].to_string();
        assert!(edit.contains("\"StageName\""));
        assert!(!edit.contains("\"SystemModstamp\""));
        assert_eq!(l["recordTypeMappings"][0]["layoutId"], layout["id"]);
        assert_eq!(
            layout_for_record_type(opp, "012000000000000"),
            Some(layout.clone())
        );
        assert_eq!(layout_for_record_type(opp, "012000000000001AAA"), None);
    }
}
