//! Tests of the outbound-message parser: the reference message, and every refusal.

use super::*;
use crate::salesforce::ids::IdError;

const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>00D90000000gNcmEAE</OrganizationId><ActionId>04k90000000PGrlAAG</ActionId>
  <SessionId xsi:nil="true"/>
  <EnterpriseUrl>https://na1.salesforce.com/services/Soap/c/41.0/00D90000000gNcm</EnterpriseUrl>
  <PartnerUrl>https://na1.salesforce.com/services/Soap/u/41.0/00D90000000gNcm</PartnerUrl>
  <Notification><Id>04l9000001olR84AAE</Id>
   <sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xsi:type="sf:Opportunity">
<sf:Id>006900000062Wt9AAE</sf:Id><sf:Amount>50000.0</sf:Amount><sf:StageName>Closed Won</sf:StageName>
<sf:Name>O&apos;Brien &amp; Co</sf:Name><sf:Description xsi:nil="true"/></sObject>
  </Notification>
  <Notification><Id>04l9000001olR85AAE</Id>
   <sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xsi:type="sf:Opportunity">
<sf:Id>006900000062WtAAAU</sf:Id></sObject>
  </Notification></notifications></soapenv:Body></soapenv:Envelope>"#;

#[test]
fn the_reference_message() {
    let m = parse_notifications(SAMPLE).unwrap();
    assert_eq!(m.organization_id, "00D90000000gNcmEAE");
    assert_eq!(m.action_id.as_deref(), Some("04k90000000PGrlAAG"));
    assert_eq!(m.notifications.len(), 2);
    let n = &m.notifications[0];
    assert_eq!(n.id, "04l9000001olR84AAE");
    assert_eq!(n.object, "Opportunity");
    assert_eq!(n.record_id, "006900000062Wt9AAE");
    assert_eq!(n.fields["Amount"].as_deref(), Some("50000.0"));
    assert_eq!(n.fields["Name"].as_deref(), Some("O'Brien & Co"));
    assert_eq!(n.fields["Description"], None);
    assert_eq!(m.notifications[1].record_id, "006900000062WtAAAU");
}

#[test]
fn bad_messages_are_refused() {
    assert!(matches!(
        parse_notifications("<not xml"),
        Err(OutboundError::Malformed(_) | OutboundError::NotANotification)
    ));
    assert_eq!(
        parse_notifications("<a><b/></a>"),
        Err(OutboundError::NotANotification)
    );
    let doctype = format!(
        "<!DOCTYPE x [<!ENTITY e \"boom\">]>{}",
        SAMPLE.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
    );
    assert_eq!(parse_notifications(&doctype), Err(OutboundError::Doctype));
    let no_org = SAMPLE.replace("<OrganizationId>00D90000000gNcmEAE</OrganizationId>", "");
    assert_eq!(
        parse_notifications(&no_org),
        Err(OutboundError::NoOrganizationId)
    );
    let bad_id = SAMPLE.replace("006900000062Wt9AAE", "006' OR 1=1");
    assert!(matches!(
        parse_notifications(&bad_id),
        Err(OutboundError::BadId {
            index: Some(0),
            reason: IdError::Charset,
            ..
        })
    ));
    let mismatched = SAMPLE.replace("</Notification></notifications>", "</notifications>");
    assert!(matches!(
        parse_notifications(&mismatched),
        Err(OutboundError::Malformed(_))
    ));
}

#[test]
fn more_than_one_hundred_notifications_is_refused() {
    let one = "<Notification><Id>04l9000001olR84AAE</Id><sObject xmlns:sf=\"urn:x\" xsi:type=\"sf:Opportunity\"><sf:Id>006900000062Wt9AAE</sf:Id></sObject></Notification>";
    let message = |n: usize| {
        let start = SAMPLE.find("<Notification>").unwrap();
        let end = SAMPLE.find("</notifications>").unwrap();
        format!("{}{}{}", &SAMPLE[..start], one.repeat(n), &SAMPLE[end..])
    };
    assert_eq!(
        parse_notifications(&message(100))
            .unwrap()
            .notifications
            .len(),
        100
    );
    assert_eq!(
        parse_notifications(&message(101)),
        Err(OutboundError::TooMany(101))
    );
}

