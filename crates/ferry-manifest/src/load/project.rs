//! `ferry.toml`: the `[project]` table, the `[stages.*]` tables, and the records paths that
//! stages must not share.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::DeTable;

use super::PROJECT_FILE;
use super::rules::{check_globs, is_lower_name};
use crate::diag::{Diagnostic, FileDiags};
use crate::model::{DeploymentMethod, Notifications, OnTestFailure, Project, StageConfig, Webhook};
use crate::source::Source;
use crate::spanned::{
    check_keys, get, get_bool, get_str, get_str_list, get_table, join_key, missing, parse,
    type_error,
};
use crate::ssm_name::{SsmNameError, check_ssm_name, check_ssm_read_name};
use crate::stage::{is_valid_stack_name, records_path};

const ROOT_KEYS: &[&str] = &["project", "stages", "ci", "notifications"];
const NOTIFICATION_KEYS: &[&str] = &["webhooks", "sns-topic", "stages"];
const CI_KEYS: &[&str] = &["branches", "tags", "pull-requests", "setup"];
const PROJECT_KEYS: &[&str] = &["name", "stack-name", "services", "global-inputs"];
const STAGE_KEYS: &[&str] = &[
    "region",
    "account",
    "role-arn",
    "external-id",
    "parameters-path",
    "deployment-method",
    "protected",
    "artifact-bucket",
    "records-path",
    "promote-from",
    "on-test-failure",
    "approval",
    "variables",
];

/// What `ferry.toml` holds, checked.
pub(super) struct ProjectFile {
    pub project: Project,
    /// The named stages.
    pub stages: BTreeMap<String, StageConfig>,
    /// `[stages."*"]`: the configuration of preview stages.
    pub default_stage: Option<StageConfig>,
    /// The file's text, for the line numbers of later problems.
    pub src: String,
    /// False when `project.name` is missing or unusable (reported) and a stand-in takes its
    /// place: checks that render names with it (stack names, SSM names, records paths) are
    /// left out, as they would speak of a name that is not the user's.
    pub named: bool,
}

/// Reads and checks `ferry.toml`; `None` when it cannot be read or parsed (reported). A missing
/// or unusable `[project]` or name is reported and stood in for, so that the rest is checked.
pub(super) fn read_project_file(
    source: &dyn Source,
    diags: &mut Vec<Diagnostic>,
) -> Option<ProjectFile> {
    let project_path = Path::new(PROJECT_FILE);
    // A commit stores a link as its target's path, and the plan sees edits by path: a linked
    // ferry.toml would read differently from a commit than from the working tree, and edits of
    // its target would go unseen as a global input. Something that is no file (a folder, a
    // FIFO, which a read would wait on forever) is said as such.
    let refused = match source.link_target(PROJECT_FILE) {
        Some(target) => Some(format!(
            "is a symbolic link (to `{target}`); {PROJECT_FILE} must be a file at the repository root: replace the link with a copy"
        )),
        None if !source.is_file(PROJECT_FILE) => source
            .not_a_file(PROJECT_FILE)
            .map(|why| format!("{why}; {PROJECT_FILE} must be a file at the repository root")),
        None => None,
    };
    if let Some(message) = refused {
        diags.push(Diagnostic {
            file: project_path.into(),
            line: None,
            key: None,
            message,
        });
        return None;
    }
    let read = match source.read(PROJECT_FILE) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(
            "not found at the repository root; run Ferry inside a repository that has one, pass --root <DIR>, or adopt Ferry here with `init` (it writes ferry.toml from the templates and deploy scripts it finds)".to_string(),
        ),
        read => super::config_text(read, "cannot be read"),
    };
    let src = match read {
        Ok(s) => s,
        Err(message) => {
            diags.push(Diagnostic {
                file: project_path.into(),
                line: None,
                key: None,
                message,
            });
            return None;
        }
    };
    let mut fd = FileDiags::new(project_path, &src, diags);
    let doc = parse(&mut fd, &src)?;
    check_keys(&mut fd, doc.get_ref(), "", ROOT_KEYS);

    let (mut project, named) = read_project(&mut fd, doc.get_ref(), &doc.span());
    let (stages, default_stage) = read_stages(&mut fd, doc.get_ref());
    check_parameters_paths(
        &mut fd,
        doc.get_ref(),
        &project.name,
        &stages,
        default_stage.as_ref(),
    );
    project.ci = read_ci(&mut fd, doc.get_ref(), &stages, default_stage.is_some());
    project.notifications =
        read_notifications(&mut fd, doc.get_ref(), &stages, default_stage.is_some());
    if named {
        check_records_paths(
            &mut fd,
            doc.get_ref(),
            &project.name,
            &stages,
            default_stage.as_ref(),
        );
    }
    check_promote_from(&mut fd, doc.get_ref(), &stages, default_stage.as_ref());
    Some(ProjectFile {
        project,
        stages,
        default_stage,
        src,
        named,
    })
}

/// Stands for a project name that is missing or unusable (reported), so that the rest of the
/// configuration is still checked and every problem reported at once.
const UNNAMED: &str = "project";

