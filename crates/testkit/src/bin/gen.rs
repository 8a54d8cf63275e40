//! `gatehouse-gen ingress-paths N [ENDPOINTS] [PORT]`: prints a synthetic
//! configuration of N Ingress paths, for benchmarks and scale checks.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ingress-paths", n, rest @ ..] => {
            let Ok(n) = n.parse::<usize>() else {
                eprintln!("N must be a number");
                return ExitCode::from(2);
            };
            let endpoints = rest.first().and_then(|e| e.parse().ok()).unwrap_or(2);
            let port = rest.get(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
            print!("{}", testkit::scale::ingress_paths(n, endpoints, port));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: gatehouse-gen ingress-paths N [ENDPOINTS-PER-SERVICE] [PORT]");
            ExitCode::from(2)
        }
    }
}
