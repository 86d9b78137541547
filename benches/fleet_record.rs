//! The recording call with a Redis cache: p50/p99/p99.9/max of `record_stage` while a third of
//! the calls propose an intervention (a loop in a new task every three calls), with Redis up,
//! slow (a TCP proxy in this bench delays every reply by 100 ms) and down (the proxy drops its
//! connections and refuses new ones). Issue 20 item 8: the recording call never waits on the
//! network, so the three p99s should match. Prints figures; asserts nothing about time.
//!
//! `cargo bench --bench fleet_record` (Redis at 127.0.0.1:6379, or `ACE_TEST_REDIS_URL`;
//! `FLEET_BENCH_CALLS` calls per mode, 30,000 by default).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ace::{Ace, AceConfig, RedisCache, RedisOptions};

/// A TCP proxy to Redis that can delay its replies or go down.
struct Proxy {
    port: u16,
    delay: Duration,
    down: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: String, delay: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let flag = down.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let flag_up = flag.clone();
                std::thread::spawn(move || pipe(client, server, Duration::ZERO, &flag_up));
                let flag_down = flag.clone();
                std::thread::spawn(move || pipe(s2, c2, delay, &flag_down));
            }
        });
        Proxy { port, delay, down }
    }
}

/// Copies `from` to `to`, each chunk `delay` late; stops (closing both) when the proxy goes down.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration, down: &AtomicBool) {
    from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if down.load(Ordering::SeqCst) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn run(mode: &str, proxy: &Proxy, calls: usize) {
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let ns = format!("bench-{mode}-{}", std::process::id());
    let cache = RedisCache::connect(&url, RedisOptions::default().namespace(ns)).expect("Redis is required");
    let config = AceConfig::builder().cooldown(Duration::from_secs(60)).build().unwrap();
    let ace = Ace::builder().config(config).cache(cache).build().unwrap();
    if mode == "down" {
        proxy.down.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut times = Vec::with_capacity(calls);
    let mut interventions = 0usize;
    let started = Instant::now();
    for k in 0..calls {
        let task = format!("task-{}", k / 3);
        let agent = format!("agent-{}", k / 3 % 100);
        let t = Instant::now();
        let report = ace.record_stage(&agent, &task, "execution", 1.0, false).unwrap();
        times.push(t.elapsed());
        interventions += usize::from(report.intervention.is_some());
    }
    let wall = started.elapsed();
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "fleet_record {mode:>4} (reply delay {:>3} ms): {calls} calls, {interventions} interventions, p50 {:?} p99 {:?} p99.9 {:?} max {:?}, wall {:.2} s",
        proxy.delay.as_millis(),
        p(0.5),
        p(0.99),
        p(0.999),
        times[times.len() - 1],
        wall.as_secs_f64()
    );
    drop(ace);
}

fn main() {
    let upstream = std::env::var("ACE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let calls = std::env::var("FLEET_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    run("up", &Proxy::start(upstream.clone(), Duration::ZERO), calls);
    run("slow", &Proxy::start(upstream.clone(), Duration::from_millis(100)), calls);
    run("down", &Proxy::start(upstream, Duration::ZERO), calls);
}
