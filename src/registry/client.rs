//! One registry connection: TLS, the choice of https or http, authentication (anonymous, Basic,
//! Bearer tokens with refresh and re-authentication), retries with backoff, and error parsing.
//!
//! Every request goes through [`Client::send`], which adds the credentials the registry asked for
//! (only to the registry's own host, never to a redirect or an upload URL elsewhere), and turns an
//! unexpected status into a [`RegistryError`] parsed from the registry's error JSON. Operations are
//! retried as a whole by [`Client::with_retries`], bounded in count and by the overall deadline.
//!
//! There is no `GET /v2/` up front: the first request goes out at once (its 401 carries the login
//! challenge), and only when it fails is the registry probed as a ping would, for the scheme and
//! the error a user needs. A re-push of an unchanged image is then one manifest HEAD.

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::answers::{self, mib, read_capped, registry_text, MAX_ERROR_BODY, MAX_TOKEN_BODY};
use super::auth::challenge::{self, Challenge};
use super::auth::{Credential, FoundCredential, Secret};
use super::error::{redact_url, RegistryError};
use super::reference::Registry;

/// How a connection is made: from `--registry-ca`, `--insecure-registry`, `--timeout`, `--retries`.
#[derive(Clone, Debug)]
pub(crate) struct ConnectOptions {
    pub(crate) registry_ca: Vec<std::path::PathBuf>,
    pub(crate) insecure_registries: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) attempts: u32,
    pub(crate) backoff: Duration,
    /// Log each request (method, URL without its query, status) and each retry on stderr.
    pub(crate) debug_log: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            registry_ca: Vec::new(),
            insecure_registries: Vec::new(),
            timeout: Duration::from_secs(600),
            attempts: 5,
            backoff: Duration::from_millis(250),
            debug_log: false,
        }
    }
}

enum AuthState {
    Anonymous,
    Basic,
    Bearer { challenge: Challenge, token: Option<(Secret, Instant)> },
}

pub(crate) struct Client {
    pub(crate) registry: Registry,
    http: Http,
    /// `https://host/` or `http://host/`: settled by the first request, or by the probe.
    base: RwLock<Url>,
    /// Whether the first request has settled the scheme and reachability (see [`Client::send`]).
    connected: Mutex<bool>,
    insecure: bool,
    credential: Option<FoundCredential>,
    scopes: Vec<String>,
    auth: Mutex<(AuthState, u64)>,
    deadline: Instant,
    options: ConnectOptions,
}

/// Redirects followed per request; more is a loop, reported as such and not retried.
pub(crate) const MAX_REDIRECTS: usize = 5;
/// A deadline this far away stands for "none" when `--timeout` is too large for the clock.
const FAR_AWAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