/// The `[project]` table, and whether it names the project. When it is missing or its name is
/// unusable (reported), the defaults and a stand-in name, so that the rest is still checked.
fn read_project(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    doc_span: &Range<usize>,
) -> (Project, bool) {
    let Some(p) = get_table(fd, doc, "", "project") else {
        if get(doc, "project").is_none() {
            missing(
                fd,
                doc_span.clone(),
                "project",
                "add a [project] table with at least `name = \"…\"`",
            );
        }
        let project = Project {
            name: UNNAMED.into(),
            stack_name: "{service}-{stage}".into(),
            services: vec!["services/*".into()],
            global_inputs: vec![PROJECT_FILE.into()],
            ci: Default::default(),
            notifications: Default::default(),
        };
        return (project, false);
    };
    let span = get(doc, "project").map(Spanned::span).unwrap_or_default();
    check_keys(fd, p, "project", PROJECT_KEYS);
    let name = get_str(fd, p, "project", "name");
    let named = name.as_ref().is_some_and(|(n, _)| is_lower_name(n));
    let name = match name {
        None => {
            if get(p, "name").is_none() {
                missing(
                    fd,
                    span,
                    "project.name",
                    "name the project with lowercase letters, digits and '-', e.g. name = \"shop\"",
                );
            }
            UNNAMED.to_string()
        }
        Some((n, sp)) if !is_lower_name(&n) => {
            fd.error(Some(sp), Some("project.name"), format!("`{n}` is not a valid project name; use lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
            UNNAMED.to_string()
        }
        Some((n, _)) => n,
    };
    let stack_name = match get_str(fd, p, "project", "stack-name") {
        Some((s, sp)) => {
            check_stack_pattern(fd, &s, sp);
            s
        }
        None => "{service}-{stage}".to_string(),
    };
    let services = get_str_list(fd, p, "project", "services")
        .unwrap_or_else(|| vec![("services/*".into(), 0..0)]);
    let services = check_globs(fd, "project.services", services);
    let global_inputs = get_str_list(fd, p, "project", "global-inputs")
        .unwrap_or_else(|| vec![(PROJECT_FILE.into(), 0..0)]);
    let global_inputs = check_globs(fd, "project.global-inputs", global_inputs);
    let project = Project {
        name,
        stack_name,
        services,
        global_inputs,
        ci: Default::default(),
        notifications: Default::default(),
    };
    (project, named)
}

/// `[notifications]`: webhooks (https URLs, or `ssm:<name>` of a parameter holding one: a
/// webhook URL that carries its own token must not sit in the repository), an SNS topic ARN,
/// and the stages announced.
fn read_notifications(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    stages: &BTreeMap<String, StageConfig>,
    previews: bool,
) -> Notifications {
    let mut out = Notifications::default();
    let Some(t) = get_table(fd, doc, "", "notifications") else {
        return out;
    };
    check_keys(fd, t, "notifications", NOTIFICATION_KEYS);
    for (hook, span) in get_str_list(fd, t, "notifications", "webhooks").unwrap_or_default() {
        match webhook(&hook) {
            Ok(w) => out.webhooks.push(w),
            Err(why) => fd.error(Some(span), Some("notifications.webhooks"), why),
        }
    }
    if let Some((arn, span)) = get_str(fd, t, "notifications", "sns-topic") {
        if sns_topic_arn(&arn) {
            out.sns_topic = Some(arn);
        } else {
            fd.error(
                Some(span),
                Some("notifications.sns-topic"),
                format!("`{arn}` is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)"),
            );
        }
    }
    if let Some(list) = get_str_list(fd, t, "notifications", "stages") {
        let mut names = Vec::new();
        for (name, span) in list {
            let known = stages.contains_key(&name) || (name == "*" && previews);
            if !known {
                let all: Vec<&str> = stages.keys().map(String::as_str).collect();
                fd.error(
                    Some(span),
                    Some("notifications.stages"),
                    format!(
                        "`{name}` is not a stage of ferry.toml (stages: {}{})",
                        all.join(", "),
                        if previews {
                            ", and \"*\" for every preview"
                        } else {
                            ""
                        }
                    ),
                );
                continue;
            }
            names.push(name);
        }
        out.stages = Some(names);
    }
    out
}

/// Whether a webhook URL goes out safely: https, or plain http only to a loopback address, and
/// naming a host. The error quotes only the URL's scheme and host ([`shown_url`]): its path,
/// query or user part may be its token.
pub fn check_webhook_url(text: &str) -> Result<(), String> {
    let lower = text.to_ascii_lowercase();
    let shown = shown_url(text);
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or_else(|| format!("`{shown}` is neither an https URL nor ssm:<parameter name>"))?;
    let host_name = host_of(rest);
    let loopback = matches!(host_name, "127.0.0.1" | "localhost" | "[::1]");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "`{shown}` is plain http: a webhook carries the stage's news and its token in clear text; use https (http only to a loopback address)"
            ));
        }
        _ => return Err(format!("`{shown}` is not an https URL")),
    }
    if host_name.is_empty() {
        return Err(format!("`{shown}` names no host"));
    }
    Ok(())
}

/// A webhook URL as messages may show it: its scheme, host and port, the rest (path, query,
/// user part, any of which may be its token) as `…`. A value without `://` shows its first 8
/// characters.
pub fn shown_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        let head: String = text.chars().take(8).collect();
        return if head.len() < text.len() {
            format!("{head}…")
        } else {
            head
        };
    };
    // The host and port: never a user part, path, query or fragment.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let more = rest.len() > host.len();
    format!("{scheme}://{host}{}", if more { "/…" } else { "" })
}

