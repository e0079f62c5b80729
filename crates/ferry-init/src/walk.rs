//! Finding candidate service folders and the packages of npm/yarn workspaces or lerna.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use ferry_manifest::{SAM_TRANSFORM, ServiceKind};
use globset::{GlobBuilder, GlobSetBuilder};

/// Folders never searched, for services nor for what they build from: tools' output and
/// installed dependencies; hidden ones (`.serverless`, `.aws-sam`, `.venv`) too, see
/// [`skipped_dir`].
const SKIPPED: &[&str] = &[
    "node_modules",
    "target",
    "cdk.out",
    "__pycache__",
    "venv",
    "site-packages",
    "dist",
    "coverage",
];

/// Folders of tests: a service found in one is a fixture of them.
const TEST_FOLDERS: &[&str] = &[
    "test",
    "tests",
    "__tests__",
    "fixtures",
    "__fixtures__",
    "integrationTests",
    "integration-tests",
    "e2e",
];

/// Whether `init` leaves the folder `name` unsearched: hidden, or in [`SKIPPED`].
pub(crate) fn skipped_dir(name: &str) -> bool {
    name.starts_with('.') || SKIPPED.contains(&name)
}

/// How deep the search goes below the root.
const MAX_DEPTH: usize = 8;

/// Serverless Framework configurations, in the framework's order of preference.
pub(crate) const SERVERLESS_CONFIGS: &[&str] = &[
    "serverless.yml",
    "serverless.yaml",
    "serverless.json",
    "serverless.ts",
    "serverless.js",
    "serverless.cjs",
    "serverless.mjs",
];
/// Template names preferred when a folder holds several templates.
const PREFERRED_TEMPLATES: &[&str] = &[
    "template.yaml",
    "template.yml",
    "template.json",
    "cloudformation.yaml",
    "cloudformation.yml",
];
const TEMPLATE_EXTENSIONS: &[&str] = &["yaml", "yml", "json", "template"];

pub(crate) struct Candidate {
    pub dir: String,
    pub kind: ServiceKind,
    pub file: String,
    pub notes: Vec<String>,
    /// The command that builds what its template names and the repository does not hold, and
    /// the comment saying why (see [`crate::layout`]).
    pub build: Option<(Vec<String>, String)>,
    /// Paths outside its folder that it packages (a nested template other services share),
    /// each with why: its `inputs` (see [`crate::layout`]).
    pub inputs: BTreeMap<String, String>,
}

pub(crate) struct WorkspacePackages {
    /// Package name → folder.
    pub packages: BTreeMap<String, String>,
    /// Every folder the workspace globs match that holds a `package.json`, named or not: its
    /// dependencies are installed from the root, never on their own.
    pub members: BTreeSet<String>,
    pub notes: Vec<String>,
}

/// A JSON file (a `package.json`); `None` when missing or not JSON.
pub(crate) fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// The packages of the root `package.json`'s `workspaces` (npm, yarn), `pnpm-workspace.yaml`
/// and `lerna.json`.
pub(crate) fn workspace_packages(root: &Path) -> WorkspacePackages {
    let mut globs: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    if let Some(pkg) = read_json(&root.join("package.json")) {
        let ws = pkg.get("workspaces");
        let list = ws.and_then(|w| w.as_array()).or_else(|| {
            ws.and_then(|w| w.get("packages"))
                .and_then(|p| p.as_array())
        });
        globs.extend(
            list.into_iter()
                .flatten()
                .filter_map(|g| g.as_str())
                .map(String::from),
        );
    }
    // pnpm's workspace file (`packages:`; a `!` glob excludes, which Ferry leaves to pnpm).
    let pnpm = fs::read_to_string(root.join("pnpm-workspace.yaml"))
        .ok()
        .and_then(|t| ferry_manifest::yaml::from_str::<serde_yaml_ng::Value>(&t).ok());
    let pnpm_globs: Vec<String> = pnpm
        .as_ref()
        .and_then(|d| d.get("packages"))
        .and_then(|p| p.as_sequence())
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str())
        .filter(|g| !g.starts_with('!'))
        .map(String::from)
        .collect();
    if let Some(lerna) = read_json(&root.join("lerna.json")) {
        match lerna.get("packages").and_then(|p| p.as_array()) {
            Some(list) => globs.extend(list.iter().filter_map(|g| g.as_str()).map(String::from)),
            // Lerna takes pnpm's workspace when it has one, else `packages/*`.
            None if pnpm_globs.is_empty() => globs.push("packages/*".into()),
            None => {}
        }
    }
    globs.extend(pnpm_globs);
    let mut set = GlobSetBuilder::new();
    for g in &globs {
        match GlobBuilder::new(g.trim_end_matches('/'))
            .literal_separator(true)
            .build()
        {
            Ok(glob) => {
                set.add(glob);
            }
            Err(e) => notes.push(format!(
                "workspace glob `{g}` does not parse ({e}): ignored"
            )),
        }
    }
    let set = set.build().unwrap_or_default();
    let mut packages = BTreeMap::new();
    let mut members = BTreeSet::new();
    if !globs.is_empty() {
        // An unreadable folder is noted by the service search, which walks the same tree.
        let mut unread = Vec::new();
        visit(
            root,
            "",
            0,
            &mut |rel, _files| {
                if !set.is_match(rel) || !root.join(rel).join("package.json").is_file() {
                    return;
                }
                members.insert(rel.to_string());
                if let Some(name) = read_json(&root.join(rel).join("package.json"))
                    .and_then(|p| p.get("name").and_then(|n| n.as_str()).map(String::from))
                {
                    packages.insert(name, rel.to_string());
                }
            },
            &mut unread,
        );
    }
    WorkspacePackages {
        packages,
        members,
        notes,
    }
}

