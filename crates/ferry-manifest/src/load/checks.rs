//! Checks across services, once every manifest is read: unique names, a dependency graph
//! without unknown services or cycles, and stack names that CloudFormation accepts, one stack per
//! service and stage.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use ferry_graph::{DepGraph, GraphError};

use super::PROJECT_FILE;
use crate::diag::{Diagnostic, FileDiags, did_you_mean};
use crate::model::{Project, StageConfig};
use crate::parsed::ServiceDraft;
use crate::source::Source;
use crate::spanned::join_key;
use crate::stage::MAX_PREVIEW_ID;
use crate::stage::{MAX_STACK_NAME, is_valid_stack_name, render_stack_name};

/// A diagnostic in the manifest of `d`.
fn diag_at(d: &ServiceDraft, span: Option<Range<usize>>, key: &str, message: String) -> Diagnostic {
    let mut out = Vec::new();
    FileDiags::new(Path::new(&d.service.manifest_path()), &d.src, &mut out).error(
        span,
        Some(key),
        message,
    );
    out.pop().expect("one diagnostic")
}

/// Reports every pair of services with one name, in both manifests. `drafts` is sorted by name.
pub(super) fn check_duplicates(drafts: &[ServiceDraft], diags: &mut Vec<Diagnostic>) {
    for pair in drafts.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.service.name == b.service.name {
            for (this, other) in [(a, b), (b, a)] {
                diags.push(diag_at(
                    this,
                    this.name_span.clone(),
                    "service.name",
                    format!("service name `{}` is also used by {}; service names must be unique (set service.name in one of them)", this.service.name, other.service.manifest_path()),
                ));
            }
        }
    }
}

/// The dependency graph of the services (the first of each name); `None` when it has unknown
/// services, self-dependencies or cycles (reported at the declaring key). A dependency named
/// in `unread` (the folders of manifests that could not be read) is not called unknown: that
/// manifest's own problem is reported.
pub(super) fn check_graph(
    drafts: &[ServiceDraft],
    unread: &BTreeSet<&str>,
    diags: &mut Vec<Diagnostic>,
) -> Option<DepGraph> {
    let mut seen = BTreeSet::new();
    let unique: Vec<&ServiceDraft> = drafts
        .iter()
        .filter(|d| seen.insert(d.service.name.clone()))
        .collect();
    let names: Vec<&str> = unique.iter().map(|d| d.service.name.as_str()).collect();
    let errors = match DepGraph::new(
        unique
            .iter()
            .map(|d| (d.service.name.clone(), d.service.dependencies())),
    ) {
        Ok(g) => return Some(g),
        Err(e) => e,
    };
    let by_name: BTreeMap<&str, &ServiceDraft> = unique
        .iter()
        .map(|d| (d.service.name.as_str(), *d))
        .collect();
    for e in errors {
        let diag = match &e {
            GraphError::UnknownDependency { dependency, .. }
                if unread.contains(dependency.as_str()) =>
            {
                continue;
            }
            GraphError::UnknownDependency { node, dependency } => {
                let d = by_name[node.as_str()];
                let (span, key) = d.dep_sites.get(dependency).cloned().unzip();
                let hint = did_you_mean(dependency, names.iter().copied());
                diag_at(
                    d,
                    span,
                    key.as_deref().unwrap_or("service.depends-on"),
                    format!(
                        "unknown service `{dependency}`{hint}; known services: {}",
                        names.join(", ")
                    ),
                )
            }
            GraphError::SelfDependency { node } => {
                let d = by_name[node.as_str()];
                let (span, key) = d.dep_sites.get(node).cloned().unzip();
                diag_at(
                    d,
                    span,
                    key.as_deref().unwrap_or("service.depends-on"),
                    format!(
                        "service `{node}` depends on itself; remove it from its own dependencies"
                    ),
                )
            }
            GraphError::Cycle { path } => {
                let d = by_name[path[0].as_str()];
                let (span, key) = d.dep_sites.get(&path[1]).cloned().unzip();
                // The graph is one for every stage: a read of another stage's outputs orders
                // its service first too (in that stage it is a same-stage read).
                let through_output = path.windows(2).any(|w| {
                    by_name.get(w[0].as_str()).is_some_and(|d| {
                        d.dep_sites
                            .get(&w[1])
                            .is_some_and(|(_, k)| k.starts_with("parameters."))
                    })
                });
                diag_at(
                    d,
                    span,
                    key.as_deref().unwrap_or("service.depends-on"),
                    format!(
                        "dependency cycle {}; a service cannot depend on itself through others, remove one of these dependencies{}",
                        path.join(" -> "),
                        if through_output {
                            " (an `${output:…}` reference orders the service it reads first in every stage, whichever stage it names; pass such a value another way, e.g. an SSM parameter)"
                        } else {
                            ""
                        }
                    ),
                )
            }
            other => diag_at(by_name[names[0]], None, "service", other.to_string()),
        };
        diags.push(diag);
    }
    None
}

