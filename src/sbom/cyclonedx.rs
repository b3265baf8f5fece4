//! CycloneDX 1.5 JSON.
//!
//! The image is `metadata.component` (type `container`, bom-ref `image`). Components: the crates
//! (`application` for the root, `library` otherwise), the Debian packages of bundled files
//! (`library`, with the files as evidence occurrences), and the files (`file`, SHA-256). The
//! dependency graph holds the image (on its root crates, top crates and Debian packages) and every
//! crate, an empty `dependsOn` meaning "depends on nothing", as the spec asks; Debian packages'
//! own dependencies are unknown, so they have no entry. What a purl cannot say about a crate's
//! source is the property `scratchpack:source` (`local`, `git`, `registry`…).

use serde_json::{json, Value};

use super::{Model, Origin, TOOL_NAME, TOOL_VERSION};

const IMAGE: &str = "image";

fn property(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

pub(super) fn document(model: &Model) -> Vec<u8> {
    let mut components = Vec::new();
    let mut dependencies = Vec::new();

    for krate in &model.crates {
        let mut component = json!({
            "type": if krate.root { "application" } else { "library" },
            "bom-ref": krate.id,
            "name": krate.name,
            "version": krate.version,
            "purl": krate.purl,
        });
        if krate.origin != Origin::CratesIo {
            component["properties"] = json!([property("scratchpack:source", krate.origin.label())]);
        }
        components.push(component);
        let mut depends_on: Vec<&str> = krate.dependencies.iter().map(|&d| model.crates[d].id.as_str()).collect();
        depends_on.sort_unstable();
        dependencies.push(json!({ "ref": krate.id, "dependsOn": depends_on }));
    }

    for deb in &model.debs {
        let occurrences: Vec<Value> = deb.files.iter().map(|&f| json!({ "location": model.files[f].path })).collect();
        components.push(json!({
            "type": "library",
            "bom-ref": deb.id,
            "name": deb.package.name,
            "version": deb.package.version,
            "purl": deb.purl,
            "evidence": { "occurrences": occurrences },
        }));
    }

    for file in &model.files {
        let mut component = json!({
            "type": "file",
            "bom-ref": file.id,
            "name": file.path,
            "hashes": [{ "alg": "SHA-256", "content": file.sha256.hex() }],
        });
        let description = match (&file.comment, file.binary && !model.audited) {
            (Some(comment), _) => Some(comment.clone()),
            (None, true) => Some("the program; it carries no cargo-auditable data, so the crates in it are not listed".to_string()),
            (None, false) => None,
        };
        if let Some(description) = description {
            component["description"] = json!(description);
        }
        if let Some(size) = file.size {
            component["properties"] = json!([property("scratchpack:size", &size.to_string())]);
        }
        components.push(component);
    }

    let mut image_depends: Vec<&str> = model.top_crates().into_iter().map(|i| model.crates[i].id.as_str()).collect();
    image_depends.extend(model.debs.iter().map(|d| d.id.as_str()));
    image_depends.sort_unstable();
    dependencies.push(json!({ "ref": IMAGE, "dependsOn": image_depends }));

    let mut image = json!({
        "type": "container",
        "bom-ref": IMAGE,
        "name": model.name,
        "properties": [property("scratchpack:platform", &model.platform.to_string())],
    });
    if let Some(version) = model.version {
        image["version"] = json!(version);
    }

    components.sort_by(|a, b| a["bom-ref"].as_str().cmp(&b["bom-ref"].as_str()));
    dependencies.sort_by(|a, b| a["ref"].as_str().cmp(&b["ref"].as_str()));

    let mut document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": model.created,
            "tools": { "components": [{ "type": "application", "name": TOOL_NAME, "version": TOOL_VERSION }] },
            "component": image,
        },
        "components": components,
        "dependencies": dependencies,
    });
    document["serialNumber"] = json!(serial_number(&super::content_hash(&document)));
    super::to_bytes(document)
}

/// `urn:uuid:` and a version-5-shaped UUID made of the first 16 bytes of `hash` (RFC 4122 version
/// and variant bits set), so the same document always gets the same serial number.
fn serial_number(hash: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}
