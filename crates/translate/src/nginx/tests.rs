use std::collections::BTreeMap;

use super::*;

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
        .collect()
}

fn verdicts(p: &Parsed) -> Vec<(&str, Verdict)> {
    p.findings
        .iter()
        .map(|f| (f.annotation.trim_start_matches(PREFIX), f.verdict))
        .collect()
}

#[test]
fn sizes_parse_like_nginx() {
    assert_eq!(parse_size("0"), Some(0));
    assert_eq!(parse_size("8m"), Some(8 << 20));
    assert_eq!(parse_size("8M"), Some(8 << 20));
    assert_eq!(parse_size("512k"), Some(512 << 10));
    assert_eq!(parse_size("1g"), Some(1 << 30));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("8mb"), None);
    assert_eq!(parse_size("m"), None);
    assert_eq!(parse_size("-1"), None);
    assert_eq!(parse_size(""), None);
}

#[test]
fn rewrite_implies_regex_and_records_the_target() {
    let a = annotations(&[("rewrite-target", "/$2")]);
    let p = parse(Some(&a), "default");
    assert!(p.settings.use_regex);
    assert_eq!(p.settings.rewrite_target.as_deref(), Some("/$2"));
    assert!(!p.blocked());
}

#[test]
fn malformed_values_block_and_name_the_annotation() {
    let a = annotations(&[
        ("proxy-body-size", "lots"),
        ("limit-rps", "-3"),
        ("whitelist-source-range", "10.0.0.0/8, not-an-ip"),
        ("ssl-redirect", "yes"),
    ]);
    let p = parse(Some(&a), "default");
    assert!(p.blocked());
    assert_eq!(
        verdicts(&p),
        vec![
            ("limit-rps", Verdict::Malformed),
            ("proxy-body-size", Verdict::Malformed),
            ("ssl-redirect", Verdict::Malformed),
            ("whitelist-source-range", Verdict::Malformed),
        ]
    );
    assert!(p.findings[3].message.contains("not-an-ip"));
}

#[test]
fn snippets_are_unsupported_and_unknown_names_reported() {
    let a = annotations(&[
        ("configuration-snippet", "more_set_headers \"X: y\";"),
        ("frobnicate", "1"),
        ("auth-tls-verify-client", "on"),
    ]);
    let p = parse(Some(&a), "default");
    assert_eq!(
        verdicts(&p),
        vec![
            ("auth-tls-verify-client", Verdict::Refused),
            ("configuration-snippet", Verdict::Unsupported),
            ("frobnicate", Verdict::Unknown),
        ]
    );
    assert!(
        p.blocked(),
        "an access guard that cannot be honoured blocks"
    );
}

#[test]
fn cors_takes_ingress_nginx_defaults() {
    let a = annotations(&[
        ("enable-cors", "true"),
        ("cors-allow-origin", "https://a.example, https://b.example"),
    ]);
    let p = parse(Some(&a), "default");
    let cors = p.settings.cors.expect("cors");
    assert_eq!(
        cors.allow_origins,
        ["https://a.example", "https://b.example"]
    );
    assert!(cors.allow_credentials);
    assert_eq!(cors.max_age_seconds, Some(1_728_000));
    assert!(cors.allow_methods.contains(&"PATCH".to_owned()));
}

#[test]
fn cors_with_any_origin_leaves_credentials_out() {
    let a = annotations(&[("enable-cors", "true")]);
    let p = parse(Some(&a), "default");
    let cors = p.settings.cors.clone().expect("cors");
    assert_eq!(cors.allow_origins, ["*"]);
    assert!(!cors.allow_credentials);
    assert!(!p.blocked());
    assert!(verdicts(&p).contains(&("cors-allow-credentials", Verdict::Differs)));
}

#[test]
fn redirect_targets() {
    let a = annotations(&[("permanent-redirect", "https://new.example/landing")]);
    let r = parse(Some(&a), "ns").settings.redirect.expect("redirect");
    assert_eq!(
        (r.https, r.host.as_deref(), r.path.as_deref(), r.status),
        (true, Some("new.example"), Some("/landing"), 301)
    );
    let a = annotations(&[
        ("temporal-redirect", "http://new.example:8080$request_uri"),
        ("temporal-redirect-code", "307"),
    ]);
    let r = parse(Some(&a), "ns").settings.redirect.expect("redirect");
    assert_eq!(
        (r.https, r.port, r.path.as_deref(), r.status),
        (false, Some(8080), None, 307)
    );
    let a = annotations(&[("permanent-redirect", "https://x.example/$host")]);
    assert!(parse(Some(&a), "ns").blocked());
}

#[test]
fn hash_keys_map_onto_consistent_hashing() {
    let a = annotations(&[("upstream-hash-by", "$http_x_user_id")]);
    let h = parse(Some(&a), "ns").settings.hash_by.expect("hash");
    assert_eq!(h.header.as_deref(), Some("x-user-id"));
    let a = annotations(&[("upstream-hash-by", "$request_uri")]);
    let p = parse(Some(&a), "ns");
    assert!(p.settings.hash_by.is_none());
    assert_eq!(
        verdicts(&p),
        vec![("upstream-hash-by", Verdict::Unsupported)]
    );
}

#[test]
fn auth_secret_in_another_namespace_is_refused() {
    let a = annotations(&[("auth-type", "basic"), ("auth-secret", "other/users")]);
    assert!(parse(Some(&a), "ns").blocked());
    let a = annotations(&[
        ("auth-type", "basic"),
        ("auth-secret", "ns/users"),
        ("auth-realm", "Staff"),
    ]);
    let p = parse(Some(&a), "ns");
    assert!(!p.blocked());
    let b = p.settings.basic_auth.expect("basic");
    assert_eq!(
        (b.secret_ref.name.as_str(), b.realm.as_deref()),
        ("users", Some("Staff"))
    );
}