/// Whether a service's `stack-name` holds `{stage}` (else every stage would deploy one stack)
/// and no placeholder but `{project}`, `{service}` and `{stage}`; what it does not is
/// reported. Its other characters are judged by the stack names it gives.
pub(super) fn check_own_stack_pattern(
    fd: &mut FileDiags<'_>,
    pattern: &str,
    span: &Range<usize>,
) -> bool {
    let unknown = pattern
        .split('{')
        .skip(1)
        .filter_map(|after| after.split_once('}').map(|(ph, _)| ph))
        .find(|ph| !super::project::STACK_PLACEHOLDERS.contains(ph));
    if let Some(ph) = unknown {
        fd.error(
            Some(span.clone()),
            Some("service.stack-name"),
            format!("unknown placeholder `{{{ph}}}` in `{pattern}`; use {{project}}, {{service}} and {{stage}}"),
        );
        return false;
    }
    if !pattern.contains("{stage}") {
        fd.error(
            Some(span.clone()),
            Some("service.stack-name"),
            format!("`{pattern}` has no {{stage}}: every stage would deploy the same stack; add {{stage}} where the stage goes"),
        );
        return false;
    }
    true
}

/// The stack-name pattern of a service: its own (its `stack-name`, or a Serverless service's
/// framework's), else the project's.
fn stack_pattern<'a>(project: &'a Project, d: &'a ServiceDraft) -> &'a str {
    d.service
        .stack_name
        .as_deref()
        .unwrap_or(&project.stack_name)
}

