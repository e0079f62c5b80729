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
    // The framework's key → Ferry's, for the outputs that name it.
    let mut moved: BTreeMap<String, String> = BTreeMap::new();
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
        let old_key = key.to_string();
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
        moved.insert(old_key.clone(), key.clone());
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
    // An output naming an archive's key (a layer's `<Layer>LambdaLayerS3Key`, also exported)
    // names where it is now: the framework's key is an object nothing uploads.
    if let Some(outputs) = template.get_mut("Outputs").and_then(Value::as_object_mut) {
        for output in outputs.values_mut() {
            if let Some(new) = output
                .get("Value")
                .and_then(Value::as_str)
                .and_then(|v| moved.get(v))
            {
                output["Value"] = json!(new);
            }
        }
    }
    rename_ids(template, &renames);
    stable_deployment_ids(template);
    if !artifacts.is_empty() {
        ferry_package::add_bucket_parameter(template).map_err(|e| ServerlessError::Template {
            service: service.to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(artifacts)
}

/// Gives each API deployment the framework names by the time of its compile
/// (`ApiGatewayDeployment1796635695272`: a new logical id on every compile, so that each deploy
/// makes a new deployment of the API) an id made from the template instead: the same compile
/// gives the same template, which a deploy then skips, and any change to the template (a new
/// route, new code) still gives a new id, so a new deployment of the API as the framework means
/// it. Only the deployment of an API the template itself defines (its `RestApiId` or `ApiId` a
/// `Ref` to a resource of the template): an API another stack shares (`provider.apiGateway.
/// restApiId`) may change there (an authorizer, a gateway response), which only a new
/// deployment from this stack publishes, so that one keeps the framework's id.
fn stable_deployment_ids(template: &mut Value) {
    const DEPLOYMENTS: [&str; 2] = [
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGatewayV2::Deployment",
    ];
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return;
    };
    let own_api = |r: &Value| {
        ["RestApiId", "ApiId"].iter().any(|p| {
            r.pointer(&format!("/Properties/{p}/Ref"))
                .and_then(Value::as_str)
                .is_some_and(|api| resources.contains_key(api))
        })
    };
    // (id, its stem): an id ending in a run of 10 or more digits, the time in milliseconds.
    let mut timed: Vec<(String, String)> = resources
        .iter()
        .filter(|(_, r)| {
            r.get("Type")
                .and_then(Value::as_str)
                .is_some_and(|t| DEPLOYMENTS.contains(&t))
                && own_api(r)
        })
        .filter_map(|(id, _)| {
            let stem = id.trim_end_matches(|c: char| c.is_ascii_digit());
            (id.len() - stem.len() >= 10 && !stem.is_empty())
                .then(|| (id.clone(), stem.to_string()))
        })
        .collect();
    // A stem two of them share, or one another resource has as its id, is left as it is.
    let stems: Vec<String> = timed.iter().map(|(_, stem)| stem.clone()).collect();
    timed.retain(|(_, stem)| {
        !resources.contains_key(stem) && stems.iter().filter(|s| *s == stem).count() == 1
    });
    if timed.is_empty() {
        return;
    }
    // Each named by its stem alone while the template is hashed: the hash then covers all
    // the rest, as the framework compiled it.
    rename_ids(
        template,
        &timed
            .iter()
            .map(|(id, stem)| (id.clone(), stem.clone()))
            .collect::<Vec<_>>(),
    );
    let digest = ferry_package::sha256_hex(
        serde_json::to_string(template)
            .expect("JSON values serialize")
            .as_bytes(),
    );
    let renames: Vec<(String, String)> = timed
        .into_iter()
        .map(|(_, stem)| (stem.clone(), format!("{stem}{}", &digest[..16])))
        .collect();
    rename_ids(template, &renames);
}

/// Renames resources of `template` (old id, new id), and every reference to them.
fn rename_ids(template: &mut Value, renames: &[(String, String)]) {
    if let Some(resources) = template.get_mut("Resources").and_then(Value::as_object_mut) {
        for (old, new) in renames {
            if let Some(v) = resources.remove(old) {
                resources.insert(new.clone(), v);
            }
        }
    }
    for (old, new) in renames {
        rename_refs(template, old, new);
    }
}

/// Every reference to resource `old` names `new` instead: a string equal to it (a `Ref`, a
/// `DependsOn`, a `GetAtt`'s target in its list form), a `GetAtt` in its string form
/// (`old.Attr`), and `${old}` or `${old.Attr}` inside an `Fn::Sub` string.
fn rename_refs(v: &mut Value, old: &str, new: &str) {
    match v {
        Value::String(s) if s == old => *s = new.to_string(),
        Value::Array(items) => items.iter_mut().for_each(|i| rename_refs(i, old, new)),
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value) {
                    ("Fn::Sub", Value::String(text)) => *text = sub_renamed(text, old, new),
                    ("Fn::Sub", Value::Array(args)) => {
                        if let Some(Value::String(text)) = args.first_mut() {
                            *text = sub_renamed(text, old, new);
                        }
                        args.iter_mut()
                            .skip(1)
                            .for_each(|a| rename_refs(a, old, new));
                    }
                    ("Fn::GetAtt", Value::String(s)) if s.starts_with(&format!("{old}.")) => {
                        *s = format!("{new}{}", &s[old.len()..]);
                    }
                    (_, value) => rename_refs(value, old, new),
                }
            }
        }
        _ => {}
    }
}

