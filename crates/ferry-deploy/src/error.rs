//! Why one service failed to deploy: a typed error with its source, kept in the report.

use std::path::PathBuf;

use ferry_stacks::{Action, StackError, StackEvent};

/// Why one service did not deploy. Its dependents are skipped; independent services go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error(
        "service {service} is not in package {package}; package it (Ferry's `package --service {service}`)"
    )]
    NotPackaged { service: String, package: String },
    #[error("cannot read template {}: {source}", .path.display())]
    Template {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the packaged template {} is not what its name says (its SHA-256 is {actual}): it was changed after it was packaged; nothing of {service} was deployed; package again (`package`, or the next deploy, writes it anew)",
        .path.display()
    )]
    TemplateChanged {
        service: String,
        path: PathBuf,
        actual: String,
    },
    #[error(transparent)]
    Stage(#[from] ferry_manifest::StageError),
    #[error(
        "{service} reads outputs of stage `{stage}`, and this run has no AWS access to `{stage}` (another stage is read with its own credentials and region); run it where `{stage}`'s credentials are available"
    )]
    NoStageAccess { service: String, stage: String },
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error(transparent)]
    Credentials(#[from] ferry_credentials::CredentialsError),
    /// Every parameter that could not be resolved, at once.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Parameters(Vec<ferry_outputs::ResolveError>),
    #[error(transparent)]
    Record(#[from] ferry_records::RecordError),
    #[error(
        "[package.site] bucket-output `{output}` is not an output of stack {stack} (outputs: {known}); add it to {template}"
    )]
    SiteBucket {
        output: String,
        stack: String,
        known: String,
        template: String,
    },
    #[error(
        "{service}: deployed, and its acceptance tests passed, but the outcome is not recorded: {why}; a record says that its package passed, so only that package's own tests count: commit and deploy, or run from the commit the package was made from"
    )]
    TestsNotRecorded { service: String, why: String },
    #[error(
        "{service}: output {output} of {template} reads parameter {parameter}, which receives a SecureString: CloudFormation shows outputs in the console and to DescribeStacks, and every reader of the stack would get the secret; nothing was deployed: remove the output, and declare {parameter} NoEcho: true"
    )]
    OutputEchoesSecret {
        service: String,
        output: String,
        parameter: String,
        template: String,
    },
    #[error(
        "{service}: its site's config file would publish a secret: output {output} of `{from}` holds a SecureString value this stage reads; the site's files are served to anyone, so nothing was published: stop echoing the secret in that output (declare its parameter NoEcho and leave it out of Outputs)"
    )]
    SiteSecret {
        service: String,
        from: String,
        output: String,
    },
    #[error(transparent)]
    Site(#[from] ferry_package::UploadError),
    #[error(transparent)]
    Serverless(#[from] ferry_serverless::ServerlessError),
    /// A Serverless Framework service's folder holds a link its framework must not follow.
    #[error("{service}: {source}")]
    Links {
        service: String,
        source: Box<ferry_package::PackageError>,
    },
    #[error(
        "{service}: its framework names the stack `{framework}`, but Ferry read `{ferry}` from its configuration before compiling; set service.stack-name in its service.toml to the framework's name (with {{stage}} for the stage)"
    )]
    StackNameDiffers {
        service: String,
        framework: String,
        ferry: String,
    },
    /// A resolved value (an output, an SSM parameter, text around them) past CloudFormation's
    /// limit; the value itself is never quoted (it may be a secret).
    #[error(
        "{service}: parameter {key} resolves to {bytes} bytes, and CloudFormation takes at most {max} bytes per parameter value: nothing of {service} was deployed; keep a larger value elsewhere (an S3 object, an SSM parameter the template reads with a dynamic reference) and pass its name",
        max = ferry_package::MAX_PARAMETER_VALUE
    )]
    ParameterTooLong {
        service: String,
        key: String,
        bytes: usize,
    },
    #[error(
        "{service}: a review keeps exactly what would deploy in the stage's artifact bucket, and stage `{stage}` has none; set `artifact-bucket` under [stages.{stage}] in ferry.toml"
    )]
    NotStored { service: String, stage: String },
    #[error(
        "{service}: its parameters read outputs of {}, which this review also changes, so the Serverless Framework compiles it again when approved, from the checkout, which must then be shown to hold the reviewed inputs, and cannot be: {why}",
        .dependencies.join(", ")
    )]
    UnverifiableCompile {
        service: String,
        dependencies: Vec<String>,
        why: String,
    },
    #[error(
        "{service}: its parameters {} resolve to other values than the review showed (an output, an SSM parameter or its version, or service.toml changed since); nothing of it was deployed; review again",
        .names.join(", ")
    )]
    ParametersChanged { service: String, names: Vec<String> },
    #[error(
        "{service}: its stored compile (package {package}, commit {}) holds the values its parameters had then, which the Serverless Framework wrote into its template, and they resolve to others now (a dependency's stack created again or a resource of it replaced, an SSM value changed): deployed as it is, its functions would name what is gone; nothing of it was deployed. Deploy it from a checkout (`deploy {stage} --service {service}`, with --review in a stage that needs approval; from a checkout of that commit to run its code), which compiles it with today's values",
        commit.get(..12).unwrap_or(commit)
    )]
    StaleCompile {
        service: String,
        stage: String,
        package: String,
        commit: String,
    },
    #[error(
        "{service}: template parameter `{key}` is of an SSM parameter type and names SSM parameter `{name}`, which does not exist in {region}; CloudFormation would refuse the stack: create the parameter, or pass the name of another under [parameters] in its service.toml"
    )]
    SsmTypedParameterMissing {
        service: String,
        key: String,
        name: String,
        region: String,
    },
    #[error("{service}: its SAM template could not be expanded for the local emulator: {message}")]
    Expand { service: String, message: String },
    #[error(
        "{service}: compiled for this stage, its archive for {resource} is {got}, but {expected} is what passed in the stage it is promoted from; the code differs from what was tested: check out the commit that passed (files git does not track in the service's folder are packaged too: remove them, and `target/ferry/package/serverless/{service}`, which may hold a compile made with them), or deploy and test it there first"
    )]
    ArchiveDiffers {
        service: String,
        resource: String,
        expected: String,
        got: String,
    },
    #[error("{action}, but its acceptance tests {status}")]
    TestsFailed { action: String, status: String },
    #[error(
        "{action}, but its acceptance tests were stopped by the cancel (Ctrl-C or SIGTERM) before they ended, so no outcome is recorded: the next `deploy --test` or `test-acceptance` runs them"
    )]
    TestsStopped { action: String },
    #[error(
        "{service}: its acceptance tests {outcome}, but writing that into its record failed: {source}; the next `deploy --test` or `test-acceptance` runs them again"
    )]
    OutcomeNotWritten {
        service: String,
        outcome: String,
        source: Box<ferry_records::RecordError>,
    },
}

