//! `plan` and `graph`.

use anyhow::Context as _;
use ferry_changes::{Head, Repo};
use ferry_ci::CiContext;
use ferry_plan::PlanRequest;

use crate::Ctx;

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum PlanFormat {
    #[default]
    Text,
    /// The stable JSON contract (see README)
    Json,
    /// A buildspec `batch: build-graph:` section, one build per service to deploy
    CodebuildBatch,
    /// JSON waves for GitHub Actions job matrices
    GithubMatrix,
}

/// Which services a plan (and a deploy) considers.
#[derive(Debug, clap::Args)]
pub struct SelectArgs {
    /// Compare every service with this commit, branch or tag. Without it, each service's base is
    /// its deployment record (plan --since makes no AWS call at all)
    #[arg(long, value_name = "REF", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub since: Option<String>,
    /// Only these services and their dependencies (repeatable)
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
    /// Also deploy the dependents of every service that deploys
    #[arg(long)]
    pub with_dependents: bool,
    /// Deploy every service (also FORCE_DEPLOY_ALL=true)
    #[arg(long)]
    pub all: bool,
    /// Fail when a base cannot be used, instead of treating its services as changed
    #[arg(long)]
    pub strict: bool,
}

impl SelectArgs {
    /// A plan request for `stage` with these choices.
    pub fn request(&self, stage: &str, ci: &CiContext) -> PlanRequest {
        let mut req = PlanRequest::new(stage, ferry_plan::default_head(ci), ci.clone());
        req.since = self.since.clone();
        req.services = self.services.clone();
        req.with_dependents = self.with_dependents;
        req.strict = self.strict;
        req.force = if self.all {
            Some("--all".into())
        } else if ci.force_deploy_all {
            // As it was set (`1`, `yes`, `TRUE`).
            let value = std::env::var("FORCE_DEPLOY_ALL").unwrap_or_else(|_| "true".into());
            Some(format!("FORCE_DEPLOY_ALL={}", value.trim()))
        } else {
            if let Ok(v) = std::env::var("FORCE_DEPLOY_ALL")
                && ferry_ci::flag(&v).is_none()
            {
                eprintln!(
                    "warning: FORCE_DEPLOY_ALL={} is not one of true, 1, yes (or false, 0, no): taken as unset, nothing is forced",
                    v.trim()
                );
            }
            None
        };
        req
    }
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The stage: a name from ferry.toml, or any other name for a preview stage (e.g. a branch)
    #[arg(required_unless_present = "from_ci")]
    stage: Option<String>,
    /// Take the stage from the CI build's trigger through the [ci] rules (see `deploy --help`)
    #[arg(long, conflicts_with = "stage")]
    from_ci: bool,
    #[command(flatten)]
    select: SelectArgs,
    /// Compare with this commit instead of the default: the working tree on a developer's
    /// machine, the built commit in CI
    #[arg(long, value_name = "REF")]
    head: Option<String>,
    /// List every changed path and the services it affects
    #[arg(long)]
    explain: bool,
    /// Make no AWS call: without --since, plan as if nothing were deployed (by default the plan
    /// reads the stage's records and checks its stacks, read only, as a deploy does)
    #[arg(long)]
    offline: bool,
    #[arg(long, value_enum, default_value_t)]
    format: PlanFormat,
}

pub fn run(ctx: &Ctx, args: &PlanArgs) -> anyhow::Result<()> {
    let ci = ctx.ci();
    let stage = match &args.stage {
        Some(s) => s.clone(),
        None => match crate::cmd::release::stage_from_ci(ctx.workspace()?, ci)? {
            Some(stage) => stage.name,
            None => return Ok(()),
        },
    };
    let mut req = args.select.request(&stage, ci);
    req.from_ci = args.stage.is_none();
    if let Some(head) = &args.head {
        req.head = Head::Rev(head.clone());
    }
    req.explain = args.explain;
    // The CI formats give a node to dependents outside the plan (a `--service` selection):
    // rendered with the workspace the plan was made with.
    let batch_format = matches!(
        args.format,
        PlanFormat::CodebuildBatch | PlanFormat::GithubMatrix
    );
    let (plan, (refused, rendered)) = plan_with(
        ctx,
        &mut req,
        args.select.since.is_none() && !args.offline,
        |ws, plan| {
            // A preview whose stacks a deploy refuses (one would be a named stage's) is refused
            // here as there: the plan said it deploys, and its CI formats gave nodes that all
            // failed. (Not for `run`, which plans too: a script only reads the stage's records.)
            // With the workspace the plan was made with: loading the working tree's as well
            // cost a plan of a commit more than the plan.
            let refused = ws
                .stage(&stage)
                .map_or(Ok(()), |s| ws.check_preview_stacks(&s));
            let rendered = match args.format {
                PlanFormat::CodebuildBatch => {
                    ferry_plan::codebuild_batch(plan, ws.graph(), ctx.app.name)
                }
                PlanFormat::GithubMatrix => ferry_plan::github_matrix(plan, ws.graph()) + "\n",
                _ => String::new(),
            };
            (refused, rendered)
        },
    )?;
    refused?;
    if batch_format {
        print!("{rendered}");
        std::mem::forget(plan);
        return Ok(());
    }
    match args.format {
        // A base given on the command line is said as given: a control character in it
        // must not reach the terminal as one.
        PlanFormat::Text => print!(
            "{}",
            ferry_ci::printable(&ferry_plan::text(&plan, args.explain))
        ),
        // A reader that stops reading is no failure (as for the other formats).
        PlanFormat::Json => {
            match plan.write_json(std::io::BufWriter::new(std::io::stdout().lock())) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(e).context("failed to write the plan to standard output");
                }
                _ => {}
            }
        }
        PlanFormat::CodebuildBatch | PlanFormat::GithubMatrix => unreachable!("printed above"),
    }
    // The process ends right after; freeing a thousand services one by one would cost more
    // than printing the plan.
    std::mem::forget(plan);
    Ok(())
}

