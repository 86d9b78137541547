//! Building an engine: each organ gets its own settings from the configuration, the parts are
//! wired (the entry table over the organs, the writer over a [`Source`], the fleet's sync as a
//! [`Periodic`]), and every part's series are gathered for registration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::registry::Registry;

use super::settings::{decision, detector, fleet, staleness, trajectory};
use super::{Ace, Inner, Metrics, Shared};
use crate::breaker::{BreakerConfig, BreakerSeries, Breakers, CircuitBreaker, Window};
use crate::cache::Cache;
use crate::clock::{Clock, SystemClock};
use crate::config::AceConfig;
use crate::context::ContextOrgan;
use crate::error::{Error, Result};
use crate::errors::{ErrorOrgan, MinerConfig};
use crate::fleet::{Fleet, FleetSeries, FleetSync, LearntSync, LeaseSync};
use crate::hot::{DrainState, Hot};
use crate::intervene::{Decider, Judge};
use crate::persist::spill::{Journal, Spill};
use crate::persist::{Periodic, Retention, Source, Writer, WriterConfig, WriterSync};
use crate::playbook::{Embedder, HashEmbedder, PlaybookConfig, PlaybookMetrics, Playbooks};
use crate::record::{BaselineRecord, PatternRecord, Record};
use crate::store::{MemoryStore, Store};
use crate::trace::TraceWriter;
use crate::trajectory::TrajectoryOrgan;

/// Builds an [`Ace`].
///
/// ```
/// use std::time::Duration;
/// use ace_core::{Ace, AceConfig, ManualClock, MemoryStore, Timestamp};
///
/// let ace = Ace::builder()
///     .config(AceConfig::builder().batch_size(500).batch_timeout(Duration::from_millis(200)).build()?)
///     .store(MemoryStore::new())
///     .clock(ManualClock::new(Timestamp::from_micros(0)))
///     .build()?;
/// # Ok::<(), ace_core::Error>(())
/// ```
#[must_use]
pub struct AceBuilder {
    config: Option<AceConfig>,
    store: Option<Arc<dyn Store>>,
    clock: Option<Arc<dyn Clock>>,
    persist: bool,
    scoring_only: bool,
    judge: Option<Arc<dyn Judge>>,
    embedder: Option<Arc<dyn Embedder>>,
    playbook: Option<PlaybookConfig>,
    cache: Option<Arc<dyn Cache>>,
}

impl Ace {
    /// A builder with the default configuration, an in-memory store and the system clock.
    pub fn builder() -> AceBuilder {
        AceBuilder {
            config: None,
            store: None,
            clock: None,
            persist: true,
            scoring_only: false,
            judge: None,
            embedder: None,
            playbook: None,
            cache: None,
        }
    }
}

impl AceBuilder {
    /// Keeps only what signals and decisions need (replay): nothing for the store, no
    /// per-(agent, stage) series, timings or intervention series, no confidence computed for a
    /// decision; counts of events and signals stay. Signals and interventions are the same as the full engine's (tested in `replay`).
    pub(crate) fn scoring_only(mut self) -> Self {
        self.scoring_only = true;
        self.persist = false;
        self
    }

