//! The client against scripted upstreams on real sockets.

#![allow(clippy::unwrap_used, reason = "test code")]

use super::*;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncReadExt;

/// What the scripted upstream saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    heads: Mutex<Vec<String>>,
}

/// An upstream answering request heads with `script` in order (across
/// connections); each answer is raw bytes and whether to close the
/// connection after it.
async fn upstream(script: Vec<(&'static [u8], bool)>) -> (SocketAddr, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            record.connections.fetch_add(1, Ordering::SeqCst);
            let (record, script) = (record.clone(), script.clone());
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head: Vec<u8> = pending.drain(..end).collect();
                    lock(&record.heads).push(String::from_utf8(head).unwrap());
                    let Some((answer, close)) = lock(&script).pop_front() else {
                        return;
                    };
                    if s.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn pool() -> Arc<Pool> {
    Arc::new(Pool::new(&UpstreamConfig::for_tests(
        Duration::from_secs(60),
        8,
        0,
    )))
}

fn request(method: Method, target: &str) -> Request<UpstreamBody> {
    Request::builder()
        .method(method)
        .uri(target)
        .header("host", "example.test")
        .header("x-two", "a")
        .header("x-two", "b")
        .body(UpstreamBody::Empty(Empty::new()))
        .unwrap()
}

/// Sends a GET to `addr` and reads the whole response.
async fn get(
    pool: &Arc<Pool>,
    addr: SocketAddr,
) -> Result<(Response<()>, Bytes, Option<HeaderMap>), BoxError> {
    let resp = pool
        .send(addr, &mut request(Method::GET, "/"), None)
        .await?;
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok((
        Response::from_parts(parts, ()),
        collected.to_bytes(),
        trailers,
    ))
}

#[tokio::test]
async fn writes_the_head_as_given_and_reuses_the_connection() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello";
    let (addr, seen) = upstream(vec![(ok, false), (ok, false), (ok, false)]).await;
    let pool = pool();
    for _ in 0..2 {
        let (resp, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-up"], "1");
        assert_eq!(&body[..], b"hello");
    }
    let resp = pool
        .send(addr, &mut request(Method::POST, "/submit?a=1&b=2"), None)
        .await
        .unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    let heads = lock(&seen.heads).clone();
    assert_eq!(
        heads[0],
        "GET / HTTP/1.1\r\nhost: example.test\r\nx-two: a\r\nx-two: b\r\n\r\n"
    );
    assert_eq!(
        heads[2],
        "POST /submit?a=1&b=2 HTTP/1.1\r\nhost: example.test\r\nx-two: a\r\nx-two: b\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(pool.pooled(addr), 1);
}

/// Each worker's requests reuse the connections that worker opened
/// (registered with its runtime), never another worker's.
#[test]
fn each_worker_keeps_its_own_connections() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let upstream_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (addr, seen) = upstream_runtime.block_on(upstream(vec![(ok, false); 4]));
    let pool = Arc::new(Pool::new(&UpstreamConfig::for_tests(
        Duration::from_secs(60),
        8,
        2,
    )));
    let workers: Vec<tokio::runtime::Runtime> = (0..2)
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        })
        .collect();
    for round in 0..2 {
        for (i, runtime) in workers.iter().enumerate() {
            crate::workers::set_worker(i);
            // A connection of the other runtime would never be
            // answered here: that runtime is not being driven.
            let (resp, body, _) = runtime
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), get(&pool, addr)).await
                })
                .unwrap_or_else(|_| panic!("round {round}, worker {i}: no answer"))
                .unwrap();
            assert_eq!(resp.status(), 200, "round {round}, worker {i}");
            assert_eq!(&body[..], b"ok");
        }
    }
    crate::workers::unset_worker();
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    assert_eq!(pool.pooled(addr), 2);
}

