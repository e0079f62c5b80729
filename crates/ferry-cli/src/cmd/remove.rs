//! `remove`: a stage's stacks deleted in reverse dependency order, with their records.

use std::time::Duration;

use anyhow::Context as _;
use ferry_graph::Cancel;
use ferry_manifest::Stage;

use crate::Ctx;
use crate::cmd::deploy::describe;
use crate::context::runtime;
use crate::ui::Clock;

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The stage whose stacks to delete
    stage: String,
    /// Only services whose record remains but which the checkout no longer has (folder gone,
    /// or renamed), refused if such a record names a current service's stack or a service is
    /// still deployed with its outputs; and the old stacks of services whose stack name changed
    /// since they deployed to it
    #[arg(long)]
    orphans: bool,
    /// With --orphans: also records of a commit that HEAD does not descend from (a squashed or
    /// deleted branch's, a checkout without git), which are otherwise refused: such a
    /// checkout cannot tell that their services are gone
    #[arg(long, requires = "orphans")]
    any_commit: bool,
    /// Allow removing a protected stage, and any stack with termination protection on whatever
    /// the checkout says of its stage (turns the protection off first)
    #[arg(long)]
    allow_protected: bool,
    /// Also delete stacks of this stage's names that have no Ferry tags
    #[arg(long)]
    adopt: bool,
    #[command(flatten)]
    lock: crate::lock::LockArgs,
    /// How long Ferry waits for one stack's delete, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = crate::ui::timeout_secs())]
    timeout: u64,
}

pub fn run(ctx: &Ctx, args: &RemoveArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let stage = ws.stage(&args.stage)?;
    ctx.ci()
        .check_may_change("remove", &stage.name, stage.preview)?;
    let options = ferry_deploy::RemoveOptions {
        orphans: args.orphans,
        any_commit: args.any_commit,
        allow_protected: args.allow_protected,
        adopt: args.adopt,
        timeout: Duration::from_secs(args.timeout),
        local: ctx.local,
    };
    ferry_deploy::check_removable(&stage, &options)?;
    runtime()?
        .block_on(remove_stage(ctx, &stage, &options, args.lock, None))
        .map(drop)
}

/// Removes `stage` under its lock, printing what happened; an error when anything is left.
/// With `judged` (a preview judged gone by `previews prune`), the stage is left in place when
/// its records show a deploy newer than that judgement (`Ok(false)`); when a CI event ended
/// its branch or pull request (`ended`: the id a release started as the prune started would
/// have), only a deploy by a run that started after the prune (the pull request reopened, the
/// branch restored) keeps it: one that ran meanwhile, or was waited for, deployed something
/// already gone.
pub(crate) async fn remove_stage(
    ctx: &Ctx,
    stage: &Stage,
    options: &ferry_deploy::RemoveOptions,
    lock: crate::lock::LockArgs,
    judged: Option<(&ferry_deploy::previews::Preview, Option<&str>)>,
) -> anyhow::Result<bool> {
    let ws = ctx.workspace()?;
    let aws = ctx.aws(stage).await?;
    let records = ctx.records(stage, &aws)?;
    let cancel = Cancel::new();
    let clock = Clock::start();
    let build = ctx.ci().build_id.as_deref();
    crate::lock::with_lock(build, &records, stage, "remove", lock, &cancel, async {
        let previous = records
            .read_all()
            .await
            .context("failed to read the stage's deployment records")?;
        if let Some((_, Some(started))) = judged
            && let Some(after) = previous
                .values()
                .filter_map(|r| r.release.as_deref())
                .filter(|id| *id > started)
                .max()
        {
            println!(
                "left `{}` in place: deployed again by a run that started after this prune (release {after}: the pull request reopened, the branch pushed again)",
                stage.name
            );
            return Ok(false);
        }
        if let Some(at) = judged
            .filter(|(_, ended)| ended.is_none())
            .and_then(|(p, _)| ferry_deploy::previews::deployed_since(p, &previous))
        {
            println!(
                "left `{}` in place: deployed again (at {}) since it was judged gone",
                stage.name,
                ferry_records::format_time(at)
            );
            return Ok(false);
        }
        let rctx = ferry_deploy::RemoveContext {
            ws,
            stage,
            config: &aws.config,
            records: &records,
            previous: &previous,
            cancel: &cancel,
            found: judged.map(|(p, _)| &p.stack_of),
        };
        let report = ferry_deploy::remove(&rctx, options, &|e| clock.say(&describe(&e))).await?;
        for (service, bucket, n) in &report.emptied {
            println!(
                "emptied bucket {bucket} ({service}): {n} object version(s) and delete marker(s)"
            );
        }
        for (service, bucket) in &report.retained {
            println!(
                "kept bucket {bucket} ({service}): its template retains it (DeletionPolicy: Retain)"
            );
        }
        for (service, stack) in &report.deleted {
            println!("deleted {stack} ({service})");
        }
        for (service, stack, _) in &report.others {
            println!(
                "left {stack} alone ({service}): stage `{}` never deployed {service}, and the stack of that name is another stage's or service's by its tags",
                stage.name
            );
        }
        println!(
            "{} stack(s) deleted from stage `{}`, each confirmed gone",
            report.deleted.len(),
            stage.name
        );
        // Nothing there at all: a preview's name a letter from a named stage's is most likely
        // that stage's, misspelt (as `outputs` says).
        if report.deleted.is_empty() && previous.is_empty() {
            let hint = ws.misspelt_stage_hint(stage);
            if !hint.is_empty() {
                eprintln!(
                    "note: stage `{}` has no stack and no record{hint}",
                    stage.name
                );
            }
        }
        for f in &report.failed {
            eprintln!("{}", crate::ui::mask(&format!("error: {f}")));
        }
        for e in &report.records_left {
            eprintln!("{}", crate::ui::mask(&format!("error: {e}")));
        }
        for (service, because) in &report.kept {
            eprintln!("kept {service}: `{because}`, which depends on it, was not deleted");
        }
        if report.cancelled {
            anyhow::bail!(
                "interrupted: the stacks not reached were left in place with their records; run `remove` again to finish"
            );
        }
        if !report.complete() {
            let mut left = Vec::new();
            let stacks = report.failed.len() + report.kept.len();
            if stacks > 0 {
                left.push(format!(
                    "{stacks} stack(s) of stage `{}` were not deleted (the records of those that have one stay)",
                    stage.name
                ));
            }
            if !report.records_left.is_empty() {
                left.push(format!(
                    "{} record(s) of deleted stacks of stage `{}` were left",
                    report.records_left.len(),
                    stage.name
                ));
            }
            anyhow::bail!(
                "{}; fix what is named above and run `remove` again: it deletes only what is left",
                left.join(", and ")
            );
        }
        // A preview gone whole takes its releases with it (they name stacks and packages that
        // are gone; a preview of the same name later starts afresh). A named stage keeps them,
        // as does a preview whose orphans alone went (`--orphans`: it lives on, and its
        // releases are what a rollback of it goes back to).
        if stage.preview
            && !options.orphans
            && let Some(store) =
                ferry_deploy::release::release_store(ws, stage, &aws.config, ctx.local)
        {
            match store.delete_all().await {
                Ok(0) => {}
                Ok(n) => println!("deleted the {n} release file(s) of stage `{}`", stage.name),
                Err(e) => eprintln!(
                    "{}",
                    crate::ui::mask(&format!(
                        "warning: the releases of stage `{}` were left: {e}",
                        stage.name
                    ))
                ),
            }
        }
        Ok(true)
    })
    .await
}
