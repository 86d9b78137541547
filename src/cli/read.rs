//! `ace interventions`, `ace errors` and `ace patterns`: what the store holds, read back (the
//! newest first), as text or, with `--json`, one JSON array (the shape of `ace::readback`).

use std::time::Duration;

use ace::readback::{error_json, intervention_json, list, pattern_json};
use ace_core::{Ace, Error, ErrorQuery, InterventionQuery, Timestamp};
use clap::Args;

/// Where to read and what to select.
#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
    /// The store (`sqlite://PATH`, `postgresql://...`); default: DATABASE_URL, else ./ace.db.
    #[arg(long)]
    store: Option<String>,
    /// Only this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Only records this recent: a duration (`90s`, `15m`, `2h`, `7d`) or Unix seconds.
    #[arg(long)]
    since: Option<String>,
    /// At most this many records (the newest).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// One JSON array instead of text.
    #[arg(long)]
    json: bool,
}

/// What to read back.
#[derive(Clone, Copy, Debug)]
pub(crate) enum What {
    Interventions,
    Errors,
    Patterns,
}

fn open(args: &ReadArgs) -> ace::Result<Ace> {
    // Reading needs no writer behind it: nothing recorded, nothing spilled.
    let spec = ace::EngineSpec::new(args.store.as_deref(), None, [("ACE_SPILL_DIR", "off")], true)?;
    spec.open()
}

/// Parses `--since`: a duration back from `now`, or Unix seconds.
pub(crate) fn since(text: &str, now: Timestamp) -> ace::Result<Timestamp> {
    let bad = || Error::InvalidInput {
        field: "since",
        reason: format!("{text:?}: use a duration such as 15m, 2h, 7d, or Unix seconds"),
    };
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(bad)?;
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        _ => return text.parse::<f64>().ok().and_then(Timestamp::from_secs_f64).ok_or_else(bad),
    };
    let n: f64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    let back = Duration::try_from_secs_f64(n * scale).map_err(|_| bad())?;
    Ok(now.minus(back))
}

pub(crate) fn run(what: What, args: &ReadArgs) -> ace::Result<()> {
    let ace = open(args)?;
    let since = args.since.as_deref().map(|s| since(s, ace.now())).transpose()?;
    let out = match what {
        What::Interventions => {
            let mut q = InterventionQuery::all().limit(args.limit);
            (q.agent, q.since) = (args.agent.clone(), since);
            let rows = ace.interventions(&q)?;
            if args.json {
                list(&rows, intervention_json).to_string()
            } else {
                rows.iter()
                    .map(|r| {
                        let outcome = match r.outcome {
                            None => "pending",
                            Some(true) => "helped",
                            Some(false) => "did not help",
                        };
                        format!(
                            "{}  {}  {}  {} ({}): {} [{outcome}]",
                            r.ts.to_rfc3339(),
                            r.agent,
                            r.task,
                            r.strategy.as_str(),
                            r.severity.as_str(),
                            r.reason
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        What::Errors => {
            let mut q = ErrorQuery::all().limit(args.limit);
            (q.agent, q.since) = (args.agent.clone(), since);
            let rows = ace.errors(&q)?;
            if args.json {
                list(&rows, error_json).to_string()
            } else {
                rows.iter()
                    .map(|r| {
                        format!(
                            "{}  {}  {}  {}  {} ({}): {}",
                            r.ts.to_rfc3339(),
                            r.agent,
                            r.stage,
                            r.pattern,
                            r.kind,
                            r.severity.as_str(),
                            r.message
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        What::Patterns => {
            if args.agent.is_some() || since.is_some() {
                return Err(Error::InvalidInput {
                    field: "patterns",
                    reason: "patterns are kept per fleet: --agent and --since do not apply".into(),
                });
            }
            let mut rows = ace.stored_patterns()?;
            rows.truncate(if args.limit == 0 { rows.len() } else { args.limit });
            if args.json {
                list(&rows, pattern_json).to_string()
            } else {
                rows.iter()
                    .map(|p| format!("{:>8}  {}  {}: {}", p.count, p.id, p.kind, p.template))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    };
    if !out.is_empty() {
        println!("{out}");
    }
    ace.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_unix_seconds() {
        let now = Timestamp::from_secs_f64(10_000.0).unwrap();
        assert_eq!(since("15m", now).unwrap().as_secs_f64(), 9_100.0);
        assert_eq!(since("2h", now).unwrap().as_secs_f64(), 2_800.0);
        assert_eq!(since("1700000000", now).unwrap().as_secs_f64(), 1_700_000_000.0);
        for bad in ["", "m", "x5m", "-3s", "1e400s", "soon"] {
            assert_eq!(since(bad, now).unwrap_err().code(), "invalid_input", "{bad}");
        }
    }
}