/// The host a URL names, given what follows its `://` (no user, no port, no trailing dot:
/// `hooks.slack.com.` is `hooks.slack.com`).
fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // An IPv6 address is bracketed, its own `:` inside: the port follows the `]`.
    let host = match host.find(']') {
        Some(end) if host.starts_with('[') => &host[..=end],
        _ => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// A webhook entry, or why it is refused.
fn webhook(text: &str) -> Result<Webhook, String> {
    if let Some(name) = text.strip_prefix("ssm:") {
        return match check_ssm_read_name(name) {
            Ok(()) => Ok(Webhook::Ssm(name.to_string())),
            Err(e) => Err(format!(
                "{e}; name the SSM parameter that holds the URL by its full path, e.g. ssm:/shop/notify/slack"
            )),
        };
    }
    check_webhook_url(text)?;
    let lower = text.to_ascii_lowercase();
    let rest = lower.split_once("://").map_or("", |(_, r)| r);
    let keep_in_ssm = "keep it in SSM as a SecureString (`param set <stage> notify/webhook --secure`) and name it here as ssm:/<path>";
    // Anything up to the first `/` (a `#` or `?` there may hide a `user:password@`).
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("this webhook URL holds credentials: {keep_in_ssm}"));
    }
    if rest.contains('?') {
        return Err(format!(
            "this webhook URL has a query string, which often carries its token: {keep_in_ssm}"
        ));
    }
    let host_name = host_of(rest);
    let secret_hosts = [
        "hooks.slack.com",
        "discord.com",
        "discordapp.com",
        "office.com",
        "chat.googleapis.com",
    ];
    if secret_hosts
        .iter()
        .any(|h| host_name == *h || host_name.ends_with(&format!(".{h}")))
    {
        return Err(format!(
            "this {host_name} webhook URL is a secret (its path is the token): {keep_in_ssm}"
        ));
    }
    Ok(Webhook::Url(text.to_string()))
}

/// The account of an IAM role ARN (`arn:<partition>:iam::<account>:role/<path/><name>`), or
/// what is wrong with it.
fn role_arn_account(arn: &str) -> Result<&str, String> {
    let Some([a, partition, service, region, account, resource]) = crate::arn_fields(arn) else {
        return Err("it has fewer than six `:`-separated parts".into());
    };
    if a != "arn" || !partition.starts_with("aws") || service != "iam" || !region.is_empty() {
        return Err("it must start with arn:aws:iam:: (or another AWS partition)".into());
    }
    if !crate::is_account_id(account) {
        return Err(format!("`{account}` is not a 12-digit account id"));
    }
    let Some(rest) = resource.strip_prefix("role/") else {
        return Err("it names no role (…:role/<name>)".into());
    };
    let name = rest.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name.len() > 64 {
        return Err("a role name has 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    {
        return Err(format!(
            "role name `{name}` may hold only letters, digits and +=,.@_-"
        ));
    }
    let path_len = rest.len() - name.len();
    if path_len > 512 || rest.chars().any(|c| !c.is_ascii_graphic()) {
        return Err("its path must be printable ASCII, at most 512 characters".into());
    }
    Ok(account)
}

/// S3's rules for a bucket name (general purpose buckets). A bucket made in us-east-1 before
/// March 2018 may have a legacy name (up to 255 letters of either case, digits, `.`, `-`, `_`),
/// and still exists: such a name passes for a stage in us-east-1.
fn check_bucket_name(b: &str, region: Option<&str>) -> Result<(), &'static str> {
    let legacy = |b: &str| {
        (3..=255).contains(&b.len())
            && b.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    let legacy_only = b.len() > 63 || b.chars().any(|c| c.is_ascii_uppercase() || c == '_');
    if region == Some("us-east-1") && legacy_only && legacy(b) {
        return Ok(());
    }
    if !(3..=63).contains(&b.len()) {
        return Err("it has 3 to 63 characters");
    }
    if !b
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err("only lowercase letters, digits, `.` and `-`");
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(b.chars().next()) || !edge_ok(b.chars().last()) {
        return Err("it starts and ends with a letter or digit");
    }
    if b.contains("..") {
        return Err("no two dots in a row");
    }
    if b.split('.').count() == 4 && b.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err("it must not look like an IP address");
    }
    let reserved_start = ["xn--", "sthree-", "amzn-s3-demo-"];
    let reserved_end = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    if reserved_start.iter().any(|p| b.starts_with(p))
        || reserved_end.iter().any(|s| b.ends_with(s))
    {
        return Err(
            "S3 reserves the prefixes xn--, sthree-, amzn-s3-demo- and the suffixes -s3alias, --ol-s3, .mrap, --x-s3, --table-s3",
        );
    }
    Ok(())
}

