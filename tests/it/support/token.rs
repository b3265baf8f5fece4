//! A small token server for `auth: token` registries (distribution's bearer token flow).
//!
//! - `GET /token?service=S&scope=T:NAME:ACTIONS(&scope=...)(&offline_token=true&client_id=C)` with
//!   Basic auth: 200 `{"token", "access_token", "expires_in", "issued_at"}` (plus `refresh_token` when
//!   `offline_token=true`); 401 on wrong credentials. Without credentials: an anonymous token that
//!   grants nothing (like Docker Hub for a private repository).
//! - `POST /token` with a form: `grant_type=password` (`username`, `password`) or
//!   `grant_type=refresh_token` (`refresh_token`, valid: `identity-token-for-USER`), `service`,
//!   `scope` (space-separated), `client_id`, `access_type=offline` for a refresh token. 200
//!   `{"access_token", "expires_in", "issued_at", "scope"(, "refresh_token")}`; 401 on bad
//!   credentials, 400 on an unknown grant.
//!
//! Tokens are RS256 JWTs with `iss`, `sub`, `aud` (a string: the service), `exp`, `nbf`, `iat`,
//! `jti`, and `access` granting every action asked for on each requested `repository` scope (the
//! valid user may push and pull anything). Registry 2.8 accepts both key headers: `kid` (libtrust key
//! id of the signing key, looked up in `rootcertbundle`) and `x5c` (the signing certificate, verified
//! against `rootcertbundle`); [`JwtKeyHeader`] picks one, `kid` by default.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::http::{read_head, read_request_body, Head};
use super::pki::{make_signing_key, rs256_sign, SigningKey};
use super::server::{self, Connections, Server};
use super::{base64_decode, base64_std, base64_url, parse_query, rfc3339, unix_now};

/// The service name the token server issues tokens for (`aud`), unless a request names another.
pub const SERVICE: &str = "scratchpack-test-registry";
/// The `iss` of every token.
pub const ISSUER: &str = "scratchpack-test-token-server";

/// What a registry needs for `auth: token`.
#[derive(Clone, Debug)]
pub struct TokenServerConfig {
    /// `http://127.0.0.1:PORT/token`
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// PEM certificate of the signing key.
    pub rootcertbundle: PathBuf,
}

/// Which JWT header identifies the signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtKeyHeader {
    /// `kid`: the libtrust key id of the signing public key.
    Kid,
    /// `x5c`: the signing certificate (base64 DER), chained to `rootcertbundle`.
    X5c,
}

/// A running token server; stopped when dropped.
pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<State>,
    _server: Server,
    _dir: tempfile::TempDir,
}

struct State {
    user: String,
    password: String,
    expires_in: AtomicU64,
    clock_offset: std::sync::atomic::AtomicI64,
    /// Tokens still to issue already expired (then back to normal): a token that expires mid-push.
    stale_tokens: AtomicUsize,
    key_header: JwtKeyHeader,
    key: SigningKey,
    tokens_issued: AtomicUsize,
    /// Every token issued, for tests that prove no output contains one.
    issued: Mutex<Vec<String>>,
    next_jti: AtomicUsize,
    requests: Mutex<Vec<String>>,
    scopes: Mutex<Vec<String>>,
}

impl TokenServer {
    /// Starts a token server for one user, with `kid` headers, issuing tokens valid `expires_in`
    /// seconds.
    pub fn start(user: &str, password: &str, expires_in: u64) -> TokenServer {
        TokenServer::start_with(user, password, expires_in, JwtKeyHeader::Kid)
    }

    /// Like [`TokenServer::start`], choosing the JWT key header.
    pub fn start_with(user: &str, password: &str, expires_in: u64, key_header: JwtKeyHeader) -> TokenServer {
        let dir = crate::util::temp_dir();
        let key = make_signing_key(dir.path());
        let (listener, host) = server::bind();
        let state = Arc::new(State {
            user: user.to_string(),
            password: password.to_string(),
            expires_in: AtomicU64::new(expires_in),
            clock_offset: std::sync::atomic::AtomicI64::new(0),
            stale_tokens: AtomicUsize::new(0),
            key_header,
            key,
            tokens_issued: AtomicUsize::new(0),
            issued: Mutex::new(Vec::new()),
            next_jti: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            scopes: Mutex::new(Vec::new()),
        });
        let serving = state.clone();
        let server = Server::start(listener, &host, Connections::new(), move |stream| serve(&serving, stream));
        TokenServer { url: format!("http://{host}/token"), host, state, _server: server, _dir: dir }
    }

