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
//! (coordinated omission). Prints one line of `key=value` pairs:
//! requests, errors, achieved rate and latency percentiles in microseconds.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

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

/// One connection's share: requests at `interval`, starting at `first`.
async fn connection(
    s: &Settings,
    first: Instant,
    interval: Duration,
    end: Instant,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut sender = None;
    let mut next = first;
    while next < end {
        tokio::time::sleep_until(next).await;
        if sender.is_none() {
            match connect(s.addr).await {
                Ok(tx) => sender = Some(tx),
                Err(_) => {
                    errors += 1;
                    next += interval;
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
            let took = Instant::now().saturating_duration_since(next);
            latencies.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        } else {
            errors += 1;
            sender = None;
        }
        next += interval;
    }
    (latencies, errors)
}

async fn connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
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
        // Each connection sends every `interval`; connections are offset
        // so that together they send one request every 1/rate seconds.
        let interval = Duration::from_secs_f64(s.connections as f64 / s.rate);
        let step = Duration::from_secs_f64(1.0 / s.rate);
        let start = Instant::now() + Duration::from_millis(100);
        let end = start + s.duration;
        let tasks: Vec<_> = (0..s.connections)
            .map(|i| {
                let s = s.clone();
                let first = start + step * u32::try_from(i).unwrap_or(u32::MAX);
                tokio::spawn(async move { connection(&s, first, interval, end).await })
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            if let Ok((l, e)) = t.await {
                all.extend(l);
                errors += e;
            }
        }
        let elapsed = Instant::now().saturating_duration_since(start).as_secs_f64();
        all.sort_unstable();
        println!(
            "requests={} errors={errors} rate={:.0} p50_us={} p90_us={} p99_us={} p999_us={} max_us={}",
            all.len(),
            all.len() as f64 / elapsed.max(s.duration.as_secs_f64()),
            percentile(&all, 50.0),
            percentile(&all, 90.0),
            percentile(&all, 99.0),
            percentile(&all, 99.9),
            all.last().copied().unwrap_or(0),
        );
        if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
    })
}