impl Client {
    /// A connection to `registry`, made without a request: the first request settles the scheme
    /// and how to log in (see [`Client::send`]). `scopes` are the token scopes to ask for, e.g.
    /// `repository:org/app:push,pull`.
    pub(crate) fn connect(
        registry: Registry,
        credential: Option<FoundCredential>,
        scopes: Vec<String>,
        options: &ConnectOptions,
    ) -> Result<Client, RegistryError> {
        let now = Instant::now();
        let deadline = now.checked_add(options.timeout).or_else(|| now.checked_add(FAR_AWAY)).unwrap_or(now);
        let insecure = options.insecure_registries.iter().any(|h| h == registry.name() || h == registry.api_host());
        let mut builder = Http::builder()
            .user_agent(concat!("scratchpack/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .timeout(None)
            .pool_max_idle_per_host(8)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS));
        for path in &options.registry_ca {
            let pem = crate::input_file::read(path, crate::input_file::PEM_CAP).map_err(|source| RegistryError::Read {
                path: path.display().to_string(),
                what: "the registry CA",
                source,
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).ok().filter(|certs| !certs.is_empty()).ok_or_else(|| {
                RegistryError::BadResponse { what: format!("--registry-ca {}", path.display()), detail: "no PEM certificate in it".into() }
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http =
            builder.build().map_err(|e| RegistryError::BadResponse { what: "building the HTTP client".into(), detail: e.to_string() })?;
        let https = Url::parse(&format!("https://{}/", registry.api_host()))
            .map_err(|e| RegistryError::BadResponse { what: format!("registry {registry}"), detail: e.to_string() })?;
        // A loopback registry is asked in plain HTTP first (see `probe_loopback`).
        let base = if registry.is_loopback() { with_scheme(&https, "http") } else { https };
        Ok(Client {
            registry,
            http,
            base: RwLock::new(base),
            connected: Mutex::new(false),
            insecure,
            credential,
            scopes,
            auth: Mutex::new((AuthState::Anonymous, 0)),
            deadline,
            options: options.clone(),
        })
    }

    /// Finds how to reach the registry when the first request did not: https or plain HTTP
    /// (where allowed), pinging `/v2/` with retries, and learns how to log in. Its errors are the
    /// ones a user needs (`GET https://host/v2/: …`).
    fn probe(&self) -> Result<(), RegistryError> {
        let may_use_http = self.registry.is_loopback() || self.insecure;
        let https = with_scheme(&self.base(), "https");
        let challenge = if !may_use_http {
            self.set_base(https);
            self.with_retries("reaching the registry", || self.ping())?
        } else if self.registry.is_loopback() {
            self.probe_loopback()?
        } else {
            // Plain HTTP only where go-containerregistry allows it too: loopback, or asked for.
            // One https try first: an HTTP answer over TLS settles it; a failed handshake means
            // the registry may speak plain HTTP.
            self.set_base(https.clone());
            match self.ping_within(Some(Duration::from_secs(5))) {
                Ok(challenge) => challenge,
                // An answer over TLS that is no use (a redirect loop, a head too large): the real error.
                Err(error) if error.is_bad_answer() => return Err(error),
                Err(error @ RegistryError::Status { .. }) => {
                    self.debug(format_args!("https answered: {error}"));
                    self.with_retries("reaching the registry", || self.ping())?
                }
                Err(https_error) => {
                    self.debug(format_args!("https failed, trying http: {https_error}"));
                    self.set_base(with_scheme(&https, "http"));
                    match self.with_retries("reaching the registry", || self.ping()) {
                        Ok(challenge) => challenge,
                        Err(http_error @ RegistryError::Timeout { .. }) => return Err(http_error),
                        // An HTTP answer other than a TLS server's 400 "HTTP request to an HTTPS
                        // server": the registry speaks plain HTTP, and this is its real error.
                        Err(http_error @ RegistryError::Status { status, .. }) if status != 400 => return Err(http_error),
                        // A plain-HTTP answer that is no use: the registry speaks HTTP, and this is what went wrong.
                        Err(http_error) if http_error.is_bad_answer() => return Err(http_error),
                        Err(http_error) => {
                            self.debug(format_args!("http failed too: {http_error}"));
                            self.set_base(https);
                            return Err(https_error);
                        }
                    }
                }
            }
        };
        let state = match challenge {
            None => AuthState::Anonymous,
            Some(c) if c.scheme == "basic" => AuthState::Basic,
            Some(c) => AuthState::Bearer { challenge: c, token: None },
        };
        let mut guard = self.auth.lock().expect("auth lock");
        guard.0 = state;
        guard.1 += 1;
        Ok(())
    }

    fn set_base(&self, base: Url) {
        *self.base.write().expect("base lock") = base;
    }

    /// A loopback registry is asked in plain HTTP first, as go-containerregistry does: a TLS
    /// server answers a plain request at once (Go's `400` "HTTP request to an HTTPS server", or a
    /// closed connection), where a plain-HTTP server may never answer a TLS hello. Only then is
    /// https tried, and its answer is the one that counts.
    fn probe_loopback(&self) -> Result<Option<Challenge>, RegistryError> {
        let http_base = with_scheme(&self.base(), "http");
        self.set_base(http_base.clone());
        match self.ping() {
            Ok(challenge) => Ok(challenge),
            Err(error @ RegistryError::Status { status, .. }) if status != 400 && error.is_transient() => {
                // That answer was the first attempt: the retries go on from it.
                let mut first = Some(error);
                self.with_retries("reaching the registry", || match first.take() {
                    Some(error) => Err(error),
                    None => self.ping(),
                })
            }
            Err(error @ RegistryError::Status { status, .. }) if status != 400 => Err(error),
            Err(error) if error.is_bad_answer() => Err(error),
            Err(http_error) => {
                self.debug(format_args!("http failed, trying https: {http_error}"));
                self.set_base(with_scheme(&http_base, "https"));
                self.with_retries("reaching the registry", || self.ping())
            }
        }
    }

    /// `https://host/` or `http://host/`, whichever answered.
    pub(crate) fn base(&self) -> Url {
        self.base.read().expect("base lock").clone()
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        self.base().join(path).expect("registry paths are valid URL paths")
    }

    /// GET /v2/: `None` when open, the challenge when it asks for credentials.
    fn ping(&self) -> Result<Option<Challenge>, RegistryError> {
        self.ping_within(None)
    }

    /// A ping bounded by `limit` as well as by the deadline: the https probe of a loopback
    /// registry must not hang on a plain-HTTP server that never answers a TLS hello.
    fn ping_within(&self, limit: Option<Duration>) -> Result<Option<Challenge>, RegistryError> {
        let url = self.url("v2/");
        let remaining = self.remaining()?;
        let timeout = limit.map_or(remaining, |limit| limit.min(remaining));
        let response = self.http.get(url.clone()).timeout(timeout).send().map_err(|e| self.network_error(&Method::GET, &url, e))?;
        match response.status() {
            StatusCode::OK => Ok(None),
            StatusCode::UNAUTHORIZED => Ok(Some(pick_challenge(response.headers()).ok_or_else(|| RegistryError::BadResponse {
                what: format!("GET {}", redact_url(&url)),
                detail: "401 without a usable WWW-Authenticate challenge".into(),
            })?)),
            _ => Err(status_error(&Method::GET, &url, response)),
        }
    }

    fn remaining(&self) -> Result<Duration, RegistryError> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| RegistryError::Timeout { seconds: self.options.timeout.as_secs(), what: "talking to the registry".into() })
    }

    /// Runs `operation` until it succeeds, fails for good, runs out of attempts or of time.
    /// Waits between attempts grow exponentially with jitter; `Retry-After` is honoured.
    pub(crate) fn with_retries<T>(&self, what: &str, mut operation: impl FnMut() -> Result<T, RegistryError>) -> Result<T, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match operation() {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt < self.options.attempts => {
                    let wait = error.retry_after().unwrap_or_else(|| backoff(self.options.backoff, attempt));
                    let remaining = self.deadline.saturating_duration_since(Instant::now());
                    if let Some(asked) = error.retry_after().filter(|&asked| asked >= remaining) {
                        return Err(RegistryError::RetryAfter {
                            seconds: asked.as_secs(),
                            timeout: self.options.timeout.as_secs(),
                            what: format!("{what} (last error: {error})"),
                        });
                    }
                    if wait >= remaining {
                        return Err(RegistryError::Timeout {
                            seconds: self.options.timeout.as_secs(),
                            what: format!("{what} (last error: {error})"),
                        });
                    }
                    self.debug(format_args!("retrying {what} in {} ms after: {error}", wait.as_millis()));
                    std::thread::sleep(wait);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Sends one request. A 401 makes it log in again (once) and resend; any other status is the
    /// caller's. `build` is called again for the resend, so bodies must be re-creatable.
    ///
    /// The first request goes out without a `GET /v2/` before it, as go-containerregistry's
    /// lazy ping: a registry that answers it needs no ping, and its 401 carries the login
    /// challenge. Only when it fails (no connection, a TLS server asked in plain HTTP, 400, 429,
    /// 5xx) is the registry probed as a ping would (the scheme found, the error a user needs),
    /// and the request sent again. Other requests wait for the first to settle this.
    pub(crate) fn send(
        &self,
        method: Method,
        url: &Url,
        build: &dyn Fn(RequestBuilder) -> Result<RequestBuilder, RegistryError>,
    ) -> Result<Response, RegistryError> {
        let mut connected = self.connected.lock().expect("connection lock");
        if *connected {
            drop(connected);
            // A URL made before the probe changed the scheme (a retry's) follows it.
            return self.send_settled(method, &self.rebase(url), build);
        }
        let first = self.send_settled(method.clone(), url, build);
        let settled = match &first {
            Ok(response) => {
                let status = response.status();
                !(status == StatusCode::BAD_REQUEST || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
            }
            // Refused credentials, or an answer that is no use (a redirect loop, a head too
            // large): the registry was reached, and a ping would only say the same.
            Err(error) => {
                error.is_bad_answer()
                    || matches!(
                        error,
                        RegistryError::NoCredentials { .. }
                            | RegistryError::Refused { .. }
                            | RegistryError::Credentials(_)
                            | RegistryError::Read { .. }
                            | RegistryError::Token { .. }
                    )
            }
        };
        if settled {
            *connected = true;
            return first;
        }
        match &first {
            Ok(response) => self.debug(format_args!("first request answered {}: probing the registry", response.status().as_u16())),
            Err(error) => self.debug(format_args!("first request failed: {error}: probing the registry")),
        }
        drop(first);
        self.probe().map_err(|error| RegistryError::Unreachable(Box::new(error)))?;
        *connected = true;
        drop(connected);
        let url = self.rebase(url);
        self.send_settled(method, &url, build)
    }

    /// `url` on the scheme the probe found, when it names the registry's own host.
    fn rebase(&self, url: &Url) -> Url {
        let base = self.base();
        if url.host_str() == base.host_str() && url.port() == base.port() && url.scheme() != base.scheme() {
            return with_scheme(url, base.scheme());
        }
        url.clone()
    }

    fn send_settled(
        &self,
        method: Method,
        url: &Url,
        build: &dyn Fn(RequestBuilder) -> Result<RequestBuilder, RegistryError>,
    ) -> Result<Response, RegistryError> {
        let mut reauthenticated = false;
        let mut challenged_anonymously = false;
        loop {
            let (header, generation) = self.authorization(url)?;
            let anonymous = header.is_none();
            let mut request = self.http.request(method.clone(), url.clone()).timeout(self.remaining()?);
            if let Some(header) = header {
                request = request.header(AUTHORIZATION, header.expose());
            }
            let response = build(request)?.send().map_err(|e| self.network_error(&method, url, e));
            self.debug(format_args!(
                "{method} {} -> {}",
                redact_url(url),
                match &response {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(e) => e.to_string(),
                }
            ));
            let response = response?;
            if response.status() != StatusCode::UNAUTHORIZED || !self.same_host(url) {
                return Ok(response);
            }
            if anonymous && !challenged_anonymously {
                // The first request of all, sent before any login: its challenge says how to log
                // in (what a ping would have learnt). That is not yet a refusal of credentials.
                challenged_anonymously = true;
            } else if reauthenticated {
                // Logged in again and still refused: the credentials do not grant this.
                return Err(self.unauthorized());
            } else {
                // A new challenge: the token expired, or the registry wants another scope.
                reauthenticated = true;
            }
            let challenge = pick_challenge(response.headers());
            self.reauthenticate(challenge, generation, &method, url)?;
        }
    }

    /// A debug line on stderr: never a header, a body or a query string.
    fn debug(&self, message: std::fmt::Arguments) {
        if self.options.debug_log {
            eprintln!("debug: {message}");
        }
    }

    fn same_host(&self, url: &Url) -> bool {
        let base = self.base();
        url.scheme() == base.scheme() && url.host_str() == base.host_str() && url.port_or_known_default() == base.port_or_known_default()
    }

    /// The Authorization header for `url`, fetching a token if needed, with the auth generation.
    fn authorization(&self, url: &Url) -> Result<(Option<Secret>, u64), RegistryError> {
        if !self.same_host(url) {
            return Ok((None, 0));
        }
        let mut guard = self.auth.lock().expect("auth lock");
        let generation = guard.1;
        match &mut guard.0 {
            AuthState::Anonymous => Ok((None, generation)),
            AuthState::Basic => Ok((Some(self.basic_header()?), generation)),
            AuthState::Bearer { challenge, token } => {
                if let Some((secret, expires)) = token {
                    if Instant::now() < *expires {
                        return Ok((Some(Secret::new(format!("Bearer {}", secret.expose()))), generation));
                    }
                }
                let (secret, expires) = self.fetch_token(challenge)?;
                let header = Secret::new(format!("Bearer {}", secret.expose()));
                *token = Some((secret, expires));
                guard.1 += 1;
                Ok((Some(header), guard.1))
            }
        }
    }

    fn reauthenticate(&self, challenge: Option<Challenge>, generation: u64, method: &Method, url: &Url) -> Result<(), RegistryError> {
        let mut guard = self.auth.lock().expect("auth lock");
        if guard.1 != generation {
            return Ok(()); // another thread logged in again meanwhile
        }
        let challenge = match challenge {
            Some(c) => c,
            None => return Err(self.unauthorized()),
        };
        guard.0 = if challenge.scheme == "basic" {
            if matches!(guard.0, AuthState::Basic) {
                return Err(self.unauthorized());
            }
            AuthState::Basic
        } else {
            let mut merged = challenge;
            if let AuthState::Bearer { challenge: old, .. } = &guard.0 {
                for key in ["realm", "service"] {
                    if merged.param(key).is_none() {
                        if let Some(value) = old.param(key) {
                            merged.params.insert(key.to_string(), value.to_string());
                        }
                    }
                }
            }
            let _ = (method, url);
            AuthState::Bearer { challenge: merged, token: None }
        };
        guard.1 += 1;
        Ok(())
    }

    fn unauthorized(&self) -> RegistryError {
        match &self.credential {
            Some(found) => RegistryError::Refused { host: self.registry.name().to_string(), source_name: found.source.clone() },
            None => RegistryError::NoCredentials { host: self.registry.name().to_string() },
        }
    }

    fn basic_header(&self) -> Result<Secret, RegistryError> {
        match &self.credential {
            Some(FoundCredential { credential: Credential::Basic { username, password }, .. }) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
                Ok(Secret::new(format!("Basic {encoded}")))
            }
            _ => Err(self.unauthorized()),
        }
    }

    /// Asks the token server named by the challenge for a token with our scopes.
    fn fetch_token(&self, challenge: &Challenge) -> Result<(Secret, Instant), RegistryError> {
        let realm_text = challenge.param("realm").unwrap_or_default();
        let realm = Url::parse(realm_text).ok().filter(|url| matches!(url.scheme(), "https" | "http")).ok_or_else(|| {
            RegistryError::BadResponse {
                what: format!("the login challenge of {}", self.registry),
                detail: format!("realm \"{}\" is not an http or https URL", registry_text(realm_text)),
            }
        })?;
        let mut scopes = self.scopes.clone();
        if let Some(scope) = challenge.param("scope") {
            for s in scope.split(' ') {
                if !s.is_empty() && !scopes.iter().any(|have| have == s) {
                    scopes.push(s.to_string());
                }
            }
        }
        let service = challenge.param("service");
        let request = match self.credential.as_ref().map(|f| &f.credential) {
            Some(Credential::IdentityToken { token, .. }) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", token.expose().to_string()),
                    ("client_id", "scratchpack".to_string()),
                ];
                if let Some(service) = service {
                    form.push(("service", service.to_string()));
                }
                form.push(("scope", scopes.join(" ")));
                let body = form.iter().map(|(k, v)| format!("{k}={}", form_escape(v))).collect::<Vec<_>>().join("&");
                self.http.post(realm.clone()).header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
            }
            credential => {
                let mut url = realm.clone();
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in &scopes {
                        query.append_pair("scope", scope);
                    }
                }
                let request = self.http.get(url);
                match credential {
                    Some(Credential::Basic { username, password }) => request.basic_auth(username, Some(password.expose())),
                    _ => request,
                }
            }
        };
        let started = Instant::now();
        let response = request.timeout(self.remaining()?).send().map_err(|e| self.network_error(&Method::GET, &realm, e))?;
        let status = response.status();
        self.debug(format_args!("token from {} for {} -> {}", redact_url(&realm), scopes.join(" "), status.as_u16()));
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized());
        }
        if !status.is_success() {
            let (code, message) = parse_error_body(response);
            return Err(RegistryError::Token { realm: redact_url(&realm), status: status.as_u16(), code, message });
        }
        let what = || format!("the token server {}", redact_url(&realm));
        // A body cut short is a network fault (worth a retry), not a bad answer.
        let body = read_capped(response, MAX_TOKEN_BODY)
            .map_err(|e| self.read_error(&Method::GET, &realm, &e))?
            .ok_or_else(|| RegistryError::TooLarge { what: what(), limit_mib: mib(MAX_TOKEN_BODY) })?;
        let (token, expires) = answers::token_answer(&body, started)
            .map_err(|bad| RegistryError::BadResponse { what: what(), detail: bad.detail().into() })?;
        Ok((Secret::new(token), expires))
    }

    /// A body that could not be read to its end: a network fault, or the deadline.
    pub(crate) fn read_error(&self, method: &Method, url: &Url, error: &std::io::Error) -> RegistryError {
        if self.deadline <= Instant::now() {
            return RegistryError::Timeout { seconds: self.options.timeout.as_secs(), what: format!("{method} {}", redact_url(url)) };
        }
        RegistryError::Network { method: method.to_string(), url: redact_url(url), detail: registry_text(&super::error::chain(error)) }
    }

    fn network_error(&self, method: &Method, url: &Url, error: reqwest::Error) -> RegistryError {
        let is_timeout = error.is_timeout();
        if error.is_redirect() {
            return RegistryError::Redirects { method: method.to_string(), url: redact_url(url), limit: MAX_REDIRECTS };
        }
        let detail = registry_text(&super::error::chain(&error.without_url()));
        let lower = detail.to_lowercase();
        if lower.contains("message head is too large") {
            return RegistryError::BadResponse {
                what: format!("{method} {}", redact_url(url)),
                detail: "the answer's headers are too large (more than the HTTP client's limit of about 400 KiB)".into(),
            };
        }
        if url.scheme() == "https" && (lower.contains("certificate") || lower.contains("unknownissuer") || lower.contains("tls handshake"))
        {
            return RegistryError::Tls { host: url.host_str().unwrap_or_default().to_string(), detail };
        }
        if is_timeout && self.deadline <= Instant::now() {
            return RegistryError::Timeout { seconds: self.options.timeout.as_secs(), what: format!("{method} {}", redact_url(url)) };
        }
        RegistryError::Network { method: method.to_string(), url: redact_url(url), detail }
    }
}

