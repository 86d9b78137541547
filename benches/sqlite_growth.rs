//! The SQLite store alone as its file grows: what a write costs at 2 M records and at 20 M, and
//! what the seed's query (one agent over a time range) costs on the file written.
//!
//! ```text
//! cargo bench --bench sqlite_growth                          # 20 M stage records, 1% errors, 1% interventions
//! cargo bench --bench sqlite_growth -- --records 4000000 --metrics-only
//! cargo bench --bench sqlite_growth -- --sql "DROP INDEX idx_ace_errors_created_agent"
//! cargo bench --bench sqlite_growth -- --db /tmp/scale.db --query-only   # a file the scale bench kept
//! ```
//!
//! Batches of 5,000 stage records from 10,000 agents go to `SqliteStore::append` one after the
//! other, each with about 50 errors and 50 interventions (as the scale bench's fleet makes them)
//! unless `--metrics-only`. Every tenth of the run prints the records a second and the bytes the
//! process wrote to disk a record (`/proc/self/io`: the WAL, then the checkpoints into the file),
//! so a cost that grows with the table shows as a rising column. `--sql` runs statements on the
//! new file before writing (to try an index away). Then the queries by agent over the file's
//! last 60 and 300 seconds, of stage records and of errors, are timed, with the plans SQLite chose.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ace::store::{ErrorQuery, ErrorRecord, InterventionRecord, MetricQuery, MetricRecord, Record, Store};
use ace::{InterventionId, Severity, SignalKind, SqliteStore, Strategy, Timestamp};
use sqlx::{Connection, Row};

const BATCH: usize = 5_000;
const AGENTS: usize = 10_000;
/// Stage records are 10 µs apart (100 k a second, the scale bench's pace).
const STEP_MICROS: i64 = 10;
const START: i64 = 1_700_000_000_000_000;

struct Args {
    records: usize,
    mix: bool,
    sql: Option<String>,
    db: Option<std::path::PathBuf>,
    query_only: bool,
}

fn parse() -> Args {
    let mut a = Args { records: 20_000_000, mix: true, sql: None, db: None, query_only: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bench" => {}
            "--metrics-only" => a.mix = false,
            "--query-only" => a.query_only = true,
            "--records" => a.records = it.next().and_then(|v| v.parse().ok()).expect("--records N"),
            "--sql" => a.sql = it.next(),
            "--db" => a.db = it.next().map(Into::into),
            other => panic!("unknown flag {other} (--records --metrics-only --sql --db --query-only)"),
        }
    }
    a
}

fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("Linux /proc");
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/self/io")
}

/// Runs `work` on the file at `path` through a connection of its own.
fn on_file<T>(path: &std::path::Path, work: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> T) -> T {
    let url = format!("sqlite://{}", path.display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        work(&mut conn).await
    })
}

/// The `n`th batch: stage records, and (with `mix`) the errors and interventions among them.
fn batch(n: usize, mix: bool, agents: &[Arc<str>], rng: &mut u64) -> Vec<Record> {
    let (stage, task, kind) =
        (Arc::<str>::from("execution"), Arc::<str>::from("task"), Arc::<str>::from("TimeoutError"));
    let message = Arc::<str>::from("model call timed out after 30 s");
    let signals = r#"{"kind":"error_accumulation","evidence":{"count":3,"window_s":300}}"#.repeat(6);
    let mut out = Vec::with_capacity(BATCH + BATCH / 40);
    for i in n * BATCH..(n + 1) * BATCH {
        let (ts, agent) = (Timestamp::from_micros(START + i as i64 * STEP_MICROS), agents[i % AGENTS].clone());
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        out.push(Record::Metric(MetricRecord {
            ts,
            agent: agent.clone(),
            task: task.clone(),
            stage: stage.clone(),
            duration_s: Some(1.5),
            success: Some(true),
            metrics: vec![(Arc::from("tokens_in"), 900.0)],
        }));
        if mix && (*rng).is_multiple_of(100) {
            out.push(Record::Error(ErrorRecord {
                ts,
                agent: agent.clone(),
                task: task.clone(),
                stage: stage.clone(),
                kind: kind.clone(),
                message: message.clone(),
                severity: Severity::Medium,
                pattern: ace::errors::PatternId(7),
            }));
        }
        if mix && *rng % 100 == 1 {
            out.push(Record::Intervention(InterventionRecord {
                ts,
                // Counting up from a random start, as an engine's ids do.
                id: InterventionId(0x05EE_D1D5_0000_0000_u64.wrapping_add(i as u64)),
                agent,
                task: task.clone(),
                strategy: Strategy::Replan,
                severity: Severity::Medium,
                signal_kind: SignalKind::ErrorAccumulation,
                reason: "errors accumulate: 3 of one pattern in 300 s".into(),
                signals_json: signals.clone(),
                outcome: None,
            }));
        }
    }
    out
}

