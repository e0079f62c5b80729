//! Where a SAM service's folder is, from what its template reaches on disk.
//!
//! Java, Node.js and other projects often keep their SAM template below the project
//! (`backend/sam/app/template.yaml`) and point it back up at what the project builds
//! (`CodeUri: ../../target/app.jar`, `Location: ../../swagger/api.yaml`). Ferry deploys a
//! service again when a file of its folder changes and packages only what lies inside it, so
//! the service folder is the project (`backend`, template `sam/app/template.yaml`), not the
//! template's folder. A template that nests other services' templates (an umbrella application
//! deploying the whole repository as one stack) would deploy their resources twice: it is left
//! out, and the order it gives them (`DependsOn`, `Fn::GetAtt <App>.Outputs.<Key>`) becomes
//! their `depends-on` and parameters.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_manifest::ServiceKind;
use ferry_package::{Reached, reached};
use serde_json::Value;

use crate::walk::Candidate;

/// A project's build files, in the order a build is chosen by.
const BUILD_FILES: &[&str] = &[
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "package.json",
    "Makefile",
    "go.mod",
    "Cargo.toml",
    "pyproject.toml",
    "requirements.txt",
];

/// A template that nests other services' templates.
pub(crate) struct Umbrella {
    /// Repository-relative.
    pub template: String,
    /// Resource id → the repository-relative template of the service it nests.
    pub apps: BTreeMap<String, String>,
    /// (resource id, resource id it needs, why): `DependsOn` and `Fn::GetAtt` between apps.
    pub needs: Vec<(String, String, String)>,
    /// (resource id, parameter, value): a parameter passing other apps' outputs, alone
    /// (`!GetAtt Alb.Outputs.Url`) or joined with text (`!Join ["/", [!GetAtt …, products]]`,
    /// `!Sub "${Alb.Outputs.Url}/products"`).
    pub passes: Vec<(String, String, Vec<Part>)>,
    /// (resource id, parameter, value): a literal it passes an app (`DesiredCount: 2`).
    pub values: Vec<(String, String, String)>,
    /// (resource id, parameter): a value init cannot write in Ferry's syntax (`Fn::If`, a
    /// reference to the umbrella's own parameter or resource).
    pub untranslated: Vec<(String, String)>,
}

/// A piece of a value an umbrella passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    /// (resource id of the app, output).
    Output(String, String),
}

/// `a` is `b` or lies inside it (`b` may be `""`, the root).
pub(crate) fn within(a: &str, b: &str) -> bool {
    b.is_empty() || a == b || a.starts_with(&format!("{b}/"))
}

/// The deepest folder holding both `a` and `b`.
fn common(a: &str, b: &str) -> String {
    a.split('/')
        .zip(b.split('/'))
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect::<Vec<_>>()
        .join("/")
}

fn template_of(c: &Candidate) -> String {
    crate::template_path(&c.dir, &c.file)
}

