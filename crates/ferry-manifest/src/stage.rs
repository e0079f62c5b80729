//! Stage resolution: named stages, the `*` default for preview stages, and stack names.

use crate::diag::did_you_mean;
use crate::model::{Service, StageConfig, Workspace};

/// A stage as a run uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The name asked for, e.g. `feature/Login`.
    pub name: String,
    /// The name used in stack names and `${stage}`: the name itself for named stages, the
    /// sanitised name (`feature-login`) for preview stages.
    pub id: String,
    /// True when the configuration came from `[stages."*"]`.
    pub preview: bool,
    pub config: StageConfig,
}

impl Stage {
    /// The variables every child process of this stage gets (`FERRY_PROJECT`, `FERRY_STAGE`,
    /// `FERRY_STAGE_ID`, `FERRY_REGION`; see `ferry-env`).
    pub fn vars(&self, project: &str) -> [(&'static str, String); 4] {
        ferry_env::StageVars {
            project,
            stage: &self.name,
            stage_id: &self.id,
            region: &self.config.region,
        }
        .vars()
    }
}

/// Whose SSM parameter a write is, when it is another stage's
/// ([`Workspace::parameter_of_another_stage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterOwner {
    /// The named stage, or `None` for the preview stages, which share one path.
    pub stage: Option<String>,
    /// Its `parameters-path`, as configured.
    pub path: String,
}

impl ParameterOwner {
    /// `stage `qa`'s` or `the preview stages'`.
    pub fn whose(&self) -> String {
        match &self.stage {
            Some(name) => format!("stage `{name}`'s"),
            None => "the preview stages'".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    #[error(
        "stage `{name}` is not configured in ferry.toml{hint}; add [stages.{}] or a [stages.\"*\"] default for preview stages (configured: {configured})",
        toml_key(.name)
    )]
    NotConfigured {
        name: String,
        configured: String,
        hint: String,
    },
    #[error(
        "stage name `{name}` has no letter or digit of A to Z and 0 to 9 to form a stack name from"
    )]
    Unusable { name: String },
    #[error(
        "stage name \"{}\" holds a control or invisible character (none of git's branch names does): it would be printed to every terminal and log that lists the stage; give the stage a name of visible characters",
        .name.escape_debug()
    )]
    Unprintable { name: String },
    #[error(
        "stage `{name}` is not configured in ferry.toml, and as a preview stage its id would be `{id}`, the id of the named stage `{named}`: it would deploy over that stage's stacks, records and lock without its settings or protection; use `{named}` itself, or a preview name whose id differs"
    )]
    ShadowsNamedStage {
        name: String,
        id: String,
        named: String,
    },
    #[error(
        "stage `{name}` is not configured in ferry.toml, and as a preview stage (id `{id}`) it would keep its records and lock at `{path}`, the records-path of the named stage `{named}`: it would take that stage's lock and records; use another preview name, or give `{named}` a records-path no preview id gives (outside the previews' /ferry/<project>/<stage id>/)"
    )]
    TakesNamedStageRecords {
        name: String,
        id: String,
        path: String,
        named: String,
    },
    #[error(
        "stage `{name}` is not configured in ferry.toml, and as a preview stage its records-path would be refused by SSM: {why}; use another preview name"
    )]
    UnusableRecordsPath { name: String, why: String },
    #[error(
        "stage `{name}` is not configured in ferry.toml, and as a preview stage its service `{service}` would be the stack `{stack}`, which CloudFormation refuses (a stack name starts with a letter); use a preview name that starts with a letter"
    )]
    InvalidPreviewStack {
        name: String,
        service: String,
        stack: String,
    },
    #[error(
        "stage `{name}` is not configured in ferry.toml, and as a preview stage its service `{service}` would be the stack `{stack}`, which is service `{owner}`'s in the named stage `{named}`: deploying it would block `{named}`; use another preview name, or make stack names that cannot meet (a separator no service or stage name holds, e.g. project.stack-name = \"{{project}}-{{stage}}--{{service}}\")"
    )]
    TakesNamedStageStack {
        name: String,
        service: String,
        stack: String,
        named: String,
        owner: String,
    },
}

