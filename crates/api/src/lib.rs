//! Gatehouse's custom resources: `ApiRoute` and `RateLimitPolicy` in the
//! `gatehouse.dev/v1alpha1` API group.
//!
//! This crate sits at the very start of the data flow in `DESIGN.md`: it only
//! describes the objects users write. It holds no routing logic; the
//! translator (`gatehouse-translate`) gives these fields their meaning and
//! re-checks every constraint, because standalone mode has no API server to
//! enforce the schema. The doc comments on fields are user documentation:
//! they become the text `kubectl explain` prints.

// The `KubeSchema` derive copies each struct into a private module to build
// its schema; the lint flags those copies, not our public types.
#[allow(unreachable_pub)]
mod apiroute;
mod common;
pub mod crd;
#[allow(unreachable_pub)]
mod policy;
#[allow(unreachable_pub)]
mod ratelimit;
pub mod reference;
#[allow(unreachable_pub)]
mod tls;
#[allow(unreachable_pub)]
mod traffic;

pub use apiroute::*;
pub use common::*;
pub use policy::*;
pub use ratelimit::*;
pub use tls::*;
pub use traffic::*;

/// The API group of every Gatehouse custom resource.
pub const GROUP: &str = "gatehouse.dev";
/// The served and stored version of the Gatehouse custom resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "gatehouse.dev/v1alpha1";