/// Leaves out umbrella templates and moves each SAM service whose template reaches out of its
/// folder to the project folder holding all it reaches; notes each, and a build for what the
/// template names and the repository does not hold (a build's output).
pub(crate) fn settle(
    root: &Path,
    candidates: &mut Vec<Candidate>,
    mut reach: BTreeMap<String, Vec<Reached>>,
    root_templates: &[String],
    notes: &mut Vec<String>,
) -> Vec<Umbrella> {
    // The walk's reach of the SAM and CloudFormation candidates still there (not parts, not
    // left out).
    let placed: std::collections::BTreeSet<String> = candidates
        .iter()
        .filter(|c| c.kind != ServiceKind::Serverless)
        .map(template_of)
        .collect();
    reach.retain(|t, _| placed.contains(t));
    // Paths written for a build step that copies the template to a folder below it first.
    let below: BTreeMap<String, Vec<Reached>> = candidates
        .iter()
        .filter(|c| c.kind == ServiceKind::Sam)
        .map(template_of)
        .map(|t| (t.clone(), ferry_package::reached_from_below(root, &t)))
        .filter(|(_, paths)| !paths.is_empty())
        .collect();
    let shared = leave_out_shared(candidates, &reach, &below, notes);
    // Umbrellas first: the services they nest are moved by their own templates below.
    let mut umbrellas = Vec::new();
    for (template, paths) in &reach {
        // Another service's template, or a template inside another service's folder that
        // does not also hold this one.
        let nests = |r: &Reached| {
            candidates.iter().find(|o| {
                template_of(o) != *template
                    && r.nested
                    && !shared.contains(&r.path)
                    && (r.path == template_of(o)
                        || (within(&r.path, &o.dir) && !within(template, &o.dir)))
            })
        };
        let apps: BTreeMap<String, String> = paths
            .iter()
            .filter(|r| r.template == *template)
            .filter_map(|r| Some((r.site.clone(), template_of(nests(r)?))))
            .collect();
        if apps.is_empty() {
            continue;
        }
        let named: Vec<&str> = apps.values().map(String::as_str).collect();
        // What it holds besides them is deployed by nobody once it is left out: said.
        let resources = resources_of(root, template);
        let own: Vec<String> = resources
            .keys()
            .filter(|id| !apps.contains_key(*id))
            .cloned()
            .collect();
        let own = if own.is_empty() {
            String::new()
        } else {
            format!(
                "; its own resources ({}) are then deployed by no service: move them into a template of their own (a service) or into one of the services",
                ferry_manifest::first_few(&own, 5)
            )
        };
        notes.push(format!(
            "{template}: nests the templates of other services ({}): deploying it too would create their resources a second time, so it is left out and they deploy one by one, in the order it gives them{own}",
            named.join(", ")
        ));
        umbrellas.push(links(template, &resources, apps));
    }
    // Two templates nesting each other are no umbrellas of each other: both stay, noted.
    let mutual: Vec<String> = umbrellas
        .iter()
        .filter(|u| {
            u.apps.values().any(|t| {
                umbrellas
                    .iter()
                    .any(|o| o.template == *t && o.apps.values().any(|b| *b == u.template))
            })
        })
        .map(|u| u.template.clone())
        .collect();
    if !mutual.is_empty() {
        notes.retain(|n| {
            !mutual
                .iter()
                .any(|m| n.starts_with(&format!("{m}: nests the templates")))
        });
        notes.push(format!(
            "{}: nest each other (an application's Location): each is kept as a service; CloudFormation refuses such a circle, so fix the templates",
            mutual.join(", ")
        ));
        umbrellas.retain(|u| !mutual.contains(&u.template));
    }
    umbrellas.extend(by_address(root, candidates, root_templates, notes));
    candidates.retain(|c| !umbrellas.iter().any(|u| u.template == template_of(c)));
    // What was said of an umbrella as one template of a folder of several (the folder it
    // would have had) no longer holds: it is left out.
    notes.retain(|n| {
        !umbrellas
            .iter()
            .any(|u| n.starts_with(&format!("{}: one of several templates of ", u.template)))
    });
    // The service folders, kept up to date as services move: two never move into one.
    let mut dirs: Vec<String> = candidates.iter().map(|c| c.dir.clone()).collect();
    for c in candidates.iter_mut() {
        for r in below.get(&template_of(c)).into_iter().flatten() {
            let base = r.template.rsplit_once('/').map_or("", |(d, _)| d);
            let up = "../".repeat(base.split('/').filter(|s| !s.is_empty()).count());
            notes.push(format!(
                "{}: {}.{} names a path that leaves the repository from {base}, written for a build step that copies the template to a folder below it first (`build/`); from there it is {}, which is what it means: Ferry packages the template where it is, so write `{up}{}` there",
                r.template, r.site, r.property, r.path, r.path
            ));
            c.inputs.entry(r.path.clone()).or_insert_with(|| {
                format!(
                    "{}.{} names it (once written from the template's own folder)",
                    r.site, r.property
                )
            });
        }
        let Some(paths) = reach.get(&template_of(c)) else {
            continue;
        };
        // What a shared template brings is declared as inputs below, not moved into.
        let part_of_shared = |r: &Reached| shared.contains(&r.path) || shared.contains(&r.template);
        let folder = paths
            .iter()
            .filter(|r| !part_of_shared(r))
            .fold(c.dir.clone(), |acc, r| common(&acc, &r.path));
        let others_inside = dirs.iter().any(|d| *d != c.dir && within(d, &folder));
        let project = BUILD_FILES
            .iter()
            .any(|f| root.join(&folder).join(f).is_file());
        let taken = dirs
            .iter()
            .find(|d| **d != c.dir && within(&folder, d))
            .cloned();
        if folder != c.dir && !folder.is_empty() && taken.is_some() {
            notes.push(format!(
                "{}: names paths outside the template's folder, and the folder holding them all, `{folder}`, is (inside) the service folder `{}` already: left where it is, so validate refuses those paths; give the service a folder of its own holding what it names",
                template_of(c),
                taken.as_deref().unwrap_or("")
            ));
        }
        let moved =
            folder != c.dir && !folder.is_empty() && taken.is_none() && (project || !others_inside);
        if moved {
            let top = template_of(c);
            let out = paths
                .iter()
                .find(|r| !within(&r.path, &c.dir))
                .expect("the folder moved for a path outside it");
            let file = format!("{}/{}", &c.dir[folder.len() + 1..], c.file);
            notes.push(format!(
                "{top}: {} names {} outside the template's folder: the service folder is `{folder}`, which holds all its template reaches (template `{file}`), so that a change to what it packages redeploys it",
                named_by(out, &top),
                out.path,
            ));
            if let Some(d) = dirs.iter_mut().find(|d| **d == c.dir) {
                *d = folder.clone();
            }
            c.dir = folder;
            c.file = file;
        }
        let top = template_of(c);
        // Left where it is (no folder of its own could hold all it names, as the root holds
        // the others): what it names outside its folder is declared, so that a change there
        // redeploys it and packaging takes it.
        if !moved && taken.is_none() {
            for r in paths.iter().filter(|r| !part_of_shared(r)) {
                // Another service's folder is that service's: not made an input here (validate
                // then names the path).
                if let Some(other) = dirs.iter().find(|d| **d != c.dir && within(&r.path, d)) {
                    notes.push(format!(
                        "{top}: {} names {}, inside the folder of another service ({other}): not made one of its inputs; move what both use out of it",
                        named_by(r, &top),
                        r.path
                    ));
                    continue;
                }
                if !within(&r.path, &c.dir) && root.join(&r.path).exists() {
                    c.inputs.entry(r.path.clone()).or_insert_with(|| {
                        format!(
                            "{} names it, outside the service folder (no folder of its own holds all its template names without holding other services)",
                            named_by(r, &top)
                        )
                    });
                }
            }
        }
        for r in paths.iter().filter(|r| part_of_shared(r)) {
            if !within(&r.path, &c.dir) && root.join(&r.path).exists() {
                c.inputs
                    .entry(r.path.clone())
                    .or_insert_with(|| format!("{} names it", named_by(r, &top)));
            }
        }
        let missing = paths
            .iter()
            .find(|r| within(&r.path, &c.dir) && !root.join(&r.path).exists());
        if let Some(m) = missing {
            let what = format!(
                "{} names {}, which the repository does not hold",
                named_by(m, &top),
                m.path
            );
            match build_step_towards(root, &c.dir, &m.path) {
                Some((argv, from)) => {
                    notes.push(format!(
                        "{}: {what}: its service.toml builds it with `{}` (guessed from {from}): check that this makes it",
                        c.dir,
                        shown(&argv)
                    ));
                    c.build = Some((
                        argv,
                        format!("{what}: guessed from {from}; check that this makes it."),
                    ));
                }
                None => notes.push(format!(
                    "{}: {what}: a build's output? add a [package] build to its service.toml that makes it",
                    c.dir
                )),
            }
        }
    }
    umbrellas
}

