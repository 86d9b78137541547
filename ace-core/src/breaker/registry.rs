//! Named breakers sharing a default configuration, their events and their metrics.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::limit::{Bulkhead, RateLimiter};
use super::{BreakerConfig, CircuitBreaker, Retry, RetryConfig, State};
use crate::clock::{Clock, Timestamp};
use crate::error::Result;

/// What happened to a breaker (or a limiter).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// It moved from one state to another.
    Transition {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// Why, in a few words.
        why: &'static str,
    },
    /// A call was not let through (in `state`).
    Rejected {
        /// The breaker's state.
        state: State,
    },
    /// A rate limiter or bulkhead turned a call away.
    Limited,
    /// The window's failure rate met its threshold (a closed breaker opens next; a metrics-only
    /// one publishes this once per episode and carries on).
    FailureRateExceeded {
        /// The rate, in percent.
        rate: f64,
    },
    /// The window's slow-call rate met its threshold (as `FailureRateExceeded`).
    SlowCallRateExceeded {
        /// The rate, in percent.
        rate: f64,
    },
    /// A call ended with an error the classifier ignores.
    IgnoredError,
    /// The breaker was reset by hand.
    Reset,
}

/// An event of a named breaker or limiter.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerEvent {
    /// Its name.
    pub name: Arc<str>,
    /// What happened.
    pub kind: EventKind,
    /// When (engine clock); rejections, limits and ignored errors carry the epoch (reading the
    /// clock for each would cost more than the event).
    pub at: Timestamp,
}

type Subscriber = Arc<dyn Fn(&BreakerEvent) + Send + Sync>;

/// The subscribers of a registry's events; rejections are delivered only when someone listens.
#[derive(Default)]
pub(crate) struct Sink {
    subscribers: RwLock<Vec<Subscriber>>,
    listening: AtomicBool,
}

impl Sink {
    fn emit(&self, event: &BreakerEvent) {
        for s in self.subscribers.read().iter() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s(event))).is_err() {
                tracing::error!(breaker = &*event.name, "a breaker event subscriber panicked; the call carries on");
            }
        }
    }

    pub(crate) fn emit_transition(&self, name: &Arc<str>, from: State, to: State, why: &'static str, at: Timestamp) {
        match to {
            State::Open | State::ForcedOpen => {
                tracing::warn!(breaker = &**name, %from, %to, why, "circuit breaker opened")
            }
            _ => tracing::info!(breaker = &**name, %from, %to, why, "circuit breaker changed state"),
        }
        if self.listening.load(Ordering::Acquire) {
            self.emit(&BreakerEvent { name: name.clone(), kind: EventKind::Transition { from, to, why }, at });
        }
    }

    pub(crate) fn emit_rejection(&self, name: &Arc<str>, state: State) {
        if self.listening.load(Ordering::Relaxed) {
            self.emit(&BreakerEvent { name: name.clone(), kind: EventKind::Rejected { state }, at: Timestamp::EPOCH });
        }
    }

    pub(crate) fn emit_rate_exceeded(&self, name: &Arc<str>, failure: Option<f64>, slow: Option<f64>, at: Timestamp) {
        tracing::info!(breaker = &**name, ?failure, ?slow, "circuit breaker rate threshold met");
        if self.listening.load(Ordering::Acquire) {
            if let Some(rate) = failure {
                self.emit(&BreakerEvent { name: name.clone(), kind: EventKind::FailureRateExceeded { rate }, at });
            }
            if let Some(rate) = slow {
                self.emit(&BreakerEvent { name: name.clone(), kind: EventKind::SlowCallRateExceeded { rate }, at });
            }
        }
    }

    pub(crate) fn emit_ignored(&self, name: &Arc<str>) {
        if self.listening.load(Ordering::Relaxed) {
            self.emit(&BreakerEvent { name: name.clone(), kind: EventKind::IgnoredError, at: Timestamp::EPOCH });
        }
    }

    pub(crate) fn emit_reset(&self, name: &Arc<str>, at: Timestamp) {
        if self.listening.load(Ordering::Acquire) {
            self.emit(&BreakerEvent { name: name.clone(), kind: EventKind::Reset, at });
        }
    }

    pub(crate) fn emit_limited(&self, name: &Arc<str>) {
        if self.listening.load(Ordering::Relaxed) {
            self.emit(&BreakerEvent { name: name.clone(), kind: EventKind::Limited, at: Timestamp::EPOCH });
        }
    }
}