fn sns_topic_arn(arn: &str) -> bool {
    let Some([a, partition, service, region, account, name]) = crate::arn_fields(arn) else {
        return false;
    };
    a == "arn"
        && partition.starts_with("aws")
        && service == "sns"
        && !region.is_empty()
        && crate::is_account_id(account)
        && !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// `[ci]`: branch and tag patterns → stages, and the pull requests' stage. A stage must be a
/// named stage, or (with a `[stages."*"]` default) a preview stage name.
fn read_ci(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    stages: &BTreeMap<String, StageConfig>,
    previews: bool,
) -> ferry_ci::StageRules {
    let mut rules = ferry_ci::StageRules::default();
    let Some(v) = get(doc, "ci") else {
        return rules;
    };
    let Some(t) = v.get_ref().as_table() else {
        type_error(fd, v, "ci", "a table");
        return rules;
    };
    check_keys(fd, t, "ci", CI_KEYS);
    let check_stage = |fd: &mut FileDiags<'_>, stage: &str, span: Range<usize>, key: &str| {
        // No stage's name, as a deploy refuses it (`Workspace::stage`).
        if stage.chars().any(ferry_ci::unseen) {
            fd.error(
                Some(span),
                Some(key),
                format!(
                    "\"{}\" holds a control or invisible character, which no stage's name may hold; name a stage of visible characters",
                    stage.escape_debug()
                ),
            );
            return;
        }
        let named = stages.contains_key(stage);
        // As a deploy names it: the preview id a name gives must be no named stage's (`Prod`,
        // `prod/`, `_dev_` all give one), nor empty.
        let id = crate::stage::sanitize_stage_name(stage, crate::stage::MAX_PREVIEW_ID);
        let shadowed = stages.keys().find(|n| n.eq_ignore_ascii_case(&id));
        if !named
            && previews
            && let Some(shadowed) = shadowed
        {
            fd.error(
                Some(span),
                Some(key),
                format!(
                    "`{stage}` is no stage of ferry.toml, and as a preview stage its id would be `{id}`, the named stage `{shadowed}`'s, which a preview never stands in for; did you mean `{shadowed}`?"
                ),
            );
            return;
        }
        let preview_ok = previews && !id.is_empty();
        if !named && !preview_ok {
            let known: Vec<&str> = stages.keys().map(String::as_str).collect();
            fd.error(
                Some(span),
                Some(key),
                format!(
                    "`{stage}` is not a stage of ferry.toml (stages: {}){}",
                    known.join(", "),
                    if previews {
                        ""
                    } else {
                        "; a preview stage name needs a [stages.\"*\"] default"
                    }
                ),
            );
        }
    };
    for (key, one, out) in [
        ("branches", "branch", &mut rules.branches),
        ("tags", "tag", &mut rules.tags),
    ] {
        let Some(v) = get(t, key) else { continue };
        let Some(map) = v.get_ref().as_table() else {
            type_error(
                fd,
                v,
                &join_key("ci", key),
                "a table of pattern = \"stage\"",
            );
            continue;
        };
        for (pattern, stage) in map.iter() {
            let pattern: &str = pattern.get_ref();
            let full = join_key(&join_key("ci", key), pattern);
            let Some(name) = stage.get_ref().as_str() else {
                type_error(fd, stage, &full, "a stage name");
                continue;
            };
            if pattern.is_empty() {
                fd.error(
                    Some(stage.span()),
                    Some(&full),
                    "an empty pattern matches nothing; use \"*\" for every name".to_string(),
                );
                continue;
            }
            if name.contains(['{', '}']) {
                // Taken as written, `preview-{branch}` would be one stage every matching build
                // shares.
                fd.error(
                    Some(stage.span()),
                    Some(&full),
                    format!("`{name}` is taken as one stage's name: placeholders are not filled in here, so every {} it matches would deploy to that one stage; name a stage (a preview per pull request is [ci] pull-requests = \"pr-{{number}}\")", one),
                );
                continue;
            }
            check_stage(fd, name, stage.span(), &full);
            out.push((pattern.to_string(), name.to_string()));
        }
    }
    if let Some((p, sp)) = get_str(fd, t, "ci", "pull-requests") {
        if !p.contains("{number}") {
            fd.error(Some(sp.clone()), Some("ci.pull-requests"), format!("`{p}` would give every pull request the same stage; put {{number}} in it, e.g. \"pr-{{number}}\""));
        } else if !previews {
            fd.error(Some(sp.clone()), Some("ci.pull-requests"), "pull requests deploy preview stages, which need a [stages.\"*\"] default in ferry.toml".to_string());
        } else if p.replace("{number}", "").contains(['{', '}']) {
            fd.error(Some(sp.clone()), Some("ci.pull-requests"), format!("`{p}`: only {{number}} is filled in here (the branch of a pull request is not); e.g. \"pr-{{number}}\""));
        } else {
            check_stage(
                fd,
                &p.replace("{number}", "1"),
                sp.clone(),
                "ci.pull-requests",
            );
            // A named stage the pattern gives a pull request: that pull request's build (a
            // fork's too) would deploy its unreviewed code there, with the stage's settings,
            // records and role.
            // The pull request whose preview has `name`'s stage id (`PR.1`, `pr_1` and `pr-1`
            // share one: they share stacks), if one has.
            let number_of = |name: &str| {
                let id = crate::stage::sanitize_stage_name(name, crate::MAX_PREVIEW_ID);
                id.split(|c: char| !c.is_ascii_digit())
                    .filter_map(ferry_ci::pull_request_number)
                    .find(|n| {
                        crate::stage::sanitize_stage_name(
                            &p.replace("{number}", n),
                            crate::MAX_PREVIEW_ID,
                        ) == id
                    })
                    .map(String::from)
            };
            for name in stages.keys() {
                if let Some(number) = number_of(name) {
                    fd.error(
                        Some(sp.clone()),
                        Some("ci.pull-requests"),
                        format!("`{p}` gives pull request {number} the name of stage `{name}` of ferry.toml: that pull request's build would deploy to it; rename the stage, or give pull requests a pattern that no stage's name fits"),
                    );
                }
            }
            // A branch or tag rule's preview that the pattern also gives a pull request: the
            // two would share one stage, and the pull request's end would remove it.
            for (key, rules) in [("branches", &rules.branches), ("tags", &rules.tags)] {
                // A named stage's is said above.
                for (pattern, name) in rules.iter().filter(|(_, n)| !stages.contains_key(n)) {
                    if let Some(number) = number_of(name) {
                        fd.error(
                            Some(sp.clone()),
                            Some("ci.pull-requests"),
                            format!("`{p}` gives pull request {number} stage `{name}`, which [ci] {key} also deploys (`{pattern}`): the two would share one stage, and that pull request's end would remove it; give the rule another stage, or pull requests a pattern that its stage does not fit"),
                        );
                    }
                }
            }
            rules.pull_requests = Some(p);
        }
    }
    // Written into generated YAML, one list item each: one line of visible text.
    for (command, span) in get_str_list(fd, t, "ci", "setup").unwrap_or_default() {
        if command.trim().is_empty() || command.chars().any(ferry_ci::unseen) {
            fd.error(
                Some(span),
                Some("ci.setup"),
                format!(
                    "\"{}\" is empty or holds a control or invisible character: give each command as one line, e.g. setup = [\"cargo install --locked --git https://example.com/ferry.git ferry-cli\"]",
                    crate::clipped(&command, 80).escape_debug()
                ),
            );
        } else {
            rules.setup.push(command);
        }
    }
    rules
}