#[test]
fn a_body_cut_anywhere_is_refused() {
    // Every proper prefix: inside text, inside a tag, right after a complete
    // </Notification>, after </notifications> and before </soapenv:Envelope>.
    for end in (0..SAMPLE.len()).filter(|i| SAMPLE.is_char_boundary(*i)) {
        let cut = &SAMPLE[..end];
        assert!(
            parse_notifications(cut).is_err(),
            "a body cut after {end} bytes was accepted: ...{:?}",
            &cut[cut.len().saturating_sub(40)..]
        );
    }
    let after_notification = SAMPLE.find("</Notification>").unwrap() + "</Notification>".len();
    assert_eq!(
        parse_notifications(&SAMPLE[..after_notification]),
        Err(OutboundError::Truncated("notifications".into()))
    );
    let after_notifications = SAMPLE.find("</notifications>").unwrap() + "</notifications>".len();
    assert_eq!(
        parse_notifications(&SAMPLE[..after_notifications]),
        Err(OutboundError::Truncated("Body".into()))
    );
    let in_text = SAMPLE.find("Closed Won").unwrap() + 3;
    assert_eq!(
        parse_notifications(&SAMPLE[..in_text]),
        Err(OutboundError::Truncated("StageName".into()))
    );
    // Trailing whitespace after the Envelope is fine.
    assert!(parse_notifications(&format!("{SAMPLE}\n  \n")).is_ok());
}

#[test]
fn namespaces_are_resolved_not_matched_by_prefix() {
    let wrong = SAMPLE.replace(
        r#"<notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
        r#"<notifications xmlns="http://soap.sforce.com/2005/09/outbound/v2">"#,
    );
    assert!(matches!(
        parse_notifications(&wrong),
        Err(OutboundError::WrongNamespace { element, .. }) if element == "notifications"
    ));
    let none = SAMPLE.replace(
        r#"<notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
        "<notifications>",
    );
    assert!(matches!(
        parse_notifications(&none),
        Err(OutboundError::WrongNamespace { element, found, .. })
            if element == "notifications" && found == "(none)"
    ));
    let soap12 = SAMPLE.replace(
        "http://schemas.xmlsoap.org/soap/envelope/",
        "http://www.w3.org/2003/05/soap-envelope",
    );
    assert!(matches!(
        parse_notifications(&soap12),
        Err(OutboundError::WrongNamespace { element, .. }) if element == "Envelope"
    ));
    // A Notification in another namespace is not silently skipped.
    let foreign = SAMPLE.replacen(
        "<Notification><Id>",
        "<x:Notification xmlns:x=\"urn:other\"><Id>",
        1,
    );
    let foreign = foreign.replacen("</Notification>", "</x:Notification>", 1);
    assert!(matches!(
        parse_notifications(&foreign),
        Err(OutboundError::WrongNamespace { element, .. }) if element == "Notification"
    ));
    // Other prefixes for the right namespaces are the same message.
    let prefixed = SAMPLE
        .replace("soapenv:", "s:")
        .replace("xmlns:soapenv=", "xmlns:s=")
        .replace(
            r#"<notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
            r#"<o:notifications xmlns:o="http://soap.sforce.com/2005/09/outbound">"#,
        )
        .replace("</notifications>", "</o:notifications>");
    let prefixed = [
        "OrganizationId",
        "ActionId",
        "SessionId",
        "EnterpriseUrl",
        "PartnerUrl",
        "Notification",
        "Id",
        "sObject",
    ]
    .iter()
    .fold(prefixed, |s, name| {
        s.replace(&format!("<{name}>"), &format!("<o:{name}>"))
            .replace(&format!("<{name} "), &format!("<o:{name} "))
            .replace(&format!("</{name}>"), &format!("</o:{name}>"))
    });
    // the record's own Id stays in the sObject namespace
    let prefixed = prefixed.replace("<sf:o:Id>", "<sf:Id>");
    assert_eq!(parse_notifications(&prefixed), parse_notifications(SAMPLE));
}

