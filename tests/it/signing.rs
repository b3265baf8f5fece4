//! Signed and attested images, checked by verifiers that are not scratchpack: pyca/cryptography
//! checks the cosign signatures over the exact payload bytes a real registry serves, and
//! securesystemslib checks the DSSE envelopes of the provenance and SBOM attestations.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::*;
use crate::util::*;

const OCI_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
const SIG_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SLSA: &str = "https://slsa.dev/provenance/v1";

/// A fresh P-256 key pair, as `openssl genpkey` writes it: (private, public).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    run_ok(Command::new("openssl").args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"]).arg(&private));
    run_ok(Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&private).arg("-out").arg(&public));
    (private, public)
}

/// A manifest or index as the registry serves it: parsed, with its digest; None on 404.
fn manifest(registry: &Registry, repo: &str, reference: &str) -> Option<(Value, String)> {
    let response =
        http_request(&registry.host, "GET", &format!("/v2/{repo}/manifests/{reference}"), &[("Accept", OCI_ACCEPT)], b"").unwrap();
    match response.status {
        404 => None,
        200 => Some((response.json(), response.header("docker-content-digest").unwrap().to_string())),
        status => panic!("GET {reference}: {status} {}", response.text()),
    }
}

fn blob(registry: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let response = http_request(&registry.host, "GET", &format!("/v2/{repo}/blobs/{digest}"), &[], b"").unwrap();
    assert_eq!(response.status, 200, "GET blob {digest}");
    response.body
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts").join(name)
}

/// pyca/cryptography's verdict on `signature` over `payload`: the digest the payload names.
fn pyca_verify(public: &Path, payload: &[u8], signature: &str, work: &Path) -> Result<String, String> {
    let file = work.join(format!("payload-{}", pki::sha256_digest(payload)));
    std::fs::write(&file, payload).unwrap();
    let output = Command::new("python3").arg(script("verify_cosign.py")).arg(public).arg(&file).arg(signature).output().unwrap();
    match output.status.success() {
        true => Ok(stdout(&output).trim().to_string()),
        false => Err(stderr(&output)),
    }
}