/// `url` with another scheme (`http` or `https`), host, port and path kept.
fn with_scheme(url: &Url, scheme: &str) -> Url {
    let mut changed = url.clone();
    // Both are special schemes: the change cannot fail.
    let _ = changed.set_scheme(scheme);
    changed
}

/// The challenge to answer: Bearer if offered, else Basic.
fn pick_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let challenges: Vec<Challenge> =
        headers.get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).flat_map(challenge::parse).collect();
    challenges.iter().find(|c| c.scheme == "bearer").or_else(|| challenges.iter().find(|c| c.scheme == "basic")).cloned()
}

/// The registry's error code and message, from a body read up to [`MAX_ERROR_BODY`]: a larger
/// body is not parsed, and the message says so.
fn parse_error_body(response: Response) -> (Option<String>, String) {
    match read_capped(response, MAX_ERROR_BODY) {
        Ok(Some(body)) => answers::error_body(&body),
        Ok(None) => (None, format!("the error body is larger than {} MiB, the most scratchpack reads", mib(MAX_ERROR_BODY))),
        Err(_) => (None, String::new()),
    }
}

/// Turns an unexpected answer into an error, with the registry's own code and message.
pub(crate) fn status_error(method: &Method, url: &Url, response: Response) -> RegistryError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let (code, message) = parse_error_body(response);
    RegistryError::Status { method: method.to_string(), url: redact_url(url), status, code, message, retry_after }
}

