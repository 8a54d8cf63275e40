//! Status conditions from translation results: what Gatehouse made of
//! each ApiRoute and RateLimitPolicy, written back by the leader.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use snapshot::Snapshot;
use translate::{Diagnostic, ObjectRef, Severity};

/// Longest condition message; longer lists are cut with a count of the
/// rest.
const MAX_MESSAGE: usize = 1024;

/// The diagnostics of each object.
pub(crate) fn by_object(diagnostics: &[Diagnostic]) -> BTreeMap<&ObjectRef, Vec<&Diagnostic>> {
    let mut map: BTreeMap<&ObjectRef, Vec<&Diagnostic>> = BTreeMap::new();
    for d in diagnostics {
        map.entry(&d.object).or_default().push(d);
    }
    map
}

/// Whether `object` is live in the snapshot: for a RateLimitPolicy, some
/// served route enforces one of its limits; for anything else, some route
/// came from it.
pub(crate) fn programmed(snapshot: &Snapshot, object: &ObjectRef) -> bool {
    if &*object.kind == "RateLimitPolicy" {
        // Limit ids are `namespace/policy/limit`.
        let prefix = format!("{}/{}/", object.namespace, object.name);
        return snapshot
            .routes
            .iter()
            .flat_map(|r| r.rate_limits.iter())
            .any(|l| l.id.starts_with(&prefix));
    }
    snapshot.routes.iter().any(|r| {
        *r.origin.kind == *object.kind
            && r.origin.namespace == object.namespace
            && r.origin.name == object.name
    })
}

fn summary(list: &[&&Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in list.iter().enumerate() {
        let item = format!("{}: {}", d.field, d.message);
        if out.len() + item.len() + 2 > MAX_MESSAGE {
            out.push_str(&format!("; and {} more", list.len() - i));
            break;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&item);
    }
    out
}

/// The conditions an object should carry; `programmed` is whether it is
/// live in the data plane (see [`programmed`]). Conditions whose status,
/// reason, message and generation did not change keep their transition
/// time.
pub(crate) fn conditions(
    generation: Option<i64>,
    diagnostics: &[&Diagnostic],
    policy: bool,
    programmed: bool,
    existing: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let errors: Vec<&&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    let (refs, invalid): (Vec<&&Diagnostic>, Vec<&&Diagnostic>) =
        errors.iter().partition(|d| d.reason.is_reference());
    let accepted = if invalid.is_empty() {
        ("True", "Accepted", "the configuration is valid".to_owned())
    } else {
        ("False", invalid[0].reason.as_str(), summary(&invalid))
    };
    let resolved = if refs.is_empty() {
        (
            "True",
            "ResolvedRefs",
            "every reference resolved".to_owned(),
        )
    } else {
        ("False", refs[0].reason.as_str(), summary(&refs))
    };
    let live = match (policy, programmed) {
        (false, true) => "the routes are live in the data plane",
        (false, false) => "no route of this object is served",
        (true, true) => "served routes enforce its limits",
        (true, false) => "no served route carries its limits",
    };
    let programmed = if programmed {
        ("True", "Programmed", live.to_owned())
    } else {
        ("False", "NotProgrammed", live.to_owned())
    };
    let wanted = [
        ("Accepted", accepted),
        ("ResolvedRefs", resolved),
        ("Programmed", programmed),
    ];
    wanted
        .into_iter()
        .map(|(type_, (status, reason, message))| {
            let same = existing.iter().find(|c| {
                c.type_ == type_
                    && c.status == status
                    && c.reason == reason
                    && c.message == message
                    && c.observed_generation == generation
            });
            match same {
                Some(c) => c.clone(),
                None => {
                    // A change of message alone keeps the transition time.
                    let since = existing
                        .iter()
                        .find(|c| c.type_ == type_ && c.status == status)
                        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
                    Condition {
                        type_: type_.to_owned(),
                        status: status.to_owned(),
                        reason: reason.to_owned(),
                        message,
                        observed_generation: generation,
                        last_transition_time: since,
                    }
                }
            }
        })
        .collect()
}

/// Whether two condition lists say the same thing.
pub(crate) fn same(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

#[cfg(test)]
mod tests {
    use translate::Reason;

    use super::*;

    fn diag(severity: Severity, reason: Reason, field: &str) -> Diagnostic {
        Diagnostic {
            object: ObjectRef::new("ApiRoute", "ns", "r"),
            field: field.into(),
            severity,
            reason,
            message: "bad".into(),
        }
    }

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap())
    }

    #[test]
    fn healthy_objects_are_accepted_resolved_and_programmed() {
        let c = conditions(Some(3), &[], false, true, &[], &now());
        let find = |t: &str| c.iter().find(|x| x.type_ == t).unwrap();
        assert_eq!(find("Accepted").status, "True");
        assert_eq!(find("ResolvedRefs").status, "True");
        assert_eq!(find("Programmed").status, "True");
        assert!(c.iter().all(|x| x.observed_generation == Some(3)));
    }

    #[test]
    fn errors_split_into_invalid_and_unresolved() {
        let invalid = diag(
            Severity::Error,
            Reason::InvalidField,
            "spec.rules[0].matches[0].path.value",
        );
        let missing = diag(
            Severity::Error,
            Reason::BackendNotFound,
            "spec.rules[1].backends[0].name",
        );
        let warning = diag(Severity::Warning, Reason::InvalidField, "spec.x");
        let c = conditions(
            Some(1),
            &[&invalid, &missing, &warning],
            false,
            false,
            &[],
            &now(),
        );
        let find = |t: &str| c.iter().find(|x| x.type_ == t).unwrap();
        assert_eq!(find("Accepted").status, "False");
        assert_eq!(find("Accepted").reason, "InvalidField");
        assert!(
            find("Accepted")
                .message
                .contains("spec.rules[0].matches[0].path.value: bad")
        );
        assert_eq!(find("ResolvedRefs").status, "False");
        assert_eq!(find("ResolvedRefs").reason, "BackendNotFound");
        assert_eq!(find("Programmed").status, "False");
    }

    #[test]
    fn unchanged_conditions_keep_their_time_and_compare_equal() {
        let first = conditions(Some(1), &[], false, true, &[], &now());
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_900_000_000).unwrap());
        let again = conditions(Some(1), &[], false, true, &first, &later);
        assert!(same(&first, &again), "no write needed");
        let bumped = conditions(Some(2), &[], false, true, &first, &later);
        assert!(!same(&first, &bumped), "a new generation is a change");
        assert_eq!(
            bumped[0].last_transition_time, first[0].last_transition_time,
            "status did not flip"
        );
    }
}
