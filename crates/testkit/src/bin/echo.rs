//! `gatehouse-echo NAME=ADDR...`: runs echo backends until interrupted.
//!
//! Each argument starts one backend, for example
//! `gatehouse-echo a=127.0.0.1:9001 b=127.0.0.1:9002`.

use std::net::SocketAddr;
use std::process::ExitCode;

use testkit::EchoServer;

#[tokio::main]
async fn main() -> ExitCode {
    let mut servers = Vec::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: gatehouse-echo NAME=ADDR [NAME=ADDR...]");
        return ExitCode::from(2);
    }
    for arg in args {
        let Some((name, addr)) = arg.split_once('=') else {
            eprintln!("expected NAME=ADDR, got {arg:?}");
            return ExitCode::from(2);
        };
        let addr: SocketAddr = match addr.parse() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{addr:?} is not an address: {e}");
                return ExitCode::from(2);
            }
        };
        match EchoServer::start_on(name, addr).await {
            Ok(s) => {
                eprintln!("echo backend {name} listening on {}", s.addr);
                servers.push(s);
            }
            Err(e) => {
                eprintln!("cannot start echo backend {name} on {addr}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
