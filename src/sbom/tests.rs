use super::*;
use serde_json::Value;

const GIT_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn krate(name: &str, version: &str, source: &str, kind: &str, dependencies: &[usize], root: bool) -> AuditedCrate {
    AuditedCrate {
        name: name.into(),
        version: version.into(),
        source: source.into(),
        kind: kind.into(),
        dependencies: dependencies.to_vec(),
        root,
    }
}

/// app (local, root) → itoa, gitdep (git), serde_derive (build: must not appear) → proc-macro2
/// (build); gitdep → itoa; localdep (local) ← app.
fn graph() -> Vec<AuditedCrate> {
    vec![
        krate("app", "0.1.0", "local", "runtime", &[1, 2, 3, 5], true),
        krate("gitdep", "0.3.0", "git", "runtime", &[4], false),
        krate("serde_derive", "1.0.219", "crates.io", "build", &[6], false),
        krate("localdep", "0.2.0", "local", "runtime", &[], false),
        krate("itoa", "1.0.15", "crates.io", "runtime", &[], false),
        krate("zerocopy", "0.8.25", "crates.io", "runtime", &[], false),
        krate("proc-macro2", "1.0.95", "crates.io", "build", &[], false),
    ]
}

fn sources() -> BTreeMap<(String, String), String> {
    let mut map = BTreeMap::new();
    map.insert(("gitdep".into(), "0.3.0".into()), format!("git+https://github.com/org/gitdep?branch=main#{GIT_SHA}"));
    map.insert(("itoa".into(), "1.0.15".into()), "registry+https://github.com/rust-lang/crates.io-index".into());
    map
}

fn files() -> Vec<SbomFile> {
    vec![
        SbomFile {
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            sha256: Digest::of(b"libc"),
            sha1: sha1_hex(b"libc"),
            size: 4,
            comment: None,
            package: Some(DebPackage { name: "libc6".into(), version: "2.36-9+deb12u14".into(), architecture: "amd64".into() }),
        },
        SbomFile {
            path: "/etc/ssl/certs/ca-certificates.crt".into(),
            sha256: Digest::of(b"pem"),
            sha1: sha1_hex(b"pem"),
            size: 3,
            comment: Some("Mozilla CA bundle: mozilla-nss via debian ca-certificates 20250419~deb12u2".into()),
            package: None,
        },
    ]
}

fn generate_with(format: SbomFormat, crates: Option<&[AuditedCrate]>, files: &[SbomFile]) -> Sbom {
    let platform = Platform::linux("amd64", None);
    let sources = sources();
    let input = SbomInput {
        name: "app",
        version: Some("0.1.0"),
        platform: &platform,
        created: "2024-05-01T12:00:00Z",
        binary_path: "/usr/local/bin/app",
        binary_sha256: Digest::of(b"the program"),
        binary_sha1: sha1_hex(b"the program"),
        crates,
        also_crates: &[],
        cargo_sources: Some(&sources),
        files,
    };
    generate(format, &input).unwrap().expect("a document")
}

fn json(sbom: &Sbom) -> Value {
    serde_json::from_slice(&sbom.bytes).unwrap()
}

fn strings<'a>(values: &'a Value, key: &str) -> Vec<&'a str> {
    values.as_array().unwrap().iter().map(|v| v[key].as_str().unwrap()).collect()
}

#[test]
fn formats_name_their_media_types() {
    assert_eq!(SbomFormat::default(), SbomFormat::Spdx);
    assert_eq!(SbomFormat::Spdx.media_type(), Some("application/spdx+json"));
    assert_eq!(SbomFormat::Cyclonedx.media_type(), Some("application/vnd.cyclonedx+json"));
    assert_eq!(SbomFormat::None.media_type(), None);
    assert_eq!(SbomFormat::Spdx.file_extension(), "spdx.json");
    assert_eq!(SbomFormat::Cyclonedx.file_extension(), "cdx.json");
    let platform = Platform::linux("amd64", None);
    let input = SbomInput {
        name: "app",
        version: None,
        platform: &platform,
        created: "1970-01-01T00:00:00Z",
        binary_path: "/app",
        binary_sha256: Digest::of(b""),
        binary_sha1: sha1_hex(b""),
        crates: None,
        also_crates: &[],
        cargo_sources: None,
        files: &[],
    };
    assert!(generate(SbomFormat::None, &input).unwrap().is_none());
}