    /// The `auth.token` settings for a registry trusting this server.
    pub fn registry_config(&self) -> TokenServerConfig {
        TokenServerConfig {
            realm: self.url.clone(),
            service: SERVICE.to_string(),
            issuer: ISSUER.to_string(),
            rootcertbundle: self.state.key.cert.clone(),
        }
    }

    /// Every token issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }

    /// How many tokens were issued (anonymous ones included).
    pub fn tokens_issued(&self) -> usize {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// Request lines received, `METHOD /token?query` as sent (query still percent-encoded).
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Every scope asked for (decoded, e.g. `repository:test/app:pull,push`), from GET queries and
    /// POST forms, in order.
    pub fn scopes_requested(&self) -> Vec<String> {
        self.state.scopes.lock().unwrap().clone()
    }

    /// Lifetime of tokens issued from now on (mind the registry's 60 s leeway past `exp`: see
    /// [`TokenServer::set_clock_offset`]).
    pub fn set_expires_in(&self, secs: u64) {
        self.state.expires_in.store(secs, Ordering::SeqCst);
    }

    /// Shifts the clock the server signs with by `secs` (`iat`, `nbf`, `exp`; `expires_in` and
    /// `issued_at` in the answer are not shifted). Registry 2.8 allows 60 s of leeway past `exp`,
    /// so a token that the registry already considers expired needs `expires_in + offset < -60`,
    /// e.g. `set_clock_offset(-120)` with `expires_in` 30: the client believes it is valid for 30 s
    /// and the registry answers 401.
    /// The next `count` tokens are issued already expired for the registry (past its 60 s
    /// leeway), while the answer still says `expires_in`: the registry answers 401 to them.
    pub fn issue_stale_tokens(&self, count: usize) {
        self.state.stale_tokens.store(count, Ordering::SeqCst);
    }

    pub fn set_clock_offset(&self, secs: i64) {
        self.state.clock_offset.store(secs, Ordering::SeqCst);
    }

    /// The refresh token (identity token) the server accepts for its user.
    pub fn refresh_token(&self) -> String {
        format!("identity-token-for-{}", self.state.user)
    }

    /// Which key header the tokens carry.
    pub fn key_header(&self) -> JwtKeyHeader {
        self.state.key_header
    }
}

fn serve(state: &State, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Ok(Some(head)) = read_head(&mut reader) {
        let Ok(body) = read_request_body(&mut reader, &head) else { return };
        let (status, payload) = handle(state, &head, &body);
        let text = payload.to_string();
        let mut response =
            format!("HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", reason(status), text.len());
        if status == 401 {
            response.push_str("WWW-Authenticate: Basic realm=\"scratchpack-test-token-server\"\r\n");
        }
        let close = head.wants_close();
        if close {
            response.push_str("Connection: close\r\n");
        }
        response.push_str("\r\n");
        response.push_str(&text);
        if writer.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

fn handle(state: &State, head: &Head, body: &[u8]) -> (u16, serde_json::Value) {
    let (method, target) = head.request_parts();
    state.requests.lock().unwrap().push(format!("{method} {target}"));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != "/token" {
        return (404, json!({"details": "not found"}));
    }
    match method.as_str() {
        "GET" => {
            let params = parse_query(query);
            let scopes: Vec<String> = params.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
            state.scopes.lock().unwrap().extend(scopes.iter().cloned());
            let service = param(&params, "service").unwrap_or(SERVICE).to_string();
            let subject = match basic_credentials(head) {
                None => String::new(),
                Some((user, password)) if user == state.user && password == state.password => user,
                Some(_) => return (401, json!({"details": "incorrect username or password"})),
            };
            let (token, expires_in, issued_at) = issue(state, &subject, &service, &scopes);
            let mut answer = json!({"token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued_at});
            if !subject.is_empty() && param(&params, "offline_token") == Some("true") {
                answer["refresh_token"] = format!("identity-token-for-{subject}").into();
            }
            (200, answer)
        }
        "POST" => {
            let params = parse_query(&String::from_utf8_lossy(body));
            let scopes: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == "scope")
                .flat_map(|(_, v)| v.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>())
                .collect();
            state.scopes.lock().unwrap().extend(scopes.iter().cloned());
            let service = param(&params, "service").unwrap_or(SERVICE).to_string();
            let subject = match param(&params, "grant_type") {
                Some("password") => {
                    if param(&params, "username") == Some(state.user.as_str())
                        && param(&params, "password") == Some(state.password.as_str())
                    {
                        state.user.clone()
                    } else {
                        return (401, json!({"details": "incorrect username or password"}));
                    }
                }
                Some("refresh_token") => {
                    if param(&params, "refresh_token") == Some(format!("identity-token-for-{}", state.user).as_str()) {
                        state.user.clone()
                    } else {
                        return (401, json!({"details": "invalid refresh token"}));
                    }
                }
                other => return (400, json!({"details": format!("unsupported grant_type {other:?}")})),
            };
            let (token, expires_in, issued_at) = issue(state, &subject, &service, &scopes);
            let mut answer = json!({"access_token": token, "expires_in": expires_in, "issued_at": issued_at, "scope": scopes.join(" ")});
            if param(&params, "access_type") == Some("offline") {
                answer["refresh_token"] = format!("identity-token-for-{subject}").into();
            }
            (200, answer)
        }
        _ => (405, json!({"details": "method not allowed"})),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn basic_credentials(head: &Head) -> Option<(String, String)> {
    let value = head.header("authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Parses `type:name:actions` (the name may contain colons, e.g. a port); None if malformed.
fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((kind.to_string(), name.to_string(), actions.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect()))
}

/// Signs a token for `subject` (empty: anonymous, granted nothing). Returns (jwt, expires_in,
/// issued_at).
fn issue(state: &State, subject: &str, service: &str, scopes: &[String]) -> (String, u64, String) {
    let real_now = unix_now();
    let stale = state.stale_tokens.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let offset = state.clock_offset.load(Ordering::SeqCst) + if stale { -3600 } else { 0 };
    let now = real_now.saturating_add_signed(offset);
    let expires_in = state.expires_in.load(Ordering::SeqCst);
    let mut access: Vec<serde_json::Value> = Vec::new();
    if !subject.is_empty() {
        for (kind, name, actions) in scopes.iter().filter_map(|s| parse_scope(s)) {
            // Merge repeated scopes for one resource.
            match access.iter_mut().find(|a| a["type"] == kind.as_str() && a["name"] == name.as_str()) {
                Some(entry) => {
                    let list = entry["actions"].as_array_mut().unwrap();
                    for action in actions {
                        if !list.iter().any(|a| a == action.as_str()) {
                            list.push(action.into());
                        }
                    }
                }
                None => access.push(json!({"type": kind, "name": name, "actions": actions})),
            }
        }
    }
    let jti = format!("{}-{}-{}", std::process::id(), now, state.next_jti.fetch_add(1, Ordering::SeqCst));
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": service,
        "exp": now + expires_in,
        "nbf": now.saturating_sub(60),
        "iat": now,
        "jti": jti,
        "access": access,
    });
    let header = match state.key_header {
        JwtKeyHeader::Kid => json!({"typ": "JWT", "alg": "RS256", "kid": state.key.kid}),
        JwtKeyHeader::X5c => json!({"typ": "JWT", "alg": "RS256", "x5c": [base64_std(&state.key.cert_der)]}),
    };
    let signing_input = format!("{}.{}", base64_url(header.to_string().as_bytes()), base64_url(claims.to_string().as_bytes()));
    let signature = rs256_sign(&state.key.key, signing_input.as_bytes());
    state.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let token = format!("{signing_input}.{}", base64_url(&signature));
    state.issued.lock().unwrap().push(token.clone());
    (token, expires_in, rfc3339(real_now))
}

/// Decodes a JWT's claims without checking the signature (for assertions in tests).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&base64_decode(payload).expect("base64url claims")).expect("JSON claims")
}

/// Decodes a JWT's header (for assertions in tests).
pub fn jwt_header(token: &str) -> serde_json::Value {
    let header = token.split('.').next().expect("a JWT has three parts");
    serde_json::from_slice(&base64_decode(header).expect("base64url header")).expect("JSON header")
}