/// Umbrellas that nest the services' templates by the address their own scripts upload them to
/// (`TemplateURL: https://s3.amazonaws.com/<bucket>/infrastructure/vpc.yaml`, also in a
/// `Fn::Sub`): a template at the root nesting any, a plain CloudFormation candidate nesting two
/// or more; a template at the root nesting none is noted (the root is no service folder).
fn by_address(
    root: &Path,
    candidates: &[Candidate],
    root_templates: &[String],
    notes: &mut Vec<String>,
) -> Vec<Umbrella> {
    let templates: std::collections::BTreeSet<String> =
        candidates.iter().map(template_of).collect();
    let plain = candidates
        .iter()
        .filter(|c| c.kind == ServiceKind::Cloudformation)
        .map(template_of);
    let mut umbrellas = Vec::new();
    for template in root_templates.iter().cloned().chain(plain) {
        let at_root = !template.contains('/');
        let resources = resources_of(root, &template);
        let mut apps = nested_by_address(&template, &resources, &templates);
        // A template at the root nesting them by a local path (`TemplateURL: cfn/vpc.yaml`),
        // which is no candidate itself, so the walk's reach never saw it.
        // (Only one holding nothing but nested stacks: one with resources of its own would
        // have them deployed by no service.)
        let by_path = if at_root && only_nested_stacks(&resources) {
            nested_by_path(&resources, &templates)
        } else {
            BTreeMap::new()
        };
        let local = !by_path.is_empty();
        apps.extend(by_path);
        // A service nesting one template by its address (a queue kept in a shared bucket) is
        // no umbrella: an umbrella away from the root nests two services or more.
        if !at_root && apps.len() < 2 {
            continue;
        }
        if apps.is_empty() {
            notes.push(format!(
                "{template} at the repository root: Ferry deploys services from folders of their own (the root holds ferry.toml); move it into one and run init again"
            ));
            continue;
        }
        let named: Vec<&str> = apps.values().map(String::as_str).collect();
        let how = if local {
            ""
        } else {
            " by the addresses they are uploaded to"
        };
        notes.push(format!(
            "{template}: nests the templates of other services{how} ({}): deploying it too would create their resources a second time, so it is left out and they deploy one by one, in the order it gives them",
            named.join(", ")
        ));
        umbrellas.push(links(&template, &resources, apps));
    }
    umbrellas
}