#[test]
fn spdx_lists_runtime_crates_files_and_debian_packages() {
    let crates = graph();
    let sbom = generate_with(SbomFormat::Spdx, Some(&crates), &files());
    assert_eq!(sbom.format, SbomFormat::Spdx);
    assert_eq!(sbom.media_type, "application/spdx+json");
    assert_eq!(sbom.runtime_crates, 5);
    let doc = json(&sbom);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
    assert_eq!(doc["name"], "app");
    assert_eq!(doc["creationInfo"]["created"], "2024-05-01T12:00:00Z");
    assert_eq!(doc["creationInfo"]["creators"][0], format!("Tool: scratchpack-{}", env!("CARGO_PKG_VERSION")));
    let namespace = doc["documentNamespace"].as_str().unwrap();
    assert!(namespace.starts_with("https://scratchpack.invalid/spdx/app-") && namespace.len() == 37 + 64, "{namespace}");

    let packages = &doc["packages"];
    assert_eq!(
        strings(packages, "SPDXID"),
        [
            "SPDXRef-crate-app-0.1.0",
            "SPDXRef-crate-gitdep-0.3.0",
            "SPDXRef-crate-itoa-1.0.15",
            "SPDXRef-crate-localdep-0.2.0",
            "SPDXRef-crate-zerocopy-0.8.25",
            "SPDXRef-deb-libc6-2.36-9-deb12u14-amd64",
            "SPDXRef-image",
        ]
    );
    assert!(!String::from_utf8_lossy(&sbom.bytes).contains("serde_derive"), "build crates stay out");
    assert!(!String::from_utf8_lossy(&sbom.bytes).contains("proc-macro2"), "build crates stay out");
    let package = |id: &str| packages.as_array().unwrap().iter().find(|p| p["SPDXID"] == id).unwrap().clone();
    let purl = |id: &str| package(id)["externalRefs"][0]["referenceLocator"].as_str().unwrap().to_string();
    assert_eq!(purl("SPDXRef-crate-itoa-1.0.15"), "pkg:cargo/itoa@1.0.15");
    assert_eq!(
        purl("SPDXRef-crate-gitdep-0.3.0"),
        format!("pkg:cargo/gitdep@0.3.0?vcs_url=git%2Bhttps:%2F%2Fgithub.com%2Forg%2Fgitdep%40{GIT_SHA}")
    );
    assert_eq!(package("SPDXRef-crate-gitdep-0.3.0")["downloadLocation"], format!("git+https://github.com/org/gitdep@{GIT_SHA}"));
    assert_eq!(package("SPDXRef-crate-itoa-1.0.15")["downloadLocation"], "https://crates.io/api/v1/crates/itoa/1.0.15/download");
    let app = package("SPDXRef-crate-app-0.1.0");
    assert_eq!(app["downloadLocation"], "NOASSERTION");
    assert_eq!(app["primaryPackagePurpose"], "APPLICATION");
    assert_eq!(app["filesAnalyzed"], false);
    assert_eq!(app["licenseConcluded"], "NOASSERTION");
    assert!(app["comment"].as_str().unwrap().contains("local path"));
    assert_eq!(purl("SPDXRef-crate-app-0.1.0"), "pkg:cargo/app@0.1.0");
    assert_eq!(purl("SPDXRef-deb-libc6-2.36-9-deb12u14-amd64"), "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64");
    let image = package("SPDXRef-image");
    assert_eq!(image["primaryPackagePurpose"], "CONTAINER");
    assert_eq!(image["versionInfo"], "0.1.0");

    let files = &doc["files"];
    assert_eq!(
        strings(files, "fileName"),
        ["./etc/ssl/certs/ca-certificates.crt", "./usr/lib/x86_64-linux-gnu/libc.so.6", "./usr/local/bin/app"]
    );
    let binary = &files[2];
    assert_eq!(binary["SPDXID"], "SPDXRef-file-usr-local-bin-app");
    // SHA1 as SPDX 2.3 requires (8.4), then SHA256. SHA1 pinned: `printf 'the program' | sha1sum`.
    assert_eq!(
        binary["checksums"],
        serde_json::json!([
            { "algorithm": "SHA1", "checksumValue": "9d75cc3f9e956e155e6bc7e4c5662c1a46b20a0e" },
            { "algorithm": "SHA256", "checksumValue": Digest::of(b"the program").hex() },
        ])
    );
    assert_eq!(files[0]["comment"], "Mozilla CA bundle: mozilla-nss via debian ca-certificates 20250419~deb12u2");

    let relationships: Vec<String> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["spdxElementId"].as_str().unwrap(),
                r["relationshipType"].as_str().unwrap(),
                r["relatedSpdxElement"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        relationships,
        [
            "SPDXRef-DOCUMENT DESCRIBES SPDXRef-image",
            "SPDXRef-crate-app-0.1.0 DEPENDS_ON SPDXRef-crate-gitdep-0.3.0",
            "SPDXRef-crate-app-0.1.0 DEPENDS_ON SPDXRef-crate-localdep-0.2.0",
            "SPDXRef-crate-app-0.1.0 DEPENDS_ON SPDXRef-crate-zerocopy-0.8.25",
            "SPDXRef-crate-gitdep-0.3.0 DEPENDS_ON SPDXRef-crate-itoa-1.0.15",
            "SPDXRef-deb-libc6-2.36-9-deb12u14-amd64 CONTAINS SPDXRef-file-usr-lib-x86-64-linux-gnu-libc.so.6",
            "SPDXRef-file-usr-local-bin-app GENERATED_FROM SPDXRef-crate-app-0.1.0",
            "SPDXRef-image CONTAINS SPDXRef-crate-app-0.1.0",
            "SPDXRef-image CONTAINS SPDXRef-deb-libc6-2.36-9-deb12u14-amd64",
            "SPDXRef-image CONTAINS SPDXRef-file-etc-ssl-certs-ca-certificates.crt",
            "SPDXRef-image CONTAINS SPDXRef-file-usr-lib-x86-64-linux-gnu-libc.so.6",
            "SPDXRef-image CONTAINS SPDXRef-file-usr-local-bin-app",
        ]
    );
}