/// The engine's named breakers, rate limiters and bulkheads. Breakers made by name take the
/// registry's default configuration.
pub struct Breakers {
    defaults: RwLock<BreakerConfig>,
    clock: Arc<dyn Clock>,
    breakers: RwLock<BTreeMap<Arc<str>, Arc<CircuitBreaker>>>,
    limiters: RwLock<BTreeMap<Arc<str>, Arc<RateLimiter>>>,
    bulkheads: RwLock<BTreeMap<Arc<str>, Arc<Bulkhead>>>,
    retries: RwLock<BTreeMap<Arc<str>, Arc<Retry>>>,
    /// Attempts that ran out of time, by policy name.
    timeouts: RwLock<BTreeMap<Arc<str>, Arc<AtomicU64>>>,
    sink: Arc<Sink>,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers")
            .field("breakers", &self.breakers.read().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Breakers {
    /// An empty registry on `clock` with `defaults` for breakers made by name.
    #[must_use]
    pub fn new(defaults: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Breakers {
            defaults: RwLock::new(defaults),
            clock,
            breakers: RwLock::default(),
            limiters: RwLock::default(),
            bulkheads: RwLock::default(),
            retries: RwLock::default(),
            timeouts: RwLock::default(),
            sink: Arc::default(),
        }
    }

    /// The breaker named `name`, made with the default configuration on first use. An invalid
    /// name (empty, over 256 bytes, control characters) is an error.
    pub fn get(&self, name: &str) -> Result<Arc<CircuitBreaker>> {
        if let Some(b) = self.breakers.read().get(name) {
            return Ok(b.clone());
        }
        let cfg = self.defaults.read().clone();
        self.get_with(name, cfg)
    }

    /// The breaker named `name`, made with `cfg` if it does not exist yet (an existing breaker
    /// keeps its configuration).
    pub fn get_with(&self, name: &str, cfg: BreakerConfig) -> Result<Arc<CircuitBreaker>> {
        let mut map = self.breakers.write();
        if let Some(b) = map.get(name) {
            return Ok(b.clone());
        }
        let b = Arc::new(CircuitBreaker::with_sink(name, cfg, self.clock.clone(), self.sink.clone())?);
        map.insert(b.name.clone(), b.clone());
        Ok(b)
    }

    /// Registers a breaker made elsewhere (with its own clock); an existing one of the same name
    /// stays and is returned.
    pub(crate) fn adopt(&self, breaker: CircuitBreaker) -> Arc<CircuitBreaker> {
        let mut map = self.breakers.write();
        map.entry(breaker.name.clone()).or_insert_with(|| Arc::new(breaker)).clone()
    }

    pub(crate) fn sink(&self) -> Arc<Sink> {
        self.sink.clone()
    }

    /// Replaces the default configuration for breakers made from now on.
    pub fn set_defaults(&self, cfg: BreakerConfig) -> Result<()> {
        cfg.validate()?;
        *self.defaults.write() = cfg;
        Ok(())
    }

    /// The rate limiter named `name`, made with `per_second` and `burst` on first use.
    pub fn rate_limiter(&self, name: &str, per_second: f64, burst: u32) -> Result<Arc<RateLimiter>> {
        if let Some(l) = self.limiters.read().get(name) {
            return Ok(l.clone());
        }
        let mut map = self.limiters.write();
        if let Some(l) = map.get(name) {
            return Ok(l.clone());
        }
        let l = Arc::new(RateLimiter::with_sink(name, per_second, burst, self.clock.clone(), self.sink.clone())?);
        map.insert(Arc::from(name), l.clone());
        Ok(l)
    }

    /// The bulkhead named `name`, letting `max_concurrent` calls run at once, made on first use.
    pub fn bulkhead(&self, name: &str, max_concurrent: u32) -> Result<Arc<Bulkhead>> {
        if let Some(b) = self.bulkheads.read().get(name) {
            return Ok(b.clone());
        }
        let mut map = self.bulkheads.write();
        if let Some(b) = map.get(name) {
            return Ok(b.clone());
        }
        let b = Arc::new(Bulkhead::with_sink(name, max_concurrent, self.sink.clone())?);
        map.insert(Arc::from(name), b.clone());
        Ok(b)
    }

    /// The retry named `name`, made with `cfg` on first use (an existing one keeps its
    /// configuration); its counts are the series `ace_retry_calls_total` and
    /// `ace_retry_attempts_total`. A `Retry::new` made alone belongs to no registry and exports
    /// nothing.
    pub fn retry(&self, name: &str, cfg: RetryConfig) -> Result<Arc<Retry>> {
        if let Some(r) = self.retries.read().get(name) {
            return Ok(r.clone());
        }
        let mut map = self.retries.write();
        if let Some(r) = map.get(name) {
            return Ok(r.clone());
        }
        let r = Arc::new(Retry::new(name, cfg)?);
        map.insert(Arc::from(name), r.clone());
        Ok(r)
    }

    /// Counts an attempt of the policy `name` that ran out of time (`ace_timeouts_total{name}`):
    /// the bindings' policies run their timers in the language and report each expiry here.
    pub fn count_timeout(&self, name: &str) -> Result<()> {
        if let Some(n) = self.timeouts.read().get(name) {
            n.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        crate::event::validate_id("policy", name)?;
        self.timeouts.write().entry(Arc::from(name)).or_default().fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The attempts of the policy `name` that ran out of time.
    #[must_use]
    pub fn timeouts(&self, name: &str) -> u64 {
        self.timeouts.read().get(name).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Every breaker, by name.
    #[must_use]
    pub fn all(&self) -> Vec<Arc<CircuitBreaker>> {
        self.breakers.read().values().cloned().collect()
    }

    /// Calls `f` with every event of this registry's breakers and limiters: state transitions
    /// (on the thread that caused them) and rejections. A panicking subscriber is logged and the
    /// call carries on.
    pub fn subscribe(&self, f: impl Fn(&BreakerEvent) + Send + Sync + 'static) {
        self.sink.subscribers.write().push(Arc::new(f));
        self.sink.listening.store(true, Ordering::Release);
    }
}

/// Registered in the engine's registry: the breakers' and limiters' series, read at scrape time.
#[derive(Clone, Default)]
pub struct BreakerSeries {
    registry: Arc<OnceLock<Weak<Breakers>>>,
}

impl fmt::Debug for BreakerSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerSeries").finish_non_exhaustive()
    }
}

impl BreakerSeries {
    pub(crate) fn attach(&self, breakers: &Arc<Breakers>) {
        let _ = self.registry.set(Arc::downgrade(breakers));
    }
}

impl Collector for BreakerSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), fmt::Error> {
        let Some(registry) = self.registry.get().and_then(Weak::upgrade) else { return Ok(()) };
        let breakers = registry.all();
        let mut state = encoder.encode_descriptor(
            "ace_circuit_breaker_state",
            "1 for the breaker's current state, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for b in &breakers {
            let now = b.state();
            for s in State::ALL {
                ConstGauge::new(i64::from(s == now))
                    .encode(state.encode_family(&[("name", b.name()), ("state", s.as_str())])?)?;
            }
        }
        let mut failures = encoder.encode_descriptor(
            "ace_circuit_breaker_failures",
            "Calls through the breaker that failed",
            None,
            MetricType::Counter,
        )?;
        for b in &breakers {
            ConstCounter::new(b.counts().failures).encode(failures.encode_family(&[("name", b.name())])?)?;
        }
        let mut calls = encoder.encode_descriptor(
            "ace_circuit_breaker_calls",
            "Calls through the breaker by outcome (success, failure, ignored; slow calls are also counted as slow)",
            None,
            MetricType::Counter,
        )?;
        for b in &breakers {
            let c = b.counts();
            for (outcome, n) in
                [("success", c.successes), ("failure", c.failures), ("ignored", c.ignored), ("slow", c.slow)]
            {
                ConstCounter::new(n).encode(calls.encode_family(&[("name", b.name()), ("outcome", outcome)])?)?;
            }
        }
        let mut rejected = encoder.encode_descriptor(
            "ace_circuit_breaker_not_permitted_calls",
            "Calls the breaker did not let through",
            None,
            MetricType::Counter,
        )?;
        for b in &breakers {
            ConstCounter::new(b.counts().not_permitted).encode(rejected.encode_family(&[("name", b.name())])?)?;
        }
        let limiters: Vec<Arc<RateLimiter>> = registry.limiters.read().values().cloned().collect();
        let bulkheads: Vec<Arc<Bulkhead>> = registry.bulkheads.read().values().cloned().collect();
        let mut limited = encoder.encode_descriptor(
            "ace_limiter_rejected_calls",
            "Calls a rate limiter or bulkhead turned away, by limiter",
            None,
            MetricType::Counter,
        )?;
        for l in &limiters {
            ConstCounter::new(l.rejected()).encode(limited.encode_family(&[("name", l.name()), ("kind", "rate")])?)?;
        }
        for b in &bulkheads {
            ConstCounter::new(b.rejected())
                .encode(limited.encode_family(&[("name", b.name()), ("kind", "bulkhead")])?)?;
        }
        let mut in_flight = encoder.encode_descriptor(
            "ace_bulkhead_in_flight",
            "Calls running through the bulkhead now",
            None,
            MetricType::Gauge,
        )?;
        for b in &bulkheads {
            ConstGauge::new(i64::from(b.in_flight())).encode(in_flight.encode_family(&[("name", b.name())])?)?;
        }
        encode_retries(&registry, &mut encoder)
    }
}

/// The retries' and the policies' series (resilience4j's `resilience4j_retry_calls{kind}`).
fn encode_retries(registry: &Breakers, encoder: &mut DescriptorEncoder) -> std::result::Result<(), fmt::Error> {
    let retries: Vec<Arc<Retry>> = registry.retries.read().values().cloned().collect();
    let mut calls = encoder.encode_descriptor(
        "ace_retry_calls",
        "Calls through a retry by outcome (successful_without_retry, successful_with_retry, \
         failed_without_retry, failed_with_retry)",
        None,
        MetricType::Counter,
    )?;
    for r in &retries {
        let c = r.counts();
        for (outcome, n) in [
            ("successful_without_retry", c.succeeded_without_retry),
            ("successful_with_retry", c.succeeded_with_retry),
            ("failed_without_retry", c.failed_without_retry),
            ("failed_with_retry", c.failed_with_retry),
        ] {
            ConstCounter::new(n).encode(calls.encode_family(&[("name", r.name()), ("outcome", outcome)])?)?;
        }
    }
    let mut attempts = encoder.encode_descriptor(
        "ace_retry_attempts",
        "Retries made (attempts after the first)",
        None,
        MetricType::Counter,
    )?;
    for r in &retries {
        ConstCounter::new(r.counts().retries).encode(attempts.encode_family(&[("name", r.name())])?)?;
    }
    let timeouts: Vec<(Arc<str>, u64)> =
        registry.timeouts.read().iter().map(|(k, n)| (k.clone(), n.load(Ordering::Relaxed))).collect();
    let mut timed_out = encoder.encode_descriptor(
        "ace_timeouts",
        "Attempts a policy's timeout cut short, by policy",
        None,
        MetricType::Counter,
    )?;
    for (name, n) in &timeouts {
        ConstCounter::new(*n).encode(timed_out.encode_family(&[("name", &**name)])?)?;
    }
    Ok(())
}