/// Resource id → the template of `templates` an `AWS::CloudFormation::Stack` of `template`
/// (whose `resources` these are) nests by URL: the longest tail of the URL's path that is one
/// of them.
fn nested_by_address(
    template: &str,
    resources: &serde_json::Map<String, Value>,
    templates: &std::collections::BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut apps = BTreeMap::new();
    for (id, r) in resources {
        if r.get("Type").and_then(Value::as_str) != Some("AWS::CloudFormation::Stack") {
            continue;
        }
        let url = r.pointer("/Properties/TemplateURL");
        let url = url
            .and_then(Value::as_str)
            .or_else(|| url?.get("Fn::Sub").and_then(Value::as_str));
        let Some(rest) = url.and_then(|u| {
            u.strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"))
        }) else {
            continue;
        };
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let found = (0..segments.len())
            .map(|k| segments[k..].join("/"))
            .find(|tail| *tail != template && templates.contains(tail));
        if let Some(nested) = found {
            apps.insert(id.clone(), nested);
        }
    }
    apps
}

/// Whether every resource of a template (its `resources`) is a nested stack or application: an
/// umbrella's whole content.
pub(crate) fn only_nested_stacks(resources: &serde_json::Map<String, Value>) -> bool {
    resources.values().all(|r| {
        matches!(
            r.get("Type").and_then(Value::as_str),
            Some("AWS::CloudFormation::Stack" | "AWS::Serverless::Application")
        )
    })
}

/// Resource id → the template of `templates` a stack or application of a template at the root
/// (whose `resources` these are) nests by a local path (`TemplateURL: cfn/vpc.yaml`,
/// `Location: ./apps/api.yaml`).
fn nested_by_path(
    resources: &serde_json::Map<String, Value>,
    templates: &std::collections::BTreeSet<String>,
) -> BTreeMap<String, String> {
    resources
        .iter()
        .filter_map(|(id, r)| {
            let property = match r.get("Type").and_then(Value::as_str)? {
                "AWS::CloudFormation::Stack" => "TemplateURL",
                "AWS::Serverless::Application" => "Location",
                _ => return None,
            };
            let path = r.pointer(&format!("/Properties/{property}"))?.as_str()?;
            let nested =
                ferry_manifest::normalize_relative(path).filter(|_| !path.contains("://"))?;
            templates.contains(&nested).then(|| (id.clone(), nested))
        })
        .collect()
}