#[test]
fn cyclonedx_lists_runtime_crates_files_and_debian_packages() {
    let crates = graph();
    let sbom = generate_with(SbomFormat::Cyclonedx, Some(&crates), &files());
    assert_eq!(sbom.media_type, "application/vnd.cyclonedx+json");
    assert_eq!(sbom.runtime_crates, 5);
    let doc = json(&sbom);
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.5");
    assert_eq!(doc["version"], 1);
    let serial = doc["serialNumber"].as_str().unwrap();
    let uuid = serial.strip_prefix("urn:uuid:").unwrap();
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{serial}");
    assert_eq!(&uuid[14..15], "5", "{serial}");
    assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{serial}");
    assert!(uuid.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

    let metadata = &doc["metadata"];
    assert_eq!(metadata["timestamp"], "2024-05-01T12:00:00Z");
    assert_eq!(
        metadata["tools"],
        serde_json::json!({ "components": [{ "type": "application", "name": "scratchpack", "version": env!("CARGO_PKG_VERSION") }] })
    );
    assert_eq!(metadata["component"]["type"], "container");
    assert_eq!(metadata["component"]["name"], "app");
    assert_eq!(metadata["component"]["version"], "0.1.0");
    assert_eq!(metadata["component"]["properties"][0], serde_json::json!({ "name": "scratchpack:platform", "value": "linux/amd64" }));

    let components = &doc["components"];
    assert_eq!(
        strings(components, "bom-ref"),
        [
            "crate-app-0.1.0",
            "crate-gitdep-0.3.0",
            "crate-itoa-1.0.15",
            "crate-localdep-0.2.0",
            "crate-zerocopy-0.8.25",
            "deb-libc6-2.36-9-deb12u14-amd64",
            "file-etc-ssl-certs-ca-certificates.crt",
            "file-usr-lib-x86-64-linux-gnu-libc.so.6",
            "file-usr-local-bin-app",
        ]
    );
    assert!(!String::from_utf8_lossy(&sbom.bytes).contains("serde_derive"), "build crates stay out");
    let component = |id: &str| components.as_array().unwrap().iter().find(|c| c["bom-ref"] == id).unwrap().clone();
    assert_eq!(component("crate-app-0.1.0")["type"], "application");
    assert_eq!(component("crate-app-0.1.0")["properties"], serde_json::json!([{ "name": "scratchpack:source", "value": "local" }]));
    assert_eq!(component("crate-itoa-1.0.15")["type"], "library");
    assert_eq!(component("crate-itoa-1.0.15")["purl"], "pkg:cargo/itoa@1.0.15");
    assert!(component("crate-itoa-1.0.15").get("properties").is_none());
    assert_eq!(
        component("crate-gitdep-0.3.0")["purl"],
        format!("pkg:cargo/gitdep@0.3.0?vcs_url=git%2Bhttps:%2F%2Fgithub.com%2Forg%2Fgitdep%40{GIT_SHA}")
    );
    let libc = component("deb-libc6-2.36-9-deb12u14-amd64");
    assert_eq!(libc["purl"], "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64");
    assert_eq!(libc["evidence"]["occurrences"], serde_json::json!([{ "location": "/usr/lib/x86_64-linux-gnu/libc.so.6" }]));
    let binary = component("file-usr-local-bin-app");
    assert_eq!(binary["type"], "file");
    assert_eq!(binary["name"], "/usr/local/bin/app");
    assert_eq!(binary["hashes"], serde_json::json!([{ "alg": "SHA-256", "content": Digest::of(b"the program").hex() }]));
    let bundle = component("file-etc-ssl-certs-ca-certificates.crt");
    assert_eq!(bundle["description"], "Mozilla CA bundle: mozilla-nss via debian ca-certificates 20250419~deb12u2");
    assert_eq!(bundle["properties"], serde_json::json!([{ "name": "scratchpack:size", "value": "3" }]));

    let dependencies: Vec<String> = doc["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let on: Vec<&str> = d["dependsOn"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
            format!("{} -> {}", d["ref"].as_str().unwrap(), on.join(","))
        })
        .collect();
    assert_eq!(
        dependencies,
        [
            "crate-app-0.1.0 -> crate-gitdep-0.3.0,crate-localdep-0.2.0,crate-zerocopy-0.8.25",
            "crate-gitdep-0.3.0 -> crate-itoa-1.0.15",
            "crate-itoa-1.0.15 -> ",
            "crate-localdep-0.2.0 -> ",
            "crate-zerocopy-0.8.25 -> ",
            "image -> crate-app-0.1.0,deb-libc6-2.36-9-deb12u14-amd64",
        ]
    );
}

