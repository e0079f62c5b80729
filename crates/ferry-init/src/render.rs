//! The files `init` writes: Ferry's configuration, and the runner that makes `cargo xtask …`
//! work in the repository.

use std::fmt::Write as _;
use std::path::Path;

use ferry_manifest::ServiceKind;

use crate::Scan;

/// Where the adopted repository's xtask gets Ferry from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// A path to Ferry's repository (absolute, or relative to the adopted repository's root).
    Path(String),
    /// A git URL of Ferry's repository, optionally at a revision.
    Git { url: String, rev: Option<String> },
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// Text from scanned files, made safe for one comment line: a line break in it would end the
/// comment and make the rest TOML (see [`ferry_ci::one_line`]).
fn one_line(s: &str) -> String {
    ferry_ci::one_line(s).into_owned()
}

/// A path as the glob that matches it alone: its `[`, `]`, `{`, `}` and `?` escaped (a folder
/// named `[slug]` or `{a}` is no set nor alternatives). A `*` is left as it is: init writes
/// one only as a pattern (`libs/**`, `config.*` for a file named by the stage), and no path
/// it finds holds one.
pub(crate) fn as_glob(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '[' | ']' | '{' | '}' | '?' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// The `services` patterns of the service folders `dirs`: `parent/*` for the folder holding
/// each (`*` at the root): it takes only folders with a `service.toml`, so its other folders do
/// no harm, unless one holds a `service.toml` of another tool (then each is named by itself);
/// in the order of their first folder.
fn service_patterns<'d>(root: &Path, dirs: impl Iterator<Item = &'d str>) -> Vec<String> {
    let dirs: Vec<&str> = dirs.collect();
    // A folder of `parent` holding a `service.toml` that is no service found here.
    let foreign = |parent: &str| {
        std::fs::read_dir(root.join(parent))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(ferry_manifest::SERVICE_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !ferry_manifest::skipped_folder(name))
            .any(|name| {
                let path = if parent.is_empty() {
                    name
                } else {
                    format!("{parent}/{name}")
                };
                !dirs.contains(&path.as_str())
            })
    };
    let parent = |d: &str| d.rsplit_once('/').map(|(p, _)| p.to_string());
    let mut out: Vec<String> = Vec::new();
    for &d in &dirs {
        let pattern = match parent(d) {
            Some(p) if !crate::walk::has_glob_char(&p) && !foreign(&p) => format!("{p}/*"),
            // A top-level service folder: `*`, unless another tool's service.toml is there.
            None if !foreign("") => "*".to_string(),
            _ => as_glob(d),
        };
        if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    out
}

/// `ferry.toml` and one `service.toml` per service: (repository-relative path, text).
pub fn render(scan: &Scan, root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut project = String::new();
    let _ = writeln!(
        project,
        "# Written by `init` from what the repository holds: check it, then run `validate`.\n[project]\nname = {}",
        quoted(&scan.project)
    );
    let dirs: Vec<String> = service_patterns(root, scan.services.iter().map(|s| s.dir.as_str()))
        .iter()
        .map(|d| quoted(d))
        .collect();
    let _ = writeln!(
        project,
        "# The service folders: `parent/*` takes each folder in it that holds a service.toml, so\n# adding a service there, or removing one while another stays, changes nothing here (a\n# change to this file redeploys every service; a pattern that matches nothing is refused).\nservices = [{}]",
        dirs.join(", ")
    );
    let mut global = vec![quoted("ferry.toml")];
    for lock in crate::ROOT_LOCK_FILES {
        if root.join(lock).is_file() {
            global.push(quoted(lock));
        }
    }
    // Each lock file taken is one Ferry reads as what it locks.
    let read = global.len() > 1;
    let _ = writeln!(
        project,
        "# A change to these redeploys every service{}.\nglobal-inputs = [{}]\n",
        if read {
            " (a lock file: only those whose installed packages it changes, unless Ferry cannot read it)"
        } else {
            ""
        },
        global.join(", ")
    );
    let params = parameters_root(&scan.project);
    let path = |stage: &str| quoted(&format!("{params}{stage}/"));
    let whence = match scan.named_region() {
        None => "no service names one: a default, to set to the one the stacks are in".to_string(),
        Some((_, n)) => format!("as {n} of the {} services name it", scan.services.len()),
    };
    let _ = writeln!(project, "# region: {whence}.");
    let _ = writeln!(
        project,
        "# parameters-path: the stage's SSM parameters. A name without a leading `/` (`param set dev\n# db-password --secure`, `${{ssm:db-password}}`) lies under it, and `exec` and every\n# output mask the SecureStrings there.\n[stages.dev]\nregion = {r_dev}\nparameters-path = {dev}\n\n[stages.staging]\nregion = {r_staging}\nparameters-path = {staging}\n\n[stages.prod]\nregion = {r_prod}\nparameters-path = {prod}\nprotected = true\n\n# Any other stage name (a branch, a pull request) is a preview stage; previews share\n# their parameters.\n[stages.\"*\"]\nregion = {r_preview}\nparameters-path = {preview}",
        r_dev = quoted(&scan.stage_region("dev")),
        r_staging = quoted(&scan.stage_region("staging")),
        r_prod = quoted(&scan.stage_region("prod")),
        // Previews deploy beside dev.
        r_preview = quoted(&scan.stage_region("dev")),
        dev = path("dev"),
        staging = path("staging"),
        prod = path("prod"),
        preview = path("preview"),
    );
    files.push(("ferry.toml".to_string(), project));

    for s in &scan.services {
        let mut text = String::from("[service]\n");
        if s.dir.rsplit('/').next() != Some(s.name.as_str()) {
            let _ = writeln!(text, "name = {}", quoted(&s.name));
        }
        let _ = writeln!(text, "kind = {}", quoted(s.kind.as_str()));
        match s.kind {
            ServiceKind::Serverless => {
                if let Some((stack, why)) = &s.stack_name {
                    let _ = writeln!(
                        text,
                        "# {}: {}.\n# Check that this is the stack name the framework gives it.\nstack-name = {}",
                        s.file,
                        one_line(why),
                        quoted(stack)
                    );
                }
            }
            ServiceKind::Sam if s.file == "template.yaml" => {}
            _ => {
                let _ = writeln!(text, "template = {}", quoted(&s.file));
            }
        }
        if s.kind != ServiceKind::Serverless
            && let Some((stack, why)) = &s.stack_name
        {
            let _ = writeln!(
                text,
                "# The name {}.\nstack-name = {}",
                one_line(why),
                quoted(stack)
            );
        }
        if !s.depends_on.is_empty() {
            let _ = writeln!(text, "# Inferred:");
            for (d, why) in &s.depends_on {
                let _ = writeln!(text, "#   {}: {}", one_line(d), one_line(why));
            }
            let list: Vec<String> = s.depends_on.keys().map(|d| quoted(d)).collect();
            let _ = writeln!(text, "depends-on = [{}]", list.join(", "));
        }
        if !s.inputs.is_empty() {
            let _ = writeln!(text, "# Inferred:");
            for (i, why) in &s.inputs {
                let _ = writeln!(text, "#   {}: {}", one_line(&as_glob(i)), one_line(why));
            }
            let list: Vec<String> = s.inputs.keys().map(|i| quoted(&as_glob(i))).collect();
            let _ = writeln!(text, "inputs = [{}]", list.join(", "));
        }
        let required = if s.kind == ServiceKind::Serverless {
            Vec::new()
        } else {
            required_parameters(&root.join(crate::template_path(&s.dir, &s.file)))
        };
        // Ferry gives the stage's permissions boundary and its artifact bucket itself: an empty
        // value written for either would stand for the stage's.
        let missing: Vec<(String, Option<String>)> = required
            .into_iter()
            .filter(|(p, _)| !s.parameters.contains_key(p))
            .filter(|(p, _)| {
                p != ferry_package::BOUNDARY_PARAMETER && p != ferry_package::BUCKET_PARAMETER
            })
            .collect();
        let staged: Vec<StageParameter> = if s.kind == ServiceKind::Serverless {
            Vec::new()
        } else {
            stage_parameters(&root.join(crate::template_path(&s.dir, &s.file)))
                .into_iter()
                .filter(|p| !s.parameters.contains_key(&p.key))
                .collect()
        };
        // The declarations of the parameters a script gives the stage (`Stage=$(STAGE)`).
        let declared = (s.kind != ServiceKind::Serverless
            && s.parameters.values().any(|(v, _)| v == "${stage}"))
        .then(|| {
            std::fs::read_to_string(root.join(crate::template_path(&s.dir, &s.file)))
                .ok()
                .and_then(|t| ferry_package::parse_template(&t).ok())
        })
        .flatten();
        // A stage-like parameter without a default is written here, not with the others.
        let missing: Vec<(String, Option<String>)> = missing
            .into_iter()
            .filter(|(p, _)| !staged.iter().any(|st| st.key == *p))
            .collect();
        if !s.parameters.is_empty() || !missing.is_empty() || !staged.is_empty() {
            let _ = writeln!(text, "\n[parameters]");
        }
        for (key, (value, why)) in &s.parameters {
            let _ = writeln!(text, "# {}", one_line(why));
            // The stage as a script passes it (`Stage=$(STAGE)`), where the template takes no
            // stage name of ferry.toml (`AllowedValues: [local, dev, prod]`): CloudFormation
            // would refuse staging's deploy, and every preview's.
            let unfit = declared
                .as_ref()
                .filter(|_| value == "${stage}")
                .and_then(|t| refused_stages(&t["Parameters"][key.as_str()]));
            match unfit {
                Some(unfit) => {
                    let default = declared
                        .as_ref()
                        .and_then(|t| t["Parameters"][key.as_str()]["Default"].as_str())
                        .map(|d| {
                            format!(
                                " (until then every stage deploys with its default `{}`)",
                                one_line(d)
                            )
                        })
                        .unwrap_or_default();
                    let _ = writeln!(
                        text,
                        "# but {unfit}: give it the value the template expects in each stage (a `${{var:…}}` of the stages' variables){default}\n# {key} = {}",
                        quoted(value)
                    );
                }
                None => {
                    let _ = writeln!(text, "{key} = {}", quoted(value));
                }
            }
        }
        for StageParameter {
            key,
            default,
            unfit,
        } in staged
        {
            let default_said = default
                .as_deref()
                .map(|d| format!(" (default `{}`)", one_line(d)))
                .unwrap_or_default();
            match unfit {
                None => {
                    let _ = writeln!(
                        text,
                        "# {key} names the stage{default_said}: each stage gives its own, as the template's names and conditions built from it expect"
                    );
                    let _ = writeln!(text, "{key} = \"${{stage}}\"");
                }
                Some(why) if default.is_some() => {
                    let _ = writeln!(
                        text,
                        "# {key} names the stage{default_said}, but {}: every stage deploys with the default until you give it its value (e.g. \"${{stage}}\" with stages named as the template expects)",
                        one_line(&why)
                    );
                }
                Some(why) => {
                    let _ = writeln!(
                        text,
                        "# {key} names the stage, but {}: give it the value the template expects",
                        one_line(&why)
                    );
                    let _ = writeln!(text, "{key} = \"\"");
                }
            }
        }
        if !missing.is_empty() {
            let _ = writeln!(
                text,
                "# The template's parameters without a default: give each its value."
            );
        }
        let secrets: Vec<String> = if missing.is_empty() {
            Vec::new()
        } else {
            crate::overrides::declared(root, &s.dir, &s.file)
                .into_iter()
                .filter_map(|(name, secret)| secret.then_some(name))
                .chain(s.secrets.iter().cloned())
                .collect()
        };
        for (p, ssm_type) in missing {
            if ssm_type.is_none() && secrets.contains(&p) {
                let _ = writeln!(
                    text,
                    "# {p} is a secret (NoEcho, its name, or the value its deploy steps pass says so): never write its value here. Keep it in SSM under the stage's parameters-path (`param set <stage> {p} --secure`, the value on standard input), then give {p} = \"${{ssm:{p}}}\" (in a ferry.toml whose stages have no parameters-path: `param set <stage> {params}<stage>/{p} --secure` and \"${{ssm:{params}${{stage}}/{p}}}\")",
                    params = parameters_root(&scan.project)
                );
                let _ = writeln!(text, "{p} = \"\"");
                continue;
            }
            if let Some(ty) = ssm_type {
                let _ = writeln!(
                    text,
                    "# {p} is of type {ty}: give the name of an SSM parameter (e.g. \"/${{project}}/${{stage}}/…\"); CloudFormation reads its value"
                );
                let _ = writeln!(text, "{p} = \"\"");
                continue;
            }
            let _ = writeln!(text, "{p} = \"\"");
        }
        if let Some((argv, why)) = &s.build {
            let list: Vec<String> = argv.iter().map(|a| quoted(a)).collect();
            let _ = writeln!(
                text,
                "\n[package]\n# {}\nbuild = [{}]",
                one_line(why),
                list.join(", ")
            );
            if let Some(built) = &s.built_template {
                let _ = writeln!(text, "built-template = {}", quoted(built));
            }
        }
        if !s.artifacts.is_empty() {
            let _ = writeln!(
                text,
                "\n# The template's local code paths (what `aws cloudformation package` uploads), zipped by\n# Ferry, relative to this folder.\n[package.artifacts]"
            );
            for (resource, path) in &s.artifacts {
                let _ = writeln!(text, "{resource} = {}", quoted(path));
            }
        }
        files.push((format!("{}/service.toml", s.dir), text));
    }
    files
}

use crate::STAGES;

/// Whether a template parameter's name says it names the stage.
fn stage_like(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "stage" | "stagename" | "env" | "envname" | "environment" | "environmentname"
    )
}

