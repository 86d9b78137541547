//! The playbooks' vocabulary: what a bullet is, what goes in (insights, feedback) and what
//! comes out (merge reports, scored and rendered bullets, counts), the configuration, and the
//! rules every bullet's section and content follow. Plain data, so that callers and bindings
//! can name it without the machinery.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};

/// The longest bullet, in bytes.
pub const MAX_CONTENT_BYTES: usize = 8 * 1024;

/// The longest provenance (where a bullet came from: a trace id, a run, a URL), in bytes. It is
/// kept with the bullet in every version of the log, so an unbounded one would grow the store
/// without limit.
pub const MAX_PROVENANCE_BYTES: usize = 1024;

/// Where a bullet is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// New: retrievable only when asked for shadow bullets.
    Shadow,
    /// Some evidence it helps.
    Staging,
    /// Proven.
    Prod,
    /// Did more harm than good: never retrieved or rendered.
    Quarantined,
}

impl Stage {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Shadow => "shadow",
            Stage::Staging => "staging",
            Stage::Prod => "prod",
            Stage::Quarantined => "quarantined",
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "shadow" => Ok(Stage::Shadow),
            "staging" => Ok(Stage::Staging),
            "prod" => Ok(Stage::Prod),
            "quarantined" => Ok(Stage::Quarantined),
            _ => Err(Error::invalid(
                "stage",
                format!("unknown playbook stage {s:?}; one of shadow, staging, prod, quarantined"),
            )),
        }
    }
}

/// Feedback on a bullet after it was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feedback {
    /// It helped.
    Helpful,
    /// It hurt.
    Harmful,
    /// Neither.
    Neutral,
}

/// One piece of advice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bullet {
    /// Stable id, `sec-00042` (rendered `[sec-00042]`).
    pub id: String,
    /// Its section (`strategies`, `pitfalls`, ...).
    pub section: String,
    /// The advice.
    pub content: String,
    /// Explicit helpful feedback.
    pub helpful: u32,
    /// Explicit harmful feedback.
    pub harmful: u32,
    /// Explicit neutral feedback.
    pub neutral: u32,
    /// Times rendered into a prompt.
    pub injected: u64,
    /// Times a duplicate insight strengthened it instead of adding a bullet.
    pub reinforced: u32,
    /// Its stage.
    pub stage: Stage,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Which task or insight produced it.
    pub provenance: Option<String>,
}

/// An insight to merge into a playbook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insight {
    /// The section it belongs to.
    pub section: String,
    /// The advice.
    pub content: String,
    /// Which task or reflection produced it.
    pub provenance: Option<String>,
}

impl Insight {
    /// An insight for `section` with `content`.
    pub fn new(section: &str, content: &str) -> Self {
        Insight { section: section.to_owned(), content: content.to_owned(), provenance: None }
    }
}

/// A pair close enough to be reported, not close enough to merge by itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NearDuplicate {
    /// The insight's position in the batch.
    pub insight: usize,
    /// The existing bullet.
    pub bullet: String,
    /// Their cosine similarity.
    pub similarity: f32,
    /// Whether the hook merged them.
    pub merged: bool,
}

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MergeReport {
    /// Ids of the bullets added.
    pub added: Vec<String>,
    /// (insight position, bullet id) of insights that strengthened an existing bullet.
    pub merged: Vec<(usize, String)>,
    /// Pairs between the near and the duplicate thresholds.
    pub near_duplicates: Vec<NearDuplicate>,
    /// (insight position, reason) of insights not used.
    pub skipped: Vec<(usize, String)>,
}

/// What retrieval returns for one bullet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scored {
    /// The bullet.
    pub bullet: Bullet,
    /// Its combined score in [0, 1].
    pub score: f32,
}

/// A rendering of bullets into prompt text.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rendered {
    /// The text, grouped by section (`## section` headers).
    pub text: String,
    /// The ids rendered (their injection counts went up).
    pub ids: Vec<String>,
    /// Estimated tokens used (4 bytes a token).
    pub tokens: usize,
}

/// Thresholds and gates of the playbooks.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PlaybookConfig {
    /// Cosine at or above which an insight is a duplicate (0.92).
    pub dup_threshold: f32,
    /// Cosine at or above which a pair is reported as a near-duplicate (0.80).
    pub near_threshold: f32,
    /// With a [semantic](super::Embedder::semantic) embedder: cosine at or above which an
    /// insight is a paraphrase of a bullet and merges into it (0.60, chosen on the paraphrase set
    /// `tests/data/paraphrases.json` with all-MiniLM-L6-v2, whose paraphrases in other words
    /// score 0.42 to 0.87 and whose same-topic distractors 0.19 to 0.72; see docs/playbook.md).
    pub semantic_dup_threshold: f32,
    /// With a semantic embedder: cosine at or above which a pair is reported as a
    /// near-duplicate (and put to the hook) (0.50).
    pub semantic_near_threshold: f32,
    /// Helpful feedback and helpful:harmful ratio to move shadow → staging (3, 3.0).
    pub staging_gate: (u32, f64),
    /// ... and staging → prod (5, 5.0).
    pub prod_gate: (u32, f64),
    /// Feedback (helpful + harmful) before a bullet can be quarantined (3).
    pub quarantine_after: u32,
    /// Domains unused this long are unloaded from memory (they stay in the store) (1 h).
    pub idle_unload: Duration,
}

