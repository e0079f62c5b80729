//! The environment of a child process (build commands, acceptance tests): the stage's current
//! credentials and region, in the child's environment only (never argv, never a file), resolved
//! afresh at each start so a refreshed role session reaches later children.

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;

use crate::{CredentialsError, Masker};

/// Variables for a child of `stage`. The secret parts are registered with `masker`.
pub async fn child_env(
    config: &SdkConfig,
    stage: &str,
    masker: &Masker,
) -> Result<Vec<(String, String)>, CredentialsError> {
    let mut vars = Vec::new();
    if let Some(region) = config.region() {
        vars.push(("AWS_REGION".to_string(), region.to_string()));
        vars.push(("AWS_DEFAULT_REGION".to_string(), region.to_string()));
    }
    if let Some(endpoint) = config.endpoint_url() {
        vars.push(("AWS_ENDPOINT_URL".to_string(), endpoint.to_string()));
    }
    if let Some(provider) = config.credentials_provider() {
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| CredentialsError::from_provider(stage, "loading credentials", &e))?;
        masker.register(creds.secret_access_key());
        vars.push((
            "AWS_ACCESS_KEY_ID".to_string(),
            creds.access_key_id().to_string(),
        ));
        vars.push((
            "AWS_SECRET_ACCESS_KEY".to_string(),
            creds.secret_access_key().to_string(),
        ));
        if let Some(token) = creds.session_token() {
            masker.register(token);
            vars.push(("AWS_SESSION_TOKEN".to_string(), token.to_string()));
        }
    }
    Ok(vars)
}

/// The environment of `ferry exec`: the stage's credentials and region ([`child_env`]), the
/// stage variables of `ferry-env` (`FERRY_STAGE`, `FERRY_STAGE_ID`, `FERRY_REGION`,
/// `FERRY_PROJECT`), and `FERRY_PARAM_<NAME>` for each SSM parameter under the stage's
/// `parameters-path` (SecureString values registered with `masker`).
pub async fn exec_env(
    config: &SdkConfig,
    project: &str,
    stage: &ferry_manifest::Stage,
    masker: &Masker,
) -> Result<Vec<(String, String)>, CredentialsError> {
    let mut env = child_env(config, &stage.name, masker).await?;
    env.extend(stage.vars(project).map(|(k, v)| (k.to_string(), v)));
    if let Some(path) = &stage.config.parameters_path {
        let client = crate::ssm::client(config);
        // Names that differ only in what a variable's name cannot hold (`db/password`,
        // `db_password`, `DB-PASSWORD`) would give one variable: the last one read won, in
        // silence.
        let mut taken: std::collections::BTreeMap<String, String> = Default::default();
        let params = crate::ssm::load_path(&client, &stage.name, path, masker).await?;
        // A secret's earlier values, which the stacks may still hold, are masked too; a
        // history that cannot be read stops it, as the values themselves would.
        crate::ssm::register_histories(&client, &stage.name, &params, masker).await?;
        for p in params {
            let var = ferry_env::param_var(path, &p.name);
            if let Some(first) = taken.insert(var.clone(), p.name.clone()) {
                return Err(CredentialsError::ParameterVariableTaken {
                    var,
                    first,
                    second: p.name,
                });
            }
            env.push((var, p.value));
        }
    }
    Ok(env)
}

/// Variables a child must not inherit from Ferry's own environment, because [`child_env`]
/// replaces them (a profile would override the explicit keys).
pub const REPLACED: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    // The old name of the session token, which botocore (the AWS CLI, boto3) reads first: the
    // shell's token would go with the stage's keys.
    "AWS_SECURITY_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
];

/// What a child given `child` (its stage's environment, [`child_env`]) must not inherit from
/// Ferry's own: [`REPLACED`], GitHub's OIDC token request ([`ferry_env::CREDENTIAL_SOURCES`]:
/// a role of another stage could be assumed with it), and, when `child` names the one endpoint every call goes to
/// (`AWS_ENDPOINT_URL`: the emulator, or one of the user's), every per-service
/// `AWS_ENDPOINT_URL_<SERVICE>` of the shell, which the SDKs and CLIs prefer: a child of
/// `--local` sent its requests (secrets in them) to the shell's endpoint instead.
pub fn not_inherited(child: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = REPLACED
        .iter()
        .chain(&ferry_env::CREDENTIAL_SOURCES)
        .map(|s| s.to_string())
        .collect();
    if child.iter().any(|(k, _)| k == "AWS_ENDPOINT_URL") {
        out.extend(
            std::env::vars_os()
                .filter_map(|(k, _)| k.into_string().ok())
                .filter(|k| k.starts_with("AWS_ENDPOINT_URL_")),
        );
    }
    out
}

/// Runs `command` with its standard output and error captured line by line, masked, and
/// written to `out` / `err` as they arrive (a line that cannot be written is dropped: the
/// writers keep their failures). `started` gets the child's pid once it runs, e.g. to pass a
/// signal on to it. Returns the child's exit status and the last `tail_lines` lines it printed
/// (masked), for error messages.
pub fn run_masked(
    command: &mut std::process::Command,
    masker: &Masker,
    out: impl std::io::Write + Send,
    err: impl std::io::Write + Send,
    tail_lines: usize,
    started: impl FnOnce(u32),
) -> std::io::Result<(std::process::ExitStatus, Vec<String>)> {
    use std::io::{BufRead, BufReader};
    use std::sync::Mutex;

    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    started(child.id());
    let tail = Mutex::new(std::collections::VecDeque::with_capacity(tail_lines + 1));
    let pump = |reader: Box<dyn std::io::Read + Send>,
                mut sink: Box<dyn std::io::Write + Send + '_>| {
        let mut lines = BufReader::new(reader);
        let mut buf = Vec::new();
        while lines.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
            // Bytes as they came but the secrets (binary output stays whole).
            let line = masker.mask_bytes(&buf);
            let _ = sink.write_all(&line);
            let _ = sink.flush();
            let mut t = tail.lock().expect("tail lock");
            t.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
            if t.len() > tail_lines {
                t.pop_front();
            }
            buf.clear();
        }
    };
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    std::thread::scope(|s| {
        s.spawn(|| pump(Box::new(stdout), Box::new(out)));
        s.spawn(|| pump(Box::new(stderr), Box::new(err)));
    });
    let status = child.wait()?;
    Ok((
        status,
        tail.into_inner().expect("tail lock").into_iter().collect(),
    ))
}
