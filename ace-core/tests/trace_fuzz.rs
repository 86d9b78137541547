//! The trace reader behind `ace replay` over a few thousand hostile traces from a seeded
//! generator (no nightly toolchain needed; the stable counterpart of
//! `fuzz/fuzz_targets/trace.rs`): lines of every event type with values of the wrong type, out
//! of range, huge, escaped, cut short or corrupted, and bytes that are not UTF-8. Each trace is
//! replayed or refused with an `invalid_input` error naming its line (never a panic), and on
//! every line the fast reader of common lines reads what serde reads, wherever it answers.

use ace_core::AceConfig;
use ace_core::replay;

/// xorshift64*: a fixed seed, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, of: &'a [T]) -> &'a T {
        &of[self.below(of.len())]
    }
}

const TYPES: &[&str] = &["stage", "error", "task_start", "task_end", "context_refresh", "label", "x", ""];
const NUMBERS: &[&str] = &[
    "1700000000.0",
    "1700000000.5",
    "0",
    "-1",
    "-0.0",
    "1.5e3",
    "1e308",
    "-1e308",
    "1e-320",
    "123456789012345678",
    "0.1234567890123456789",
    "1e23",
    "2.5",
    "01",
    "1.",
    "\"1\"",
    "null",
    "true",
];
const STRINGS: &[&str] = &[
    "\"agent-1\"",
    "\"task-1\"",
    "\"planning\"",
    "\"execution\"",
    "\"Planning\"",
    "\"\"",
    "\"caf\u{e9} \u{2713}\"",
    "\"a\\nb\"",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"a\\\"b\"",
    "\"\u{1b}[31m\"",
    "\"high\"",
    "\"critical\"",
    "\"loud\"",
    "1",
    "null",
    "{}",
    "[\"a\"]",
];
const BOOLS: &[&str] = &["true", "false", "null", "1", "\"true\""];
const FIELDS: &[(&str, u8)] = &[
    ("agent", b's'),
    ("task", b's'),
    ("stage", b's'),
    ("duration_s", b'n'),
    ("success", b'b'),
    ("metrics", b'm'),
    ("tool", b's'),
    ("args_digest", b's'),
    ("kind", b's'),
    ("message", b's'),
    ("severity", b's'),
    ("failed", b'b'),
    ("mistake_index", b'n'),
    ("extra", b's'),
];

fn value(rng: &mut Rng, kind: u8) -> String {
    match kind {
        b's' if rng.below(20) == 0 => format!("\"{}\"", "a".repeat(200 + rng.below(200))),
        b's' => rng.pick(STRINGS).to_string(),
        b'n' => rng.pick(NUMBERS).to_string(),
        b'b' => rng.pick(BOOLS).to_string(),
        _ => match rng.below(4) {
            0 => "null".into(),
            1 => "{}".into(),
            2 => format!("{{\"tokens\":{},\"x\":{}}}", rng.pick(NUMBERS), rng.pick(NUMBERS)),
            _ => format!("[{}]", rng.pick(NUMBERS)),
        },
    }
}

