//! `ace patterns eval`: the default miner on Loghub-style structured CSV files, in sample or
//! cross-validated across systems (`--loo`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::collections::HashMap;

use ace_core::errors::eval::{GroupingScore, Labelled, average, candidates, leave_one_out, score, score_grid};
use ace_core::errors::{Miner, MinerConfig};
use clap::{Args, Subcommand};

/// `ace patterns [--json ...]` reads back the stored patterns; `ace patterns eval` evaluates.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct PatternsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<PatternsCommand>,
    #[command(flatten)]
    pub(crate) read: super::read::ReadArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PatternsCommand {
    /// Group the `Content` column of Loghub structured CSV files and score it against `EventId`.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// CSV files (`<D>_2k.log_structured.csv`) or folders holding them (searched two levels deep).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// One JSON object per dataset, then one with `"dataset": "average"`.
    #[arg(long)]
    json: bool,
    /// Leave one system out: score each dataset with the knobs that did best on the others,
    /// beside its in-sample score with the default configuration.
    #[arg(long)]
    loo: bool,
    /// With `--loo`: also print every candidate configuration's GA/FGA on every dataset.
    #[arg(long, requires = "loo")]
    grid: bool,
    /// Print, per dataset, up to this many true groups the miner got wrong, with where their
    /// messages went.
    #[arg(long, value_name = "N")]
    mistakes: Option<usize>,
}

pub(crate) fn run(cmd: &PatternsCommand) -> ace_core::Result<()> {
    match cmd {
        PatternsCommand::Eval(args) => eval(args),
    }
}

struct Row {
    dataset: String,
    score: GroupingScore,
    lines_per_s: f64,
}

fn eval(args: &EvalArgs) -> ace_core::Result<()> {
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, 0, &mut files)?;
    }
    if files.is_empty() {
        return Err(invalid(format!("no *_structured.csv file under {:?}", args.paths)));
    }
    files.sort();
    if args.loo {
        return loo(&files, args.json, args.grid);
    }
    let mut rows = Vec::new();
    for file in &files {
        let (messages, truth) = read(file)?;
        if messages.is_empty() {
            skip_empty(file);
            continue;
        }
        let mut miner = Miner::new(MinerConfig::default())?;
        // Mining speed: best of 5 passes with a fresh miner each (the grouping is the same).
        let mut best = f64::INFINITY;
        let mut predicted = Vec::new();
        for _ in 0..5 {
            miner = Miner::new(MinerConfig::default())?;
            let started = Instant::now();
            predicted = messages.iter().map(|m| miner.mine("", m).serial).collect::<Vec<_>>();
            best = best.min(started.elapsed().as_secs_f64());
            // Patterns merged later in the stream group their earlier messages too.
            for p in &mut predicted {
                *p = miner.canonical(*p);
            }
        }
        drop(miner);
        let dataset = dataset_name(file);
        if let Some(n) = args.mistakes {
            mistakes(&dataset, &messages, &truth, &predicted, n);
        }
        rows.push(Row { dataset, score: score(&predicted, &truth), lines_per_s: messages.len() as f64 / best });
    }
    if rows.is_empty() {
        return Err(invalid(format!("no rows in any of {} file(s): nothing to score", files.len())));
    }
    let n = rows.len() as f64;
    let average = Row {
        dataset: "average".into(),
        score: GroupingScore {
            messages: rows.iter().map(|r| r.score.messages).sum(),
            ga: rows.iter().map(|r| r.score.ga).sum::<f64>() / n,
            fga: rows.iter().map(|r| r.score.fga).sum::<f64>() / n,
            predicted_groups: rows.iter().map(|r| r.score.predicted_groups).sum(),
            true_groups: rows.iter().map(|r| r.score.true_groups).sum(),
            correct_groups: rows.iter().map(|r| r.score.correct_groups).sum(),
        },
        lines_per_s: rows.iter().map(|r| r.lines_per_s).sum::<f64>() / n,
    };
    if args.json {
        for r in rows.iter().chain([&average]) {
            let v = serde_json::json!({
                "dataset": r.dataset,
                "messages": r.score.messages,
                "grouping_accuracy": r.score.ga,
                "fga": r.score.fga,
                "patterns_found": r.score.predicted_groups,
                "patterns_true": r.score.true_groups,
                "patterns_correct": r.score.correct_groups,
                "lines_per_second": r.lines_per_s,
            });
            println!("{v}");
        }
    } else {
        println!(
            "{:<12} {:>8} {:>7} {:>7} {:>7} {:>7} {:>12}",
            "dataset", "messages", "GA", "FGA", "found", "true", "lines/s"
        );
        for r in rows.iter().chain([&average]) {
            println!(
                "{:<12} {:>8} {:>7.3} {:>7.3} {:>7} {:>7} {:>12.0}",
                r.dataset,
                r.score.messages,
                r.score.ga,
                r.score.fga,
                r.score.predicted_groups,
                r.score.true_groups,
                r.lines_per_s
            );
        }
    }
    Ok(())
}

