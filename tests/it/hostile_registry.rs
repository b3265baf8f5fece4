//! A hostile registry (`support::hostile`): what it sends back is bounded in memory and time, never
//! panics scratchpack, never reaches the terminal raw, and is reported for what it is. Also the
//! references and credential helpers an attacker could plant.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::hostile::{Hostile, Reply, Request};
use crate::util::{scratchpack, static_c_hello, stderr, stdout, temp_dir};

/// Peak RSS allowed to scratchpack whatever a registry sends.
const MAX_RSS_KB: u64 = 64 * 1024;

/// `pack hello --output docker://HOST/hostile/app:1` with `extra` flags.
fn pack_to(host: &str, extra: &[&str]) -> Command {
    let mut cmd = scratchpack();
    cmd.arg("pack").arg(static_c_hello()).args(["--output", &format!("docker://{host}/hostile/app:1")]).args(extra);
    cmd
}

/// Runs `cmd` under `/usr/bin/time -v`: its output (time's report taken out of stderr) and its
/// peak RSS in KiB.
fn run_measured(cmd: &Command) -> (Output, u64) {
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-v").arg(cmd.get_program()).args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => timed.env(name, value),
            None => timed.env_remove(name),
        };
    }
    let mut output = timed.output().expect("/usr/bin/time (run scripts/install-test-deps.sh)");
    let text = stderr(&output);
    let (own, report) = text.split_once("\tCommand being timed:").unwrap_or_else(|| panic!("no time -v report in:\n{text}"));
    let rss = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in:\n{report}"));
    output.stderr = own.as_bytes().to_vec();
    (output, rss)
}

fn assert_failed_cleanly(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "exit status {}; stderr:\n{}", output.status, stderr(output));
    assert!(!stderr(output).contains("panicked"), "{}", stderr(output));
}

