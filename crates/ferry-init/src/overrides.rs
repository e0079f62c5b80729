//! The parameter values a service's own deploy steps pass its stack: SAM's configuration (see
//! [`crate::samconfig`]: `parameter_overrides`) and a `--parameter-overrides` of `sam deploy` or
//! `aws cloudformation deploy` in its `Makefile` or shell scripts. What the scripts the
//! repository deploys with today pass is the best guess of what Ferry should pass: the names of
//! SSM parameters another service writes (which links the two), the stage.
//!
//! Values are translated to Ferry's syntax: a variable naming the stage (`$${AWS_BRANCH}`,
//! `${STAGE}`, `$(ENV)`) becomes `${stage}`, one naming the region `${region}`; a value with any
//! other variable is left out with a note, as Ferry cannot know it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::samconfig;
use crate::scripts::{
    Of, TEMPLATE_FLAGS, deploy_commands_of, deploy_flag_of, scripts_of, with_literal_variables,
    words,
};
use crate::secrets::{looks_secret, secret_name, secret_value};

/// Files larger than this are not read for parameters (a generated or vendored script).
const MAX_SCRIPT: u64 = 1 << 20;

/// The parameters the template at `root/dir/file` declares, each with whether its value is a
/// secret (`NoEcho`, or a name such as `DbPassword`, `ApiToken`); none when it cannot be read.
pub(crate) fn declared(root: &Path, dir: &str, file: &str) -> Vec<(String, bool)> {
    small_text(&root.join(crate::template_path(dir, file)))
        .and_then(|t| ferry_package::parse_template(&t).ok())
        .and_then(|t| {
            t.get("Parameters").and_then(|p| p.as_object()).map(|o| {
                o.iter()
                    .map(|(k, decl)| {
                        let no_echo = ferry_package::is_no_echo(&t, k);
                        // A number, a list or a choice among allowed values holds no secret,
                        // whatever its name (`RefreshTokenValidity`, `GenerateSecret`).
                        let ty = decl
                            .get("Type")
                            .and_then(|t| t.as_str())
                            .unwrap_or("String");
                        let plain = ty != "String" || decl.get("AllowedValues").is_some();
                        (k.clone(), no_echo || (!plain && secret_name(k)))
                    })
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The folders a service's deploy steps may sit in: its own, and its template's when that is
/// another (a template kept above its folder, or below it).
pub(crate) fn folders(dir: &str, file: &str) -> Vec<String> {
    let template = crate::template_path(dir, file);
    let of_template = template
        .rsplit_once('/')
        .map_or(String::new(), |(d, _)| d.to_string());
    let mut out = vec![dir.to_string()];
    if of_template != dir && !of_template.is_empty() {
        out.push(of_template);
    }
    out
}

/// Parameter → (value in Ferry's syntax, where it came from), for the parameters `declared`
/// (the template's, see [`declared`]); what cannot be taken is noted, a secret never copied nor
/// shown.
#[cfg(test)]
pub(crate) fn read(
    root: &Path,
    dir: &str,
    file: &str,
    declared: &[(String, bool)],
    notes: &mut Vec<String>,
) -> BTreeMap<String, (String, String)> {
    read_noting_secrets(root, dir, file, declared, notes, &mut BTreeSet::new())
}

/// [`read`], adding to `secrets` each parameter taken for a secret by the value passed (a
/// database URL with its password, a token's form), which the template does not mark.
pub(crate) fn read_noting_secrets(
    root: &Path,
    dir: &str,
    file: &str,
    declared: &[(String, bool)],
    notes: &mut Vec<String>,
    secrets: &mut BTreeSet<String>,
) -> BTreeMap<String, (String, String)> {
    let mut found: Vec<(String, String, String)> = Vec::new();
    // Parameters the SAM configuration's environments give different values: none written.
    let mut differing: BTreeSet<String> = BTreeSet::new();
    let scripts = scripts_of(root, dir, file);
    for config in samconfigs(root, dir, file, &scripts) {
        let at = &config.path;
        match config.envs.map(|envs| samconfig_environments(&envs)) {
            Ok(Some(((env, words), others))) => {
                let from = format!("{at} [{env}.deploy.parameters]");
                for (k, v) in words.iter().filter_map(|w| env_pair(w, &env)) {
                    // Another environment giving another value (`Environment=production`
                    // in `[prod]`): one value is written for every stage.
                    let differ: Vec<(&String, String)> = others
                        .iter()
                        .filter_map(|(other, words)| {
                            let theirs = words
                                .iter()
                                .filter_map(|w| env_pair(w, other))
                                .find(|(ok, _)| *ok == k)?
                                .1;
                            (theirs != v).then_some((other, theirs))
                        })
                        .collect();
                    // Values that differ by each environment's own stage only (`[default]
                    // Stage=dev`, `[prod] Stage=prod`): the stage's, for every stage.
                    let staged = (!differ.is_empty())
                        .then(|| {
                            let all: Vec<&str> = std::iter::once(v.as_str())
                                .chain(differ.iter().map(|(_, t)| t.as_str()))
                                .collect();
                            per_stage(&all)
                        })
                        .flatten();
                    let (v, differ) = match staged {
                        Some(form) => (form, Vec::new()),
                        None => (v, differ),
                    };
                    // A secret's values are never shown (it is noted, not copied, below).
                    let secret = declared.iter().any(|(d, s)| *d == k && *s)
                        || looks_secret(&k, &v)
                        || differ.iter().any(|(_, theirs)| secret_value(theirs));
                    // As the file holds them (a named environment's own name was read as its
                    // stage's).
                    let differ: Vec<String> = differ
                        .into_iter()
                        .map(|(other, theirs)| {
                            format!("[{other}] {}", theirs.replace("${STAGE}", other))
                        })
                        .collect();
                    if secret {
                        // Said by the secret's own note.
                    } else if !differ.is_empty() {
                        // One environment's value is another's wrong one (prod's domain in
                        // dev): none is written.
                        notes.push(format!(
                            "{at}: its environments pass {k} different values ([{env}] {}; {}): init wrote none of them; give {k} each stage's value (`${{stage}}`, or a `${{var:…}}` of the stages' variables)",
                            v.replace("${STAGE}", &env),
                            differ.join("; ")
                        ));
                        differing.insert(k.clone());
                    } else if env == "default"
                        && crate::STAGE_WORDS.contains(&v.to_ascii_lowercase().as_str())
                    {
                        notes.push(format!(
                            "{at}: [default] passes {k}={v}, a stage's word, which init wrote for every stage: give {k} = \"${{stage}}\" if each stage is to have its own"
                        ));
                    }
                    found.push((k, v, from.clone()));
                }
            }
            Ok(None) => {}
            Err(e) => notes.push(format!(
                "{at}: not read ({e}); its parameter_overrides were not taken"
            )),
        }
    }
    // The service's deploy commands in its scripts, and how many pass each parameter: one
    // passed by the prod command only leaves the others at the template's default.
    let mut deploys = 0usize;
    let mut passed_by: BTreeMap<String, usize> = BTreeMap::new();
    for (from, text, of) in &scripts {
        // A parameters file of the repository only (`file://env/x.json`, not `file:///etc/…`);
        // one of which nothing could be read is noted, not passed over.
        let unread = std::cell::RefCell::new(Vec::new());
        let parameters_file = |cwd: &str, path: &str| {
            let rel = crate::local_deps::resolve(cwd, path)?;
            let text = small_text(&root.join(&rel))?;
            let pairs = parameters_json(&text);
            if pairs.is_empty() && !text.trim().is_empty() {
                unread.borrow_mut().push(rel);
            }
            Some(pairs)
        };
        for passed in deploy_overrides_of(text, of, &parameters_file) {
            deploys += 1;
            let mut keys = BTreeSet::new();
            for (k, v) in passed {
                if keys.insert(k.clone()) {
                    *passed_by.entry(k.clone()).or_default() += 1;
                }
                found.push((k, v, from.clone()));
            }
        }
        for rel in unread.into_inner() {
            notes.push(format!(
                "{from}: passes the parameters of {rel}, of which none could be read (not JSON, or none of the forms the AWS CLI takes: a list of ParameterKey/ParameterValue objects or of \"Key=Value\" strings, or {{\"Parameters\": {{…}}}}): give its parameters in the service.toml"
            ));
        }
    }
    let mut out = BTreeMap::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for (key, first, from) in &found {
        if !done.insert(key) {
            continue;
        }
        let Some((_, secret)) = declared.iter().find(|(k, _)| k == key) else {
            notes.push(format!(
                "{from}: passes {key}, which {} does not declare: left out",
                crate::template_path(dir, file)
            ));
            continue;
        };
        if *secret || found.iter().any(|(k, v, _)| k == key && looks_secret(k, v)) {
            secrets.insert(key.clone());
            notes.push(format!(
                "{from}: passes {key}, a secret (NoEcho, by its name, or by its value's form): not copied; keep it in SSM (`param set <stage> <name> --secure`) and give {key} = \"${{ssm:<name>}}\" in the service.toml"
            ));
            continue;
        }
        if differing.contains(key) {
            continue;
        }
        // Every value passed for it (one command per stage passes each stage's): one for
        // every stage when they differ only by the stage's word, else none (one stage's value
        // is another's wrong one: prod's domain in dev), noted.
        let mut values: Vec<(&str, &str)> = Vec::new();
        for (k, v, f) in &found {
            if k == key && !values.iter().any(|(seen, _)| seen == v) {
                values.push((v, f));
            }
        }
        let raws: Vec<&str> = values.iter().map(|(v, _)| *v).collect();
        let raw = match per_stage(&raws) {
            Some(one) => one,
            None if values.len() > 1 => {
                let each: Vec<String> = values
                    .iter()
                    .map(|(v, f)| format!("{} in {f}", ferry_ci::one_line(v.trim())))
                    .collect();
                notes.push(format!(
                    "{from}: its deploy commands pass {key} different values ({}): init wrote none of them; give {key} each stage's value (`${{stage}}`, or a `${{var:…}}` of the stages' variables)",
                    each.join("; ")
                ));
                continue;
            }
            None => first.clone(),
        };
        // Passed by some of the service's deploy commands only (`Stage=prod` in the prod
        // command, the dev command leaving the template's default): a value naming a stage is
        // written as each stage's, any other for every stage, noted.
        let some = passed_by.get(key).copied().unwrap_or_default();
        let raw = if deploys > 1 && some > 0 && some < deploys && values.len() == 1 {
            // Only a stage's own name (`prod`), which `${stage}` gives back; not `production`.
            let staged = crate::STAGES
                .iter()
                .map(|word| literal_stage(&raw, word))
                .find(|v| *v != raw);
            notes.push(format!(
                "{from}: passes {key} in {some} of the service's {deploys} deploy commands (the others pass none: the template's default, or a samconfig's): init wrote `{}` for every stage; check it",
                ferry_ci::one_line(
                    staged
                        .as_deref()
                        .unwrap_or(&raw)
                        .replace("${STAGE}", "${stage}")
                        .trim()
                )
            ));
            staged.unwrap_or(raw)
        } else {
            raw
        };
        // A parameter that names a git branch (`BranchName=$(GITHUB_BRANCH)`, which an Amplify
        // app or a pipeline tracks) takes a branch, not the stage its variable may stand for.
        if key.to_ascii_lowercase().contains("branch") && raw.contains('$') {
            notes.push(format!(
                "{from}: passes {key} `{}`, a git branch, which is no stage: not written as the stage; give {key} the branch each stage tracks in the service.toml (a `${{var:…}}` of the stages' variables)",
                raw.trim()
            ));
            continue;
        }
        match translate(&raw) {
            Ok(value) => {
                out.insert(
                    key.clone(),
                    (value, format!("as {from} passes it: {}", raw.trim())),
                );
            }
            Err(var) => notes.push(format!(
                "{from}: passes {key} a value with {var}, which Ferry cannot know: give {key} its value in the service.toml"
            )),
        }
    }
    out
}

/// The stack name the service's own deploy steps give its stacks, as a `stack-name` pattern
/// (`{stage}` for the stage), with where it came from: `stack_name` of `samconfig.toml`
/// (its `default` environment, else the named environments', each name read as that stage),
/// else a `--stack-name` of a `sam deploy` or `aws cloudformation deploy` of a Makefile or shell
/// script (as [`read`] finds them). A name that holds no stage (one stack for every stage) or a
/// variable Ferry cannot know is noted instead. Ferry would otherwise deploy a stack of its own
/// beside the one the scripts made.
pub(crate) fn stack_name(
    root: &Path,
    dir: &str,
    file: &str,
    notes: &mut Vec<String>,
) -> Option<(String, String)> {
    // (name as read, with a named environment's own name as its stage; where from; as written)
    let mut found: Vec<(String, String, String)> = Vec::new();
    let scripts = scripts_of(root, dir, file);
    for config in samconfigs(root, dir, file, &scripts) {
        let at = &config.path;
        if let Ok(envs) = &config.envs {
            let names = samconfig_stack_names(envs);
            // A named environment is read as the stage of its name: one that is no stage
            // `ferry.toml` is written with (`[production]`) names a stack no stage deploys.
            let unlike: Vec<&str> = names
                .iter()
                .map(|(env, _)| env.as_str())
                .filter(|env| *env != "default" && !crate::STAGES.contains(env))
                .collect();
            if !unlike.is_empty() {
                notes.push(format!(
                    "{at}: names its stacks by its environments [{}], which are no stages of ferry.toml ({}): no stack-name written; name the stages after the environments, or set the service's stack-name by hand (`{{stage}}` for the stage), or Ferry deploys new stacks beside them",
                    unlike.join("], ["),
                    crate::STAGES.join(", ")
                ));
                return None;
            }
            // Named environments must give one pattern once their names are read as stages.
            if names.windows(2).any(|p| p[0].1 != p[1].1) {
                let each: Vec<String> = names
                    .iter()
                    .map(|(env, raw)| format!("[{env}] {}", raw.replace("${STAGE}", env)))
                    .collect();
                notes.push(format!(
                    "{at}: its environments name their stacks unlike each other ({}): no stack-name written; set the service's stack-name by hand, or Ferry deploys new stacks beside them",
                    each.join(", ")
                ));
                return None;
            }
            found.extend(names.into_iter().map(|(env, raw)| {
                // As the file holds it (the environment's own name was read as its stage).
                let shown = raw.replace("${STAGE}", &env);
                (raw, format!("{at} [{env}]"), shown)
            }));
        }
    }
    for (from, text, of) in &scripts {
        found.extend(
            deploy_flag_of(&with_literal_variables(text), of, "--stack-name")
                .into_iter()
                .map(|raw| (raw.clone(), from.clone(), raw)),
        );
    }
    let (first, from, _) = found.first()?.clone();
    // A script deploying each stage with a command of its own (`--stack-name app-prod`, then
    // `--stack-name app-dev`): the names one pattern gives, when they differ only by the
    // stage's word.
    let mut raws: Vec<&str> = Vec::new();
    let mut written: Vec<&str> = Vec::new();
    for (raw, _, shown) in &found {
        if !raws.contains(&raw.as_str()) {
            raws.push(raw);
            written.push(shown.trim());
        }
    }
    let raw = per_stage(&raws).unwrap_or(first);
    let pattern = match translate(&raw) {
        Ok(value) if value.contains("${region}") => {
            notes.push(format!(
                "{from}: names its stacks `{raw}`, with the region in it: Ferry's stack-name takes only {{project}}, {{service}} and {{stage}}; set the service's stack-name by hand (each stage deploys to one region)"
            ));
            return None;
        }
        Ok(value) => value.replace("${stage}", "{stage}"),
        Err(var) => {
            notes.push(format!(
                "{from}: names its stacks with {var}, which Ferry cannot know: set the service's stack-name (`{{stage}}` for the stage) to the stacks it deployed, or Ferry deploys new ones beside them"
            ));
            return None;
        }
    };
    if !pattern.contains("{stage}") {
        notes.push(format!(
            "{from}: deploys one stack, `{raw}`, for every stage: Ferry gives each stage a stack of its own, so it deploys new ones; to keep that stack for one stage, set that service's stack-name with {{stage}} and deploy it with --adopt"
        ));
        return None;
    }
    // The names as the scripts write them (`app-prod`, `app-dev`), not the pattern made of
    // them, which no script holds.
    Some((
        pattern,
        format!("as {from} names its stacks: {}", written.join(", ")),
    ))
}

/// The SAM configuration files the service's `sam deploy` reads: its folders' own (see
/// [`samconfig::found`]) and each its deploy scripts name with `--config-file`, from the folder
/// of the template the command names (as the SAM CLI reads it), else the one the command runs
/// in: one per
/// stage for a name with the stage's variable in it (`config/sam-$(STAGE).toml`), none for a
/// name with another variable.
fn samconfigs(
    root: &Path,
    dir: &str,
    file: &str,
    scripts: &[(String, String, Of)],
) -> Vec<samconfig::Found> {
    let mut named: Vec<String> = Vec::new();
    for (_, text, of) in scripts {
        for (cwd, command) in deploy_commands_of(text, of) {
            let flag = |name: &str| command.windows(2).find(|p| p[0] == name).map(|p| &p[1]);
            let (Some(raw), Some(cwd)) = (flag("--config-file"), cwd) else {
                continue;
            };
            let template = TEMPLATE_FLAGS.iter().find_map(|f| flag(f));
            let base = template
                .and_then(|t| crate::local_deps::resolve(&cwd, t))
                .map_or(cwd, |t| crate::local_deps::parent(&t).to_string());
            let names = match translate(raw) {
                Ok(v) if v.contains("${region}") => Vec::new(),
                Ok(v) if v.contains("${stage}") => crate::STAGES
                    .iter()
                    .map(|stage| v.replace("${stage}", stage))
                    .collect(),
                Ok(v) => vec![v],
                Err(_) => Vec::new(),
            };
            named.extend(
                names
                    .iter()
                    .filter_map(|p| crate::local_deps::resolve(&base, p)),
            );
        }
    }
    samconfig::found(root, &folders(dir, file), &named)
}

/// `stack_name` of a samconfig's `deploy` (else `global`) parameters, (environment, name): each
/// named environment's with its name read as the stage (`orders-prod` of `[prod]` is
/// `orders-${STAGE}`) when one is named after a stage, else the `default` environment's, else
/// each named one's.
fn samconfig_stack_names(envs: &[samconfig::Env]) -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = Vec::new();
    for env in envs {
        // `deploy`'s, else `global`'s (where `sam init` writes it).
        let name = env
            .parameter(&["deploy", "global"], "stack_name")
            .and_then(samconfig::Value::as_str);
        if let Some(name) = name {
            let name = if env.name == "default" {
                name.to_string()
            } else {
                literal_stage(name, &env.name)
            };
            names.push((env.name.clone(), name));
        }
    }
    // Environments named after the stages (`sam deploy --config-env dev`) name each stage's
    // stack; `default` (which `sam init` writes) is then the one `sam deploy` alone uses, no
    // stage's.
    let stages = names
        .iter()
        .any(|(e, _)| crate::STAGES.contains(&e.as_str()));
    if stages {
        names.retain(|(e, _)| e != "default");
    } else if let Some(default) = names.iter().position(|(e, _)| e == "default") {
        return vec![names.swap_remove(default)];
    }
    names
}

/// The text of a script, samconfig or template of at most [`MAX_SCRIPT`] bytes, read lossily:
/// one byte that is no UTF-8 (a Latin-1 comment, which a shell runs as it is) must not hide the
/// stack name and parameters its commands give (new stacks would be deployed beside them).
pub(crate) fn small_text(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_SCRIPT {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    Some(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The region the service's own deploy steps deploy to: `samconfig.toml`'s (its `default`
/// environment's `deploy` or `global` parameters, else the first environment's that names
/// one), else the `--region` every `sam deploy` or `aws cloudformation deploy` of its template
/// in its Makefiles and shell scripts gives. Scripts that name two regions (one per stage's
/// script), or a region Ferry cannot know (a variable), give none, and are noted. Besides, the
/// regions its SAM configuration gives the environments named after the stages (`[prod]`'s
/// `region`), stage → region.
pub(crate) fn deploy_regions(
    root: &Path,
    dir: &str,
    file: &str,
    notes: &mut Vec<String>,
) -> (Option<String>, BTreeMap<String, String>) {
    let scripts = scripts_of(root, dir, file);
    let configs = samconfigs(root, dir, file, &scripts);
    let stages = stage_regions(&configs);
    // Environments deploying to regions of their own (`[prod]` in eu-west-1, the others in
    // eu-west-2; or one file per stage, each naming its own): one region is written for every
    // stage.
    let each: Vec<(String, &str)> = configs
        .iter()
        .flat_map(|c| {
            let envs = c.envs.as_deref().unwrap_or_default();
            envs.iter().filter_map(|e| {
                let r = e.parameter(&["deploy", "global"], "region")?.as_str()?;
                region_like(r).then(|| (format!("{} [{}]", c.path, e.name), r))
            })
        })
        .collect();
    if each.iter().any(|(_, r)| *r != each[0].1) {
        let shown: Vec<String> = each.iter().map(|(at, r)| format!("{at} {r}")).collect();
        notes.push(format!(
            "{}: its SAM configuration deploys to more than one region ({}): each stage is written with the region of the environment named after it where the services agree, else one for every stage; check each stage's region in ferry.toml against its stacks' (else Ferry deploys new stacks in the region written)",
            crate::template_path(dir, file),
            shown.join(", ")
        ));
    }
    if let Some(r) = configs
        .iter()
        .find_map(|c| samconfig_region(c.envs.as_deref().ok()?))
    {
        return (Some(r), stages);
    }
    // (region as written, the script that gives it)
    let mut given: Vec<(String, String)> = Vec::new();
    for (from, text, of) in &scripts {
        given.extend(
            deploy_flag_of(&with_literal_variables(text), of, "--region")
                .into_iter()
                // A command's end stuck to the value (`--region eu-west-1;`).
                .map(|r| {
                    let cut = r.trim_end_matches([';', ')', '&', '|']);
                    if region_like(cut) { cut.to_string() } else { r }
                })
                .map(|r| (r, from.clone())),
        );
    }
    // One script's deploy commands (one per stage) naming one region: said once.
    let mut once: Vec<(String, String)> = Vec::new();
    for g in given {
        if !once.contains(&g) {
            once.push(g);
        }
    }
    let (known, unknown): (Vec<_>, Vec<_>) = once.into_iter().partition(|(r, _)| region_like(r));
    let mut regions: Vec<&str> = known.iter().map(|(r, _)| r.as_str()).collect();
    regions.sort_unstable();
    regions.dedup();
    let shown = |list: &[(String, String)]| {
        list.iter()
            .map(|(r, from)| format!("`{}` in {from}", ferry_ci::one_line(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let region = match (regions.as_slice(), unknown.is_empty()) {
        ([one], true) => Some(one.to_string()),
        ([], true) => None,
        ([_, _, ..], _) => {
            notes.push(format!(
                "{}: its deploy scripts name more than one region ({}): a Ferry stage deploys every service to the stage's own region; set each stage's region in ferry.toml",
                crate::template_path(dir, file),
                shown(&known)
            ));
            None
        }
        (_, false) => {
            notes.push(format!(
                "{}: its deploy scripts name the region as {}, which Ferry cannot know: set the stages' region in ferry.toml to the one it deploys to",
                crate::template_path(dir, file),
                shown(&unknown)
            ));
            None
        }
    };
    (region, stages)
}

/// Whether `r` could be a region name as written (no variable, no shell syntax): whether it
/// is one is judged by the caller.
fn region_like(r: &str) -> bool {
    !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The regions SAM configurations give the environments named after the stages (`[prod]`'s
/// `region`), stage → region.
fn stage_regions(configs: &[samconfig::Found]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in configs {
        for e in c.envs.as_deref().unwrap_or_default() {
            if !crate::STAGES.contains(&e.name.as_str()) {
                continue;
            }
            let region = e
                .parameter(&["deploy", "global"], "region")
                .and_then(samconfig::Value::as_str)
                .filter(|r| region_like(r) && ferry_manifest::is_region_name(r));
            if let Some(r) = region {
                out.entry(e.name.clone()).or_insert_with(|| r.to_string());
            }
        }
    }
    out
}

/// A samconfig's region: its `default` environment's `deploy` or `global` parameters', else the
/// first environment's that names one.
fn samconfig_region(envs: &[samconfig::Env]) -> Option<String> {
    let region_of = |env: &samconfig::Env| {
        env.parameter(&["deploy", "global"], "region")?
            .as_str()
            .filter(|r| region_like(r))
            .map(String::from)
    };
    envs.iter()
        .find(|e| e.name == "default")
        .and_then(region_of)
        .or_else(|| envs.iter().find_map(region_of))
}

/// The `parameter_overrides` of a samconfig's `default` environment, else its first one
/// that has some, (environment, the `Key=Value` words), and the other environments'.
type Environments = ((String, Vec<String>), Vec<(String, Vec<String>)>);

fn samconfig_environments(config: &[samconfig::Env]) -> Option<Environments> {
    let mut envs: Vec<(String, Vec<String>)> = Vec::new();
    for env in config {
        let words = match env.parameter(&["deploy"], "parameter_overrides") {
            Some(samconfig::Value::Text(s)) => words(s),
            Some(samconfig::Value::List(items)) => {
                items.iter().map(String::as_str).flat_map(words).collect()
            }
            _ => continue,
        };
        envs.push((env.name.clone(), words));
    }
    let pick = envs
        .iter()
        .position(|(e, _)| e == "default")
        .unwrap_or_default();
    (!envs.is_empty()).then(|| {
        let picked = envs.remove(pick);
        (picked, envs)
    })
}

/// A `Key=Value` of samconfig environment `env`, its value written as the stage where it names
/// the environment (see [`literal_stage`]).
fn env_pair(word: &str, env: &str) -> Option<(String, String)> {
    let (k, v) = pair(word)?;
    Some(if env == "default" {
        (k, v)
    } else {
        (k, literal_stage(&v, env))
    })
}

/// [`deploy_overrides_of`] a script of the service's folder deploying `template` (its name),
/// reading no parameters file.
#[cfg(test)]
fn deploy_overrides(text: &str, template: &str) -> Vec<(String, String)> {
    let of = Of::Near {
        folder: String::new(),
        template: template.to_string(),
        path: template.to_string(),
        make: true,
        from_root: false,
    };
    deploy_overrides_of(text, &of, &|_, _| None).concat()
}

/// `Key=Value` pairs after `--parameter-overrides` (`sam deploy`, `aws cloudformation deploy`)
/// or `--parameters` (`create-stack`, `update-stack`: `ParameterKey=K,ParameterValue=V`), or
/// those of a JSON file of them, `file://env/network.json`, which `parameters_file` reads (from
/// the script's folder, see [`parameters_json`]), of each deploy command `of` says is the
/// service's: one list per command, empty for a command passing none.
fn deploy_overrides_of(
    text: &str,
    of: &Of,
    parameters_file: &dyn Fn(&str, &str) -> Option<Pairs>,
) -> Vec<Pairs> {
    // `--parameter-overrides="A=1" "B=2"` as `--parameter-overrides A=1 B=2` (its words come
    // split by `flag_words`).
    deploy_commands_of(text, of)
        .into_iter()
        .map(|(cwd, w)| {
            let Some(at) = w
                .iter()
                .position(|x| x == "--parameter-overrides" || x == "--parameters")
            else {
                return Vec::new();
            };
            if let Some(path) = w.get(at + 1).and_then(|x| x.strip_prefix("file://")) {
                // From the folder the command runs in.
                return cwd
                    .and_then(|cwd| parameters_file(&cwd, path))
                    .unwrap_or_default();
            }
            // `--parameter-overrides 'A=1 B="x y"'` passes several in one quoted word, as the
            // SAM CLI takes them: each word is split again.
            w[at + 1..]
                .iter()
                .take_while(|x| !x.starts_with("--"))
                .flat_map(|x| {
                    // Several pairs in one word, not one pair whose value holds spaces.
                    let pieces = words(x);
                    let several = pieces.len() > 1 && pieces.iter().all(|p| pair(p).is_some());
                    if several { pieces } else { vec![x.clone()] }
                })
                .filter_map(|x| pair(&x))
                .collect()
        })
        .collect()
}

/// Parameters as `(key, value)`, in the order given.
type Pairs = Vec<(String, String)>;

/// The pairs of a parameters file (`--parameters file://…`, `--parameter-overrides
/// file://…`), in each form the AWS CLI takes: a list of `ParameterKey`/`ParameterValue`
/// objects (CloudFormation's), a list of `Key=Value` strings, or CodePipeline's template
/// configuration (`{"Parameters": {"Key": "Value"}}`); none when it is none of them.
fn parameters_json(text: &str) -> Pairs {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|p| match p {
                serde_json::Value::String(s) => pair(s),
                _ => {
                    let key = p.get("ParameterKey")?.as_str()?;
                    let value = p.get("ParameterValue")?.as_str()?;
                    pair(&format!("{key}={value}"))
                }
            })
            .collect(),
        Ok(serde_json::Value::Object(o)) => o
            .get("Parameters")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| pair(&format!("{k}={}", v.as_str()?)))
            .collect(),
        _ => Vec::new(),
    }
}

/// `Key=Value` (also `ParameterKey=Key,ParameterValue=Value`), the key a template parameter's
/// name (letters and digits).
fn pair(word: &str) -> Option<(String, String)> {
    let (k, v) = match word.strip_prefix("ParameterKey=") {
        Some(rest) => {
            let (k, v) = rest.split_once(",ParameterValue=")?;
            // `…,UsePreviousValue=false` is no part of the value.
            (k, v.split(",UsePrevious").next().unwrap_or(v))
        }
        None => word.split_once('=')?,
    };
    (!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| (k.to_string(), v.to_string()))
}

/// Whether a variable's name says it holds the stage (`STAGE`, `ENV`, `AWS_BRANCH`, …).
pub(crate) fn stage_variable(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.contains("STAGE")
        || n.contains("BRANCH")
        || n == "ENV"
        || n.starts_with("ENV_")
        || n.ends_with("_ENV")
        || n.contains("ENVIRONMENT")
}

/// A value with its variables in Ferry's syntax, or the first variable it cannot translate, as
/// it is to be shown (quoted, with what it is: `` `TEAM` ``, `` `$1`, an argument … ``).
fn translate(raw: &str) -> Result<String, String> {
    // `` `cat table.txt` ``: a command's output too (the old form of `$(…)`).
    if raw.contains('`') {
        return Err("`` `…` ``, what a command prints".to_string());
    }
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        // `$$` is make's escape of `$`.
        let after = rest[at..].trim_start_matches('$');
        // What cannot be read is named by what it is, never by the value (it may be secret).
        let unreadable = || "`$` without a variable name".to_string();
        // `$(cat table.txt)` (a shell's), `$(shell …)` (make's): a command's output.
        let command = || "`$(…)`, what a command prints".to_string();
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').ok_or_else(unreadable)?;
            (&inner[..end], end + 2)
        } else if let Some(inner) = after.strip_prefix('(') {
            let end = inner.find(')').ok_or_else(command)?;
            if inner[..end].contains(char::is_whitespace) {
                return Err(command());
            }
            (&inner[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        // `${NAME:-default}` and the like: the name.
        let var = name
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default();
        if var.is_empty() {
            return Err(unreadable());
        }
        // `$1`: what the script is run with (`./deploy.sh dev`), which no file says.
        if var.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("`${var}`, an argument the script is run with"));
        }
        if stage_variable(var) {
            out.push_str("${stage}");
        } else if var.to_ascii_uppercase().contains("REGION") {
            out.push_str("${region}");
        } else {
            return Err(format!("`{var}`"));
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One value for every stage from `values` that differ only by the name of a stage `ferry.toml`
/// is written with (dev, staging, prod), each holding it as a word of its own (`app-prod` and
/// `app-dev`: `app-${STAGE}`, which [`translate`] reads as the stage); `None` when no such form
/// is common to them all; a value naming the stage by a variable (`app-$STAGE`, a buildspec's
/// beside the per-stage scripts' `app-prod` and `app-dev`) is that form itself. Another
/// stage's word (`app-production`) is no Ferry stage's: its stack or value would change with
/// it.
fn per_stage(values: &[&str]) -> Option<String> {
    let forms = |v: &str| -> Vec<String> {
        let own = translate(v)
            .ok()
            .filter(|t| t.contains("${stage}"))
            .map(|t| t.replace("${stage}", "${STAGE}"));
        crate::STAGES
            .iter()
            .map(|w| literal_stage(v, w))
            .filter(|f| f.contains("${STAGE}"))
            .chain(own)
            .collect()
    };
    let (first, rest) = values.split_first()?;
    if rest.is_empty() {
        return None;
    }
    forms(first)
        .into_iter()
        .find(|f| rest.iter().all(|v| forms(v).contains(f)))
}

/// A value of a named samconfig environment with that name, as a word of its own, written as
/// the stage (`/dev/table` in `[dev.deploy.parameters]` → `/${stage}/table`).
fn literal_stage(value: &str, env: &str) -> String {
    let parts: Vec<&str> = value.split(env).collect();
    let mut out = String::from(parts[0]);
    for (i, part) in parts[1..].iter().enumerate() {
        let before = parts[..=i].join(env);
        let alone = !before.ends_with(|c: char| c.is_ascii_alphanumeric())
            && !part.starts_with(|c: char| c.is_ascii_alphanumeric());
        // Read back by `translate` as the stage variable it is.
        out.push_str(if alone { "${STAGE}" } else { env });
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The region of [`deploy_regions`].
    fn deploy_region(
        root: &Path,
        dir: &str,
        file: &str,
        notes: &mut Vec<String>,
    ) -> Option<String> {
        deploy_regions(root, dir, file, notes).0
    }

    #[test]
    fn a_deploy_of_what_a_package_command_wrote_from_the_template_is_the_services() {
        let make = "deploy:\n\tsam package --s3-bucket $${BUCKET} --output-template-file packaged.yaml && \\\n\taws cloudformation deploy --template-file packaged.yaml \\\n\t\t--parameter-overrides Table=/$${AWS_BRANCH}/table Layer=x\n";
        assert_eq!(
            deploy_overrides(make, "template.yaml"),
            [
                ("Table".to_string(), "/$${AWS_BRANCH}/table".to_string()),
                ("Layer".to_string(), "x".to_string())
            ]
        );
        // Packaged from another template: not this one's.
        let other = make.replace("sam package", "sam package --template-file other.yaml");
        assert!(deploy_overrides(&other, "template.yaml").is_empty());
        // Two templates packaged to one file name: not taken for either.
        let both = format!(
            "{make}other:\n\tsam package --template-file other.yaml --output-template-file packaged.yaml\n"
        );
        assert!(deploy_overrides(&both, "template.yaml").is_empty());
        // A flag with its value after `=`.
        let eq = make.replace(
            "--template-file packaged.yaml",
            "--template-file=packaged.yaml",
        );
        assert_eq!(deploy_overrides(&eq, "template.yaml").len(), 2);
        let other_eq = make.replace(
            "--template-file packaged.yaml",
            "--template-file=other.yaml",
        );
        assert!(deploy_overrides(&other_eq, "template.yaml").is_empty());
        // Standard output redirected into the file.
        let redirect = make.replace("--output-template-file packaged.yaml", "> packaged.yaml");
        assert_eq!(deploy_overrides(&redirect, "template.yaml").len(), 2);
        let stuck = make.replace("--output-template-file packaged.yaml", ">packaged.yaml");
        assert_eq!(deploy_overrides(&stuck, "template.yaml").len(), 2);
        // aws cloudformation package, written to a folder.
        let cfn = "aws cloudformation package --template-file infra.yaml --s3-bucket b --output-template-file out/infra.packaged.yaml\naws cloudformation deploy --template-file out/infra.packaged.yaml --stack-name s --parameter-overrides A=1\n";
        assert_eq!(
            deploy_overrides(cfn, "infra.yaml"),
            [("A".to_string(), "1".to_string())]
        );
        assert!(deploy_overrides(cfn, "template.yaml").is_empty());
    }

    #[test]
    fn shell_words() {
        assert_eq!(words(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
        assert_eq!(words(r#"x="a \"q\" b" # note"#), [r#"x=a "q" b"#]);
        assert_eq!(words("\"unclosed a b"), ["unclosed a b"]);
        assert_eq!(words(""), Vec::<String>::new());
    }

    #[test]
    fn variables_become_ferrys_or_are_refused() {
        assert_eq!(
            translate("/$${AWS_BRANCH}/service/x").unwrap(),
            "/${stage}/service/x"
        );
        assert_eq!(translate("$(STAGE)-$REGION").unwrap(), "${stage}-${region}");
        assert_eq!(translate("${ENV:-dev}").unwrap(), "${stage}");
        assert_eq!(translate("plain").unwrap(), "plain");
        assert_eq!(
            translate("$${GRAPHQL_API_ID}").unwrap_err(),
            "`GRAPHQL_API_ID`"
        );
        // Named by what it is: a script's argument, a command's output (before: `1`, and `$
        // without a variable name`).
        assert_eq!(
            translate("app-svc-$1").unwrap_err(),
            "`$1`, an argument the script is run with"
        );
        for command in ["$(cat table.txt)", "$(cat"] {
            assert_eq!(
                translate(command).unwrap_err(),
                "`$(…)`, what a command prints",
                "{command}"
            );
        }
        // Backticks, cut at a space or whole (before: written as the literal text).
        for command in ["`cat", "`cat table.txt`", "t-`date`"] {
            assert_eq!(
                translate(command).unwrap_err(),
                "`` `…` ``, what a command prints",
                "{command}"
            );
        }
        assert!(translate("${unclosed").is_err());
        assert!(translate("$").is_err());
        // A malformed value is never shown whole.
        let e = translate("postgres://u:s3cr3t$$@$$HOST/db").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn deploy_commands_only_and_continued_lines() {
        let make = "invoke:\n\tsam local invoke --parameter-overrides A=local\n\
deploy:\n\taws cloudformation deploy \\\n\t\t--stack-name x \\\n\t\t--parameter-overrides \\\n\t\t\tA=/$${AWS_BRANCH}/a \\\n\t\t\tStage=$${AWS_BRANCH} \\\n\t\t\tbad-key=1\n";
        assert_eq!(
            deploy_overrides(make, "template.yaml"),
            [
                ("A".to_string(), "/$${AWS_BRANCH}/a".to_string()),
                ("Stage".to_string(), "$${AWS_BRANCH}".to_string()),
            ]
        );
        assert_eq!(
            deploy_overrides(
                "sam deploy --parameter-overrides 'Stage=dev Name=\"a b\"' --no-confirm-changeset\n",
                "template.yaml"
            ),
            [
                ("Stage".to_string(), "dev".to_string()),
                ("Name".to_string(), "a b".to_string())
            ]
        );
        // One pair whose value holds spaces stays one.
        assert_eq!(
            deploy_overrides(
                r#"sam deploy --parameter-overrides Quoted="a \"b\" c""#,
                "template.yaml"
            ),
            [("Quoted".to_string(), r#"a "b" c"#.to_string())]
        );
        assert_eq!(
            pair("ParameterKey=Table,ParameterValue=t1"),
            Some(("Table".into(), "t1".into()))
        );
    }

    /// A deploy naming a template by a path with a folder in it is the service's only when the
    /// path leads to its template (a pipeline's script deploying `../api/template.yaml` deploys
    /// api's, though the file names agree), or to what the script builds below its folder.
    #[test]
    fn a_template_named_with_a_folder_is_the_service_s_only_by_its_path() {
        let of = Of::Near {
            folder: "pipeline".to_string(),
            template: "template.yaml".to_string(),
            path: "pipeline/template.yaml".to_string(),
            make: false,
            from_root: false,
        };
        let stacks = |text: &str| deploy_flag_of(text, &of, "--stack-name");
        assert!(stacks("sam deploy -t ../api/template.yaml --stack-name api-dev\n").is_empty());
        assert_eq!(
            stacks("sam deploy -t ./template.yaml --stack-name pipe\n"),
            ["pipe"]
        );
        assert_eq!(
            stacks("sam deploy -t ../pipeline/template.yaml --stack-name pipe\n"),
            ["pipe"]
        );
        assert_eq!(
            stacks("sam build\nsam deploy -t .aws-sam/build/template.yaml --stack-name built\n"),
            ["built"]
        );
        assert!(
            stacks("sam build\nsam deploy -t ../api/.aws-sam/build/template.yaml --stack-name x\n")
                .is_empty()
        );
        // A deploy after a `cd` into another folder deploys that folder's template (a probe's
        // buildspec handed storage's stack to the pipeline, whose deploy --adopt then deleted
        // storage's resources); back in its own folder, the service's again. In a shell
        // script or buildspec a `cd` holds to the end; one Ferry cannot follow, too.
        for other in [
            "cd ../storage\naws cloudformation deploy --stack-name store-$STAGE\n",
            "cd ../storage && sam deploy --stack-name store\n",
            "pushd ../storage\nsam deploy --stack-name store\n",
            "cd $DIR && sam deploy --stack-name x\n",
            "cd /opt/app; sam deploy --stack-name x\n",
            "cd ../storage\nsam deploy -t template.yaml --stack-name x\n",
        ] {
            assert!(stacks(other).is_empty(), "{other}");
        }
        assert_eq!(
            stacks("cd ../storage && npm ci\ncd ../pipeline\nsam deploy --stack-name pipe\n"),
            ["pipe"]
        );
        // The forms a `cd` takes in scripts: after a subshell's or group's opening or a
        // keyword (a review's find: `( cd ../storage && sam deploy …)` was the service's).
        for other in [
            "( cd ../storage && sam deploy --stack-name store )\n",
            "{ cd ../storage; sam deploy --stack-name store; }\n",
            "if true; then cd ../storage && sam deploy --stack-name store; fi\n",
            "builtin cd ../storage\nsam deploy --stack-name store\n",
        ] {
            assert!(stacks(other).is_empty(), "{other}");
        }
        // A subshell's `cd` ends with it; `popd` goes back; the script's own folder, however
        // named (the `cd "$(dirname "$0")"` that begins many scripts), is its own.
        for ours in [
            "(cd ../storage && npm ci)\nsam deploy --stack-name pipe\n",
            "pushd ../storage\nnpm ci\npopd\nsam deploy --stack-name pipe\n",
            "cd \"$(dirname \"$0\")\"\nsam deploy --stack-name pipe\n",
            "cd $(dirname $0) && sam deploy --stack-name pipe\n",
            "DIR=\"$(cd \"$(dirname \"${BASH_SOURCE[0]}\")\" && pwd)\"\ncd /tmp\ncd \"$DIR\"\nsam deploy --stack-name pipe\n",
            "cd ${0%/*}\nsam deploy --stack-name pipe\n",
            "cd $CODEBUILD_SRC_DIR/pipeline\nsam deploy --stack-name pipe\n",
        ] {
            assert_eq!(stacks(ours), ["pipe"], "{ours}");
        }
        assert_eq!(
            stacks("cd ..\nsam deploy -t pipeline/template.yaml --stack-name pipe\n"),
            ["pipe"]
        );
        // In a Makefile, a recipe line's `cd` holds for that line only.
        let make = Of::Near {
            folder: "pipeline".to_string(),
            template: "template.yaml".to_string(),
            path: "pipeline/template.yaml".to_string(),
            make: true,
            from_root: false,
        };
        assert_eq!(
            deploy_flag_of(
                "build:\n\tcd src && npm ci\ndeploy:\n\tsam deploy --stack-name pipe\n",
                &make,
                "--stack-name"
            ),
            ["pipe"]
        );
    }

    /// A parameters file in each form the AWS CLI takes reads alike; one in none of them, or
    /// not JSON, gives nothing (which `read` notes).
    #[test]
    fn parameters_files_of_every_form() {
        let want = vec![
            ("Env".to_string(), "dev".to_string()),
            ("Size".to_string(), "3".to_string()),
        ];
        for text in [
            r#"[{"ParameterKey": "Env", "ParameterValue": "dev"}, {"ParameterKey": "Size", "ParameterValue": "3"}]"#,
            r#"["Env=dev", "Size=3"]"#,
            r#"{"Parameters": {"Env": "dev", "Size": "3"}, "Tags": {"team": "x"}}"#,
        ] {
            assert_eq!(parameters_json(text), want, "{text}");
        }
        for bad in [
            "",
            "Env=dev",
            "{}",
            r#"{"Parameters": ["Env=dev"]}"#,
            r#"{"Parameters": {"Env": 3}}"#,
            r#"[1, null, {"ParameterKey": "Bad Key", "ParameterValue": "x"}]"#,
        ] {
            assert!(parameters_json(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn samconfig_names_the_region() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join("samconfig.toml"), text).unwrap();
        let samconfig_region_in = |root: &Path, dir: &str| {
            let found = samconfig::found(root, &[dir.to_string()], &[]);
            samconfig_region(found.first()?.envs.as_deref().ok()?)
        };
        write(
            "[prod.deploy.parameters]\nregion = \"eu-west-1\"\n[default.global.parameters]\nregion = \"us-west-2\"\n",
        );
        assert_eq!(
            samconfig_region_in(dir.path(), "").as_deref(),
            Some("us-west-2")
        );
        write("[prod.deploy.parameters]\nregion = \"eu-west-1\"\n");
        assert_eq!(
            samconfig_region_in(dir.path(), "").as_deref(),
            Some("eu-west-1")
        );
        write("[default.deploy.parameters]\nregion = \"eu west; rm\"\n");
        assert_eq!(samconfig_region_in(dir.path(), ""), None);
        write("[default\n");
        assert_eq!(samconfig_region_in(dir.path(), ""), None);
    }

    // A repository whose Makefile deploys with `--region` deploys there: the stages' region
    // comes from it when no samconfig.toml names one (before, us-east-1, and every stack would
    // have moved).
    #[test]
    fn a_script_names_the_region() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("template.yaml", "Resources: {}\n");
        write(
            "Makefile",
            "deploy:\n\taws cloudformation deploy --template-file other.yaml --region ap-south-1 --stack-name o\n\taws cloudformation deploy --template-file template.yaml --stack-name x-$(STAGE) --region eu-central-1\n",
        );
        let notes = std::cell::RefCell::new(Vec::new());
        let region = || deploy_region(dir.path(), "", "template.yaml", &mut notes.borrow_mut());
        assert_eq!(
            region().as_deref(),
            Some("eu-central-1"),
            "its own template's"
        );
        // Ended by the command's end: the region all the same.
        write(
            "Makefile",
            "deploy:\n\t(sam deploy --stack-name x --region eu-central-1)\n",
        );
        assert_eq!(region().as_deref(), Some("eu-central-1"));
        // A recipe line's prefixes (`@` silent, `-` errors ignored, `+` run under -n) are make's
        // (aws-samples/aws-serverless-shopping-cart's `@sam deploy`): before, such a deploy
        // was not read.
        for prefix in ["@", "-", "+", "@-"] {
            write(
                "Makefile",
                &format!("deploy:\n\t{prefix}sam deploy --stack-name x --region eu-west-2\n"),
            );
            assert_eq!(region().as_deref(), Some("eu-west-2"), "{prefix}");
        }
        let noted = |text: &str| notes.borrow().iter().any(|n: &String| n.contains(text));
        // A variable: no region, and noted.
        write(
            "Makefile",
            "deploy:\n\tsam deploy --region=$(REGION) --stack-name x\n",
        );
        assert_eq!(region(), None, "a variable is no region");
        assert!(
            noted("name the region as `$(REGION)` in Makefile, which Ferry cannot know"),
            "{notes:?}"
        );
        // A script per stage, each with its own region: none, and noted (before, the first
        // script's, and the other stage's stacks would have moved).
        write(
            "Makefile",
            "deploy:\n\tsam deploy --region eu-west-1 --stack-name x\n",
        );
        write(
            "deploy-prod.sh",
            "sam deploy --region us-west-2 --stack-name x\n",
        );
        assert_eq!(region(), None);
        assert!(
            noted(
                "name more than one region (`eu-west-1` in Makefile, `us-west-2` in deploy-prod.sh)"
            ),
            "{notes:?}"
        );
        std::fs::remove_file(dir.path().join("Makefile")).unwrap();
        std::fs::remove_file(dir.path().join("deploy-prod.sh")).unwrap();
        write(
            "deploy.sh",
            "sam deploy --region 'us-west-2; rm -rf /' --stack-name x\n",
        );
        assert_eq!(region(), None);
        write(
            "deploy.sh",
            "sam deploy --region=us-west-2 --stack-name x\n",
        );
        assert_eq!(region().as_deref(), Some("us-west-2"));
        write(
            "samconfig.toml",
            "[default.deploy.parameters]\nregion = \"eu-west-3\"\n",
        );
        assert_eq!(
            region().as_deref(),
            Some("eu-west-3"),
            "samconfig.toml first"
        );
    }

    // A line's other commands are not the deploy's: before, an upload's `--region` (and
    // `--stack-name`) on the deploy's line was taken for the deploy's.
    #[test]
    fn only_the_deploy_command_of_a_line_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("template.yaml", "Resources: {}\n");
        let mut notes = Vec::new();
        for script in [
            "aws s3 cp site s3://b --recursive --region us-east-1 && sam deploy --stack-name web-$STAGE --region eu-west-1\n",
            "aws s3 cp site s3://b --region us-east-1; aws --region eu-west-1 cloudformation deploy --template-file template.yaml --stack-name web-$STAGE\n",
            "aws cloudformation describe-stacks --stack-name other-$STAGE --region us-east-1 | jq . && sam deploy --stack-name web-$STAGE --region eu-west-1\n",
            "sam deploy --stack-name web-$STAGE --region eu-west-1; aws s3 cp x s3://b --region us-east-1\n",
            // A command substitution inside the deploy is another command: its flags are not
            // the deploy's, and its pipe does not cut the deploy short (a review's find).
            "sam deploy --parameter-overrides Vpc=$(aws ec2 describe-vpcs --region us-east-1 | jq -r .x) --stack-name web-$STAGE --region eu-west-1\n",
            "sam deploy --parameter-overrides Vpc=`aws ec2 describe-vpcs --region us-east-1` --stack-name web-$STAGE --region eu-west-1\n",
            "deploy:\n\t$(SAM) deploy --stack-name web-$(STAGE) --region eu-west-1\n",
            "${SAM_CLI} deploy --stack-name web-${STAGE} --region eu-west-1\n",
        ] {
            write("deploy.sh", script);
            assert_eq!(
                deploy_region(dir.path(), "", "template.yaml", &mut notes).as_deref(),
                Some("eu-west-1"),
                "{script}: {notes:?}"
            );
            assert_eq!(
                stack_name(dir.path(), "", "template.yaml", &mut notes).map(|(p, _)| p),
                Some("web-{stage}".to_string()),
                "{script}: {notes:?}"
            );
        }
        // `make deploy`, `npm run deploy`, `serverless deploy`: no SAM or CloudFormation deploy.
        write(
            "deploy.sh",
            "make deploy --region us-east-1\nserverless deploy --region us-east-1 --stack-name x\n",
        );
        assert_eq!(
            deploy_region(dir.path(), "", "template.yaml", &mut notes),
            None
        );
    }

    // A script deploying each stage with a command of its own (a probe's
    // redappleabc/klubby-aws-infrastructure): values and stack names that differ only by the
    // stage's word are one for every stage; others are noted (before, the first command's,
    // prod's, was written for every stage in silence, and its stack name taken as one stack for
    // every stage).
    #[test]
    fn a_named_environments_stack_name_is_quoted_as_the_file_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("template.yaml"), "Resources: {}\n").unwrap();
        std::fs::write(
            dir.path().join("samconfig.toml"),
            "version = 0.1\n[prod.deploy.parameters]\nstack_name = \"acme-users-prod\"\n",
        )
        .unwrap();
        let mut notes = Vec::new();
        let (pattern, why) = stack_name(dir.path(), "", "template.yaml", &mut notes).unwrap();
        assert_eq!(pattern, "acme-users-{stage}");
        // Before: `acme-users-${STAGE}`, which the file does not hold.
        assert_eq!(
            why,
            "as samconfig.toml [prod] names its stacks: acme-users-prod"
        );
    }

    #[test]
    fn one_deploy_command_per_stage_gives_values_for_every_stage() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("template.yaml", "Resources: {}\n");
        write(
            "deploy.sh",
            "sam deploy --stack-name add-user-prod --parameter-overrides ParameterKey=Stage,ParameterValue=prod ParameterKey=Pipeline,ParameterValue=pipeline-prod ParameterKey=Domain,ParameterValue=klubby.me ParameterKey=Size,ParameterValue=3\n\
sam deploy --stack-name add-user-dev --parameter-overrides ParameterKey=Stage,ParameterValue=dev ParameterKey=Pipeline,ParameterValue=pipeline-dev ParameterKey=Domain,ParameterValue=dev.klubby.me ParameterKey=Size,ParameterValue=3\n",
        );
        let mut notes = Vec::new();
        assert_eq!(
            stack_name(dir.path(), "", "template.yaml", &mut notes).map(|(p, _)| p),
            Some("add-user-{stage}".to_string()),
            "{notes:?}"
        );
        // A command naming the stage by its variable beside them (a buildspec's
        // `add-user-$STAGE`) is the same form (before, three values, no stack name).
        write(
            "buildspec.yml",
            "version: 0.2\nphases:\n  build:\n    commands:\n      - sam deploy --stack-name add-user-$STAGE --parameter-overrides Stage=$STAGE\n",
        );
        assert_eq!(
            stack_name(dir.path(), "", "template.yaml", &mut notes).map(|(p, _)| p),
            Some("add-user-{stage}".to_string()),
            "{notes:?}"
        );
        std::fs::remove_file(dir.path().join("buildspec.yml")).unwrap();
        let declared: Vec<(String, bool)> = ["Stage", "Pipeline", "Domain", "Size"]
            .iter()
            .map(|k| (k.to_string(), false))
            .collect();
        let found = read(dir.path(), "", "template.yaml", &declared, &mut notes);
        let value = |k: &str| found.get(k).map(|(v, _)| v.as_str());
        // Values that differ otherwise than by the stage's name are none of them: prod's
        // domain written for dev would make dev act as prod.
        assert_eq!(
            (
                value("Stage"),
                value("Pipeline"),
                value("Domain"),
                value("Size")
            ),
            (Some("${stage}"), Some("pipeline-${stage}"), None, Some("3")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n
                == "deploy.sh: its deploy commands pass Domain different values (klubby.me in deploy.sh; dev.klubby.me in deploy.sh): init wrote none of them; give Domain each stage's value (`${stage}`, or a `${var:…}` of the stages' variables)"),
            "{notes:?}"
        );
        // A stage's word that is no Ferry stage's (`production`) is not taken for the stage:
        // Ferry's prod would deploy `add-user-prod` beside `add-user-production` (a review's
        // find).
        write(
            "deploy.sh",
            "sam deploy --stack-name add-user-production\nsam deploy --stack-name add-user-dev\n",
        );
        assert_eq!(
            stack_name(dir.path(), "", "template.yaml", &mut notes),
            None
        );
        // Another stack's update in the service's script (no template named) is not its.
        write(
            "deploy.sh",
            "aws cloudformation update-stack --stack-name shared-dns --use-previous-template --region us-east-1 --parameters ParameterKey=Stage,ParameterValue=shared\nsam deploy --stack-name api-$STAGE --region eu-west-1 --parameter-overrides Stage=$STAGE\n",
        );
        assert_eq!(
            (
                stack_name(dir.path(), "", "template.yaml", &mut notes).map(|(p, _)| p),
                deploy_region(dir.path(), "", "template.yaml", &mut notes)
            ),
            (
                Some("api-{stage}".to_string()),
                Some("eu-west-1".to_string())
            )
        );
        let found = read(dir.path(), "", "template.yaml", &declared, &mut notes);
        assert_eq!(found["Stage"].0, "${stage}");
        // One command deploying one stage's stack: one stack for every stage, as before.
        write(
            "deploy.sh",
            "sam deploy --stack-name add-user-prod\nsam deploy --stack-name add-user-prod --no-execute-changeset\n",
        );
        assert_eq!(
            stack_name(dir.path(), "", "template.yaml", &mut notes),
            None
        );
    }

    // A region or stack name a script gives through a variable it assigns a literal
    // (`region = ap-southeast-2` in a Makefile, `REGION=us-east-1` in a script) is read through
    // it, a parameter's value never (it may be a secret); a stage's variable stays the stage (a
    // probe's kpanic9/aws-vpc-cf and klubby scripts: "a region Ferry cannot know"). And
    // `--parameter-overrides="A=1"` is read as with a space.
    #[test]
    fn a_variable_a_script_assigns_a_literal_is_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("template.yaml", "Resources: {}\n");
        write(
            "Makefile",
            "region = ap-southeast-2\nSTAGE ?= dev\nBUCKET := art-bucket # where\n\ndeploy:\n\tsam deploy --stack-name web-$(STAGE) --region $(region) --parameter-overrides=\"Bucket=$(BUCKET)\" \"Name=orders\" \"Stage=$(STAGE)\" \"Home=$${HOME}\"\n",
        );
        let mut notes = Vec::new();
        assert_eq!(
            deploy_region(dir.path(), "", "template.yaml", &mut notes).as_deref(),
            Some("ap-southeast-2"),
            "{notes:?}"
        );
        assert_eq!(
            stack_name(dir.path(), "", "template.yaml", &mut notes).map(|(p, _)| p),
            Some("web-{stage}".to_string())
        );
        let declared: Vec<(String, bool)> = ["Bucket", "Name", "Stage", "Home"]
            .iter()
            .map(|k| (k.to_string(), false))
            .collect();
        let found = read(dir.path(), "", "template.yaml", &declared, &mut notes);
        let value = |k: &str| found.get(k).map(|(v, _)| v.as_str());
        assert_eq!(
            (
                value("Bucket"),
                value("Name"),
                value("Stage"),
                value("Home")
            ),
            (None, Some("orders"), Some("${stage}"), None),
            "a parameter's value through a variable stays unknown (a variable may hold a secret under any name): {notes:?}"
        );
        // A default the caller may override, a value in a conditional, and a secret's name stay
        // variables (a review's finds: `TIER ?= dev` froze the stage under another name).
        write(
            "Makefile",
            "TIER ?= dev\nifeq ($(TIER),prod)\nregion := eu-west-1\nendif\nGITHUB_TOKEN=ghp_x\ndeploy:\n\tsam deploy --stack-name web-$(TIER) --region $(region) --parameter-overrides Auth=$(GITHUB_TOKEN)\n",
        );
        notes.clear();
        assert_eq!(
            deploy_region(dir.path(), "", "template.yaml", &mut notes),
            None
        );
        assert_eq!(
            stack_name(dir.path(), "", "template.yaml", &mut notes),
            None
        );
        let declared = vec![("Auth".to_string(), false)];
        let found = read(dir.path(), "", "template.yaml", &declared, &mut notes);
        assert!(found.is_empty(), "{found:?}");
        assert!(!notes.iter().any(|n| n.contains("ghp_x")), "{notes:?}");
        // Two values for one name: neither is taken.
        write(
            "deploy.sh",
            "REGION=us-east-1\nREGION=eu-west-1\nsam deploy --stack-name x-$STAGE --region $REGION\n",
        );
        std::fs::remove_file(dir.path().join("Makefile")).unwrap();
        assert_eq!(
            deploy_region(dir.path(), "", "template.yaml", &mut notes),
            None
        );
    }

    // `sam build` writes the template it deploys into `.aws-sam/build/template.yaml`: a deploy
    // of that file deploys the template the build read (before, only a template itself named
    // template.yaml was matched).
    #[test]
    fn a_deploy_of_what_sam_build_wrote_is_the_built_template_s() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("app.yaml", "Resources: {}\n");
        write("jobs.yaml", "Resources: {}\n");
        write(
            "Makefile",
            "deploy:\n\tsam build -t app.yaml && sam deploy --template-file .aws-sam/build/template.yaml --stack-name app-$(STAGE) --region eu-west-2\n",
        );
        let mut notes = Vec::new();
        assert_eq!(
            deploy_region(dir.path(), "", "app.yaml", &mut notes).as_deref(),
            Some("eu-west-2"),
            "{notes:?}"
        );
        assert_eq!(
            stack_name(dir.path(), "", "app.yaml", &mut notes).map(|(p, _)| p),
            Some("app-{stage}".to_string())
        );
        assert_eq!(deploy_region(dir.path(), "", "jobs.yaml", &mut notes), None);
        // Two templates built in one script into the same file: whose it deploys is unknown.
        write(
            "Makefile",
            "deploy:\n\tsam build -t app.yaml\n\tsam build --template-file jobs.yaml\n\tsam deploy --template-file .aws-sam/build/template.yaml --region eu-west-2\n",
        );
        assert_eq!(deploy_region(dir.path(), "", "app.yaml", &mut notes), None);
        assert_eq!(deploy_region(dir.path(), "", "jobs.yaml", &mut notes), None);
    }

    #[test]
    fn samconfig_default_first_and_a_named_environment_s_stage() {
        let text = "version = 0.1\n[prod.deploy.parameters]\nparameter_overrides = \"Table=\\\"/prod/t\\\"\"\n[default.deploy.parameters]\nparameter_overrides = [\"Table=/d/t\", \"Size=2\"]\n";
        let samconfig_environments = |text: &str| {
            samconfig::parse("samconfig.toml", text).map(|e| samconfig_environments(&e))
        };
        let ((env, w), _) = samconfig_environments(text).unwrap().unwrap();
        assert_eq!(
            (env.as_str(), w),
            (
                "default",
                vec!["Table=/d/t".to_string(), "Size=2".to_string()]
            )
        );
        let only_prod = "[prod.deploy.parameters]\nparameter_overrides = \"Table=/prod/t\"\n";
        assert_eq!(
            samconfig_environments(only_prod).unwrap().unwrap().0.0,
            "prod"
        );
        assert!(samconfig_environments("[x\n").is_err());
        assert_eq!(samconfig_environments("version = 0.1\n").unwrap(), None);
        assert_eq!(
            literal_stage("/prod/t-prod/production", "prod"),
            "/${STAGE}/t-${STAGE}/production"
        );
    }

    #[test]
    fn environments_passing_a_parameter_different_values_are_noted() {
        let dir = tempfile::tempdir().unwrap();
        let text = "version = 0.1\n[dev.deploy.parameters]\nparameter_overrides = \"Environment=development Table=/dev/t\"\n[prod.deploy.parameters]\nparameter_overrides = \"Environment=production Table=/prod/t\"\n";
        std::fs::write(dir.path().join("samconfig.toml"), text).unwrap();
        let declared = vec![
            ("Environment".to_string(), false),
            ("Table".to_string(), false),
        ];
        let mut notes = Vec::new();
        let found = read(dir.path(), "", "template.yaml", &declared, &mut notes);
        assert_eq!(found["Table"].0, "/${stage}/t");
        // One environment's value is another's wrong one: none written.
        assert!(!found.contains_key("Environment"), "{found:?}");
        assert!(
            notes.iter().any(|n| n.contains("its environments pass Environment different values ([dev] development; [prod] production): init wrote none of them")),
            "{notes:#?}"
        );
        // `/dev/t` and `/prod/t` are each environment's own stage: the same value.
        assert!(
            !notes.iter().any(|n| n.contains("pass Table")),
            "{notes:#?}"
        );
        // `[default]` passing dev and `[prod]` its own name: the stage's, for every stage
        // (before: noted as different values, quoting `${STAGE}`, which the file does not
        // hold, and said to be written for none). Other values are quoted as the file holds
        // them.
        // With no [default], the first environment's own value is quoted as written too.
        let named = "[dev.deploy.parameters]\nparameter_overrides = \"Table=dev-users\"\n[prod.deploy.parameters]\nparameter_overrides = \"Table=users-live\"\n";
        std::fs::write(dir.path().join("samconfig.toml"), named).unwrap();
        let mut notes = Vec::new();
        read(dir.path(), "", "template.yaml", &declared, &mut notes);
        assert!(
            notes.iter().any(|n| n.contains(
                "its environments pass Table different values ([dev] dev-users; [prod] users-live)"
            )),
            "{notes:#?}"
        );
        let staged = "[default.deploy.parameters]\nparameter_overrides = \"Environment=dev Table=t-dev\"\n[prod.deploy.parameters]\nparameter_overrides = \"Environment=prod Table=prod-x\"\n";
        std::fs::write(dir.path().join("samconfig.toml"), staged).unwrap();
        let mut notes = Vec::new();
        let found = read(dir.path(), "", "template.yaml", &declared, &mut notes);
        assert_eq!(found["Environment"].0, "${stage}", "{notes:#?}");
        assert!(
            !notes.iter().any(|n| n.contains("Environment")),
            "{notes:#?}"
        );
        assert!(!found.contains_key("Table"), "{found:?}");
        assert!(
            notes.iter().any(|n| n.contains(
                "its environments pass Table different values ([default] t-dev; [prod] prod-x)"
            )),
            "{notes:#?}"
        );
        let default = "[default.deploy.parameters]\nparameter_overrides = \"Environment=dev\"\n";
        std::fs::write(dir.path().join("samconfig.toml"), default).unwrap();
        let mut notes = Vec::new();
        read(dir.path(), "", "template.yaml", &declared, &mut notes);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("[default] passes Environment=dev, a stage's word")),
            "{notes:#?}"
        );
    }
}