    /// The configuration (default: [`AceConfig::default`]).
    pub fn config(mut self, config: AceConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// A judge that sees proposed interventions before they are issued and may accept, veto
    /// or change them (see [`crate::intervene::judge`]); none by default.
    pub fn judge(mut self, judge: impl Judge) -> Self {
        self.judge = Some(Arc::new(judge));
        self
    }

    /// A cache shared by the processes of a fleet (Redis: `ace_store::RedisCache`): per-task
    /// cooldowns and caps then hold across replicas (see [`crate::cache`]). None by default.
    pub fn cache(mut self, cache: impl Cache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// [`AceBuilder::cache`], already shared.
    pub fn cache_arc(mut self, cache: Arc<dyn Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The embedder of the playbooks (default: the built-in [`HashEmbedder`], no model).
    pub fn embedder(mut self, embedder: impl Embedder) -> Self {
        self.embedder = Some(Arc::new(embedder));
        self
    }

    /// The playbooks' thresholds and gates (default: [`PlaybookConfig::default`]).
    pub fn playbook_config(mut self, config: PlaybookConfig) -> Self {
        self.playbook = Some(config);
        self
    }

    /// Whether records (stages, metrics, errors, interventions) are written to the store
    /// (default: true). With `false` the engine only watches and decides, as `ace replay` does:
    /// nothing is buffered, nothing written, and the store is used only to load baselines and
    /// patterns at start.
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// The store (default: a fresh [`MemoryStore`]).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The store, already shared.
    pub fn store_arc(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Validates the configuration, loads stored baselines and patterns, and starts the writer
    /// thread.
    pub fn build(self) -> Result<Ace> {
        let config = self.config.unwrap_or_default();
        config.validate()?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::with_max_records(config.memory_max_records)));
        let clock = self.clock.unwrap_or_else(|| {
            if config.coarse_clock { Arc::new(crate::clock::CoarseClock::new()) } else { Arc::new(SystemClock) }
        });
        let metrics = Metrics::new(config.metrics_max_agents);
        let labels = metrics.core.labels.clone();
        let (spill, journal) = open_spill(&config, &*store, self.persist)?;
        // Records that find the buffers full go to disk: to the journal's overflow in durable
        // mode, else to the spill directory's (see `persist::overflow`).
        let overflow = if journal.is_none() { spill.as_ref().map(|s| Arc::new(s.overflow())) } else { None };
        // A store that keeps records in memory has no spill directory: a caller that finds the
        // buffers full waits a moment for the writer to make room (see `room.rs`).
        let room = (journal.is_none() && overflow.is_none() && self.persist && store.takes_records_in_memory())
            .then(|| Arc::new(super::room::RoomWait::new()));

        let context = ContextOrgan::new(staleness(&config), labels.clone(), clock.clone());
        let trajectory = Arc::new(TrajectoryOrgan::new(trajectory(&config)));
        let mut hot = Hot::new(
            detector(&config),
            config.buffer_capacity,
            config.batch_size,
            metrics.core.clone(),
            context.clone(),
            trajectory.clone(),
        );
        hot.set_persist(self.persist);
        hot.set_series(!self.scoring_only);
        hot.set_overflow(journal.is_some() || overflow.is_some() || room.is_some());
        let hot = Arc::new(hot);
        let errors = Arc::new(ErrorOrgan::new(
            MinerConfig::default(),
            config.error_threshold,
            config.error_window,
            config.task_error_severity,
            labels,
        )?);
        restore(&*store, &hot, &errors, &metrics)?;

        let mut decider = Decider::new(decision(&config));
        // A judge may route on the confidence (`ACE_JUDGE_BELOW`): then it is kept.
        if self.scoring_only && self.judge.is_none() {
            decider.skip_confidence();
        }
        let decider = Arc::new(decider);
        let started = std::time::Instant::now();
        let learnt = store.load_learnt()?;
        metrics.core.time_query("load_learnt", started.elapsed().as_secs_f64());
        decider.restore_learnt(&learnt);
        let trace = config.trace_path.as_deref().map(TraceWriter::open).transpose()?;
        let breakers = breakers(&config, clock.clone())?;
        let store_breaker = store_breaker(&breakers)?;
        let breaker_series = BreakerSeries::default();
        breaker_series.attach(&breakers);
        let playbook_series = PlaybookMetrics::default();
        let playbooks = Playbooks::new(
            self.playbook.unwrap_or_default(),
            self.embedder.unwrap_or_else(|| Arc::new(HashEmbedder::default())),
            store.clone(),
            clock.clone(),
            playbook_series.clone(),
        )?;
        let fleet_series = FleetSeries::default();
        let fleet = self.cache.map(|cache| Fleet::new(cache, fleet(&config), fleet_series.clone()));

        metrics.add(Arc::new(hot.series()));
        metrics.add(Arc::new(context.series()));
        metrics.add(Arc::new(breaker_series));
        metrics.add(Arc::new(playbook_series));
        metrics.add(Arc::new(errors.series().clone()));
        metrics.add(Arc::new(fleet_series));
        metrics.add(Arc::new(super::metrics::EvictedSeries(Arc::downgrade(&store))));
        let mut registry = Registry::default();
        metrics.register(&mut registry);

        let sync = Arc::new(WriterSync::default());
        let mut periodic: Vec<Box<dyn Periodic>> =
            vec![Box::new(LearntSync::new(decider.clone(), store.clone(), fleet.clone(), &learnt))];
        if let Some(days) = config.retain_days {
            periodic.push(Box::new(Retention::new(store.clone(), clock.clone(), days, metrics.persist.clone())));
        }
        if let Some(f) = &fleet {
            periodic.push(Box::new(LeaseSync::new(f.clone())));
            periodic.push(Box::new(FleetSync::new(
                f.clone(),
                breakers.clone(),
                context.clone(),
                hot.clone(),
                clock.clone(),
            )));
        }
        let source = Arc::new(EngineSource {
            hot: hot.clone(),
            errors: errors.clone(),
            fleet: fleet.clone(),
            room: room.clone(),
            drain: Mutex::new(DrainState::default()),
            saves_state: !self.scoring_only,
        });
        let writer = Writer::spawn(crate::persist::Parts {
            source,
            periodic,
            store: store.clone(),
            store_breaker: store_breaker.clone(),
            sync: sync.clone(),
            series: metrics.persist.clone(),
            core: metrics.core.clone(),
            journal: journal.clone(),
            overflow: overflow.clone(),
            spill,
            config: WriterConfig {
                batch_timeout: config.batch_timeout,
                batch_size: config.batch_size,
                buffer_capacity: config.buffer_capacity,
            },
        })?;
        let shared = Shared {
            config,
            clock,
            store,
            hot,
            errors,
            context,
            trajectory,
            decider,
            trace,
            breakers,
            _store_breaker: store_breaker,
            journal,
            overflow,
            room,
            fleet,
            playbooks,
            metrics,
            recent: super::recent::RecentSignals::new(),
            sync,
            scoring_only: self.scoring_only,
        };
        let background = super::judging::queue(shared.config.judge_blocking, self.judge.as_ref());
        let (judge_queue, judge_rx) = background.map_or((None, None), |(tx, rx)| (Some(tx), Some(rx)));
        let inner = Arc::new(Inner {
            shared,
            registry,
            subscribers: parking_lot::RwLock::new(Vec::new()),
            judge: self.judge,
            judge_queue,
            reflections: parking_lot::Mutex::new(Vec::new()),
            reflect_queue: parking_lot::Mutex::new(None),
            writer: Mutex::new(Some(writer)),
        });
        if let (Some(rx), Some(judge)) = (judge_rx, &inner.judge) {
            super::judging::spawn(Arc::downgrade(&inner), judge.clone(), rx);
        }
        Ok(Ace { inner })
    }
}

/// What the writer persists: the entry table's buffers and baselines, the miner's changed
/// patterns; baselines about to be saved are shared with the fleet.
struct EngineSource {
    hot: Arc<Hot>,
    errors: Arc<ErrorOrgan>,
    fleet: Option<Arc<Fleet>>,
    /// Callers waiting for room, woken at each settle (see `room.rs`).
    room: Option<Arc<super::room::RoomWait>>,
    /// Only the writer thread drains: the lock is never contended.
    drain: Mutex<DrainState>,
    /// Whether baselines and patterns are saved: not by a scoring-only engine (replay), whose
    /// store is dropped unread (saving them at close cost more than the replay of a short trace).
    saves_state: bool,
}

impl Source for EngineSource {
    fn drain(&self, out: &mut Vec<Record>) {
        self.hot.drain(out, &mut self.drain.lock());
    }

    fn settle(&self, held: usize) {
        self.hot.settle(held, &mut self.drain.lock());
        if let Some(room) = &self.room {
            room.made_room();
        }
    }

    fn buffered(&self) -> u64 {
        self.hot.counts().buffered
    }

    fn parts(&self) -> usize {
        self.hot.shard_count()
    }

    fn dirty_baselines(&self, index: usize) -> Vec<BaselineRecord> {
        if !self.saves_state {
            return Vec::new();
        }
        self.hot.dirty_baselines(index, false)
    }

    fn changed_patterns(&self) -> Vec<PatternRecord> {
        if !self.saves_state {
            return Vec::new();
        }
        self.errors.changed_patterns()
    }

    fn saving_baselines(&self, batch: &[BaselineRecord]) {
        if let Some(fleet) = &self.fleet {
            fleet.publish_baselines(batch);
        }
    }
}

/// Restores stored baselines and patterns (before any record).
fn restore(store: &dyn Store, hot: &Hot, errors: &ErrorOrgan, metrics: &Metrics) -> Result<()> {
    let started = std::time::Instant::now();
    let baselines = store.load_baselines()?;
    metrics.core.time_query("load_baselines", started.elapsed().as_secs_f64());
    let loaded = baselines.len();
    hot.load(baselines);
    let started = std::time::Instant::now();
    let patterns = store.load_patterns()?;
    metrics.core.time_query("load_patterns", started.elapsed().as_secs_f64());
    let restored = errors.load(&patterns);
    // Reloaded patterns are already stored.
    drop(errors.changed_patterns());
    tracing::debug!(store = store.backend(), baselines = loaded, patterns = restored, "ace engine starting");
    Ok(())
}

/// The registry, with `ACE_BREAKER_FAILURES` failures in a row opening a breaker for
/// `ACE_BREAKER_WAIT_SECONDS` by default.
fn breakers(config: &AceConfig, clock: Arc<dyn Clock>) -> Result<Arc<Breakers>> {
    let defaults = BreakerConfig::builder()
        .window(Window::ConsecutiveFailures(config.breaker_failures))
        .wait_in_open(config.breaker_wait)
        .build()?;
    Ok(Arc::new(Breakers::new(defaults, clock)))
}

/// The engine's breaker in front of the store: three failed writes in a row open it for a
/// second, doubling to 30 s while it keeps failing; the writer spills meanwhile. Store I/O runs
/// on real time, not the engine's (possibly manual) clock.
fn store_breaker(breakers: &Arc<Breakers>) -> Result<Arc<CircuitBreaker>> {
    Ok(breakers.adopt(CircuitBreaker::with_sink_of(
        breakers,
        "ace-store",
        BreakerConfig::builder()
            .window(Window::ConsecutiveFailures(3))
            .wait_in_open(Duration::from_secs(1))
            .backoff(2.0, Duration::from_secs(30))
            .build()?,
        Arc::new(SystemClock),
    )?))
}

/// The spill directory (each store spills into one of its own under `ACE_SPILL_DIR`) and, in
/// durable mode, the journal beside it.
fn open_spill(config: &AceConfig, store: &dyn Store, persist: bool) -> Result<(Option<Spill>, Option<Arc<Journal>>)> {
    let dir: Option<PathBuf> = match (&config.spill_dir, store.spill_key(), persist) {
        (Some(dir), Some(key), true) => {
            let hash = key
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
            Some(dir.join(format!("{}-{hash:016x}", store.backend())))
        }
        _ => None,
    };
    let bad_dir = |dir: &Path, e: std::io::Error| {
        Error::config("ACE_SPILL_DIR", &dir.display().to_string(), format!("cannot create the spill directory: {e}"))
    };
    let spill =
        dir.as_deref().map(|d| Spill::open(d, config.spill_max_bytes).map_err(|e| bad_dir(d, e))).transpose()?;
    let journal = match (config.durable, &dir) {
        (false, _) => None,
        (true, Some(d)) => Some(Arc::new(Journal::open(d).map_err(|e| bad_dir(d, e))?)),
        (true, None) => {
            return Err(Error::config(
                "ACE_DURABLE",
                "true",
                "durable mode needs a spill directory (ACE_SPILL_DIR) and a store that persists (SQLite, PostgreSQL)",
            ));
        }
    };
    Ok((spill, journal))
}