/// Reports every stack name, for each valid stage and service, that CloudFormation would refuse;
/// with preview stages (`previews`), a service whose stack name leaves too little room for a
/// preview stage's id.
pub(super) fn check_stack_names(
    project: &Project,
    stages: &BTreeMap<String, StageConfig>,
    previews: bool,
    drafts: &[ServiceDraft],
    diags: &mut Vec<Diagnostic>,
) {
    if previews {
        check_preview_room(project, drafts, diags);
    }
    // One stack for two services, or for two stages of one service: reported once per pair,
    // at the first stage it happens.
    let mut owners: BTreeMap<String, (&ServiceDraft, &str)> = BTreeMap::new();
    let mut clashes: BTreeSet<(&str, &str)> = BTreeSet::new();
    // A bad stack name is reported once per service and kind of problem, at its first stage;
    // one too long, once per service with every stage where it is (the longest decides how
    // much to cut).
    let mut bad: BTreeSet<&str> = BTreeSet::new();
    // Service → its draft, its first stage's stack name, and each (stage, length).
    type TooLong<'d> = (&'d ServiceDraft, String, Vec<(String, usize)>);
    let mut long: BTreeMap<&str, TooLong> = BTreeMap::new();
    for stage in stages.keys().filter(|s| is_valid_stack_name(s)) {
        for d in drafts {
            let name = render_stack_name(
                stack_pattern(project, d),
                &project.name,
                &d.service.name,
                stage,
            );
            match owners.get(&name) {
                // Two services of one name are reported as such (`check_duplicates`).
                Some((first, _))
                    if first.service.name == d.service.name && !std::ptr::eq(*first, d) => {}
                Some((first, first_stage))
                    if clashes.insert((first.service.name.as_str(), d.service.name.as_str())) =>
                {
                    let serverless = d.service.kind == crate::ServiceKind::Serverless;
                    let own = d.service.stack_name.is_some() && !serverless;
                    let message = if std::ptr::eq(*first, d) {
                        let how = if serverless {
                            "its stack name must hold the stage (`${sls:stage}` in provider.stackName of its serverless.yml, or {stage} in its stack-name)"
                        } else if own {
                            "its stack-name must hold {stage}"
                        } else {
                            "project.stack-name must hold {stage}"
                        };
                        format!(
                            "service `{}` would deploy stack `{name}` in stage `{first_stage}` and in stage `{stage}`: {how}",
                            d.service.name
                        )
                    } else {
                        let how = if serverless {
                            "give one another `service:` in its serverless.yml, or a stack-name in its service.toml"
                        } else if own {
                            "give one another stack-name in its service.toml"
                        } else {
                            "give one another name (service.name in its service.toml), or change project.stack-name"
                        };
                        let elsewhere = if *first_stage == stage.as_str() {
                            String::new()
                        } else {
                            format!(" in stage `{first_stage}`")
                        };
                        format!(
                            "service `{}` would deploy stack `{name}` in stage `{stage}`, the stack of service `{}` ({}){elsewhere}: {how}",
                            d.service.name,
                            first.service.name,
                            first.service.manifest_path()
                        )
                    };
                    diags.push(diag_at(d, None, "service.stack-name", message));
                }
                Some(_) => {}
                None => {
                    owners.insert(name.clone(), (d, stage.as_str()));
                }
            }
            if name.len() > MAX_STACK_NAME {
                let (_, _, stages) = long
                    .entry(d.service.name.as_str())
                    .or_insert_with(|| (d, name.clone(), Vec::new()));
                stages.push((stage.clone(), name.len()));
                continue;
            }
            if !is_valid_stack_name(&name) && bad.insert(d.service.name.as_str()) {
                let message = format!(
                    "stack name `{name}` of service `{}` is not one CloudFormation accepts (a letter, then letters, digits and '-'); change {}",
                    d.service.name,
                    stack_name_setting(d)
                );
                diags.push(Diagnostic {
                    file: PROJECT_FILE.into(),
                    line: None,
                    key: Some(join_key("stages", stage)),
                    message,
                });
            }
        }
    }
    for (service, (d, name, stages)) in long {
        let setting = stack_name_setting(d);
        let (first, len) = &stages[0];
        let others: Vec<String> = stages[1..]
            .iter()
            .map(|(s, n)| format!("{n} in stage `{s}`"))
            .collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!(", and {}", others.join(", "))
        };
        diags.push(Diagnostic {
            file: PROJECT_FILE.into(),
            line: None,
            key: Some(join_key("stages", first)),
            message: format!(
                "stack name `{name}` of service `{service}` is {len} characters long{also} (at most {MAX_STACK_NAME}); shorten the stage or service name, or change {setting}"
            ),
        });
    }
}

/// What names a service's stack, for a message saying what to change.
fn stack_name_setting(d: &ServiceDraft) -> &'static str {
    if d.service.kind == crate::ServiceKind::Serverless {
        "the `service:` (or provider.stackName) of its serverless.yml, or set stack-name in its service.toml"
    } else if d.service.stack_name.is_some() {
        "the stack-name in its service.toml"
    } else {
        "project.stack-name, or the service's name (service.name in its service.toml)"
    }
}

/// A preview stage's id (a branch name, cut to [`MAX_PREVIEW_ID`] characters with a hash that
/// keeps two long branch names apart) must fit in every service's stack name.
fn check_preview_room(project: &Project, drafts: &[ServiceDraft], diags: &mut Vec<Diagnostic>) {
    for d in drafts {
        let room =
            crate::stage::stage_room(stack_pattern(project, d), &project.name, &d.service.name);
        if room < MAX_PREVIEW_ID {
            let serverless = d.service.kind == crate::ServiceKind::Serverless;
            let shorten = if serverless {
                "shorten the `service:` of its serverless.yml (or its stack-name)"
            } else if d.service.stack_name.is_some() {
                "shorten the stack-name in its service.toml"
            } else {
                "give it a shorter name (service.name in its service.toml), or shorten project.stack-name"
            };
            let key = if d.name_span.is_some() {
                "service.name"
            } else {
                "service (folder name)"
            };
            diags.push(diag_at(
                d,
                Some(d.name_span.clone().unwrap_or(0..0)),
                key,
                format!(
                    "service `{}` leaves room for {room} characters of a preview stage's id in its stack name (at most {MAX_STACK_NAME} characters), and [stages.\"*\"] needs {MAX_PREVIEW_ID} (a branch name is cut to that many, so that its preview keeps its stacks whatever services come and go): {shorten}",
                    d.service.name
                ),
            ));
        }
    }
}

