//! Import and export: the ACE text format (`## section` headers, `[id] helpful=X harmful=Y ::
//! content` lines) and JSON, both ways. An import replaces the domain's content as one logged
//! restoration, checked like any write.
//!
//! An import is a trust boundary: the playbook becomes prompt text. Every imported bullet is
//! checked (id grammar, section, content without control characters, provenance size); a JSON
//! export carries a `digest` over what it holds, and an untrusted import refuses one that does
//! not match ([`Error::Corrupt`]); an untrusted import's bullets enter at `shadow` with no
//! feedback counted, so they earn their stage here through the gates. A trusted import
//! ([`Trust::Trusted`]) keeps stages and counters, digest or not, and the log says so.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::domain::prefix;
use super::gates::evaluate;
use super::log::{Op, State, hex};
use super::types::{check_bullet_id, check_content, check_provenance, check_section, prompt_safe};
use super::{Bullet, Playbooks, Stage};
use crate::error::{Error, Result};

/// How far an import's content is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The default: a JSON export's digest must match; bullets enter at `shadow` with their
    /// feedback counters at zero.
    Verify,
    /// Imported as it is (stages and counters kept, a missing or mismatched digest accepted);
    /// the version log records the import as trusted and unverified.
    Trusted,
}

impl Trust {
    /// `Trusted` when `trusted`, else `Verify`.
    #[must_use]
    pub const fn from_flag(trusted: bool) -> Self {
        if trusted { Trust::Trusted } else { Trust::Verify }
    }
}

/// The digest of an export: SHA-256 over the domain, version, log hash and bullets it holds.
fn digest(domain: &str, version: u64, hash: &str, bullets: &[Bullet]) -> Result<String> {
    let body = serde_json::to_string(bullets).map_err(|e| Error::Internal(format!("bullets to JSON: {e}")))?;
    let mut h = Sha256::new();
    h.update(b"ace playbook export v1\0");
    h.update(domain.as_bytes());
    h.update([0]);
    h.update(version.to_be_bytes());
    h.update(hash.as_bytes());
    h.update([0]);
    h.update(body.as_bytes());
    Ok(hex(&h.finalize()))
}

impl Playbooks {
    /// Every bullet (quarantined ones too) in the ACE text format, grouped by section, without
    /// counting an injection: an export, not a prompt. Characters that could break a line
    /// (stored before they were refused) are printed escaped.
    pub fn export_text(&self, domain: &str) -> Result<String> {
        let mut by_section: BTreeMap<String, String> = BTreeMap::new();
        for b in self.bullets(domain)? {
            let lines = by_section.entry(prompt_safe(&b.section).into_owned()).or_default();
            lines.push_str(&bullet_line(&b));
        }
        Ok(by_section.into_iter().map(|(section, lines)| format!("## {section}\n{lines}")).collect())
    }

