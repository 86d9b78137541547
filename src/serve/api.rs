//! The listener's JSON API under `/api/`, what the live page reads:
//!
//! - `overview`: health (store and cache), activity counters, breaker states, and every
//!   `*dropped*` / `*evicted*` series summed by name;
//! - `agents?page=&per_page=`: agents with their stages' stored baselines and current deviation,
//!   recent interventions and errors, sorted by what needs attention (paged, 50 a page);
//! - `interventions?agent=&since=&limit=` and `errors?agent=&since=&limit=`: the newest first;
//! - `signals?agent=&limit=`: the newest signals the engine raised (held in memory);
//! - `patterns?limit=`: the live miner's patterns and the store's, most frequent first, with the
//!   worst severity seen among the recent errors.
//!
//! Unknown paths are `404`, unknown or malformed parameters `400`; each list is bounded.

use std::collections::{BTreeMap, HashMap};

use ace_core::{Ace, ErrorQuery, InterventionQuery, Timestamp};
use serde_json::{Value, json};

use crate::readback::{error_json, intervention_json, list, pattern_json, signal_json};

/// The most records a list answer holds.
pub const MAX_LIST: usize = 1000;
/// The records of recent activity weighed to rank agents by attention.
const RECENT: usize = 2000;
/// The agents a page holds by default, and at most.
const PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 500;
/// A sparkline's points, and how far back they are read.
const SPARK_POINTS: usize = 30;
const SPARK_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

type Answer = (&'static str, &'static str, String);

/// Answers `GET /api/{path}?{query}`.
pub(super) fn answer(ace: &Ace, path: &str, query: &str) -> Answer {
    let params = match Params::parse(query) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    let result = match path {
        "overview" => params.only(&[]).map(|()| overview(ace)),
        "agents" => params.only(&["page", "per_page"]).and_then(|()| agents(ace, &params)),
        "interventions" => params.only(&["agent", "since", "limit"]).and_then(|()| interventions(ace, &params)),
        "errors" => params.only(&["agent", "since", "limit"]).and_then(|()| errors(ace, &params)),
        "patterns" => params.only(&["limit"]).and_then(|()| patterns(ace, &params)),
        "signals" => params.only(&["agent", "limit"]).and_then(|()| signals(ace, &params)),
        _ => {
            let body = json!({"error": "not_found", "message": format!("no /api/{path}; try overview, agents, interventions, errors, signals or patterns")});
            return ("404 Not Found", "application/json", body.to_string());
        }
    };
    match result {
        Ok(v) => ("200 OK", "application/json", v.to_string()),
        Err(Failure::Bad(m)) => bad(&m),
        Err(Failure::Engine(e)) => {
            let status = if e.code() == "closed" { "503 Service Unavailable" } else { "500 Internal Server Error" };
            let body = json!({"error": e.code(), "message": e.to_string()});
            (status, "application/json", body.to_string())
        }
    }
}

fn bad(message: &str) -> Answer {
    ("400 Bad Request", "application/json", json!({"error": "bad_request", "message": message}).to_string())
}

enum Failure {
    Bad(String),
    Engine(ace_core::Error),
}

impl From<ace_core::Error> for Failure {
    fn from(e: ace_core::Error) -> Self {
        Failure::Engine(e)
    }
}

/// The query string's parameters (percent-decoded; each named at most once).
struct Params(HashMap<String, String>);

impl Params {
    fn parse(query: &str) -> Result<Self, String> {
        let mut out = HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if out.insert(k.clone(), v).is_some() {
                return Err(format!("the parameter {k:?} is given twice"));
            }
        }
        Ok(Params(out))
    }

    fn only(&self, allowed: &[&str]) -> Result<(), Failure> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Failure::Bad(format!("unknown parameter {k:?}; this path takes {allowed:?}"))),
            None => Ok(()),
        }
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, Failure> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(Failure::Bad(format!("{name} must be a whole number from 1 to {max}, not {v:?}"))),
            },
        }
    }

    fn since(&self) -> Result<Option<Timestamp>, Failure> {
        self.text("since")
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .and_then(Timestamp::from_secs_f64)
                    .ok_or_else(|| Failure::Bad(format!("since must be Unix seconds, not {v:?}")))
            })
            .transpose()
    }
}

/// Percent-decodes a query component (`+` is a space).
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| format!("bad percent escape in {s:?}"))?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

fn interventions(ace: &Ace, p: &Params) -> Result<Value, Failure> {
    let mut q = InterventionQuery::all().limit(p.number("limit", 50, MAX_LIST)?);
    q.agent = p.text("agent").map(str::to_owned);
    q.since = p.since()?;
    Ok(list(&ace.interventions(&q)?, intervention_json))
}

