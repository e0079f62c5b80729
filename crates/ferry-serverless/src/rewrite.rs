//! The compiled template, pointed at Ferry's content-addressed archives.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_package::{ArtifactFormat, BUCKET_PARAMETER, PackagedArtifact};
use serde_json::{Value, json};

use crate::ServerlessError;

/// Code properties the framework writes: (resource type, property).
const CODE: &[(&str, &str)] = &[
    ("AWS::Lambda::Function", "Code"),
    ("AWS::Lambda::LayerVersion", "Content"),
];

/// Points every function and layer of `template` (compiled into `package_dir`) at its archive,
/// zipped again reproducibly into the store under `out` with keys `<prefix>/<sha256>.zip`;
/// updates the versions' `CodeSha256` and logical ids to match; declares the bucket parameter.
/// Returns the archives, in resource order.
pub fn rewrite(
    template: &mut Value,
    package_dir: &Path,
    out: &Path,
    prefix: &str,
    service: &str,
    on_step: &dyn Fn(&str),
) -> Result<Vec<PackagedArtifact>, ServerlessError> {
    let bad = |message: String| ServerlessError::Template {
        service: service.to_string(),
        message,
    };
    let resources = template
        .get_mut("Resources")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| bad("it has no Resources mapping".into()))?;

    // Archive file name → what it became (several functions may share one).
    let mut zipped: BTreeMap<String, Zipped> = BTreeMap::new();
    let mut artifacts = Vec::new();
    // Function logical id → its archive's SHA-256 as Lambda's `CodeSha256` (base64).
    let mut code_of: BTreeMap<String, String> = BTreeMap::new();
    for (id, r) in resources.iter_mut() {
        let ty = r.get("Type").and_then(Value::as_str).unwrap_or_default();
        let Some((_, prop)) = CODE.iter().find(|(t, _)| *t == ty) else {
            continue;
        };
        let Some(key) = r
            .pointer(&format!("/Properties/{prop}/S3Key"))
            .and_then(Value::as_str)
        else {
            continue; // inline code or an image: nothing to store
        };
        let archive = key.rsplit('/').next().unwrap_or(key).to_string();
        let (sha, size, files) = match zipped.get(&archive) {
            Some(z) => z.clone(),
            None => {
                let (z, withheld) = rezip(&package_dir.join(&archive), out, service, id, &archive)?;
                if !withheld.is_empty() {
                    on_step(&format!(
                        "left out of {archive} {}",
                        ferry_package::withheld_summary(&withheld)
                    ));
                }
                zipped.insert(archive.clone(), z.clone());
                z
            }
        };
        let key = format!("{prefix}/{sha}.zip");
        r["Properties"][*prop] = json!({
            "S3Bucket": { "Ref": BUCKET_PARAMETER },
            "S3Key": key,
        });
        code_of.insert(
            id.clone(),
            ferry_package::sha256_base64(&sha).expect("an archive's hash is hex"),
        );
        artifacts.push(PackagedArtifact {
            resource: id.clone(),
            property: prop.to_string(),
            format: ArtifactFormat::Zip,
            source: archive,
            key,
            sha256: sha,
            size,
            files,
        });
    }

    // Versions: the code hash of the new archive, and a logical id that follows it (the
    // framework's id hashes its own archive, which differs on every run).
    let mut renames: Vec<(String, String)> = Vec::new();
    for (id, r) in resources.iter_mut() {
        if r.get("Type").and_then(Value::as_str) != Some("AWS::Lambda::Version") {
            continue;
        }
        let Some(function) = r
            .pointer("/Properties/FunctionName/Ref")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let Some(code) = code_of.get(function) else {
            continue;
        };
        r["Properties"]["CodeSha256"] = json!(code);
        if let Some(at) = id.find("LambdaVersion") {
            let stem = &id[..at + "LambdaVersion".len()];
            let props = serde_json::to_string(&r["Properties"]).expect("JSON values serialize");
            let digest = ferry_package::sha256_hex(props.as_bytes());
            renames.push((id.clone(), format!("{stem}{}", &digest[..32])));
        }
    }
    for (old, new) in &renames {
        if let Some(v) = resources.remove(old) {
            resources.insert(new.clone(), v);
        }
    }
    for (old, new) in &renames {
        rename_refs(template, old, new);
    }
    if !artifacts.is_empty() {
        ferry_package::add_bucket_parameter(template).map_err(|e| ServerlessError::Template {
            service: service.to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(artifacts)
}

/// Every string equal to `old` (a `Ref`, a `DependsOn`, a `GetAtt` target) becomes `new`.
fn rename_refs(v: &mut Value, old: &str, new: &str) {
    match v {
        Value::String(s) if s == old => *s = new.to_string(),
        Value::Array(items) => items.iter_mut().for_each(|i| rename_refs(i, old, new)),
        Value::Object(map) => map.values_mut().for_each(|i| rename_refs(i, old, new)),
        _ => {}
    }
}

/// What an archive became: (sha256, size, files).
type Zipped = (String, u64, usize);

/// Unpacks `archive` and zips its files again as Ferry zips, and the credential files left out.
fn rezip(
    archive: &Path,
    out: &Path,
    service: &str,
    resource: &str,
    name: &str,
) -> Result<(Zipped, Vec<String>), ServerlessError> {
    let bad = |message: String| ServerlessError::BadArchive {
        service: service.to_string(),
        archive: name.to_string(),
        message,
    };
    let file = std::fs::File::open(archive).map_err(|_| ServerlessError::MissingArchive {
        service: service.to_string(),
        resource: resource.to_string(),
        archive: name.to_string(),
    })?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let unpacked = tempfile::tempdir_in(out).map_err(|source| ServerlessError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    // `extract` refuses names that climb out of the folder, and keeps Unix modes.
    zip.extract(unpacked.path())
        .map_err(|e| bad(e.to_string()))?;
    let (written, withheld) =
        ferry_package::store_folder(out, unpacked.path()).map_err(|e| match e {
            ferry_package::PackageError::Unpacked { source } => ServerlessError::Rezip {
                service: service.to_string(),
                archive: name.to_string(),
                message: source.to_string(),
            },
            e => e.into(),
        })?;
    Ok(((written.sha256, written.size, written.entries), withheld))
}
