//! `gatehouse routes` and `gatehouse explain`: read-only questions to a
//! running gateway's admin endpoint.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};

use crate::cli::{ExplainArgs, Output, RoutesArgs};

/// GETs `path_and_query` from the admin listener at `addr`.
fn get(addr: SocketAddr, path_and_query: &str) -> anyhow::Result<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let work = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .with_context(|| format!("cannot reach the admin endpoint at {addr}"))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let req = http::Request::get(path_and_query)
                .header(http::header::HOST, addr.to_string())
                .body(Empty::<bytes::Bytes>::new())?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes().to_vec();
            if !status.is_success() {
                bail!(
                    "the admin endpoint answered {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                );
            }
            Ok(body)
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .with_context(|| format!("no answer from {addr} within 10 s"))?
    })
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Prints rows as columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

pub(crate) fn routes(args: &RoutesArgs) -> anyhow::Result<ExitCode> {
    let body = get(args.admin_addr, "/debug/routes")?;
    if args.output == Output::Json {
        print!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&body).context("the admin endpoint sent no route table")?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) if s.is_empty() => "*".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) if a.is_empty() => "-".to_owned(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut path = text(&r["path"]);
            if r["conditions"].as_u64().unwrap_or(0) > 0 {
                let _ = write!(path, " (+{} conditions)", r["conditions"]);
            }
            let target = if r["action"] == "forward" {
                text(&r["backends"])
            } else {
                text(&r["action"])
            };
            vec![
                text(&r["host"]),
                path,
                text(&r["method"]),
                text(&r["route"]),
                target,
                text(&r["policies"]),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["HOST", "PATH", "METHOD", "ROUTE", "BACKENDS", "POLICIES"],
            &cells
        )
    );
    if cells.is_empty() {
        println!("(no routes)");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let mut query = format!(
        "/debug/explain?host={}&path={}&method={}",
        encode(&args.host),
        encode(&args.path),
        encode(&args.method)
    );
    for h in &args.headers {
        let _ = write!(query, "&header={}", encode(h));
    }
    if let Some(q) = &args.query {
        let _ = write!(query, "&query={}", encode(q));
    }
    let body = get(args.admin_addr, &query)?;
    let answer: serde_json::Value =
        serde_json::from_slice(&body).context("the admin endpoint sent no explanation")?;
    let matched = !answer["route"].is_null();
    if args.output == Output::Json {
        print!("{}", String::from_utf8_lossy(&body));
    } else {
        println!("{}", answer["summary"].as_str().unwrap_or_default());
        if let Some(vh) = answer["virtualHost"].as_object() {
            println!(
                "\nvirtual host {} (matched by {}, {} entries)",
                vh["pattern"].as_str().unwrap_or_default(),
                vh["matchedBy"].as_str().unwrap_or_default(),
                vh["entries"]
            );
        }
        for e in answer["entries"].as_array().into_iter().flatten() {
            let reason = e["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            println!(
                "  {:<10} {:<28} {}{reason}",
                e["result"].as_str().unwrap_or_default(),
                e["path"].as_str().unwrap_or_default(),
                e["route"].as_str().unwrap_or_default(),
            );
        }
        if let Some(r) = answer["route"].as_object() {
            println!(
                "\nroute {} from {}",
                r["id"].as_str().unwrap_or_default(),
                r["origin"].as_str().unwrap_or_default()
            );
            println!("  action:   {}", r["action"].as_str().unwrap_or_default());
            for b in r["backends"].as_array().into_iter().flatten() {
                let endpoints: Vec<&str> = b["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str())
                    .collect();
                println!(
                    "  backend:  {} weight {} → {}",
                    b["name"].as_str().unwrap_or_default(),
                    b["weight"],
                    if endpoints.is_empty() {
                        "no ready endpoints".to_owned()
                    } else {
                        endpoints.join(", ")
                    }
                );
            }
            let policies: Vec<&str> = r["policies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str())
                .collect();
            if !policies.is_empty() {
                println!("  policies: {}", policies.join(", "));
            }
        }
    }
    // Like grep: 0 when a route takes the request, 1 when none does.
    Ok(if matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
