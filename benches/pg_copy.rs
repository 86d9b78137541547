//! ace's append rate into PostgreSQL beside `psql \copy` of the same rows into the same table,
//! in one run (issue 20 item 4: the ratio should reach 0.9).
//!
//!     cargo bench --bench pg_copy --features postgres [-- ROUNDS]
//!
//! Each round stores 100,000 stage records (three named metrics each) with `Store::append`, in
//! batches of 10,000 (the engine's default batch), into one schema, and then has `psql` copy the
//! same rows, written as `COPY` text, into a second schema made by the same migrations (the
//! same table and indexes). The two alternate, so the machine's load falls on both. The
//! server is `ACE_TEST_POSTGRES_URL` or the local `test` database. `psql`'s time includes its
//! connection (a few milliseconds of the hundreds each copy takes).

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use ace::store::{MetricRecord, Record, Store};
use ace::{PgOptions, PgStore, Timestamp};

const ROWS: usize = 100_000;
const BATCH: usize = 10_000;

fn records(round: usize) -> Vec<Record> {
    let agents: Vec<Arc<str>> = (0..100).map(|i| Arc::from(format!("agent-{i:04}"))).collect();
    let names: [Arc<str>; 3] = [Arc::from("tokens_in"), Arc::from("tokens_out"), Arc::from("cost_usd")];
    let stage: Arc<str> = Arc::from("execution");
    (0..ROWS)
        .map(|i| {
            let n = round * ROWS + i;
            Record::Metric(MetricRecord {
                ts: Timestamp::from_micros(1_700_000_000_000_000 + n as i64),
                agent: agents[n % 100].clone(),
                task: Arc::from(format!("task-{}", n / 4)),
                stage: stage.clone(),
                duration_s: Some(1.0 + (n % 13) as f64 * 0.1),
                success: Some(!n.is_multiple_of(31)),
                metrics: vec![
                    (names[0].clone(), 800.0 + (n % 17) as f64),
                    (names[1].clone(), 200.0 + (n % 11) as f64),
                    (names[2].clone(), 0.0042),
                ],
            })
        })
        .collect()
}

/// The rows as `COPY` text, the columns ace writes (the ids are plain ASCII: nothing to escape).
fn copy_text(records: &[Record]) -> String {
    let mut out = String::with_capacity(records.len() * 128);
    for r in records {
        let Record::Metric(m) = r else { continue };
        let metrics: serde_json::Map<String, serde_json::Value> =
            m.metrics.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{:?}\t{}\t{}",
            m.ts.as_micros(),
            m.agent,
            m.task,
            m.stage,
            m.duration_s.unwrap_or(0.0),
            if m.success == Some(true) { "t" } else { "f" },
            serde_json::Value::Object(metrics)
        );
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let url = std::env::var("ACE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned());
    let pid = std::process::id();
    let (ours, theirs) = (format!("ace_copy_ace_{pid}"), format!("ace_copy_psql_{pid}"));
    let connect = |schema: &str| match PgStore::connect(&url, PgOptions::default().schema(schema.to_owned())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pg_copy: no PostgreSQL at {url}: {e}");
            std::process::exit(0);
        }
    };
    let (store, other) = (connect(&ours), connect(&theirs));
    let file = std::env::temp_dir().join(format!("ace_copy_{pid}.tsv"));
    let (mut ace_rates, mut psql_rates) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let rows = records(round);
        let started = Instant::now();
        for batch in rows.chunks(BATCH) {
            store.append(batch).expect("append");
        }
        ace_rates.push(ROWS as f64 / started.elapsed().as_secs_f64());

        std::fs::write(&file, copy_text(&rows)).expect("the COPY file");
        let copy = format!(
            "\\copy {theirs}.ace_performance_metrics (created_at, agent_id, task_id, stage, duration_s, success, metrics) from '{}'",
            file.display()
        );
        let started = Instant::now();
        let status = Command::new("psql").args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c", &copy]).status();
        let elapsed = started.elapsed().as_secs_f64();
        match status {
            Ok(s) if s.success() => psql_rates.push(ROWS as f64 / elapsed),
            other => {
                eprintln!("pg_copy: psql failed ({other:?}); is psql installed?");
                break;
            }
        }
        println!(
            "round {round}: ace {:.0} rows/s, psql \\copy {:.0} rows/s",
            ace_rates[round],
            psql_rates.last().copied().unwrap_or(f64::NAN)
        );
    }
    let _ = std::fs::remove_file(&file);
    assert_eq!(store.count_metrics().unwrap(), (ROWS * ace_rates.len()) as u64, "every row stored");
    store.drop_schema(&ours).unwrap();
    other.drop_schema(&theirs).unwrap();
    if psql_rates.is_empty() {
        return;
    }
    let (a, p) = (median(ace_rates), median(psql_rates));
    println!("median of {rounds} rounds: ace {a:.0} rows/s, psql \\copy {p:.0} rows/s, ratio {:.2}", a / p);
}