/// The placeholders of a stack-name pattern, the project's or a service's.
pub(super) const STACK_PLACEHOLDERS: [&str; 3] = ["project", "service", "stage"];

/// Reports a `project.stack-name` pattern with an unknown placeholder, without `{service}` and
/// `{stage}`, or with characters a stack name cannot hold.
fn check_stack_pattern(fd: &mut FileDiags<'_>, pattern: &str, span: Range<usize>) {
    let mut rest = pattern;
    let mut literal = String::new();
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            fd.error(
                Some(span),
                Some("project.stack-name"),
                format!("unclosed `{{` in `{pattern}`"),
            );
            return;
        };
        let ph = &rest[open + 1..open + close];
        if !STACK_PLACEHOLDERS.contains(&ph) {
            fd.error(
                Some(span.clone()),
                Some("project.stack-name"),
                format!(
                    "unknown placeholder `{{{ph}}}`; use {{project}}, {{service}} and {{stage}}"
                ),
            );
        }
        rest = &rest[open + close + 1..];
    }
    literal.push_str(rest);
    if !pattern.contains("{service}") || !pattern.contains("{stage}") {
        fd.error(Some(span.clone()), Some("project.stack-name"), format!("`{pattern}` must contain {{service}} and {{stage}}, or stacks of different services or stages would share a name"));
    }
    if !literal
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        fd.error(Some(span), Some("project.stack-name"), format!("`{pattern}` has characters a stack name cannot hold; use letters, digits and '-' around the placeholders"));
    }
}

/// The `[stages.*]` tables: the named stages, and the default for preview stages
/// (`[stages."*"]`).
fn read_stages(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
) -> (BTreeMap<String, StageConfig>, Option<StageConfig>) {
    let mut named = BTreeMap::new();
    let mut default = None;
    let Some(stages) = get_table(fd, doc, "", "stages") else {
        if get(doc, "stages").is_none() {
            fd.error(
                Some(0..0),
                Some("stages"),
                "no stage is configured; add e.g. [stages.dev] with region = \"us-east-1\"",
            );
        }
        return (named, default);
    };
    for (key, value) in stages.iter() {
        let name: &str = key.get_ref();
        let prefix = join_key("stages", name);
        let Some(t) = value.get_ref().as_table() else {
            type_error(fd, value, &prefix, "a table");
            continue;
        };
        if name != "*" && !is_valid_stack_name(name) {
            fd.error(Some(key.span()), Some(&prefix), format!("stage name `{name}` cannot be part of a stack name; use letters, digits and '-', starting with a letter (preview stages such as branches go through [stages.\"*\"])"));
        }
        // The previews' shared bootstrap takes the id `previews`: a named stage of that name
        // would make the same stack, role, boundary and topic.
        if name.eq_ignore_ascii_case("previews") {
            fd.error(Some(key.span()), Some(&prefix), format!("stage name `{name}` is the name of the preview stages' shared bootstrap (its stack, deployer role, boundary and topic): a named stage of that name and the previews would make the same ones; rename the stage (e.g. `preview-env`)"));
        }
        if name != "*"
            && let Some(other) = named
                .keys()
                .find(|other: &&String| other.eq_ignore_ascii_case(name))
        {
            fd.error(Some(key.span()), Some(&prefix), format!("stage `{name}` differs from stage `{other}` only by case: IAM role names, S3 bucket names (CloudFormation lowercases them) and preview ids do not tell them apart, so their deployer roles and buckets would collide; rename one"));
        }
        if let Some(cfg) = read_stage(fd, t, &prefix, value.span()) {
            if name == "*" {
                default = Some(cfg);
            } else {
                named.insert(name.to_string(), cfg);
            }
        }
    }
    (named, default)
}

