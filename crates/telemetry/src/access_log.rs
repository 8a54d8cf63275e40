//! The access log: one line per request, written off the request path.
//!
//! Request tasks hand a finished [`Entry`] to a bounded queue; one writer
//! thread wakes every 50 ms, formats what is queued and writes it in
//! batches of up to 60 KiB (one `write` each). Queuing costs a request no
//! system call and no wake-up. When the writer falls
//! behind and the queue is full, the entry is dropped and
//! `gatehouse_access_log_dropped_total` counts it: a slow stdout never
//! slows the gateway.
//!
//! What is logged is fixed: no request or response headers, and the path
//! without its query string, so credentials sent in headers or query
//! parameters (API keys, tokens) never reach the log.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use http::{Method, Version};
use prometheus_client::metrics::counter::Counter;

/// Entries queued for the writer before new ones are dropped (128 KiB of
/// slots).
const QUEUE: usize = 16 * 1024;

/// How access-log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// The Common Log Format (`host - - [date] "request" status bytes`).
    Common,
    /// No access log.
    Off,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Self::Json),
            "common" | "clf" => Ok(Self::Common),
            "off" | "none" => Ok(Self::Off),
            other => Err(format!(
                "unknown access-log format {other:?} (json, common or off)"
            )),
        }
    }
}

/// One finished request.
#[derive(Debug)]
pub struct Entry {
    /// When the request head arrived.
    pub start: SystemTime,
    /// The client's address (after trusted proxies).
    pub client: IpAddr,
    /// The request method.
    pub method: Method,
    /// The host the request was routed by.
    pub host: String,
    /// The path, without the query string.
    pub path: String,
    /// HTTP version of the downstream request.
    pub version: Version,
    /// Status sent to the client.
    pub status: u16,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// From the request head to the last response byte.
    pub duration: Duration,
    /// The endpoint that answered, when one did.
    pub upstream: Option<SocketAddr>,
    /// From sending the upstream request to its response head.
    pub upstream_duration: Option<Duration>,
    /// The route id, when a route matched.
    pub route: Option<std::sync::Arc<str>>,
    /// The request id sent back in `X-Request-Id`.
    pub request_id: Option<http::HeaderValue>,
    /// The trace id.
    pub trace_id: Option<[u8; 16]>,
}

fn version_text(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn millis(d: Duration, out: &mut Vec<u8>, n: &mut itoa::Buffer) {
    let micros = d.as_micros();
    out.extend_from_slice(n.format(micros / 1_000).as_bytes());
    out.push(b'.');
    three_digits((micros % 1_000) as u32, out);
}

fn three_digits(v: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'0' + (v / 100 % 10) as u8,
        b'0' + (v / 10 % 10) as u8,
        b'0' + (v % 10) as u8,
    ]);
}

/// Appends `s` as a JSON string: quotes, and escapes for what JSON
/// requires (quote, backslash, control characters). Most request text
/// needs none, so runs without escapes are copied whole.
fn json_str(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..0x20 => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&s[run..i]);
        out.extend_from_slice(escape);
        run = i + 1;
    }
    out.extend_from_slice(&s[run..]);
    out.push(b'"');
}

fn ip(addr: IpAddr, out: &mut Vec<u8>, n: &mut itoa::Buffer) {
    match addr {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(n.format(octet).as_bytes());
            }
        }
        // Rare enough for the general formatter.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn socket(addr: SocketAddr, out: &mut Vec<u8>, n: &mut itoa::Buffer) {
    if addr.is_ipv6() {
        out.push(b'[');
        ip(addr.ip(), out, n);
        out.push(b']');
    } else {
        ip(addr.ip(), out, n);
    }
    out.push(b':');
    out.extend_from_slice(n.format(addr.port()).as_bytes());
}

