//! Actor-first wording as served: lifecycle records, look-alikes and missing `userAction`.

use std::collections::{HashMap, HashSet};

use fake_lacework::{FakeConfig, GenerateSpec, LIFECYCLE_KINDS, TimeFormat, Wording};
use serde_json::Value;

use crate::common::{Api, at};

async fn served_with(wording: Wording, count: usize) -> (Api, Vec<Value>) {
    let api = Api::start(FakeConfig {
        time_format: TimeFormat::Millis,
        ..FakeConfig::default()
    })
    .await;
    api.fake.generate(&GenerateSpec {
        seed: 21,
        start: at("2026-01-01"),
        end: at("2026-01-02"),
        count,
        wording,
        ..GenerateSpec::default()
    });
    let first = api
        .audit("2026-01-01", "2026-01-02")
        .header("Org-Access", "true")
        .send()
        .await
        .unwrap();
    let rows = api
        .all_pages(first)
        .await
        .iter()
        .flat_map(|p| p["data"].as_array().unwrap().clone())
        .collect();
    (api, rows)
}

#[tokio::test]
async fn actor_first_records_are_served_with_their_ground_truth() {
    let (api, rows) = served_with(Wording::ActorFirst, 3000).await;
    let records = api.fake.records();
    assert_eq!(rows.len(), records.len());
    // Served rows are exactly the ground truth's JSON.
    let truth: HashMap<String, usize> = records.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.json.to_string()).or_default() += 1;
        m
    });
    let served: HashMap<String, usize> = rows.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.to_string()).or_default() += 1;
        m
    });
    assert_eq!(served, truth);
    let kinds: HashSet<&str> = records
        .iter()
        .filter_map(|r| r.expected_type.as_deref())
        .collect();
    assert_eq!(kinds, HashSet::from(LIFECYCLE_KINDS));
    let mut without_action = 0;
    let mut look_alike_verbs = HashSet::new();
    for r in &records {
        let actor = r.json["userName"].as_str().unwrap();
        let desc = r.json["eventDescription"].as_str().unwrap();
        assert!(desc.starts_with(&format!("User {actor} ")), "{desc}");
        assert!(!desc.contains(" by "), "never passive: {desc}");
        without_action += usize::from(r.json.get("userAction").is_none());
        match (r.expected_type.as_deref(), r.expected_target.as_deref()) {
            (None, None) => {
                let verb = desc.split_whitespace().nth(2).unwrap();
                look_alike_verbs.insert(verb.to_owned());
            }
            (Some("USER_LOGIN"), Some(t)) => assert_eq!(t, actor),
            (Some(k), None) => assert!(k.starts_with("API_KEY_"), "{k}"),
            (Some(_), Some(t)) => {
                assert_ne!(t, actor);
                let after_actor = &desc[5 + actor.len()..];
                assert!(after_actor.contains(t), "{desc} names {t} after the actor");
            }
            (None, Some(t)) => panic!("audit record with target {t}"),
        }
    }
    assert!(
        (400..=800).contains(&without_action),
        "about 20% without userAction: {without_action}"
    );
    for verb in [
        "created", "deleted", "enabled", "disabled", "updated", "added",
    ] {
        assert!(look_alike_verbs.contains(verb), "look-alikes {verb} things");
    }
}

#[tokio::test]
async fn mixed_wording_serves_both_orders() {
    let (_api, rows) = served_with(Wording::Mixed, 1000).await;
    let passive = rows
        .iter()
        .filter(|r| {
            let desc = r["eventDescription"].as_str().unwrap();
            desc.contains(" by ") || !desc.starts_with("User ")
        })
        .count();
    assert!(
        (150..=650).contains(&passive),
        "{passive} object-first rows"
    );
    let in_account = rows
        .iter()
        .filter(|r| r["eventDescription"].as_str().unwrap().contains(" account"))
        .count();
    assert!(
        in_account > 300,
        "{in_account} actor-first rows name the account"
    );
}