#[tokio::test]
async fn writes_the_gateways_headers_in_place_of_the_clients() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let (addr, seen) = upstream(vec![(ok, false)]).await;
    let mut req = request(Method::GET, "/");
    let h = req.headers_mut();
    h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    h.insert("x-forwarded-host", HeaderValue::from_static("forged"));
    h.insert("traceparent", HeaderValue::from_static("forged"));
    let forwarding = Forwarding {
        forwarded_for: Some(HeaderValue::from_static("192.0.2.1")),
        request_id: Some(HeaderValue::from_static("id-1")),
        ..Forwarding::default()
    };
    let resp = pool()
        .send(addr, &mut req, Some(&forwarding))
        .await
        .unwrap();
    let _ = resp.into_body().collect().await.unwrap();
    // The client's values under the gateway's names are gone, those
    // without a value here (the forwarded host) included; the
    // gateway's follow the request's own headers.
    assert_eq!(
        lock(&seen.heads)[0],
        "GET / HTTP/1.1\r\nhost: example.test\r\nx-two: a\r\nx-two: b\r\n\
         x-forwarded-for: 192.0.2.1\r\nx-request-id: id-1\r\n\r\n"
    );
}

#[tokio::test]
async fn decodes_chunked_bodies_with_extensions_and_trailers() {
    let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=value\r\nhello\r\n7\r\n, world\r\nA \r\n0123456789\r\n0\r\nx-checksum: abc\r\n\r\n";
    let plain: &[u8] =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let (addr, seen) = upstream(vec![(chunked, false), (plain, false)]).await;
    let pool = pool();
    let (_, body, trailers) = get(&pool, addr).await.unwrap();
    assert_eq!(&body[..], b"hello, world0123456789");
    assert_eq!(trailers.unwrap()["x-checksum"], "abc");
    let (_, body, trailers) = get(&pool, addr).await.unwrap();
    assert_eq!(&body[..], b"abc");
    assert!(trailers.is_none());
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "reused after chunked bodies"
    );
}

