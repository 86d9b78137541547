//! Every metric the alert rules and the Grafana dashboard query is one ace exports: exercise an
//! engine, collect its metric families, and check each name in docs/alerts and docs/grafana.
//! Also: the dashboard's `agent_id` and `stage` variables exist and every panel query of a metric
//! with those labels uses them; each alert's runbook URL is absolute and leads to its section of
//! docs/operations.md.

use std::collections::{BTreeMap, BTreeSet};

use ace::{Ace, AceConfig};

/// Families with labels that print once they have a series, and that this test does not drive
/// (they need a failing store, a full buffer or a shared cache); each registered by its own
/// component like the others.
const ON_FIRST_EVENT: [&str; 7] = [
    "ace_records_dropped",
    "ace_records_spilled",
    "ace_records_replayed",
    "ace_store_write_failures",
    "ace_store_retries",
    "ace_cache_requests",
    "ace_fleet_claims",
];

/// Each exported family with the label names its samples carry (empty for a family with none yet).
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let config = AceConfig::builder().metrics_max_agents(1).build().unwrap();
    let ace = Ace::builder().config(config).build().unwrap();
    for i in 0..40 {
        ace.record_stage("a", &format!("t{i}"), "planning", 1.0, true).unwrap();
        ace.record_stage("b", &format!("t{i}"), "planning", 1.0, true).unwrap(); // past the label cap
    }
    ace.record_stage_with("a", "t0", "planning", 1.0, true, &[("tokens_in", 100.0)]).unwrap(); // a baseline deviation
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
    let mut out: BTreeMap<String, BTreeSet<String>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(|f| (f.to_owned(), BTreeSet::new()))
        .collect();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let Some(f) = out.keys().find(|f| name == f.as_str() || family(name) == f.as_str()).cloned() else {
            continue;
        };
        if line[name_end..].starts_with('{') {
            out.get_mut(&f).unwrap().extend(label_names(&line[name_end + 1..]));
        }
    }
    out
}

/// The label names of a sample's `{...}` (given what follows the `{`), skipping quoted values.
fn label_names(rest: &str) -> Vec<String> {
    let (mut names, mut word, mut chars) = (Vec::new(), String::new(), rest.chars());
    while let Some(c) = chars.next() {
        match c {
            '}' => break,
            '=' => names.push(std::mem::take(&mut word)),
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            ',' | ' ' => word.clear(),
            c => word.push(c),
        }
    }
    names
}

/// Whether `word` names one of the metric families the kit queries.
fn is_metric(word: &str) -> bool {
    word.starts_with("ace_")
}

