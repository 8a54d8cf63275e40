//! `gatehouse crdgen`: the CustomResourceDefinitions as YAML.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::CrdgenArgs;

pub(crate) fn run(args: &CrdgenArgs) -> anyhow::Result<ExitCode> {
    let rendered = api::crd::rendered().context("rendering the CRDs")?;
    if let Some(path) = &args.reference {
        std::fs::write(path, api::reference::markdown())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if args.out_dir.is_empty() {
        let mut out = std::io::stdout().lock();
        for (_, text) in &rendered {
            out.write_all(text.as_bytes())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    for dir in &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, text) in &rendered {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