/// Calls `f` with every folder under `root` (repository relative, `""` for the root) and its
/// file names, depth first in name order, skipping tools' output and hidden folders; returns
/// the first folder left unsearched for lying deeper than [`MAX_DEPTH`]. A folder that cannot
/// be listed is noted in `unread` (with why), never skipped without a word.
fn visit(
    root: &Path,
    rel: &str,
    depth: usize,
    f: &mut dyn FnMut(&str, &[String]),
    unread: &mut Vec<String>,
) -> Option<String> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            let at = if rel.is_empty() { "." } else { rel };
            unread.push(format!(
                "{at}: a folder that could not be listed ({e}), so not searched; make it readable and run init again, or add its services to ferry.toml by hand"
            ));
            return None;
        }
    };
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Ok(ty) = e.file_type() else { continue };
        if ty.is_dir() {
            if !skipped_dir(&name) {
                subdirs.push(name);
            }
        } else if ty.is_file() {
            files.push(name);
        }
    }
    files.sort();
    subdirs.sort();
    f(rel, &files);
    let child = |d: &str| {
        if rel.is_empty() {
            d.to_string()
        } else {
            format!("{rel}/{d}")
        }
    };
    if depth >= MAX_DEPTH {
        return subdirs.first().map(|d| child(d));
    }
    let mut cut = None;
    for d in subdirs {
        let deeper = visit(root, &child(&d), depth + 1, f, unread);
        cut = cut.or(deeper);
    }
    cut
}

/// What [`candidates`] finds.
pub(crate) struct Walked {
    pub candidates: Vec<Candidate>,
    pub notes: Vec<String>,
    /// Folders holding an AWS CDK app (`cdk.json`).
    pub cdk: Vec<String>,
    /// What each SAM template found reaches on disk (`ferry_package::reached`), by its
    /// repository-relative path.
    pub reach: BTreeMap<String, Vec<ferry_package::Reached>>,
    /// CloudFormation templates at the repository's root, which is no service folder.
    pub root_templates: Vec<String>,
}

/// The note on a folder holding an AWS CDK app (after the folder).
const CDK_NOTE: &str = ": an AWS CDK app (cdk.json), which Ferry does not deploy: CDK synthesizes templates whose assets only its own tooling publishes; left out";

/// Whether a Serverless Framework configuration's name is a program's (`serverless.ts`, …).
pub(crate) fn is_program(config: &str) -> bool {
    [".ts", ".js", ".cjs", ".mjs"]
        .iter()
        .any(|e| config.ends_with(e))
}

/// Where each `word` (`service`, `region`) of a configuration program stands (not a part of a
/// longer name, its opening quote included), and what follows it, its closing quote and spaces
/// taken off: `: 'orders', …` after a key.
pub(crate) fn after_words<'t>(
    text: &'t str,
    word: &'t str,
) -> impl Iterator<Item = (usize, &'t str)> {
    text.match_indices(word).filter_map(move |(at, _)| {
        let before = text[..at].chars().next_back();
        (!before.is_some_and(|c| c.is_alphanumeric() || c == '_')).then(|| {
            let start = if matches!(before, Some('"' | '\'')) {
                at - 1
            } else {
                at
            };
            (
                start,
                text[at + word.len()..]
                    .trim_start_matches(['"', '\''])
                    .trim_start(),
            )
        })
    })
}

/// Whether a configuration program names its service: a `service` key (`service: 'orders'`,
/// `"service": …`, `service,` shorthand).
fn names_a_service(text: &str) -> bool {
    after_words(text, "service").any(|(_, after)| {
        after.starts_with(':') || after.starts_with(',') || after.starts_with('}')
    })
}

/// Whether `text` is a CloudFormation template: it says so, or it declares resources of AWS
/// types.
fn is_cloudformation(text: &str) -> bool {
    text.contains("AWSTemplateFormatVersion")
        || (text.contains("Resources")
            && (text.contains("Type: AWS::")
                || text.contains("Type: \"AWS::")
                || text.contains("\"Type\": \"AWS::")
                || text.contains("\"Type\":\"AWS::")
                || text.contains("Type: 'AWS::")))
}

/// Whether the first 64 KB of a file (one too large to read whole) read like a CloudFormation
/// template.
fn starts_like_a_template(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .is_ok()
        && is_cloudformation(&String::from_utf8_lossy(&head))
}