fn loo(files: &[PathBuf], json: bool, grid: bool) -> ace_core::Result<()> {
    let mut sets = Vec::new();
    for file in files {
        let (messages, truth) = read(file)?;
        if messages.is_empty() {
            skip_empty(file);
        } else {
            sets.push(Labelled { name: dataset_name(file), messages, truth });
        }
    }
    if sets.is_empty() {
        return Err(invalid(format!("no rows in any of {} file(s): nothing to score", files.len())));
    }
    let folds = leave_one_out(&sets, &candidates())?;
    let (in_ga, in_fga) = average(folds.iter().map(|f| &f.in_sample));
    let (loo_ga, loo_fga) = average(folds.iter().map(|f| &f.held_out));
    let knobs = |c: &MinerConfig| format!("sim {:.1} merge {}", c.similarity, c.variants_to_merge);
    if json {
        for f in &folds {
            let v = serde_json::json!({
                "dataset": f.name,
                "in_sample_ga": f.in_sample.ga,
                "in_sample_fga": f.in_sample.fga,
                "loo_ga": f.held_out.ga,
                "loo_fga": f.held_out.fga,
                "similarity": f.chosen.similarity,
                "variants_to_merge": f.chosen.variants_to_merge,
            });
            println!("{v}");
        }
        let v = serde_json::json!({
            "dataset": "average",
            "in_sample_ga": in_ga,
            "in_sample_fga": in_fga,
            "loo_ga": loo_ga,
            "loo_fga": loo_fga,
        });
        println!("{v}");
    } else {
        println!(
            "{:<12} {:>9} {:>9} {:>7} {:>7}  picked on the others",
            "dataset", "in GA", "in FGA", "LOO GA", "LOO FGA"
        );
        for f in &folds {
            println!(
                "{:<12} {:>9.3} {:>9.3} {:>7.3} {:>7.3}  {}",
                f.name,
                f.in_sample.ga,
                f.in_sample.fga,
                f.held_out.ga,
                f.held_out.fga,
                knobs(&f.chosen)
            );
        }
        println!(
            "{:<12} {:>9.3} {:>9.3} {:>7.3} {:>7.3}  default: {}",
            "average",
            in_ga,
            in_fga,
            loo_ga,
            loo_fga,
            knobs(&MinerConfig::default())
        );
    }
    if grid {
        let configs = candidates();
        let names: Vec<String> = sets.iter().map(|s| format!("{:>11.11}", s.name)).collect();
        println!("\n{:<18} {}  {:>11}", "GA/FGA", names.join(" "), "average");
        for (cfg, row) in configs.iter().zip(score_grid(&sets, &configs)?) {
            let cells: Vec<String> = row.iter().map(|s| format!("{:.3}/{:.3}", s.ga, s.fga)).collect();
            let (ga, fga) = average(&row);
            println!("{:<18} {}  {ga:.3}/{fga:.3}", knobs(cfg), cells.join(" "));
        }
    }
    Ok(())
}

/// Prints the true groups of `truth` that `predicted` did not get exactly: the first message of
/// each, and the sizes of the groups its messages went to (and what else those hold).
fn mistakes(dataset: &str, messages: &[String], truth: &[String], predicted: &[u64], n: usize) {
    let mut by_truth: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_pred: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, (t, &p)) in truth.iter().zip(predicted).enumerate() {
        by_truth.entry(t).or_default().push(i);
        by_pred.entry(p).or_default().push(i);
    }
    let mut wrong: Vec<(&str, &Vec<usize>)> = by_truth
        .iter()
        .filter(|(_, idx)| {
            let p = predicted[idx[0]];
            !(idx.iter().all(|&i| predicted[i] == p) && by_pred[&p].len() == idx.len())
        })
        .map(|(t, idx)| (*t, idx))
        .collect();
    wrong.sort_by_key(|(_, idx)| std::cmp::Reverse(idx.len()));
    for (t, idx) in wrong.into_iter().take(n) {
        let mut went: HashMap<u64, usize> = HashMap::new();
        for &i in idx {
            *went.entry(predicted[i]).or_default() += 1;
        }
        println!("{dataset} {t} ({} msgs) e.g. {:?}", idx.len(), messages[idx[0]]);
        for (p, k) in went {
            let members = &by_pred[&p];
            let others = members.iter().find(|&&i| truth[i] != t);
            println!(
                "    {k} -> group of {} {}",
                members.len(),
                others.map_or(String::new(), |&i| format!("also {} {:?}", truth[i], messages[i]))
            );
        }
    }
}

/// A dataset with no rows has no score: it is left out of the table and the average (scored
/// as 0, it would drag the average down), and said so on stderr.
fn skip_empty(file: &Path) {
    eprintln!("{}: no rows; left out of the scores and the average", file.display());
}

fn invalid(reason: String) -> ace_core::Error {
    ace_core::Error::InvalidInput { field: "path", reason }
}

pub(crate) fn collect(path: &Path, depth: usize, out: &mut Vec<PathBuf>) -> ace_core::Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if depth < 2 {
        let entries = std::fs::read_dir(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        for entry in entries.flatten() {
            let p = entry.path();
            let is_structured = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("_structured.csv"));
            if p.is_dir() || is_structured {
                collect(&p, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn dataset_name(file: &Path) -> String {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    name.split('_').next().unwrap_or(name).to_owned()
}

pub(crate) fn read(file: &Path) -> ace_core::Result<(Vec<String>, Vec<String>)> {
    let mut reader = csv::Reader::from_path(file).map_err(|e| invalid(format!("{}: {e}", file.display())))?;
    let headers = reader.headers().map_err(|e| invalid(format!("{}: {e}", file.display())))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| invalid(format!("{}: no {name:?} column (Loghub structured CSV expected)", file.display())))
    };
    let (content, event) = (column("Content")?, column("EventId")?);
    let mut messages = Vec::new();
    let mut truth = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| invalid(format!("{} row {}: {e}", file.display(), i + 2)))?;
        messages.push(record.get(content).unwrap_or_default().to_owned());
        truth.push(record.get(event).unwrap_or_default().to_owned());
    }
    Ok((messages, truth))
}
