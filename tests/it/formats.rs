//! `format = "ocsf"` and `"ecs"` through the binary: the same events, in each format, from
//! one run with sinks that asked for different ones.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::*;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("the sink's file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON value per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sink_writes_the_format_it_asked_for() {
    let fake = start_fake(300).await;
    let now = now_ms();
    generate(&fake, 131, 1_500, now - 20 * HOUR, now - 10 * SEC);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ocsf_path = dir.path().join("ocsf.ndjson");
    let ecs_path = dir.path().join("ecs.ndjson");
    let sinks = format!(
        "[[sinks]]\ntype = \"stdout\"\n\n[[sinks]]\ntype = \"file\"\nname = \"ocsf\"\nformat = \"ocsf\"\npath = \"{}\"\n\n[[sinks]]\ntype = \"file\"\nname = \"ecs\"\nformat = \"ecs\"\npath = \"{}\"\n",
        ocsf_path.display(),
        ecs_path.display()
    );
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "1d",
            include: "all",
            sinks: Box::leak(sinks.into_boxed_str()),
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let events = run.events();
    assert!(events.len() > 100, "{run}");

    let ocsf = lines(&ocsf_path);
    let ecs = lines(&ecs_path);
    assert_eq!(ocsf.len(), events.len());
    assert_eq!(ecs.len(), events.len());
    for ((event, ocsf), ecs) in events.iter().zip(&ocsf).zip(&ecs) {
        // Same event, same order, in each format.
        assert_eq!(ocsf["metadata"]["uid"], event["id"]);
        assert_eq!(ecs["event"]["id"], event["id"]);
        assert_eq!(ocsf["metadata"]["event_code"], event["type"]);
        assert_eq!(ecs["lacework"]["audit"]["type"], event["type"]);
        let raw = serde_json::to_string(&event["raw"]).unwrap();
        let ocsf_raw: Value = serde_json::from_str(ocsf["raw_data"].as_str().unwrap()).unwrap();
        let ecs_raw: Value =
            serde_json::from_str(ecs["event"]["original"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::to_string(&ocsf_raw).unwrap(), raw);
        assert_eq!(serde_json::to_string(&ecs_raw).unwrap(), raw);
        let class_uid = ocsf["class_uid"].as_u64().unwrap();
        assert_eq!(
            ocsf["type_uid"].as_u64().unwrap(),
            class_uid * 100 + ocsf["activity_id"].as_u64().unwrap()
        );
        let expected_class = match event["type"].as_str().unwrap() {
            "USER_LOGIN" => 3002,
            "AUDIT" => 3004,
            _ => 3001,
        };
        assert_eq!(class_uid, expected_class, "{event}");
        if !event["target"].is_null() && class_uid == 3001 {
            assert_eq!(ocsf["user"]["name"], event["target"]);
            assert_eq!(ecs["user"]["target"]["name"], event["target"]);
        }
        if !event["actor"].is_null() {
            assert_eq!(ecs["user"]["name"], event["actor"]);
        }
    }
    let types: BTreeSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        types.contains("AUDIT") && types.contains("USER_CREATED"),
        "the run covered lifecycle and other records: {types:?}"
    );
}