/// Every stage a service reads outputs of by name (`${output:STAGE:service.Key}`) is one a
/// deploy could find: a named stage of ferry.toml, or, when `[stages."*"]` makes preview
/// stages, a name whose preview id is no named stage's (`PROD`, `dev ` are refused as stages).
pub(super) fn check_output_stages(
    stages: &BTreeMap<String, StageConfig>,
    previews: bool,
    drafts: &[ServiceDraft],
    diags: &mut Vec<Diagnostic>,
) {
    use crate::reference::{OutputStage, Reference};
    for d in drafts {
        for (param, t) in &d.service.parameters {
            for r in t.references() {
                if let Reference::Output {
                    stage: Some(OutputStage::Named(s)),
                    ..
                } = r
                    && !stages.contains_key(s)
                {
                    let known: Vec<&str> = stages.keys().map(String::as_str).collect();
                    // With preview stages any name may be one, but not a name whose id is a
                    // named stage's (`PROD`, `dev `): no deploy resolves it.
                    if previews {
                        let id = crate::stage::sanitize_stage_name(s, MAX_PREVIEW_ID);
                        let named = known.iter().find(|n| n.eq_ignore_ascii_case(&id));
                        let why = match named {
                            _ if id.is_empty() => "its id would be empty".to_string(),
                            Some(named) => format!(
                                "its id would be `{id}`, the named stage `{named}`'s; did you mean `{named}`?"
                            ),
                            None => continue,
                        };
                        diags.push(diag_at(
                            d,
                            None,
                            &join_key("parameters", param),
                            format!(
                                "reads outputs of stage `{s}`, which no deploy can name: not a stage of ferry.toml, and as a preview stage {why}"
                            ),
                        ));
                        continue;
                    }
                    diags.push(diag_at(
                        d,
                        None,
                        &join_key("parameters", param),
                        format!(
                            "reads outputs of stage `{s}`, which is not a stage of ferry.toml (stages: {}){}",
                            known.join(", "),
                            crate::diag::did_you_mean(s, known.iter().copied())
                        ),
                    ));
                }
            }
        }
    }
}

/// A service may read its own stack's outputs of another stage (a network peered with itself
/// elsewhere), never of the stage deploying it: there that is its own stack, which it would
/// need before it exists. Refused where a stage of ferry.toml is named, directly or by that
/// stage's own variable.
pub(super) fn check_own_outputs(
    stages: &BTreeMap<String, StageConfig>,
    drafts: &[ServiceDraft],
    diags: &mut Vec<Diagnostic>,
) {
    use crate::reference::{OutputStage, Reference};
    for d in drafts {
        for (param, t) in &d.service.parameters {
            for r in t.references() {
                let Reference::Output {
                    stage: Some(of),
                    service,
                    ..
                } = r
                else {
                    continue;
                };
                if *service != d.service.name {
                    continue;
                }
                let own: Vec<&str> = stages
                    .iter()
                    .filter(|(name, config)| match of {
                        OutputStage::Named(s) => s == *name,
                        OutputStage::Var(v) => config.variables.get(v) == Some(*name),
                    })
                    .map(|(name, _)| name.as_str())
                    .collect();
                if let Some(stage) = own.first() {
                    diags.push(diag_at(
                        d,
                        None,
                        &join_key("parameters", param),
                        format!(
                            "reads `{r}`, its own stack's outputs, which deploying stage `{stage}` are those of the stack being deployed (none before it exists); read another stage's there, e.g. through a stage variable that names another stage in each stage, or use the value in the template itself"
                        ),
                    ));
                }
            }
        }
    }
}

