//! The store's tests on PostgreSQL: every test the store has for SQLite
//! run again on a database of a real server this test starts, and what
//! only PostgreSQL can do wrong — the server restarting under the store,
//! a transaction cut in half, two hubs migrating at once.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::testing::TempPostgres;
use crate::{Store, StoreError};

type StoreTest = (&'static str, fn(&Store));

/// Every store test written for SQLite (each takes a fresh store).
const ON_BOTH: &[StoreTest] = &[
    (
        "shared_keys::the_first_shared_key_stays",
        crate::shared_keys::tests::the_first_shared_key_stays_on,
    ),
    (
        "egress::a_spokes_decisions_join_the_log_with_how_far_it_has_them",
        crate::egress::tests::a_spokes_decisions_join_the_log_with_how_far_it_has_them_on,
    ),
    (
        "api_tokens::tokens_round_trip_and_revoke_once",
        crate::api_tokens::tests::tokens_round_trip_and_revoke_once_on,
    ),
    (
        "boxes::duplicate_ids_are_refused",
        crate::boxes::tests::duplicate_ids_are_refused_on,
    ),
    (
        "boxes::limit_is_enforced_on_insert",
        crate::boxes::tests::limit_is_enforced_on_insert_on,
    ),
    (
        "boxes::transition_only_from_expected_state",
        crate::boxes::tests::transition_only_from_expected_state_on,
    ),
    (
        "boxes::a_transition_from_several_states_records_the_exit_code",
        crate::boxes::tests::a_transition_from_several_states_records_the_exit_code_on,
    ),
    (
        "boxes::expired_and_idle_boxes_are_found_but_not_those_in_motion",
        crate::boxes::tests::expired_and_idle_boxes_are_found_but_not_those_in_motion_on,
    ),
    (
        "boxes::activation_is_single_use_and_cascades",
        crate::boxes::tests::activation_is_single_use_and_cascades_on,
    ),
    (
        "export::entries_come_in_id_order_from_a_cursor_that_only_moves_on",
        crate::export::tests::entries_come_in_id_order_from_a_cursor_that_only_moves_on_on,
    ),
    (
        "export::pruning_keeps_what_a_sink_has_not_delivered",
        crate::export::tests::pruning_keeps_what_a_sink_has_not_delivered_on,
    ),
    (
        "git_tokens::a_token_works_only_from_its_boxs_network_and_dies_with_the_box",
        crate::git_tokens::tests::a_token_works_only_from_its_boxs_network_and_dies_with_the_box_on,
    ),
    (
        "http_rules::the_same_request_pattern_is_one_rule",
        crate::http_rules::tests::the_same_request_pattern_is_one_rule_on,
    ),
    (
        "ports::ports_are_published_once_and_go_with_their_box",
        crate::ports::tests::ports_are_published_once_and_go_with_their_box_on,
    ),
    (
        "secrets::a_second_put_replaces_the_value_and_keeps_history",
        crate::secrets::tests::a_second_put_replaces_the_value_and_keeps_history_on,
    ),
    (
        "spoke_boxes::an_id_is_one_boxs_wherever_it_runs",
        crate::spoke_boxes::tests::an_id_is_one_boxs_wherever_it_runs_on,
    ),
    (
        "spoke_boxes::a_spoke_updates_and_forgets_only_its_own_boxes",
        crate::spoke_boxes::tests::a_spoke_updates_and_forgets_only_its_own_boxes_on,
    ),
    (
        "spokes::a_token_is_redeemed_once_and_never_after_it_expires",
        crate::spokes::tests::a_token_is_redeemed_once_and_never_after_it_expires_on,
    ),
    (
        "spokes::enrolling_again_replaces_the_certificate_and_lifts_a_revocation",
        crate::spokes::tests::enrolling_again_replaces_the_certificate_and_lifts_a_revocation_on,
    ),
    (
        "warm::a_warm_box_is_claimed_once_and_only_by_a_matching_create",
        crate::warm::tests::a_warm_box_is_claimed_once_and_only_by_a_matching_create_on,
    ),
];

fn server() -> Option<TempPostgres> {
    let pg = TempPostgres::start();
    if pg.is_none() {
        // scripts/test installs PostgreSQL; a bare `cargo test` may not have it.
        eprintln!("PostgreSQL is not installed here: the PostgreSQL store tests are skipped");
    }
    pg
}

fn fresh(pg: &TempPostgres) -> Store {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let url = pg.database(&format!("t{}", SEQ.fetch_add(1, Ordering::Relaxed)));
    Store::open_postgres(&url).unwrap()
}

#[test]
fn every_store_test_passes_on_postgres() {
    let Some(pg) = server() else { return };
    for (name, test) in ON_BOTH {
        eprintln!("on PostgreSQL: {name}");
        test(&fresh(&pg));
    }
}

#[test]
fn a_restarted_server_costs_the_calls_in_between_and_no_transaction_half_applied() {
    let Some(mut pg) = server() else { return };
    let url = pg.database("restart");
    let store = Store::open_postgres(&url).unwrap();
    store.meta_or_insert("k", || "v".into()).unwrap();

    // A transaction open when the server goes: it fails whole.
    let conn = store.conn();
    conn.batch("BEGIN").unwrap();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        crate::db::params!["half", "x"],
    )
    .unwrap();
    pg.stop();
    let cut = conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        crate::db::params!["other-half", "x"],
    );
    assert!(cut.as_ref().is_err_and(StoreError::unavailable), "{cut:?}");
    pg.launch();
    let after = conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        crate::db::params!["late", "x"],
    );
    assert!(
        matches!(after, Err(StoreError::PostgresLostTransaction)),
        "{after:?}"
    );
    assert!(conn.batch("COMMIT").is_err());
    drop(conn);

    // The next call connects again; nothing of the transaction is there.
    assert_eq!(store.meta("k").unwrap().as_deref(), Some("v"));
    assert_eq!(store.meta("half").unwrap(), None);
    assert_eq!(store.meta("late").unwrap(), None);
}

