//! `gatehouse-scenarios`: runs the shared routing scenarios against any
//! running gateway, and prints them as manifests for a real cluster.
//!
//! ```text
//! gatehouse-scenarios check --gateway 127.0.0.1:80 [--wait 60] FILE...
//! gatehouse-scenarios manifests --echo-image IMAGE FILE
//! ```
//!
//! `check` sends each scenario's requests and prints one line per request
//! that did not turn out as expected; with `--wait`, a failing scenario is
//! retried for up to that many seconds (clusters program routes
//! asynchronously). Exit status 1 when any request failed.
//!
//! `manifests` prints the scenario's objects (a `v1` `List` in JSON, for
//! `kubectl apply -f -`), each Service backed by a Deployment of the echo
//! image.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use testkit::scenario;

const USAGE: &str = "usage:
  gatehouse-scenarios check --gateway HOST:PORT [--wait SECONDS] FILE...
  gatehouse-scenarios manifests --echo-image IMAGE FILE";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse-scenarios: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: &[String]) -> Result<ExitCode, String> {
    let (command, rest) = args.split_first().ok_or("no command")?;
    let mut gateway: Option<SocketAddr> = None;
    let mut wait = Duration::ZERO;
    let mut image: Option<String> = None;
    let mut files = Vec::new();
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--gateway" => {
                let v = value()?;
                gateway = v
                    .to_socket_addrs()
                    .map_err(|e| format!("--gateway {v}: {e}"))?
                    .next();
            }
            "--wait" => {
                let v = value()?;
                wait = Duration::from_secs(
                    v.parse()
                        .map_err(|_| format!("--wait {v}: not a number of seconds"))?,
                );
            }
            "--echo-image" => image = Some(value()?.clone()),
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            file => files.push(PathBuf::from(file)),
        }
    }
    if files.is_empty() {
        return Err("no scenario files".into());
    }
    match command.as_str() {
        "check" => {
            let gateway = gateway.ok_or("check needs --gateway")?;
            let mut failed = 0;
            for file in &files {
                let s = scenario::load(file)?;
                let name = file
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                let failures = scenario::check_until(gateway, &name, &s, wait).await;
                if failures.is_empty() {
                    println!("ok   {name} ({} requests)", s.requests.len());
                } else {
                    println!("FAIL {name}");
                    for f in &failures {
                        println!("     {f}");
                    }
                    failed += failures.len();
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        "manifests" => {
            let image = image.ok_or("manifests needs --echo-image")?;
            let [file] = files.as_slice() else {
                return Err("manifests takes one file".into());
            };
            let objects = scenario::kubernetes_objects(&scenario::load(file)?, &image)?;
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            println!(
                "{}",
                serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
            );
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other}")),
    }
}
