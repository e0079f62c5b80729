//! `services` and `validate`.

use crate::Ctx;
use crate::ui::table;

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum ListFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// Output format; json is a stable contract for scripts
    #[arg(long, value_enum, default_value_t)]
    format: ListFormat,
}

pub fn run(ctx: &Ctx, args: &ServicesArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    match args.format {
        ListFormat::Json => {
            let list: Vec<_> = ws.services.iter().map(|s| s.summary()).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        ListFormat::Text => {
            let rows: Vec<[String; 5]> = ws
                .services
                .iter()
                .map(|s| {
                    let deps: Vec<String> = s.dependencies().into_iter().collect();
                    let deps = if deps.is_empty() {
                        "-".to_string()
                    } else {
                        deps.join(", ")
                    };
                    [
                        s.name.clone(),
                        s.kind.to_string(),
                        s.dir.clone(),
                        deps,
                        s.template.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(["NAME", "KIND", "FOLDER", "DEPENDS ON", "TEMPLATE"], &rows)
            );
        }
    }
    Ok(())
}

pub fn validate(ctx: &Ctx) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    // Advice first: it holds whatever the templates say.
    let manifests: Vec<String> = ws.services.iter().map(|s| s.manifest_path()).collect();
    let files: Vec<&str> = std::iter::once(ferry_manifest::PROJECT_FILE)
        .chain(manifests.iter().map(String::as_str))
        .collect();
    // Both git checks read one repository; outside one, they say nothing.
    let repo = match ferry_changes::Repo::open(&ctx.root) {
        Ok(repo) => Some(repo),
        Err(e @ ferry_changes::BaseUnavailable::NotRepositoryRoot { .. }) => {
            eprintln!("warning: {e}: no plan can compare commits, so every deploy deploys all");
            None
        }
        // Inside a repository that tracks nothing here yet (a project just set up there).
        Err(_) => {
            if let Some(top) = ferry_changes::Repo::enclosing_top(&ctx.root) {
                let e = ferry_changes::BaseUnavailable::NotRepositoryRoot {
                    root: ctx.root.clone(),
                    top,
                };
                eprintln!("warning: {e}: no plan can compare commits, so every deploy deploys all");
            }
            None
        }
    };
    if let Some(repo) = &repo {
        warn_if_ignored(repo, &files);
        warn_if_template_ignored(repo, ws);
    }
    let problems = ferry_package::check_templates(ws, &ws.services);
    // An output read that the template it names does not declare: the deploy would stop there.
    // Every template read and parsed once for the checks below.
    let templates = ferry_package::Templates::new(ws);
    let missing = ferry_package::missing_outputs(&templates);
    // A preview stage a [ci] rule deploys to whose stacks no deploy would make.
    let mut previews = ws.ci_preview_problems();
    previews.extend(ws.acceptance_build_dir_problems());
    for p in &problems {
        eprintln!("{p}");
    }
    for m in &missing {
        eprintln!("{m}");
    }
    for p in &previews {
        eprintln!("{p}");
    }
    let errors = problems.len() + missing.len() + previews.len();
    // The warnings below are said with the errors, not after they are mended: a large
    // repository's first validate would otherwise hide them until its last error is gone.
    // A [ci] rule deploying to a preview named a letter or two from a named stage (`stagin`).
    for n in ws.ci_near_misses() {
        eprintln!("warning: {n}");
    }
    // Advice, not errors: a reader of an SSM parameter another service writes, not ordered
    // after it.
    for u in ferry_package::unlinked_ssm_readers(&templates) {
        eprintln!("warning: {u}");
    }
    // An importer of another service's export, not ordered after it.
    for u in ferry_package::unlinked_importers(&templates) {
        eprintln!("warning: {u}");
    }
    // A reader of another service's stack outputs (`${cf:…}`), not ordered after it.
    for (reader, of, stack) in ferry_serverless::unlinked_cf_readers(ws) {
        let manifest = ws
            .service(&reader)
            .map_or_else(String::new, |s| s.manifest_path());
        let (whose, add) = match of.as_slice() {
            [one] => (
                one.clone(),
                format!("add depends-on = [\"{one}\"] to {manifest}"),
            ),
            many => (
                format!("one of {}", many.join(", ")),
                format!("add the one it reads to depends-on in {manifest}"),
            ),
        };
        eprintln!(
            "warning: {reader} reads outputs of stack `{stack}` (${{cf:…}}), the stack of {whose}, and does not depend on it: nothing orders them (a first deploy may compile {reader} before those outputs exist), and a new output there never re-checks {reader}; {add}"
        );
    }
    // One literal resource name in two services' templates: the second deploy fails.
    for n in ferry_package::shared_names(&templates) {
        eprintln!("warning: {n}");
    }
    // One literal name in every stage of one account and region: the second stage fails.
    for n in ferry_package::names_every_stage_gives(&templates) {
        eprintln!("warning: {n}");
    }
    // A value left empty (as `init` leaves what it cannot infer) for a parameter with no
    // default: deployed as an empty string.
    for (service, key) in ferry_package::empty_parameters(&templates) {
        let manifest = ws
            .service(&service)
            .map_or_else(String::new, |s| s.manifest_path());
        eprintln!(
            "warning: {manifest}: parameters.{key} is empty, and the template of `{service}` gives `{key}` no default: it deploys as an empty string (`init` leaves what it cannot infer empty, to fill); set it, or give the parameter a Default"
        );
    }
    // A value the stage decides (`${stage}`) that a stage's deploy would be refused for.
    for r in ferry_package::refused_stage_values(&templates) {
        eprintln!("warning: {r}");
    }
    // Roles made without the stage's permissions boundary: a bootstrapped stage refuses them.
    for (service, ids) in ferry_package::unbounded_roles(&templates) {
        eprintln!(
            "warning: `{service}` makes IAM roles without a permissions boundary ({}): a stage bootstrapped by Ferry refuses to make them (its deployer makes roles only with the stage's boundary on them); declare the template parameter `{b}` (Ferry fills it) and give each `PermissionsBoundary: !Sub \"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/${{{b}}}\"` (SAM functions: under Globals.Function)",
            ids.join(", "),
            b = ferry_package::BOUNDARY_PARAMETER
        );
    }
    // A literal value for a parameter its template declares NoEcho: a secret in the
    // repository.
    for (service, key) in ferry_package::literal_secrets(&templates) {
        let manifest = ws
            .service(&service)
            .map_or_else(String::new, |s| s.manifest_path());
        eprintln!(
            "warning: {manifest}: parameters.{key} is a literal value, and the template of `{service}` declares `{key}` NoEcho: a secret kept in the repository (every clone and fork holds it; `outputs` shows it where an output echoes it); keep it in SSM as a SecureString (`param set <stage> <name> --secure`) and write `{key} = \"${{ssm:<name>}}\"`"
        );
    }
    // An output echoing a NoEcho parameter: a secret shown to every reader of the stack, and
    // refused by a deploy that passes it a SecureString.
    for e in ferry_package::echoed_secrets(&templates) {
        eprintln!("warning: {e}");
    }
    // Code a service builds from outside its folder that none of its inputs covers, as init
    // infers it: a change there would not deploy it.
    let worktree = ferry_changes::WorktreeSource::new(&ws.root);
    let ignored = |path: &str| ferry_manifest::Source::ignored(&worktree, path);
    for u in ferry_init::undeclared_inputs(ws, &ignored) {
        eprintln!("warning: {u}");
    }
    // A Serverless handler loading code from outside its folder that nothing bundles: the
    // framework's archive would lack it.
    for u in ferry_init::unbundled_imports(ws) {
        eprintln!("warning: {u}");
    }
    // A secret a Serverless configuration reads from the environment: the compiled template
    // holds it.
    for (service, var) in ferry_serverless::workspace_secret_env_reads(ws) {
        eprintln!(
            "warning: {}",
            ferry_serverless::env_secret_warning(&service, &var)
        );
    }
    // An artifact or site folder that is not there, and no build of the service makes it.
    for a in ferry_package::absent_package_paths(ws) {
        eprintln!("warning: {a}");
    }
    // A SAM function folder whose dependencies `sam build` would install, and Ferry's zip lacks.
    for u in ferry_package::unbuilt_dependencies(ws) {
        eprintln!("warning: {u}");
    }
    if let Some(repo) = &repo {
        warn_if_build_output_tracked(repo, ws);
    }
    if errors > 0 {
        anyhow::bail!(
            "{errors} problem(s) in the services' templates and stacks (the configuration itself is valid)"
        );
    }
    let stages: Vec<&str> = ws
        .stages
        .keys()
        .map(String::as_str)
        .chain(ws.default_stage.as_ref().map(|_| "*"))
        .collect();
    println!(
        "ok: project `{}`, {} service(s), stage(s) {}",
        ws.project.name,
        ws.services.len(),
        stages.join(", ")
    );
    Ok(())
}

/// Warns when git does not ignore a `built-template` (what `sam build` writes into the service
/// folder), or, under `.aws-sam/`, the `build.toml` that `sam build` writes beside its `build/`
/// folder (a `.gitignore` of `build/` covers the template, not that file): after each build the
/// service would look changed to a plan of the working tree, a protected stage would refuse the
/// uncommitted change, and the build output could be committed. So with a Serverless service's
/// `.serverless/`.
fn warn_if_build_output_tracked(repo: &ferry_changes::Repo, ws: &ferry_manifest::Workspace) {
    let built: Vec<String> = ws
        .services
        .iter()
        .filter_map(|s| {
            let t = s.package.built_template.as_ref()?;
            Some((s, t))
        })
        .flat_map(|(s, t)| {
            let template = format!("{}/{t}", s.dir);
            let build_toml = template
                .split_once("/.aws-sam/")
                .map(|(dir, _)| format!("{dir}/.aws-sam/build.toml"));
            std::iter::once(template).chain(build_toml)
        })
        .collect();
    // The Serverless Framework's scratch folder, which a compile stopped before its end (a
    // killed CI job) leaves behind: the service then looks changed until the next compile.
    let scratch: Vec<String> = ws
        .services
        .iter()
        .filter(|s| s.kind == ferry_manifest::ServiceKind::Serverless)
        .map(|s| format!("{}/.serverless/serverless-state.json", s.dir))
        .collect();
    let paths: Vec<&str> = built.iter().chain(&scratch).map(String::as_str).collect();
    for p in repo.not_ignored(&paths).unwrap_or_default() {
        if let Some(dir) = p.strip_suffix("/.serverless/serverless-state.json") {
            eprintln!(
                "warning: git does not ignore {dir}/.serverless/, which the Serverless Framework writes as it compiles: one a compile stopped before its end (a killed job) leaves makes the service look changed, and a protected stage refuses its next package; add .serverless/ to .gitignore"
            );
            continue;
        }
        let folder = p
            .rsplit_once("/.aws-sam/")
            .map_or("the build's output folder", |_| ".aws-sam/");
        eprintln!(
            "warning: git does not ignore {p}, which a build writes: after each build its service looks changed to a plan of the working tree; add {folder} to .gitignore"
        );
    }
}

/// Warns when git ignores a service's template inside its folder and does not track it (one
/// outside its folder is refused on every load; inside, the ignore lookup is left to
/// `validate`, as one for every service would slow each load of a large working tree): no
/// commit holds it, so no plan sees it change and no clone has it, unless a step before Ferry
/// writes it in every clone.
fn warn_if_template_ignored(repo: &ferry_changes::Repo, ws: &ferry_manifest::Workspace) {
    let inside: Vec<(String, &str)> = ws
        .services
        .iter()
        .filter(|s| s.template_outside().is_none())
        // (Kept lexically normal by the load, as git names paths.)
        .map(|s| (s.template_path(), s.name.as_str()))
        .collect();
    let paths: Vec<&str> = inside.iter().map(|(p, _)| p.as_str()).collect();
    for p in repo.ignored_untracked(&paths).unwrap_or_default() {
        let service = inside.iter().find(|(t, _)| t == p).map_or("", |(_, s)| s);
        eprintln!(
            "warning: git ignores {p}, the template of service `{service}`, and does not track it: no commit holds it, so no plan sees it change and a clone (a CI build) does not have it; commit it (`git add -f {p}`) or stop ignoring it (`git check-ignore -v {p}` names the rule), unless a step before Ferry writes it in every clone"
        );
    }
}

/// Warns when git ignores some of `files` (repository relative) and does not track them: they
/// would never reach a clone, so a CI build would find no configuration (a repository ignoring
/// `*.toml` for its own tools' files, say).
pub(crate) fn warn_if_ignored(repo: &ferry_changes::Repo, files: &[&str]) {
    let Ok(ignored) = repo.ignored_untracked(files) else {
        return;
    };
    if ignored.is_empty() {
        return;
    }
    let shown: Vec<&str> = ignored.iter().take(5).copied().collect();
    let more = match ignored.len() - shown.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    eprintln!(
        "warning: git ignores {}{more}, which {} not tracked: a clone (a CI build) will not have {}; add `!ferry.toml` and `!service.toml` to .gitignore after the rule that ignores them (`git check-ignore -v {}` names it), or commit them with `git add -f`",
        shown.join(", "),
        if ignored.len() == 1 { "is" } else { "are" },
        if ignored.len() == 1 { "it" } else { "them" },
        ignored[0]
    );
}