#[test]
fn output_is_deterministic_whatever_the_input_order() {
    let crates = graph();
    let mut reversed = files();
    for format in [SbomFormat::Spdx, SbomFormat::Cyclonedx] {
        let first = generate_with(format, Some(&crates), &files());
        let second = generate_with(format, Some(&crates), &files());
        assert_eq!(first.bytes, second.bytes);
        reversed.reverse();
        assert_eq!(generate_with(format, Some(&crates), &reversed).bytes, first.bytes);
        assert!(first.bytes.ends_with(b"}\n"));
        // Keys are sorted at every level.
        let text = String::from_utf8(first.bytes.clone()).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string_pretty(&sorted(value)).unwrap() + "\n", text);
        // Any change in content names a new document.
        let other = generate_with(format, Some(&crates[..1]), &files());
        let id = |sbom: &Sbom| {
            let doc = json(sbom);
            doc.get("documentNamespace").or_else(|| doc.get("serialNumber")).unwrap().as_str().unwrap().to_string()
        };
        assert_ne!(id(&first), id(&other));
    }
}

#[test]
fn without_audit_data_the_binary_and_files_are_still_listed() {
    for format in [SbomFormat::Spdx, SbomFormat::Cyclonedx] {
        let sbom = generate_with(format, None, &files());
        assert_eq!(sbom.runtime_crates, 0);
        let text = String::from_utf8(sbom.bytes.clone()).unwrap();
        assert!(!text.contains("pkg:cargo/"), "{text}");
        assert!(text.contains(&Digest::of(b"the program").hex()));
        assert!(text.contains(&Digest::of(b"pem").hex()));
        assert!(text.contains("pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64"));
        assert!(text.contains("carries no cargo-auditable data"), "{text}");
    }
}

#[test]
fn the_binary_listed_among_the_files_appears_once() {
    let mut with_binary = files();
    with_binary.push(SbomFile {
        path: "usr/local/bin/app".into(),
        sha256: Digest::of(b"the program"),
        sha1: sha1_hex(b"the program"),
        size: 11,
        comment: None,
        package: None,
    });
    let doc = json(&generate_with(SbomFormat::Spdx, None, &with_binary));
    assert_eq!(strings(&doc["files"], "fileName").iter().filter(|name| **name == "./usr/local/bin/app").count(), 1);
    let doc = json(&generate_with(SbomFormat::Cyclonedx, None, &with_binary));
    let binary = doc["components"].as_array().unwrap().iter().find(|c| c["name"] == "/usr/local/bin/app").unwrap().clone();
    assert_eq!(binary["properties"][0]["value"], "11");
}

