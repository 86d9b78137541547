//! `ace eval`: every figure ace is judged by, in one place, with the baselines beside it.
//!
//! - the error miner on Loghub-2k, leave one system out (`ace patterns eval --loo`);
//! - the labelled traces, 5 folds by task (`ace_core::replay::cross_validate`): ace and the
//!   first-error rule, in sample and cross-validated;
//! - the demo's fleet: every injected fault detected, and the share of healthy tasks that got an
//!   intervention.

use std::path::{Path, PathBuf};

use ace::replay::{CrossValidation, FOLDS, Replayed, Targets, cross_validate, grid};
use ace::{AceConfig, Error};
use ace_core::errors::eval::{Labelled, candidates, leave_one_out};
use serde_json::{Value, json};

use super::demo::{self, DemoCheck};
use super::patterns;

#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    /// The data: `traces/*.jsonl` and `loghub-2k/` under it.
    #[arg(long, value_name = "DIR", default_value = "../shared/data")]
    data: PathBuf,
    /// Labelled trace files to cross-validate instead of DATA/traces/*.jsonl.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    traces: Vec<PathBuf>,
    /// Loghub structured CSV files or folders instead of DATA/loghub-2k.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    loghub: Vec<PathBuf>,
    /// Leave out the Loghub table.
    #[arg(long)]
    no_loghub: bool,
    /// Leave out the demo.
    #[arg(long)]
    no_demo: bool,
    /// Agents of the demo's fleet.
    #[arg(long, default_value_t = 100)]
    demo_agents: usize,
    /// Tasks each demo agent runs.
    #[arg(long, default_value_t = 200)]
    demo_tasks: usize,
    /// Precision a configuration must reach on the folds it is chosen on.
    #[arg(long, default_value_t = 0.9)]
    min_precision: f64,
    /// Early hits a configuration must reach on the folds it is chosen on.
    #[arg(long, default_value_t = 0.9)]
    min_early_hits: f64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Settings as `ACE_*=value` lines, over the environment's: the first candidate.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// One setting, `ACE_*=value`, over the config file's (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// One Loghub system left out.
struct LooRow {
    name: String,
    in_ga: f64,
    in_fga: f64,
    loo_ga: f64,
    loo_fga: f64,
}

pub(crate) fn run(args: &EvalArgs) -> ace::Result<()> {
    for (name, v) in [("min-precision", args.min_precision), ("min-early-hits", args.min_early_hits)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::InvalidInput { field: "eval", reason: format!("--{name} must be in [0, 1], got {v}") });
        }
    }
    let base = super::replay::layered(args.config.as_deref(), &args.set)?;
    let loghub = if args.no_loghub { None } else { Some(loghub(args)?) };
    let traces = traces(args, &base)?;
    let demo = if args.no_demo { None } else { Some(demo::check(args.demo_agents, args.demo_tasks, 42, base)?) };
    if args.json {
        println!("{}", to_json(loghub.as_deref(), traces.as_ref(), demo.as_ref()));
    } else {
        if let Some(rows) = &loghub {
            print_loghub(rows);
        }
        if let Some(cv) = &traces {
            print_traces(cv);
        }
        if let Some(d) = &demo {
            print_demo(d);
        }
    }
    Ok(())
}

fn invalid(reason: String) -> Error {
    Error::InvalidInput { field: "eval", reason }
}

fn loghub(args: &EvalArgs) -> ace::Result<Vec<LooRow>> {
    let roots = if args.loghub.is_empty() { vec![args.data.join("loghub-2k")] } else { args.loghub.clone() };
    let mut files = Vec::new();
    for root in &roots {
        patterns::collect(root, 0, &mut files)?;
    }
    files.retain(|f| f.to_str().is_some_and(|n| n.ends_with("_structured.csv")));
    files.sort();
    if files.is_empty() {
        return Err(invalid(format!("no *_structured.csv file under {roots:?}")));
    }
    let sets = files
        .iter()
        .map(|f| {
            patterns::read(f).map(|(messages, truth)| Labelled { name: patterns::dataset_name(f), messages, truth })
        })
        .collect::<ace::Result<Vec<_>>>()?;
    let folds = leave_one_out(&sets, &candidates())?;
    Ok(folds
        .iter()
        .map(|f| LooRow {
            name: f.name.clone(),
            in_ga: f.in_sample.ga,
            in_fga: f.in_sample.fga,
            loo_ga: f.held_out.ga,
            loo_fga: f.held_out.fga,
        })
        .collect())
}

fn traces(args: &EvalArgs, base: &AceConfig) -> ace::Result<Option<CrossValidation>> {
    let files = if args.traces.is_empty() {
        let dir = args.data.join("traces");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| invalid(format!("{}: {e}", dir.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        found.sort();
        found
    } else {
        args.traces.clone()
    };
    if files.is_empty() {
        return Ok(None);
    }
    let candidates = grid();
    let sets = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| invalid(format!("{}: {e}", f.display())))?;
            Replayed::new(&name_of(f), &text, &candidates, base)
        })
        .collect::<ace::Result<Vec<_>>>()?;
    let targets = Targets { min_precision: args.min_precision, min_early_hits: args.min_early_hits };
    Ok(Some(cross_validate(&sets, &candidates, targets)))
}

fn name_of(file: &Path) -> String {
    file.file_stem().and_then(|s| s.to_str()).unwrap_or("trace").to_owned()
}