fn write(store: &SqliteStore, args: &Args) {
    let agents: Vec<Arc<str>> = (0..AGENTS).map(|i| Arc::from(format!("agent-{i:05}"))).collect();
    let batches = args.records / BATCH;
    let tenth = (batches / 10).max(1);
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut bytes_then, mut total) = (written_bytes(), Duration::ZERO);
    println!("{:>12}  {:>10}  {:>22}", "records", "records/s", "bytes written a record");
    for n in 0..batches {
        let records = batch(n, args.mix, &agents, &mut rng);
        let started = Instant::now();
        store.append(&records).unwrap();
        total += started.elapsed();
        if (n + 1) % tenth == 0 {
            let (bytes, rows) = (written_bytes(), (tenth * BATCH) as f64);
            println!(
                "{:>12}  {:>10.0}  {:>22.0}",
                (n + 1) * BATCH,
                rows / total.as_secs_f64(),
                (bytes - bytes_then) as f64 / rows
            );
            (bytes_then, total) = (bytes, Duration::ZERO);
        }
    }
}

fn query(store: &SqliteStore, path: &std::path::Path) {
    let newest: i64 = on_file(path, async |c| {
        sqlx::query_scalar("SELECT MAX(created_at) FROM ace_performance_metrics").fetch_one(c).await.unwrap()
    });
    let agent = "agent-00042";
    for window in [60, 300] {
        let since = newest - window * 1_000_000;
        let query = MetricQuery::all().agent(agent).since(Timestamp::from_micros(since));
        timed(path, "stage records", "ace_performance_metrics", (window, since), || {
            store.query_metrics(&query).unwrap().len()
        });
        let query = ErrorQuery::all().agent(agent).since(Timestamp::from_micros(since));
        timed(path, "errors", "ace_errors", (window, since), || store.query_errors(&query).unwrap().len());
    }
}

/// Runs `run` (a query of `table` by agent-00042 over the last `window` seconds, from `since`) three times and prints the
/// records it found, the times and the plan SQLite chose.
fn timed(path: &std::path::Path, what: &str, table: &str, (window, since): (i64, i64), run: impl Fn() -> usize) {
    let plan: Vec<String> = on_file(path, async |c| {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE agent_id = ? AND created_at >= ? ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind("agent-00042").bind(since).fetch_all(c).await.unwrap();
        rows.iter().map(|r| r.get::<String, _>("detail")).collect()
    });
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..3 {
        let started = Instant::now();
        found = run();
        times.push(started.elapsed().as_secs_f64());
    }
    let times: Vec<String> = times.iter().map(|t| format!("{t:.4}")).collect();
    println!("agent-00042's {what} over the last {window} s: {found} in {} s ({})", times.join(", "), plan.join("; "));
}

fn main() {
    let args = parse();
    let dir = tempfile::tempdir().unwrap();
    let path = args.db.clone().unwrap_or_else(|| dir.path().join("growth.db"));
    if !args.query_only {
        drop(SqliteStore::open(&path).unwrap());
        if let Some(sql) = &args.sql {
            on_file(&path, async |c| sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(c).await.unwrap());
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    println!("sqlite schema version {}, {}", store.schema_version().unwrap(), path.display());
    if !args.query_only {
        write(&store, &args);
    }
    query(&store, &path);
    let stored = store.count_metrics().unwrap();
    store.close().unwrap();
    // After close: the last connection checkpoints the write-ahead log into the file.
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!("file {:.0} MB, {:.0} bytes a stage record", size as f64 / 1e6, size as f64 / stored.max(1) as f64);
}