/// The metric selectors of a PromQL expression: each metric name with its `{...}` matchers (empty
/// when it has none).
fn selectors(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        if bytes[i] == b'"' {
            i += 1 + expr[i + 1..].find('"').unwrap_or(expr.len() - i - 1) + 1; // skip a string
            continue;
        }
        if !ident(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        if !is_metric(word) || expr[i..].trim_start().starts_with('(') {
            continue;
        }
        let mut matchers = String::new();
        if bytes.get(i) == Some(&b'{') {
            let end = i + expr[i..].find('}').expect("a closed selector");
            matchers = expr[i + 1..end].to_owned();
            i = end + 1;
        }
        out.push((word.to_owned(), matchers));
    }
    out
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
            if word.starts_with("ace_") && c != '(' {
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
    let labelled = exported();
    let families: BTreeSet<String> = labelled.keys().cloned().collect();
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
    for f in [
        "ace_intervention_effectiveness",
        "ace_metrics_label_overflow",
        "ace_circuit_breaker_state",
        "ace_bullets_promoted",
    ] {
        assert!(families.contains(f), "{f} moved when its event happened");
    }
}

const VARIABLES: [&str; 2] = ["agent_id", "stage"];

#[test]
fn the_dashboard_filters_by_agent_and_stage() {
    let labelled = exported();
    let labels_of = |name: &str| -> BTreeSet<String> {
        let f = family(name);
        match labelled.get(f) {
            Some(l) => l.clone(),
            // One fixed label each (`reason`, `result`, ...): none is per agent or stage.
            None if ON_FIRST_EVENT.contains(&f) => BTreeSet::new(),
            None => panic!("{name}: ace exports no family {f}"),
        }
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("docs/grafana/ace.json")).unwrap()).unwrap();

    // The variables: query variables listing a label's values over an ace metric that carries it.
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    for v in VARIABLES {
        let var = vars.iter().find(|x| x["name"] == v).unwrap_or_else(|| panic!("no ${v} variable"));
        assert_eq!(var["type"], "query", "${v}");
        assert_eq!(var["datasource"]["uid"], "${datasource}", "${v}");
        assert_eq!(var["includeAll"], true, "${v} offers All");
        assert_eq!(var["allValue"], ".*", "${v}'s All matches every series");
        let q = var["definition"].as_str().unwrap();
        assert_eq!(var["query"]["query"].as_str(), Some(q), "${v}: definition and query agree");
        let args = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')).expect(q);
        let (metric, label) = args.rsplit_once(',').expect(q);
        assert_eq!(label.trim(), v, "{q}");
        let sel = selectors(metric);
        assert_eq!(sel.len(), 1, "{q}");
        assert!(labels_of(&sel[0].0).contains(v), "{q}: {} carries no {v}", sel[0].0);
    }

    // Every selector of a metric with an agent_id or stage label filters on the variable, unless
    // another metric of the same query lacks that label (a ratio filters both sides or neither).
    let mut uses = BTreeMap::<&str, usize>::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            let sels = selectors(expr);
            for v in VARIABLES {
                let matcher = format!("{v}=~\"${v}\"");
                let everywhere = sels.iter().all(|(name, _)| labels_of(name).contains(v));
                for (name, matchers) in &sels {
                    let filtered = matchers.split(',').any(|m| m.trim() == matcher);
                    if everywhere {
                        assert!(filtered, "panel {:?}: {name} has a {v} label but not {matcher}: {expr}", p["title"]);
                        *uses.entry(v).or_default() += 1;
                    } else {
                        assert!(
                            !matchers.contains(&format!("${v}")),
                            "panel {:?}: {name} filters on ${v} but another metric of the query has no {v}: {expr}",
                            p["title"]
                        );
                    }
                }
            }
        }
    }
    for v in VARIABLES {
        assert!(uses.get(v).copied().unwrap_or(0) >= 5, "${v} is used by the panels: {uses:?}");
    }
}

#[test]
fn every_alert_links_to_its_own_runbook_section() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("docs/alerts/ace-alerts.yml")).unwrap();
    let ops = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let headings: BTreeSet<&str> = ops.lines().filter_map(|l| l.strip_prefix("### ")).collect();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert:")).map(str::trim).collect();
    let urls: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("runbook_url:")).map(str::trim).collect();
    assert_eq!(alerts.len(), 19, "19 alert rules");
    assert_eq!(urls.len(), alerts.len(), "every rule has a runbook_url");
    let base = r#"'{{ or $externalLabels.ace_runbook_url "https://"#;
    for (alert, url) in alerts.iter().zip(&urls) {
        assert!(url.starts_with(base), "{alert}: {url} is the external label or an absolute default");
        let anchor = url.rsplit_once("}}#").map(|(_, a)| a.trim_end_matches('\'')).expect(url);
        assert_eq!(anchor, alert.to_lowercase(), "{alert}'s runbook_url ends with its own anchor");
        assert!(headings.contains(alert), "docs/operations.md has a section ### {alert}");
    }
    let defaults: BTreeSet<&str> = urls.iter().filter_map(|u| u.split('"').nth(1)).collect();
    assert_eq!(defaults.len(), 1, "one default base: {defaults:?}");
}
