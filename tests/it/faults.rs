//! API misbehaviour: expiring tokens, foreign or looping nextPage URLs, rate limits and server
//! errors, every shape of "empty", and windows the API refuses.

use std::time::Duration;

use fake_lacework::{EmptyVariant, Fault, parse_query_time};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_mid_paging_refreshes_and_delivers_everything() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 5, 3000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            window: "1d",
            lookback: "25h",
            ..Cfg::default()
        },
    );
    fake.expire_tokens_after_pages(3);
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(now - 2 * DAY, now, None),
        "run --once across a token expiry",
    );
    assert!(
        fake.token_requests() >= 2,
        "a new token was fetched after the 401 ({} token requests)",
        fake.token_requests()
    );
    let requests = fake.requests();
    let rejected = requests
        .iter()
        .position(|r| is_audit_logs(r) && r.status == 401)
        .unwrap_or_else(|| panic!("no AuditLogs request got 401: {requests:#?}"));
    assert!(
        requests[rejected].path.len() > "/api/v2/AuditLogs/".len(),
        "the token expired while paging, so a nextPage fetch got the 401: {:?}",
        requests[rejected]
    );
    let retried = requests[rejected + 1..]
        .iter()
        .find(|r| is_audit_logs(r))
        .expect("the rejected page was fetched again");
    assert_eq!(retried.path, requests[rejected].path, "the same page again");
    assert_eq!(retried.status, 200);
    assert_ne!(
        retried.authorization, requests[rejected].authorization,
        "with the new token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_next_page_is_refused_without_contacting_it() {
    let fake = start_fake(200).await;
    let foreign = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 6, 2000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    let position = now - 20 * HOUR;
    exporter
        .run(&["state", "set", "--to", &rfc3339(position)])
        .await
        .expect_code(0);
    fake.set_foreign_next_page(Some(foreign.base_url()));

    // 3: an API answer restarting cannot heal.
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(3);
    assert!(
        run.stderr
            .contains(&format!("{}/api/v2/AuditLogs/", foreign.base_url())),
        "stderr names the refused nextPage URL: {run}"
    );
    assert!(
        foreign.requests().is_empty() && foreign.token_requests() == 0,
        "the foreign host was contacted: {:?}",
        foreign.requests()
    );
    assert_eq!(
        exporter.live_checkpoint().await,
        Some(position),
        "the checkpoint moved although the window failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_next_page_is_reported_as_a_loop() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 16, 2000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    let position = now - 20 * HOUR;
    exporter
        .run(&["state", "set", "--to", &rfc3339(position)])
        .await
        .expect_code(0);
    fake.set_repeat_next_page(true);
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.to_lowercase().contains("loop"),
        "stderr explains the paging loop: {run}"
    );
    let n_next_pages = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/AuditLogs/"))
        .count();
    assert!(
        (1..=2).contains(&n_next_pages),
        "the exporter should stop at the first repeated nextPage: {n_next_pages} nextPage fetches"
    );
    assert_eq!(
        exporter.live_checkpoint().await,
        Some(position),
        "the checkpoint moved although the window failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_rate_limits_waited_out() {
    let fake = start_fake(5000).await;
    let now = now_ms();
    generate(&fake, 7, 1000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            window: "1d",
            lookback: "25h",
            ..Cfg::default()
        },
    );
    fake.fail_next(2, Fault::RateLimited { reset_secs: 1 });
    fake.fail_next(1, Fault::Status(503));
    fake.fail_next(1, Fault::Status(502));
    fake.fail_next(1, Fault::Drop);
    let clock = RequestClock::start(&fake);
    // Two 1 s rate-limit waits plus three retries of at most retry_max (1s) each: a run that
    // is still going after 15 s waited for something it should not have.
    let run = exporter
        .spawn(&["run", "--once"])
        .wait(Duration::from_secs(15))
        .await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(now - 2 * DAY, now, None),
        "run --once through 429, 503, 502 and a dropped connection",
    );
    assert!(
        run.elapsed >= Duration::from_secs(2),
        "two 429s with RateLimit-Reset: 1 were not waited out (run took {:?})",
        run.elapsed
    );
    let requests = fake.requests();
    let audit: Vec<usize> = (0..requests.len())
        .filter(|&i| is_audit_logs(&requests[i]))
        .collect();
    assert!(
        audit.len() >= 6,
        "too few AuditLogs requests: {requests:#?}"
    );
    let statuses: Vec<u16> = audit[..6].iter().map(|&i| requests[i].status).collect();
    // The dropped connection had sent a 200 head before the body broke.
    assert_eq!(statuses, [429, 429, 503, 502, 200, 200], "{requests:#?}");
    for &i in &audit[1..6] {
        assert_eq!(
            (&requests[i].path, &requests[i].query),
            (&requests[audit[0]].path, &requests[audit[0]].query),
            "a failed request is retried as it was"
        );
    }
    let waits: Vec<Duration> = audit[..6]
        .windows(2)
        .map(|pair| clock.time_of(pair[1]) - clock.time_of(pair[0]))
        .collect();
    for (i, waited) in waits[..2].iter().enumerate() {
        assert!(
            *waited >= Duration::from_millis(950) && *waited < Duration::from_secs(3),
            "after 429 number {} (RateLimit-Reset: 1) the next request came {waited:?} later",
            i + 1
        );
    }
    for (status, waited) in ["503", "502", "dropped 200"].iter().zip(&waits[2..]) {
        assert!(
            *waited < Duration::from_millis(1500),
            "after a {status} the retry came {waited:?} later, beyond retry_max = 1s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_bad_request_fails_with_laceworks_message() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 17, 500, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    fake.fail_next(40, Fault::Status(400));
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("400") && run.stderr.contains("Bad Request"),
        "stderr carries the status and Lacework's message: {run}"
    );
    assert!(run.events().is_empty(), "nothing delivered: {run}");
    assert_eq!(exporter.live_checkpoint().await, None, "nothing committed");
}