impl Default for PlaybookConfig {
    fn default() -> Self {
        PlaybookConfig {
            dup_threshold: 0.92,
            near_threshold: 0.80,
            semantic_dup_threshold: 0.60,
            semantic_near_threshold: 0.50,
            staging_gate: (3, 3.0),
            prod_gate: (5, 5.0),
            quarantine_after: 3,
            idle_unload: Duration::from_secs(3600),
        }
    }
}

impl PlaybookConfig {
    /// Checks the thresholds: `0 < near <= dup <= 1` (both pairs), gates at least 1 and finite.
    pub fn validate(&self) -> Result<()> {
        for (name, dup, near) in [
            ("dup_threshold", self.dup_threshold, self.near_threshold),
            ("semantic_dup_threshold", self.semantic_dup_threshold, self.semantic_near_threshold),
        ] {
            if !(near > 0.0 && near <= dup && dup <= 1.0) {
                return Err(Error::config(name, &format!("{dup} / {near}"), "need 0 < near <= dup <= 1"));
            }
        }
        for (name, (n, r)) in [("staging_gate", self.staging_gate), ("prod_gate", self.prod_gate)] {
            if n == 0 || !r.is_finite() || r < 1.0 {
                return Err(Error::config(
                    name,
                    &format!("{n} / {r}"),
                    "needs at least 1 helpful and a finite ratio >= 1",
                ));
            }
        }
        Ok(())
    }
}

/// Counts of one domain.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PlaybookStats {
    /// The domain.
    pub domain: String,
    /// Its version (operations applied).
    pub version: u64,
    /// Its content hash (hex).
    pub hash: String,
    /// Bullets by stage.
    pub stages: BTreeMap<String, usize>,
    /// Bullets by section.
    pub sections: BTreeMap<String, usize>,
}

/// The longest bullet id, in bytes.
pub const MAX_BULLET_ID_BYTES: usize = 64;

/// Whether `c` may not appear in text that reaches a prompt: control characters (line breaks,
/// escape, NUL, ...; a tab is allowed) and the Unicode line and paragraph separators. Any of
/// them could start a line of its own in the rendered playbook (a forged `## section` header or
/// `[id]` bullet).
pub(super) fn breaks_prompt(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with every character that [breaks a prompt line](breaks_prompt) written as its Rust
/// escape (`\n`, `\u{1b}`): what rendering and the text export print for data stored before
/// those characters were refused, so that nothing stored can forge a line of the prompt.
pub(super) fn prompt_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(breaks_prompt) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if breaks_prompt(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn check_prompt_text(field: &'static str, text: &str) -> Result<()> {
    match text.chars().find(|&c| breaks_prompt(c)) {
        Some(c) => Err(Error::invalid(
            field,
            format!("must not contain control characters or line separators (found {:?})", c),
        )),
        None => Ok(()),
    }
}

/// Checks a bullet id against the id grammar: 1 to [`MAX_BULLET_ID_BYTES`] bytes of ASCII
/// letters, digits, `-`, `_`, `.` or `:`, starting with a letter or digit (`str-00042`,
/// `calc.7`). Ids ace makes (`str-00042`) always match; imported ones are checked.
pub fn check_bullet_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if id.is_empty() || id.len() > MAX_BULLET_ID_BYTES {
        return Err(Error::invalid("bullet id", format!("must be 1 to {MAX_BULLET_ID_BYTES} bytes, got {}", id.len())));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) || !id.chars().all(ok_char) {
        return Err(Error::invalid(
            "bullet id",
            format!(
                "{:?}: ASCII letters, digits, '-', '_', '.' or ':', starting with a letter or digit",
                crate::event::truncate(id, 40)
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_content(content: &str) -> Result<()> {
    if content.trim().is_empty() {
        return Err(Error::invalid("content", "a bullet's content must not be empty"));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(Error::invalid("content", format!("{} bytes; at most {MAX_CONTENT_BYTES}", content.len())));
    }
    check_prompt_text("content", content)
}

pub(super) fn check_provenance(provenance: Option<&str>) -> Result<()> {
    match provenance {
        Some(p) if p.len() > MAX_PROVENANCE_BYTES => {
            Err(Error::invalid("provenance", format!("{} bytes; at most {MAX_PROVENANCE_BYTES}", p.len())))
        }
        _ => Ok(()),
    }
}

pub(super) fn check_section(section: &str) -> Result<()> {
    crate::event::validate_id("section", section)?;
    check_prompt_text("section", section)
}