#[test]
fn ids_stay_unique_and_valid() {
    // Same name and version from two sources; names that differ only by `_`/`-`.
    let crates = vec![
        krate("app", "0.1.0", "local", "runtime", &[1, 2, 3], true),
        krate("foo", "1.0.0", "crates.io", "runtime", &[], false),
        krate("foo", "1.0.0", "git", "runtime", &[], false),
        krate("foo-bar", "1.0.0", "crates.io", "runtime", &[], false),
        krate("foo_bar", "1.0.0", "crates.io", "runtime", &[], false),
    ];
    let doc = json(&generate_with(SbomFormat::Spdx, Some(&crates), &[]));
    let ids = strings(&doc["packages"], "SPDXID");
    let unique: HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert!(ids.iter().all(|id| id.strip_prefix("SPDXRef-").unwrap().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')));
    // foo_bar is not depended on by anyone, so the image holds it directly.
    let contains: Vec<&str> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["spdxElementId"] == "SPDXRef-image" && r["relationshipType"] == "CONTAINS")
        .map(|r| r["relatedSpdxElement"].as_str().unwrap())
        .collect();
    assert!(contains.contains(&"SPDXRef-crate-foo-bar-1.0.0-2"), "{contains:?}");
}

#[test]
fn timestamps_must_be_utc() {
    assert_eq!(utc_timestamp("1970-01-01T00:00:00Z").unwrap(), "1970-01-01T00:00:00Z");
    assert_eq!(utc_timestamp("2024-05-01T12:00:00+00:00").unwrap(), "2024-05-01T12:00:00Z");
    for bad in ["2024-05-01T12:00:00+02:00", "2024-05-01 12:00:00Z", "yesterday", "2024-05-01T12:00:00.5Z", ""] {
        let err = utc_timestamp(bad).unwrap_err();
        assert!(matches!(err, SbomError::Timestamp { .. }), "{bad}");
    }
}

/// A health check (its own root) that shares itoa with the program and brings ureq.
fn healthcheck_graph() -> Vec<AuditedCrate> {
    vec![
        krate("healthcheck", "0.1.0", "local", "runtime", &[1, 2], true),
        krate("ureq", "2.12.1", "crates.io", "runtime", &[2], false),
        krate("itoa", "1.0.15", "crates.io", "runtime", &[], false),
    ]
}

#[test]
fn further_programs_crates_join_once_and_only_the_programs_roots_stay_roots() {
    let merged = auditable::merge(&graph(), &[healthcheck_graph()]);
    assert_eq!(merged.len(), graph().len() + 2, "itoa once");
    assert_eq!(merged.iter().filter(|k| k.root).map(|k| k.name.as_str()).collect::<Vec<_>>(), ["app"]);
    let position = |name: &str| merged.iter().position(|k| k.name == name).unwrap();
    let healthcheck = &merged[position("healthcheck")];
    assert!(healthcheck.is_runtime());
    assert_eq!(healthcheck.dependencies, [position("ureq"), position("itoa")]);
    assert_eq!(merged[position("ureq")].dependencies, [position("itoa")]);
}

#[test]
fn spdx_lists_the_crates_of_further_programs_as_the_images() {
    let platform = Platform::linux("amd64", None);
    let crates = graph();
    let input = SbomInput {
        name: "app",
        version: None,
        platform: &platform,
        created: "1970-01-01T00:00:00Z",
        binary_path: "/usr/local/bin/app",
        binary_sha256: Digest::of(b"the program"),
        binary_sha1: sha1_hex(b"the program"),
        crates: Some(&crates),
        also_crates: &[healthcheck_graph()],
        cargo_sources: None,
        files: &[],
    };
    let sbom = generate(SbomFormat::Spdx, &input).unwrap().unwrap();
    assert_eq!(sbom.runtime_crates, 7);
    let doc = json(&sbom);
    let ids = strings(&doc["packages"], "SPDXID");
    assert_eq!(ids.iter().filter(|id| id.starts_with("SPDXRef-crate-itoa")).count(), 1, "{ids:?}");
    let relationships: Vec<String> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {} {}", r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]).replace('"', ""))
        .collect();
    for expected in [
        "SPDXRef-image CONTAINS SPDXRef-crate-healthcheck-0.1.0",
        "SPDXRef-crate-healthcheck-0.1.0 DEPENDS_ON SPDXRef-crate-ureq-2.12.1",
        "SPDXRef-crate-ureq-2.12.1 DEPENDS_ON SPDXRef-crate-itoa-1.0.15",
    ] {
        assert!(relationships.iter().any(|r| r == expected), "{expected} in {relationships:#?}");
    }
    let generated: Vec<&String> = relationships.iter().filter(|r| r.contains("GENERATED_FROM")).collect();
    assert_eq!(generated, ["SPDXRef-file-usr-local-bin-app GENERATED_FROM SPDXRef-crate-app-0.1.0"], "the program's root alone");
}