fn f2(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

fn print_loghub(rows: &[LooRow]) {
    println!("Error patterns: Loghub-2k, leave one system out (the miner's knobs chosen on the other systems)");
    println!("  {:<12} {:>9} {:>9} {:>7} {:>7}", "system", "in GA", "in FGA", "LOO GA", "LOO FGA");
    for r in rows {
        println!("  {:<12} {:>9.3} {:>9.3} {:>7.3} {:>7.3}", r.name, r.in_ga, r.in_fga, r.loo_ga, r.loo_fga);
    }
    let n = rows.len().max(1) as f64;
    let mean = |f: fn(&LooRow) -> f64| rows.iter().map(f).sum::<f64>() / n;
    println!(
        "  {:<12} {:>9.3} {:>9.3} {:>7.3} {:>7.3}\n",
        "average",
        mean(|r| r.in_ga),
        mean(|r| r.in_fga),
        mean(|r| r.loo_ga),
        mean(|r| r.loo_fga)
    );
}

fn print_traces(cv: &CrossValidation) {
    println!(
        "Interventions on labelled traces: {FOLDS} folds by task; settings chosen on 4 folds among {} candidates \
         (precision >= {:.2}, recall >= the first-error rule's, early hits >= {:.2}), scored on the 5th",
        cv.candidates.len(),
        cv.targets.min_precision,
        cv.targets.min_early_hits
    );
    println!(
        "  {:<28} {:<12} {:>6} {:>8} {:>6} {:>6} {:>6} | {:>8} {:>6} {:>6}",
        "trace", "who", "tasks", "flagged", "prec", "recall", "early", "cv prec", "recall", "early"
    );
    for s in &cv.sets {
        let rows = [("ace", &s.in_sample, &s.cross_validated), ("first error", &s.baseline, &s.baseline_folds)];
        for (k, (who, whole, folds)) in rows.into_iter().enumerate() {
            println!(
                "  {:<28} {:<12} {:>6} {:>8} {:>6} {:>6} {:>6} | {:>8} {:>6} {:>6}",
                if k == 0 { s.name.as_str() } else { "" },
                who,
                whole.tasks,
                whole.flagged_tasks,
                f2(whole.precision),
                f2(whole.recall),
                f2(whole.early_hits),
                f2(folds.precision),
                f2(folds.recall),
                f2(folds.early_hits),
            );
        }
    }
    let names: Vec<&str> = cv.chosen.iter().map(|&c| cv.candidates[c].name.as_str()).collect();
    println!("  chosen per fold: {}", names.join(" | "));
    println!("  chosen on every task: {}\n", cv.candidates[cv.chosen_on_all].name);
}

fn print_demo(d: &DemoCheck) {
    println!("Demo fleet: {} agents x {} tasks, seed 42, faults injected", d.agents, d.tasks_per_agent);
    println!("  {:<28} {:>7} {:>9} {:>11}", "fault", "agents", "detected", "intervened");
    for (what, agents, detected, intervened) in &d.faults {
        println!("  {what:<28} {agents:>7} {detected:>9} {intervened:>11}");
    }
    println!("  {:<28} {:>7} {:>9}", "verification errors", d.burst.0, d.burst.1);
    println!(
        "  healthy tasks with an intervention: {} of {} ({:.2}%)",
        d.healthy_intervened,
        d.healthy_tasks,
        100.0 * d.false_intervention_rate
    );
}

fn to_json(loghub: Option<&[LooRow]>, traces: Option<&CrossValidation>, demo: Option<&DemoCheck>) -> Value {
    let loghub = loghub.map(|rows| {
        let n = rows.len().max(1) as f64;
        let mean = |f: fn(&LooRow) -> f64| rows.iter().map(f).sum::<f64>() / n;
        json!({
            "systems": rows.iter().map(|r| json!({
                "system": r.name, "in_sample_ga": r.in_ga, "in_sample_fga": r.in_fga,
                "loo_ga": r.loo_ga, "loo_fga": r.loo_fga,
            })).collect::<Vec<_>>(),
            "in_sample_ga": mean(|r| r.in_ga),
            "in_sample_fga": mean(|r| r.in_fga),
            "loo_ga": mean(|r| r.loo_ga),
            "loo_fga": mean(|r| r.loo_fga),
        })
    });
    let traces = traces.map(|cv| {
        json!({
            "folds": FOLDS,
            "targets": cv.targets,
            "candidates": cv.candidates.len(),
            "chosen_per_fold": cv.chosen.iter().map(|&c| &cv.candidates[c]).collect::<Vec<_>>(),
            "chosen_on_all": &cv.candidates[cv.chosen_on_all],
            "sets": cv.sets.iter().map(|s| json!({
                "name": s.name,
                "in_sample": s.in_sample,
                "baseline_in_sample": s.baseline,
                "cross_validated": s.cross_validated,
                "baseline_cross_validated": s.baseline_folds,
            })).collect::<Vec<_>>(),
        })
    });
    json!({
        "loghub": loghub,
        "traces": traces,
        "demo": demo.map(|d| json!({
            "agents": d.agents,
            "tasks_per_agent": d.tasks_per_agent,
            "healthy_tasks": d.healthy_tasks,
            "healthy_tasks_intervened": d.healthy_intervened,
            "false_intervention_rate": d.false_intervention_rate,
            "all_faults_detected": d.all_detected(),
            "faults": d.faults.iter().map(|(what, agents, detected, intervened)| json!({
                "fault": what, "agents": agents, "detected": detected, "intervened": intervened,
            })).collect::<Vec<_>>(),
            "verification_burst": { "agents": d.burst.0, "detected": d.burst.1 },
        })),
    })
}
