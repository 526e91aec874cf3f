//! The outbound-message parser reads what the simulator sends, and the simulator takes our
//! Ack as one.

use orgsync::salesforce::outbound::{ack_envelope, fault_envelope, parse_notifications};
use sfsim::db::RecordTexts;

#[test]
fn the_simulators_messages_parse_and_our_ack_is_an_ack() {
    let records: Vec<(String, RecordTexts)> = (0..3)
        .map(|i| {
            (
                format!("04l00000000000{i}AAA"),
                RecordTexts {
                    object: "Opportunity".into(),
                    fields: vec![
                        ("Id".into(), Some(format!("00600000000000{i}AAA"))),
                        ("Name".into(), Some(format!("O'Brien & <Co> {i}"))),
                        ("Description".into(), None),
                    ],
                },
            )
        })
        .collect();
    let xml = sfsim::outbound::envelope(
        "00D000000000001EAA",
        "04k000000000001AAA",
        "http://127.0.0.1:1",
        &records,
    );
    let message = parse_notifications(&xml).unwrap();
    assert_eq!(message.organization_id, "00D000000000001EAA");
    assert_eq!(message.notifications.len(), 3);
    for (i, n) in message.notifications.iter().enumerate() {
        assert_eq!(n.id, format!("04l00000000000{i}AAA"));
        assert_eq!(n.object, "Opportunity");
        assert_eq!(n.record_id, format!("00600000000000{i}AAA"));
        assert_eq!(
            n.fields["Name"].as_deref(),
            Some(format!("O'Brien & <Co> {i}").as_str())
        );
        assert_eq!(n.fields["Description"], None);
    }
    assert!(sfsim::outbound::is_ack(&ack_envelope(true)));
    assert!(!sfsim::outbound::is_ack(&ack_envelope(false)));
    assert!(!sfsim::outbound::is_ack(&fault_envelope(
        true,
        "bad secret"
    )));
}
