//! Every protocol clients and services speak, through the real binary:
//! HTTP/1.1 and h2c both ways, gRPC (unary, bidirectional streaming,
//! errors, deadlines), gRPC-Web, WebSockets across configuration swaps,
//! large streamed bodies with bounded memory, compression, the
//! listener's defences (slow headers, header limits, PROXY protocol), and
//! every way an HTTP/1.1 upstream may frame its answers.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Method;
use prost::Message as _;
use testkit::grpc::{EchoMessage, GrpcClient, GrpcServer};
use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, eventually, raw_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn route(name: &str, host: &str, rules: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"{host}\"]\n  rules:\n{rules}"
    )
}

/// An echo backend named `name` behind one route for
/// `{name}.example.com`, and a standalone gateway started with `args`
/// serving it; the backend and the manifest directory live as long as
/// what is returned.
async fn echo_gateway(
    name: &str,
    args: &[&str],
) -> (EchoServer, tempfile::TempDir, GatewayProcess) {
    let echo = EchoServer::start(name).await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service(name, &[echo.addr]),
            route(
                name,
                &format!("{name}.example.com"),
                &format!("  - backends: [{{name: {name}, port: 80}}]\n"),
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), args).await;
    (echo, dir, gw)
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_both_ways() {
    let echo = EchoServer::start("e").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("plain", &[echo.addr]),
            service("h2", &[echo.addr]),
            route(
                "r",
                "h2.example.com",
                "  - matches: [{path: {value: /to-h1}}]\n    backends: [{name: plain, port: 80}]\n  - matches: [{path: {value: /to-h2}}]\n    backends: [{name: h2, port: 80, protocol: H2C}]\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let h1 = HttpClient::new();
    let h2 = HttpClient::http2();
    for (client, path, client_proto, upstream_proto) in [
        (&h1, "/to-h1", "HTTP/1.1", "HTTP/1.1"),
        (&h1, "/to-h2", "HTTP/1.1", "HTTP/2.0"),
        (&h2, "/to-h1", "HTTP/2.0", "HTTP/1.1"),
        (&h2, "/to-h2", "HTTP/2.0", "HTTP/2.0"),
    ] {
        let reply = client.get(gw.http, "h2.example.com", path).await.unwrap();
        assert_eq!(reply.status, 200, "{client_proto} {path}");
        let echo = reply.echo().unwrap();
        assert_eq!(
            echo.protocol, upstream_proto,
            "{client_proto} client, {path}"
        );
        assert_eq!(echo.path, path);
        // The virtual host reaches an HTTP/2 upstream as :authority, an
        // HTTP/1.1 one as Host.
        assert_eq!(
            echo.header("host"),
            Some("h2.example.com"),
            "{client_proto} {path}"
        );
    }
    // And a real independent client: curl with prior knowledge.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-H",
            "Host: h2.example.com",
        ])
        .arg(format!("http://{}/to-h2", gw.http))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("\"protocol\":\"HTTP/2.0\""), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_unary_streaming_errors_and_deadlines() {
    let server = GrpcServer::start("grpc-a").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("grpc", &[server.addr]),
            service("empty", &[]),
            route(
                "g",
                "grpc.example.com",
                "  - matches: [{path: {value: /gatehouse.test.Echo}}]\n    timeouts: {request: 1s}\n    backends: [{name: grpc, port: 80, protocol: GRPC}]\n",
            ),
            route(
                "down",
                "down.example.com",
                "  - backends: [{name: empty, port: 80, protocol: GRPC}]\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let mut client = GrpcClient::connect(gw.http, "grpc.example.com")
        .await
        .unwrap();

    // Unary.
    let reply = client.unary("hello").await.unwrap();
    assert_eq!(
        reply,
        EchoMessage {
            message: "hello".into(),
            backend: "grpc-a".into()
        }
    );
    // An application error travels in trailers, code and message intact.
    let err = client.unary("fail").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "requested failure");

    // Bidirectional streaming: each answer arrives before the next
    // message is sent, so nothing is buffered end to end.
    let (tx, mut replies) = client.chat().await.unwrap();
    for i in 0..20 {
        tx.send(EchoMessage {
            message: format!("m{i}"),
            backend: String::new(),
        })
        .await
        .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), replies.next())
            .await
            .expect("an answer before the next message")
            .unwrap()
            .unwrap();
        assert_eq!(answer.message, format!("m{i}"));
        assert_eq!(answer.backend, "grpc-a");
    }
    drop(tx);
    assert!(
        replies.next().await.is_none(),
        "the stream ends cleanly with OK trailers"
    );

    // The route's timeout becomes DEADLINE_EXCEEDED.
    let err = client.unary("sleep:3000").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    // No endpoints becomes UNAVAILABLE; no route UNIMPLEMENTED.
    let mut down = GrpcClient::connect(gw.http, "down.example.com")
        .await
        .unwrap();
    assert_eq!(
        down.unary("x").await.unwrap_err().code(),
        tonic::Code::Unavailable
    );
    let mut nowhere = GrpcClient::connect(gw.http, "nowhere.example.com")
        .await
        .unwrap();
    assert_eq!(
        nowhere.unary("x").await.unwrap_err().code(),
        tonic::Code::Unimplemented
    );

    // grpc-timeout from the client bounds the wait too (sent by hand, so
    // the client itself does not enforce it).
    let mut frame = vec![0u8];
    let msg = EchoMessage {
        message: "sleep:800".into(),
        backend: String::new(),
    }
    .encode_to_vec();
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let reply = HttpClient::http2()
        .send(
            gw.http,
            Method::POST,
            "grpc.example.com",
            testkit::grpc::UNARY,
            &[
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-timeout", "100m"),
            ],
            Bytes::from(frame),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply
            .headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap()),
        Some("4")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_web_round_trip() {
    let server = GrpcServer::start("grpc-web").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("grpc", &[server.addr]),
            route(
                "w",
                "web.example.com",
                "  - backends: [{name: grpc, port: 80, protocol: GRPC}]\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let request = |text: &str| {
        let msg = EchoMessage {
            message: text.into(),
            backend: String::new(),
        }
        .encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        frame.extend_from_slice(&msg);
        frame
    };
    // Splits a gRPC-Web body into its message and its trailer block.
    let parse = |body: &[u8]| {
        let mut messages = Vec::new();
        let mut trailers = String::new();
        let mut rest = body;
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let payload = &rest[5..5 + len];
            if rest[0] & 0x80 != 0 {
                trailers = String::from_utf8_lossy(payload).into_owned();
            } else {
                messages.push(EchoMessage::decode(payload).unwrap());
            }
            rest = &rest[5 + len..];
        }
        (messages, trailers)
    };

    // Binary gRPC-Web over HTTP/1.1.
    let reply = raw_request(
        gw.http,
        "POST",
        testkit::grpc::UNARY,
        &[
            ("host", "web.example.com"),
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &request("from the browser"),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/grpc-web+proto");
    let (messages, trailers) = parse(&reply.body);
    assert_eq!(
        messages,
        [EchoMessage {
            message: "from the browser".into(),
            backend: "grpc-web".into()
        }]
    );
    assert!(trailers.contains("grpc-status: 0"), "{trailers:?}");

    // Text (base64) gRPC-Web, with an application error in the trailers.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let reply = raw_request(
        gw.http,
        "POST",
        testkit::grpc::UNARY,
        &[
            ("host", "web.example.com"),
            ("content-type", "application/grpc-web-text"),
        ],
        b64.encode(request("fail")).as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/grpc-web-text");
    let decoded = b64.decode(reply.body.as_ref()).unwrap();
    let (messages, trailers) = parse(&decoded);
    assert!(messages.is_empty());
    // An error answered trailers-only keeps its status in the headers,
    // which gRPC-Web clients read as well.
    let header = |n: &str| {
        reply
            .headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let status_block = format!(
        "{trailers}grpc-status: {}\r\ngrpc-message: {}",
        header("grpc-status"),
        header("grpc-message")
    );
    assert!(
        status_block.contains("grpc-status: 3")
            && status_block
                .replace("%20", " ")
                .contains("requested failure"),
        "{status_block:?}"
    );
}

async fn ws_connect(
    gw: &GatewayProcess,
    host: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(format!("ws://{host}/chat"), stream)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_survive_configuration_swaps_and_idle_out() {
    let echo = EchoServer::start("ws").await;
    let dir = tempfile::tempdir().unwrap();
    let config = |extra: &str| {
        docs(&[
            INGRESS_CLASS.to_owned(),
            service("ws", &[echo.addr]),
            route(
                "ws",
                "ws.example.com",
                "  - backends: [{name: ws, port: 80}]\n",
            ),
            route(
                "quiet",
                "quiet.example.com",
                "  - timeouts: {idle: 500ms}\n    backends: [{name: ws, port: 80}]\n",
            ),
            route(
                "other",
                "other.example.com",
                &format!(
                    "  - matches: [{{path: {{value: /{extra}}}}}]\n    backends: [{{name: ws, port: 80}}]\n"
                ),
            ),
        ])
    };
    write_atomic(dir.path(), "c.yaml", &config("v0"));
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let mut ws = ws_connect(&gw, "ws.example.com").await;
    for round in 0..10 {
        ws.send(Message::text(format!("hello {round}")))
            .await
            .unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert_eq!(
            reply.into_text().unwrap().as_str(),
            format!("ws: hello {round}")
        );
        // An unrelated change is published while the socket is open.
        write_atomic(dir.path(), "c.yaml", &config(&format!("v{}", round + 1)));
        let client = HttpClient::new();
        let path = format!("/v{}", round + 1);
        eventually(Duration::from_secs(2), "the new route is live", || {
            let client = client.clone();
            let path = path.clone();
            async move {
                client
                    .get(gw.http, "other.example.com", &path)
                    .await
                    .is_ok_and(|r| r.status == 200)
            }
        })
        .await;
    }
    ws.close(None).await.unwrap();

    // A silent tunnel is closed after the route's idle timeout.
    let mut quiet = ws_connect(&gw, "quiet.example.com").await;
    quiet.send(Message::text("once")).await.unwrap();
    assert!(quiet.next().await.unwrap().is_ok());
    let end = tokio::time::timeout(Duration::from_secs(10), quiet.next())
        .await
        .expect("closed by the gateway");
    assert!(
        matches!(end, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_mib_each_way_with_bounded_memory() {
    let (_echo, _dir, gw) = echo_gateway("big", &[]).await;
    let idle = peak_rss_kib(gw.pid());
    const SIZE: usize = 100 * 1024 * 1024;
    let client = HttpClient::new().with_timeout(Duration::from_secs(120));
    // Upload: the backend counts what arrives.
    let up = client
        .send(
            gw.http,
            Method::POST,
            "big.example.com",
            "/upload",
            &[],
            Bytes::from(vec![7u8; SIZE]),
        )
        .await
        .unwrap();
    assert_eq!(up.echo().unwrap().body_length, SIZE as u64);
    // Download: the backend streams 100 MiB.
    let down = client
        .send(
            gw.http,
            Method::GET,
            "big.example.com",
            "/download",
            &[("x-echo-response-bytes", &SIZE.to_string())],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(down.status, 200);
    assert_eq!(down.body.len(), SIZE);
    // The gateway streamed both without holding the bodies: its peak
    // grew by far less than one body. (The growth is buffers in flight
    // and allocator caches, which vary with how the two cores interleave
    // the client, the gateway and the backend.)
    let peak = peak_rss_kib(gw.pid());
    assert!(
        peak - idle < 40 * 1024,
        "gateway peak RSS {peak} KiB, {idle} KiB before the transfers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compression_is_negotiated() {
    let echo = EchoServer::start("z").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("z", &[echo.addr]),
            route(
                "z",
                "z.example.com",
                "  - compression: {minBytes: 1000}\n    backends: [{name: z, port: 80}]\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let get = |accept: &'static str, ct: &'static str, n: &'static str| {
        let client = client.clone();
        let addr = gw.http;
        async move {
            client
                .send(
                    addr,
                    Method::GET,
                    "z.example.com",
                    "/",
                    &[
                        ("accept-encoding", accept),
                        ("x-echo-response-bytes", n),
                        ("x-echo-content-type", ct),
                    ],
                    Bytes::new(),
                )
                .await
                .unwrap()
        }
    };
    for (accept, want) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, br;q=0.5", "gzip"),
    ] {
        let r = get(accept, "text/plain", "100000").await;
        assert_eq!(
            r.headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            Some(want),
            "{accept}"
        );
        assert!(
            r.body.len() < 10_000,
            "{want} compressed 100000 bytes to {}",
            r.body.len()
        );
        assert!(
            !r.headers.contains_key("content-length") || r.headers["content-length"] != "100000"
        );
    }
    let gz = get("gzip", "text/plain", "100000").await;
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(gz.body.as_ref()).read_to_end_sync(&mut decoded);
    assert_eq!(decoded.len(), 100_000);
    assert!(decoded.iter().all(|b| *b == b'a'));
    // Not compressed: not accepted, too small, or not a text type.
    assert!(
        !get("identity", "text/plain", "100000")
            .await
            .headers
            .contains_key("content-encoding")
    );
    assert!(
        !get("gzip", "text/plain", "500")
            .await
            .headers
            .contains_key("content-encoding")
    );
    assert!(
        !get("gzip", "image/png", "100000")
            .await
            .headers
            .contains_key("content-encoding")
    );
}

trait ReadToEndSync {
    fn read_to_end_sync(&mut self, out: &mut Vec<u8>);
}

impl<R: std::io::Read> ReadToEndSync for R {
    fn read_to_end_sync(&mut self, out: &mut Vec<u8>) {
        std::io::Read::read_to_end(self, out).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_header_timeout_counts_from_each_wait_for_a_head() {
    let (_echo, _dir, gw) = echo_gateway("k", &["--header-read-timeout", "2s"]).await;
    let request = b"GET / HTTP/1.1\r\nHost: k.example.com\r\n\r\n";
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut buf = Vec::new();
    let (head, _, _) = ask(&mut s, &mut buf, request, false).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // Most of a timeout later, a second request on the connection is
    // served, and the wait for a third gets a whole timeout of its own,
    // not what was left of an earlier one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (head, _, _) = ask(&mut s, &mut buf, request, false).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let waited = closed_when_idle(&mut s).await;
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_millis(3500),
        "closed {waited:?} after the last response, with a 2 s header timeout"
    );
}

/// On a kept-alive HTTP/1.1 connection one timer serves both the header
/// timeout and each request's time limit: a limit later than the header
/// timeout still cuts a slow upstream off on time (not at the header
/// timeout, not later), a request that runs past the header timeout but
/// within its limit is answered, and the idle connection afterwards still
/// gets exactly its header timeout.
#[tokio::test(flavor = "multi_thread")]
async fn request_limits_and_the_header_timeout_share_a_connection() {
    let (_echo, _dir, gw) = echo_gateway(
        "rl",
        &["--header-read-timeout", "1s", "--upstream-timeout", "2s"],
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut buf = Vec::new();
    let slow = b"GET / HTTP/1.1\r\nHost: rl.example.com\r\nx-echo-delay-ms: 4000\r\n\r\n";
    let started = std::time::Instant::now();
    let (head, body, _) = ask(&mut s, &mut buf, slow, false).await;
    let took = started.elapsed();
    assert!(head.starts_with("http/1.1 504"), "{head}");
    assert_eq!(body, b"upstream request timeout\n");
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_millis(2900),
        "a 2 s limit cut the request off after {took:?}"
    );

    let within = b"GET / HTTP/1.1\r\nHost: rl.example.com\r\nx-echo-delay-ms: 1500\r\n\r\n";
    let started = std::time::Instant::now();
    let (head, _, _) = ask(&mut s, &mut buf, within, false).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(started.elapsed() >= Duration::from_millis(1450));

    let waited = closed_when_idle(&mut s).await;
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1900),
        "closed {waited:?} after the last response, with a 1 s header timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_are_cut_off_and_header_limits_hold() {
    let (_echo, _dir, gw) = echo_gateway("l", &["--header-read-timeout", "1s"]).await;

    // Slowloris: a header line every 300 ms never finishes the request.
    let mut slow = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: l.example.com\r\n")
        .await
        .unwrap();
    let mut cut_off = false;
    for i in 0..30 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow
            .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            cut_off = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = true;
                break;
            }
            Ok(Ok(_)) => {
                // A 408 answer followed by close also counts.
                cut_off = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(cut_off, "the slow client was never cut off");

    // A client that connects and says nothing, or trickles the start of
    // the HTTP/2 preface, is let go after the header timeout too.
    for opening in [&b""[..], b"PRI * HTTP/2"] {
        let mut silent = tokio::net::TcpStream::connect(gw.http).await.unwrap();
        silent.write_all(opening).await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection was kept open: {read:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(900));
    }

    // Too many headers and too large a head are refused.
    let many: Vec<(String, String)> = (0..200)
        .map(|i| (format!("x-h{i}"), "1".to_owned()))
        .collect();
    let mut headers: Vec<(&str, &str)> = vec![("host", "l.example.com")];
    headers.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let r = raw_request(gw.http, "GET", "/", &headers, b"").await;
    assert!(r.is_err() || r.as_ref().unwrap().status == 431, "{r:?}");
    let huge = "a".repeat(100 * 1024);
    let r = raw_request(
        gw.http,
        "GET",
        "/",
        &[("host", "l.example.com"), ("x-huge", &huge)],
        b"",
    )
    .await;
    assert!(r.is_err() || r.as_ref().unwrap().status == 431, "{r:?}");
    // And the gateway still serves.
    assert_eq!(
        HttpClient::new()
            .get(gw.http, "l.example.com", "/")
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_protocol_names_the_client() {
    let (_echo, _dir, gw) = echo_gateway("p", &["--proxy-protocol"]).await;
    let mut stream = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    stream
        .write_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\nGET / HTTP/1.1\r\nHost: p.example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"x-real-ip\":[\"203.0.113.7\"]"), "{text}");
    // Without the header the connection is refused.
    let mut bare = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    bare.write_all(b"GET / HTTP/1.1\r\nHost: p.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = bare.read_to_end(&mut out).await;
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
}

/// A chunked answer of two 10,000-byte chunks (`x` then `y`).
fn big_chunks() -> &'static [u8] {
    static ANSWER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ANSWER.get_or_init(|| {
        let mut a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for fill in [b'x', b'y'] {
            a.extend_from_slice(b"2710\r\n");
            a.extend(std::iter::repeat_n(fill, 10_000));
            a.extend_from_slice(b"\r\n");
        }
        a.extend_from_slice(b"0\r\n\r\n");
        a
    })
}

/// An HTTP/1.1 upstream written byte by byte: it answers by path with
/// every framing a server may use, and closes each connection after its
/// first answer on `/once` without saying so.
async fn framing_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                    seen.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let (answer, close): (&[u8], bool) = match path.as_str() {
                        "/chunked" => (
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-sum: 1\r\n\r\n",
                            false,
                        ),
                        "/bigchunks" => {
                            let big = big_chunks();
                            if s.write_all(big).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        "/close" => (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true),
                        "/head" => (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false),
                        "/nocontent" => (b"HTTP/1.1 204 No Content\r\n\r\n", false),
                        "/interim" => (
                            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                            false,
                        ),
                        "/short" => (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5", true),
                        "/conflict" => (
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
                            true,
                        ),
                        "/once" => (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce", true),
                        _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
                    };
                    if s.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_responses_of_every_framing_pass_through() {
    let upstream = framing_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("f", &[upstream]),
            route(
                "f",
                "f.example.com",
                "  - backends: [{name: f, port: 80}]\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let get = |path: &'static str| client.get(gw.http, "f.example.com", path);

    let chunked = get("/chunked").await.unwrap();
    assert_eq!(
        (chunked.status.as_u16(), chunked.text().as_str()),
        (200, "hello, world")
    );
    let close = get("/close").await.unwrap();
    assert_eq!(close.text(), "until the end");
    let interim = get("/interim").await.unwrap();
    assert_eq!(
        (interim.status.as_u16(), interim.text().as_str()),
        (200, "ok")
    );
    assert!(!interim.headers.contains_key("link"));
    let none = get("/nocontent").await.unwrap();
    assert_eq!((none.status.as_u16(), none.body.len()), (204, 0));
    let head = raw_request(gw.http, "HEAD", "/head", &[("host", "f.example.com")], b"")
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], "1000");
    assert!(head.body.is_empty());

    // A body cut short reaches the client cut short: fewer bytes than
    // announced, then the connection ends.
    let short = raw_request(gw.http, "GET", "/short", &[("host", "f.example.com")], b"").await;
    match short {
        Ok(r) => assert!(r.body.len() < 10, "{r:?}"),
        Err(e) => assert!(!e.is_empty()),
    }
    // A head that contradicts itself is the gateway's 502.
    assert_eq!(get("/conflict").await.unwrap().status, 502);

    // The upstream closes every connection after one answer without
    // saying so: requests keep succeeding on new connections, including
    // ones that find a pooled connection already closed.
    for i in 0..30 {
        let r = get("/once").await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (200, "once"),
            "request {i}"
        );
        if i % 3 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Still serving normally.
    assert_eq!(get("/").await.unwrap().text(), "ok");
}

/// One response read from `stream` (with `buf` holding what was read
/// past earlier ones): status line and headers, body (de-chunked), and
/// trailers. Bodiless when `head_only`.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> (String, Vec<u8>, String) {
    async fn more(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        more(stream, buf).await;
    };
    let head = String::from_utf8(buf.drain(..end).collect())
        .unwrap()
        .to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let mut body = Vec::new();
    let mut trailers = String::new();
    if head_only {
    } else if head.contains("transfer-encoding: chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                more(stream, buf).await;
            };
            let line = String::from_utf8(buf.drain(..line_end + 2).collect()).unwrap();
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16).unwrap();
            if size == 0 {
                let end = loop {
                    if buf.starts_with(b"\r\n") {
                        break 2;
                    }
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    more(stream, buf).await;
                };
                trailers = String::from_utf8(buf.drain(..end).collect()).unwrap();
                break;
            }
            while buf.len() < size + 2 {
                more(stream, buf).await;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    } else {
        let n = length.expect("a length or chunks");
        while buf.len() < n {
            more(stream, buf).await;
        }
        body.extend(buf.drain(..n));
    }
    (head, body, trailers)
}

/// Sends `request` on `stream` and reads its response.
async fn ask(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    request: &[u8],
    head_only: bool,
) -> (String, Vec<u8>, String) {
    stream.write_all(request).await.unwrap();
    read_response(stream, buf, head_only).await
}

/// Waits (up to 5 s) for the gateway to close the idle `stream`, and
/// returns how long that took.
async fn closed_when_idle(stream: &mut tokio::net::TcpStream) -> Duration {
    let idle = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut [0u8; 1])).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection was kept open: {read:?}"
    );
    idle.elapsed()
}

/// Asserts that the gateway has closed `stream`.
async fn assert_closed(stream: &mut tokio::net::TcpStream) {
    let read = stream.read(&mut [0u8; 16]).await.unwrap();
    assert_eq!(read, 0, "not closed after close");
}

/// The gateway's own HTTP/1.1 server: pipelined requests answered in
/// order, requests it does not serve itself (bodies, HTTP/1.0) handed to
/// hyper's server mid-connection, `Connection: close`, chunked answers
/// with trailers, heads that trickle in, idle connections let go, and a
/// client that leaves cancelling its request upstream.
#[tokio::test(flavor = "multi_thread")]
async fn http1_connections_pipeline_hand_over_and_cancel() {
    let echo = EchoServer::start("o").await;
    let framing = framing_upstream().await;
    // An upstream that never answers and reports when the gateway closes
    // the connection a request came on.
    let hold = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hold_addr = hold.local_addr().unwrap();
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = hold.accept().await.unwrap();
            let closed = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = 0;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen += n,
                    }
                }
                let _ = closed.send(seen);
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("o", &[echo.addr]),
            service("f", &[framing]),
            service("h", &[hold_addr]),
            route(
                "o",
                "o.example.com",
                "  - backends: [{name: o, port: 80}]\n",
            ),
            route(
                "f",
                "f.example.com",
                "  - backends: [{name: f, port: 80}]\n",
            ),
            route(
                "h",
                "h.example.com",
                "  - backends: [{name: h, port: 80}]\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &["--header-read-timeout", "2s"]).await;
    let echoed = |body: &[u8]| serde_json::from_slice::<testkit::Echo>(body).unwrap();

    // Three requests in one write: three answers, in order.
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: o.example.com\r\n\r\n\
          HEAD /two HTTP/1.1\r\nHost: o.example.com\r\n\r\n\
          GET /three?x=1 HTTP/1.1\r\nHost: o.example.com\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, body, _) = read_response(&mut s, &mut buf, false).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert_eq!(echoed(&body).path, "/one");
    let (head, _, _) = read_response(&mut s, &mut buf, true).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let (_, body, _) = read_response(&mut s, &mut buf, false).await;
    let three = echoed(&body);
    assert_eq!(
        (three.path.as_str(), three.query.as_str()),
        ("/three", "x=1")
    );
    assert_eq!(three.headers["x-multi"], ["a", "b"]);

    // A request with a body on the same connection goes to hyper's
    // server, which serves the rest of the connection.
    let (_, body, _) = ask(
        &mut s,
        &mut buf,
        b"POST /four HTTP/1.1\r\nHost: o.example.com\r\nContent-Length: 5\r\n\r\nhello",
        false,
    )
    .await;
    let four = echoed(&body);
    assert_eq!((four.method.as_str(), four.body_length), ("POST", 5));
    let (head, body, _) = ask(
        &mut s,
        &mut buf,
        b"GET /five HTTP/1.1\r\nHost: o.example.com\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(echoed(&body).path, "/five");
    assert!(head.contains("connection: close"), "{head}");
    assert_closed(&mut s).await;

    // `Connection: close` on the gateway's own server: said and done.
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut buf = Vec::new();
    let (head, body, _) = ask(
        &mut s,
        &mut buf,
        b"GET /six HTTP/1.1\r\nHost: o.example.com\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(echoed(&body).path, "/six");
    assert_closed(&mut s).await;

    // An answer of unknown length goes out chunked, trailers included.
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut buf = Vec::new();
    let (head, body, trailers) = ask(
        &mut s,
        &mut buf,
        b"GET /chunked HTTP/1.1\r\nHost: f.example.com\r\n\r\n",
        false,
    )
    .await;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert_eq!(body, b"hello, world");
    assert!(trailers.contains("x-sum: 1"), "{trailers:?}");

    // Long chunks and long bodies of known length are passed on whole.
    let (head, body, _) = ask(
        &mut s,
        &mut buf,
        b"GET /bigchunks HTTP/1.1\r\nHost: f.example.com\r\n\r\n",
        false,
    )
    .await;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(body.len(), 20_000);
    assert!(body[..10_000].iter().all(|b| *b == b'x') && body[10_000..].iter().all(|b| *b == b'y'));
    let (head, body, _) = ask(
        &mut s,
        &mut buf,
        b"GET /large HTTP/1.1\r\nHost: o.example.com\r\nX-Echo-Response-Bytes: 300000\r\n\r\n",
        false,
    )
    .await;
    assert!(head.contains("content-length: 300000"), "{head}");
    assert!(body.len() == 300_000 && body.iter().all(|b| *b == b'a'));

    // A head that arrives a byte at a time is served, on the same
    // connection.
    for b in b"GET /seven HTTP/1.1\r\nHost: o.example.com\r\n\r\n" {
        s.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (_, body, _) = read_response(&mut s, &mut buf, false).await;
    assert_eq!(echoed(&body).path, "/seven");

    // An idle keep-alive connection is let go after the header timeout.
    let idle = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(6), s.read(&mut [0u8; 16])).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(
        idle.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        idle.elapsed()
    );

    // HTTP/1.0 is answered too (by hyper's server), and closed after.
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    s.write_all(b"GET /eight HTTP/1.0\r\nHost: o.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(text.contains("\"/eight\""), "{text}");

    // A target the gateway's parser takes but the URI type refuses gets
    // hyper's 400.
    let r = raw_request(gw.http, "GET", "/a<b>", &[("host", "o.example.com")], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // A client that goes away while its request waits on the upstream
    // cancels it: the gateway closes its upstream connection.
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    s.write_all(b"GET /held HTTP/1.1\r\nHost: h.example.com\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    let seen = tokio::time::timeout(Duration::from_secs(3), closed_rx.recv())
        .await
        .expect("the upstream request was not cancelled")
        .unwrap();
    assert!(seen > 0, "the request never reached the upstream");
}

/// A request whose host is ambiguous is refused, whichever server reads
/// it: two Host headers (RFC 9112 §3.2), an HTTP/2 Host naming another
/// authority than `:authority` (RFC 9113 §8.3.1). An HTTP/1.1
/// absolute-form target is routed by its authority, and the upstream gets
/// that authority as its Host, not the Host header sent beside it.
#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_hosts_are_refused() {
    let a = EchoServer::start("a").await;
    let b = EchoServer::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "h.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("a", &[a.addr]),
            service("b", &[b.addr]),
            route(
                "a",
                "a.example.com",
                "  - backends: [{name: a, port: 80}]\n",
            ),
            route(
                "b",
                "b.example.com",
                "  - backends: [{name: b, port: 80}]\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let echoed = |body: &[u8]| serde_json::from_slice::<testkit::Echo>(body).unwrap();

    // Two Host headers: the gateway's own server (no body) and hyper's
    // (a body), agreeing or not.
    for request in [
        &b"GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: a.example.com\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: b.example.com\r\nHost: a.example.com\r\nContent-Length: 2\r\n\r\nhi",
    ] {
        let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
        let mut buf = Vec::new();
        let (head, _, _) = ask(&mut s, &mut buf, request, false).await;
        assert!(head.starts_with("http/1.1 400"), "{head}");
    }

    // Absolute form: the target's authority routes, and is the Host the
    // upstream sees.
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let mut buf = Vec::new();
    let (head, body, _) = ask(
        &mut s,
        &mut buf,
        b"GET http://a.example.com/abs HTTP/1.1\r\nHost: b.example.com\r\n\r\n",
        false,
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let echo = echoed(&body);
    assert_eq!(echo.name, "a");
    assert_eq!(echo.header("host"), Some("a.example.com"));
    assert_eq!(echo.header("x-forwarded-host"), Some("a.example.com"));

    // HTTP/2: a Host beside `:authority` must name the same authority.
    let h2 = HttpClient::http2();
    let refused = h2
        .send(
            gw.http,
            Method::GET,
            "a.example.com",
            "/",
            &[("host", "b.example.com")],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 400);
    let same = h2
        .send(
            gw.http,
            Method::GET,
            "a.example.com",
            "/",
            &[("host", "A.example.com")],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(same.status, 200);
    assert_eq!(same.echo().unwrap().name, "a");
}

/// A client that stops reading its response is let go after
/// `--send-timeout` without progress; one that keeps reading, however
/// slowly, gets its whole answer.
#[tokio::test(flavor = "multi_thread")]
async fn clients_that_stop_reading_are_let_go() {
    const SIZE: usize = 48 << 20;
    let (_echo, _dir, gw) = echo_gateway("big", &["--send-timeout", "1s"]).await;
    let request = |size: usize| {
        format!("GET / HTTP/1.1\r\nHost: big.example.com\r\nx-echo-response-bytes: {size}\r\n\r\n")
    };
    let connect = || async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        socket.connect(gw.http).await.unwrap()
    };
    // Reads until the end of the stream; the bytes read.
    async fn drain(s: &mut tokio::net::TcpStream) -> usize {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    }

    // Reads nothing for three seconds: the gateway gives up on it, and
    // what it had sent is all there is.
    let mut stalled = connect().await;
    stalled.write_all(request(SIZE).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = tokio::time::timeout(Duration::from_secs(10), drain(&mut stalled))
        .await
        .expect("the gateway closed the connection");
    assert!(got < SIZE, "{got} bytes: the whole answer arrived");

    // Pauses half a second between reads: slow, never stalled for a
    // second. (Each read takes 4 MiB: the kernel reports a full socket
    // writable again only once a good part of its buffer is free.)
    const STEP: usize = 4 << 20;
    let size = 24 << 20;
    let mut slow = connect().await;
    slow.write_all(request(size).as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; STEP];
    let whole = loop {
        if let Some(end) = find_body_end(&got, size) {
            break end;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut step = 0;
        while step < STEP && find_body_end(&got, size).is_none() {
            let n =
                tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf[..STEP - step]))
                    .await
                    .unwrap()
                    .unwrap();
            assert!(n > 0, "closed after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
            step += n;
        }
    };
    assert_eq!(whole, got.len());
}

/// Where a response of `size` body bytes (with `Content-Length`) ends in
/// `got`, once all of it is there.
fn find_body_end(got: &[u8], size: usize) -> Option<usize> {
    let head = got.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    (got.len() >= head + size).then_some(head + size)
}