/// One stage table; `None` when a required value is missing or unusable (reported).
fn read_stage(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    span: Range<usize>,
) -> Option<StageConfig> {
    check_keys(fd, t, prefix, STAGE_KEYS);
    let key = |k: &str| join_key(prefix, k);
    let region = get_str(fd, t, prefix, "region");
    if let Some((r, sp)) = &region {
        if !crate::is_region_name(r) {
            fd.error(
                Some(sp.clone()),
                Some(&key("region")),
                format!("`{r}` is not an AWS region name such as us-east-1"),
            );
        }
    } else if get(t, "region").is_none() {
        missing(
            fd,
            span,
            &key("region"),
            "set the AWS region of this stage, e.g. region = \"us-east-1\"",
        );
    }
    let account = get_str(fd, t, prefix, "account");
    if let Some((a, sp)) = &account
        && !crate::is_account_id(a)
    {
        fd.error(Some(sp.clone()), Some(&key("account")), format!("`{a}` is not a 12-digit AWS account id (write it as a string, e.g. \"111111111111\")"));
    }
    let role_arn = get_str(fd, t, prefix, "role-arn");
    if let Some((r, sp)) = &role_arn {
        match role_arn_account(r) {
            Err(why) => fd.error(
                Some(sp.clone()),
                Some(&key("role-arn")),
                format!("`{r}` is not an IAM role ARN such as arn:aws:iam::111111111111:role/ferry-deployer: {why}"),
            ),
            Ok(in_account) => {
                if let Some((a, _)) = &account
                    && crate::is_account_id(a)
                    && in_account != a
                {
                    fd.error(Some(sp.clone()), Some(&key("role-arn")), format!("`{r}` is a role of account {in_account}, but the stage's account is {a}: the role assumed must be in the account deployed to"));
                }
            }
        }
    }
    if let Some((e, sp)) = get_str(fd, t, prefix, "external-id") {
        let ok = (2..=1224).contains(&e.len())
            && e.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
        if !ok {
            fd.error(
                Some(sp),
                Some(&key("external-id")),
                "is not an STS external id: 2 to 1224 characters of letters, digits and _+=,.@:/-"
                    .to_string(),
            );
        }
    }
    let parameters_path = get_str(fd, t, prefix, "parameters-path");
    if let Some((p, sp)) = &parameters_path {
        if !p.starts_with('/') {
            let msg = format!(
                "`{p}` must be an absolute SSM path starting with '/', e.g. \"/shop/dev/\""
            );
            fd.error(Some(sp.clone()), Some(&key("parameters-path")), msg);
        } else if p.trim_end_matches('/').is_empty() {
            fd.error(Some(sp.clone()), Some(&key("parameters-path")), format!("`{p}` is every parameter of the account: the stage's deployer role would read each secret of every stage and project; give the stage a path of its own, e.g. \"/shop/dev/\""));
        } else if let Err(e) = check_ssm_name(
            &if p.ends_with('/') {
                p.clone()
            } else {
                format!("{p}/")
            },
            true,
        ) {
            fd.error(
                Some(sp.clone()),
                Some(&key("parameters-path")),
                e.to_string(),
            );
        }
    }
    let method = match get_str(fd, t, prefix, "deployment-method") {
        None => Some(DeploymentMethod::Changeset),
        Some((m, _)) if m == "changeset" => Some(DeploymentMethod::Changeset),
        Some((m, _)) if m == "direct" => Some(DeploymentMethod::Direct),
        Some((m, sp)) => {
            fd.error(
                Some(sp),
                Some(&key("deployment-method")),
                format!("`{m}` is not a deployment method; use \"changeset\" or \"direct\""),
            );
            None
        }
    };
    let protected = get_bool(fd, t, prefix, "protected").unwrap_or(false);
    let records_path = get_str(fd, t, prefix, "records-path");
    if let Some((p, sp)) = &records_path {
        let path = format!("{}/", p.replace("{stage}", "stage").trim_end_matches('/'));
        if !p.starts_with('/') {
            let msg = format!(
                "`{p}` must be an absolute SSM path starting with '/', e.g. \"/ferry/shop/dev/\""
            );
            fd.error(Some(sp.clone()), Some(&key("records-path")), msg);
        } else if p.trim_end_matches('/').is_empty() {
            fd.error(Some(sp.clone()), Some(&key("records-path")), format!("`{p}` is every parameter of the account: the stage's deployer role, granted its records path, would write every stage's records and lock and every other parameter; give the stage a path of its own, e.g. \"/ferry/shop/dev/\""));
        } else if let Err(e) = check_ssm_name(&path, true) {
            let msg = match e {
                SsmNameError::BadCharacter { ch: '{' | '}', .. } => {
                    format!("{e} ({{stage}} is the only placeholder it takes)")
                }
                e => e.to_string(),
            };
            fd.error(Some(sp.clone()), Some(&key("records-path")), msg);
        } else if prefix == "stages.\"*\""
            && p.contains("{stage}")
            && p.split("{stage}")
                .next()
                .is_some_and(|start| start.trim_end_matches('/').is_empty())
        {
            // The previews' role is granted every preview's records: the path before the id.
            fd.error(Some(sp.clone()), Some(&key("records-path")), format!("`{p}` starts every preview's records at `/`: the previews' deployer role, granted them all, would write every parameter of the account; put a path of the project's before {{stage}} (e.g. \"/ferry/<project>/{{stage}}/\"), or leave it out"));
        } else if prefix == "stages.\"*\"" && !p.contains("{stage}") {
            // Every preview stage would read and write the same records and lock.
            fd.error(Some(sp.clone()), Some(&key("records-path")), format!("`{p}` would be shared by every preview stage; put {{stage}} in it (e.g. \"{}/{{stage}}/\"), or leave it out for /ferry/<project>/<stage id>/", p.trim_end_matches('/')));
        }
    }
    let artifact_bucket = get_str(fd, t, prefix, "artifact-bucket");
    if let Some((b, sp)) = &artifact_bucket
        && let Err(why) = check_bucket_name(b, region.as_ref().map(|r| r.0.as_str()))
    {
        fd.error(
            Some(sp.clone()),
            Some(&key("artifact-bucket")),
            format!("`{b}` is not an S3 bucket name: {why}"),
        );
    }
    // An unusable value is reported; the stage stays, so its other keys are still checked.
    let on_test_failure = match get_str(fd, t, prefix, "on-test-failure") {
        None => OnTestFailure::Keep,
        Some((m, _)) if m == "keep" => OnTestFailure::Keep,
        Some((m, _)) if m == "rollback" => OnTestFailure::Rollback,
        Some((m, sp)) => {
            fd.error(
                Some(sp),
                Some(&key("on-test-failure")),
                format!("`{m}` is not what to do on a test failure; use \"keep\" (the default) or \"rollback\""),
            );
            OnTestFailure::Keep
        }
    };
    Some(StageConfig {
        region: region?.0,
        account: account.map(|a| a.0),
        role_arn: role_arn.map(|a| a.0),
        external_id: get_str(fd, t, prefix, "external-id").map(|a| a.0),
        parameters_path: parameters_path.map(|a| a.0),
        deployment_method: method?,
        protected,
        artifact_bucket: artifact_bucket.map(|a| a.0),
        records_path: records_path.map(|a| a.0),
        promote_from: get_str(fd, t, prefix, "promote-from").map(|a| a.0),
        on_test_failure,
        approval: get_bool(fd, t, prefix, "approval").unwrap_or(false),
        variables: read_variables(fd, t, prefix),
    })
}

