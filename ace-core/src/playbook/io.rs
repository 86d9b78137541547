//! Import and export: the ACE text format (`## section` headers, `[id] helpful=X harmful=Y ::
//! content` lines) and JSON, both ways. An import replaces the domain's content as one logged
//! restoration, checked like any write.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::domain::prefix;
use super::gates::evaluate;
use super::log::{Op, State, hex};
use super::types::{check_content, check_provenance, check_section};
use super::{Bullet, Playbooks, Stage};
use crate::error::{Error, Result};

impl Playbooks {
    /// Every bullet (quarantined ones too) in the ACE text format, grouped by section, without
    /// counting an injection: an export, not a prompt.
    pub fn export_text(&self, domain: &str) -> Result<String> {
        let mut by_section: BTreeMap<String, String> = BTreeMap::new();
        for b in self.bullets(domain)? {
            let lines = by_section.entry(b.section.clone()).or_default();
            lines.push_str(&format!("[{}] helpful={} harmful={} :: {}\n", b.id, b.helpful, b.harmful, b.content));
        }
        Ok(by_section.into_iter().map(|(section, lines)| format!("## {section}\n{lines}")).collect())
    }

    /// The domain as JSON: `{domain, version, hash, bullets}`.
    pub fn export_json(&self, domain: &str) -> Result<String> {
        let d = self.domain(domain)?;
        let d = d.lock();
        let v = serde_json::json!({ "domain": d.name, "version": d.version, "hash": hex(&d.hash), "bullets": d.state.bullets });
        serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Replaces the domain's content with an export of [`Playbooks::export_json`] (recorded as a
    /// new version). Returns the bullets imported.
    pub fn import_json(&self, domain: &str, json: &str) -> Result<usize> {
        #[derive(Deserialize)]
        struct Export {
            bullets: Vec<Bullet>,
        }
        let export: Export = serde_json::from_str(json)
            .map_err(|e| Error::invalid("playbook", format!("not a playbook export: {e}")))?;
        self.restore(domain, export.bullets, "import of a JSON export")
    }

    /// Replaces the domain's content with bullets in the ACE text format: `## section` headers
    /// and `[id] helpful=X harmful=Y :: content` lines (bullets without counters are accepted;
    /// other lines are ignored). Returns the bullets imported.
    pub fn import_text(&self, domain: &str, text: &str) -> Result<usize> {
        let now = self.now();
        let mut section = "general".to_owned();
        let mut bullets = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(h) = line.strip_prefix("## ") {
                section = h.trim().to_owned();
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
            check_content(content).map_err(|e| Error::invalid("playbook", format!("line {}: {e}", n + 1)))?;
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
            while let Some(stage) = evaluate(&b, &self.cfg) {
                if stage == b.stage || (stage < b.stage && stage != Stage::Quarantined) {
                    break;
                }
                b.stage = stage;
            }
            bullets.push(b);
        }
        self.restore(domain, bullets, "import of ACE text")
    }

    fn restore(&self, domain: &str, bullets: Vec<Bullet>, reason: &str) -> Result<usize> {
        let mut seen = hashbrown::HashSet::new();
        let mut next_id: BTreeMap<String, u32> = BTreeMap::new();
        for b in &bullets {
            check_section(&b.section)?;
            check_content(&b.content)?;
            check_provenance(b.provenance.as_deref())?;
            if !seen.insert(b.id.clone()) {
                return Err(Error::invalid("playbook", format!("bullet id {:?} appears twice", b.id)));
            }
            let n: u32 = b.id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let next = next_id.entry(prefix(&b.section)).or_insert(0);
            *next = (*next).max(n);
        }
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
