//! Error paths the emulator cannot produce, with scripted responses: AccessDenied on AssumeRole
//! (at the HTTP layer, because the assume-role provider builds its own STS client), expired
//! tokens and throttling (aws-smithy-mocks).

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_ssm::operation::get_parameters_by_path::{
    GetParametersByPathError, GetParametersByPathOutput,
};
use aws_sdk_ssm::types::Parameter;
use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use ferry_credentials::{CredentialsError, Masker, ssm, stage_config};
use ferry_manifest::{DeploymentMethod, Stage, StageConfig};

const DENIED: &str = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/dev is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/ferry-deployer</Message></Error><RequestId>r1</RequestId></ErrorResponse>"#;
const IDENTITY: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/dev</Arn><UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#;

fn prod(external_id: Option<&str>) -> Stage {
    Stage {
        name: "prod".into(),
        id: "prod".into(),
        preview: false,
        config: StageConfig {
            region: "us-east-1".into(),
            account: Some("222222222222".into()),
            role_arn: Some("arn:aws:iam::222222222222:role/ferry-deployer".into()),
            external_id: external_id.map(String::from),
            parameters_path: None,
            deployment_method: DeploymentMethod::Changeset,
            protected: true,
            artifact_bucket: None,
            records_path: None,
            promote_from: None,
            on_test_failure: Default::default(),
            approval: false,
            variables: Default::default(),
        },
    }
}

/// The caller's config: static credentials, every call answered by `http`, no retries (an
/// answer is scripted once).
async fn caller(
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "base-secret",
            None,
            None,
            "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .http_client(http)
        .load()
        .await
}

// STS answering AssumeRole with a page or a server error is no lack of credentials: the caller's
// own load. Before, it was reported as "no AWS credentials were found".
#[tokio::test]
async fn an_assume_role_that_sts_fails_is_not_reported_as_missing_credentials() {
    let http = aws_smithy_http_client::test_util::infallible_client_fn(|req| {
        let body = String::from_utf8_lossy(req.body().bytes().unwrap_or_default()).to_string();
        if body.contains("Action=AssumeRole") {
            http::Response::builder()
                .status(502)
                .header("content-type", "text/html")
                .body("<html><body>502 Bad Gateway</body></html>")
                .unwrap()
        } else {
            http::Response::builder()
                .status(200)
                .body(IDENTITY)
                .unwrap()
        }
    });
    let base = caller(http).await;
    let err = stage_config(&prod(None), &base, None, &Masker::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, CredentialsError::AssumeRoleFailed { .. })
            && msg.starts_with("assuming role arn:aws:iam::222222222222:role/ferry-deployer for stage `prod` failed: STS did not answer with the role's credentials"),
        "{msg}"
    );
}

#[tokio::test]
async fn access_denied_on_assume_role_names_the_role_and_the_caller() {
    let http = aws_smithy_http_client::test_util::infallible_client_fn(|req| {
        let body = String::from_utf8_lossy(req.body().bytes().unwrap_or_default()).to_string();
        if body.contains("Action=AssumeRole") {
            http::Response::builder().status(403).body(DENIED).unwrap()
        } else {
            http::Response::builder()
                .status(200)
                .body(IDENTITY)
                .unwrap()
        }
    });
    let base = caller(http).await;
    let err = stage_config(&prod(None), &base, None, &Masker::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialsError::AssumeRoleDenied { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("arn:aws:iam::222222222222:role/ferry-deployer"),
        "{msg}"
    );
    assert!(
        msg.contains("arn:aws:iam::123456789012:user/dev"),
        "names the caller: {msg}"
    );
    assert!(
        msg.contains("trust policy") && msg.contains("external-id"),
        "{msg}"
    );
    assert!(!msg.contains("base-secret"));
}

#[tokio::test]
async fn an_expired_token_says_to_refresh() {
    let expired = mock!(aws_sdk_sts::Client::get_caller_identity).then_error(|| {
        GetCallerIdentityError::generic(
            aws_sdk_sts::error::ErrorMetadata::builder()
                .code("ExpiredToken")
                .message("The security token included in the request is expired")
                .build(),
        )
    });
    let sts = mock_client!(aws_sdk_sts, [&expired]);
    let err = sts.get_caller_identity().send().await.unwrap_err();
    let mapped = CredentialsError::from_sdk("dev", "GetCallerIdentity", &err);
    assert!(
        matches!(mapped, CredentialsError::Expired { .. }),
        "{mapped:?}"
    );
    assert!(mapped.to_string().contains("aws sso login"));
}

fn throttled() -> GetParametersByPathError {
    GetParametersByPathError::generic(
        aws_sdk_ssm::error::ErrorMetadata::builder()
            .code("ThrottlingException")
            .message("Rate exceeded")
            .build(),
    )
}

#[tokio::test]
async fn throttling_is_retried_and_reported_when_it_persists() {
    let page = || {
        GetParametersByPathOutput::builder()
            .parameters(
                Parameter::builder()
                    .name("/a/x")
                    .value("1")
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .build(),
            )
            .build()
    };
    let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(3);
    let rule = mock!(aws_sdk_ssm::Client::get_parameters_by_path)
        .sequence()
        .error(throttled)
        .times(2)
        .output(page)
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule], |b| b
        .retry_config(retry.clone()));
    let params = ssm::load_path(&client, "dev", "/a", &Masker::new())
        .await
        .unwrap();
    assert_eq!(params.len(), 1, "two throttled answers, then success");
    assert_eq!(rule.num_calls(), 3);

    let always = mock!(aws_sdk_ssm::Client::get_parameters_by_path)
        .sequence()
        .error(throttled)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&always], |b| b
        .retry_config(retry.clone()));
    let err = ssm::load_path(&client, "dev", "/a", &Masker::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CredentialsError::Throttled {
                operation: "GetParametersByPath"
            }
        ),
        "{err:?}"
    );
}

/// A Secrets Manager secret read through Parameter Store keeps version 1 there whatever its
/// rotations: its revision is the secret's VersionId, from the SourceResult, and nothing else of
/// that answer (the secret is in it) is kept or shown.
#[tokio::test]
async fn a_secrets_manager_reference_is_revised_by_its_version_id() {
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    let name = "/aws/reference/secretsmanager/prod/db";
    let answer = |version_id: &'static str| {
        move || {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name(name)
                        .value("hunter2")
                        .version(1)
                        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                        .source_result(format!(
                            r#"{{"ARN":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-AbCdEf","Name":"prod/db","SecretString":"hunter2","VersionId":"{version_id}","VersionStages":["AWSCURRENT"]}}"#
                        ))
                        .build(),
                )
                .build()
        }
    };
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .output(answer("v-1"))
        .output(answer("v-2"))
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule]);
    let masker = Masker::new();
    let first = ssm::get(&client, "prod", name, &masker).await.unwrap();
    let rotated = ssm::get(&client, "prod", name, &masker).await.unwrap();
    assert_eq!((first.version, rotated.version), (1, 1));
    assert_eq!(first.revision, "secret:v-1");
    assert_eq!(rotated.revision, "secret:v-2");
    assert!(!format!("{first:?}").contains("hunter2"), "{first:?}");
    assert_eq!(masker.mask("the value hunter2"), "the value ****");
}