/// `variables = { NAME = "value" }` of a stage.
fn read_variables(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let key = join_key(prefix, "variables");
    let Some(v) = get(t, "variables") else {
        return out;
    };
    let Some(table) = v.get_ref().as_table() else {
        type_error(fd, v, &key, "a table of NAME = \"value\"");
        return out;
    };
    for (name, value) in table.iter() {
        let name: &str = name.get_ref();
        let full = join_key(&key, name);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            fd.error(
                Some(value.span()),
                Some(&full),
                "a variable name holds letters, digits, '-' and '_'".to_string(),
            );
            continue;
        }
        match value.get_ref().as_str() {
            Some(s) => {
                out.insert(name.to_string(), s.to_string());
            }
            None => type_error(fd, value, &full, "a string"),
        }
    }
    out
}

/// `promote-from` names another named stage, and following it never comes back to a stage.
fn check_promote_from(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    stages: &BTreeMap<String, StageConfig>,
    default: Option<&StageConfig>,
) {
    let span_of = |name: &str| {
        let table = get(doc, "stages")
            .and_then(|s| s.get_ref().as_table())
            .and_then(|s| get(s, name));
        table
            .and_then(|t| t.get_ref().as_table())
            .and_then(|t| get(t, "promote-from"))
            .or(table)
            .map(Spanned::span)
    };
    let mut all: Vec<(&str, &StageConfig)> = stages.iter().map(|(n, c)| (n.as_str(), c)).collect();
    if let Some(d) = default {
        all.push(("*", d));
    }
    for (name, config) in all {
        let Some(from) = &config.promote_from else {
            continue;
        };
        let key = join_key(&join_key("stages", name), "promote-from");
        if from == name {
            fd.error(span_of(name), Some(&key), format!("stage `{name}` cannot promote from itself; name the stage whose tested packages it takes, e.g. \"staging\""));
            continue;
        }
        if !stages.contains_key(from) {
            let known: Vec<&str> = stages.keys().map(String::as_str).collect();
            fd.error(span_of(name), Some(&key), format!("`{from}` is not a stage of ferry.toml (stages: {}); promote-from names a stage under [stages]", known.join(", ")));
            continue;
        }
        // Follow the chain: it must end, never return.
        let mut seen = vec![name];
        let mut at = from.as_str();
        while let Some(next) = stages.get(at).and_then(|c| c.promote_from.as_deref()) {
            seen.push(at);
            if seen.contains(&next) {
                fd.error(span_of(name), Some(&key), format!("promote-from goes round in a circle: {} → {next}; one stage must come first", seen.join(" → ")));
                break;
            }
            at = next;
        }
    }
}

/// Refuses a stage's `parameters-path` that holds, or lies inside, another stage's
/// `parameters-path` or records path in the same region (and account, as far as known): `exec`,
/// `param list` and a relative `${ssm:…}` of the one would read the other's parameters (prod's
/// secrets in dev's commands), or its records and lock. The preview stages (`"*"`) count as one
/// stage, their records as every path starting where their pattern's stage id starts.
fn check_parameters_paths(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    project: &str,
    stages: &BTreeMap<String, StageConfig>,
    previews: Option<&StageConfig>,
) {
    // Only a path that passed its own checks (`read_stage` reported the others).
    let dir = |p: &str| {
        let d = if p.ends_with('/') {
            p.to_string()
        } else {
            format!("{p}/")
        };
        (p.starts_with('/') && d != "/" && check_ssm_name(&d, true).is_ok()).then_some(d)
    };
    let nests = |a: &str, b: &str| a.starts_with(b) || b.starts_with(a);
    let all: Vec<(&str, &StageConfig)> = stages
        .iter()
        .map(|(n, c)| (n.as_str(), c))
        .chain(previews.map(|c| ("*", c)))
        .collect();
    let span_of = |name: &str| {
        let table = get(doc, "stages")
            .and_then(|s| s.get_ref().as_table())
            .and_then(|s| get(s, name));
        table
            .and_then(|t| t.get_ref().as_table())
            .and_then(|t| get(t, "parameters-path"))
            .or(table)
            .map(Spanned::span)
    };
    let whose = |name: &str| match name {
        "*" => "the preview stages' (\"*\")".to_string(),
        n => format!("stage `{n}`'s"),
    };
    for (i, (name, config)) in all.iter().enumerate() {
        let Some(mine) = config.parameters_path.as_deref().and_then(dir) else {
            continue;
        };
        for (j, (other, theirs)) in all.iter().enumerate() {
            if i == j || config.apart_from(theirs) {
                continue;
            }
            let key = join_key(&join_key("stages", name), "parameters-path");
            // Their parameters: named once, by the later of the two.
            if let Some(path) = theirs.parameters_path.as_deref().and_then(dir)
                && j < i
                && nests(&mine, &path)
            {
                fd.error(span_of(name), Some(&key), format!("{} parameters-path `{mine}` {} {}, `{path}`, in the same region: `exec`, `param list` and relative `${{ssm:…}}` names of the one read the other's parameters (its secrets too); give each stage a parameters-path outside the other's", whose(name), if mine == path { "is also" } else if mine.starts_with(&path) { "lies inside" } else { "holds" }, whose(other)));
            }
            // Their records and lock.
            let records = if *other == "*" {
                crate::stage::preview_records_start(project, theirs)
            } else {
                records_path(project, theirs, other)
            };
            // The previews' records are every path below where their pattern's stage id
            // starts: the previews' role lists that root (GetParametersByPath is authorized by
            // the path asked for), so a parameters-path below it is read by every pull request.
            if *other == "*" && mine.starts_with(&records) {
                fd.error(span_of(name), Some(&key), format!("{} parameters-path `{mine}` lies under the preview stages' records root `{records}`, which the previews' role lists (GetParametersByPath is authorized by the path asked for, not by what it returns): every preview's build, a pull request's too, would read its parameters (its secrets too); give the stage a parameters-path outside `{records}`", whose(name)));
            } else if nests(&mine, &records) {
                fd.error(span_of(name), Some(&key), format!("{} parameters-path `{mine}` reaches {} records path `{records}`: `exec` and `param list` of the one would read the other's records and lock as parameters; give the stage a parameters-path outside it", whose(name), whose(other)));
            }
        }
    }
}

