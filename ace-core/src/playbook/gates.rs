//! The promotion gates: a bullet moves shadow → staging → prod on helpful feedback, back down
//! when it stops passing, and to quarantine when harm catches up with help. Only explicit
//! feedback moves a bullet, so the gates are judged here, right after it is recorded (and on
//! import).

use super::log::Op;
use super::{Bullet, Feedback, PlaybookConfig, Playbooks, Stage};
use crate::error::Result;

/// The gates' verdict for a bullet: the stage it should move to, if any (one step at a time).
pub(super) fn evaluate(b: &Bullet, cfg: &PlaybookConfig) -> Option<Stage> {
    if b.stage == Stage::Quarantined {
        return None;
    }
    let (h, x) = (b.helpful, b.harmful);
    if h + x >= cfg.quarantine_after && x >= h {
        return Some(Stage::Quarantined);
    }
    let ratio = if x == 0 { f64::INFINITY } else { f64::from(h) / f64::from(x) };
    let passes = |(n, r): (u32, f64)| h >= n && ratio >= r;
    match b.stage {
        Stage::Shadow if passes(cfg.staging_gate) => Some(Stage::Staging),
        Stage::Staging if passes(cfg.prod_gate) => Some(Stage::Prod),
        Stage::Staging if !passes(cfg.staging_gate) => Some(Stage::Shadow),
        Stage::Prod if !passes(cfg.prod_gate) => Some(Stage::Staging),
        _ => None,
    }
}

impl Playbooks {
    /// Records feedback on a bullet, then moves it one stage if the gates say so. Returns its
    /// stage afterwards.
    pub fn feedback(&self, domain: &str, id: &str, feedback: Feedback) -> Result<Stage> {
        let at = self.now();
        let (stage, promoted) = self.with(domain, |d| {
            let slot = d.slot(id)?;
            let id = d.state.bullets[slot].id.clone();
            let mut ops = vec![Op::Tag { id: id.clone(), feedback, at }];
            d.apply(&ops[0], None, &*self.embedder)?;
            let before = d.state.bullets[slot].stage;
            if let Some(stage) = evaluate(&d.state.bullets[slot], &self.cfg) {
                let op = Op::Stage { id, stage, at };
                d.apply(&op, None, &*self.embedder)?;
                ops.push(op);
            }
            let after = d.state.bullets[slot].stage;
            let promoted = after > before && after != Stage::Quarantined;
            Ok(((after, promoted), ops))
        })?;
        if promoted {
            self.metrics.promoted.inc();
        }
        Ok(stage)
    }
}