fn form_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `base × 2^(attempt-1)`, ±25% jitter, at most 10 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1 << attempt.saturating_sub(1).min(10)).min(Duration::from_secs(10));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = (f64::from(nanos % 1000) / 1000.0 - 0.5) * 0.5; // -0.25 .. 0.25
    exp.mul_f64(1.0 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let base = Duration::from_millis(100);
        for attempt in 1..20 {
            let wait = backoff(base, attempt);
            let nominal = base.saturating_mul(1 << (attempt - 1).min(10)).min(Duration::from_secs(10));
            assert!(wait >= nominal.mul_f64(0.74) && wait <= nominal.mul_f64(1.26), "attempt {attempt}: {wait:?}");
        }
    }

    #[test]
    fn a_url_keeps_all_but_its_scheme_when_the_probe_changes_it() {
        let url = Url::parse("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1").unwrap();
        assert_eq!(with_scheme(&url, "https").as_str(), "https://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1");
        assert_eq!(with_scheme(&Url::parse("https://localhost/v2/").unwrap(), "http").as_str(), "http://localhost/v2/");
    }

    #[test]
    fn form_values_are_escaped() {
        assert_eq!(form_escape("repository:a/b:push,pull x"), "repository%3Aa%2Fb%3Apush%2Cpull+x");
    }
}
