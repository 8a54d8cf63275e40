//! Configuration sources and the publish step.
//!
//! In the data flow of `DESIGN.md` this crate holds the left-hand boxes:
//! sources that collect objects into a `ResourceSet` (a manifest directory
//! in standalone mode; Kubernetes watchers in cluster mode), the debounce
//! that coalesces bursts of changes, and the pipeline that runs the pure
//! translator and hands each new snapshot to the data plane's publish
//! function.

pub mod acme;
pub mod kube;
pub mod manifests;
pub mod pipeline;
pub mod standalone;

pub use manifests::{FileError, ManifestSet};
pub use pipeline::{Applied, Pipeline, Publish};