/// Every request without credentials is asked for a bearer token from this server's `/token`,
/// as a real registry asks; `token` answers that; everything else gets `rest`.
fn bearer_registry(
    token: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    rest: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> Hostile {
    Hostile::start(move |request| {
        if !request.target.starts_with("/token") && request.header("authorization").is_none() {
            let challenge = Hostile::bearer_challenge(&request.host);
            Reply::empty(401, &[("WWW-Authenticate", challenge.as_str())])
        } else if request.target.starts_with("/token") {
            token(request)
        } else {
            rest(request)
        }
    })
}

fn refuse(_: &Request) -> Reply {
    Reply::error(404, "NAME_UNKNOWN", "no such repository")
}

/// `error` for every request but a blob's HEAD, which has no body: that blob is unknown.
fn after_head(error: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |request| if request.method == "HEAD" { Reply::empty(404, &[]) } else { error(request) }
}

#[test]
fn an_endless_token_answer_is_cut_at_its_cap() {
    let server = bearer_registry(
        |_| Reply::Endless {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            prefix: b"{\"token\":\"".to_vec(),
            fill: b'a',
        },
        refuse,
    );
    let (output, rss) = run_measured(&pack_to(&server.host, &["--timeout", "15s"]));
    assert_failed_cleanly(&output);
    assert!(
        stderr(&output).contains(&format!("the token server http://{}/token: the answer is larger than 4 MiB", server.host)),
        "{}",
        stderr(&output)
    );
    eprintln!("peak RSS {rss} KiB");
    assert!(rss < MAX_RSS_KB, "peak RSS {rss} KiB");
}

#[test]
fn a_2_gb_error_body_is_not_read_whole() {
    let server = bearer_registry(|_| Reply::Huge { status: 400, headers: vec![], length: 2 << 30, fill: b' ' }, refuse);
    let started = Instant::now();
    let (output, rss) = run_measured(&pack_to(&server.host, &["--timeout", "15s"]));
    assert_failed_cleanly(&output);
    assert!(
        stderr(&output).contains(&format!(
            "the token server http://{}/token answered 400 (the error body is larger than 1 MiB, the most scratchpack reads)",
            server.host
        )),
        "{}",
        stderr(&output)
    );
    eprintln!("peak RSS {rss} KiB");
    assert!(rss < MAX_RSS_KB, "peak RSS {rss} KiB");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn a_token_that_never_expires_does_not_panic() {
    let server = bearer_registry(|_| Reply::json(200, r#"{"token":"tok-forever-1","expires_in":18446744073709551615}"#), refuse);
    let output = pack_to(&server.host, &["--timeout", "30s"]).output().unwrap();
    assert_failed_cleanly(&output);
    assert!(stderr(&output).contains("404 (NAME_UNKNOWN: no such repository)"), "{}", stderr(&output));
}

#[test]
fn registry_messages_reach_the_terminal_escaped() {
    let server = bearer_registry(
        |_| Reply::json(200, r#"{"token":"tok-escapes-1"}"#),
        after_head(|_| Reply::error(403, "DENIED", "\x1b[2K\rerror: forged\n\x1b]0;owned\x07\u{9b}31m")),
    );
    let output = pack_to(&server.host, &["--timeout", "30s", "-vv"]).output().unwrap();
    assert_failed_cleanly(&output);
    let text = stderr(&output);
    assert!(!text.contains('\x1b') && !text.contains('\u{9b}') && !text.contains('\x07') && !text.contains('\r'), "{text:?}");
    assert!(!text.lines().any(|l| l.starts_with("error: forged")), "{text}");
    assert!(text.contains(r"403 (DENIED: \u{1b}[2K\u{d}error: forged\u{a}\u{1b}]0;owned\u{7}\u{9b}31m)"), "{text}");
}

fn assert_no_secret(output: &Output, secrets: &[&str]) {
    for secret in secrets {
        assert!(!stdout(output).contains(secret), "stdout leaks a secret");
        assert!(!stderr(output).contains(secret), "stderr leaks a secret:\n{}", stderr(output));
    }
}

#[test]
fn credentials_a_registry_echoes_are_redacted() {
    let echo = |request: &Request| {
        let sent = request.header("authorization").unwrap_or("nothing").to_string();
        Reply::error(403, "DENIED", &format!("you sent {sent}"))
    };
    // Basic: the header, and the password inside it.
    let basic = Hostile::start(move |request| {
        if request.header("authorization").is_none() {
            Reply::empty(401, &[("WWW-Authenticate", "Basic realm=\"hostile\"")])
        } else {
            after_head(echo)(request)
        }
    });
    let output = pack_to(&basic.host, &["--timeout", "30s", "--creds", "ci:pa55-w0rd-basic"]).output().unwrap();
    assert_failed_cleanly(&output);
    let header = format!("Basic {}", crate::support::base64_std(b"ci:pa55-w0rd-basic"));
    assert_no_secret(&output, &[&header, &header[6..], "pa55-w0rd-basic"]);
    assert!(stderr(&output).contains("(DENIED: you sent <redacted>)"), "{}", stderr(&output));
    // Bearer: the token the token server gave.
    let bearer = bearer_registry(|_| Reply::json(200, r#"{"token":"tok-echoed-XYZ-987"}"#), after_head(echo));
    let output = pack_to(&bearer.host, &["--timeout", "30s", "-vv"]).output().unwrap();
    assert_failed_cleanly(&output);
    assert_no_secret(&output, &["tok-echoed-XYZ-987"]);
    assert!(stderr(&output).contains("(DENIED: you sent <redacted>)"), "{}", stderr(&output));
}

#[test]
fn a_redirect_loop_is_reported_and_not_retried() {
    let server = Hostile::start(|_| Reply::empty(302, &[("Location", "/v2/")]));
    let started = Instant::now();
    let output = pack_to(&server.host, &["--timeout", "30s"]).output().unwrap();
    assert_failed_cleanly(&output);
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "HEAD http://{}/v2/hostile/app/manifests/1: too many redirects (more than 5); the registry redirects in a loop",
            server.host
        )),
        "{text}"
    );
    assert!(!text.contains("corrupt message"), "{text}");
    // One attempt: the first request (the tag's HEAD, no ping before it) and five redirects.
    assert_eq!(server.requests().len(), 6, "{:?}", server.requests());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn a_huge_www_authenticate_is_reported_as_such() {
    let server = Hostile::start(|_| {
        let huge = format!("Bearer realm=\"http://127.0.0.1:1/token\",service=\"{}\"", "x".repeat(1 << 20));
        Reply::empty(401, &[("WWW-Authenticate", huge.as_str())])
    });
    let output = pack_to(&server.host, &["--timeout", "30s"]).output().unwrap();
    assert_failed_cleanly(&output);
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "HEAD http://{}/v2/hostile/app/manifests/1: the answer's headers are too large (more than the HTTP client's limit of about 400 KiB)",
            server.host
        )),
        "{text}"
    );
    assert!(!text.contains("corrupt message"), "{text}");
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
}

#[test]
fn a_realm_that_is_not_http_is_refused_at_once() {
    let server = Hostile::start(|_| Reply::empty(401, &[("WWW-Authenticate", "Bearer realm=\"file:///etc/passwd\",service=x")]));
    let started = Instant::now();
    let output = pack_to(&server.host, &["--timeout", "30s"]).output().unwrap();
    assert_failed_cleanly(&output);
    assert!(
        stderr(&output)
            .contains(&format!("the login challenge of {}: realm \"file:///etc/passwd\" is not an http or https URL", server.host)),
        "{}",
        stderr(&output)
    );
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn a_retry_after_past_the_timeout_says_so() {
    let server = Hostile::start(|request| {
        if request.target == "/v2/" {
            Reply::empty(200, &[])
        } else {
            Reply::Full { status: 503, headers: vec![("Retry-After".into(), "3600".into())], body: Vec::new() }
        }
    });
    let started = Instant::now();
    let output = pack_to(&server.host, &["--timeout", "20s"]).output().unwrap();
    assert_failed_cleanly(&output);
    let text = stderr(&output);
    assert!(text.contains("the registry asked to wait 3600 s (Retry-After), past the --timeout of 20 s"), "{text}");
    assert!(!text.contains("gave up after"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[test]
fn credentials_in_a_reference_are_not_echoed() {
    let output = scratchpack().arg("pack").arg(static_c_hello()).args(["--output", "docker://u:SECRET@127.0.0.1:1/x"]).output().unwrap();
    assert_failed_cleanly(&output);
    assert_no_secret(&output, &["SECRET"]);
    assert_eq!(
        stderr(&output),
        "error: --output \"docker://<redacted>@127.0.0.1:1/x\": invalid image reference \"<redacted>@127.0.0.1:1/x\": \
         a reference holds no credentials\n\
         hint: pass them with --creds USER:PASSWORD, or log in with `docker login HOST` and scratchpack reads the login file\n"
    );
}

#[test]
fn no_credential_helper_runs_from_the_current_folder() {
    let work = temp_dir();
    let marker = work.path().join("helper-ran");
    let helper = work.path().join("docker-credential-evil");
    std::fs::write(&helper, format!("#!/bin/sh\ntouch '{}'\necho '{{\"Username\":\"u\",\"Secret\":\"s\"}}'\n", marker.display())).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = work.path().join("docker");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"credsStore":"evil"}"#).unwrap();
    let server = Hostile::start(|_| Reply::empty(401, &[("WWW-Authenticate", "Basic realm=\"hostile\"")]));
    let path = format!("{}:", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
    for path in [path.clone(), format!(":{path}"), format!("{path}.")] {
        let output = pack_to(&server.host, &["--timeout", "30s"])
            .current_dir(work.path())
            .env("PATH", &path)
            .env("DOCKER_CONFIG", &config)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("SCRATCHPACK_REGISTRY_USER")
            .env_remove("SCRATCHPACK_REGISTRY_PASSWORD")
            .output()
            .unwrap();
        assert_failed_cleanly(&output);
        assert!(!Path::new(&marker).exists(), "PATH {path:?} ran ./docker-credential-evil; stderr:\n{}", stderr(&output));
        assert!(stderr(&output).contains("credential helper docker-credential-evil failed for"), "PATH {path:?}: {}", stderr(&output));
    }
}

#[test]
fn a_timeout_past_the_clock_does_not_panic() {
    let server = bearer_registry(|_| Reply::json(200, r#"{"token":"tok-long-1"}"#), refuse);
    let output = pack_to(&server.host, &["--timeout", "18446744073709551615"]).output().unwrap();
    assert_failed_cleanly(&output);
    assert!(stderr(&output).contains("404 (NAME_UNKNOWN: no such repository)"), "{}", stderr(&output));
    let output = pack_to(&server.host, &["--timeout", "18446744073709551615h"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("\"18446744073709551615h\" is too long a duration"), "{}", stderr(&output));
}

#[test]
fn huge_error_bodies_to_parallel_uploads_stay_under_the_rss_bound() {
    let message = format!("{{\"errors\":[{{\"code\":\"DENIED\",\"message\":\"{}\"}}]}}", "\\u001b".repeat((1 << 20) / 6 - 20));
    let server = bearer_registry(
        |_| Reply::json(200, r#"{"token":"tok-parallel-1"}"#),
        after_head(move |_| Reply::Full { status: 400, headers: vec![], body: message.as_bytes().to_vec() }),
    );
    let (output, rss) = run_measured(&pack_to(&server.host, &["--timeout", "30s"]));
    eprintln!("peak RSS {rss} KiB");
    assert_failed_cleanly(&output);
    let shown = format!("400 (DENIED: {}…)", r"\u{1b}".repeat(1024));
    assert!(stderr(&output).contains(&shown), "{}", stderr(&output));
    assert!(rss < MAX_RSS_KB, "peak RSS {rss} KiB");
}