impl ServiceError {
    /// The stack events that failed, when CloudFormation reported some.
    pub fn failures(&self) -> &[StackEvent] {
        match self {
            ServiceError::Stack(
                StackError::Failed { failures, .. } | StackError::DeleteFailed { failures, .. },
            ) => failures,
            _ => &[],
        }
    }

    /// Its tests failed after it deployed (`action`), or, `None`, when it was up to date and
    /// its tests were owed.
    pub(crate) fn tests_failed(
        action: Option<Action>,
        status: &impl std::fmt::Display,
    ) -> ServiceError {
        ServiceError::TestsFailed {
            action: Self::what_ran(action),
            status: status.to_string(),
        }
    }

    /// A failure of the service's acceptance tests, or of recording their outcome, after its
    /// stack was deployed or found up to date: the stack is where the run meant it to be.
    pub fn after_the_stack(&self) -> bool {
        matches!(
            self,
            ServiceError::TestsFailed { .. }
                | ServiceError::TestsNotRecorded { .. }
                | ServiceError::TestsStopped { .. }
                | ServiceError::OutcomeNotWritten { .. }
        )
    }

    /// What happened to a service before its tests: deployed (how), or up to date.
    pub(crate) fn what_ran(action: Option<Action>) -> String {
        match action {
            Some(action) => format!("deployed ({})", crate::ServiceResult::Deployed { action }),
            None => "up to date since its last deploy".to_string(),
        }
    }
}
