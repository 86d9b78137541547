//! The read side: retrieval scores every live bullet from a chosen stage up by half BM25 and
//! half cosine similarity, and rendering turns the best ones into prompt text within a token
//! budget (counting the injection).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use super::io::bullet_line;
use super::log::Op;
use super::types::prompt_safe;
use super::{Bullet, Playbooks, Rendered, Scored, Stage, embed};
use crate::error::Result;

impl Playbooks {
    /// The `k` best bullets for `query` at `min_stage` or later (quarantined ones never).
    pub fn retrieve(&self, domain: &str, query: &str, k: usize, min_stage: Stage) -> Result<Vec<Scored>> {
        let started = Instant::now();
        let q = embed::checked(&*self.embedder, &[query])?.remove(0);
        let d = self.domain(domain)?;
        let mut d = d.lock();
        d.used = Instant::now();
        let n = d.state.bullets.len();
        let mut lexical = vec![0f32; n];
        d.bm25.score(query, &mut lexical);
        let top_lexical = lexical.iter().copied().fold(0f32, f32::max);
        let dim = self.embedder.dim();
        let mut scored: Vec<(usize, f32)> = Vec::with_capacity(n);
        for (slot, b) in d.state.bullets.iter().enumerate() {
            if b.stage < min_stage || b.stage == Stage::Quarantined {
                continue;
            }
            let cosine = embed::dot(&q, &d.vectors[slot * dim..(slot + 1) * dim]).max(0.0);
            let lex = if top_lexical > 0.0 { lexical[slot] / top_lexical } else { 0.0 };
            scored.push((slot, 0.5 * lex + 0.5 * cosine));
        }
        if scored.len() > k {
            scored.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1));
            scored.truncate(k);
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let out =
            scored.into_iter().map(|(slot, score)| Scored { bullet: d.state.bullets[slot].clone(), score }).collect();
        drop(d);
        self.metrics.retrieval.observe(started.elapsed().as_secs_f64());
        Ok(out)
    }

    /// Renders bullets (the `k` best for `query` from `min_stage` up, or all of them when `query`
    /// is `None`) as prompt text within `token_budget` (4 bytes a token), grouped by section;
    /// their injection counts go up. Ids, sections and contents are written escaped where a
    /// character could break a line (stored before such characters were refused), so no stored text
    /// forges a header or a bullet.
    pub fn render(
        &self,
        domain: &str,
        query: Option<&str>,
        k: usize,
        min_stage: Stage,
        token_budget: usize,
    ) -> Result<Rendered> {
        let bullets: Vec<Bullet> = match query {
            Some(q) => self.retrieve(domain, q, k, min_stage)?.into_iter().map(|s| s.bullet).collect(),
            None => self
                .bullets(domain)?
                .into_iter()
                .filter(|b| b.stage >= min_stage && b.stage != Stage::Quarantined)
                .take(k)
                .collect(),
        };
        let mut by_section: BTreeMap<Cow<'_, str>, Vec<String>> = BTreeMap::new();
        let mut used = 0usize;
        let mut ids = Vec::new();
        for b in &bullets {
            let text = bullet_line(b);
            let section = prompt_safe(&b.section);
            let header = if by_section.contains_key(&section) { 0 } else { section.len() + 4 };
            if (used + text.len() + header).div_ceil(4) > token_budget {
                continue;
            }
            used += text.len() + header;
            by_section.entry(section).or_default().push(text);
            ids.push(b.id.clone());
        }
        let mut text = String::with_capacity(used);
        for (section, lines) in &by_section {
            text.push_str("## ");
            text.push_str(section);
            text.push('\n');
            lines.iter().for_each(|l| text.push_str(l));
        }
        if !ids.is_empty() {
            let at = self.now();
            let ids = ids.clone();
            self.with(domain, |d| {
                let op = Op::Inject { ids, at };
                d.apply(&op, None, &*self.embedder)?;
                Ok(((), vec![op]))
            })?;
        }
        Ok(Rendered { tokens: text.len().div_ceil(4), text, ids })
    }
}
