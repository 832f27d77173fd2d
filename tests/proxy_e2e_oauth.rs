//! The OAuth 2.1 resource server end to end: the real `stdiopool` binary in
//! front of the fixture server, a JWK Set served by a small HTTP server on
//! 127.0.0.1 (the identity provider's keys endpoint), and access tokens
//! signed in the test with keys generated in the test (RS256, ES256, EdDSA).
//!
//! Covers every refusal of the issue (none of which may touch the pool), the
//! accepted algorithms, the key reload on an unknown key id (once, then
//! rate-limited), the protected-resource metadata and the start-up refusal
//! when the keys cannot be loaded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use e2e_support::{AbortOnDrop, Mcp, ProxyProcess, Req};
use hyper::http::{Method, StatusCode};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISSUER: &str = "http://127.0.0.1/test-idp";
const RESOURCE: &str = "https://mcp.example.test/mcp";
const METADATA_URL: &str = "https://mcp.example.test/.well-known/oauth-protected-resource/mcp";
const SCOPE: &str = "mcp:tools";

/// A signing key made in the test, with its public JWK.
struct Key {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl Key {
    fn new(alg: Algorithm, kid: &str) -> Key {
        let encoding = match alg {
            Algorithm::RS256 => {
                let pair =
                    aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().unwrap();
                EncodingKey::from_rsa_der(&pkcs1_of_pkcs8(der.as_ref()))
            }
            Algorithm::ES256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .unwrap();
                EncodingKey::from_ec_der(doc.as_ref())
            }
            Algorithm::EdDSA => {
                let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).unwrap();
                EncodingKey::from_ed_der(doc.as_ref())
            }
            other => panic!("no test key for {other:?}"),
        };
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Key {
            alg,
            kid: kid.to_owned(),
            encoding,
            jwk,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (SEQUENCE {
/// version, algorithm, privateKey OCTET STRING }): jsonwebtoken takes PKCS#1.
fn pkcs1_of_pkcs8(der: &[u8]) -> Vec<u8> {
    // (tag, content) of the DER element at the start of `input`, and the rest.
    fn element(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = match input[1] {
            n if n < 0x80 => (usize::from(n), 2),
            n => {
                let bytes = usize::from(n & 0x7f);
                let len = input[2..2 + bytes]
                    .iter()
                    .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
                (len, 2 + bytes)
            }
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    let (seq, info, _) = element(der);
    assert_eq!(seq, 0x30);
    let (_, _version, rest) = element(info);
    let (_, _algorithm, rest) = element(rest);
    let (octets, key, _) = element(rest);
    assert_eq!(octets, 0x04);
    key.to_vec()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Claims a valid token carries; tests change one thing at a time.
fn good_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "alice@example.test",
        "iat": now(),
        "exp": now() + 600,
        "scope": format!("openid {SCOPE}"),
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The identity provider's keys endpoint: serves `jwks` at `/jwks` and
/// counts the fetches.
struct KeysEndpoint {
    addr: SocketAddr,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    _server: AbortOnDrop,
}

impl KeysEndpoint {
    async fn start(keys: &[&Key]) -> KeysEndpoint {
        let jwks = Arc::new(Mutex::new(
            json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }),
        ));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (jwks.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let body = served.lock().unwrap().clone();
                counted.fetch_add(1, Ordering::SeqCst);
                async move { axum::Json(body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KeysEndpoint {
            addr,
            jwks,
            fetches,
            _server: AbortOnDrop(server),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn add(&self, key: &Key) {
        self.jwks.lock().unwrap()["keys"]
            .as_array_mut()
            .unwrap()
            .push(key.jwk.clone());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn oauth_args(keys: &KeysEndpoint, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--pool-size",
        "1",
        "--public-url",
        RESOURCE,
        "--oauth-issuer",
        ISSUER,
        "--oauth-jwks-url",
        &keys.url(),
        "--oauth-jwks-min-refresh",
        "1h",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn start(keys: &KeysEndpoint, extra: &[&str]) -> ProxyProcess {
    let args = oauth_args(keys, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ProxyProcess::start(&args, &[])
}

fn initialize(proxy: &ProxyProcess, token: Option<&str>) -> Req {
    let mut req = proxy.post(e2e_support::initialize_body(0, json!({})).to_string());
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_answers_every_refusal_before_any_process() {
    every_refusal_is_answered_before_any_process("pooled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_answers_every_refusal_before_any_process() {
    every_refusal_is_answered_before_any_process("session").await;
}

async fn every_refusal_is_answered_before_any_process(mode: &str) {
    let rsa = Key::new(Algorithm::RS256, "rsa-1");
    let stranger = Key::new(Algorithm::ES256, "rsa-1");
    let keys = KeysEndpoint::start(&[&rsa]).await;
    // Debug logging: the level at which refusals and subjects are logged,
    // so the check that no token reaches the log means something.
    let proxy = start(
        &keys,
        &[
            "--oauth-scope",
            SCOPE,
            "--mode",
            mode,
            "--log-filter",
            "debug",
        ],
    );
    assert_eq!(keys.fetches(), 1, "keys loaded once at start");
    let settled = proxy
        .wait_metrics("the first process warm", |m| {
            m.get("stdiopool_pool_idle") >= 1.0
        })
        .await;
    let before = settled.touch_counts();

    // An unknown key id: the set is fetched again once, then refused; a
    // second unknown key id within the rate-limit window fetches nothing.
    let fetched = keys.fetches();
    let reply = initialize(&proxy, Some(&rsa.sign_as("rotated-away", &good_claims())))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    assert_eq!(keys.fetches(), fetched + 1, "one reload for an unknown kid");
    let reply = initialize(&proxy, Some(&rsa.sign_as("made-up", &good_claims())))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    assert_eq!(keys.fetches(), fetched + 1, "reloads are rate-limited");
    // Refused before its body was read: the client must not reuse the
    // connection for its retry (src/proxy/transport/oauth/mod.rs, close_after).
    assert_eq!(reply.header("connection"), Some("close"));

    let good = rsa.sign(&good_claims());
    let mut tampered = good.clone().into_bytes();
    let mid = tampered.len() - 10;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good_claims().to_string().as_bytes())
    );
    // HS256 keyed with the public key as published: the classic confusion.
    let public_n = rsa.jwk["n"].as_str().unwrap().to_owned();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa-1".into());
    let hmac = jsonwebtoken::encode(
        &hs_header,
        &good_claims(),
        &EncodingKey::from_secret(public_n.as_bytes()).unwrap(),
    )
    .unwrap();

    let invalid: Vec<(&str, Option<String>)> = vec![
        ("malformed", Some("not-a-jwt".into())),
        ("three garbage parts", Some("a.b.c".into())),
        (
            "expired",
            Some(rsa.sign(&with(good_claims(), "exp", json!(now() - 600)))),
        ),
        (
            "not yet valid",
            Some(rsa.sign(&with(good_claims(), "nbf", json!(now() + 600)))),
        ),
        (
            "wrong issuer",
            Some(rsa.sign(&with(good_claims(), "iss", json!("http://127.0.0.1/evil")))),
        ),
        (
            "wrong audience",
            Some(rsa.sign(&with(
                good_claims(),
                "aud",
                json!("https://other.example.test/mcp"),
            ))),
        ),
        ("alg none", Some(unsigned)),
        ("HMAC with the public key", Some(hmac)),
        ("tampered signature", Some(tampered)),
        (
            "signed by a key not in the set under a known kid",
            Some(stranger.sign(&good_claims())),
        ),
    ];
    for (name, token) in &invalid {
        let reply = initialize(&proxy, token.as_deref()).send().await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {}",
            reply.text()
        );
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer "), "{name}: {challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{name}: {challenge}"
        );
        assert!(
            challenge.contains(&format!(r#"resource_metadata="{METADATA_URL}""#)),
            "{name}: {challenge}"
        );
        assert_eq!(reply.error_code(), -32000, "{name}");
        assert_eq!(reply.json()["id"], Value::Null, "{name}");
    }

    // No token: a challenge without an error code (RFC 6750 §3.1).
    let reply = initialize(&proxy, None).send().await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(!challenge.contains("error="), "{challenge}");
    assert!(
        challenge.contains(&format!(r#"resource_metadata="{METADATA_URL}""#)),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="mcp:tools""#), "{challenge}");

    // A valid token without the required scope: 403 insufficient_scope.
    let reply = initialize(
        &proxy,
        Some(&rsa.sign(&with(good_claims(), "scope", json!("openid")))),
    )
    .send()
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="mcp:tools""#), "{challenge}");
    assert!(
        reply.error_message().contains("mcp:tools"),
        "{}",
        reply.text()
    );

    let after = proxy.metrics().await;
    assert_eq!(before, after.touch_counts(), "a refusal reached the pool");

    // The same proxy serves a good token (so the refusals above were not
    // a proxy that refuses everything); `scp` as a list counts as scopes.
    let mcp = Mcp::connect_with(&proxy, json!({}), Some(&good)).await;
    assert!(mcp.pid().await > 0);
    // Session mode: that session holds the only process; end it.
    assert!(mcp.delete().await.status.is_success());
    let scp = rsa.sign(&with(
        with(good_claims(), "scope", Value::Null),
        "scp",
        json!([SCOPE]),
    ));
    let reply = initialize(&proxy, Some(&scp)).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // No token reaches the log; the reasons and the subject do.
    let log = proxy.stderr();
    for (name, token) in invalid.iter().filter_map(|(n, t)| Some((n, t.as_ref()?))) {
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(
            signature.len() < 8 || !log.contains(signature),
            "{name}: token in the log"
        );
    }
    assert!(!log.contains(&good), "token in the log");
    assert!(log.contains("Expired"), "refusal reasons not logged");
    assert!(log.contains("alice@example.test"), "subject not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_es256_and_eddsa_tokens_are_accepted_and_tools_work() {
    let rsa = Key::new(Algorithm::RS256, "rsa");
    let ec = Key::new(Algorithm::ES256, "ec");
    let ed = Key::new(Algorithm::EdDSA, "ed");
    let keys = KeysEndpoint::start(&[&rsa, &ec, &ed]).await;
    let proxy = start(&keys, &[]);
    for key in [&rsa, &ec, &ed] {
        let token = key.sign(&good_claims());
        let mcp = Mcp::connect_with(&proxy, json!({}), Some(&token)).await;
        assert!(mcp.pid().await > 0, "{:?}", key.alg);
    }
    // An audience list holding ours is accepted too.
    let token = rsa.sign(&with(
        good_claims(),
        "aud",
        json!(["https://other.example.test", RESOURCE]),
    ));
    let reply = initialize(&proxy, Some(&token)).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(keys.fetches(), 1, "no reload for known keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_added_at_the_provider_is_found_by_one_reload() {
    let old = Key::new(Algorithm::ES256, "2026-11");
    let new = Key::new(Algorithm::EdDSA, "2026-12");
    let keys = KeysEndpoint::start(&[&old]).await;
    let proxy = start(&keys, &[]);
    keys.add(&new);
    let token = new.sign(&good_claims());
    let mcp = Mcp::connect_with(&proxy, json!({}), Some(&token)).await;
    assert!(mcp.pid().await > 0);
    assert_eq!(keys.fetches(), 2, "start-up, then one reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_served_at_the_well_known_paths_without_a_token() {
    let key = Key::new(Algorithm::ES256, "k");
    let keys = KeysEndpoint::start(&[&key]).await;
    let proxy = start(&keys, &["--oauth-scope", "mcp:tools,mcp:admin"]);
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let reply = Req::new(proxy.addr, Method::GET, path).send().await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let doc = reply.json();
        assert_eq!(doc["resource"], RESOURCE, "{path}");
        assert_eq!(doc["authorization_servers"], json!([ISSUER]), "{path}");
        assert_eq!(
            doc["scopes_supported"],
            json!(["mcp:tools", "mcp:admin"]),
            "{path}"
        );
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_fails_when_the_keys_cannot_be_loaded() {
    // A port that was free a moment ago: nothing answers there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let args = e2e_support::fixture_args(
        &[
            "--public-url",
            RESOURCE,
            "--oauth-issuer",
            ISSUER,
            "--oauth-jwks-url",
            &format!("http://{closed}/jwks"),
        ],
        &[],
    );
    let Err(failure) = ProxyProcess::launch(&args) else {
        panic!("started without its keys");
    };
    assert!(!failure.status.success());
    assert!(
        failure.stderr.contains("JWK Set"),
        "stderr: {}",
        failure.stderr
    );
    assert!(
        !failure.stdout.contains("connect an MCP client"),
        "{}",
        failure.stdout
    );
}

/// The legacy HTTP+SSE transport (`/sse`, `/messages`) sits behind the same
/// OAuth layer as `/mcp`: refused without a good token, with the same
/// challenge; served with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_sse_routes_need_the_access_token_too() {
    let key = Key::new(Algorithm::ES256, "legacy");
    let keys = KeysEndpoint::start(&[&key]).await;
    let proxy = start(&keys, &[]);
    let sse = || Req::new(proxy.addr, Method::GET, "/sse").header("accept", "text/event-stream");
    let none = sse().send().await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{}", none.text());
    let challenge = none.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains(METADATA_URL), "{challenge}");
    let expired = key.sign(&with(good_claims(), "exp", json!(now() - 600)));
    let refused = sse()
        .header("authorization", &format!("Bearer {expired}"))
        .send()
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refused.text()
    );
    let post = Req::new(
        proxy.addr,
        Method::POST,
        "/messages?session_id=0123456789abcdef0123456789abcdef",
    )
    .header("content-type", "application/json")
    .body(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string())
    .send()
    .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED, "{}", post.text());
    assert_eq!(proxy.metrics().await.get("stdiopool_sessions"), 0.0);
    let token = key.sign(&good_claims());
    let open = sse()
        .header("authorization", &format!("Bearer {token}"))
        .open()
        .await;
    assert_eq!(open.status, StatusCode::OK);
    assert_eq!(proxy.metrics().await.get("stdiopool_sessions"), 1.0);
}

/// A session belongs to the subject whose token made it: another subject's
/// token with its id gets the unknown id's 404 on POST, GET and DELETE, and
/// the owner's session goes on untouched (the spec's security guidance:
/// bind session ids to the user, so a leaked id is not a way in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_answers_only_the_subject_that_made_it() {
    let key = Key::new(Algorithm::ES256, "owner");
    let keys = KeysEndpoint::start(&[&key]).await;
    let alice = key.sign(&good_claims());
    let bob = key.sign(&with(good_claims(), "sub", json!("bob@example.test")));
    for mode in e2e_support::MODES {
        let proxy = start(&keys, &["--mode", mode]);
        let mine = Mcp::connect_with(&proxy, json!({}), Some(&alice)).await;
        let theirs = mine.with_token(&bob);
        let reply = theirs
            .call_tool_reply("echo", json!({"message": "x"}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{mode}: {}",
            reply.text()
        );
        let get = theirs
            .request(Method::GET)
            .header("accept", "text/event-stream")
            .send()
            .await;
        if mode == "session" {
            assert_eq!(get.status, StatusCode::NOT_FOUND, "{mode}: {}", get.text());
        }
        assert_eq!(
            theirs.delete().await.status,
            StatusCode::NOT_FOUND,
            "{mode}"
        );
        let answer = mine
            .call_tool("echo", json!({"message": "still mine"}))
            .await;
        assert_eq!(e2e_support::result_text(&answer), "still mine", "{mode}");
        assert_eq!(mine.delete().await.status, StatusCode::OK, "{mode}");
    }
}

/// Signed pooled ids (`--session-key-file`) carry their owner: another
/// instance with the key serves the owner's requests and refuses another
/// subject's with the same 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_session_answers_only_its_subject_on_every_instance() {
    let key = Key::new(Algorithm::ES256, "owner-signed");
    let keys = KeysEndpoint::start(&[&key]).await;
    let key_file = e2e_support::TempFile::new("oauth-session-key");
    std::fs::write(key_file.path(), "k".repeat(48)).unwrap();
    let one = start(
        &keys,
        &[
            "--session-key-file",
            key_file.path(),
            "--instance-id",
            "one",
        ],
    );
    let two = start(
        &keys,
        &[
            "--session-key-file",
            key_file.path(),
            "--instance-id",
            "two",
        ],
    );
    let alice = key.sign(&good_claims());
    let bob = key.sign(&with(good_claims(), "sub", json!("bob@example.test")));
    let mine = Mcp::connect_with(&one, json!({}), Some(&alice)).await;
    let reply = mine
        .elsewhere(two.addr, &bob)
        .call_tool_reply("echo", json!({"message": "x"}))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert_eq!(
        mine.elsewhere(two.addr, &bob).delete().await.status,
        StatusCode::NOT_FOUND
    );
    let answer = mine
        .elsewhere(two.addr, &alice)
        .call_tool("echo", json!({"message": "served by two"}))
        .await;
    assert_eq!(e2e_support::result_text(&answer), "served by two");
}