/// A template parameter that names the stage, without a default or defaulting to a stage's
/// word: given `${stage}` unless `unfit` says why the template cannot take it.
struct StageParameter {
    key: String,
    default: Option<String>,
    unfit: Option<String>,
}

/// The parameters a template declares that name the stage (`Environment`, default `dev`): the
/// template builds names and conditions from them, which would be the default's in every
/// stage. Each is unfit for `${stage}` when its default is no stage name of `ferry.toml`
/// (`production`, `Dev`), when it has `AllowedValues` (a preview's name is none of them), when
/// the template looks it up in a mapping (`Fn::FindInMap`: a preview's name is no key of it),
/// or compares it with a word that is no stage name (`!Equals [!Ref Env, production]`).
fn stage_parameters(path: &Path) -> Vec<StageParameter> {
    let Some(t) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| ferry_package::parse_template(&text).ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, decl) in t["Parameters"].as_object().into_iter().flatten() {
        if !stage_like(key) || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let default = match decl.get("Default") {
            None => None,
            Some(serde_json::Value::String(d))
                if crate::STAGE_WORDS.contains(&d.to_ascii_lowercase().as_str()) =>
            {
                Some(d.clone())
            }
            // A default that names no stage (`Production-EU`, a number): not the stage.
            Some(_) => continue,
        };
        let unfit = if let Some(d) = default.as_deref().filter(|d| !STAGES.contains(d)) {
            Some(format!(
                "its default `{d}` is no stage name of ferry.toml ({})",
                STAGES.join(", ")
            ))
        } else if let Some(values) = allowed_values(decl) {
            Some(format!(
                "its AllowedValues ({}) take no preview's name",
                values.join(", ")
            ))
        } else {
            uses_unfit(&t, key)
        };
        out.push(StageParameter {
            key: key.clone(),
            default,
            unfit,
        });
    }
    out
}