/// `name` as a TOML key: bare when it can be, else quoted (`"feature/x"`).
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        return name.to_string();
    }
    // A TOML basic string: `"` and `\` escaped, control characters as \uXXXX.
    let mut out = String::from("\"");
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Largest stack name CloudFormation accepts.
pub const MAX_STACK_NAME: usize = 128;

/// Whether `name` is a valid CloudFormation stack name: `[A-Za-z][-A-Za-z0-9]*`, ≤ 128 characters.
pub fn is_valid_stack_name(name: &str) -> bool {
    name.len() <= MAX_STACK_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Turns any name (a branch such as `feature/Login_form`) into a stack-name-safe stage id:
/// lowercase, runs of other characters become one `-`, no leading or trailing `-`. Names longer
/// than `max` are cut and given an 8-digit hash of the full name so that two long branches with a
/// common prefix stay apart.
pub fn sanitize_stage_name(name: &str, max: usize) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.len() <= max {
        return out;
    }
    let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
    let keep = max.saturating_sub(hash.len() + 1);
    let kept = out[..keep].trim_end_matches('-');
    if kept.is_empty() {
        // No room for any of the name (`validate` refuses a configuration leaving less than
        // MAX_PREVIEW_ID): the hash alone, cut to fit, never a leading `-`.
        return hash[..max.min(hash.len())].to_string();
    }
    format!("{kept}-{hash}")
}

/// The fewest characters that keep a long name's id apart from another's: a letter, `-` and the
/// 8-digit hash ([`sanitize_stage_name`]).
#[cfg(test)]
const MIN_PREVIEW_ID: usize = 10;

/// The length a preview stage's id is cut to (a longer name keeps its first 31 characters and
/// a hash of the whole): fixed, so that the id of a branch never depends on the services of the
/// checkout; every service's stack name must have room for it when `[stages."*"]` makes
/// previews.
pub const MAX_PREVIEW_ID: usize = 40;

/// How many characters of a stage id fit in a stack name of `pattern` for this project and
/// service: what the rest of the name leaves of 128, shared by each `{stage}` it holds.
pub fn stage_room(pattern: &str, project: &str, service: &str) -> usize {
    let rest = render_stack_name(pattern, project, service, "").len();
    let times = pattern.matches("{stage}").count().max(1);
    MAX_STACK_NAME.saturating_sub(rest) / times
}

/// Whether `name` has the shape of an AWS region name (`us-east-1`, `us-gov-west-1`): parts of
/// lowercase letters and digits, three or more, the last a number. (`localhost`, a value the
/// serverless-offline plugin takes, is none.)
pub fn is_region_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// `name` when it has at most `max` characters; else cut and given an 8-digit hash of the
/// whole, as a stage id is (for names Ferry derives from the project's, such as the local
/// artifact bucket, which S3 limits to 63 characters, or the deployer role, which IAM limits
/// to 64).
pub fn fit_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
    let mut keep = max.saturating_sub(hash.len() + 1);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}-{hash}", name[..keep].trim_end_matches('-'))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The records path of a stage with this configuration and id (see [`Workspace::records_path`]).
pub fn records_path(project: &str, config: &StageConfig, stage_id: &str) -> String {
    match &config.records_path {
        Some(p) => format!("{}/", p.replace("{stage}", stage_id).trim_end_matches('/')),
        None => format!("/ferry/{project}/{stage_id}/"),
    }
}

