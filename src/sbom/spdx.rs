//! SPDX 2.3 JSON.
//!
//! The image is a package (`SPDXRef-image`, purpose CONTAINER) that the document DESCRIBES. It
//! CONTAINS every file, the root crate(s) and the Debian packages some of its files come from; a
//! Debian package CONTAINS its files; the binary is GENERATED_FROM the root crate; crates DEPENDS_ON
//! crates as the audit data says. Licenses are not known (cargo-auditable does not record them):
//! NOASSERTION.
//!
//! Every file carries a SHA1 checksum, as SPDX 2.3 requires (clause 8.4), and a SHA256. The test
//! suite validates documents with the SPDX project's own validator (`pyspdxtools`).

use serde_json::{json, Value};

use super::{purl, Model, Origin, TOOL_NAME, TOOL_VERSION};

const IMAGE: &str = "SPDXRef-image";
const NOASSERTION: &str = "NOASSERTION";

fn spdx_id(id: &str) -> String {
    format!("SPDXRef-{id}")
}

fn relationship(from: &str, kind: &str, to: &str) -> (String, String, String) {
    (from.to_string(), kind.to_string(), to.to_string())
}

pub(super) fn document(model: &Model) -> Vec<u8> {
    let mut packages = Vec::new();
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE)];

    // The image and each Debian package CONTAIN files: SPDX then wants them analysed, with a
    // verification code over those files (clauses 7.8, 7.9).
    let all_files: Vec<usize> = (0..model.files.len()).collect();
    let mut image = json!({
        "SPDXID": IMAGE,
        "name": model.name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": true,
        "packageVerificationCode": { "packageVerificationCodeValue": verification_code(model, &all_files) },
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": "CONTAINER",
        "comment": format!("OCI image for {}, made by {TOOL_NAME}", model.platform),
    });
    if let Some(version) = model.version {
        image["versionInfo"] = json!(version);
    }
    packages.push(image);

    for krate in &model.crates {
        let id = spdx_id(&krate.id);
        let mut package = json!({
            "SPDXID": id,
            "name": krate.name,
            "versionInfo": krate.version,
            "downloadLocation": purl::download_location(&krate.name, &krate.version, &krate.origin),
            "filesAnalyzed": false,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": if krate.root { "APPLICATION" } else { "LIBRARY" },
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": krate.purl,
            }],
        });
        let comment = match &krate.origin {
            Origin::CratesIo => None,
            Origin::Local => Some("Rust crate from a local path (not published)".to_string()),
            Origin::Git { vcs_url: Some(_) } => Some("Rust crate from a git repository".to_string()),
            Origin::Git { vcs_url: None } => Some("Rust crate from a git repository that the audit data does not name".to_string()),
            Origin::Registry { url: Some(url) } => Some(format!("Rust crate from the registry {url}")),
            Origin::Registry { url: None } => Some("Rust crate from a registry other than crates.io".to_string()),
            Origin::Other(word) => Some(format!("Rust crate from a source cargo-auditable calls {word:?}")),
        };
        if let Some(comment) = comment {
            package["comment"] = json!(comment);
        }
        for &dependency in &krate.dependencies {
            relationships.push(relationship(&id, "DEPENDS_ON", &spdx_id(&model.crates[dependency].id)));
        }
        packages.push(package);
    }
    for index in model.top_crates() {
        relationships.push(relationship(IMAGE, "CONTAINS", &spdx_id(&model.crates[index].id)));
    }

    for deb in &model.debs {
        let id = spdx_id(&deb.id);
        packages.push(json!({
            "SPDXID": id,
            "name": deb.package.name,
            "versionInfo": deb.package.version,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": true,
            "packageVerificationCode": { "packageVerificationCodeValue": verification_code(model, &deb.files) },
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "LIBRARY",
            "comment": format!("Debian package ({}); the image holds only the files it CONTAINS here", deb.package.architecture),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": deb.purl,
            }],
        }));
        relationships.push(relationship(IMAGE, "CONTAINS", &id));
        for &file in &deb.files {
            relationships.push(relationship(&id, "CONTAINS", &spdx_id(&model.files[file].id)));
        }
    }

    let mut files = Vec::new();
    for file in &model.files {
        let id = spdx_id(&file.id);
        let mut entry = json!({
            "SPDXID": id,
            "fileName": format!(".{}", file.path),
            "checksums": [
                { "algorithm": "SHA1", "checksumValue": file.sha1 },
                { "algorithm": "SHA256", "checksumValue": file.sha256.hex() },
            ],
            "licenseConcluded": NOASSERTION,
            "copyrightText": NOASSERTION,
        });
        if file.binary {
            entry["fileTypes"] = json!(["BINARY", "APPLICATION"]);
            for index in model.crates.iter().enumerate().filter(|(_, c)| c.root).map(|(i, _)| i) {
                relationships.push(relationship(&id, "GENERATED_FROM", &spdx_id(&model.crates[index].id)));
            }
        }
        let comment = match (&file.comment, file.binary && !model.audited) {
            (Some(comment), _) => Some(comment.clone()),
            (None, true) => Some("the program; it carries no cargo-auditable data, so the crates in it are not listed".to_string()),
            (None, false) => None,
        };
        if let Some(comment) = comment {
            entry["comment"] = json!(comment);
        }
        relationships.push(relationship(IMAGE, "CONTAINS", &id));
        files.push(entry);
    }

    packages.sort_by(|a, b| a["SPDXID"].as_str().cmp(&b["SPDXID"].as_str()));
    files.sort_by(|a, b| a["fileName"].as_str().cmp(&b["fileName"].as_str()));
    relationships.sort();
    relationships.dedup();
    let relationships: Vec<Value> = relationships
        .into_iter()
        .map(|(from, kind, to)| json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to }))
        .collect();

    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": model.name,
        "creationInfo": {
            "created": model.created,
            "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
        },
        "packages": packages,
        "files": files,
        "relationships": relationships,
    });
    let hash = super::content_hash(&document);
    document["documentNamespace"] = json!(format!("https://scratchpack.invalid/spdx/{}-{}", url_segment(model.name), hex::encode(hash)));
    super::to_bytes(document)
}

/// The image name as one URL path segment.
fn url_segment(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '-' }).collect();
    if cleaned.is_empty() {
        "image".to_string()
    } else {
        cleaned
    }
}

/// SPDX 2.3 clause 7.9: the SHA1 of the files' SHA1s (lower-case hex), sorted and concatenated.
fn verification_code(model: &Model, files: &[usize]) -> String {
    let mut sha1s: Vec<&str> = files.iter().map(|&i| model.files[i].sha1.as_str()).collect();
    sha1s.sort_unstable();
    super::sha1_hex(sha1s.concat().as_bytes())
}
