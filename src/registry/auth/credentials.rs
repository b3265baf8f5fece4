//! Where credentials come from, in this order:
//! 1. `--creds USER:PASS`;
//! 2. `SCRATCHPACK_REGISTRY_USER` and `SCRATCHPACK_REGISTRY_PASSWORD` (for CI);
//! 3. `REGISTRY_AUTH_FILE` (podman/skopeo's variable), when set;
//! 4. docker's config, `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `credHelpers` for
//!    this host, then `credsStore`, then `auths` (base64 `auth` or `identitytoken`);
//! 5. `${XDG_RUNTIME_DIR}/containers/auth.json` (podman login).
//!
//! A missing auth file is skipped; one that is not a regular file, or is over 4 MiB, is an error.
//! Helpers are run with the `docker-credential-NAME get` protocol. Nothing here prints a secret:
//! errors name the file or helper and the kind of problem, never a value, and a helper's stderr is
//! not echoed.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use super::{Credential, FoundCredential, Secret};
use crate::registry::reference::Repository;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("--creds must be USER:PASSWORD")]
    BadFlag,
    #[error("SCRATCHPACK_REGISTRY_USER and SCRATCHPACK_REGISTRY_PASSWORD must be set together")]
    HalfEnv,
    #[error("{}: not a valid auth file (JSON error at line {line}, column {column})", path.display())]
    BadFile { path: PathBuf, line: usize, column: usize },
    #[error("{}: the auth entry for {key} is not base64 of USER:PASSWORD", path.display())]
    BadAuth { path: PathBuf, key: String },
    #[error("credential helper docker-credential-{helper} failed for {server}: {reason}")]
    Helper { helper: String, server: String, reason: String },
    #[error("{}: cannot read the auth file", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The environment and files to look in; a struct so tests can point it anywhere.
pub(crate) struct Lookup<'a> {
    pub(crate) creds_flag: Option<&'a Secret>,
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl Lookup<'_> {
    pub(crate) fn find(&self, repository: &Repository) -> Result<Option<FoundCredential>, CredentialError> {
        if let Some(flag) = self.creds_flag {
            let (username, password) = flag.expose().split_once(':').ok_or(CredentialError::BadFlag)?;
            return Ok(Some(found(Credential::Basic { username: username.into(), password: Secret::new(password) }, "--creds")));
        }
        match ((self.env)("SCRATCHPACK_REGISTRY_USER"), (self.env)("SCRATCHPACK_REGISTRY_PASSWORD")) {
            (Some(username), Some(password)) => {
                return Ok(Some(found(
                    Credential::Basic { username, password: Secret::new(password) },
                    "SCRATCHPACK_REGISTRY_USER/SCRATCHPACK_REGISTRY_PASSWORD",
                )));
            }
            (None, None) => {}
            _ => return Err(CredentialError::HalfEnv),
        }
        let search_path = (self.env)("PATH").unwrap_or_default();
        for path in self.auth_files() {
            if let Some(found) = from_file(&path, repository, &search_path)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn auth_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(path) = (self.env)("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
            files.push(PathBuf::from(path));
        }
        match (self.env)("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
            Some(dir) => files.push(Path::new(&dir).join("config.json")),
            None => {
                if let Some(home) = (self.env)("HOME").filter(|p| !p.is_empty()) {
                    files.push(Path::new(&home).join(".docker/config.json"));
                }
            }
        }
        if let Some(runtime) = (self.env)("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
            files.push(Path::new(&runtime).join("containers/auth.json"));
        }
        files
    }
}