fn errors(ace: &Ace, p: &Params) -> Result<Value, Failure> {
    let mut q = ErrorQuery::all().limit(p.number("limit", 50, MAX_LIST)?);
    q.agent = p.text("agent").map(str::to_owned);
    q.since = p.since()?;
    Ok(list(&ace.errors(&q)?, error_json))
}

fn signals(ace: &Ace, p: &Params) -> Result<Value, Failure> {
    let limit = p.number("limit", 50, MAX_LIST)?;
    Ok(list(&ace.recent_signals(p.text("agent"), limit)?, signal_json))
}

fn patterns(ace: &Ace, p: &Params) -> Result<Value, Failure> {
    let limit = p.number("limit", 50, MAX_LIST)?;
    let mut worst: HashMap<String, ace_core::Severity> = HashMap::new();
    for e in ace.errors(&ErrorQuery::all().limit(RECENT))? {
        let s = worst.entry(e.pattern.to_string()).or_insert(e.severity);
        *s = (*s).max(e.severity);
    }
    // The live miner's patterns, and the store's that it does not hold (written by other
    // processes on a shared store, as `ace serve` sees them); the larger count of each.
    let mut all: HashMap<ace_core::PatternId, ace_core::PatternRecord> = HashMap::new();
    for pat in ace.stored_patterns()?.into_iter().chain(ace.patterns()) {
        match all.get_mut(&pat.id) {
            Some(known) if known.count >= pat.count => {}
            Some(known) => *known = pat,
            None => {
                all.insert(pat.id, pat);
            }
        }
    }
    let mut all: Vec<_> = all.into_values().collect();
    all.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
    let out = all
        .iter()
        .take(limit)
        .map(|pat| {
            let mut v = pattern_json(pat);
            v["severity"] = worst.get(&pat.id.to_string()).map_or(Value::Null, |s| s.as_str().into());
            v
        })
        .collect();
    Ok(Value::Array(out))
}

fn overview(ace: &Ace) -> Value {
    let health: Value = serde_json::from_str(&ace.health().to_json()).unwrap_or(Value::Null);
    let s = ace.stats();
    let mut losses: BTreeMap<String, f64> = BTreeMap::new();
    for line in ace.metrics_text().lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        if name.contains("dropped") || name.contains("evicted") {
            let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            *losses.entry(name.to_owned()).or_default() += value;
        }
    }
    json!({
        "health": health,
        "stats": {
            "recorded": s.recorded, "persisted": s.persisted, "buffered": s.buffered, "dropped": s.dropped,
            "evicted": s.evicted, "signals": s.signals, "baselines": s.baselines, "errors": s.errors,
            "patterns": s.patterns, "open_tasks": s.open_tasks, "store_failures": s.store_failures,
        },
        "losses": losses,
        "now": ace.now().as_secs_f64(),
    })
}

/// What one agent's row shows (its stages' baselines as indices into the loaded list, turned
/// into JSON only for the agents of the page asked for).
#[derive(Default)]
struct Agent {
    stages: Vec<usize>,
    max_deviation: f64,
    degraded: bool,
    interventions: u64,
    errors: u64,
    last_reason: Option<String>,
}

/// The values of `agent`'s last [`SPARK_POINTS`] observations per (stage, metric) within
/// [`SPARK_WINDOW`] of now, oldest first (what the page draws as sparklines). A store that cannot
/// answer gives none: the row still shows.
fn sparklines(ace: &Ace, agent: &str) -> HashMap<(String, String), Vec<f64>> {
    let since = ace.now().minus(SPARK_WINDOW);
    let query = ace_core::MetricQuery::all().agent(agent).since(since);
    let mut out: HashMap<(String, String), Vec<f64>> = HashMap::new();
    for r in ace.store().query_metrics(&query).unwrap_or_default() {
        let values =
            r.duration_s.map(|d| ("duration_s", d)).into_iter().chain(r.metrics.iter().map(|(m, v)| (&**m, *v)));
        for (metric, v) in values {
            let points = out.entry((r.stage.to_string(), metric.to_owned())).or_default();
            if points.len() == 2 * SPARK_POINTS {
                points.drain(..SPARK_POINTS);
            }
            points.push(v);
        }
    }
    for points in out.values_mut() {
        let extra = points.len().saturating_sub(SPARK_POINTS);
        points.drain(..extra);
    }
    out
}

/// How far a baseline's recent value is from its mean, in standard deviations (0 without spread).
fn deviation(b: &ace_core::BaselineRecord) -> (f64, f64) {
    let std = b.state.var.max(0.0).sqrt();
    let z = if std > 0.0 && b.state.count > 1 { (b.state.recent - b.state.mean) / std } else { 0.0 };
    (z, std)
}