/// The `AllowedValues` of a parameter declared as `decl`, as text.
fn allowed_values(decl: &serde_json::Value) -> Option<Vec<String>> {
    let values = decl.get("AllowedValues")?.as_array()?;
    Some(
        values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .collect(),
    )
}

/// Why a parameter declared as `decl` takes not every stage name of ferry.toml: its
/// `AllowedValues` leave some out (and every preview's).
fn refused_stages(decl: &serde_json::Value) -> Option<String> {
    let values = allowed_values(decl)?;
    let left_out: Vec<&str> = STAGES
        .iter()
        .copied()
        .filter(|s| !values.iter().any(|v| v == s))
        .collect();
    (!left_out.is_empty()).then(|| {
        format!(
            "its AllowedValues ({}) take not {} nor a preview's name",
            values.join(", "),
            left_out.join(", ")
        )
    })
}

/// Why the template's use of parameter `key` takes no stage name as its value, if it does not:
/// a mapping looked up by it, or a comparison with a word that is no stage name.
fn uses_unfit(t: &serde_json::Value, key: &str) -> Option<String> {
    let is_ref = |v: &serde_json::Value| v.get("Ref").and_then(|r| r.as_str()) == Some(key);
    let mut todo = vec![t];
    while let Some(v) = todo.pop() {
        match v {
            serde_json::Value::Object(map) => {
                // By its first key or its second (`!FindInMap [M, Cfg, !Ref Stage]`).
                if let Some(serde_json::Value::Array(args)) = map.get("Fn::FindInMap")
                    && args.iter().skip(1).take(2).any(is_ref)
                {
                    let mapping = args.first().and_then(|m| m.as_str()).unwrap_or("a mapping");
                    return Some(format!(
                        "the template looks it up in {mapping}, whose keys a preview's name is none of"
                    ));
                }
                if let Some(serde_json::Value::Array(args)) = map.get("Fn::Equals")
                    && let [a, b] = args.as_slice()
                {
                    let word = if is_ref(a) {
                        b.as_str()
                    } else if is_ref(b) {
                        a.as_str()
                    } else {
                        None
                    };
                    // `!Not [!Equals [!Ref Stage, ""]]` asks only whether it is given.
                    if let Some(w) = word.filter(|w| !w.is_empty() && !STAGES.contains(w)) {
                        return Some(format!(
                            "the template compares it with `{w}`, no stage name of ferry.toml ({})",
                            STAGES.join(", ")
                        ));
                    }
                }
                todo.extend(map.values());
            }
            serde_json::Value::Array(items) => todo.extend(items),
            _ => {}
        }
    }
    None
}