#[tokio::test]
async fn bodies_delimited_by_close_are_read_to_the_end_and_not_reused() {
    let close: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
    let (addr, seen) = upstream(vec![(close, true), (close, true)]).await;
    let pool = pool();
    for _ in 0..2 {
        let (_, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!(&body[..], b"until the end");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    assert_eq!(pool.pooled(addr), 0);
}

#[tokio::test]
async fn responses_without_bodies_end_at_their_heads() {
    // HEAD announces a length it does not send; 204 and 304 carry none;
    // interim responses come before the final one.
    let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    let no_content: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    let not_modified: &[u8] = b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
    let interim: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (addr, seen) = upstream(vec![
        (head, false),
        (no_content, false),
        (not_modified, false),
        (interim, false),
    ])
    .await;
    let pool = pool();
    let resp = pool
        .send(addr, &mut request(Method::HEAD, "/"), None)
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-length"], "1000");
    assert!(resp.body().is_end_stream());
    assert_eq!(pool.pooled(addr), 1, "back in the pool at once");
    drop(resp);
    let (resp, body, _) = get(&pool, addr).await.unwrap();
    assert_eq!((resp.status().as_u16(), body.len()), (204, 0));
    let (resp, body, _) = get(&pool, addr).await.unwrap();
    assert_eq!((resp.status().as_u16(), body.len()), (304, 0));
    let (resp, body, _) = get(&pool, addr).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        !resp.headers().contains_key("link"),
        "interim headers dropped"
    );
    assert_eq!(&body[..], b"ok");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn connections_the_upstream_ends_are_not_reused() {
    let close: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na";
    let old: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb";
    let old_kept: &[u8] =
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nc";
    let both: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nd\r\n0\r\n\r\n";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ne";
    let (addr, seen) = upstream(vec![
        (close, false),
        (old, false),
        (old_kept, false),
        (ok, false),
        (both, false),
        (ok, false),
    ])
    .await;
    let pool = pool();
    let mut bodies = Vec::new();
    for _ in 0..6 {
        let (resp, body, _) = get(&pool, addr).await.unwrap();
        if body[..] == *b"d" {
            assert!(!resp.headers().contains_key("content-length"));
        }
        bodies.push(String::from_utf8(body.to_vec()).unwrap());
    }
    assert_eq!(bodies, ["a", "b", "c", "e", "d", "e"]);
    // close → new; 1.0 → new; 1.0 keep-alive → reused; both framings
    // → new.
    assert_eq!(seen.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_is_replaced_unnoticed() {
    // The upstream closes after every answer without saying so.
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (addr, seen) = upstream(vec![(ok, true); 4]).await;
    let pool = pool();
    let (_, body, _) = get(&pool, addr).await.unwrap();
    assert_eq!(&body[..], b"ok");
    // Seen closed before use (the runtime has had time to see it).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, body, _) = get(&pool, addr).await.unwrap();
    assert_eq!(&body[..], b"ok");
    // Found closed on use (no time to notice): sent again.
    let (_, body, _) = get(&pool, addr).await.unwrap();
    assert_eq!(&body[..], b"ok");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_non_idempotent_request_is_not_sent_twice() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (addr, seen) = upstream(vec![(ok, true), (ok, true)]).await;
    let pool = pool();
    let _ = get(&pool, addr).await.unwrap();
    // The pooled connection is closed, but maybe not seen as such yet:
    // a POST that finds it dead fails rather than being repeated.
    let result = pool.send(addr, &mut request(Method::POST, "/"), None).await;
    let heads = lock(&seen.heads).len();
    match result {
        Ok(resp) => {
            assert_eq!(resp.status(), 200);
            assert_eq!(heads, 2);
        }
        Err(e) => {
            assert!(matches!(e, UpstreamError::Reset(_)), "{e}");
            assert_eq!(heads, 1, "never written twice");
        }
    }
}

#[tokio::test]
async fn malformed_responses_are_errors_and_close_the_connection() {
    let conflicting: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc";
    let bad_length: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nab";
    let garbage: &[u8] = b"HTTP/1.1 2OO OK\r\n\r\n";
    let bad_chunk: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n";
    let unasked_switch: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
    let (addr, seen) = upstream(vec![
        (conflicting, false),
        (bad_length, false),
        (garbage, false),
        (bad_chunk, false),
        (unasked_switch, false),
    ])
    .await;
    let pool = pool();
    for i in 0..5 {
        let result = get(&pool, addr).await;
        assert!(
            result.is_err(),
            "answer {i} accepted: {:?}",
            result.map(|r| r.1)
        );
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 5);
    assert_eq!(pool.pooled(addr), 0);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error() {
    let short: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5";
    let short_chunk: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc";
    let (addr, _) = upstream(vec![(short, true), (short_chunk, true)]).await;
    let pool = pool();
    for _ in 0..2 {
        let resp = pool
            .send(addr, &mut request(Method::GET, "/"), None)
            .await
            .unwrap();
        let err = resp.into_body().collect().await.unwrap_err();
        assert!(
            err.to_string().contains("before the end of the body"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..2000 {
        huge.extend_from_slice(format!("x-filler-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let huge: &'static [u8] = Vec::leak(huge);
    let (addr, _) = upstream(vec![(huge, false)]).await;
    let err = get(&pool(), addr).await.unwrap_err();
    assert!(
        err.to_string().contains("too many headers") || err.to_string().contains("larger than"),
        "{err}"
    );
}

#[tokio::test]
async fn a_complete_head_over_the_limit_is_refused() {
    // Few headers, so the count limit does not apply: only the size.
    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..3 {
        huge.extend_from_slice(format!("x-big-{i}: {}\r\n", "v".repeat(22_000)).as_bytes());
    }
    huge.extend_from_slice(b"content-length: 0\r\n\r\n");
    let huge: &'static [u8] = Vec::leak(huge);
    let (addr, _) = upstream(vec![(huge, false)]).await;
    let err = get(&pool(), addr).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn a_body_dropped_early_closes_its_connection() {
    let slow: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (addr, seen) = upstream(vec![(slow, false), (ok, false)]).await;
    let pool = pool();
    let resp = pool
        .send(addr, &mut request(Method::GET, "/"), None)
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"partial");
    drop(body);
    let (_, body, _) = get(&pool, addr).await.unwrap();
    assert_eq!(&body[..], b"ok");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_held_in_full_goes_out_with_its_head() {
    let ok: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    let (addr, seen) = upstream(vec![(ok, false), (ok, false)]).await;
    let pool = pool();
    let mut req = request(Method::POST, "/orders");
    *req.body_mut() =
        UpstreamBody::Buffered(crate::body::Whole::new(Bytes::from_static(b"{\"id\":7}")));
    assert!(handles(&req));
    let resp = pool.send(addr, &mut req, None).await.unwrap();
    assert_eq!(resp.status(), 201);
    let _ = resp.into_body().collect().await.unwrap();
    // The client's own Content-Length, when it agrees, is kept as is.
    let mut req = request(Method::PUT, "/orders/7");
    req.headers_mut()
        .insert("content-length", HeaderValue::from_static("2"));
    *req.body_mut() = UpstreamBody::Buffered(crate::body::Whole::new(Bytes::from_static(b"{}")));
    assert!(handles(&req));
    let _ = pool
        .send(addr, &mut req, None)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await;
    // The scripted upstream reads heads only: the bodies arrive as the
    // start of the next "head" or after it, so look at the raw bytes.
    let heads = lock(&seen.heads).join("");
    assert!(
        heads.starts_with(
            "POST /orders HTTP/1.1\r\nhost: example.test\r\nx-two: a\r\nx-two: b\r\ncontent-length: 8\r\n\r\n"
        ),
        "{heads}"
    );
    assert!(
        heads.contains("\r\n\r\n{\"id\":7}PUT /orders/7 HTTP/1.1\r\n"),
        "{heads}"
    );
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn only_plain_requests_without_a_streamed_body_are_taken() {
    let with = |f: fn(&mut Request<UpstreamBody>)| {
        let mut r = request(Method::GET, "/");
        f(&mut r);
        handles(&r)
    };
    assert!(with(|_| {}));
    assert!(with(|r| {
        r.headers_mut()
            .insert("content-length", HeaderValue::from_static("0"));
    }));
    // A small body held in full is taken; a large one, or one whose
    // Content-Length disagrees, is not.
    assert!(with(|r| {
        *r.body_mut() = UpstreamBody::Buffered(crate::body::Whole::new(Bytes::from_static(b"x")));
    }));
    assert!(!with(|r| {
        let large = Bytes::from(vec![b'x'; MAX_WHOLE_BODY + 1]);
        *r.body_mut() = UpstreamBody::Buffered(crate::body::Whole::new(large));
    }));
    assert!(!with(|r| {
        r.headers_mut()
            .insert("content-length", HeaderValue::from_static("5"));
        *r.body_mut() = UpstreamBody::Buffered(crate::body::Whole::new(Bytes::from_static(b"x")));
    }));
    assert!(!with(|r| {
        r.headers_mut()
            .insert("upgrade", HeaderValue::from_static("websocket"));
    }));
    assert!(!with(|r| {
        r.headers_mut()
            .insert("expect", HeaderValue::from_static("100-continue"));
    }));
    assert!(!with(|r| *r.method_mut() = Method::CONNECT));
    assert!(!with(|r| {
        r.headers_mut()
            .insert("content-length", HeaderValue::from_static("3"));
    }));
}

#[tokio::test]
async fn idle_connections_are_released_without_traffic() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (a, _) = upstream(vec![(ok, true)]).await;
    let (b, _) = upstream(vec![(ok, false)]).await;
    let pool = Arc::new(Pool::new(&UpstreamConfig::for_tests(
        Duration::from_millis(200),
        8,
        0,
    )));
    pool.sweep_in_background();
    let _ = get(&pool, a).await.unwrap();
    let _ = get(&pool, b).await.unwrap();
    assert_eq!((pool.pooled(a), pool.pooled(b)), (1, 1));
    // a's upstream closed its end: released at the next sweep.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!((pool.pooled(a), pool.pooled(b)), (0, 1));
    // b's connection expires after the idle timeout.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(pool.pooled(b), 0);
}

#[tokio::test]
async fn connect_failures_are_connect_errors() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    assert!(matches!(
        pool()
            .send(addr, &mut request(Method::GET, "/"), None)
            .await,
        Err(UpstreamError::Connect(_))
    ));
}