    /// The domain as JSON: `{domain, version, hash, digest, bullets}` (`digest` covers the rest;
    /// an untrusted import checks it).
    pub fn export_json(&self, domain: &str) -> Result<String> {
        let d = self.domain(domain)?;
        let d = d.lock();
        let hash = hex(&d.hash);
        let digest = digest(&d.name, d.version, &hash, &d.state.bullets)?;
        let v = serde_json::json!({
            "domain": d.name, "version": d.version, "hash": hash, "digest": digest, "bullets": d.state.bullets,
        });
        serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Replaces the domain's content with an export of [`Playbooks::export_json`] (recorded as a
    /// new version). Unless `trust` is [`Trust::Trusted`], the export's digest must match
    /// ([`Error::Corrupt`] otherwise) and its bullets enter at `shadow` with no feedback counted.
    /// Returns the bullets imported.
    pub fn import_json(&self, domain: &str, json: &str, trust: Trust) -> Result<usize> {
        #[derive(Deserialize)]
        struct Export {
            #[serde(default)]
            domain: String,
            #[serde(default)]
            version: u64,
            #[serde(default)]
            hash: String,
            digest: Option<String>,
            bullets: Vec<Bullet>,
        }
        let export: Export = serde_json::from_str(json)
            .map_err(|e| Error::invalid("playbook", format!("not a playbook export: {e}")))?;
        check_bullets(&export.bullets)?;
        let matches = match &export.digest {
            Some(d) => *d == digest(&export.domain, export.version, &export.hash, &export.bullets)?,
            None => false,
        };
        let mut bullets = export.bullets;
        let reason = match trust {
            Trust::Trusted => format!(
                "trusted import of a JSON export (unverified; digest {})",
                match (&export.digest, matches) {
                    (None, _) => "absent",
                    (Some(_), true) => "matched",
                    (Some(_), false) => "mismatched",
                }
            ),
            Trust::Verify if matches => {
                bullets.iter_mut().for_each(untrusted);
                "import of a JSON export (digest verified; bullets at shadow)".to_owned()
            }
            Trust::Verify => {
                return Err(Error::Corrupt {
                    what: "playbook export".to_owned(),
                    reason: match export.digest {
                        None => "it has no digest; import it as trusted to accept it unverified".to_owned(),
                        Some(_) => "its digest does not match its content: the export was altered (import it as \
                                    trusted to accept it unverified)"
                            .to_owned(),
                    },
                });
            }
        };
        self.restore(domain, bullets, &reason)
    }

    /// Replaces the domain's content with bullets in the ACE text format: `## section` headers
    /// and `[id] helpful=X harmful=Y :: content` lines (bullets without counters are accepted;
    /// other lines are ignored). Text carries no digest: unless `trust` is [`Trust::Trusted`]
    /// the bullets enter at `shadow` with their counters ignored; a trusted import keeps the
    /// counters and lets the gates judge them. Returns the bullets imported.
    pub fn import_text(&self, domain: &str, text: &str, trust: Trust) -> Result<usize> {
        let now = self.now();
        let mut section = "general".to_owned();
        let mut bullets = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at_line = |e: Error| Error::invalid("playbook", format!("line {}: {e}", n + 1));
            let line = line.trim();
            if let Some(h) = line.strip_prefix("## ") {
                section = h.trim().to_owned();
                check_section(&section).map_err(at_line)?;
                continue;
            }
            let Some(rest) = line.strip_prefix('[') else { continue };
            let Some((id, rest)) = rest.split_once(']') else { continue };
            let (meta, content) = rest.split_once("::").unwrap_or(("", rest));
            let count = |key: &str| {
                meta.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key))
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            };
            let content = content.trim();
            check_bullet_id(id.trim()).map_err(at_line)?;
            check_content(content).map_err(at_line)?;
            let mut b = Bullet {
                id: id.trim().to_owned(),
                section: section.clone(),
                content: content.to_owned(),
                helpful: count("helpful="),
                harmful: count("harmful="),
                neutral: 0,
                injected: 0,
                reinforced: 0,
                stage: Stage::Shadow,
                created_at: now,
                updated_at: now,
                provenance: Some("import".to_owned()),
            };
            match trust {
                Trust::Trusted => {
                    while let Some(stage) = evaluate(&b, &self.cfg) {
                        if stage == b.stage || (stage < b.stage && stage != Stage::Quarantined) {
                            break;
                        }
                        b.stage = stage;
                    }
                }
                Trust::Verify => untrusted(&mut b),
            }
            bullets.push(b);
        }
        let reason = match trust {
            Trust::Trusted => "trusted import of ACE text (unverified)",
            Trust::Verify => "import of ACE text (unverified; bullets at shadow)",
        };
        self.restore(domain, bullets, reason)
    }

    fn restore(&self, domain: &str, bullets: Vec<Bullet>, reason: &str) -> Result<usize> {
        let next_id = check_bullets(&bullets)?;
        let n = bullets.len();
        let state = Box::new(State { bullets, next_id });
        self.with(domain, |d| {
            let op = Op::Restore { state, reason: reason.to_owned() };
            d.apply(&op, None, &*self.embedder)?;
            Ok(((), vec![op]))
        })?;
        Ok(n)
    }
}

/// Checks imported bullets (ids against the grammar and unique, sections, contents,
/// provenance); returns the next id number per prefix.
fn check_bullets(bullets: &[Bullet]) -> Result<BTreeMap<String, u32>> {
    let mut seen = hashbrown::HashSet::new();
    let mut next_id: BTreeMap<String, u32> = BTreeMap::new();
    for b in bullets {
        check_bullet_id(&b.id)?;
        check_section(&b.section)?;
        check_content(&b.content)?;
        check_provenance(b.provenance.as_deref())?;
        if !seen.insert(b.id.as_str()) {
            return Err(Error::invalid("playbook", format!("bullet id {:?} appears twice", b.id)));
        }
        let next = next_id.entry(prefix(&b.section)).or_insert(0);
        *next = (*next).max(id_number(&b.id));
    }
    Ok(next_id)
}

/// The number after an id's last `-` (0 if none).
pub(super) fn id_number(id: &str) -> u32 {
    id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// An untrusted bullet starts over: at `shadow` (a quarantined one stays there), with no
/// feedback counted.
fn untrusted(b: &mut Bullet) {
    if b.stage != Stage::Quarantined {
        b.stage = Stage::Shadow;
    }
    (b.helpful, b.harmful, b.neutral) = (0, 0, 0);
}

/// A bullet as one line of the text format (and of a rendered prompt), escaped.
pub(super) fn bullet_line(b: &Bullet) -> String {
    format!("[{}] helpful={} harmful={} :: {}\n", prompt_safe(&b.id), b.helpful, b.harmful, prompt_safe(&b.content))
}
