//! Fuzzes the playbook import, a trust boundary (playbook bullets become prompt text): any bytes
//! as ACE text, as a JSON export, or spliced into a real JSON export, imported trusted or not.
//! Checks that each input is imported or refused with a typed error (never a panic), that
//! nothing imported forges a line of `render` or `export_text`, that every bullet imported
//! unverified enters at `shadow`, and that an edited export passes verification only when the
//! bullets it imports say what the original's did.
//!
//! Run: `cargo +nightly fuzz run playbook_import` (from the repository root; needs
//! `cargo install cargo-fuzz`). The stable counterpart is `ace-core/tests/playbook_import_fuzz.rs`.

#![no_main]

use std::sync::OnceLock;

use ace_core::playbook::{Bullet, Stage, Trust};
use ace_core::{Ace, MemoryStore};
use libfuzzer_sys::fuzz_target;

/// A real export of two bullets, and what it says.
fn source() -> &'static (String, Vec<(String, String, String)>) {
    static SOURCE: OnceLock<(String, Vec<(String, String, String)>)> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let ace = Ace::builder().store(MemoryStore::new()).build().expect("an engine");
        let pb = ace.playbooks();
        pb.add("src", "strategies", "Verify the total before charging", Some("t-1")).expect("added");
        pb.add("src", "pitfalls", "Never guess an id", None).expect("added");
        let export = pb.export_json("src").expect("exported");
        let said = said(&pb.bullets("src").expect("read"));
        ace.close().expect("closed");
        (export, said)
    })
}

fn said(bullets: &[Bullet]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = bullets.iter().map(|b| (b.id.clone(), b.section.clone(), b.content.clone())).collect();
    v.sort();
    v
}

/// Every line of a rendering or export is a `## ` header or a `[` bullet.
fn assert_lines(text: &str, what: &str) {
    for line in text.lines() {
        assert!(line.starts_with("## ") || line.starts_with('['), "{what} has a forged line {line:?} in {text:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let trust = if mode & 1 == 0 { Trust::Verify } else { Trust::Trusted };
    let ace = Ace::builder().store(MemoryStore::new()).build().expect("an engine");
    let pb = ace.playbooks();
    let (result, edited) = match (mode >> 1) % 3 {
        0 => (pb.import_text("fuzz", &String::from_utf8_lossy(rest), trust), false),
        1 => (pb.import_json("fuzz", &String::from_utf8_lossy(rest), trust), false),
        _ => {
            // Two bytes place the cut; one more says how many bytes of the export it replaces.
            let (export, _) = source();
            let (at, rest) = rest.split_at(rest.len().min(3));
            let pos = at.iter().take(2).fold(0usize, |n, &b| n << 8 | usize::from(b)) % (export.len() + 1);
            let cut = (pos + usize::from(at.get(2).copied().unwrap_or(0) % 8)).min(export.len());
            let mut bytes = export.as_bytes()[..pos].to_vec();
            bytes.extend_from_slice(rest);
            bytes.extend_from_slice(&export.as_bytes()[cut..]);
            (pb.import_json("fuzz", &String::from_utf8_lossy(&bytes), trust), true)
        }
    };
    match result {
        Ok(_) => {
            let bullets = pb.bullets("fuzz").expect("read back");
            let export = pb.export_text("fuzz").expect("exported");
            assert_lines(&export, "export_text");
            assert_lines(&pb.render("fuzz", None, 1000, Stage::Shadow, 1_000_000).expect("rendered").text, "render");
            if trust == Trust::Verify {
                assert!(bullets.iter().all(|b| b.stage == Stage::Shadow), "an unverified bullet skipped the gates");
                if edited {
                    assert_eq!(said(&bullets), source().1, "an edited export passed verification");
                }
            }
        }
        Err(e) => assert!(["invalid_input", "corrupt"].contains(&e.code()), "{e}"),
    }
    ace.close().expect("closed");
});