/// securesystemslib's verdict on a DSSE envelope: (predicate type, sorted subject digests).
fn dsse_verify(public: &Path, envelope: &[u8], work: &Path) -> Result<(String, Vec<String>), String> {
    let file = work.join(format!("envelope-{}", pki::sha256_digest(envelope)));
    std::fs::write(&file, envelope).unwrap();
    let output = Command::new("python3").arg(script("verify_dsse.py")).arg(public).arg(&file).output().unwrap();
    if !output.status.success() {
        return Err(stderr(&output));
    }
    let verdict: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    let subjects = verdict["subjects"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    Ok((verdict["predicateType"].as_str().unwrap().to_string(), subjects))
}

/// The cosign signature of `subject` in `repo`: found under the `.sig` tag and, as the same
/// manifest, through the referrers tag; checked by pyca/cryptography. Returns the payload's
/// docker-reference.
fn assert_signed(registry: &Registry, repo: &str, subject: &str, public: &Path, work: &Path) -> String {
    let (sig, sig_digest) = manifest(registry, repo, &format!("sha256-{}.sig", hex(subject))).expect("a .sig tag");
    let (referrers, _) = manifest(registry, repo, &format!("sha256-{}", hex(subject))).expect("a referrers tag");
    let listed: Vec<&Value> = referrers["manifests"].as_array().unwrap().iter().filter(|m| m["artifactType"] == SIG_ARTIFACT).collect();
    assert_eq!(listed.len(), 1, "{referrers}");
    assert_eq!(listed[0]["digest"], sig_digest.as_str(), "the referrer is the .sig manifest");
    assert_eq!(sig["subject"]["digest"], subject);
    let layer = &sig["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
    let payload = blob(registry, repo, layer["digest"].as_str().unwrap());
    let signature = layer["annotations"]["dev.cosignproject.cosign/signature"].as_str().unwrap();
    assert_eq!(pyca_verify(public, &payload, signature, work).unwrap(), subject, "the payload names the pushed digest");
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["critical"]["type"], "cosign container image signature");
    payload["critical"]["identity"]["docker-reference"].as_str().unwrap().to_string()
}

/// The attestations of `subject` (under `.att`, listed as a referrer), each envelope checked by
/// securesystemslib: (predicate type, subjects) of each.
fn attestations(registry: &Registry, repo: &str, subject: &str, public: &Path, work: &Path) -> Vec<(String, Vec<String>)> {
    let (att, att_digest) = manifest(registry, repo, &format!("sha256-{}.att", hex(subject))).expect("a .att tag");
    let (referrers, _) = manifest(registry, repo, &format!("sha256-{}", hex(subject))).unwrap();
    assert!(
        referrers["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["digest"] == att_digest.as_str() && m["artifactType"] == "application/vnd.in-toto+json"),
        "{referrers}"
    );
    assert_eq!(att["subject"]["digest"], subject);
    att["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
            let envelope = blob(registry, repo, layer["digest"].as_str().unwrap());
            let verdict = dsse_verify(public, &envelope, work).unwrap();
            assert_eq!(layer["annotations"]["predicateType"], verdict.0.as_str());
            verdict
        })
        .collect()
}

/// Lines of `pem` that would show the key: its base64 body.
fn key_lines(pem: &Path) -> Vec<String> {
    std::fs::read_to_string(pem).unwrap().lines().filter(|l| !l.starts_with("-----")).map(str::to_string).collect()
}

fn assert_no_key_material(output: &std::process::Output, private: &Path) {
    let all = format!("{}{}", stdout(output), stderr(output));
    assert!(!all.contains("PRIVATE KEY"), "{all}");
    for line in key_lines(private) {
        assert!(!all.contains(&line), "key material in the output: {line}");
        assert!(!all.contains(&line[..16]), "key material in the output: {line}");
    }
}

#[test]
fn a_pushed_image_is_signed_as_cosign_signs_and_its_provenance_verifies() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let output = run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .args(["--output", &format!("docker://{}/team/app:1.0", registry.host), "--provenance", "-vv", "--sign-key"])
            .arg(&private),
    );
    assert_no_key_material(&output, &private);
    let digest = digest_of(stdout(&output).trim());
    let reference = assert_signed(&registry, "team/app", &digest, &public, work.path());
    assert_eq!(reference, format!("{}/team/app", registry.host));
    let attested = attestations(&registry, "team/app", &digest, &public, work.path());
    assert_eq!(attested, vec![(SLSA.to_string(), vec![digest.clone()])]);

    // The same key given through the environment, at -vv: the same signature, and no key in sight.
    let output = run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .args(["--output", &format!("docker://{}/team/env:1.0", registry.host), "-vv"])
            .env("SCRATCHPACK_SIGN_KEY", std::fs::read_to_string(&private).unwrap()),
    );
    assert_no_key_material(&output, &private);
    assert_eq!(digest_of(stdout(&output).trim()), digest, "signing leaves the image as it is");
    assert_eq!(assert_signed(&registry, "team/env", &digest, &public, work.path()), format!("{}/team/env", registry.host));
    assert!(manifest(&registry, "team/env", &format!("sha256-{}.att", hex(&digest))).is_none(), "no provenance unless asked for");
}

#[test]
fn every_platform_and_the_index_are_signed_and_attested_with_no_unknown_platform_entries() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let output = run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .arg(static_c_hello_arm64())
            .args(["--output", &format!("docker://{}/multi:1", registry.host), "--provenance", "--sbom", "spdx", "-q", "--sign-key"])
            .arg(&private),
    );
    let index_digest = digest_of(stdout(&output).trim());
    let (index, _) = manifest(&registry, "multi", "1").unwrap();
    let children: Vec<String> = index["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_string()).collect();
    assert_eq!(children.len(), 2);
    for entry in index["manifests"].as_array().unwrap() {
        assert_ne!(entry["platform"]["os"], "unknown", "{index}");
        assert_ne!(entry["platform"]["architecture"], "unknown", "{index}");
    }
    assert_signed(&registry, "multi", &index_digest, &public, work.path());
    let mut everything: Vec<String> = children.iter().cloned().chain([index_digest.clone()]).collect();
    everything.sort();
    assert_eq!(attestations(&registry, "multi", &index_digest, &public, work.path()), vec![(SLSA.to_string(), everything)]);
    for child in &children {
        assert_signed(&registry, "multi", child, &public, work.path());
        let mut attested = attestations(&registry, "multi", child, &public, work.path());
        attested.sort();
        assert_eq!(attested, vec![(SLSA.to_string(), vec![child.clone()]), ("https://spdx.dev/Document".to_string(), vec![child.clone()])]);
    }
}