fn agents(ace: &Ace, p: &Params) -> Result<Value, Failure> {
    let per_page = p.number("per_page", PER_PAGE, MAX_PER_PAGE)?;
    let page = p.number("page", 1, usize::MAX)?;
    let baselines = ace.stored_baselines()?;
    let mut by: HashMap<&str, Agent> = HashMap::new();
    for (i, b) in baselines.iter().enumerate() {
        let a = by.entry(b.agent.as_str()).or_default();
        a.max_deviation = a.max_deviation.max(deviation(b).0.abs());
        a.degraded |= b.state.degraded;
        a.stages.push(i);
    }
    let interventions = ace.interventions(&InterventionQuery::all().limit(RECENT))?;
    for i in &interventions {
        let a = by.entry(&i.agent).or_default();
        a.interventions += 1;
        a.last_reason.get_or_insert_with(|| i.reason.clone());
    }
    let errors = ace.errors(&ErrorQuery::all().limit(RECENT))?;
    for e in &errors {
        by.entry(&e.agent).or_default().errors += 1;
    }
    let attention = |a: &Agent| {
        a.max_deviation.min(10.0)
            + 5.0 * f64::from(u8::from(a.degraded))
            + 3.0 * a.interventions as f64
            + a.errors as f64
    };
    let mut rows: Vec<(&str, Agent, f64)> = by
        .into_iter()
        .map(|(name, a)| {
            let score = attention(&a);
            (name, a, score)
        })
        .collect();
    rows.sort_unstable_by(|x, y| y.2.total_cmp(&x.2).then_with(|| x.0.cmp(y.0)));
    let total = rows.len();
    let start = (page - 1).saturating_mul(per_page);
    let agents: Vec<Value> = rows
        .into_iter()
        .skip(start)
        .take(per_page)
        .map(|(name, a, score)| {
            let spark = sparklines(ace, name);
            let stages: Vec<Value> = a
                .stages
                .iter()
                .map(|&i| {
                    let b = &baselines[i];
                    let (z, std) = deviation(b);
                    let points = spark.get(&(b.stage.clone(), b.metric.clone())).cloned().unwrap_or_default();
                    json!({
                        "stage": b.stage, "metric": b.metric, "count": b.state.count, "mean": b.state.mean,
                        "std": std, "recent": b.state.recent, "deviation": z, "degraded": b.state.degraded,
                        "spark": points,
                    })
                })
                .collect();
            json!({
                "agent": name, "attention": score, "max_deviation": a.max_deviation, "degraded": a.degraded,
                "interventions": a.interventions, "errors": a.errors, "last_reason": a.last_reason,
                "stages": stages,
            })
        })
        .collect();
    Ok(json!({ "total": total, "page": page, "per_page": per_page, "agents": agents }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_refuse_nonsense() {
        let p = Params::parse("agent=a%20b&limit=5&since=").unwrap();
        assert_eq!(p.text("agent"), Some("a b"));
        assert_eq!(p.text("since"), None);
        assert!(Params::parse("a=1&a=2").is_err());
        assert!(Params::parse("a=%zz").is_err());
        assert!(Params::parse("a=%ff").is_err(), "not UTF-8");
        assert!(matches!(p.number("limit", 1, 3), Err(Failure::Bad(_))));
    }

    #[test]
    fn the_api_answers_and_refuses() {
        let ace = Ace::builder().build().unwrap();
        ace.record_error("a", "t", "execution", "Timeout", "timed out", None).unwrap();
        ace.flush().unwrap();
        let (status, _, body) = answer(&ace, "errors", "agent=a");
        assert_eq!(status, "200 OK");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()[0]["agent"], "a");
        assert_eq!(answer(&ace, "nope", "").0, "404 Not Found");
        assert_eq!(answer(&ace, "errors", "limt=3").0, "400 Bad Request");
        assert_eq!(answer(&ace, "errors", "limit=0").0, "400 Bad Request");
        assert_eq!(answer(&ace, "agents", "page=x").0, "400 Bad Request");
        let (_, _, body) = answer(&ace, "agents", "");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["agents"][0]["agent"], "a");
        let breaker = ace.breaker("llm").unwrap();
        breaker.force_open();
        assert!(ace.acquire("b", "t2", &breaker).is_err());
        let (status, _, body) = answer(&ace, "signals", "agent=b&limit=5");
        assert_eq!(status, "200 OK");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v[0]["agent"].as_str(), v[0]["kind"].as_str()), (Some("b"), Some("breaker_open")), "{v}");
        assert_eq!(v[0]["evidence"]["breaker"], "llm");
        let (_, _, body) = answer(&ace, "signals", "agent=a");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()[0]["kind"], "task_error", "the error's signal");
        assert_eq!(answer(&ace, "signals", "agent=nobody").2, "[]");
        assert_eq!(answer(&ace, "signals", "since=1").0, "400 Bad Request");
        ace.close().unwrap();
        assert_eq!(answer(&ace, "errors", "").0, "503 Service Unavailable");
    }
}