/// The parameters a template declares without a `Default`, each with its SSM parameter type
/// when it has one (its value is then a parameter's name).
fn required_parameters(path: &Path) -> Vec<(String, Option<String>)> {
    let Some(doc) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| ferry_manifest::yaml::from_str::<serde_yaml_ng::Value>(&t).ok())
    else {
        return Vec::new();
    };
    let Some(serde_yaml_ng::Value::Mapping(params)) = doc.get("Parameters") else {
        return Vec::new();
    };
    params
        .iter()
        .filter(|(_, decl)| decl.get("Default").is_none())
        .filter_map(|(k, decl)| {
            let ssm_type = decl
                .get("Type")
                .and_then(serde_yaml_ng::Value::as_str)
                .filter(|t| t.starts_with(ferry_manifest::SSM_PARAMETER_TYPE))
                .map(String::from);
            Some((k.as_str()?.to_string(), ssm_type))
        })
        .filter(|(k, _)| k.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect()
}

/// The files that make `cargo xtask …` run Ferry in the repository: a thin `xtask` crate, the
/// cargo alias, a root workspace manifest (when the repository has none) and a
/// `buildspec.yml`. Returns them and what the user must still do.
pub fn runner(root: &Path, runner: &Runner) -> (Vec<(String, String)>, Vec<String>) {
    // An absolute path into the repository itself (Ferry vendored, or the default: the Ferry
    // checkout init was built from, when that is this repository) is written relative to it,
    // which every clone has.
    let inside = match runner {
        Runner::Path(p) if Path::new(p).is_absolute() => {
            let top = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
            // A folder not made yet (a submodule to add) is taken as written.
            let real = std::fs::canonicalize(p).unwrap_or_else(|_| Path::new(p).to_path_buf());
            [top.as_path(), root]
                .into_iter()
                .find_map(|t| real.strip_prefix(t).ok())
                .and_then(|rel| rel.to_str())
                .map(|rel| {
                    Runner::Path(if rel.is_empty() {
                        ".".into()
                    } else {
                        rel.into()
                    })
                })
        }
        _ => None,
    };
    runner_files(root, inside.as_ref().unwrap_or(runner))
}