/// Tools' own files are never templates (`package-tracking.yaml` may be one).
fn tools_file(f: &str) -> bool {
    matches!(
        f,
        "package.json" | "package-lock.json" | "buildspec.yml" | "buildspec.yaml"
    ) || f.starts_with("samconfig.")
        || (f.starts_with("tsconfig") && f.ends_with(".json"))
}

fn has_template_extension(f: &str) -> bool {
    Path::new(f)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| TEMPLATE_EXTENSIONS.contains(&e))
}

/// Every folder that holds a service, with its kind and file; notes on what was left out.
pub(crate) fn candidates(root: &Path) -> Walked {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut cdk = Vec::new();
    let mut root_templates = Vec::new();
    let mut unread = Vec::new();
    // Amplify CLI backends (`amplify/backend` with its backend-config.json): their templates
    // are the nested stacks `amplify push` deploys, none a service.
    let mut amplify: Vec<String> = Vec::new();
    let cut = visit(
        root,
        "",
        0,
        &mut |rel, files| {
            if amplify.iter().any(|a| rel.starts_with(&format!("{a}/"))) {
                return;
            }
            if (rel == "amplify/backend" || rel.ends_with("/amplify/backend"))
                && files.iter().any(|f| f == "backend-config.json")
            {
                notes.push(format!(
                    "{rel}: an Amplify CLI backend (backend-config.json), whose templates are the nested stacks `amplify push` deploys with the parameters it keeps beside them, not services: left out"
                ));
                amplify.push(rel.to_string());
                return;
            }
            // Ferry's paths are `/`-separated: a name holding `\` cannot be told from a path.
            if rel.contains('\\') {
                notes.push(format!(
                "{rel}: a folder name holding `\\`, which Ferry's `/`-separated paths cannot name: left out; rename it"
            ));
                return;
            }
            if files.iter().any(|f| f == "cdk.json") {
                let at = if rel.is_empty() { "." } else { rel };
                notes.push(format!("{at}{CDK_NOTE}"));
                cdk.push(at.to_string());
            }
            if rel.is_empty() {
                // A service is a folder of its own: the root holds the project.
                let at_root: Vec<&String> = files
                    .iter()
                    .filter(|f| SERVERLESS_CONFIGS.contains(&f.as_str()))
                    .collect();
                if !at_root.is_empty() {
                    notes.push(format!(
                    "{} at the repository root: Ferry deploys services from folders of their own (the root holds ferry.toml); move it into one and run init again",
                    at_root.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                ));
                }
                // Templates at the root: an umbrella nesting the services' templates (a
                // `master.yaml`), else a service to move into a folder (`layout::settle`).
                root_templates.extend(
                    files
                        .iter()
                        .filter(|f| !tools_file(f) && has_template_extension(f))
                        .filter(|f| {
                            let path = root.join(f);
                            fs::metadata(&path)
                                .is_ok_and(|m| m.len() <= ferry_package::MAX_TEMPLATE as u64)
                                && fs::read_to_string(&path).is_ok_and(|t| is_cloudformation(&t))
                        })
                        .cloned(),
                );
                return;
            }
            if let Some(config) = SERVERLESS_CONFIGS
                .iter()
                .find(|c| files.iter().any(|f| f == *c))
            {
                let text = match fs::read_to_string(root.join(rel).join(config)) {
                    Ok(text) => Some(text),
                    Err(e) => {
                        // Still a service (the framework reads it when it deploys); what init
                        // would learn from it is not known.
                        notes.push(format!(
                            "{rel}/{config}: could not be read ({e}); taken as a Serverless Framework service without looking into it: check its provider and stack name"
                        ));
                        None
                    }
                };
                // A program named like a configuration that holds none (types, helpers): a
                // configuration names its `service`.
                if is_program(config) && text.as_deref().is_some_and(|t| !names_a_service(t)) {
                    notes.push(format!(
                    "{rel}/{config}: a program that names no `service`, so no Serverless configuration: left out"
                ));
                    return;
                }
                // The framework deploys to other clouds too (OpenWhisk, Google, Azure): only an AWS
                // service is Ferry's.
                // One read from a file (`provider: ${file(./provider.yml)}`) is that file's; the
                // region and stack name it gives are not read.
                let provider = text.as_deref().and_then(serverless_provider).map(|p| {
                    match provider_in_file(root, &root.join(rel), &p) {
                        Some((name, more)) => {
                            if more {
                                notes.push(format!(
                                    "{rel}/{config}: its provider comes from `{p}`, which gives a region or stackName Ferry does not read: check the region and stack name init writes for it against what that gives"
                                ));
                            }
                            name
                        }
                        None => p,
                    }
                });
                match provider {
                    // One given by a variable (a name from `${self:…}`, a file not read) is taken
                    // for AWS, as most are: leaving the service out would hide it. What it holds
                    // (a region, a stack name) is not read.
                    Some(provider) if provider.contains("${") => notes.push(format!(
                        "{rel}/{config}: its provider is `{provider}`, which Ferry does not read: taken for AWS; check the region and stack name init writes for it against what that gives"
                    )),
                    Some(provider) if !provider.eq_ignore_ascii_case("aws") => {
                        notes.push(format!(
                            "{rel}/{config}: a Serverless Framework service for provider `{provider}`, not AWS: left out"
                        ));
                        return;
                    }
                    _ => {}
                }
                out.push(Candidate {
                    dir: rel.to_string(),
                    kind: ServiceKind::Serverless,
                    file: config.to_string(),
                    notes: Vec::new(),
                    build: None,
                    inputs: BTreeMap::new(),
                });
                return;
            }
            // Each file named like a template read once: larger than CloudFormation takes (1 MB)
            // is data, not a template; not UTF-8 is noted (CloudFormation takes UTF-8 only).
            let mut templates: Vec<(String, bool)> = Vec::new();
            for f in files
                .iter()
                .filter(|f| !tools_file(f) && has_template_extension(f))
            {
                let path = root.join(rel).join(f);
                let bytes = match fs::metadata(&path) {
                    Ok(m) if m.len() > ferry_package::MAX_TEMPLATE as u64 => {
                        // Most such files are data; one that starts like a template is said.
                        if starts_like_a_template(&path) {
                            notes.push(format!(
                            "{rel}/{f}: reads like a CloudFormation template but is {} bytes, more than CloudFormation takes (1 MB): left out; split it (nested stacks) and run init again",
                            m.len()
                        ));
                        }
                        continue;
                    }
                    Ok(_) => fs::read(&path),
                    Err(e) => Err(e),
                };
                let bytes = match bytes {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        notes.push(format!(
                        "{rel}/{f}: could not be read ({e}), so not looked at as a template; make it readable and run init again"
                    ));
                        continue;
                    }
                };
                let Ok(text) = String::from_utf8(bytes) else {
                    notes.push(format!(
                    "{rel}/{f}: not UTF-8 text, so not read (CloudFormation takes UTF-8 templates only)"
                ));
                    continue;
                };
                if !is_cloudformation(&text) {
                    continue;
                }
                // What the template says, not what its text mentions: the transform named in
                // a description or a string is no transform, and a skeleton with no
                // resources (`Resources:` left empty) is nothing to deploy. A template that
                // does not parse is taken as its text reads (`validate` then says why).
                match ferry_package::parse_template(&text) {
                    Ok(parsed) => {
                        let empty = parsed
                            .get("Resources")
                            .is_none_or(|r| r.as_object().is_none_or(|m| m.is_empty()));
                        if empty {
                            notes.push(format!(
                                "{rel}/{f}: a template with no resources: left out (CloudFormation refuses a stack of none)"
                            ));
                            continue;
                        }
                        // A delivery pipeline (CodePipeline, and what serves it alone: its
                        // builds, roles, artifact bucket, triggers) deploys the stacks itself:
                        // one per stage would make as many pipelines, each deploying the same
                        // stacks beside Ferry's deploys. A template with anything else is an
                        // application's, pipeline or not.
                        let types: Vec<&str> = parsed
                            .get("Resources")
                            .and_then(|r| r.as_object())
                            .into_iter()
                            .flat_map(|r| r.values())
                            .filter_map(|x| x.get("Type").and_then(|t| t.as_str()))
                            .collect();
                        let delivery = |t: &str| {
                            [
                                "AWS::CodePipeline::",
                                "AWS::CodeBuild::",
                                "AWS::CodeCommit::",
                                "AWS::CodeStarConnections::",
                                "AWS::CodeStarNotifications::",
                                "AWS::IAM::",
                                "AWS::KMS::",
                                "AWS::Logs::",
                                "AWS::Events::Rule",
                                "AWS::CloudTrail::Trail",
                                "AWS::S3::Bucket",
                                "AWS::SNS::",
                            ]
                            .iter()
                            .any(|p| t.starts_with(p))
                        };
                        let pipeline = types.contains(&"AWS::CodePipeline::Pipeline")
                            && types.iter().all(|t| delivery(t));
                        if pipeline {
                            notes.push(format!(
                                "{rel}/{f}: a delivery pipeline (AWS::CodePipeline::Pipeline), which deploys the stacks itself: left out, as each stage would get a pipeline of its own deploying them beside Ferry (Ferry is the pipeline; deploy it by hand once if it is to stay)"
                            ));
                            continue;
                        }
                        templates.push((f.clone(), ferry_manifest::is_sam(&parsed)));
                    }
                    Err(_) => templates.push((f.clone(), text.contains(SAM_TRANSFORM))),
                }
            }
            if templates.is_empty() {
                return;
            }
            // A template another template of the folder nests (an application's `Location`) is a
            // part of that one, not a candidate for the service's own.
            let mut own_notes = Vec::new();
            if templates.len() > 1 {
                // A template packaged from another of the folder and committed (`sam package
                // --output-template-file output.yaml`): the same resources, the code by its S3
                // address where the other names a local path. A copy, not a service.
                let shape = |f: &str| {
                    let parsed = ferry_package::read_template(&root.join(format!("{rel}/{f}")));
                    let resources = parsed.ok()?.get("Resources")?.as_object()?.clone();
                    let ids: Vec<String> = resources.keys().cloned().collect();
                    let by_address = serde_json::Value::Object(resources)
                        .to_string()
                        .contains("\"s3://");
                    Some((ids, by_address))
                };
                // (file, its resources' ids and whether its code is by S3 address)
                let shapes: Vec<(String, Option<_>)> = templates
                    .iter()
                    .map(|(f, _)| (f.clone(), shape(f)))
                    .collect();
                templates.retain(|(f, _)| {
                    let Some(Some((ids, true))) =
                        shapes.iter().find(|(g, _)| g == f).map(|(_, s)| s)
                    else {
                        return true;
                    };
                    // The SAM CLI's own name is the source's, whatever its code says.
                    if matches!(f.as_str(), "template.yaml" | "template.yml") {
                        return true;
                    }
                    let source = shapes.iter().find(|(g, s)| {
                        g != f && s.as_ref().is_some_and(|(i, by)| i == ids && !by)
                    });
                    match source {
                        Some((g, _)) => {
                            own_notes.push(format!(
                                "{rel}/{f}: a packaged copy of {rel}/{g} (the same resources, its code by S3 address): left out, as Ferry packages {g} itself; delete it from the repository, or ignore it in git"
                            ));
                            false
                        }
                        None => true,
                    }
                });
                // A SAM template's, or a CloudFormation template's with resources of its own
                // (one holding only nested stacks is an umbrella: see `layout::settle`).
                let nested: Vec<(String, String)> = templates
                    .iter()
                    .filter(|(f, sam)| *sam || !only_nested_stacks(root, &format!("{rel}/{f}")))
                    .flat_map(|(f, _)| {
                        let of = format!("{rel}/{f}");
                        ferry_package::reached(root, &of)
                            .into_iter()
                            .filter(move |r| r.nested && r.template == of)
                            .map(move |r| (r.path, f.clone()))
                    })
                    .collect();
                templates.retain(|(f, _)| {
                    let path = format!("{rel}/{f}");
                    match nested.iter().find(|(p, by)| *p == path && by != f) {
                        Some((_, by)) => {
                            own_notes.push(format!(
                            "{path}: nested by {rel}/{by} (an application's Location, a stack's TemplateURL), a part of it"
                        ));
                            false
                        }
                        None => true,
                    }
                });
            }
            // SAM first, then the usual names, then by name; of a stack kept in two formats, the
            // one Ferry can read (a YAML source with a preprocessor's tags, such as Rain's, beside
            // the JSON it wrote), else YAML.
            let readable = |f: &str| {
                fs::read_to_string(root.join(rel).join(f))
                    .ok()
                    .is_some_and(|t| ferry_package::parse_template(&t).is_ok())
            };
            templates.sort_by_cached_key(|(f, sam)| {
                let (stem, ext) = f.rsplit_once('.').unwrap_or((f.as_str(), ""));
                (
                    !*sam,
                    PREFERRED_TEMPLATES
                        .iter()
                        .position(|p| p == f)
                        .unwrap_or(usize::MAX),
                    stem.to_string(),
                    !readable(f),
                    TEMPLATE_EXTENSIONS.iter().position(|e| *e == ext),
                )
            });
            let Some((file, sam)) = templates.first().cloned() else {
                // Templates that all nest each other: none is the service's own.
                notes.push(format!(
                    "{rel}: its templates nest each other in a circle: none taken"
                ));
                return;
            };
            if templates.len() > 1 {
                // Several stacks in one folder: each gets a folder of its own where it can.
                let (placed, split_notes) = crate::layout::split(root, rel, &templates);
                notes.append(&mut own_notes);
                notes.extend(split_notes);
                for (dir, file, sam) in placed {
                    out.push(Candidate {
                        dir,
                        kind: if sam {
                            ServiceKind::Sam
                        } else {
                            ServiceKind::Cloudformation
                        },
                        file,
                        notes: Vec::new(),
                        build: None,
                        inputs: BTreeMap::new(),
                    });
                }
                return;
            }
            out.push(Candidate {
                dir: rel.to_string(),
                kind: if sam {
                    ServiceKind::Sam
                } else {
                    ServiceKind::Cloudformation
                },
                file,
                notes: own_notes,
                build: None,
                inputs: BTreeMap::new(),
            });
        },
        &mut unread,
    );
    notes.extend(unread);
    // A template inside a Serverless Framework or SAM service is a part of it (resources it
    // includes with `${file(…)}`, a nested application), not a service of its own.
    let owners: Vec<(String, ServiceKind)> = out
        .iter()
        .filter(|c| matches!(c.kind, ServiceKind::Serverless | ServiceKind::Sam))
        .map(|c| (c.dir.clone(), c.kind))
        .collect();
    if let Some(deep) = cut {
        notes.push(format!(
            "{deep}: more than {MAX_DEPTH} folders below the root, so neither it nor any folder as deep was searched; add such a service to ferry.toml by hand"
        ));
    }
    // A template another one nests (an application's `Location`) inside that one's service
    // folder is a part of it. (One nested from outside is a service's: the nester is an
    // umbrella, see `layout::settle`.)
    // What each SAM template reaches, read once: `layout::settle` places services by it. A
    // CloudFormation template is placed by its functions' and layers' own code paths (`Code:
    // ../src`, written for `aws cloudformation package`), which Ferry zips from inside the
    // service folder, and, when all it holds is nested stacks, is an umbrella by the templates
    // it nests by a local path (`TemplateURL: ./network.yaml`), as by their S3 addresses. One
    // with resources of its own besides is no umbrella: the templates it nests inside its
    // folder are parts of it, as a SAM template's are (`validate` then says it needs `kind =
    // "sam"` to package them).
    let mut cfn_parts: Vec<(String, Vec<ferry_package::Reached>)> = Vec::new();
    let reach: BTreeMap<String, Vec<ferry_package::Reached>> = out
        .iter()
        .filter(|c| c.kind != ServiceKind::Serverless)
        .map(|c| {
            let of = crate::template_path(&c.dir, &c.file);
            let mut paths = ferry_package::reached(root, &of);
            if c.kind == ServiceKind::Cloudformation {
                paths.retain(|r| {
                    r.template == of
                        && (r.nested || matches!(r.property.as_str(), "Code" | "Content"))
                });
                if !only_nested_stacks(root, &of) {
                    let (nested, own): (Vec<_>, Vec<_>) = paths.into_iter().partition(|r| r.nested);
                    cfn_parts.push((of.clone(), nested));
                    paths = own;
                }
            }
            (of, paths)
        })
        .collect();
    let nested: BTreeMap<String, String> = out
        .iter()
        .filter(|c| c.kind == ServiceKind::Sam)
        .map(|c| (crate::template_path(&c.dir, &c.file), c.dir.clone()))
        .map(|(of, dir)| (reach[&of].clone(), of, dir))
        .chain(cfn_parts.into_iter().map(|(of, nested)| {
            let dir = crate::local_deps::parent(&of).to_string();
            (nested, of, dir)
        }))
        .flat_map(|(paths, of, dir)| {
            let inside = format!("{dir}/");
            paths
                .into_iter()
                .filter(|r| r.nested && r.path != of && r.path.starts_with(&inside))
                .map(|r| (r.path, of.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut parts: Vec<String> = Vec::new();
    out.retain(|c| {
        let template = crate::template_path(&c.dir, &c.file);
        let Some(by) = nested.get(&template) else {
            return true;
        };
        notes.push(format!(
            "{template}: nested by {by} (an application's Location, a stack's TemplateURL), a part of it"
        ));
        parts.push(template);
        false
    });
    // What was said of them as templates of a folder of several no longer holds: each placed
    // in a folder of its own, and the folder kept by one of them when none of its templates is
    // a service any more.
    for template in &parts {
        let placed = format!("{template}: one of several templates of ");
        notes.retain(|n| {
            !n.starts_with(&placed) && !n.starts_with(&format!("{template}: reaches as much of "))
        });
        if let Some((folder, _)) = template.rsplit_once('/') {
            let inside = |t: &str| t.rsplit_once('/').is_some_and(|(f, _)| f == folder);
            let any_left = out
                .iter()
                .any(|c| inside(&crate::template_path(&c.dir, &c.file)) || c.dir == folder);
            if !any_left {
                let kept = format!("{folder}: ");
                notes.retain(|n| {
                    !(n.starts_with(&kept) && n.contains(" keeps the folder, which holds "))
                });
            }
        }
    }
    // A template placed in a folder another template was found in (a folder named after it
    // that holds a template of its own), or two placed in one: the one found there, else the
    // first, keeps it.
    let mut keeper: BTreeMap<String, String> = out
        .iter()
        .filter(|c| !c.file.starts_with("../"))
        .map(|c| (c.dir.clone(), crate::template_path(&c.dir, &c.file)))
        .collect();
    out.retain(|c| {
        let template = crate::template_path(&c.dir, &c.file);
        let first = keeper.entry(c.dir.clone()).or_insert_with(|| template.clone());
        if *first == template {
            return true;
        }
        notes.push(format!(
            "{template}: its folder {} is {first}'s: left out (the same stack in another format?); give it a folder of its own",
            c.dir
        ));
        false
    });
    // A service in a tests' folder is a fixture of the tests (swarmion's
    // `integrationTests/assetDetection`, whose test expects its packaging to fail), not one to
    // deploy.
    out.retain(|c| {
        let Some(folder) = c
            .dir
            .split('/')
            .find(|seg| TEST_FOLDERS.iter().any(|t| seg.eq_ignore_ascii_case(t)))
        else {
            return true;
        };
        notes.push(format!(
            "{}: lies in a tests' folder (`{folder}`), so taken for a fixture of the tests: left out; add it to ferry.toml's services by hand if it deploys",
            crate::template_path(&c.dir, &c.file)
        ));
        false
    });
    let sam_templates: Vec<(String, String)> = out
        .iter()
        .filter(|c| c.kind == ServiceKind::Sam)
        .map(|c| (c.dir.clone(), crate::template_path(&c.dir, &c.file)))
        .collect();
    out.retain(|c| {
        // Where the template lies decides, not the folder it was given (one of several
        // templates of a folder inside a service is still a part of that service).
        let template = crate::template_path(&c.dir, &c.file);
        let Some((owner, kind)) = owners
            .iter()
            .find(|(d, _)| template.starts_with(&format!("{d}/")) && template.rsplit_once('/').is_some_and(|(f, _)| f != d))
        else {
            return true;
        };
        // A SAM template with its own SAM configuration, which the SAM service's template
        // reaches by no path, deploys on its own (aws-samples' unicorn workshop: the
        // contracts service's own template.yaml and samconfig.toml below the folder of its
        // domain's template).
        if c.kind == ServiceKind::Sam
            && *kind == ServiceKind::Sam
            && has_samconfig(root, crate::local_deps::parent(&template))
            && !sam_templates.iter().any(|(d, t)| {
                d == owner
                    && reach.get(t).is_some_and(|paths| {
                        paths.iter().any(|r| {
                            template == r.path || template.starts_with(&format!("{}/", r.path))
                        })
                    })
            })
        {
            return true;
        }
        // What was said of it as one of several templates of its folder no longer holds.
        let placed = format!("{template}: one of several templates of ");
        notes.retain(|n| !n.starts_with(&placed));
        notes.push(format!(
            "{template}: a template inside the {kind} service {owner}, taken as a part of it (resources it includes, a nested application), not as a service; give it a service.toml of its own if it deploys on its own"
        ));
        false
    });
    Walked {
        candidates: out,
        notes,
        cdk,
        reach,
        root_templates,
    }
}

/// Whether the folder `dir` (repository-relative) holds a SAM CLI configuration.
fn has_samconfig(root: &Path, dir: &str) -> bool {
    ["samconfig.toml", "samconfig.yaml", "samconfig.yml"]
        .iter()
        .any(|f| root.join(dir).join(f).is_file())
}

/// The `provider` a Serverless Framework configuration names (`provider.name`, or `provider`
/// itself as text in old configurations; in a program, as a literal); `None` when it names none.
fn serverless_provider(config: &str) -> Option<String> {
    // A program (`serverless.ts`) is no YAML mapping: its literal provider is read instead.
    let doc = match ferry_manifest::yaml::from_str::<serde_yaml_ng::Value>(config) {
        Ok(doc) if doc.is_mapping() => doc,
        _ => return program_provider(config),
    };
    let provider = doc.get("provider")?;
    provider
        .get("name")
        .unwrap_or(provider)
        .as_str()
        .map(String::from)
}

/// The file a Serverless variable `${file(path)}` or `${file(path):key}` (the whole of `text`)
/// includes, unquoted, and the key; `None` for any other text, or a path built from a variable.
pub(crate) fn file_include(text: &str) -> Option<(&str, Option<&str>)> {
    let inner = text.trim().strip_prefix("${file(")?.strip_suffix('}')?;
    let (file, key) = inner.split_once(')')?;
    let file = file.trim().trim_matches(['"', '\'']);
    (!file.contains("${")).then(|| (file, key.strip_prefix(':').map(str::trim)))
}

/// What `${file(…):key}` takes of the included document `doc`: the value at `key`, or the
/// whole document without a key.
pub(crate) fn included(
    doc: serde_yaml_ng::Value,
    key: Option<&str>,
) -> Option<serde_yaml_ng::Value> {
    match key {
        Some(key) => doc.get(key).cloned(),
        None => Some(doc),
    }
}

/// The provider name the file `${file(./provider.yml)}` (or `${file(./x.yml):provider}`) that
/// `provider` is holds, read from the service's folder `dir` as the framework reads it; `None`
/// when it is no such include, or the file says no name.
fn provider_in_file(root: &Path, dir: &Path, provider: &str) -> Option<(String, bool)> {
    let (file, key) = file_include(provider)?;
    // A regular file of the repository, of a configuration's size: never one outside it
    // (`../../etc/passwd`, a link out), nor a device or a pipe.
    if file.starts_with('/') {
        return None;
    }
    let path = dir.join(file).canonicalize().ok()?;
    let meta = fs::metadata(&path).ok()?;
    if !path.starts_with(root.canonicalize().ok()?) || !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    let doc: serde_yaml_ng::Value =
        ferry_manifest::yaml::from_str(&fs::read_to_string(&path).ok()?).ok()?;
    let doc = included(doc, key)?;
    let name = doc.get("name").unwrap_or(&doc).as_str()?;
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    (name.len() <= 32 && name.chars().all(plain)).then(|| {
        let more = doc.get("region").is_some() || doc.get("stackName").is_some();
        (name.to_string(), more)
    })
}

/// The provider a configuration program names literally: `provider: { name: 'google', … }`
/// (keys quoted or not), when it is one of the other clouds the framework deploys to; `None`
/// otherwise (a program is not parsed: a `name` found there may be a nested one, such as the
/// deployment bucket's, so anything else is taken for AWS).
fn program_provider(text: &str) -> Option<String> {
    const OTHER_CLOUDS: &[&str] = &[
        "google",
        "azure",
        "openwhisk",
        "kubeless",
        "cloudflare",
        "knative",
        "tencent",
        "aliyun",
        "spotinst",
        "fn",
    ];
    literal_provider(text).filter(|p| OTHER_CLOUDS.contains(&p.as_str()))
}

/// The first `name: '…'` in a `provider: { … }` of `text`.
fn literal_provider(text: &str) -> Option<String> {
    fn skip(s: &str) -> &str {
        s.trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'')
    }
    for (at, _) in text.match_indices("provider") {
        let Some(rest) = skip(&text[at + "provider".len()..]).strip_prefix(':') else {
            continue;
        };
        let Some(body) = rest.trim_start().strip_prefix('{') else {
            continue;
        };
        let body = &body[..body.find('}').unwrap_or(body.len())];
        for (n, _) in body.match_indices("name") {
            let Some(value) = skip(&body[n + "name".len()..]).strip_prefix(':') else {
                continue;
            };
            let value = value.trim_start();
            let Some(quote) = value
                .chars()
                .next()
                .filter(|c| matches!(c, '\'' | '"' | '`'))
            else {
                continue;
            };
            let value = &value[1..];
            if let Some(end) = value.find(quote) {
                return Some(value[..end].to_string());
            }
        }
    }
    None
}

/// The project's name: the root `package.json`'s (without a scope; its scope where the name is a
/// generic word, `@swarmion/root`), else the folder's.
pub(crate) fn project_name(root: &Path) -> String {
    // A workspace root's name says little of the project (`@swarmion/root`, `monorepo`): its
    // scope, else the folder's name, names it (the records' path, the bootstrap stack and the
    // artifact bucket are named after it, and `root` would meet any other such project's).
    const GENERIC: &[&str] = &[
        "root",
        "monorepo",
        "workspace",
        "workspaces",
        "main",
        "project",
    ];
    let from_package = read_json(&root.join("package.json"))
        .and_then(|p| p.get("name").and_then(|n| n.as_str()).map(String::from))
        .and_then(
            |n| match n.strip_prefix('@').and_then(|n| n.split_once('/')) {
                Some((scope, base)) if GENERIC.contains(&base) => Some(scope.to_string()),
                _ => {
                    let base = n.rsplit('/').next().unwrap_or(&n).to_string();
                    (!GENERIC.contains(&base.as_str())).then_some(base)
                }
            },
        );
    let name = from_package.unwrap_or_else(|| {
        root.canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "project".into())
    });
    crate::valid_name(&name)
}

/// Whether a folder name would be read as a pattern in `project.services` (`*`, `?`, `[`,
/// `{`): such a folder is named by itself, never under a `parent/*`.
pub(crate) fn has_glob_char(path: &str) -> bool {
    path.contains(['*', '?', '[', ']', '{', '}'])
}

/// Whether every resource of the template at `root/template` is a nested stack (an umbrella's
/// whole content).
fn only_nested_stacks(root: &Path, template: &str) -> bool {
    crate::layout::only_nested_stacks(&crate::layout::resources_of(root, template))
}

#[cfg(test)]
mod tests {
    use super::{names_a_service, program_provider};

    #[test]
    fn a_configuration_program_names_its_provider() {
        assert_eq!(
            program_provider("const c = {\n  service: 'x',\n  provider: { name: 'google', runtime: 'nodejs18' },\n}")
                .as_deref(),
            Some("google")
        );
        assert_eq!(
            program_provider("export default { \"provider\": { \"name\": \"aws\" } }").as_deref(),
            None
        );
        assert_eq!(program_provider("const provider = makeProvider();"), None);
        assert_eq!(program_provider("provider: { name: region }"), None);
        // A nested name (the deployment bucket's) is no provider.
        assert_eq!(
            program_provider("provider: { ...base, deploymentBucket: { name: 'shared-deploys' } }"),
            None
        );
    }

    #[test]
    fn a_configuration_program_names_its_service() {
        for yes in [
            "const c = { service: 'orders' }",
            "module.exports = {\"service\": \"x\"}",
            "const service = 'x'; export default { service, provider: {} }",
            "export default { service }",
        ] {
            assert!(names_a_service(yes), "{yes}");
        }
        for no in [
            "type P = AWS['provider']",
            "const services: string[] = []",
            "const c = { serviceName: 'x' }",
            "const myservice: string = 'x'",
        ] {
            assert!(!names_a_service(no), "{no}");
        }
    }
}