/// A well-formed event of any type, its strings and numbers drawn from odd but valid ones.
fn valid(rng: &mut Rng, ts: f64) -> Vec<u8> {
    let agent = rng.pick(&["agent-1", "agent-2", "caf\u{e9}", "a\\nb"]).to_string();
    let task = rng.pick(&["task-1", "task-2", "t"]).to_string();
    let stage = rng.pick(&["planning", "execution", "tool_call"]).to_string();
    let number = rng.pick(&["0", "2.5", "1e-320", "1e300", "0.1234567890123456789", "123456789012345678"]).to_string();
    let line = match rng.below(6) {
        0 => format!(r#"{{"ts":{ts},"type":"task_start","agent":"{agent}","task":"{task}"}}"#),
        1 => format!(
            r#"{{"ts":{ts},"type":"stage","agent":"{agent}","task":"{task}","stage":"{stage}","duration_s":{number},"success":{},"metrics":{{"tokens":{number}}},"tool":"search","args_digest":"{:016x}"}}"#,
            rng.below(4) != 0,
            rng.below(3)
        ),
        2 => format!(
            r#"{{"ts":{ts},"type":"error","agent":"{agent}","task":"{task}","stage":"{stage}","kind":"TimeoutError","message":"db-{} timed out","severity":{}}}"#,
            rng.below(5),
            rng.pick(&["null", "\"low\"", "\"critical\""])
        ),
        3 => format!(r#"{{"ts":{ts},"type":"context_refresh","agent":"{agent}"}}"#),
        4 => format!(
            r#"{{"ts":{ts},"type":"task_end","agent":"{agent}","task":"{task}","success":{}}}"#,
            rng.below(2) == 0
        ),
        _ => format!(
            r#"{{"type":"label","task":"{task}","failed":{},"mistake_index":{}}}"#,
            rng.below(2) == 0,
            rng.below(9)
        ),
    };
    line.into_bytes()
}

/// One line: a well-formed event, its fields' values drawn from hostile ones, some
/// fields left out; sometimes corrupted after the fact.
fn line(rng: &mut Rng, ts: &mut f64) -> Vec<u8> {
    *ts += 0.5;
    if rng.below(10) < 7 {
        return valid(rng, *ts);
    }
    let mut fields = vec![format!("\"type\":\"{}\"", rng.pick(TYPES))];
    if rng.below(6) != 0 {
        fields.push(if rng.below(4) == 0 { format!("\"ts\":{}", rng.pick(NUMBERS)) } else { format!("\"ts\":{ts}") });
    }
    for (name, kind) in FIELDS {
        if rng.below(3) != 0 {
            fields.push(format!("\"{name}\":{}", value(rng, *kind)));
        }
    }
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }
    let mut out = format!("{{{}}}", fields.join(",")).into_bytes();
    match rng.below(12) {
        0 => {
            out.remove(rng.below(out.len()));
        }
        1 => out.insert(rng.below(out.len() + 1), *rng.pick(b"{}[],:\"\\ \t\r0e-")),
        2 => out.insert(rng.below(out.len() + 1), 0xff),
        3 => out.truncate(rng.below(out.len())),
        4 => out = b"   ".to_vec(),
        _ => {}
    }
    out
}

#[test]
fn hostile_traces_are_replayed_or_refused_by_line_and_the_fast_reader_agrees_with_serde() {
    let mut rng = Rng(0x5eed_7ace_0000_0001);
    let (mut replayed, mut refused, mut scanned, mut lines) = (0, 0, 0, 0);
    for t in 0..1500 {
        let mut ts = 1_700_000_000.0;
        let mut trace = Vec::new();
        if t % 50 == 0 {
            trace.extend_from_slice("\u{feff}".as_bytes());
        }
        // Mostly short traces, so that a refusal at a bad line still leaves the rest exercised.
        for _ in 0..=rng.below(6) {
            let l = line(&mut rng, &mut ts);
            scanned += usize::from(replay::check_scan(&l));
            lines += 1;
            trace.extend_from_slice(&l);
            trace.push(b'\n');
        }
        let name = format!("trace-{t}");
        match replay::run(&trace[..], &name, AceConfig::default()) {
            Ok(run) => {
                replayed += 1;
                assert!(run.events as usize <= trace.split(|&b| b == b'\n').count());
                let _ = run.score();
            }
            Err(e) => {
                refused += 1;
                assert_eq!(e.code(), "invalid_input", "{e}");
                assert!(e.to_string().contains(&format!("{name} line ")), "{e}");
            }
        }
    }
    eprintln!("replayed {replayed}, refused {refused}; the fast reader read {scanned} of {lines} lines");
    // The generator reaches both outcomes and the fast reader, so the checks were not vacuous.
    assert!(replayed > 200 && refused > 200, "replayed {replayed}, refused {refused}");
    assert!(scanned > lines / 20, "the fast reader read {scanned} of {lines} lines");
}
