//! `gatehouse-load`: an open-loop (fixed-rate) HTTP/1.1 load generator
//! for latency figures that closed-loop tools cannot give.
//!
//! ```text
//! gatehouse-load ADDR RATE [--connections N] [--duration SECS] [--host HOST] [--path PATH]
//! ```
//!
//! Sends RATE requests per second spread evenly over N keep-alive
//! connections for SECS seconds. Each request has a scheduled send time;
//! its latency runs from that time (not from when the connection was free
//! again) to the last byte of the response, so a stalled proxy shows its
//! stall in every request queued behind it instead of hiding it
//! (coordinated omission).
//!
//! The schedule is kept by a thread of its own that sleeps until each
//! send time with the kernel's high-resolution timers (its timer slack
//! lowered to 1 µs where the kernel allows), not by the runtime's timer
//! wheel: that one ticks in milliseconds, so at 10,000 requests/s it
//! would send them in bursts of ten up to a millisecond late, and the
//! latency figures would mostly measure the generator. How late the pacing
//! thread itself woke is reported too (`late_*`), so a figure can be read
//! against the generator's own precision.
//!
//! Prints one line of `key=value` pairs: requests, errors, achieved rate,
//! latency percentiles and the pacing thread's lateness, in microseconds.
//! Connections are opened before the first scheduled request.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

struct Settings {
    addr: SocketAddr,
    rate: f64,
    connections: usize,
    duration: Duration,
    host: String,
    path: String,
}

fn parse() -> Result<Settings, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("first argument: the address (127.0.0.1:8080)")?;
    let rate: f64 = args
        .get(1)
        .and_then(|r| r.parse().ok())
        .filter(|r: &f64| *r > 0.0)
        .ok_or("second argument: requests per second")?;
    let mut s = Settings {
        addr,
        rate,
        connections: 64,
        duration: Duration::from_secs(10),
        host: "bench.local".into(),
        path: "/".into(),
    };
    let mut it = args.iter().skip(2);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--connections" => {
                s.connections = value.parse().map_err(|_| "--connections: a number")?
            }
            "--duration" => {
                s.duration =
                    Duration::from_secs_f64(value.parse().map_err(|_| "--duration: seconds")?);
            }
            "--host" => s.host.clone_from(value),
            "--path" => s.path.clone_from(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if s.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    Ok(s)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// One connection: sends a request for each scheduled time it is handed
/// (one after another, as keep-alive allows) and measures each from its
/// scheduled time.
async fn connection(
    s: &Settings,
    mut sender: Option<Sender>,
    mut due: mpsc::UnboundedReceiver<Instant>,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(scheduled) = due.recv().await {
        if sender.is_none() {
            match connect(s.addr).await {
                Ok(tx) => sender = Some(tx),
                Err(_) => {
                    errors += 1;
                    continue;
                }
            }
        }
        let Some(tx) = sender.as_mut() else { continue };
        let req = http::Request::get(s.path.as_str())
            .header(http::header::HOST, s.host.as_str())
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let ok = match tx.send_request(req).await {
            Ok(resp) => {
                let success = resp.status().is_success();
                resp.into_body().collect().await.is_ok() && success
            }
            Err(_) => false,
        };
        if ok {
            let took = Instant::now().saturating_duration_since(scheduled);
            latencies.push(micros(took));
        } else {
            errors += 1;
            sender = None;
        }
    }
    (latencies, errors)
}

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(tx)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Hands out the schedule: request `k` is due at `start + k / rate` on
/// connection `k mod N`. Sleeps until each time and returns how late it
/// woke for each (µs).
fn pace(
    start: Instant,
    end: Instant,
    step: Duration,
    due: &[mpsc::UnboundedSender<Instant>],
) -> Vec<u32> {
    let mut late = Vec::new();
    let mut k: u32 = 0;
    loop {
        let scheduled = start + step * k;
        if scheduled >= end {
            return late;
        }
        let now = Instant::now();
        if let Some(wait) = scheduled.checked_duration_since(now) {
            #[allow(
                clippy::disallowed_methods,
                reason = "the pacing thread is no runtime worker: sleeping is its job"
            )]
            std::thread::sleep(wait);
        }
        late.push(micros(Instant::now().saturating_duration_since(scheduled)));
        // A connection task that ended (it cannot) only loses its share.
        let _ = due[k as usize % due.len()].send(scheduled);
        k += 1;
    }
}

/// Lowers the main thread's timer slack (threads it starts inherit it), so
/// sleeps end within microseconds of when they were asked to. Without the
/// permission the kernel's default slack (50 µs) stays.
fn precise_timers() {
    let _ = std::fs::write("/proc/self/timerslack_ns", "1000");
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> ExitCode {
    let s = match parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "gatehouse-load: {e}\nusage: gatehouse-load ADDR RATE [--connections N] [--duration SECS] [--host HOST] [--path PATH]"
            );
            return ExitCode::from(2);
        }
    };
    precise_timers();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse-load: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let s = std::sync::Arc::new(s);
        let mut tasks = Vec::with_capacity(s.connections);
        let mut due = Vec::with_capacity(s.connections);
        for _ in 0..s.connections {
            // Opened now, so no request's latency includes a handshake; a
            // failure here is retried (and counted) at its first request.
            let sender = connect(s.addr).await.ok();
            let (tx, rx) = mpsc::unbounded_channel();
            due.push(tx);
            let s = s.clone();
            tasks.push(tokio::spawn(async move { connection(&s, sender, rx).await }));
        }
        let step = Duration::from_secs_f64(1.0 / s.rate);
        let start = Instant::now() + Duration::from_millis(10);
        let end = start + s.duration;
        // The schedule is handed out from a thread of its own; dropping
        // its senders at the end lets each connection finish.
        let pacer = std::thread::spawn(move || pace(start, end, step, &due));
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            if let Ok((l, e)) = t.await {
                all.extend(l);
                errors += e;
            }
        }
        let mut late = pacer.join().unwrap_or_default();
        late.sort_unstable();
        let elapsed = Instant::now().saturating_duration_since(start).as_secs_f64();
        all.sort_unstable();
        println!(
            "requests={} errors={errors} rate={:.0} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} late_p50_us={} late_p99_us={}",
            all.len(),
            all.len() as f64 / elapsed.max(s.duration.as_secs_f64()),
            percentile(&all, 50.0),
            percentile(&all, 90.0),
            percentile(&all, 99.0),
            percentile(&all, 99.9),
            all.last().copied().unwrap_or(0),
            percentile(&late, 50.0),
            percentile(&late, 99.0),
        );
        if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
    })
}
