//! Upgraded connections (WebSocket and other HTTP/1.1 upgrades), relayed
//! byte for byte in both directions until either side closes or the
//! connection stays silent for the idle timeout.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const BUFFER: usize = 16 * 1024;

/// Relays between `a` and `b`. Returns the bytes moved each way.
pub(crate) async fn relay<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let mut a_buf = vec![0u8; BUFFER];
    let mut b_buf = vec![0u8; BUFFER];
    let (mut a_to_b, mut b_to_a) = (0u64, 0u64);
    let (mut a_open, mut b_open) = (true, true);
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    while a_open || b_open {
        tokio::select! {
            read = ar.read(&mut a_buf), if a_open => {
                let n = read?;
                if n == 0 {
                    a_open = false;
                    bw.shutdown().await?;
                } else {
                    bw.write_all(&a_buf[..n]).await?;
                    a_to_b += n as u64;
                }
            }
            read = br.read(&mut b_buf), if b_open => {
                let n = read?;
                if n == 0 {
                    b_open = false;
                    aw.shutdown().await?;
                } else {
                    aw.write_all(&b_buf[..n]).await?;
                    b_to_a += n as u64;
                }
            }
            () = &mut deadline => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle timeout"));
            }
        }
        deadline.as_mut().reset(tokio::time::Instant::now() + idle);
    }
    Ok((a_to_b, b_to_a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_both_ways_and_closes() {
        let (client, gw_a) = tokio::io::duplex(64);
        let (gw_b, server) = tokio::io::duplex(64);
        let task = tokio::spawn(relay(gw_a, gw_b, Duration::from_secs(5)));
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut sr, mut sw) = tokio::io::split(server);
        cw.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        sr.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        sw.write_all(b"pong!").await.unwrap();
        let mut buf = [0u8; 5];
        cr.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong!");
        cw.shutdown().await.unwrap();
        sw.shutdown().await.unwrap();
        assert_eq!(task.await.unwrap().unwrap(), (4, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connections_time_out() {
        let (_client, gw_a) = tokio::io::duplex(64);
        let (gw_b, _server) = tokio::io::duplex(64);
        let err = relay(gw_a, gw_b, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