#[test]
fn hubs_that_start_together_migrate_once_and_share_what_they_write() {
    let Some(pg) = server() else { return };
    let url = pg.database("shared");
    let opened: Vec<Store> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Store::open_postgres(&url)))
            .collect();
        starts
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let instance = opened[0]
        .meta_or_insert("instance", || "first".into())
        .unwrap();
    for store in &opened[1..] {
        assert_eq!(
            store.meta_or_insert("instance", || "later".into()).unwrap(),
            instance
        );
    }
    let mut row = crate::boxes::test_row("shared-box");
    row.project = "p".into();
    opened[1].insert_box(&row).unwrap();
    assert_eq!(opened[2].get_box("shared-box").unwrap().unwrap(), row);
    assert!(matches!(
        opened[3].insert_box(&row),
        Err(StoreError::Duplicate(_))
    ));
}

#[test]
fn a_url_that_cannot_work_is_refused_without_its_password() {
    for url in [
        "postgres://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=2",
        "postgres://u:s3cret-pw@[bad",
    ] {
        let e = Store::open_postgres(url).err().expect("refused");
        let said = e.to_string();
        assert!(!said.contains("s3cret-pw"), "{said}");
    }
}

#[test]
fn one_hub_leads_and_another_takes_over_when_it_goes() {
    let Some(pg) = server() else { return };
    let url = pg.database("leader");
    let first = Store::open_postgres(&url).unwrap();
    let second = Store::open_postgres(&url).unwrap();
    assert!(first.leads(), "the first hub on the database leads");
    assert!(!second.leads(), "only one hub leads");
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !second.leads() {
        assert!(
            std::time::Instant::now() < deadline,
            "the second hub did not take over"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let third = Store::open_postgres(&url).unwrap();
    assert!(!third.leads());
}

#[test]
fn a_hub_cut_off_in_silence_stops_leading_before_another_takes_over() {
    use std::time::{Duration, Instant};
    let Some(pg) = server() else { return };
    let url = pg.database("silent");
    let cut_off =
        Store::open_postgres(&url.replace("127.0.0.1", crate::testing::CUTTABLE_HOST)).unwrap();
    let other = Store::open_postgres(&url).unwrap();
    assert!(cut_off.leads() && !other.leads());

    let cut = pg
        .cut()
        .expect("nftables can be changed here (the tests run as root)");
    let started = Instant::now();
    std::thread::scope(|scope| {
        // A call on the cut connection fails in about half a minute,
        // not when TCP would give up a quarter of an hour later.
        let call = scope.spawn(|| (cut_off.get_box("any").is_err(), started.elapsed()));
        let mut stopped_at = None;
        while !other.leads() {
            let leads = cut_off.leads();
            assert!(!(leads && other.leads()), "two leaders at once");
            if !leads && stopped_at.is_none() {
                stopped_at = Some(started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the other hub did not take over: {}",
                pg.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let took_over_at = started.elapsed();
        let stopped_at = stopped_at.expect("the cut-off hub stopped leading first");
        eprintln!(
            "stopped leading after {stopped_at:?}; the other took over after {took_over_at:?}"
        );
        assert!(
            stopped_at <= crate::leader::LEASE + Duration::from_secs(2),
            "{stopped_at:?}"
        );
        let (failed, after) = call.join().unwrap();
        assert!(failed, "a call on a cut connection cannot succeed");
        assert!(after < Duration::from_secs(60), "{after:?}");
    });

    // Mended: the cut-off hub's store works again, and the lead stays
    // where it went.
    drop(cut);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cut_off.get_box("any").is_err() {
        assert!(Instant::now() < deadline, "the store did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(other.leads() && !cut_off.leads());
}
