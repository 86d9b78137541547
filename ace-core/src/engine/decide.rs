//! From signals to at most one intervention per call: the decider's choice, the fleet's gates,
//! the judge's say, then the audit record and the subscribers.

use super::Ace;
use crate::clock::Timestamp;
use crate::decision::Intervention;
use crate::record::{InterventionRecord, Record};
use crate::signal::Signal;
use crate::telemetry::{AgentType, Type};

impl Ace {
    /// At most one intervention for the signals of one call; counted, timed and delivered to
    /// the subscribers. Kept out of line: most calls raise no signal.
    #[cold]
    #[inline(never)]
    pub(super) fn decide(
        &self,
        now: Timestamp,
        agent: &str,
        task: &str,
        signals: &[Signal],
    ) -> Option<Box<Intervention>> {
        if signals.is_empty() {
            return None;
        }
        let shared = self.shared();
        let started = std::time::Instant::now();
        let mut intervention = shared.decider.decide(now, agent, task, signals)?;
        if let Some(fleet) = &shared.fleet
            && !fleet.claimed(&intervention)
        {
            shared.decider.forget(intervention.id);
            return None;
        }
        let route = self.route(&intervention);
        if let (super::judging::Route::Now, Some(judge)) = (&route, &self.inner.judge)
            && !self.judged(judge, &mut intervention)
        {
            return None;
        }
        let strategy = intervention.strategy.as_str();
        if shared.scoring_only {
            self.deliver(&intervention, strategy, agent);
            return Some(Box::new(intervention));
        }
        shared
            .metrics
            .intervention_latency
            .get_or_create(&Type { r#type: strategy })
            .observe(started.elapsed().as_secs_f64());
        let agent_label = shared.metrics.core.labels.label(&intervention.agent);
        shared.metrics.interventions.get_or_create(&AgentType { agent_id: agent_label, r#type: strategy }).inc();
        let record = Record::Intervention(InterventionRecord {
            ts: now,
            id: intervention.id,
            agent: intervention.agent.clone(),
            task: intervention.task.clone(),
            strategy: intervention.strategy,
            severity: intervention.severity,
            signal_kind: intervention.signals[0].kind,
            reason: intervention.reason.clone(),
            signals_json: serde_json::to_string(&intervention.signals).unwrap_or_else(|_| "[]".to_owned()),
            outcome: None,
        });
        // Closing races a decision only at shutdown; the intervention is still returned.
        let _ = self.persist(intervention.id.0, record);
        self.deliver(&intervention, strategy, agent);
        if let super::judging::Route::Later = route {
            self.judge_later(&intervention);
        }
        Some(Box::new(intervention))
    }

    pub(super) fn deliver(&self, intervention: &Intervention, strategy: &str, agent: &str) {
        let subscribers = self.inner.subscribers.read().clone();
        for subscriber in subscribers {
            let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| subscriber(intervention)));
            if delivered.is_err() {
                self.shared().metrics.subscriber_failures.inc();
                tracing::error!(strategy, agent, "an intervention subscriber panicked; the recording call carries on");
            }
        }
    }
}
