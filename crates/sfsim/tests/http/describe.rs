//! Describe sub-resources: layouts, compact layouts, approval layouts.

use serde_json::json;

use crate::helpers::{api, org};

#[tokio::test]
async fn describe_layouts_are_routed_as_layouts() {
    let org = org("A").await;
    let api = api(&org).await;
    let r = api.get("sobjects/Account/describe/layouts/").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let layout = &r.body["layouts"][0];
    assert!(
        layout["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("00h")),
        "{}",
        r.text
    );
    assert!(layout["detailLayoutSections"][0]["layoutRows"].is_array());
    assert_eq!(r.body["recordTypeSelectorRequired"], json!([false]));
    let master = &r.body["recordTypeMappings"][0];
    assert_eq!(master["master"], json!(true));
    assert_eq!(master["layoutId"], layout["id"]);
    // The Master record type's layout by its id (the URL the mapping names).
    let url = master["urls"]["layout"].as_str().expect("layout url");
    let one = api.get(url).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["id"], layout["id"]);
    let none = api
        .get("sobjects/Account/describe/layouts/012000000000001AAA")
        .await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn compact_and_approval_layouts_have_salesforces_shapes() {
    let org = org("A").await;
    let api = api(&org).await;
    let r = api
        .get("sobjects/Opportunity/describe/compactLayouts")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["compactLayouts"], json!([]));
    assert_eq!(r.body["defaultCompactLayoutId"], json!(null));
    assert_eq!(
        r.body["recordTypeCompactLayoutMappings"][0]["recordTypeId"],
        json!("012000000000000AAA")
    );
    let r = api
        .get("sobjects/Opportunity/describe/approvalLayouts/")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"approvalLayouts": []}));
    let r = api.get("sobjects/Opportunity/describe/nothing").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "NOT_FOUND");
    let r = api.get("sobjects/Nope/describe/layouts").await;
    assert_eq!(r.status, 404);
    assert_eq!(org.calls("describe"), 4);
}