/// Packs the static hello to `registry`'s `REPO:1`, signed with `key` and with provenance;
/// returns the pushed digest.
fn push_signed(registry: &Registry, repo: &str, key: &Path) -> String {
    let output = format!("docker://{}/{repo}:1", registry.host);
    let lines =
        pack(&[static_c_hello().to_str().unwrap(), "--output", &output, "--provenance", "-q", "--sign-key", key.to_str().unwrap()], |_| {});
    digest_of(&lines[0])
}

fn verify(image: &str, public: &Path) -> std::process::Output {
    scratchpack().args(["verify", image, "--key"]).arg(public).output().unwrap()
}

/// Copies a blob from one repository of `registry` to another (a cross-repository mount).
fn mount(registry: &Registry, digest: &str, from: &str, to: &str) {
    let path = format!("/v2/{to}/blobs/uploads/?mount={digest}&from={from}");
    let response = http_request(&registry.host, "POST", &path, &[], b"").unwrap();
    assert_eq!(response.status, 201, "mount {digest}: {}", response.text());
}

fn put_manifest(registry: &Registry, repo: &str, reference: &str, manifest: &Value) -> String {
    let body = serde_json::to_vec(manifest).unwrap();
    let media_type = manifest["mediaType"].as_str().unwrap();
    let response =
        http_request(&registry.host, "PUT", &format!("/v2/{repo}/manifests/{reference}"), &[("Content-Type", media_type)], &body).unwrap();
    assert_eq!(response.status, 201, "PUT {reference}: {}", response.text());
    response.header("docker-content-digest").unwrap().to_string()
}

#[test]
fn verify_passes_on_a_signed_image_and_names_the_digest_when_the_tag_or_the_signature_is_replaced() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let (other_private, _) = key_pair(work.path(), "intruder");
    let signed = |repo: &str, key: &Path| push_signed(&registry, repo, key);
    let digest = signed("app", &private);
    let image = format!("docker://{}/app:1", registry.host);
    let output = verify(&image, &public);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "{digest} manifest: signature verified (docker-reference {}/app)\n{digest} manifest: {SLSA} attestation verified\n",
            registry.host
        )
    );

    // The tag moved to an image nobody signed.
    let moved = pack(&[static_c_hello().to_str().unwrap(), "--output", &image, "--env", "MOVED=1", "-q"], |_| {});
    let unsigned = digest_of(&moved[0]);
    let output = verify(&image, &public);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert!(
        stderr(&output).contains(&format!(
            "{unsigned} (manifest): no signature (none among its referrers, nor under the tag sha256-{}.sig)",
            hex(&unsigned)
        )),
        "{}",
        stderr(&output)
    );

    // The signature replaced by one another key made for the same image, in both places cosign
    // and scratchpack look.
    let real = signed("real", &private);
    assert_eq!(signed("forged", &other_private), real, "the same image");
    let sig_tag = format!("sha256-{}.sig", hex(&real));
    let (forged_sig, _) = manifest(&registry, "forged", &sig_tag).unwrap();
    for blob in forged_sig["layers"].as_array().unwrap().iter().chain([&forged_sig["config"]]) {
        mount(&registry, blob["digest"].as_str().unwrap(), "forged", "real");
    }
    let forged_digest = put_manifest(&registry, "real", &sig_tag, &forged_sig);
    let (mut referrers, _) = manifest(&registry, "real", &format!("sha256-{}", hex(&real))).unwrap();
    for entry in referrers["manifests"].as_array_mut().unwrap() {
        if entry["artifactType"] == SIG_ARTIFACT {
            entry["digest"] = forged_digest.clone().into();
            entry["size"] = serde_json::to_vec(&forged_sig).unwrap().len().into();
        }
    }
    put_manifest(&registry, "real", &format!("sha256-{}", hex(&real)), &referrers);
    let output = verify(&format!("docker://{}/real:1", registry.host), &public);
    assert_eq!(output.status.code(), Some(1));
    // What still verifies is said: the provenance, which nobody replaced.
    assert_eq!(stdout(&output), format!("{real} manifest: {SLSA} attestation verified\n"));
    assert!(stderr(&output).contains(&format!("{real} (manifest): 1 signature(s), none made by the key sha256:")), "{}", stderr(&output));
}