fn runner_files(root: &Path, runner: &Runner) -> (Vec<(String, String)>, Vec<String>) {
    let mut files = Vec::new();
    let mut notes = Vec::new();
    // A path a clone elsewhere has: relative, inside the repository (a git submodule).
    let outside = |p: &str| {
        let path = Path::new(p);
        path.is_absolute()
            || path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
    };
    if let Runner::Path(p) = runner
        && outside(p)
    {
        notes.push(format!(
            "xtask/Cargo.toml takes Ferry from {p}, a folder of this machine: a clone elsewhere (CI, a teammate) cannot build `cargo xtask`; run init again with --ferry-git URL [--ferry-rev REV], or --ferry-path with a relative path inside the repository (a git submodule), or adopt with --no-runner and the `ferry` binary"
        ));
    }
    let dependency = match runner {
        // A relative path is the repository's; Cargo reads it from xtask/, one folder down.
        Runner::Path(p) => format!(
            "ferry-cli = {{ path = {} }}",
            quoted(&format!(
                "{}{}/crates/ferry-cli",
                if Path::new(p).is_absolute() {
                    ""
                } else {
                    "../"
                },
                p.trim_end_matches('/')
            ))
        ),
        Runner::Git {
            url,
            rev: Some(rev),
        } => {
            format!(
                "ferry-cli = {{ git = {}, rev = {} }}",
                quoted(url),
                quoted(rev)
            )
        }
        Runner::Git { url, rev: None } => format!("ferry-cli = {{ git = {} }}", quoted(url)),
    };
    files.push((
        "xtask/Cargo.toml".to_string(),
        format!(
            "# `cargo xtask …`: Ferry's command line for this repository (written by `init`).\n[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\n{dependency}\n"
        ),
    ));
    files.push((
        "xtask/src/main.rs".to_string(),
        "//! `cargo xtask`: Ferry's command line, working on this repository (the folder above).\n\nfn main() -> std::process::ExitCode {\n    let root = std::path::Path::new(env!(\"CARGO_MANIFEST_DIR\"))\n        .parent()\n        .expect(\"xtask lives in the repository\")\n        .to_path_buf();\n    ferry_cli::main(&ferry_cli::App::xtask(root))\n}\n".to_string(),
    ));
    files.push((
        ".cargo/config.toml".to_string(),
        "[alias]\nxtask = \"run --quiet --package xtask --\"\n".to_string(),
    ));
    if root.join("Cargo.toml").is_file() {
        notes.push("Cargo.toml exists: add \"xtask\" to its [workspace] members".to_string());
    } else {
        files.push((
            "Cargo.toml".to_string(),
            "# Only for `cargo xtask` (Ferry's command line); the services are not Rust.\n[workspace]\nmembers = [\"xtask\"]\nresolver = \"3\"\n\n# Quicker builds of `cargo xtask`: line tables only, no debug info for dependencies (the\n# settings of Ferry's own workspace).\n[profile.dev]\ndebug = \"line-tables-only\"\n\n[profile.dev.package.\"*\"]\ndebug = false\n".to_string(),
        ));
    }
    files.push((
        "buildspec.yml".to_string(),
        "# CodeBuild, one project per stage (STAGE on the project): every phase calls Ferry.\nversion: 0.2\n\nenv:\n  variables:\n    STAGE: dev\n    CI: \"true\"\n\nphases:\n  install:\n    commands:\n      - command -v cargo || (curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal)\n      - export PATH=\"$HOME/.cargo/bin:$PATH\"\n  pre_build:\n    commands:\n      - export PATH=\"$HOME/.cargo/bin:$PATH\"\n      - cargo xtask validate\n      - cargo xtask plan \"$STAGE\"\n  build:\n    commands:\n      - export PATH=\"$HOME/.cargo/bin:$PATH\"\n      - cargo xtask deploy \"$STAGE\"\n      - cargo xtask test-acceptance \"$STAGE\"\n\nreports:\n  acceptance-tests:\n    files:\n      - \"acceptance-*.xml\"\n    base-directory: target/ferry/reports\n    file-format: JUNITXML\n".to_string(),
    ));
    let ignore = std::fs::read_to_string(root.join(".gitignore")).unwrap_or_default();
    if !ignore
        .lines()
        .any(|l| matches!(l.trim(), "target" | "target/" | "/target" | "/target/"))
    {
        notes.push("add `target/` to .gitignore (cargo's and Ferry's output)".to_string());
    }
    (files, notes)
}

/// The folder of SSM parameters under which `init` puts each stage's `parameters-path`:
/// `/<project>/`, unless SSM refuses that name (a project named `aws-…` or `ssm-…`, which only
/// AWS may use), then `/ferry-<project>/`.
fn parameters_root(project: &str) -> String {
    let plain = format!("/{project}/");
    if ferry_manifest::check_ssm_name(&format!("{plain}preview/"), true).is_ok() {
        plain
    } else {
        format!("/ferry-{project}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_ssm_would_refuse_gets_a_parameters_root_it_takes() {
        assert_eq!(parameters_root("shop"), "/shop/");
        // SSM keeps names starting with `aws` or `ssm` for AWS.
        assert_eq!(parameters_root("aws-samples"), "/ferry-aws-samples/");
        assert_eq!(parameters_root("ssm"), "/ferry-ssm/");
    }

    #[test]
    fn scanned_text_stays_inside_its_comment_line() {
        let hostile = "../shared\nrole-arn = \"arn:aws:iam::1:role/x\"\r\u{1b}[2J";
        let line = format!("#   {}: {}\n", one_line(hostile), one_line("why"));
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(
            line.starts_with('#') && !line.contains('\u{1b}'),
            "{line:?}"
        );
    }
}
