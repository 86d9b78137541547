//! The playbook import's harness over a few thousand inputs from a seeded generator (no nightly
//! toolchain needed): random ACE text and random edits of a real JSON export, trusted or not.
//! Every input is imported or refused with a typed error (never a panic), and whatever was
//! imported renders and exports one line per header or bullet: nothing forges a line.

use ace_core::playbook::{Stage, Trust};
use ace_core::{Ace, MemoryStore};

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
}

const PIECES: &[&str] = &[
    "## ",
    "[",
    "]",
    "::",
    " ",
    "\n",
    "\r",
    "\t",
    "\0",
    "\u{1b}[31m",
    "\u{2028}",
    "\u{85}",
    "é",
    "日本",
    "\u{10ffff}",
    "helpful=",
    "harmful=",
    "4294967295",
    "-1",
    "99999999999",
    "str-00001",
    "a-",
    "NaN",
    "{",
    "}",
    "\"",
    "\\",
    "general",
    "Verify the total",
    "\u{feff}",
];

fn random_text(rng: &mut Rng) -> String {
    let n = rng.below(24);
    (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect()
}

/// Every line of a rendering or export is a `## ` header or a `[` bullet.
fn assert_lines(text: &str, what: &str) {
    for line in text.lines() {
        assert!(line.starts_with("## ") || line.starts_with('['), "{what} has a forged line {line:?} in {text:?}");
    }
}

fn check(ace: &Ace, domain: &str) {
    let pb = ace.playbooks();
    let bullets = pb.bullets(domain).unwrap();
    let export = pb.export_text(domain).unwrap();
    assert_lines(&export, "export_text");
    let sections: std::collections::BTreeSet<_> = bullets.iter().map(|b| b.section.clone()).collect();
    assert_eq!(export.lines().count(), bullets.len() + sections.len(), "{export:?}");
    let rendered = pb.render(domain, None, 1000, Stage::Shadow, 1_000_000).unwrap();
    assert_lines(&rendered.text, "render");
}

#[test]
fn random_text_imports_are_imported_or_refused_and_never_forge_a_line() {
    let ace = Ace::builder().store(MemoryStore::new()).build().unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut imported, mut refused) = (0, 0);
    for i in 0..3000 {
        let lines = rng.below(6);
        let text: String = (0..lines)
            .map(|_| match rng.below(3) {
                0 => format!("## {}\n", random_text(&mut rng)),
                1 => format!("[{}] helpful={} :: {}\n", random_text(&mut rng), rng.below(9), random_text(&mut rng)),
                _ => format!("{}\n", random_text(&mut rng)),
            })
            .collect();
        let trust = if i % 2 == 0 { Trust::Verify } else { Trust::Trusted };
        match ace.playbooks().import_text("fuzz", &text, trust) {
            Ok(_) => {
                imported += 1;
                check(&ace, "fuzz");
            }
            Err(e) => {
                refused += 1;
                assert_eq!(e.code(), "invalid_input", "{text:?}: {e}");
            }
        }
    }
    assert!(imported > 100 && refused > 100, "imported {imported}, refused {refused}: the generator covers both");
}

#[test]
fn random_edits_of_a_json_export_are_refused_or_imported_safely() {
    let ace = Ace::builder().store(MemoryStore::new()).build().unwrap();
    let pb = ace.playbooks();
    pb.add("src", "strategies", "Verify the total before charging", Some("t-1")).unwrap();
    pb.add("src", "pitfalls", "Never guess an id", None).unwrap();
    let export = pb.export_json("src").unwrap();
    let chars: Vec<char> = export.chars().collect();
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let mut unverified_accepted = 0;
    for i in 0..2000 {
        let mut edited = chars.clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(edited.len());
            match rng.below(3) {
                0 => {
                    edited.remove(at);
                }
                1 => edited.splice(at..at, PIECES[rng.below(PIECES.len())].chars()).for_each(drop),
                _ => edited[at] = PIECES[rng.below(PIECES.len())].chars().next().unwrap_or('x'),
            }
        }
        let text: String = edited.into_iter().collect();
        let trust = if i % 2 == 0 { Trust::Verify } else { Trust::Trusted };
        match pb.import_json("dst", &text, trust) {
            Ok(_) => {
                if trust == Trust::Verify {
                    unverified_accepted += 1;
                }
                check(&ace, "dst");
            }
            Err(e) => assert!(["invalid_input", "corrupt"].contains(&e.code()), "{text:?}: {e}"),
        }
    }
    // An edit an untrusted import accepts left the digested content as it was (whitespace, a
    // field the digest does not cover); never more than a small share.
    assert!(unverified_accepted < 200, "{unverified_accepted} edited exports passed verification");
}