#[test]
fn verify_reads_oci_layouts_and_archives_written_with_a_key() {
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let layout = work.path().join("layout");
    let archive = work.path().join("image.tar");
    let lines = pack(
        &[
            static_c_hello().to_str().unwrap(),
            static_c_hello_arm64().to_str().unwrap(),
            "--output",
            &format!("oci:{}:1.0", layout.display()),
            "--output",
            &format!("oci-archive:{}:1.0", archive.display()),
            "--provenance",
            "-q",
            "--sign-key",
            private.to_str().unwrap(),
        ],
        |_| {},
    );
    let index = digest_of(&lines[0]);
    // The signatures' own tags leave the image readable (oci-image-tool's `--ref name=` filter
    // skips entries after one it drops, so it cannot pick a tag among several: skopeo reads it).
    assert_eq!(skopeo_inspect(&format!("oci:{}:1.0", layout.display()), &["--raw"])["manifests"].as_array().unwrap().len(), 2);
    let output = verify(&format!("oci:{}", layout.display()), &public);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let first: Vec<&str> = text.lines().take(2).collect();
    assert_eq!(
        first,
        [
            format!("{index} index: signature verified (docker-reference oci:{}:1.0)", layout.display()),
            format!("{index} index: {SLSA} attestation verified"),
        ]
    );
    assert_eq!(text.lines().filter(|l| l.contains(": signature verified")).count(), 3, "{text}");
    assert!(text.contains("linux/amd64: signature verified") && text.contains("linux/arm64/v8: signature verified"), "{text}");
    let output = verify(&format!("oci-archive:{}:1.0", archive.display()), &public);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!("{index} index: signature verified (docker-reference oci-archive:{}:1.0)", archive.display()))
    );

    // Verifying with a private key, or a key that is not one, says so without quoting it.
    let output = verify(&format!("oci:{}", layout.display()), &private);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).lines().next().unwrap(),
        format!("error: --key {}: a private key: verify takes the public key", private.display())
    );
    assert_no_key_material(&output, &private);
}

