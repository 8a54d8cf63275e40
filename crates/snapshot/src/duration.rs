//! Durations serialize as human-readable strings (`1.5s`, `250ms`) so that
//! snapshot dumps and golden files read naturally.

use std::time::Duration;

use serde::Serializer;

pub(crate) fn ser_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&format_args!("{d:?}")),
        None => s.serialize_none(),
    }
}

pub(crate) fn ser<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{d:?}"))
}