/// Turns entries into lines. Formats the date once per second, numbers
/// and addresses without the general formatting machinery and without
/// intermediate strings: the writer thread's cost per line is what the
/// access log costs the gateway.
#[derive(Default)]
pub struct Formatter {
    /// The second the cached dates are for, plus one (0: none yet).
    second: u64,
    /// `2026-11-27T01:02:03` for that second.
    rfc3339: String,
    /// `27/Nov/2026:01:02:03 +0000` for that second.
    common: String,
    numbers: itoa::Buffer,
}

impl std::fmt::Debug for Formatter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Formatter")
            .field("rfc3339", &self.rfc3339)
            .finish_non_exhaustive()
    }
}

impl Formatter {
    fn dates(&mut self, t: SystemTime) -> u32 {
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        if self.second != since.as_secs() + 1 {
            self.second = since.as_secs() + 1;
            let whole = std::time::UNIX_EPOCH + Duration::from_secs(since.as_secs());
            self.rfc3339.clear();
            crate::time::rfc3339_seconds(whole, &mut self.rfc3339);
            self.common.clear();
            crate::time::common_log(whole, &mut self.common);
        }
        since.subsec_millis()
    }

    /// Appends `entry` as one line in `format`.
    pub fn write(&mut self, entry: &Entry, format: Format, out: &mut Vec<u8>) {
        match format {
            Format::Off => {}
            Format::Json => self.json(entry, out),
            Format::Common => self.common(entry, out),
        }
    }

