//! Every metric the alert rules and the Grafana dashboard query is one ace exports: exercise an
//! engine, collect its metric families, and check each name in docs/alerts and docs/grafana.

use std::collections::BTreeSet;

use ace::{Ace, AceConfig};

/// Families with labels that print once they have a series, and that this test does not drive
/// (they need a failing store, a full buffer or a shared cache); registered in
/// ace-core/src/metrics.rs like the others.
const ON_FIRST_EVENT: [&str; 6] = [
    "ace_records_dropped",
    "ace_records_spilled",
    "ace_records_replayed",
    "ace_store_write_failures",
    "ace_store_retries",
    "ace_cache_requests",
];

fn exported() -> BTreeSet<String> {
    let config = AceConfig::builder().metrics_max_agents(1).build().unwrap();
    let ace = Ace::builder().config(config).build().unwrap();
    for i in 0..40 {
        ace.record_stage("a", &format!("t{i}"), "planning", 1.0, true).unwrap();
        ace.record_stage("b", &format!("t{i}"), "planning", 1.0, true).unwrap(); // past the label cap
    }
    let mut ids = Vec::new();
    for p in 0..3 {
        let r = ace
            .record_error("a", "t", "execution", "ConnectionError", &format!("connection to db-{p}:5432 refused"), None)
            .unwrap();
        ids.extend(r.intervention.map(|i| i.id));
    }
    ace.record_error("a", "t2", "execution", "Fatal", "out of memory", Some(ace::Severity::Critical)).unwrap();
    for id in ids {
        ace.report_outcome(id, true).unwrap();
    }
    let llm = ace.breaker("llm").unwrap();
    for _ in 0..5 {
        ace.acquire("a", "t3", &llm).unwrap().failure();
    }
    let _ = ace.acquire("a", "t3", &llm);
    let pb = ace.playbooks();
    let report = pb.merge("d", &[ace::playbook::Insight::new("s", "check the fare first")]).unwrap();
    for _ in 0..3 {
        pb.feedback("d", &report.added[0], ace::playbook::Feedback::Helpful).unwrap();
    }
    pb.retrieve("d", "fare", 3, ace::playbook::Stage::Shadow).unwrap();
    ace.flush().unwrap();
    let text = ace.metrics_text();
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Metric names in PromQL expressions (identifiers followed by `{`, `[`, `)` or a space that are
/// not functions, keywords or labels).
fn referenced(exprs: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in exprs {
        let mut word = String::new();
        for c in e.chars() {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                word.push(c);
                continue;
            }
            if (word.starts_with("ace_")
                || word.starts_with("circuit_breaker_")
                || word.starts_with("playbook_")
                || word.starts_with("bullets_")
                || word.starts_with("insights_"))
                && c != '('
            {
                out.insert(word.clone());
            }
            word.clear();
        }
        if word.starts_with("ace_") {
            out.insert(word);
        }
    }
    out
}

fn family(name: &str) -> &str {
    for suffix in ["_bucket", "_total", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

#[test]
fn alert_rules_and_the_dashboard_query_metrics_that_exist() {
    let families = exported();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("docs/alerts/ace-alerts.yml")).unwrap();
    let mut exprs: Vec<String> =
        rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")).map(|e| e.trim().to_owned()).collect();
    assert_eq!(exprs.len(), 19, "19 alert rules");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("docs/grafana/ace.json")).unwrap()).unwrap();
    let mut panels = 0;
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
            panels += 1;
        }
    }
    assert!(panels > 20, "the dashboard has its queries");
    let names = referenced(&exprs);
    assert!(names.len() > 20, "{names:?}");
    for name in &names {
        let f = family(name);
        assert!(
            families.contains(f) || ON_FIRST_EVENT.contains(&f),
            "{name} is queried but ace exports no family {f}; exported: {families:?}"
        );
    }
    for f in
        ["ace_intervention_effectiveness", "ace_metrics_label_overflow", "circuit_breaker_state", "bullets_promoted"]
    {
        assert!(families.contains(f), "{f} moved when its event happened");
    }
}
