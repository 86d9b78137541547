//! The engine's playbooks: every call is a Promise computed on the thread pool (store I/O,
//! embedding, search).

use ace::error::count;
use ace::playbook::{Feedback, Insight, Stage, Trust};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::Value;

use crate::engine::Engine;
use crate::{IntoJs, Job, data};

/// An insight to merge.
#[napi(object)]
pub struct InsightInput {
    /// The section (`strategies`, `pitfalls`, ...).
    pub section: String,
    /// The text.
    pub content: String,
    /// Where it came from (a task id, a reflection).
    pub provenance: Option<String>,
}

fn stage(s: Option<String>) -> Result<Stage> {
    s.as_deref().unwrap_or("staging").parse::<Stage>().js()
}

/// The engine's playbooks, one per domain.
#[napi]
pub struct NativePlaybooks {
    ace: ace::Ace,
}

#[napi]
impl NativePlaybooks {
    /// The playbooks of `engine`.
    #[napi(constructor)]
    pub fn new(engine: &Engine) -> Self {
        NativePlaybooks { ace: engine.ace.clone() }
    }

    fn job(&self, f: impl FnOnce(&ace::Ace) -> Result<Value> + Send + 'static) -> AsyncTask<Job> {
        let ace = self.ace.clone();
        Job::new(move || if ace.is_closed() { Err(ace::Error::Closed).js() } else { f(&ace) })
    }

    /// Adds one bullet; resolves to its id.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn add(&self, domain: String, section: String, content: String, provenance: Option<String>) -> AsyncTask<Job> {
        self.job(move |a| a.playbooks().add(&domain, &section, &content, provenance.as_deref()).js().map(Value::from))
    }

    /// Changes a bullet's section or content.
    #[napi(ts_return_type = "Promise<null>")]
    pub fn update(
        &self,
        domain: String,
        id: String,
        section: Option<String>,
        content: Option<String>,
    ) -> AsyncTask<Job> {
        self.job(move |a| {
            a.playbooks().update(&domain, &id, section.as_deref(), content.as_deref()).js().map(|()| Value::Null)
        })
    }

    /// Removes a bullet.
    #[napi(ts_return_type = "Promise<null>")]
    pub fn remove(&self, domain: String, id: String) -> AsyncTask<Job> {
        self.job(move |a| a.playbooks().remove(&domain, &id).js().map(|()| Value::Null))
    }

    /// Records `helpful`, `harmful` or `neutral` feedback; resolves to the bullet's stage.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn feedback(&self, domain: String, id: String, feedback: String) -> Result<AsyncTask<Job>> {
        let f = feedback.parse::<Feedback>().js()?;
        Ok(self.job(move |a| a.playbooks().feedback(&domain, &id, f).js().map(|s| Value::from(s.as_str()))))
    }

    /// Merges insights with write-time de-dup.
    #[napi(ts_return_type = "Promise<Record<string, unknown>>")]
    pub fn merge(&self, domain: String, insights: Vec<InsightInput>) -> AsyncTask<Job> {
        let list: Vec<Insight> = insights
            .into_iter()
            .map(|i| {
                let mut x = Insight::new(&i.section, &i.content);
                x.provenance = i.provenance;
                x
            })
            .collect();
        self.job(move |a| data(&a.playbooks().merge(&domain, &list).js()?))
    }

    /// The `k` best bullets for `query` from `minStage` up.
    #[napi(ts_return_type = "Promise<Array<Record<string, unknown>>>")]
    pub fn retrieve(
        &self,
        domain: String,
        query: String,
        k: Option<f64>,
        min_stage: Option<String>,
    ) -> Result<AsyncTask<Job>> {
        let s = stage(min_stage)?;
        let k = count("k", k.unwrap_or(5.0)).js()? as usize;
        Ok(self.job(move |a| data(&a.playbooks().retrieve(&domain, &query, k, s).js()?)))
    }

    /// Bullets as prompt text within `tokenBudget`.
    #[napi(ts_return_type = "Promise<Record<string, unknown>>")]
    pub fn render(
        &self,
        domain: String,
        query: Option<String>,
        k: Option<f64>,
        min_stage: Option<String>,
        token_budget: Option<f64>,
    ) -> Result<AsyncTask<Job>> {
        let s = stage(min_stage)?;
        let k = count("k", k.unwrap_or(20.0)).js()? as usize;
        let budget = count("token_budget", token_budget.unwrap_or(2000.0)).js()? as usize;
        Ok(self.job(move |a| data(&a.playbooks().render(&domain, query.as_deref(), k, s, budget).js()?)))
    }

    /// Every bullet of the domain.
    #[napi(ts_return_type = "Promise<Array<Record<string, unknown>>>")]
    pub fn bullets(&self, domain: String) -> AsyncTask<Job> {
        self.job(move |a| data(&a.playbooks().bullets(&domain).js()?))
    }

    /// One bullet.
    #[napi(ts_return_type = "Promise<Record<string, unknown>>")]
    pub fn bullet(&self, domain: String, id: String) -> AsyncTask<Job> {
        self.job(move |a| data(&a.playbooks().bullet(&domain, &id).js()?))
    }

    /// The domain's version, hash and counts.
    #[napi(ts_return_type = "Promise<Record<string, unknown>>")]
    pub fn stats(&self, domain: String) -> AsyncTask<Job> {
        self.job(move |a| data(&a.playbooks().stats(&domain).js()?))
    }

    /// Restores the domain as it was at `version`.
    #[napi(ts_return_type = "Promise<Record<string, unknown>>")]
    pub fn rollback(&self, domain: String, version: f64) -> Result<AsyncTask<Job>> {
        let version = count("version", version).js()?;
        Ok(self.job(move |a| data(&a.playbooks().rollback(&domain, u64::from(version)).js()?)))
    }

    /// The domain in the ACE text format.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn export_text(&self, domain: String) -> AsyncTask<Job> {
        self.job(move |a| a.playbooks().export_text(&domain).js().map(Value::from))
    }

    /// The domain as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn export_json(&self, domain: String) -> AsyncTask<Job> {
        self.job(move |a| a.playbooks().export_json(&domain).js().map(Value::from))
    }

    /// Replaces the domain with a JSON export; resolves to the bullets imported. Unless
    /// `trusted`, the export's digest must match and its bullets enter at `shadow`.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn import_json(&self, domain: String, json: String, trusted: Option<bool>) -> AsyncTask<Job> {
        let trust = Trust::from_flag(trusted.unwrap_or(false));
        self.job(move |a| a.playbooks().import_json(&domain, &json, trust).js().map(Value::from))
    }

    /// Replaces the domain with bullets in the ACE text format; resolves to the bullets imported.
    /// Unless `trusted`, they enter at `shadow` with their counters ignored.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn import_text(&self, domain: String, text: String, trusted: Option<bool>) -> AsyncTask<Job> {
        let trust = Trust::from_flag(trusted.unwrap_or(false));
        self.job(move |a| a.playbooks().import_text(&domain, &text, trust).js().map(Value::from))
    }

    /// Every version of the domain's log (chain verified): `{version, at, op, note}` objects.
    #[napi(ts_return_type = "Promise<Array<Record<string, unknown>>>")]
    pub fn history(&self, domain: String) -> AsyncTask<Job> {
        self.job(move |a| data(&a.playbooks().history(&domain).js()?))
    }
}