#[test]
fn one_envelope_one_body_one_notifications() {
    let body_start = SAMPLE.find("<soapenv:Body>").unwrap();
    let two_bodies = SAMPLE.replace(
        "</soapenv:Body>",
        "</soapenv:Body><soapenv:Body></soapenv:Body>",
    );
    assert!(matches!(
        parse_notifications(&two_bodies),
        Err(OutboundError::Unexpected(_))
    ));
    let two_lists = SAMPLE.replace(
        "</notifications>",
        "</notifications><notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\"></notifications>",
    );
    assert!(matches!(
        parse_notifications(&two_lists),
        Err(OutboundError::Unexpected(_))
    ));
    let second_root = format!("{SAMPLE}<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENVELOPE_NS}\"/>");
    assert!(parse_notifications(&second_root).is_err());
    let trailing_text = format!("{SAMPLE}junk");
    assert!(parse_notifications(&trailing_text).is_err());
    // A SOAP Header is allowed (and ignored) before the Body.
    let header = format!(
        "{}<soapenv:Header><x:Session xmlns:x=\"urn:x\">s</x:Session></soapenv:Header>{}",
        &SAMPLE[..body_start],
        &SAMPLE[body_start..]
    );
    assert_eq!(parse_notifications(&header), parse_notifications(SAMPLE));
    let two_ids = SAMPLE.replacen(
        "<sf:Id>006900000062Wt9AAE</sf:Id>",
        "<sf:Id>006900000062Wt9AAE</sf:Id><sf:Id>006900000062WtAAAU</sf:Id>",
        1,
    );
    assert!(matches!(
        parse_notifications(&two_ids),
        Err(OutboundError::Incomplete { index: 0, .. })
    ));
}

#[test]
fn every_id_is_checked_before_the_ack() {
    let bad = |from: &str, to: &str| parse_notifications(&SAMPLE.replacen(from, to, 1));
    // record id: wrong checksum suffix, wrong key prefix for an Opportunity
    assert!(matches!(
        bad("006900000062Wt9AAE", "006900000062Wt9AAA"),
        Err(OutboundError::BadId {
            reason: IdError::Checksum { .. },
            ..
        })
    ));
    assert!(matches!(
        bad("006900000062Wt9AAE", "001900000062Wt9AAE"),
        Err(OutboundError::BadId {
            reason: IdError::Prefix { .. },
            ..
        })
    ));
    // the 15-character form is accepted on its prefix
    let short = bad("006900000062Wt9AAE", "006900000062Wt9").unwrap();
    assert_eq!(short.notifications[0].record_id, "006900000062Wt9");
    // notification id, organization id, action id
    assert!(matches!(
        bad("04l9000001olR84AAE", "04l9000001olR84AAA"),
        Err(OutboundError::BadId { .. })
    ));
    assert!(matches!(
        bad("04l9000001olR84AAE", "04k9000001olR84AAE"),
        Err(OutboundError::BadId { .. })
    ));
    assert!(matches!(
        bad("00D90000000gNcmEAE", "00D90000000gNcmAAA"),
        Err(OutboundError::BadId { .. })
    ));
    assert!(matches!(
        bad(
            "<ActionId>04k90000000PGrlAAG",
            "<ActionId>04l90000000PGrlAAG"
        ),
        Err(OutboundError::BadId { .. })
    ));
    // a custom object's record id: any prefix, but its checksum
    let custom = SAMPLE
        .replacen("sf:Opportunity", "sf:Invoice__c", 1)
        .replacen("006900000062Wt9AAE", "a00D0000008pQRAIA2", 1);
    assert!(parse_notifications(&custom).is_ok());
    let custom_bad = custom.replacen("a00D0000008pQRAIA2", "a00D0000008pQRAIA3", 1);
    assert!(parse_notifications(&custom_bad).is_err());
}

#[test]
fn replies() {
    let ack = ack_envelope(true);
    assert!(ack.contains("<Ack>true</Ack>"));
    assert!(ack.contains("http://soap.sforce.com/2005/09/outbound"));
    let fault = fault_envelope(true, "bad <secret>");
    assert!(fault.contains("<faultcode>soapenv:Client</faultcode>"));
    assert!(fault.contains("bad &lt;secret&gt;"));
    assert!(fault_envelope(false, "x").contains("soapenv:Server"));
}

#[test]
fn names_from_the_message_are_cut_short_in_errors() {
    let long = "u".repeat(5_000);
    let wrong = SAMPLE.replace(
        r#"<notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
        &format!(r#"<notifications xmlns="urn:{long}">"#),
    );
    let e = parse_notifications(&wrong).unwrap_err();
    assert!(matches!(e, OutboundError::WrongNamespace { .. }), "{e}");
    assert!(e.to_string().len() < 400, "{e}");
}