/// Every stage a service can deploy to, for checks that render its configuration per stage:
/// (stage id, the table that configures it in ferry.toml, its settings). The named stages,
/// then the preview default, whose stages' ids are known only when they deploy (`preview`
/// stands in for them).
fn deployable_stages<'s>(
    stages: &'s BTreeMap<String, StageConfig>,
    default_stage: Option<&'s StageConfig>,
) -> Vec<(&'s str, String, &'s StageConfig)> {
    stages
        .iter()
        .map(|(n, c)| (n.as_str(), format!("[stages.{n}]"), c))
        .chain(default_stage.map(|c| ("preview", "[stages.\"*\"]".to_string(), c)))
        .collect()
}

/// Every `${var:NAME}` a service reads (as a value, in an SSM name, or as the stage of an
/// output) is defined by every stage it can deploy to: each named stage and the preview default.
pub(super) fn check_variables(
    stages: &BTreeMap<String, StageConfig>,
    default_stage: Option<&StageConfig>,
    drafts: &[ServiceDraft],
    diags: &mut Vec<Diagnostic>,
) {
    use crate::reference::{OutputStage, Reference, Template};
    fn vars(t: &Template, out: &mut BTreeSet<String>) {
        for r in t.references() {
            match r {
                Reference::Var(v)
                | Reference::Output {
                    stage: Some(OutputStage::Var(v)),
                    ..
                } => {
                    out.insert(v.clone());
                }
                Reference::Ssm { name } => vars(name, out),
                _ => {}
            }
        }
    }
    let all = deployable_stages(stages, default_stage);
    for d in drafts {
        for (param, t) in &d.service.parameters {
            let mut used = BTreeSet::new();
            vars(t, &mut used);
            for v in used {
                let missing: Vec<&str> = all
                    .iter()
                    .filter(|(_, _, c)| !c.variables.contains_key(&v))
                    .map(|(_, table, _)| table.as_str())
                    .collect();
                if !missing.is_empty() {
                    diags.push(diag_at(
                        d,
                        None,
                        &join_key("parameters", param),
                        format!(
                            "reads `${{var:{v}}}`, which {} of ferry.toml {} not define; add `variables = {{ {v} = \"…\" }}` there",
                            missing.join(", "),
                            if missing.len() == 1 { "does" } else { "do" }
                        ),
                    ));
                }
            }
        }
    }
}

/// Every `${ssm:NAME}` a service reads names a parameter SSM accepts, in every stage it can deploy
/// to: rendered as a deploy would render it (`${stage}` as the stage id, a preview stage's as
/// `preview`), under the stage's `parameters-path` when relative, and checked against SSM's
/// naming rules. (A `${var:…}` a stage does not define is [`check_variables`]'s to report.)
pub(super) fn check_ssm_references(
    project: &Project,
    stages: &BTreeMap<String, StageConfig>,
    default_stage: Option<&StageConfig>,
    drafts: &[ServiceDraft],
    diags: &mut Vec<Diagnostic>,
) {
    use crate::reference::Reference;
    let all = deployable_stages(stages, default_stage);
    for d in drafts {
        for (param, t) in &d.service.parameters {
            for name in t.references().filter_map(|r| match r {
                Reference::Ssm { name } => Some(name),
                _ => None,
            }) {
                // The first refusal, with every stage that refuses the name: one message per
                // reference, however many stages share the problem.
                let mut first = None;
                let mut refusing = Vec::new();
                for (id, table, config) in &all {
                    let full = crate::model::ssm_full_name(
                        name,
                        &project.name,
                        &d.service.name,
                        id,
                        config,
                    );
                    if let Some(Err(e)) = full.map(|f| crate::ssm_name::check_ssm_read_name(&f)) {
                        first.get_or_insert(e);
                        refusing.push(table.as_str());
                    }
                }
                if let Some(e) = first {
                    let message = format!(
                        "reads `${{ssm:{name}}}`, which is no name SSM accepts ({} of ferry.toml): {e}",
                        refusing.join(", ")
                    );
                    diags.push(diag_at(d, None, &join_key("parameters", param), message));
                }
            }
        }
    }
}