/// The part of the preview stages' records path (of configuration `config`, the `"*"`
/// stage's) before a preview's id: what the previews' role is granted, as `<start>*`.
pub fn preview_records_start(project: &str, config: &StageConfig) -> String {
    let pattern = records_path(project, config, "\u{0}");
    pattern
        .split('\u{0}')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Fills `{project}`, `{service}` and `{stage}` of a stack name pattern.
pub fn render_stack_name(pattern: &str, project: &str, service: &str, stage: &str) -> String {
    // One pass: a plan renders a name for every service.
    let mut out =
        String::with_capacity(pattern.len() + project.len() + service.len() + stage.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        let (value, len) = if tail.starts_with("{project}") {
            (project, "{project}".len())
        } else if tail.starts_with("{service}") {
            (service, "{service}".len())
        } else if tail.starts_with("{stage}") {
            (stage, "{stage}".len())
        } else {
            ("{", 1)
        };
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

impl Workspace {
    /// Resolves a stage name: a named stage, or any other name through `[stages."*"]`.
    /// The name of the stage an output reference of `stage` reads: a named stage, or the value
    /// of `stage`'s variable (`None` when it has no such variable).
    pub fn output_stage(stage: &Stage, of: &crate::OutputStage) -> Option<String> {
        match of {
            crate::OutputStage::Named(s) => Some(s.clone()),
            crate::OutputStage::Var(v) => stage.config.variables.get(v).cloned(),
        }
    }

    /// The named stages in promotion order: each stage that promotes from none (or from one not
    /// configured), those of the usual names in the usual order (dev, test, qa, staging, prod,
    /// …; any other name before prod's, by name), each followed at once by the stages that
    /// promote from it, and so on (e.g. dev, staging, prod, when staging promotes from dev and
    /// prod from none or staging; dev, staging, prod too when none promotes from another).
    pub fn stages_in_promotion_order(&self) -> Vec<&str> {
        fn visit<'a>(ws: &'a Workspace, name: &'a str, out: &mut Vec<&'a str>) {
            if out.contains(&name) {
                return;
            }
            out.push(name);
            for (next, config) in &ws.stages {
                if config.promote_from.as_deref() == Some(name) {
                    visit(ws, next, out);
                }
            }
        }
        let mut out: Vec<&str> = Vec::new();
        let mut roots: Vec<&str> = self
            .stages
            .iter()
            .filter(|(_, config)| {
                config
                    .promote_from
                    .as_deref()
                    .is_none_or(|f| !self.stages.contains_key(f))
            })
            .map(|(name, _)| name.as_str())
            .collect();
        roots.sort_by_key(|name| (usual_rank(name), *name));
        for name in roots {
            visit(self, name, &mut out);
        }
        // A cycle (refused by load): the rest by name.
        for name in self.stages.keys() {
            if !out.contains(&name.as_str()) {
                out.push(name);
            }
        }
        out
    }

    /// `[ci]` rules whose stage is no named stage but one a letter or two from one (`stagin`,
    /// `prd`): each deploys to a preview stage of that name, which is valid, and most likely a
    /// typo. Advice for `validate`, naming the rule and the stage meant.
    pub fn ci_near_misses(&self) -> Vec<String> {
        let ci = &self.project.ci;
        let rules = ci
            .branches
            .iter()
            .map(|(p, s)| ("branches", p, s))
            .chain(ci.tags.iter().map(|(p, s)| ("tags", p, s)));
        rules
            .filter(|(_, _, stage)| !self.stages.contains_key(stage.as_str()))
            .filter_map(|(key, pattern, stage)| {
                let meant = crate::diag::suggest(stage, self.stages.keys().map(String::as_str))?;
                Some(format!(
                    "ferry.toml: [ci] {key} \"{pattern}\" deploys to `{stage}`, which is no stage of ferry.toml but a preview stage of that name; did you mean `{meant}`?"
                ))
            })
            .collect()
    }

    /// `[acceptance] build-dir` folders where the acceptance build cannot run, which it would
    /// find after the stacks deployed: not on disk, or leading out of the repository through a
    /// link (loading reads no folder, so `validate` asks this).
    pub fn acceptance_build_dir_problems(&self) -> Vec<String> {
        let root = self.root.canonicalize();
        self.services
            .iter()
            .filter_map(|s| {
                let acc = s.acceptance.as_ref()?;
                let dir = acc.build_dir.as_deref()?;
                let shown = if dir.is_empty() { "the root" } else { dir };
                let folder = self.root.join(dir);
                if !folder.is_dir() {
                    return Some(format!(
                        "{}: acceptance.build-dir: {shown} is no folder of the repository, so its acceptance build cannot run there (after its stacks deployed); name the folder that holds the tests' build, relative to the service folder",
                        s.manifest_path(),
                    ));
                }
                let real = folder.canonicalize().ok()?;
                let root = root.as_ref().ok()?;
                (!real.starts_with(root)).then(|| {
                    format!(
                        "{}: acceptance.build-dir: {shown} leads out of the repository (to {}), where no acceptance build runs (it would fail after its stacks deployed); name a folder of the repository",
                        s.manifest_path(),
                        real.display()
                    )
                })
            })
            .collect()
    }

    /// `[ci]` rules deploying to a preview stage whose stacks no deploy would make
    /// ([`Workspace::check_preview_stacks`]), each named with why. A pull request's is judged
    /// as pull request 1's: a number starting the name is what a stack name may not start with.
    pub fn ci_preview_problems(&self) -> Vec<String> {
        let ci = &self.project.ci;
        let pull_request = ci.pull_requests.as_ref().map(|p| {
            (
                format!("pull-requests = \"{p}\""),
                p.replace("{number}", "1"),
            )
        });
        ci.branches
            .iter()
            .chain(&ci.tags)
            .map(|(pattern, name)| (format!("\"{pattern}\" = \"{name}\""), name.clone()))
            .chain(pull_request)
            .filter_map(|(rule, name)| {
                let stage = self.stage(&name).ok()?;
                let e = self.check_preview_stacks(&stage).err()?;
                Some(format!("ferry.toml: [ci] {rule}: {e}"))
            })
            .collect()
    }

    pub fn stage(&self, name: &str) -> Result<Stage, StageError> {
        if name.chars().any(ferry_ci::unseen) {
            return Err(StageError::Unprintable { name: name.into() });
        }
        if let Some(config) = self.stages.get(name) {
            return Ok(Stage {
                name: name.into(),
                id: name.into(),
                preview: false,
                config: config.clone(),
            });
        }
        let Some(config) = &self.default_stage else {
            let configured = self.stages.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(StageError::NotConfigured {
                name: name.into(),
                hint: did_you_mean(name, self.stages.keys().map(String::as_str)),
                configured,
            });
        };
        // Cut to a fixed length, so that a preview keeps its id when a service is added or
        // renamed (`validate` refuses a stack name with less room; the minimum only guards a
        // configuration that skipped it).
        let id = sanitize_stage_name(name, MAX_PREVIEW_ID.min(self.max_stage_len()));
        if id.is_empty() {
            return Err(StageError::Unusable { name: name.into() });
        }
        // `PROD`, `prod/` and ` Prod` all sanitise to `prod`: never let a preview name stand in
        // for a named stage (case-insensitively: S3 and users do not tell `Prod` from `prod`).
        if let Some(named) = self.stages.keys().find(|n| n.eq_ignore_ascii_case(&id)) {
            return Err(StageError::ShadowsNamedStage {
                name: name.into(),
                id,
                named: named.clone(),
            });
        }
        // A named stage's records-path, set by hand, may be where this id keeps its records
        // (`[stages.prod] records-path = "/ferry/shop/production/"`, the preview `production`).
        let path = records_path(&self.project.name, config, &id);
        if let Some(named) = self
            .stages
            .iter()
            .find(|(n, c)| records_path(&self.project.name, c, n) == path)
            .map(|(n, _)| n.clone())
        {
            return Err(StageError::TakesNamedStageRecords {
                name: name.into(),
                id,
                path,
                named,
            });
        }
        // A records-path made with `{stage}` (`/{stage}/`) gives each preview a path of its
        // own, which SSM must take: `awsome` would start a name AWS keeps for itself.
        if let Err(e) = crate::check_ssm_name(&path, true) {
            return Err(StageError::UnusableRecordsPath {
                name: name.into(),
                why: e.to_string(),
            });
        }
        Ok(Stage {
            name: name.into(),
            id,
            preview: true,
            config: config.clone(),
        })
    }

    /// Before a preview deploys: its stacks must be names CloudFormation takes, and no named
    /// stage's in the same region and account. With `{project}-{service}-{stage}`, service `db`
    /// of the preview `x-staging` is `shop-db-x-staging`, the stack of service `db-x` in
    /// `staging`: Ferry would refuse to touch that stack, but the preview's deploy would make it
    /// first, and the named stage would be blocked until the preview is removed. Checked by the
    /// commands that make stacks, not by [`Workspace::stage`]: removing such a preview must stay
    /// possible. A named stage passes.
    pub fn check_preview_stacks(&self, preview: &Stage) -> Result<(), StageError> {
        if !preview.preview {
            return Ok(());
        }
        let mut named: std::collections::HashMap<String, (&str, &str)> = Default::default();
        for (name, _) in self
            .stages
            .iter()
            .filter(|(_, c)| !c.apart_from(&preview.config))
        {
            let stage = self.stage(name)?;
            for s in &self.services {
                named.insert(self.service_stack_name(s, &stage), (name, &s.name));
            }
        }
        for s in &self.services {
            let stack = self.service_stack_name(s, preview);
            // `{stage}` first, and a name that starts with a digit (`9lives`).
            if !is_valid_stack_name(&stack) {
                return Err(StageError::InvalidPreviewStack {
                    name: preview.name.clone(),
                    service: s.name.clone(),
                    stack,
                });
            }
            if let Some((stage, owner)) = named.get(&stack) {
                return Err(StageError::TakesNamedStageStack {
                    name: preview.name.clone(),
                    service: s.name.clone(),
                    stack,
                    named: stage.to_string(),
                    owner: owner.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The longest stage id for which every service's stack name stays within 128 characters.
    /// Each service's own pattern counts (a Serverless Framework service's `{stage}` comes
    /// after its framework service name, which may be longer than its Ferry name), and a pattern
    /// that holds `{stage}` twice takes the id twice.
    pub fn max_stage_len(&self) -> usize {
        self.services
            .iter()
            .map(|s| {
                let pattern = s.stack_name.as_deref().unwrap_or(&self.project.stack_name);
                stage_room(pattern, &self.project.name, &s.name)
            })
            .min()
            .unwrap_or(MAX_STACK_NAME)
    }

    /// The SSM path under which `stage`'s deployment records and lock live, ending with '/':
    /// its `records-path` with `{stage}` filled in by the stage id, or
    /// `/ferry/<project>/<stage id>/`.
    pub fn records_path(&self, stage: &Stage) -> String {
        records_path(&self.project.name, &stage.config, &stage.id)
    }

    /// Whose deployment record, health mark, batch node's mark or lock the full SSM name `name`
    /// is, if it is one (`stage `dev``, `preview `pr-7``): `<records path>records/…`,
    /// `<records path>health/…`, `<records path>nodes/…` or `<records path>lock`. Only Ferry's
    /// records write those.
    pub fn records_parameter_of(&self, name: &str) -> Option<String> {
        let ferrys = |rest: &str| {
            ["records/", "health/", "nodes/"]
                .iter()
                .any(|own| rest.starts_with(own))
                || rest == "lock"
        };
        for stage in self.stages.keys().filter_map(|n| self.stage(n).ok()) {
            if name
                .strip_prefix(&self.records_path(&stage))
                .is_some_and(ferrys)
            {
                return Some(format!("stage `{}`", stage.name));
            }
        }
        // A preview's: the default stage's records path with any id in it.
        let config = self.default_stage.as_ref()?;
        let pattern = records_path(&self.project.name, config, "\u{0}");
        let (before, after) = pattern.split_once('\u{0}')?;
        let rest = name.strip_prefix(before)?;
        let at = rest.find(after)?;
        let id = &rest[..at];
        (!id.is_empty() && !id.contains('/') && ferrys(&rest[at + after.len()..]))
            .then(|| format!("preview `{id}`"))
    }

    /// The SSM paths the named stages own: each one's `parameters-path` and records path (what
    /// a preview stage, whose paths may hold them, must leave alone).
    pub fn named_stage_paths(&self) -> Vec<String> {
        self.stages
            .keys()
            .filter_map(|name| self.stage(name).ok())
            .filter(|stage| !stage.preview)
            .flat_map(|stage| {
                let records = self.records_path(&stage);
                stage.config.parameters_path.into_iter().chain([records])
            })
            .collect()
    }

    /// The stage other than `stage` whose `parameters-path` holds the SSM parameter `name` (a
    /// full name) where `stage` writes it (the same region, and no account telling them apart),
    /// and that path: the one a write of it belongs to. The previews (`[stages."*"]`, which share
    /// one path) count as one stage for a named stage's write. The longest path holding it
    /// decides, so that `/shop/prod/x` is prod's where dev's path is `/shop/`; none when it is
    /// `stage`'s own, or no other stage's.
    pub fn parameter_of_another_stage(&self, stage: &Stage, name: &str) -> Option<ParameterOwner> {
        let under = |path: &str| {
            name.strip_prefix(path.trim_end_matches('/'))
                .is_some_and(|rest| rest.starts_with('/'))
        };
        let own = stage
            .config
            .parameters_path
            .as_deref()
            .filter(|p| under(p))
            .map_or(0, |p| p.trim_end_matches('/').len());
        let previews = self
            .default_stage
            .as_ref()
            .filter(|_| !stage.preview)
            .map(|config| (None, config));
        self.stages
            .iter()
            .filter(|(other, _)| **other != stage.name)
            .map(|(other, config)| (Some(other.clone()), config))
            .chain(previews)
            .filter(|(_, config)| !config.apart_from(&stage.config))
            .filter_map(|(stage, config)| {
                let path = config.parameters_path.clone()?;
                (under(&path) && path.trim_end_matches('/').len() > own)
                    .then_some(ParameterOwner { stage, path })
            })
            .max_by_key(|owner| owner.path.trim_end_matches('/').len())
    }

    /// The named stage (of three letters or more) whose name a preview stage's is one slip of
    /// the keyboard from ([`one_slip`](crate::diag::one_slip): `stagin`, `dve`, `prdo`): most
    /// likely that stage, misspelt; deploying it would create a whole new environment.
    pub fn misspelt_stage(&self, stage: &Stage) -> Option<&str> {
        if !stage.preview {
            return None;
        }
        let name = stage.name.to_ascii_lowercase();
        self.stages.keys().map(String::as_str).find(|named| {
            named.chars().count() >= 3
                && [name.as_str(), stage.id.as_str()]
                    .iter()
                    .any(|n| crate::diag::one_slip(n, named))
        })
    }

    /// `; did you mean `staging`?` for a preview stage whose name is a letter or two from a
    /// named stage's (most likely that one, misspelt: said where nothing is found in it), else
    /// nothing.
    pub fn misspelt_stage_hint(&self, stage: &Stage) -> String {
        if !stage.preview {
            return String::new();
        }
        crate::did_you_mean(&stage.name, self.stages.keys().map(String::as_str))
    }

    /// The CloudFormation stack name of `service` in `stage`.
    pub fn stack_name(&self, service: &str, stage: &Stage) -> String {
        match self.service(service) {
            Some(s) => self.service_stack_name(s, stage),
            None => render_stack_name(
                &self.project.stack_name,
                &self.project.name,
                service,
                &stage.id,
            ),
        }
    }

    /// [`Workspace::stack_name`] of a service already at hand.
    pub fn service_stack_name(&self, service: &Service, stage: &Stage) -> String {
        let pattern = service
            .stack_name
            .as_deref()
            .unwrap_or(&self.project.stack_name);
        render_stack_name(pattern, &self.project.name, &service.name, &stage.id)
    }
}

/// Where a stage of a usual name stands on the way to production (a name of none: after the
/// pre-production ones, before production).
fn usual_rank(name: &str) -> usize {
    const ORDER: &[&[&str]] = &[
        &["local", "sandbox", "dev", "develop", "development"],
        &["test", "testing", "int", "integration", "ci"],
        &["qa", "uat"],
        &[
            "stage",
            "staging",
            "stg",
            "preprod",
            "pre-prod",
            "preproduction",
        ],
        &[],
        &["prod", "production", "prd", "live"],
    ];
    let name = name.to_ascii_lowercase();
    ORDER
        .iter()
        .position(|names| names.contains(&name.as_str()))
        .unwrap_or(4)
}

#[cfg(test)]
mod tests {

    #[test]
    fn records_parameters_are_told_by_their_stage() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ferry.toml"),
            "[project]\nname = \"shop\"\n\n[stages.prod]\nregion = \"us-east-1\"\nrecords-path = \"/ops/prod-records\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("services/a")).unwrap();
        std::fs::write(
            dir.path().join("services/a/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("services/a/t.yaml"), "Resources: {}\n").unwrap();
        let ws = crate::load(dir.path()).unwrap();
        let of = |n: &str| ws.records_parameter_of(n);
        assert_eq!(
            of("/ops/prod-records/records/api").as_deref(),
            Some("stage `prod`")
        );
        assert_eq!(
            of("/ops/prod-records/lock").as_deref(),
            Some("stage `prod`")
        );
        assert_eq!(
            of("/ferry/shop/pr-7/lock").as_deref(),
            Some("preview `pr-7`")
        );
        assert_eq!(
            of("/ferry/shop/pr-7/health/api").as_deref(),
            Some("preview `pr-7`")
        );
        for other in [
            "/ops/prod-records/settings",
            "/ops/prod-records/locked",
            "/ferry/shop/lock",
            "/ferry/shop/pr-7/x/lock",
            "/shop/prod/db/password",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
    }

    use super::*;

    #[test]
    fn a_derived_name_too_long_is_cut_with_a_hash_of_the_whole() {
        assert_eq!(fit_name("ferry-artifacts-shop", 63), "ferry-artifacts-shop");
        let long = format!("ferry-artifacts-{}", "a".repeat(51));
        let other = format!("ferry-artifacts-{}b", "a".repeat(50));
        let (a, b) = (fit_name(&long, 63), fit_name(&other, 63));
        assert_eq!(a.len(), 63);
        assert!(a.starts_with("ferry-artifacts-aaa"), "{a}");
        assert_ne!(a, b, "names with a common start stay apart");
    }

    #[test]
    fn branch_names_become_stack_safe_ids() {
        assert_eq!(sanitize_stage_name("feature/login", 64), "feature-login");
        assert_eq!(
            sanitize_stage_name("Feature/Login_Form--v2", 64),
            "feature-login-form-v2"
        );
        assert_eq!(sanitize_stage_name("/refs/heads/x/", 64), "refs-heads-x");
        assert_eq!(sanitize_stage_name("ü", 64), "");
        let long_a = sanitize_stage_name(&format!("{}a", "x".repeat(100)), 40);
        let long_b = sanitize_stage_name(&format!("{}b", "x".repeat(100)), 40);
        assert_eq!(long_a.len(), 40);
        assert_ne!(long_a, long_b);
        assert!(is_valid_stack_name(&format!("api-{long_a}")));
        // With room for the hash and one character, and with less: never longer than the
        // room, never a leading `-`.
        for max in [MIN_PREVIEW_ID, 9, 8, 4, 1] {
            let id = sanitize_stage_name(&"feature/x".repeat(20), max);
            assert!(
                id.len() <= max && !id.starts_with('-') && !id.is_empty(),
                "{max}: {id}"
            );
        }
        assert_eq!(
            sanitize_stage_name(&"feature/x".repeat(20), MIN_PREVIEW_ID).len(),
            10
        );
    }

    #[test]
    fn stack_name_rules() {
        assert!(is_valid_stack_name("api-dev"));
        assert!(!is_valid_stack_name("1api"));
        assert!(!is_valid_stack_name("api_dev"));
        assert!(!is_valid_stack_name(&"a".repeat(129)));
        assert_eq!(
            render_stack_name("{project}-{service}-{stage}", "shop", "api", "dev"),
            "shop-api-dev"
        );
        assert_eq!(
            render_stack_name("{x}{service}-{stage}{", "shop", "api", "dev"),
            "{x}api-dev{",
            "anything that is no placeholder stays as written"
        );
    }
}