/// Leaves out each candidate whose template several other templates nest (a dead-letter queue,
/// a set of alarms: one file, and a stack of it inside each service's): a part of each of them,
/// not a service, and no sign of an umbrella. Returns every template nested by more than one
/// (candidate or not); each nesting service declares it, and what it names, as `inputs`.
fn leave_out_shared(
    candidates: &mut Vec<Candidate>,
    reach: &BTreeMap<String, Vec<Reached>>,
    below: &BTreeMap<String, Vec<Reached>>,
    notes: &mut Vec<String>,
) -> std::collections::BTreeSet<String> {
    let templates: std::collections::BTreeSet<String> =
        candidates.iter().map(template_of).collect();
    let nests = |r: &&Reached| r.nested && r.path != r.template;
    // A template nesting two services' templates or more is an umbrella (two umbrellas, one per
    // environment, may nest the same services): it does not make them shared.
    let mut nested_services: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reach.values().flatten().filter(nests) {
        if templates.contains(&r.path) {
            *nested_services.entry(&r.template).or_default() += 1;
        }
    }
    // By the templates that name it themselves: a template an umbrella reaches through the
    // service it nests is nested once.
    let mut nested_by: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for r in reach.values().chain(below.values()).flatten().filter(nests) {
        if nested_services
            .get(r.template.as_str())
            .is_none_or(|n| *n < 2)
        {
            nested_by.entry(&r.path).or_default().insert(&r.template);
        }
    }
    nested_by.retain(|_, by| by.len() > 1);
    candidates.retain(|c| {
        let template = template_of(c);
        let Some(by) = nested_by.get(template.as_str()) else {
            return true;
        };
        notes.push(format!(
            "{template}: nested by {} (a TemplateURL or an application's Location): a part of each, which deploys a stack of it, not a service; each declares it in `inputs`",
            by.iter().copied().collect::<Vec<_>>().join(", ")
        ));
        false
    });
    // What a shared template nests is shared with it, however deep.
    let mut shared: std::collections::BTreeSet<String> =
        nested_by.into_keys().map(str::to_string).collect();
    loop {
        let deeper: Vec<String> = reach
            .values()
            .flatten()
            .filter(|r| r.nested && shared.contains(&r.template) && !shared.contains(&r.path))
            .map(|r| r.path.clone())
            .collect();
        if deeper.is_empty() {
            return shared;
        }
        shared.extend(deeper);
    }
}

/// Whether `dir` holds nothing but a `service.toml` (one `init` wrote before: run again, it
/// finds the folder it made).
fn holds_only_service_toml(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.len() == 1 && names[0] == "service.toml"
    })
}

/// `Api.CodeUri`, with the nested template that says it when it is not `top`.
fn named_by(r: &Reached, top: &str) -> String {
    if r.template == top {
        format!("{}.{}", r.site, r.property)
    } else {
        format!("{}.{} (in {})", r.site, r.property, r.template)
    }
}

