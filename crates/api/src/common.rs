//! Types shared by several resources.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The pattern every duration field accepts: one to four `<number><unit>`
/// groups, units `h`, `m`, `s` and `ms` (for example `1m30s`, `250ms`).
pub const DURATION_PATTERN: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";

/// Condition type: the object is valid and Gatehouse will serve it.
pub const CONDITION_ACCEPTED: &str = "Accepted";
/// Condition type: every object this one refers to (Services, Secrets,
/// routes) exists and is usable.
pub const CONDITION_RESOLVED_REFS: &str = "ResolvedRefs";
/// Condition type: the configuration is live in the data plane.
pub const CONDITION_PROGRAMMED: &str = "Programmed";

/// Observed state written back by the controller.
///
/// Only the elected leader writes status, and only when something changed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// Conditions describing what Gatehouse made of this object. Types:
    /// `Accepted` (the object is valid and will be served), `ResolvedRefs`
    /// (every referenced Service, Secret or route exists) and `Programmed`
    /// (the configuration is live in the data plane). Each carries the
    /// `observedGeneration` it was computed for; a condition whose
    /// generation is older than `metadata.generation` is stale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One HTTP header: a name and a value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name, case-insensitive (`X-Tenant` and `x-tenant` are the same
    /// header). Letters, digits and ``!#$%&'*+-.^_`|~`` only.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    )]
    pub name: String,
    /// Header value. Control characters other than horizontal tab are not
    /// allowed.
    #[schemars(length(max = 4096))]
    pub value: String,
}