fn found(credential: Credential, source: &str) -> FoundCredential {
    FoundCredential { credential, source: source.to_string() }
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `http://host:5000/` → `host:5000`.
fn normalise_key(key: &str) -> &str {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let key = key.trim_end_matches('/');
    key.strip_suffix("/v1").or_else(|| key.strip_suffix("/v2")).unwrap_or(key)
}

/// The keys that may hold this repository's credentials, most specific first: podman stores
/// `host/namespace` keys; docker stores hosts (and Docker Hub under its v1 URL).
fn candidate_keys(repository: &Repository) -> Vec<String> {
    let host = repository.registry.name();
    let mut keys = Vec::new();
    let parts: Vec<&str> = repository.path.split('/').collect();
    for end in (1..=parts.len()).rev() {
        keys.push(format!("{host}/{}", parts[..end].join("/")));
    }
    keys.push(host.to_string());
    if host == crate::registry::reference::DOCKER_HUB {
        keys.extend(["index.docker.io".to_string(), "registry-1.docker.io".to_string()]);
    }
    keys
}

fn from_file(path: &Path, repository: &Repository, search_path: &str) -> Result<Option<FoundCredential>, CredentialError> {
    let bytes = match crate::input_file::read(path, crate::input_file::AUTH_FILE_CAP) {
        Ok(bytes) => bytes,
        // A device, a FIFO or a huge file is a mistake to report; a missing file is the usual case.
        Err(source) if matches!(source.kind(), ErrorKind::InvalidInput | ErrorKind::FileTooLarge) => {
            return Err(CredentialError::Unreadable { path: path.to_path_buf(), source });
        }
        Err(_) => return Ok(None),
    };
    let file = parse_file(path, &bytes)?;
    let registry = &repository.registry;
    let host = registry.name();
    let helper = file
        .cred_helpers
        .iter()
        .find(|(key, _)| normalise_key(key) == host || (host == "docker.io" && normalise_key(key) == "index.docker.io"))
        .map(|(_, helper)| helper.clone());
    if let Some(helper) = helper.or_else(|| file.creds_store.clone()) {
        if let Some(credential) = run_helper(&helper, registry.credential_key(), search_path)? {
            return Ok(Some(found(credential, &format!("docker-credential-{helper}"))));
        }
    }
    Ok(from_auths(path, &file, repository)?.map(|credential| found(credential, &path.display().to_string())))
}

fn parse_file(path: &Path, bytes: &[u8]) -> Result<AuthFile, CredentialError> {
    serde_json::from_slice(bytes).map_err(|e| CredentialError::BadFile { path: path.to_path_buf(), line: e.line(), column: e.column() })
}

/// The `auths` entry for `repository`, most specific key first.
fn from_auths(path: &Path, file: &AuthFile, repository: &Repository) -> Result<Option<Credential>, CredentialError> {
    let entries: BTreeMap<&str, &AuthEntry> = file.auths.iter().map(|(key, entry)| (normalise_key(key), entry)).collect();
    for key in candidate_keys(repository) {
        if let Some(entry) = entries.get(key.as_str()) {
            if let Some(credential) = entry_credential(path, &key, entry)? {
                return Ok(Some(credential));
            }
        }
    }
    Ok(None)
}

/// The parsing half of a lookup in a docker config or auth.json, without running helpers: what
/// the fuzz target drives.
pub fn credential_in_file_bytes(bytes: &[u8], repository: &Repository) -> Result<Option<Credential>, CredentialError> {
    let path = Path::new("<fuzz>");
    let file = parse_file(path, bytes)?;
    from_auths(path, &file, repository)
}

fn entry_credential(path: &Path, key: &str, entry: &AuthEntry) -> Result<Option<Credential>, CredentialError> {
    let bad = || CredentialError::BadAuth { path: path.to_path_buf(), key: key.to_string() };
    let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = text.split_once(':').ok_or_else(bad)?;
        username = Some(user.to_string());
        password = Some(pass.to_string());
    }
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken { username: username.filter(|u| !u.is_empty()), token: Secret::new(token) }));
    }
    Ok(match (username, password) {
        (Some(username), Some(password)) if !username.is_empty() => Some(Credential::Basic { username, password: Secret::new(password) }),
        _ => None,
    })
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// `docker-credential-NAME get`, server URL on stdin, JSON on stdout. "Not found" is no credential.
/// The helper is looked up in the absolute entries of `search_path` (the `PATH` of the lookup's
/// environment); empty and relative entries are skipped.
fn run_helper(helper: &str, server: &str, search_path: &str) -> Result<Option<Credential>, CredentialError> {
    let fail = |reason: String| CredentialError::Helper { helper: helper.to_string(), server: server.to_string(), reason };
    if helper.is_empty() || helper.contains('/') {
        return Err(fail("not a helper name".into()));
    }
    let program = format!("docker-credential-{helper}");
    // Only absolute entries: an empty or relative one would run a program of the current folder.
    let executable = std::env::split_paths(search_path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(&program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| fail(format!("{program} is not on PATH")))?;
    let mut child = Command::new(&executable)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {}", e.kind())))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| fail(format!("cannot read its answer: {}", e.kind())))?;
    if !output.status.success() {
        // Helpers answer "credentials not found in native keychain" on stdout for an unknown server.
        if String::from_utf8_lossy(&output.stdout).to_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(fail(format!("it exited with {} (its output is not shown, as it may hold secrets)", output.status)));
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&output.stdout).map_err(|_| fail("its answer is not the JSON the protocol defines".into()))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if answer.username == "<token>" {
        Credential::IdentityToken { username: None, token: Secret::new(answer.secret) }
    } else {
        Credential::Basic { username: answer.username, password: Secret::new(answer.secret) }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::reference::Reference;

    fn repo(reference: &str) -> Repository {
        reference.parse::<Reference>().unwrap().repository
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn lookup_with<'a>(env: &'a dyn Fn(&str) -> Option<String>) -> Lookup<'a> {
        Lookup { creds_flag: None, env }
    }

    #[test]
    fn flag_then_env_then_files() {
        let env = |name: &str| match name {
            "SCRATCHPACK_REGISTRY_USER" => Some("ci".to_string()),
            "SCRATCHPACK_REGISTRY_PASSWORD" => Some("from-env".to_string()),
            _ => None,
        };
        let flag = Lookup { creds_flag: Some(&Secret::new("me:pa:ss")), env: &env }.find(&repo("ghcr.io/o/a")).unwrap().unwrap();
        assert_eq!(flag.credential, Credential::Basic { username: "me".into(), password: Secret::new("pa:ss") });
        assert_eq!(flag.source, "--creds");
        let from_env = lookup_with(&env).find(&repo("ghcr.io/o/a")).unwrap().unwrap();
        assert_eq!(from_env.credential, Credential::Basic { username: "ci".into(), password: Secret::new("from-env") });
        let half = |name: &str| (name == "SCRATCHPACK_REGISTRY_USER").then(|| "ci".to_string());
        assert!(matches!(lookup_with(&half).find(&repo("ghcr.io/o/a")), Err(CredentialError::HalfEnv)));
        assert!(matches!(
            Lookup { creds_flag: Some(&Secret::new("nocolon")), env: &|_| None }.find(&repo("a")),
            Err(CredentialError::BadFlag)
        ));
    }

    #[test]
    fn docker_config_auths_and_identity_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "ghcr.io": {{"auth": "{}"}},
                "quay.io": {{"auth": "{}", "identitytoken": "refresh-me"}},
                "localhost:5000": {{}}
            }}}}"#,
            b64("hubuser:hubpass"),
            b64("gh:ghp_secret"),
            b64("<token>:")
        );
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let home = dir.path().to_string_lossy().into_owned();
        let env = move |name: &str| (name == "DOCKER_CONFIG").then(|| home.clone());
        let lookup = lookup_with(&env);
        let hub = lookup.find(&repo("alpine")).unwrap().unwrap();
        assert_eq!(hub.credential, Credential::Basic { username: "hubuser".into(), password: Secret::new("hubpass") });
        let gh = lookup.find(&repo("ghcr.io/org/app")).unwrap().unwrap();
        assert_eq!(gh.credential, Credential::Basic { username: "gh".into(), password: Secret::new("ghp_secret") });
        assert!(gh.source.ends_with("config.json"));
        let quay = lookup.find(&repo("quay.io/org/app")).unwrap().unwrap();
        assert_eq!(quay.credential, Credential::IdentityToken { username: Some("<token>".into()), token: Secret::new("refresh-me") });
        assert!(lookup.find(&repo("localhost:5000/app")).unwrap().is_none());
        assert!(lookup.find(&repo("example.com/app")).unwrap().is_none());
    }

    #[test]
    fn podman_auth_file_with_namespaced_keys_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth.json");
        std::fs::write(
            &auth,
            format!(
                r#"{{"auths": {{"reg.example/team": {{"auth": "{}"}}, "reg.example": {{"auth": "{}"}}}}}}"#,
                b64("team:t"),
                b64("all:a")
            ),
        )
        .unwrap();
        let path = auth.to_string_lossy().into_owned();
        let env = move |name: &str| (name == "REGISTRY_AUTH_FILE").then(|| path.clone());
        let lookup = lookup_with(&env);
        let team = lookup.find(&repo("reg.example/team/app")).unwrap().unwrap();
        assert_eq!(team.credential, Credential::Basic { username: "team".into(), password: Secret::new("t") });
        let other = lookup.find(&repo("reg.example/other/app")).unwrap().unwrap();
        assert_eq!(other.credential, Credential::Basic { username: "all".into(), password: Secret::new("a") });

        std::fs::write(&auth, r#"{"auths": {"reg.example": {"auth": "bm90LWJhc2U2NA=="}}} trailing-secret-text"#).unwrap();
        let err = lookup.find(&repo("reg.example/x")).unwrap_err().to_string();
        assert!(err.contains("not a valid auth file (JSON error at line 1"), "{err}");
        assert!(!err.contains("trailing-secret-text"));
        std::fs::write(&auth, r#"{"auths": {"reg.example": {"auth": "bm8tY29sb24="}}}"#).unwrap();
        let err = lookup.find(&repo("reg.example/x")).unwrap_err().to_string();
        assert!(err.ends_with("the auth entry for reg.example is not base64 of USER:PASSWORD"), "{err}");
    }

    #[test]
    fn credential_helper_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let helper = bin.join("docker-credential-test");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\ncase \"$server\" in\n  ghcr.io) echo '{\"ServerURL\":\"ghcr.io\",\"Username\":\"bot\",\"Secret\":\"s3cret\"}';;\n  quay.io) echo '{\"Username\":\"<token>\",\"Secret\":\"idtoken\"}';;\n  broken.io) echo 'helper-secret-leak' >&2; exit 3;;\n  *) echo 'credentials not found in native keychain'; exit 1;;\nesac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config_dir = dir.path().join("docker");
        std::fs::create_dir(&config_dir).unwrap();
        std::fs::write(
            config_dir.join("config.json"),
            r#"{"credHelpers": {"ghcr.io": "test", "quay.io": "test", "broken.io": "test"}, "auths": {}}"#,
        )
        .unwrap();
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let answer = |server: &str| {
            let dir = config_dir.to_string_lossy().into_owned();
            let path = path.clone();
            let env = move |name: &str| match name {
                "DOCKER_CONFIG" => Some(dir.clone()),
                "PATH" => Some(path.clone()),
                _ => None,
            };
            lookup_with(&env).find(&repo(&format!("{server}/o/a")))
        };
        let gh = answer("ghcr.io").unwrap().unwrap();
        assert_eq!(gh.credential, Credential::Basic { username: "bot".into(), password: Secret::new("s3cret") });
        assert_eq!(gh.source, "docker-credential-test");
        let quay = answer("quay.io").unwrap().unwrap();
        assert_eq!(quay.credential, Credential::IdentityToken { username: None, token: Secret::new("idtoken") });
        let err = answer("broken.io").unwrap_err().to_string();
        assert!(err.starts_with("credential helper docker-credential-test failed for broken.io: it exited with exit status: 3"), "{err}");
        assert!(!err.contains("helper-secret-leak"));
    }
}