/// No two named stages may keep their records (and lock) at one SSM path: each would read the
/// other's records as its own, skip services that were never deployed to it, and share a lock.
/// Where two stages may share an account and a region, nor may one named stage's path lie inside
/// another's (a policy granting the outer path reaches the inner stage's records and lock; a
/// recursive listing of it reads them), nor may the previews' pattern start where a named
/// stage's records or lock lie (the previews' role, granted every preview's records, would
/// reach them, and no denial can keep it off without denying the previews their own).
fn check_records_paths(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    project: &str,
    stages: &BTreeMap<String, StageConfig>,
    previews: Option<&StageConfig>,
) {
    let table_of = |name: &str| {
        get(doc, "stages")
            .and_then(|s| s.get_ref().as_table())
            .and_then(|s| get(s, name))
    };
    let sets_path = |name: &str| {
        table_of(name)
            .and_then(|t| t.get_ref().as_table())
            .is_some_and(|t| get(t, "records-path").is_some())
    };
    // The stage's `records-path` setting, else its table.
    let span_of = |name: &str| {
        let table = table_of(name);
        table
            .and_then(|t| t.get_ref().as_table())
            .and_then(|t| get(t, "records-path"))
            .or(table)
            .map(Spanned::span)
    };
    let key_of = |name: &str| join_key(&join_key("stages", name), "records-path");
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, config) in stages {
        let path = records_path(project, config, name);
        let Some(first) = seen.get(&path) else {
            seen.insert(path, name);
            continue;
        };
        fd.error(span_of(name), Some(&key_of(name)), format!("`{path}` is also the records path of stage `{first}`; two stages sharing records would read each other's records as their own and share one lock; give each stage its own records-path"));
    }
    // Paths end with `/`, so `/ferry/shop/dev/` never holds `/ferry/shop/devops/`; an inner
    // path is named once, by the first path holding it.
    let mut named = std::collections::BTreeSet::new();
    for (outer_path, outer) in &seen {
        for (inner_path, inner) in seen.range::<String, _>((
            std::ops::Bound::Excluded(outer_path),
            std::ops::Bound::Unbounded,
        )) {
            if !inner_path.starts_with(outer_path.as_str()) {
                break;
            }
            if stages[*outer].apart_from(&stages[*inner]) || !named.insert(*inner) {
                continue;
            }
            // The stage that sets the path that nests: the outer one when only it does.
            let at = if sets_path(outer) && !sets_path(inner) {
                outer
            } else {
                inner
            };
            fd.error(span_of(at), Some(&key_of(at)), format!("stage `{inner}`'s records path `{inner_path}` lies inside stage `{outer}`'s, `{outer_path}`, in the same region: a policy granting `{outer}` its path reaches `{inner}`'s records and lock too (`bootstrap` denies them, a role of your own may not), and a recursive listing of `{outer}`'s path reads them; give each stage a records-path outside the other's"));
        }
    }
    let Some(previews) = previews else {
        return;
    };
    let pattern = records_path(project, previews, "{stage}");
    let start = crate::stage::preview_records_start(project, previews);
    let start = start.as_str();
    for (path, name) in &seen {
        let config = &stages[*name];
        // Only where the previews' records lie inside this stage's path: elsewhere (the
        // default, `/ferry/shop/dev/` beside `/ferry/shop/<id>/`) `bootstrap` denies the
        // previews' role this stage's path.
        let reached = start.starts_with(path.as_str())
            && ["lock", "records/", "health/", "nodes/"]
                .iter()
                .any(|own| format!("{path}{own}").starts_with(start));
        if !reached || config.apart_from(previews) {
            continue;
        }
        let at = if sets_path(name) { *name } else { "*" };
        fd.error(span_of(at), Some(&key_of(at)), format!("the preview stages' records paths (`{}`) start inside stage `{name}`'s, `{path}`, in the same region: the previews' role, granted every preview's records (`{start}*`), would reach `{name}`'s records and lock, and no denial can keep it off without denying the previews their own; give `{name}` a records-path outside `{start}`, or the previews one that starts elsewhere", pattern));
    }
}