/// An `Fn::Sub` string with `${old}` and `${old.Attr}` naming `new`.
fn sub_renamed(text: &str, old: &str, new: &str) -> String {
    text.replace(&format!("${{{old}}}"), &format!("${{{new}}}"))
        .replace(&format!("${{{old}."), &format!("${{{new}."))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(at: &str, path: &str) -> Value {
        let id = format!("ApiGatewayDeployment{at}");
        json!({
            "Resources": {
                "ApiGatewayRestApi": {"Type": "AWS::ApiGateway::RestApi"},
                "ApiGatewayMethodGet": {"Type": "AWS::ApiGateway::Method", "Properties": {"Path": path}},
                id.clone(): {
                    "Type": "AWS::ApiGateway::Deployment",
                    "Properties": {"RestApiId": {"Ref": "ApiGatewayRestApi"}, "StageName": "dev"},
                    "DependsOn": ["ApiGatewayMethodGet"]
                }
            },
            "Outputs": {
                "Deployment": {"Value": {"Ref": id.clone()}},
                "Url": {"Value": {"Fn::Sub": format!("https://x/${{{id}}}/${{{id}.DeploymentId}}")}},
                "Attr": {"Value": {"Fn::GetAtt": format!("{id}.DeploymentId")}}
            }
        })
    }

    /// Two compiles of the same service, a minute apart, give one template (before, the
    /// deployment's id held the compile's time, and every check of a service with an `http`
    /// event updated its stack); a change elsewhere in the template gives a new id.
    #[test]
    fn an_api_deployment_is_named_by_the_template_not_the_time() {
        let mut first = compiled("1796635695272", "/a");
        let mut again = compiled("1796635763883", "/a");
        let mut changed = compiled("1796635763883", "/b");
        for t in [&mut first, &mut again, &mut changed] {
            stable_deployment_ids(t);
        }
        assert_eq!(first, again);
        let ids = |t: &Value| -> Vec<String> {
            t["Resources"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with("ApiGatewayDeployment"))
                .cloned()
                .collect()
        };
        let [id] = &ids(&first)[..] else {
            panic!("one deployment: {first:#}")
        };
        assert_eq!(id.len(), "ApiGatewayDeployment".len() + 16);
        assert_eq!(first["Outputs"]["Deployment"]["Value"]["Ref"], json!(id));
        // Inside an Fn::Sub and a GetAtt's string form too (a review's find: they kept the old
        // name, which no resource had any more).
        assert_eq!(
            first["Outputs"]["Url"]["Value"]["Fn::Sub"],
            json!(format!("https://x/${{{id}}}/${{{id}.DeploymentId}}"))
        );
        assert_eq!(
            first["Outputs"]["Attr"]["Value"]["Fn::GetAtt"],
            json!(format!("{id}.DeploymentId"))
        );
        assert_ne!(ids(&changed), ids(&first));
        // The deployment of an API another stack defines keeps the framework's id: a change
        // there reaches the stage only through a new deployment from this stack.
        let mut shared = compiled("1796635695272", "/a");
        shared["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("ApiGatewayRestApi");
        shared["Resources"]["ApiGatewayDeployment1796635695272"]["Properties"]["RestApiId"] =
            json!("abc123");
        let before = shared.clone();
        stable_deployment_ids(&mut shared);
        assert_eq!(shared, before);
        // Not a deployment, or no time in its id: as it was.
        let mut other = json!({"Resources": {
            "Thing1796635695272": {"Type": "AWS::SNS::Topic"},
            "ApiGatewayDeployment": {"Type": "AWS::ApiGateway::Deployment"}
        }});
        let before = other.clone();
        stable_deployment_ids(&mut other);
        assert_eq!(other, before);
    }
}