    fn json(&mut self, e: &Entry, out: &mut Vec<u8>) {
        let ms = self.dates(e.start);
        let n = &mut self.numbers;
        out.extend_from_slice(b"{\"time\":\"");
        out.extend_from_slice(self.rfc3339.as_bytes());
        out.push(b'.');
        three_digits(ms, out);
        out.extend_from_slice(b"Z\",\"client\":\"");
        ip(e.client, out, n);
        out.extend_from_slice(b"\",\"method\":");
        json_str(e.method.as_str().as_bytes(), out);
        out.extend_from_slice(b",\"host\":");
        json_str(e.host.as_bytes(), out);
        out.extend_from_slice(b",\"path\":");
        json_str(e.path.as_bytes(), out);
        out.extend_from_slice(b",\"protocol\":\"");
        out.extend_from_slice(version_text(e.version).as_bytes());
        out.extend_from_slice(b"\",\"status\":");
        out.extend_from_slice(n.format(e.status).as_bytes());
        out.extend_from_slice(b",\"bytes_in\":");
        out.extend_from_slice(n.format(e.bytes_in).as_bytes());
        out.extend_from_slice(b",\"bytes_out\":");
        out.extend_from_slice(n.format(e.bytes_out).as_bytes());
        out.extend_from_slice(b",\"duration_ms\":");
        millis(e.duration, out, n);
        out.extend_from_slice(b",\"upstream\":");
        match e.upstream {
            Some(a) => {
                out.push(b'"');
                socket(a, out, n);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"upstream_duration_ms\":");
        match e.upstream_duration {
            Some(d) => millis(d, out, n),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"route\":");
        match &e.route {
            Some(r) => json_str(r.as_bytes(), out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"request_id\":");
        let id = e.request_id.as_ref().and_then(|v| v.to_str().ok());
        json_str(id.unwrap_or_default().as_bytes(), out);
        out.extend_from_slice(b",\"trace_id\":");
        match e.trace_id {
            Some(id) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push(b'"');
                for b in id {
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}\n");
    }

    fn common(&mut self, e: &Entry, out: &mut Vec<u8>) {
        self.dates(e.start);
        let n = &mut self.numbers;
        ip(e.client, out, n);
        out.extend_from_slice(b" - - [");
        out.extend_from_slice(self.common.as_bytes());
        out.extend_from_slice(b"] \"");
        out.extend_from_slice(e.method.as_str().as_bytes());
        out.push(b' ');
        // The request line is quoted: replace what would end it.
        out.extend(e.path.bytes().map(|b| match b {
            b'"' | b'\\' | 0..0x20 => b'_',
            b => b,
        }));
        out.push(b' ');
        out.extend_from_slice(version_text(e.version).as_bytes());
        out.extend_from_slice(b"\" ");
        out.extend_from_slice(n.format(e.status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(n.format(e.bytes_out).as_bytes());
        out.push(b'\n');
    }
}

impl Entry {
    /// Appends the entry as one line in `format` (see [`Formatter`] for
    /// many lines).
    pub fn write(&self, format: Format, out: &mut Vec<u8>) {
        Formatter::default().write(self, format, out);
    }
}

/// Settings of the access log.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Line format, or off.
    pub format: Format,
    /// Share of successful requests logged (0.0–1.0). Responses with a
    /// status of 400 or more are always logged.
    pub sample: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            format: Format::Json,
            sample: 1.0,
        }
    }
}

/// The access log of the process.
#[derive(Debug)]
pub struct AccessLog {
    config: Config,
    sender: Option<SyncSender<Box<Entry>>>,
    progress: Arc<Progress>,
    dropped: Counter,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> Self {
        Self {
            config: Config {
                format: Format::Off,
                sample: 0.0,
            },
            sender: None,
            progress: Arc::default(),
            dropped: Counter::default(),
        }
    }

    /// An access log on standard output.
    pub fn stdout(config: Config, dropped: Counter) -> Self {
        Self::to_writer(config, dropped, Box::new(std::io::stdout()))
    }

    /// An access log written to `out` by a thread of its own.
    pub fn to_writer(config: Config, dropped: Counter, out: Box<dyn Write + Send>) -> Self {
        if config.format == Format::Off {
            return Self::off();
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let format = config.format;
        let progress = Arc::new(Progress::default());
        let written = progress.clone();
        let started = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(&rx, format, out, &written));
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the access-log writer; access log off");
            return Self::off();
        }
        Self {
            config,
            sender: Some(tx),
            progress,
            dropped,
        }
    }

    /// Whether entries are wanted at all (so callers can skip building
    /// them).
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Whether a request answered with `status` is logged: every error,
    /// and the sampled share of the rest.
    pub fn wants(&self, status: u16) -> bool {
        self.enabled()
            && (status >= 400 || self.config.sample >= 1.0 || fastrand::f64() < self.config.sample)
    }

    /// Queues an entry; drops it (and counts the drop) when the writer is
    /// behind.
    pub fn log(&self, entry: Entry) {
        let Some(tx) = &self.sender else { return };
        // Boxed: the queue's slots are allocated up front, and a pointer
        // per slot keeps that small.
        match tx.try_send(Box::new(entry)) {
            Ok(()) => {
                self.progress.queued.fetch_add(1, Ordering::Release);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }

    /// Waits (up to `limit`) until every queued entry is written. For
    /// shutdown, so the last requests are not lost.
    pub async fn flush(&self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        let queued = self.progress.queued.load(Ordering::Acquire);
        while self.progress.written.load(Ordering::Acquire) < queued
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Entries handed to the writer, and entries it has written.
#[derive(Debug, Default)]
struct Progress {
    queued: AtomicU64,
    written: AtomicU64,
}

/// How often the writer wakes to write what is queued. Request tasks never
/// wake it: the writer is never parked on the queue, so queuing a line is
/// a store into a slot, not a system call.
const WRITE_INTERVAL: Duration = Duration::from_millis(50);

fn write_loop(
    rx: &Receiver<Box<Entry>>,
    format: Format,
    mut out: Box<dyn Write + Send>,
    progress: &Progress,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut formatter = Formatter::default();
    loop {
        #[allow(
            clippy::disallowed_methods,
            reason = "the writer is a thread of its own, not a runtime worker"
        )]
        std::thread::sleep(WRITE_INTERVAL);
        loop {
            let mut n = 0;
            let mut closed = false;
            while buf.len() < 60 * 1024 {
                match rx.try_recv() {
                    Ok(e) => {
                        formatter.write(&e, format, &mut buf);
                        n += 1;
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if n > 0 && out.write_all(&buf).and_then(|()| out.flush()).is_err() {
                // stdout closed: nothing more can be logged. Entries still
                // count as written so a flush does not wait for them.
                progress.written.fetch_add(u64::MAX / 2, Ordering::Release);
                return;
            }
            progress.written.fetch_add(n, Ordering::Release);
            // A full buffer means more may be queued; otherwise sleep.
            let full = buf.len() >= 60 * 1024;
            buf.clear();
            if closed {
                return;
            }
            if !full {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    fn entry() -> Entry {
        Entry {
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(971_186_136),
            client: "192.0.2.7".parse().unwrap(),
            method: Method::POST,
            host: "shop.example".into(),
            path: "/orders/\"1\"".into(),
            version: Version::HTTP_11,
            status: 201,
            bytes_in: 12,
            bytes_out: 345,
            duration: Duration::from_micros(1_234),
            upstream: Some("127.0.0.1:9000".parse().unwrap()),
            upstream_duration: Some(Duration::from_micros(1_000)),
            route: Some("apiroute/shop/orders/rule/0".into()),
            request_id: Some(http::HeaderValue::from_static("abc")),
            trace_id: Some([
                0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
                0x31, 0x9c,
            ]),
        }
    }

    #[test]
    fn json_line_has_every_field() {
        let mut out = Vec::new();
        entry().write(Format::Json, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2000-10-10T13:55:36.000Z");
        assert_eq!(v["client"], "192.0.2.7");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/orders/\"1\"");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["status"], 201);
        assert_eq!(v["bytes_in"], 12);
        assert_eq!(v["bytes_out"], 345);
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["upstream"], "127.0.0.1:9000");
        assert_eq!(v["upstream_duration_ms"], 1.0);
        assert_eq!(v["route"], "apiroute/shop/orders/rule/0");
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    }

    #[test]
    fn json_escapes_and_addresses() {
        let mut f = Formatter::default();
        let mut e = entry();
        e.path = "/a\\b\n\u{1}/é".into();
        e.client = "2001:db8::7".parse().unwrap();
        e.upstream = Some("[2001:db8::1]:8080".parse().unwrap());
        e.upstream_duration = None;
        e.route = None;
        e.trace_id = None;
        e.start += Duration::from_millis(7);
        e.duration = Duration::from_nanos(999_999);
        let mut out = Vec::new();
        f.write(&e, Format::Json, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["path"], "/a\\b\n\u{1}/é");
        assert_eq!(v["client"], "2001:db8::7");
        assert_eq!(v["upstream"], "[2001:db8::1]:8080");
        assert_eq!(v["time"], "2000-10-10T13:55:36.007Z");
        assert_eq!(v["duration_ms"], 0.999);
        assert!(v["upstream_duration_ms"].is_null() && v["route"].is_null());
        assert!(v["trace_id"].is_null());
        // The cached date moves on with the clock.
        e.start += Duration::from_secs(86_400);
        out.clear();
        f.write(&e, Format::Json, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2000-10-11T13:55:36.007Z");
    }

    #[test]
    fn common_log_line() {
        let mut out = Vec::new();
        entry().write(Format::Common, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] \"POST /orders/_1_ HTTP/1.1\" 201 345\n"
        );
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<StdMutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn sampling_keeps_errors_and_a_share_of_the_rest() {
        let out = Shared::default();
        let log = AccessLog::to_writer(
            Config {
                format: Format::Json,
                sample: 0.1,
            },
            Counter::default(),
            Box::new(out.clone()),
        );
        let kept = (0..10_000).filter(|_| log.wants(200)).count();
        assert!((700..1_300).contains(&kept), "{kept} of 10,000 sampled");
        assert!((0..100).all(|_| log.wants(503) && log.wants(404)));
        log.log(entry());
        log.log(entry());
        log.flush(Duration::from_secs(5)).await;
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let off = AccessLog::off();
        assert!(!off.enabled() && !off.wants(500));
    }
}