#[test]
fn with_a_key_a_cyclonedx_sbom_is_also_a_signed_attestation_of_its_predicate_type() {
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let layout = work.path().join("layout");
    let lines = pack(
        &[
            static_c_hello().to_str().unwrap(),
            "--output",
            &format!("oci:{}", layout.display()),
            "--sbom",
            "cyclonedx",
            "-q",
            "--sign-key",
            private.to_str().unwrap(),
        ],
        |_| {},
    );
    let digest = digest_of(&lines[0]);
    let output = verify(&format!("oci:{}", layout.display()), &public);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "{digest} manifest: signature verified (docker-reference oci:{}:latest)\n{digest} manifest: https://cyclonedx.org/bom attestation verified\n",
            layout.display()
        )
    );
    // The plain SBOM referrer stays beside the attestation, and securesystemslib checks the envelope.
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tagged = |tag: String| {
        let entry =
            index["manifests"].as_array().unwrap().iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str());
        let digest = entry.unwrap_or_else(|| panic!("no tag {tag}"))["digest"].as_str().unwrap().to_string();
        serde_json::from_slice::<Value>(&std::fs::read(blob_file(&layout, &digest)).unwrap()).unwrap()
    };
    let referrers = tagged(format!("sha256-{}", hex(&digest)));
    let mut types: Vec<&str> = referrers["manifests"].as_array().unwrap().iter().map(|m| m["artifactType"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        ["application/vnd.cyclonedx+json", "application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.in-toto+json"]
    );
    let att = tagged(format!("sha256-{}.att", hex(&digest)));
    let envelope = std::fs::read(blob_file(&layout, att["layers"][0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(dsse_verify(&public, &envelope, work.path()).unwrap(), ("https://cyclonedx.org/bom".to_string(), vec![digest.clone()]));
}

#[test]
fn push_signs_each_manifest_and_the_index_it_pushes() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let layout = work.path().join("layout");
    let lines = pack(
        &[
            static_c_hello().to_str().unwrap(),
            static_c_hello_arm64().to_str().unwrap(),
            "--output",
            &format!("oci:{}:1", layout.display()),
            "-q",
        ],
        |_| {},
    );
    let index = digest_of(&lines[0]);
    let image = format!("docker://{}/pushed:1", registry.host);
    let output = run_ok(scratchpack().args(["push", &format!("oci:{}:1", layout.display()), &image, "-q", "--sign-key"]).arg(&private));
    assert_eq!(digest_of(stdout(&output).trim()), index);
    let output = verify(&image, &public);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.starts_with(&format!("{index} index: signature verified (docker-reference {}/pushed)\n", registry.host)), "{text}");
    assert_signed(&registry, "pushed", &index, &public, work.path());
}

#[test]
fn a_second_signer_adds_to_the_sig_image_and_a_repeat_changes_nothing() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (first, first_public) = key_pair(work.path(), "first");
    let (second, second_public) = key_pair(work.path(), "second");
    let image = format!("docker://{}/app:1", registry.host);
    let sign = |key: &Path| {
        digest_of(&pack(&[static_c_hello().to_str().unwrap(), "--output", &image, "-q", "--sign-key", key.to_str().unwrap()], |_| {})[0])
    };
    let digest = sign(&first);
    sign(&second);
    let (sig, sig_digest) = manifest(&registry, "app", &format!("sha256-{}.sig", hex(&digest))).unwrap();
    assert_eq!(sig["layers"].as_array().unwrap().len(), 2, "{sig}");
    for public in [&first_public, &second_public] {
        let output = verify(&image, public);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    sign(&first);
    assert_eq!(manifest(&registry, "app", &format!("sha256-{}.sig", hex(&digest))).unwrap().1, sig_digest, "nothing new to add");
}

#[test]
fn cargo_scratchpack_with_a_key_attaches_signed_provenance_naming_the_package_profile_and_commit() {
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let (_dir, ws) = cargo_fixture("cargo-ws");
    run_ok(Command::new("git").args(["init", "-q"]).current_dir(&ws));
    run_ok(Command::new("git").args(["add", "-A"]).current_dir(&ws));
    run_ok(
        Command::new("git").args(["-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "fixture"]).current_dir(&ws),
    );
    let head = stdout(&run_ok(Command::new("git").args(["rev-parse", "HEAD"]).current_dir(&ws))).trim().to_string();
    let layout = work.path().join("images");
    let output = cargo_scratchpack(
        &ws,
        &[
            "--bin",
            "greeter-cli",
            "--target",
            "x86_64-unknown-linux-musl",
            "--sbom",
            "none",
            "--output",
            &format!("oci:{}", layout.display()),
            "-vv",
        ],
        &[
            ("SCRATCHPACK_SIGN_KEY", std::fs::read_to_string(&private).unwrap()),
            // A CI run of this suite must not name its own run and commit here.
            ("GITHUB_ACTIONS", String::new()),
            ("GITLAB_CI", String::new()),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_no_key_material(&output, &private);
    let digest = digest_of(stdout(&output).trim());
    let verified = verify(&format!("oci:{}:1.4.2", layout.display()), &public);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stdout(&verified).contains(&format!("{digest} manifest: {SLSA} attestation verified")), "provenance is on with a key");

    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let att_tag = format!("sha256-{}.att", hex(&digest));
    let att = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == att_tag.as_str())
        .unwrap();
    let att: Value = serde_json::from_slice(&std::fs::read(blob_file(&layout, att["digest"].as_str().unwrap())).unwrap()).unwrap();
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(blob_file(&layout, att["layers"][0]["digest"].as_str().unwrap())).unwrap()).unwrap();
    let statement: Value = serde_json::from_slice(&base64_decode(envelope["payload"].as_str().unwrap()).unwrap()).unwrap();
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(
        definition["externalParameters"]["cargo"],
        serde_json::json!({"package": "greeter", "version": "1.4.2", "profile": "release"})
    );
    assert_eq!(definition["externalParameters"]["env"]["GREETING"], "hello");
    let dependencies = definition["resolvedDependencies"].as_array().unwrap();
    assert!(dependencies.iter().any(|d| d["digest"]["gitCommit"] == head.as_str()), "{dependencies:?}");
    assert!(dependencies.iter().any(|d| d["name"] == "greeter-cli" && d["annotations"]["platform"] == "linux/amd64"), "{dependencies:?}");
    assert_eq!(statement["predicate"]["runDetails"]["builder"]["id"], "urn:scratchpack:builder:local");
}

#[test]
fn without_a_key_provenance_is_still_attached_unsigned_and_a_docker_archive_says_it_holds_no_signature() {
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let layout = work.path().join("layout");
    let lines = pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci:{}", layout.display()), "--provenance", "-q"], |_| {});
    let digest = digest_of(&lines[0]);
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap())
        .collect();
    let att_tag = format!("sha256-{}.att", hex(&digest));
    assert!(tags.contains(&att_tag.as_str()) && !tags.iter().any(|t| t.ends_with(".sig")), "{tags:?}");
    let att = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == att_tag.as_str())
        .unwrap();
    let att: Value = serde_json::from_slice(&std::fs::read(blob_file(&layout, att["digest"].as_str().unwrap())).unwrap()).unwrap();
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(blob_file(&layout, att["layers"][0]["digest"].as_str().unwrap())).unwrap()).unwrap();
    assert_eq!(envelope["signatures"], serde_json::json!([]));
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");

    let output = verify(&format!("oci:{}", layout.display()), &public);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(error.contains(&format!("{digest} (manifest): no signature")), "{error}");
    assert!(error.contains(&format!("{digest} (manifest): the {SLSA} attestation is not signed")), "{error}");

    let archive = work.path().join("image.tar");
    let output = run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .arg("--output")
            .arg(format!("docker-archive:{}", archive.display()))
            .arg("--sign-key")
            .arg(&private),
    );
    assert!(
        stderr(&output).contains(&format!(
            "docker-archive:{}: a docker archive holds no signatures; sign an oci:, oci-archive: or docker:// output",
            archive.display()
        )),
        "{}",
        stderr(&output)
    );
}

/// A signed, attested image copied to another registry keeps its signatures and attestations:
/// as referrers, and under cosign's `.sig` and `.att` tags, which `verify` and cosign read.
#[test]
fn a_copy_carries_the_signatures_under_cosigns_tags_too() {
    let (source, dest) = (Registry::plain(), Registry::plain());
    let work = temp_dir();
    let (private, public) = key_pair(work.path(), "release");
    let digest = push_signed(&source, "app", &private);
    run_ok(scratchpack().args(["copy", &format!("docker://{}/app:1", source.host), &format!("docker://{}/copied:1", dest.host)]));
    for suffix in ["sig", "att"] {
        let tag = format!("sha256-{}.{suffix}", hex(&digest));
        let (at_source, _) = manifest(&source, "app", &tag).expect("the source has it");
        let (at_dest, _) = manifest(&dest, "copied", &tag).unwrap_or_else(|| panic!("{tag} was not copied"));
        assert_eq!(at_dest, at_source, "{tag}");
    }
    assert_signed(&dest, "copied", &digest, &public, work.path());
    let output = verify(&format!("docker://{}/copied:1", dest.host), &public);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("{digest} manifest: signature verified")), "{}", stdout(&output));
}