/// Every input glob (`inputs` of each service, `project.global-inputs`) can match what git
/// tracks: its fixed start (the folders before any wildcard) is a file or folder of the
/// repository, and reaches it through no symbolic link. Git keeps a link, not the files below
/// it, and nothing under `.git`; a misspelt folder matches nothing. Each would miss every
/// change it was written to catch, in silence. Checked on every load, cached services too: the
/// paths lie outside the service folder whose content id keys the cache.
pub(super) fn check_input_paths(
    source: &dyn Source,
    project: &Project,
    project_src: &str,
    drafts: &[ServiceDraft],
    diags: &mut Vec<Diagnostic>,
) {
    let submodules = submodule_paths(source);
    // Many services name the same shared folder: each glob is looked at once.
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut problem = |glob: &str| -> Option<String> {
        seen.entry(glob.to_string())
            .or_insert_with(|| input_problem(source, &submodules, glob))
            .clone()
    };
    let mut fd = FileDiags::new(Path::new(PROJECT_FILE), project_src, diags);
    for glob in &project.global_inputs {
        if let Some(why) = problem(glob) {
            fd.error(
                quoted_span(project_src, glob),
                Some("project.global-inputs"),
                why,
            );
        }
    }
    for d in drafts {
        for glob in &d.service.inputs {
            if let Some(why) = problem(glob) {
                diags.push(diag_at(d, quoted_span(&d.src, glob), "service.inputs", why));
            }
        }
        // A template outside the service folder too: one git does not hold is one whose edits
        // no plan sees, and which no clone has. (An ignore lookup for every service would slow
        // each load of a large working tree: an ignored template inside its folder is not
        // caught.)
        let Some(template) = d.service.template_outside() else {
            continue;
        };
        let why = if template == ".git" || template.starts_with(".git/") {
            Some(format!(
                "`{template}` lies in git's own folder, which holds no file of the repository: no commit holds it and no plan sees it change; keep the template in the repository"
            ))
        } else if source.ignored(&template) {
            Some(format!(
                "`{template}` is ignored by git (.gitignore, .git/info/exclude or core.excludesFile): no commit holds it, so no plan sees it change and no clone has it; commit it, or stop ignoring it"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let span = quoted_span(&d.src, &d.service.template);
            diags.push(diag_at(d, span, "service.template", why));
        }
    }
}

/// Where `value` is written as a string in `src`, for the line of a problem.
fn quoted_span(src: &str, value: &str) -> Option<Range<usize>> {
    ["\"", "'"].iter().find_map(|q| {
        let at = src.find(&format!("{q}{value}{q}"))?;
        Some(at..at + value.len() + 2)
    })
}

/// The folders `.gitmodules` names as submodules (`path = …`). What lies below one is the
/// submodule's, not this repository's: a commit holds only the submodule's commit there, and a
/// clone may not have checked it out.
fn submodule_paths(source: &dyn Source) -> Vec<String> {
    if !source.is_file(".gitmodules") {
        return Vec::new();
    }
    let Ok(text) = source.read(".gitmodules") else {
        return Vec::new();
    };
    // git config syntax: `key = value`, keys in any case, `#` or `;` starting a comment.
    text.lines()
        .filter_map(|l| {
            let l = l.split(['#', ';']).next().unwrap_or_default();
            let (key, value) = l.split_once('=')?;
            key.trim().eq_ignore_ascii_case("path").then(|| {
                value
                    .trim()
                    .trim_matches('"')
                    .trim_end_matches('/')
                    .to_string()
            })
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// A glob whose brackets name a file or folder the repository has (`web/routes/[slug]/**`, as
/// Next.js and SvelteKit name routes): in a glob, `[slug]` is one character of `s`, `l`, `u`,
/// `g`, so it never matches the folder `[slug]`, whose changes no plan would see. Each path
/// the glob's segments up to the first such one name as written is looked at; `[[]` is a
/// literal `[`.
fn brackets_meant_literally(source: &dyn Source, glob: &str) -> Option<String> {
    let segments: Vec<&str> = glob.split('/').collect();
    let mut path = String::new();
    for (i, seg) in segments.iter().enumerate() {
        if !path.is_empty() {
            path.push('/');
        }
        if seg.contains(['*', '?', '{']) {
            return None;
        }
        // Written as a literal already (`[[]lang]`): the name it matches.
        if seg.contains("[[]") {
            path.push_str(&seg.replace("[[]", "["));
            continue;
        }
        path.push_str(seg);
        if !seg.contains('[') {
            continue;
        }
        if !(source.is_dir(&path) || source.is_file(&path)) {
            return None;
        }
        // The first `[…]`, which the glob reads as one character.
        let set = seg
            .find('[')
            .and_then(|at| seg[at..].find(']').map(|end| &seg[at..=at + end]))
            .unwrap_or(seg);
        let escaped: Vec<String> = segments
            .iter()
            .enumerate()
            .map(|(j, s)| {
                if j <= i && s.contains('[') && !s.contains("[[]") {
                    s.replace('[', "[[]")
                } else {
                    s.to_string()
                }
            })
            .collect();
        return Some(format!(
            "`{glob}` reads `{set}` as a set of characters (a glob's `[…]` matches one character of those inside), so it never matches `{path}`, which the repository has: no change there is ever seen; write each `[` as `[[]`: `{}`",
            escaped.join("/")
        ));
    }
    None
}

/// Why the input glob `glob` can never match a change, if it cannot. A path into a submodule
/// (`submodules`) is taken as it is: a plan sees the submodule's commit move.
fn input_problem(source: &dyn Source, submodules: &[String], glob: &str) -> Option<String> {
    if let Some(why) = brackets_meant_literally(source, glob) {
        return Some(why);
    }
    let fixed = crate::owners::fixed_start(glob);
    if fixed.is_empty() {
        return None;
    }
    let below = |dir: &str| fixed == dir || fixed.starts_with(&format!("{dir}/"));
    if submodules.iter().any(|m| below(m)) {
        return None;
    }
    if fixed == ".git" || fixed.starts_with(".git/") {
        return Some(format!(
            "`{glob}` names git's own folder, which holds no file of the repository: no change there is ever seen"
        ));
    }
    if let Some((link, target, _)) = super::service::link_on_path(source, "", &fixed) {
        let name = match crate::source::resolve_link(&link, &target) {
            // Advice to name the target only where the target is a place of the repository.
            Some(real)
                if !real.is_empty()
                    && (source.is_dir(&real) || source.is_file(&real))
                    && super::service::link_on_path(source, "", &real).is_none() =>
            {
                format!("name the place itself, `{real}{}`", &glob[link.len()..])
            }
            Some(_) => "name the files it should cover where they lie in the repository".into(),
            None => "its target lies outside the repository, whose changes no plan sees".into(),
        };
        let what = if link == fixed {
            format!("`{glob}` is a symbolic link (to `{target}`)")
        } else {
            format!("`{glob}` reaches `{fixed}` through the symbolic link `{link}` (to `{target}`)")
        };
        return Some(format!(
            "{what}: git keeps the link, not the files it leads to, so their changes are never seen; {name}"
        ));
    }
    if fixed.len() < glob.len() && source.is_file(&fixed) {
        return Some(format!(
            "`{glob}` matches nothing: `{fixed}` is a file, with nothing below it"
        ));
    }
    if !source.is_file(&fixed) && !source.is_dir(&fixed) {
        return Some(format!(
            "`{glob}` matches nothing: the repository has no `{fixed}` (paths are relative to the repository's root, and letter case counts); correct it, or remove it"
        ));
    }
    // On disk but never committed: it passes here and matches nothing in a clone. (Ferry's
    // own `ferry.toml`, a global input by default, ignored is what `validate` warns of with
    // the other configuration files a clone will lack.)
    if fixed != super::PROJECT_FILE && source.ignored(&fixed) {
        return Some(format!(
            "`{glob}` matches nothing git tracks: `{fixed}` is ignored (.gitignore, .git/info/exclude or core.excludesFile), so no commit holds its files and no plan sees them change; name the tracked files it is built from, or stop ignoring `{fixed}` and commit it"
        ));
    }
    None
}
