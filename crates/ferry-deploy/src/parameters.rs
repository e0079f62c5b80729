//! A service's parameters: dependency outputs, other stages' outputs and SSM values resolved;
//! the hashed view its record keeps (never a secret); secrets registered with the masker.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use ferry_credentials::{Masker, ssm};
use ferry_manifest::{Reference, Service, Stage, Workspace};
use ferry_outputs::{Lookups, OutputCache, Outputs};
use ferry_package::ServicePackage;
use ferry_stacks::{Progress, TemplateSource};

use crate::{DeployContext, Event, ServiceError, ownership};

/// The other stages whose outputs the services of `ws` read (`${output:STAGE:service.Key}`),
/// besides `stage` itself: each is read with its own credentials and region.
pub fn stages_read(ws: &Workspace, stage: &Stage) -> BTreeSet<String> {
    ws.services
        .iter()
        .flat_map(|s| s.parameters.values())
        .flat_map(|t| t.references())
        .filter_map(|r| match r {
            Reference::Output { stage: Some(s), .. } => Workspace::output_stage(stage, s),
            _ => None,
        })
        .filter(|other| *other != stage.name)
        .collect()
}

/// Resolves a service's parameters: dependency outputs (this run's, or read once from stacks),
/// outputs of other stages, SSM values (registered with the masker when secure).
pub(crate) async fn resolve_parameters(
    ctx: &DeployContext<'_>,
    service: &Service,
    cache: &OutputCache,
    others: &BTreeMap<String, OutputCache>,
    ssm_client: &aws_sdk_ssm::Client,
) -> Result<Resolved, ServiceError> {
    let mut outputs: BTreeMap<(Option<String>, String), Option<Outputs>> = BTreeMap::new();
    for r in service.parameters.values().flat_map(|t| t.references()) {
        if let Reference::Output {
            stage,
            service: from,
            ..
        } = r
        {
            // A variable the stage does not define: resolution says so.
            let stage = match stage {
                None => None,
                Some(s) => match Workspace::output_stage(ctx.stage, s) {
                    Some(name) => Some(name),
                    None => continue,
                },
            };
            let key = (stage.clone(), from.clone());
            if outputs.contains_key(&key) {
                continue;
            }
            // Another stage is read with its own credentials and region, never this stage's.
            let (of_stage, cache) = match &stage {
                Some(other) if *other != ctx.stage.name => {
                    let cache = others
                        .get(other)
                        .ok_or_else(|| ServiceError::NoStageAccess {
                            service: service.name.clone(),
                            stage: other.clone(),
                        })?;
                    (ctx.ws.stage(other)?, cache)
                }
                _ => (ctx.stage.clone(), cache),
            };
            let stack = ctx.ws.stack_name(from, &of_stage);
            let owner = ownership(ctx.ws, &of_stage, from);
            outputs.insert(key, cache.get(&stack, Some(&owner)).await?);
        }
    }
    let lookups_base = Lookups {
        project: &ctx.ws.project.name,
        stage: ctx.stage,
        outputs: &|_, _| None,
        ssm: &|_| None,
    };
    let mut ssm_values: BTreeMap<String, ssm::Parameter> = BTreeMap::new();
    for name in ferry_outputs::ssm_names(service, &lookups_base) {
        match ssm::get(ssm_client, &ctx.stage.name, &name, ctx.masker).await {
            Ok(p) => {
                ssm_values.insert(name, p);
            }
            Err(ferry_credentials::CredentialsError::ParameterNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let out_lookup = |stage: Option<&str>, from: &str| {
        outputs
            .get(&(stage.map(String::from), from.to_string()))
            .cloned()
            .flatten()
    };
    let ssm_lookup = |name: &str| ssm_values.get(name).map(|p| p.value.clone());
    let resolve_with = |ssm: &dyn Fn(&str) -> Option<String>| {
        let lookups = Lookups {
            project: &ctx.ws.project.name,
            stage: ctx.stage,
            outputs: &out_lookup,
            ssm,
        };
        ferry_outputs::resolve(service, &lookups).map_err(ServiceError::Parameters)
    };
    Ok(Resolved {
        parameters: resolve_with(&ssm_lookup)?,
        hashed: resolve_with(&|name: &str| ssm_values.get(name).map(secure_stand_in))?,
    })
}

/// Puts each parameter that `template` declares with an SSM parameter type into the hashed view
/// as the SSM parameter's name and current version (the name is the value passed, else the
/// template's default): CloudFormation reads that parameter at every stack operation, so its new
/// version is a change of the stack though the name passed is the same. Its value is never read.
pub(crate) async fn ssm_typed_versions(
    ctx: &DeployContext<'_>,
    service: &Service,
    template: &serde_json::Value,
    parameters: &BTreeMap<String, String>,
    ssm_client: &aws_sdk_ssm::Client,
    hashed: &mut BTreeMap<String, String>,
) -> Result<(), ServiceError> {
    for (key, default) in ferry_package::ssm_typed_parameters(template) {
        let Some(name) = parameters.get(&key).cloned().or(default) else {
            continue;
        };
        match ssm::version(ssm_client, &ctx.stage.name, &name).await? {
            Some(version) => {
                hashed.insert(key, format!("ssm-type:{name}@{version}"));
            }
            None => {
                return Err(ServiceError::SsmTypedParameterMissing {
                    service: service.name.clone(),
                    key,
                    name,
                    region: ctx.stage.config.region.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The SSM parameters a template reads through dynamic references, `{{resolve:ssm:NAME}}` and
/// `{{resolve:ssm-secure:NAME}}`, that name no version (`NAME:3` is fixed), nor are built from
/// what only CloudFormation knows (`${Env}` of an `Fn::Sub`): CloudFormation reads them at each
/// stack operation, so a new version is a change of the stack though no file changed.
pub(crate) fn dynamic_ssm_references(template: &str) -> BTreeSet<String> {
    if !template.contains("{{resolve:ssm") {
        return BTreeSet::new();
    }
    // Only where stack operations resolve them: not in a parameter's description or the
    // metadata, which no operation reads (one there made every new version of the parameter
    // a stack operation with no changes).
    let resolved = match ferry_package::parse_template(template) {
        Ok(t) => ferry_manifest::read_by_stacks(&t).to_string(),
        Err(_) => template.to_string(),
    };
    ferry_manifest::dynamic_ssm_references(&resolved)
        .into_iter()
        // The whole template's text is read: a name holding a quote, a backslash, a space or a
        // line break, or ending in `:`, is no name SSM has.
        .filter(|r| {
            !r.pinned
                && !r.name.is_empty()
                && !r.name.contains("${")
                && !r.name.contains(['"', '\\', '\n', ' '])
                && !r.name.ends_with(':')
        })
        .map(|r| r.name.to_string())
        .collect()
}

/// The SecureStrings `template` reads through `{{resolve:ssm-secure:NAME}}` (`NAME:VERSION`
/// when pinned), each a name SSM may have (see [`dynamic_ssm_references`]).
fn secure_dynamic_references(template: &str) -> BTreeSet<String> {
    ferry_manifest::dynamic_ssm_references(template)
        .into_iter()
        .filter(|r| r.secure)
        // The whole template's text is read: a name built by `Fn::Sub`, or holding what no SSM
        // name holds, is passed over. SSM holds names without a `/` too (`DbPassword`):
        // checked as the hierarchical name they would be.
        .filter(|r| {
            let hierarchical = if r.written.starts_with('/') {
                r.written.to_string()
            } else {
                format!("/{}", r.written)
            };
            !r.name.contains("${") && ferry_manifest::check_ssm_read_name(&hierarchical).is_ok()
        })
        .map(|r| r.written.to_string())
        .collect()
}

/// Puts the current version of each parameter a template reads through a dynamic reference
/// ([`dynamic_ssm_references`]) into the hashed view, so that a new version deploys the stack
/// again, as for a parameter of an SSM parameter type. One that does not exist is left to
/// CloudFormation to report. Its value is never read.
pub(crate) async fn dynamic_reference_versions(
    ctx: &DeployContext<'_>,
    template: &str,
    ssm_client: &aws_sdk_ssm::Client,
    hashed: &mut BTreeMap<String, String>,
) -> Result<(), ServiceError> {
    for name in dynamic_ssm_references(template) {
        if let Some(version) = ssm::version(ssm_client, &ctx.stage.name, &name).await? {
            hashed.insert(
                format!("{{{{resolve:ssm:{name}}}}}"),
                format!("ssm-ref:{name}@{version}"),
            );
        }
    }
    Ok(())
}

/// A service's parameters as CloudFormation gets them, and the view of them that is hashed into
/// its record.
pub(crate) struct Resolved {
    pub parameters: BTreeMap<String, String>,
    pub hashed: BTreeMap<String, String>,
}

/// The SecureString names a hashed parameter value stands in for (see [`secure_stand_in`]).
pub(crate) fn secure_names(hashed: &str) -> Vec<&str> {
    hashed
        .split("ssm-secure:")
        .skip(1)
        .filter_map(|rest| rest.rsplit_once('@').map(|(name, _)| name))
        .collect()
}

/// Checks what the template does with each parameter that receives a SecureString: an output
/// that reads one is refused (CloudFormation shows outputs in the console and to
/// DescribeStacks, and every later reader, a dependent, a site's config, `outputs`, would get
/// the secret, an old version of it once it rotates); one the template does not declare
/// `NoEcho: true` is warned about (CloudFormation would show its value too).
pub(crate) fn check_secret_parameters(
    ctx: &DeployContext<'_>,
    service: &Service,
    packaged: Option<&ServicePackage>,
    template: &TemplateSource,
    hashed: &BTreeMap<String, String>,
    on: &(dyn Fn(Event) + Send + Sync),
) -> Result<(), ServiceError> {
    let secure: Vec<(&String, Vec<&str>)> = hashed
        .iter()
        .map(|(k, v)| (k, secure_names(v)))
        .filter(|(_, names)| !names.is_empty())
        .collect();
    if secure.is_empty() {
        return Ok(());
    }
    let text = crate::run::template_text(ctx, service, packaged, template).ok();
    let Some(parsed) = text.and_then(|t| ferry_package::parse_template(&t).ok()) else {
        return Ok(());
    };
    let outputs = parsed.get("Outputs").and_then(serde_json::Value::as_object);
    for (key, _) in &secure {
        if let Some((output, _)) = outputs
            .into_iter()
            .flatten()
            .find(|(_, definition)| ferry_manifest::reads_parameter(definition, key))
        {
            return Err(ServiceError::OutputEchoesSecret {
                service: service.name.clone(),
                output: output.clone(),
                parameter: key.to_string(),
                template: service.template_path(),
            });
        }
    }
    for (key, names) in secure {
        if !ferry_package::is_no_echo(&parsed, key) {
            on(Event::Stack {
                service: service.name.clone(),
                progress: Progress::Note(format!(
                    "warning: parameter {key} receives SecureString {}, but {} does not declare it `NoEcho: true`; CloudFormation shows its value in the console and to DescribeStacks: add NoEcho: true to it",
                    names.join(", "),
                    service.template_path()
                )),
            });
        }
    }
    Ok(())
}

/// What [`register_secrets`] could not do, and what it found: the SecureStrings a template reads
/// itself that this role may not read (name, why), which are not masked.
#[derive(Debug, Default)]
pub struct Registered {
    pub unreadable: Vec<(String, String)>,
    /// The SSM parameters a Serverless Framework configuration reads through a name Ferry cannot
    /// resolve before the framework runs (service, the name as written): a SecureString among
    /// them is not masked.
    pub unresolved: Vec<(String, String)>,
    /// The SecureStrings a Serverless Framework configuration reads with `${ssm:…}` (service,
    /// name): the framework writes their values into the template it compiles, which Ferry keeps
    /// and uploads as it keeps every template.
    pub inlined: Vec<(String, String)>,
    /// The environment variables named as secrets (`CLIENT_SECRET`) that a Serverless
    /// Framework configuration reads with `${env:…}` (service, variable): their values, where
    /// this process has them, are registered too, and the framework writes them into the
    /// template it compiles as it writes an SSM SecureString's.
    pub env_inlined: Vec<(String, String)>,
}

/// Registers with `masker` the value `env` gives each variable named as a secret that a
/// Serverless Framework configuration reads with `${env:…}`
/// ([`ferry_serverless::secret_env_reads`]), and returns them (service, variable): the
/// framework writes their values into the template it compiles.
pub fn register_env_secrets(
    ws: &Workspace,
    masker: &Masker,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let read = ferry_serverless::workspace_secret_env_reads(ws);
    for (_, var) in &read {
        // The framework writes it into the template, whatever it looks like: masked unless
        // too short or plain to be a secret (every `true` would be).
        if let Some(value) = env(var).filter(|v| {
            let v = v.trim();
            v.chars().count() >= 8 && !v.chars().all(|c| c.is_ascii_digit() || c == '.')
        }) {
            masker.register(&value);
        }
    }
    read
}

/// Registers with `masker` the values of the variables of `vars` (this process's environment)
/// whose names say they hold a secret ([`ferry_env::names_a_secret`]: `DB_PASSWORD`, which CI
/// exports from a parameter store to every command): a script or build may print its
/// environment when it fails.
pub fn register_named_env_secrets(
    masker: &Masker,
    vars: impl IntoIterator<Item = (String, String)>,
) {
    for (name, value) in vars {
        if ferry_env::names_a_secret(&name) && ferry_env::may_be_a_secret_value(&value) {
            masker.register(&value);
        }
    }
}

/// Registers with `masker` every SecureString value the stage's services reference (one
/// GetParameter per name, and the values it had before: a rotated secret still lives in the
/// stacks until they deploy again), so that wherever one reappears (a stack output that echoes
/// it, a test's output) it is masked: those their `[parameters]` read, which must be readable,
/// and those their templates read themselves (`{{resolve:ssm-secure:NAME}}`, given to
/// CloudFormation as written, perhaps only in another stage's branch of an `Fn::If`) or their
/// Serverless Framework configurations read (`${ssm:/shop/${sls:stage}/key}`, resolved by the
/// framework as it compiles), which are passed over, and returned, when this role may not read
/// them.
pub async fn register_secrets(
    ws: &Workspace,
    stage: &Stage,
    config: &SdkConfig,
    masker: &Masker,
) -> Result<Registered, ferry_credentials::CredentialsError> {
    let lookups = Lookups {
        project: &ws.project.name,
        stage,
        outputs: &|_, _| None,
        ssm: &|_| None,
    };
    let names: BTreeSet<String> = ws
        .services
        .iter()
        .flat_map(|s| ferry_outputs::ssm_names(s, &lookups))
        .collect();
    let in_templates: BTreeSet<String> = ws
        .services
        .iter()
        .filter(|s| s.kind != ferry_manifest::ServiceKind::Serverless)
        .filter_map(|s| std::fs::read_to_string(ws.root.join(s.template_path())).ok())
        .flat_map(|text| secure_dynamic_references(&text))
        .filter(|n| !names.contains(n))
        .collect();
    let mut done = Registered {
        // The framework's process inherits Ferry's environment: what it reads is this.
        env_inlined: register_env_secrets(ws, masker, &|var| {
            std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
        }),
        ..Registered::default()
    };
    let here = config.region().map(|r| r.as_ref().to_string());
    // (the region read from when not the stage's, name) → the Serverless services whose
    // configurations read it decrypted.
    let mut in_configs: BTreeMap<(Option<String>, String), Vec<String>> = BTreeMap::new();
    for s in ws
        .services
        .iter()
        .filter(|s| s.kind == ferry_manifest::ServiceKind::Serverless)
    {
        for read in ferry_serverless::ssm_reads(&ws.root, s, &stage.id, &stage.config.region) {
            match read {
                // A name SSM would refuse stops the framework's compile, not this.
                Ok(read) if ssm_name_as_read(&read.name) => {
                    let region = read.region.filter(|r| Some(r) != here.as_ref());
                    let readers = in_configs.entry((region, read.name)).or_default();
                    // Read decrypted: the compiled template holds a SecureString's value.
                    if read.decrypt {
                        readers.push(s.name.clone());
                    }
                }
                Ok(_) => {}
                Err(raw) => done.unresolved.push((s.name.clone(), raw)),
            }
        }
    }
    if names.is_empty() && in_templates.is_empty() && in_configs.is_empty() {
        return Ok(done);
    }
    let client = aws_sdk_ssm::Client::new(config);
    let not_there = |e: &ferry_credentials::CredentialsError| {
        matches!(
            e,
            ferry_credentials::CredentialsError::ParameterNotFound { .. }
                | ferry_credentials::CredentialsError::SelectorNotFound { .. }
        )
    };
    for name in &names {
        match ssm::get(&client, &stage.name, name, masker).await {
            Ok(p) if p.secure => {
                // Best effort: the current value is masked whatever happens.
                let _ = ssm::register_history(&client, &stage.name, name, masker).await;
            }
            Ok(_) => {}
            Err(e) if not_there(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let every: BTreeSet<(Option<String>, String)> = in_templates
        .iter()
        .map(|name| (None, name.clone()))
        .chain(in_configs.keys().cloned())
        .collect();
    // Clients of the other regions configurations read from (`${ssm(eu-west-1):…}`).
    let mut elsewhere: BTreeMap<String, aws_sdk_ssm::Client> = BTreeMap::new();
    for key in every {
        let (region, name) = &key;
        let client = match region {
            None => &client,
            Some(r) => elsewhere.entry(r.clone()).or_insert_with(|| {
                let conf = aws_sdk_ssm::config::Builder::from(config)
                    .region(aws_config::Region::new(r.clone()))
                    .build();
                aws_sdk_ssm::Client::from_conf(conf)
            }),
        };
        // As the configuration writes it.
        let shown = match region {
            None => name.clone(),
            Some(r) => format!("ssm({r}):{name}"),
        };
        match ssm::get_as_written(client, &stage.name, name, masker).await {
            Ok(p) if p.secure => {
                let _ = ssm::register_history(client, &stage.name, name, masker).await;
                let readers = in_configs.get(&key).cloned().unwrap_or_default();
                done.inlined
                    .extend(readers.into_iter().map(|s| (s, shown.clone())));
            }
            Ok(_) => {}
            Err(e) if not_there(&e) => {}
            // Not this role's to read (perhaps another stage's, in a branch of an `Fn::If`),
            // or its key's, or (a name a Serverless configuration builds) one SSM refuses, as
            // an ARN of another region: said, and passed over. Any other failure (throttled,
            // unreachable) stops the command, as an unmasked secret could follow.
            Err(ferry_credentials::CredentialsError::Aws(a))
                if a.kind == ferry_aws::Kind::Denied
                    || a.code.as_deref().is_some_and(|c| c.starts_with("KMS"))
                    || (a.kind == ferry_aws::Kind::Service
                        && (region.is_some() || !in_templates.contains(name))) =>
            {
                done.unreadable.push((shown, a.to_string()));
            }
            // Another region's that is no region at all (`eu-west-9`: no endpoint answers):
            // said, as the framework's compile fails on it anyway. Any other failure there
            // (throttled, expired) stops the command, as for the stage's own region.
            Err(ferry_credentials::CredentialsError::Aws(a))
                if region.is_some()
                    && matches!(
                        a.kind,
                        ferry_aws::Kind::Unreachable | ferry_aws::Kind::BadEndpoint
                    ) =>
            {
                done.unreadable.push((shown, a.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether SSM takes `name` as a parameter's name to read: hierarchical (`/shop/dev/key`, a
/// selector allowed), an ARN, or a plain name (`DbPassword`).
fn ssm_name_as_read(name: &str) -> bool {
    if name.starts_with('/') {
        return ferry_manifest::check_ssm_read_name(name).is_ok();
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    !name.is_empty() && name.len() <= 2048 && (name.starts_with("arn:") || name.chars().all(plain))
}

/// What stands in for an SSM value in the hashed view: a SecureString by its name and revision
/// (its version; a Secrets Manager secret's `VersionId`), never its value (records are readable
/// by whoever may read the stage's records, and an unsalted hash of a short secret can be
/// guessed offline). A new version of the secret still changes the hash, so rotating it
/// redeploys.
fn secure_stand_in(p: &ssm::Parameter) -> String {
    if p.secure {
        format!("ssm-secure:{}@{}", p.name, p.revision)
    } else {
        p.value.clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dynamic_references_that_name_no_version_are_read_for_their_version() {
        let template = r#"{"Resources": {"F": {"Properties": {
            "A": "{{resolve:ssm:/shop/dev/engine}}",
            "B": "{{resolve:ssm-secure:db-password}}",
            "C": "{{resolve:ssm:/shop/pinned:3}}",
            "D": {"Fn::Sub": "{{resolve:ssm:/shop/${Env}/x}}"},
            "E": "{{resolve:secretsmanager:token}}",
            "F": "{{resolve:ssm:arn:aws:ssm:us-east-1:123456789012:parameter/p}}"
        }}}}"#;
        assert_eq!(
            super::dynamic_ssm_references(template)
                .into_iter()
                .collect::<Vec<_>>(),
            [
                "/shop/dev/engine",
                "arn:aws:ssm:us-east-1:123456789012:parameter/p",
                "db-password"
            ]
        );
    }

    #[test]
    fn secure_dynamic_references_are_the_secrets_a_template_reads_itself() {
        let template = r#"{"Resources": {"F": {"Properties": {
            "A": "{{resolve:ssm:/shop/dev/plain}}",
            "B": "{{resolve:ssm-secure:/shop/dev/db}}",
            "C": "{{resolve:ssm-secure:/shop/dev/pinned:3}}",
            "D": {"Fn::Sub": "{{resolve:ssm-secure:/shop/${Env}/x}}"},
            "E": "{{resolve:ssm-secure:bad name}}",
            "H": "{{resolve:ssm-secure:IAMUserPassword:10}}",
            "G": "{{resolve:ssm-secure:/shop/dev/db}} again, {{resolve:ssm-secure:unclosed"
        }}}}"#;
        assert_eq!(
            super::secure_dynamic_references(template)
                .into_iter()
                .collect::<Vec<_>>(),
            ["/shop/dev/db", "/shop/dev/pinned:3", "IAMUserPassword:10"]
        );
    }
}
