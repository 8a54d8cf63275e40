//! JWT validation: RS256, ES256, EdDSA and HS256 from a JWKS Secret;
//! claims checked and forwarded; a JWKS URL refreshed on key rotation.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, Reply};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and its public JWK.
struct Signer {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

fn ec_signer(kid: &str) -> Signer {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = kp.public_key_raw();
    Signer {
        alg: Algorithm::ES256,
        kid: kid.into(),
        key: EncodingKey::from_ec_der(&kp.serialize_der()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
    }
}

fn ed_signer(kid: &str) -> Signer {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    Signer {
        alg: Algorithm::EdDSA,
        kid: kid.into(),
        key: EncodingKey::from_ed_der(&kp.serialize_der()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(kp.public_key_raw())}),
    }
}

fn hs_signer(kid: &str) -> Signer {
    let secret = b"a shared secret of thirty-two bytes!";
    Signer {
        alg: Algorithm::HS256,
        kid: kid.into(),
        key: EncodingKey::from_secret(secret),
        jwk: json!({"kty": "oct", "kid": kid, "k": b64(secret)}),
    }
}

fn rsa_signer(kid: &str) -> Signer {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("k.pem");
    let der = dir.path().join("k.der");
    assert!(
        Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&pem)
            .arg("2048")
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(
        Command::new("openssl")
            .args(["rsa", "-traditional", "-outform", "DER", "-in"])
            .arg(&pem)
            .arg("-out")
            .arg(&der)
            .output()
            .unwrap()
            .status
            .success()
    );
    let out = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    let hex = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("Modulus=")
        .to_owned();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Signer {
        alg: Algorithm::RS256,
        kid: kid.into(),
        key: EncodingKey::from_rsa_der(&std::fs::read(&der).unwrap()),
        jwk: json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"}),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(s: &Signer, claims: &Value) -> String {
    let mut header = Header::new(s.alg);
    header.kid = Some(s.kid.clone());
    jsonwebtoken::encode(&header, claims, &s.key).unwrap()
}

fn good_claims() -> Value {
    json!({"iss": "https://issuer.test", "aud": "api", "sub": "alice", "scope": "read write", "exp": now() + 300})
}

async fn call(c: &HttpClient, gw: &GatewayProcess, host: &str, bearer: Option<&str>) -> Reply {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    c.send(gw.http, Method::GET, host, "/", &headers, Bytes::new())
        .await
        .unwrap()
}

fn route(name: &str, host: &str, jwt: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"{host}\"]\n  rules:\n  - authentication: {{jwt: {jwt}}}\n    backends: [{{name: svc, port: 80}}]\n"
    )
}

/// Serves whatever JWKS is in `keys` at `/jwks.json`.
async fn jwks_server(keys: Arc<Mutex<Value>>) -> std::net::SocketAddr {
    testkit::serve_fn(move |_| {
        (
            200,
            Vec::new(),
            Bytes::from(keys.lock().unwrap().to_string()),
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_of_every_algorithm_are_verified_and_their_claims_checked() {
    let echo = EchoServer::start("echo").await;
    let signers = [
        rsa_signer("rsa"),
        ec_signer("ec"),
        ed_signer("ed"),
        hs_signer("hs"),
    ];
    let jwks =
        json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}).to_string();
    let rotating = Arc::new(Mutex::new(json!({"keys": [signers[1].jwk.clone()]})));
    let server = jwks_server(rotating.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "jwks", "namespace": "default", "labels": {"gatehouse.dev/secret": "true"}},
        "stringData": {"jwks.json": jwks},
    });
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            secret.to_string(),
            route(
                "api",
                "api.example.com",
                "{jwksSecretRef: {name: jwks}, issuer: \"https://issuer.test\", audiences: [api], requiredClaims: {scope: read}, forwardClaims: {sub: X-User}}",
            ),
            route(
                "remote",
                "remote.example.com",
                &format!("{{jwksUri: \"http://{server}/jwks.json\"}}"),
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();

    for s in &signers {
        let r = call(&c, &gw, "api.example.com", Some(&token(s, &good_claims()))).await;
        assert_eq!(r.status, 200, "{:?}: {}", s.alg, r.text());
        let e = r.echo().unwrap();
        assert_eq!(e.header("x-user"), Some("alice"));
        assert_eq!(
            e.header("authorization"),
            None,
            "the token stops at the gateway"
        );
    }

    let ec = &signers[1];
    let mut expired = good_claims();
    expired["exp"] = json!(now() - 120);
    let mut wrong_aud = good_claims();
    wrong_aud["aud"] = json!("other");
    let mut wrong_iss = good_claims();
    wrong_iss["iss"] = json!("https://evil.test");
    let mut no_exp = good_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let forged = {
        let mut s = ec_signer("ec");
        s.kid = "ec".into();
        token(&s, &good_claims())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good_claims().to_string().as_bytes())
    );
    for (what, t) in [
        ("expired", token(ec, &expired)),
        ("audience", token(ec, &wrong_aud)),
        ("issuer", token(ec, &wrong_iss)),
        ("no exp", token(ec, &no_exp)),
        ("forged signature", forged),
        ("alg none", unsigned),
        ("garbage", "not.a.token".to_owned()),
    ] {
        let r = call(&c, &gw, "api.example.com", Some(&t)).await;
        assert_eq!(r.status, 401, "{what}");
        assert_eq!(
            r.headers["www-authenticate"],
            "Bearer realm=\"api.example.com\", error=\"invalid_token\"",
            "{what}"
        );
    }
    let r = call(&c, &gw, "api.example.com", None).await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.headers["www-authenticate"].to_str().unwrap()
        ),
        (401, "Bearer realm=\"api.example.com\"")
    );
    // Valid, but without the required scope: 403.
    let mut reader = good_claims();
    reader["scope"] = json!("write");
    let r = call(&c, &gw, "api.example.com", Some(&token(ec, &reader))).await;
    assert_eq!(r.status, 403);

    // A JWKS URL: fetched on first use; a rotated-in key is found by
    // refreshing on its unknown key id.
    let r = call(
        &c,
        &gw,
        "remote.example.com",
        Some(&token(ec, &good_claims())),
    )
    .await;
    assert_eq!(r.status, 200);
    let new = ed_signer("ed-2");
    rotating.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(new.jwk.clone());
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let r = call(
        &c,
        &gw,
        "remote.example.com",
        Some(&token(&new, &good_claims())),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_claim_keys_a_rate_limit() {
    let echo = EchoServer::start("echo").await;
    let hs = hs_signer("hs");
    let dir = tempfile::tempdir().unwrap();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "jwks", "namespace": "default", "labels": {"gatehouse.dev/secret": "true"}},
        "stringData": {"jwks.json": json!({"keys": [hs.jwk.clone()]}).to_string()},
    });
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            secret.to_string(),
            route("api", "api.example.com", "{jwksSecretRef: {name: jwks}}"),
            "apiVersion: gatehouse.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: per-subject, namespace: default}
spec:
  targetRefs: [{kind: ApiRoute, name: api}]
  limits:
  - {name: per-sub, key: {type: JwtClaim, name: sub}, rate: {requests: 1, per: 10s}, burst: 1}
"
            .to_owned(),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();
    let as_user = |sub: &str| {
        let mut claims = good_claims();
        claims["sub"] = json!(sub);
        token(&hs, &claims)
    };
    let alice = as_user("alice");
    let codes = |n: usize, t: String| {
        let (c, gw) = (&c, &gw);
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(
                    call(c, gw, "api.example.com", Some(&t))
                        .await
                        .status
                        .as_u16(),
                );
            }
            out
        }
    };
    assert_eq!(codes(3, alice.clone()).await, [200, 200, 429]);
    // Another subject has its own budget, whatever its token's other
    // claims; a new token of the same subject does not.
    assert_eq!(codes(2, as_user("bob")).await, [200, 200]);
    assert_eq!(codes(1, as_user("alice")).await, [429]);
    // Unauthenticated requests are refused before they count.
    assert_eq!(call(&c, &gw, "api.example.com", None).await.status, 401);
    assert_eq!(echo.requests(), 4);
}
