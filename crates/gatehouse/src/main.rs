//! The `gatehouse` binary: command line, wiring, signals and graceful
//! shutdown. It is the only crate that sees every other one; everything
//! with logic lives in the libraries.

mod cli;
mod commands;
mod logging;
mod shutdown;
mod workers;

use std::process::ExitCode;

use clap::Parser;

// mimalloc keeps per-thread free lists: the proxy's many short-lived
// allocations (header maps, bytes) cost less and fragment less than with
// the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = logging::init(&cli.log_level, cli.log_format) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        cli::Command::Run(args) => commands::run::run(&args),
        cli::Command::Standalone(args) => commands::standalone::run(&args),
        cli::Command::Validate(args) => commands::validate::run(&args),
        cli::Command::Migrate(args) => commands::migrate::run(&args),
        cli::Command::Crdgen(args) => commands::crdgen::run(&args),
        cli::Command::Routes(args) => commands::inspect::routes(&args),
        cli::Command::Explain(args) => commands::inspect::explain(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