/// The plan of `req`, with the configuration of its head (a commit head is planned with the
/// configuration of that commit), and, with `read_state`, bases from the stage's records and
/// what its stacks say (read only; without AWS it says why and plans without them).
pub(crate) fn plan_at(
    ctx: &Ctx,
    req: &mut PlanRequest,
    read_state: bool,
) -> anyhow::Result<ferry_plan::Plan> {
    plan_with(ctx, req, read_state, |_, _| ()).map(|(plan, ())| plan)
}

/// [`plan_at`], and `then` of the workspace the plan was made with and the plan.
pub(crate) fn plan_with<T>(
    ctx: &Ctx,
    req: &mut PlanRequest,
    read_state: bool,
    then: impl FnOnce(&ferry_manifest::Workspace, &ferry_plan::Plan) -> T,
) -> anyhow::Result<(ferry_plan::Plan, T)> {
    let root = ctx.canonical_root();
    let repo = Repo::open(&root);
    let mut at_head = None;
    let ws = match (&req.head, &repo) {
        (Head::Rev(rev), Ok(r)) => {
            &*at_head.insert(ferry_plan::workspace_at(r, rev).with_context(|| {
                format!(
                    "failed to load the Ferry configuration of {} at `{rev}`",
                    root.display()
                )
            })?)
        }
        _ => ctx.workspace()?,
    };
    let state = match read_state {
        true => {
            let stage = req.stage.clone();
            read_stage_state(ctx, ws, &stage, req)?
        }
        false => None,
    };
    let mut plan = ferry_plan::plan(ws, repo.as_ref(), req)
        .with_context(|| format!("failed to plan stage `{}`", req.stage))?;
    if let Some(state) = &state {
        ferry_deploy::mark_checks(ws, &mut plan, &state.records);
        if let Ok(stage) = ws.stage(&req.stage) {
            plan.notes.extend(state.move_notes(ws, &stage));
        }
    }
    let also = then(ws, &plan);
    // The process ends soon after; freeing a thousand services and the repository handle one
    // by one would cost more than the plan.
    std::mem::forget((at_head, repo));
    Ok((plan, also))
}

/// Fills the request's bases from the stage's records and what its stacks say, as a deploy
/// would (read only: no lock), and returns that state. When AWS cannot be reached, says why
/// and plans without it; a record that cannot be read, or that is another stage's, is the error a deploy would give
/// (a plan of a healthy stage as if nothing were deployed would say every service deploys).
fn read_stage_state(
    ctx: &Ctx,
    ws: &ferry_manifest::Workspace,
    stage: &str,
    req: &mut PlanRequest,
) -> anyhow::Result<Option<ferry_deploy::StageState>> {
    let Ok(stage) = ws.stage(stage) else {
        return Ok(None); // the plan reports it
    };
    let read = crate::context::runtime().and_then(|rt| {
        rt.block_on(async {
            let aws = ctx.aws(&stage).await?;
            let records = ferry_deploy::record_store(ws, &stage, &aws.config);
            let mut state = ferry_deploy::state::read(ws, &stage, &aws.config, &records).await?;
            state.describe_unrecorded(ws, &stage, &aws.config).await;
            anyhow::Ok((records.path().to_string(), state))
        })
    });
    match read {
        Ok((path, state)) => {
            eprintln!(
                "plan: bases from the {} deployment record(s) of stage `{}` ({path}records), stacks checked with {} ListStacks call(s)",
                state.records.len(),
                stage.name,
                state.list_calls
            );
            state.apply(req);
            return Ok(Some(state));
        }
        Err(e) if !unreachable(&e) => {
            return Err(e).with_context(|| {
                format!(
                    "failed to read the deployment records of stage `{}`",
                    stage.name
                )
            });
        }
        Err(e) => {
            let causes: Vec<String> = e.chain().map(|c| crate::ui::mask(&c.to_string())).collect();
            eprintln!(
                "warning: could not read the deployment records of stage `{}` ({}); planning as if nothing were deployed (--offline skips this; --since sets a base)",
                stage.name,
                causes.join(": ")
            );
        }
    }
    Ok(None)
}

/// Whether reading a stage's state failed on the way to AWS (no credentials, an endpoint that
/// does not answer, a refused call), rather than on what the stage holds.
fn unreachable(e: &anyhow::Error) -> bool {
    use ferry_deploy::StateError;
    use ferry_records::RecordError;
    match e.downcast_ref::<StateError>() {
        Some(StateError::Records(RecordError::Aws(_)) | StateError::List { .. }) => true,
        Some(_) => false,
        None => true,
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum GraphFormat {
    #[default]
    Mermaid,
    Dot,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[arg(long, value_enum, default_value_t)]
    format: GraphFormat,
}

pub fn graph(ctx: &Ctx, args: &GraphArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let g = ws.graph();
    let kind = |n: &str| ws.service(n).map(|s| s.kind).unwrap_or_default();
    let label = |n: &str| format!("{n} ({})", kind(n));
    match args.format {
        GraphFormat::Mermaid => print!("{}", ferry_graph::render::mermaid_with(g, &label)),
        GraphFormat::Dot => print!("{}", ferry_graph::render::dot_with(g, Some(&label))),
        GraphFormat::Json => {
            let mut json = serde_json::to_value(ferry_graph::render::json(g))?;
            for node in json["nodes"].as_array_mut().into_iter().flatten() {
                let k = kind(node["name"].as_str().unwrap_or_default());
                node["kind"] = serde_json::json!(k);
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    Ok(())
}
