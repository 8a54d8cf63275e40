//! ingress-nginx compatibility: the commonly used
//! `nginx.ingress.kubernetes.io/*` annotations, parsed and validated into
//! the same typed settings an ApiRoute rule carries.
//!
//! Nothing here is pasted into configuration text: every value is parsed
//! into a typed setting or refused with a finding that names the
//! annotation and says why. The translator (with `--nginx-compat`) serves
//! the settings on the Ingress's own routes; `gatehouse migrate` reports
//! the findings and writes the settings out as ApiRoute and
//! RateLimitPolicy manifests. `docs/migration.md` lists each annotation
//! beside the ingress-nginx behaviour it reproduces.

mod model;
mod parser;
mod settings;
mod tables;

pub use self::model::{Canary, Finding, PREFIX, Parsed, Settings, UrlRedirect, Verdict};
pub use self::parser::{parse, parse_size};

#[cfg(test)]
mod tests;