/// An argv as a shell would read it back: words with spaces quoted.
fn shown(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.contains(char::is_whitespace) {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `Resources` of the template at `root/template`: none when it cannot be read or parsed.
pub(crate) fn resources_of(root: &Path, template: &str) -> serde_json::Map<String, Value> {
    let parsed = ferry_package::read_template(&root.join(template)).ok();
    match parsed.and_then(|mut p| p.get_mut("Resources").map(Value::take)) {
        Some(Value::Object(resources)) => resources,
        _ => serde_json::Map::new(),
    }
}

/// The links an umbrella gives the applications it nests.
fn links(
    template: &str,
    resources: &serde_json::Map<String, Value>,
    apps: BTreeMap<String, String>,
) -> Umbrella {
    let mut needs = Vec::new();
    let mut passes = Vec::new();
    let mut values = Vec::new();
    let mut untranslated = Vec::new();
    for (id, r) in resources {
        if !apps.contains_key(id) {
            continue;
        }
        let depends: Vec<&str> = match r.get("DependsOn") {
            Some(Value::String(d)) => vec![d.as_str()],
            Some(Value::Array(ds)) => ds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for d in depends.into_iter().filter(|d| apps.contains_key(*d)) {
            needs.push((
                id.clone(),
                d.to_string(),
                format!("{template}: {id} DependsOn {d}"),
            ));
        }
        let params = r
            .pointer("/Properties/Parameters")
            .and_then(Value::as_object);
        for (key, v) in params.into_iter().flatten() {
            // A literal, as the stack gets it; `${` would read as a reference in Ferry's syntax.
            let literal = ferry_package::literal_value(v).filter(|t| !t.contains("${"));
            if let Some(value) = literal {
                values.push((id.clone(), key.clone(), value));
                continue;
            }
            let parts = value_parts(v).filter(|parts| {
                parts.iter().all(|p| match p {
                    Part::Output(app, _) => apps.contains_key(app),
                    Part::Text(t) => !t.contains('$'),
                })
            });
            let Some(parts) = parts.filter(|p| p.iter().any(|p| matches!(p, Part::Output(..))))
            else {
                untranslated.push((id.clone(), key.clone()));
                continue;
            };
            for p in &parts {
                if let Part::Output(app, output) = p {
                    needs.push((
                        id.clone(),
                        app.clone(),
                        format!("{template}: {id} passes {app}.Outputs.{output} to {key}"),
                    ));
                }
            }
            passes.push((id.clone(), key.clone(), parts));
        }
    }
    Umbrella {
        template: template.to_string(),
        apps,
        needs,
        passes,
        values,
        untranslated,
    }
}

/// A value as text and other stacks' outputs: `Fn::GetAtt <App>.Outputs.<Key>`, a literal,
/// `Fn::Join` of those, or `Fn::Sub` of a string whose references are outputs; `None` for
/// anything else.
fn value_parts(v: &Value) -> Option<Vec<Part>> {
    if let Some((app, output)) = app_output(v) {
        return Some(vec![Part::Output(app, output)]);
    }
    if let Some(text) = ferry_package::literal_value(v) {
        return Some(vec![Part::Text(text)]);
    }
    if let Some(Value::Array(join)) = v.get("Fn::Join") {
        let sep = join.first()?.as_str()?;
        let mut out = Vec::new();
        for (i, item) in join.get(1)?.as_array()?.iter().enumerate() {
            if i > 0 {
                out.push(Part::Text(sep.to_string()));
            }
            out.extend(value_parts(item)?);
        }
        return Some(out);
    }
    let mut rest = v.get("Fn::Sub")?.as_str()?;
    let mut out = Vec::new();
    while let Some(at) = rest.find("${") {
        out.push(Part::Text(rest[..at].to_string()));
        let end = rest[at..].find('}')? + at;
        let (app, key) = rest[at + 2..end].split_once(".Outputs.")?;
        out.push(Part::Output(app.to_string(), key.to_string()));
        rest = &rest[end + 1..];
    }
    out.push(Part::Text(rest.to_string()));
    Some(out)
}

/// `Fn::GetAtt <App>.Outputs.<Key>` (either form) → (app, key).
fn app_output(v: &Value) -> Option<(String, String)> {
    let att = v.get("Fn::GetAtt")?;
    let (app, rest) = match att {
        Value::String(s) => s.split_once('.')?,
        Value::Array(a) => (a.first()?.as_str()?, a.get(1)?.as_str()?),
        _ => return None,
    };
    let key = rest.strip_prefix("Outputs.")?;
    Some((app.to_string(), key.to_string()))
}

/// The build step that makes `missing` (a path in service folder `dir` that the repository does
/// not hold): the one [`build_step`] guesses in the service folder, whose build (a parent POM, a
/// Gradle settings file) builds every module; only when it holds no build file, the one of the
/// nearest folder from `missing` up to it holding one (`vtl-processor/pom.xml` for
/// `vtl-processor/target/app.jar`), run from the service folder, which is where a build runs.
fn build_step_towards(root: &Path, dir: &str, missing: &str) -> Option<(Vec<String>, String)> {
    if let Some(step) = build_step(root, dir) {
        return Some(step);
    }
    let below = missing
        .strip_prefix(dir)
        .unwrap_or(missing)
        .trim_start_matches('/');
    let mut sub: Vec<&str> = below.split('/').collect();
    sub.pop();
    while !sub.is_empty() {
        let rel = sub.join("/");
        let at = if dir.is_empty() {
            rel.clone()
        } else {
            format!("{dir}/{rel}")
        };
        // The build is a line a shell runs: a folder whose name a shell or `cd` would read
        // otherwise (a variable, an option) is passed over.
        let plain = sub.iter().all(|part| {
            !part.starts_with('-')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
        if let Some((argv, from)) = build_step(root, &at).filter(|_| plain) {
            // `sh -c "…"` steps run their line in the subfolder too.
            let line = match argv.as_slice() {
                [sh, c, inner] if sh == "sh" && c == "-c" => inner.clone(),
                _ => argv.join(" "),
            };
            return Some((
                vec!["sh".into(), "-c".into(), format!("cd {rel} && {line}")],
                format!("{rel}/{from}"),
            ));
        }
        sub.pop();
    }
    None
}

/// The command that builds the project in `dir`, by its build files, and which file chose it.
fn build_step(root: &Path, dir: &str) -> Option<(Vec<String>, String)> {
    let folder = root.join(dir);
    let has = |f: &str| folder.join(f).is_file();
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if has("pom.xml") {
        return Some((argv(&["mvn", "--batch-mode", "package"]), "pom.xml".into()));
    }
    for gradle in ["build.gradle", "build.gradle.kts"] {
        if has(gradle) {
            let tool = if has("gradlew") {
                "./gradlew"
            } else {
                "gradle"
            };
            return Some((argv(&[tool, "build"]), gradle.into()));
        }
    }
    let scripts_build = std::fs::read(folder.join("package.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|p| p.pointer("/scripts/build").is_some());
    if scripts_build {
        // Never a step that writes into the checkout it builds from (a package-lock.json that
        // `npm install` writes where there is none makes the service changed on every plan of
        // the working tree, and its records dirty), as a Serverless service's install.
        let (line, from) = match crate::node_lock(&folder) {
            Some("yarn.lock") => ("yarn install --frozen-lockfile && yarn run build", ""),
            Some("pnpm-lock.yaml") => ("pnpm install --frozen-lockfile && pnpm run build", ""),
            Some(_) => ("npm ci --no-audit --no-fund && npm run build", ""),
            None => (
                "npm install --no-package-lock --no-audit --no-fund && npm run build",
                "; no lock file, so it installs without writing one, and each build may resolve other versions: commit a package-lock.json and use `npm ci`",
            ),
        };
        return Some((
            argv(&["sh", "-c", line]),
            format!("package.json's build script{from}"),
        ));
    }
    has("Makefile").then(|| (argv(&["make"]), "Makefile".into()))
}

/// Where each of several templates of one folder `rel` deploys from, as (folder, template
/// relative to it, SAM or not), in `templates`' order, and notes. Ferry deploys one template per
/// service folder, and a folder of several stacks (`backend/auth.yaml`,
/// `backend/product-mock.yaml`, …) is common. A SAM template whose code all lies in one subfolder
/// of its own (`product-mock-service/`) gets that subfolder, its template above it
/// (`template = "../product-mock.yaml"`); a template naming no local path gets a folder named
/// after it (`backend/auth`, holding only its service.toml); the first template reaching more of
/// the folder than one subfolder keeps the folder, and any other such template is left out.
pub(crate) fn split(
    root: &Path,
    rel: &str,
    templates: &[(String, bool)],
) -> (Vec<(String, String, bool)>, Vec<String>) {
    let reach: Vec<Vec<String>> = templates
        .iter()
        .map(|(f, sam)| {
            if !*sam {
                return Vec::new();
            }
            reached(root, &format!("{rel}/{f}"))
                .into_iter()
                .map(|r| {
                    // A file's folder: what a service folder must hold.
                    match r.path.rsplit_once('/') {
                        Some((d, _)) if root.join(&r.path).is_file() => d.to_string(),
                        None if root.join(&r.path).is_file() => String::new(),
                        _ => r.path,
                    }
                })
                .collect()
        })
        .collect();
    let mut placed: Vec<(String, String, bool)> = Vec::new();
    let mut notes = Vec::new();
    let mut kept: Option<&str> = None;
    for (i, (file, sam)) in templates.iter().enumerate() {
        let up = |dir: &str| {
            let depth = dir[rel.len() + 1..].split('/').count();
            format!("{}{file}", "../".repeat(depth))
        };
        if reach[i].is_empty() {
            let stem = file.rsplit_once('.').map_or(file.as_str(), |(s, _)| s);
            let dir = format!("{rel}/{}", crate::valid_name(stem));
            // The same stack in another format (`vpc.json` beside `vpc.yaml`): the one placed
            // first (readable, else YAML; see the walk) is it.
            if let Some((_, twin, _)) = placed.iter().find(|(d, _, _)| *d == dir) {
                notes.push(format!(
                    "{rel}/{file}: the same stack as {rel}/{}, in another format: left out",
                    twin.trim_start_matches("../")
                ));
                continue;
            }
            // A new folder: an existing one holds files whose changes would redeploy it.
            if !root.join(&dir).exists() || holds_only_service_toml(&root.join(&dir)) {
                notes.push(format!(
                    "{rel}/{file}: one of several templates of {rel}, naming no local path: its service folder is `{dir}`, holding only its service.toml (template `{}`)",
                    up(&dir)
                ));
                placed.push((dir.clone(), up(&dir), *sam));
                continue;
            }
        }
        let folder = reach[i]
            .iter()
            .skip(1)
            .fold(reach[i].first().cloned().unwrap_or_default(), |acc, p| {
                common(&acc, p)
            });
        let own = folder.starts_with(&format!("{rel}/"))
            && root.join(&folder).is_dir()
            && reach
                .iter()
                .enumerate()
                .all(|(j, paths)| j == i || !paths.iter().any(|p| within(p, &folder)));
        if own {
            notes.push(format!(
                "{rel}/{file}: one of several templates of {rel}, its code all in {folder}: that is its service folder (template `{}`)",
                up(&folder)
            ));
            placed.push((folder.clone(), up(&folder), *sam));
        } else if let Some(first) = kept {
            notes.push(format!(
                "{rel}/{file}: reaches as much of {rel} as {first}, which keeps the folder: left out; Ferry deploys one template per service folder, so give it a folder of its own holding its code"
            ));
        } else {
            kept = Some(file);
            placed.push((rel.to_string(), file.clone(), *sam));
        }
    }
    if let Some(kept) = kept {
        let others: Vec<&str> = templates
            .iter()
            .map(|(f, _)| f.as_str())
            .filter(|f| {
                *f != kept
                    && placed
                        .iter()
                        .any(|(_, p, _)| p.ends_with(&format!("../{f}")))
            })
            .collect();
        if !others.is_empty() {
            notes.push(format!(
                "{rel}: {kept} keeps the folder, which holds {}: a change to {} redeploys its service too",
                others.join(", "),
                if others.len() == 1 { "it" } else { "one of them" }
            ));
        }
    }
    (placed, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_in_common() {
        assert_eq!(common("backend/sam/app", "backend/target/x.jar"), "backend");
        assert_eq!(
            common("backend/sam/app", "backend/sam/app/x"),
            "backend/sam/app"
        );
        assert_eq!(common("a/b", "c/d"), "");
        assert!(within("a/b", "a") && within("a", "a") && within("a", ""));
        assert!(!within("ab", "a"));
    }

    #[test]
    fn outputs_of_applications_in_both_forms() {
        let v: Value = serde_json::json!({"Fn::GetAtt": ["Backend", "Outputs.Url"]});
        assert_eq!(app_output(&v), Some(("Backend".into(), "Url".into())));
        let v: Value = serde_json::json!({"Fn::GetAtt": "Backend.Outputs.Url"});
        assert_eq!(app_output(&v), Some(("Backend".into(), "Url".into())));
        let v: Value = serde_json::json!({"Fn::GetAtt": ["Backend", "Arn"]});
        assert_eq!(app_output(&v), None);
        assert_eq!(app_output(&serde_json::json!("x")), None);
    }
}