/// An empty answer of `variant` (nothing in range) is zero records: exit 0, no events, and the
/// checkpoint advances to now - settle.
async fn empty_answer_advances_the_checkpoint(variant: EmptyVariant, status: u16) {
    let fake = start_fake(200).await;
    let now = now_ms();
    // Records exist, but long before poll.lookback.
    generate(&fake, 8, 50, now - 10 * DAY, now - 9 * DAY);
    fake.set_empty_variant(variant);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "1d",
            ..Cfg::default()
        },
    );
    let started = now_ms();
    let run = exporter.run(&["run", "--once"]).await;
    let finished = now_ms();
    run.expect_code(0);
    assert!(
        run.events().is_empty(),
        "{variant:?}: events printed: {run}"
    );
    let checkpoint = exporter
        .live_checkpoint()
        .await
        .unwrap_or_else(|| panic!("{variant:?}: no checkpoint after an empty run: {run}"));
    assert!(
        checkpoint >= started - 2 * SEC - 50 && checkpoint <= finished - 2 * SEC + 50,
        "{variant:?}: checkpoint {} is not now - settle",
        rfc3339(checkpoint)
    );
    let audit: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| is_audit_logs(r))
        .map(|r| r.status)
        .collect();
    assert!(
        audit.len() >= 4 && audit.iter().all(|s| *s == status),
        "{variant:?}: expected every AuditLogs answer to be {status}, got {audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_data_is_no_records() {
    empty_answer_advances_the_checkpoint(EmptyVariant::EmptyData, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_content_is_no_records() {
    empty_answer_advances_the_checkpoint(EmptyVariant::NoContent, 204).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_body_is_no_records() {
    empty_answer_advances_the_checkpoint(EmptyVariant::EmptyBody, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_body_is_no_records() {
    empty_answer_advances_the_checkpoint(EmptyVariant::Null, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_no_records() {
    empty_answer_advances_the_checkpoint(EmptyVariant::NotFound, 404).await;
}

/// `startTime` and `endTime` of a first-page query, in epoch milliseconds.
fn query_range(query: &str) -> Option<(i64, i64)> {
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.replace("%3A", ":").replace("%3a", ":"))
        })
    };
    Some((
        parse_query_time(&param("startTime")?)?,
        parse_query_time(&param("endTime")?)?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_the_api_refuses_are_split() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 9, 3000, now - 2 * DAY, now - 10 * SEC);
    fake.set_max_window(Some(Duration::from_secs(2 * 3600)));
    let exporter = Exporter::new(&fake, &Cfg::default());
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(now - 3 * DAY, now, None),
        "run --once with a 2h maximum window",
    );
    let requests = fake.requests();
    assert!(
        requests.iter().any(|r| is_audit_logs(r) && r.status == 400),
        "the 6h window was never refused"
    );
    for request in requests
        .iter()
        .filter(|r| r.path == "/api/v2/AuditLogs" && r.status == 200)
    {
        let query = request.query.as_deref().unwrap_or_default();
        let (start, end) =
            query_range(query).unwrap_or_else(|| panic!("unreadable query {query:?}"));
        assert!(
            end - start <= 2 * HOUR,
            "accepted query spans more than 2h: {query}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlives_request_timeout_is_retried() {
    let fake = start_fake(5000).await;
    let now = now_ms();
    generate(&fake, 30, 1000, now - DAY, now - 10 * SEC);
    let mut cfg = Cfg {
        window: "1d",
        lookback: "25h",
        ..Cfg::default()
    };
    cfg.request_timeout = "1s";
    let exporter = Exporter::new(&fake, &cfg);
    fake.fail_next(1, Fault::Slow(Duration::from_secs(4)));
    let run = exporter
        .spawn(&["run", "--once"])
        .wait(Duration::from_secs(20))
        .await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(now - 2 * DAY, now, None),
        "run --once after a timed-out request",
    );
    assert!(
        run.elapsed < Duration::from_secs(4),
        "the slow request was waited for ({:?}) instead of timing out after 1s",
        run.elapsed
    );
    let audit = fake.requests().iter().filter(|r| is_audit_logs(r)).count();
    assert!(
        audit >= 3,
        "the timed-out request was not sent again ({audit} AuditLogs requests)"
    );
}
