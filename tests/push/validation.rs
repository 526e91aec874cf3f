//! What the listener checks before it acks (issue 18): a message it cannot read in full, or
//! whose names are in the wrong namespace, or whose record ids are not valid ids of the
//! object, gets a SOAP fault, so Salesforce keeps it and retries; nothing of it is stored,
//! and the listener goes on serving.

use super::*;

/// The cases, each (what, body): every body is refused with a fault and stores nothing.
fn refused_bodies(org_id: &str, id1: &str, id2: &str) -> Vec<(&'static str, String)> {
    let n1 = "04l0000000000t1AAA";
    let n2 = "04l0000000000t2AAA";
    let full = envelope(org_id, &[(n1, id1), (n2, id2)]);
    let cut_at = |marker: &str, nth: usize| -> String {
        let mut at = 0;
        for _ in 0..=nth {
            at += full[at..].find(marker).expect("marker in the envelope") + marker.len();
        }
        full[..at].to_string()
    };
    // A record id with the right length and prefix but a wrong checksum suffix: the 15
    // characters stay, the suffix of another id.
    let bad_checksum = format!(
        "{}{}",
        &id1[..15],
        if &id1[15..] == "AAA" { "AAB" } else { "AAA" }
    );
    // An Account id (prefix 001, checksum right) sent as an Opportunity's.
    let account_id = "001000000000001AAA";
    vec![
        // 1. Cut short: inside a value, right after a complete notification, and after
        //    </notifications> but before the Envelope closes.
        ("cut inside a value", cut_at("stale va", 1)),
        (
            "cut after a complete </Notification>",
            cut_at("</Notification>", 0),
        ),
        ("cut after </notifications>", cut_at("</notifications>", 0)),
        // 2. notifications in a wrong namespace, and in none.
        (
            "notifications in a wrong namespace",
            full.replace(
                r#"<notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
                r#"<notifications xmlns="http://example.com/2005/09/outbound">"#,
            ),
        ),
        (
            "notifications in no namespace",
            full.replace(
                r#"<notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
                "<notifications>",
            ),
        ),
        // 3. Record ids that only look like ids.
        (
            "a record id with a wrong checksum",
            envelope(org_id, &[(n1, bad_checksum.as_str()), (n2, id2)]),
        ),
        (
            "an Account id for an Opportunity",
            envelope(org_id, &[(n1, id1), (n2, account_id)]),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_short_wrong_namespace_and_bad_id_messages_get_a_fault_and_store_nothing() {
    let world = World::new().await;
    let listener = world.start("push").await;
    let org_a = world.a.org_id.clone();
    let id1 = world.create_as_human(&world.a, "Checked deal 1", 21_000.0);
    let id2 = world.create_as_human(&world.a, "Checked deal 2", 22_000.0);
    let path = format!("/outbound/a?secret={}", secret_a());

    for (what, body) in refused_bodies(&org_a, &id1, &id2) {
        let (code, text) = listener.post(&path, body).await;
        assert_eq!(code, 500, "{what}: {text}");
        assert!(is_fault(&text), "{what}: {text}");
        assert!(text.contains("soapenv:Client"), "{what}: {text}");
        for n in ["04l0000000000t1AAA", "04l0000000000t2AAA"] {
            assert_eq!(
                inbox_rows(&world.db_path(), n).await,
                0,
                "{what}: notification {n} was stored"
            );
        }
        assert_eq!(listener.get("/healthz").await.0, 200, "{what}");
    }

    // Still serving: the whole message, as Salesforce retries it, is acked and synced.
    let (code, text) = listener
        .post(
            &path,
            envelope(
                &org_a,
                &[("04l0000000000t1AAA", &id1), ("04l0000000000t2AAA", &id2)],
            ),
        )
        .await;
    assert_eq!(code, 200, "{text}");
    assert!(is_ack(&text), "{text}");
    for n in ["04l0000000000t1AAA", "04l0000000000t2AAA"] {
        assert_eq!(inbox_rows(&world.db_path(), n).await, 1, "{n}");
    }
    eventually("both deals reach B", || {
        named(&world.b, "Checked deal 1").len() == 1 && named(&world.b, "Checked deal 2").len() == 1
    })
    .await;
    listener.stop().await;
}
