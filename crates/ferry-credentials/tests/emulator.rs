//! Against the local emulator (moto on loopback): identity, assume-role, SSM, child environment.

use ferry_credentials::config::Target;
use ferry_credentials::{CredentialsError, Masker, base_config, ssm, stage_config};
use ferry_manifest::{DeploymentMethod, Stage, StageConfig};
use ferry_test_support::moto;

fn stage(name: &str, role: Option<&str>, account: Option<&str>) -> Stage {
    Stage {
        name: name.into(),
        id: name.into(),
        preview: false,
        config: StageConfig {
            region: "us-east-1".into(),
            account: account.map(String::from),
            role_arn: role.map(String::from),
            external_id: role.map(|_| "shop-external-id".into()),
            parameters_path: Some(format!("/ferry-test/{name}/")),
            deployment_method: DeploymentMethod::Direct,
            protected: false,
            artifact_bucket: None,
            records_path: None,
            promote_from: None,
            on_test_failure: Default::default(),
            approval: false,
            variables: Default::default(),
        },
    }
}

async fn base() -> aws_config::SdkConfig {
    base_config(
        "us-east-1",
        &Target {
            local_endpoint: Some(moto().endpoint()),
        },
    )
    .await
}

#[tokio::test]
async fn the_caller_identity_of_a_stage_without_a_role() {
    let aws = stage_config(
        &stage("dev", None, None),
        &base().await,
        None,
        &Masker::new(),
    )
    .await
    .unwrap();
    assert_eq!(aws.identity.account, "123456789012");
    assert!(
        aws.identity.arn.starts_with("arn:aws:"),
        "{}",
        aws.identity.arn
    );
    assert_eq!(aws.role_arn, None);
}

#[tokio::test]
async fn a_stage_role_is_assumed_with_its_session_name_and_external_id() {
    let role = "arn:aws:iam::123456789012:role/ferry-deployer";
    let masked = Masker::new();
    let aws = stage_config(
        &stage("staging", Some(role), Some("123456789012")),
        &base().await,
        Some("shop:build-7"),
        &masked,
    )
    .await
    .unwrap();
    // The role's credentials were registered as secrets before any call signed with them: an
    // endpoint echoing them in an error cannot have them printed.
    let creds = {
        use aws_credential_types::provider::ProvideCredentials as _;
        aws.config
            .credentials_provider()
            .unwrap()
            .provide_credentials()
            .await
            .unwrap()
    };
    for secret in [
        creds.access_key_id(),
        creds.secret_access_key(),
        creds.session_token().unwrap(),
    ] {
        assert_eq!(masked.mask(&format!("echoed {secret}!")), "echoed ****!");
    }
    // The emulator's dummy key is none.
    assert_eq!(masked.mask("ferry-local"), "ferry-local");
    assert_eq!(
        aws.identity.arn,
        "arn:aws:sts::123456789012:assumed-role/ferry-deployer/ferry-staging-shop-build-7",
        "the identity is the assumed role, with Ferry's session name"
    );
    // The child environment carries the assumed (temporary) credentials, registered as secrets.
    let masker = Masker::new();
    let env = ferry_credentials::env::child_env(&aws.config, "staging", &masker)
        .await
        .unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert!(get("AWS_ACCESS_KEY_ID").unwrap().starts_with("ASIA"));
    let secret = get("AWS_SECRET_ACCESS_KEY").unwrap();
    assert_eq!(masker.mask(&format!("key={secret}")), "key=****");
    assert!(get("AWS_SESSION_TOKEN").is_some());
    assert_eq!(get("AWS_REGION").as_deref(), Some("us-east-1"));
    assert_eq!(get("AWS_ENDPOINT_URL"), Some(moto().endpoint()));
}

#[tokio::test]
async fn credentials_of_another_account_are_refused_naming_both() {
    let err = stage_config(
        &stage("prod", None, Some("111111111111")),
        &base().await,
        None,
        &Masker::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CredentialsError::WrongAccount { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("account 111111111111") && msg.contains("account 123456789012"),
        "{msg}"
    );
}

#[tokio::test]
async fn ssm_path_loads_every_page_and_decrypts() {
    let client = aws_sdk_ssm::Client::new(&base().await);
    let masker = Masker::new();
    for i in 0..23 {
        let secure = i % 5 == 0;
        let name = format!("/ferry-test/pages/p{i:02}");
        ssm::put(&client, "dev", &name, &format!("value-{i}"), secure, false)
            .await
            .unwrap();
    }
    ssm::put(
        &client,
        "dev",
        "/ferry-test/pages/nested/deep",
        "d",
        false,
        false,
    )
    .await
    .unwrap();
    let params = ssm::load_path(&client, "dev", "/ferry-test/pages", &masker)
        .await
        .unwrap();
    assert_eq!(
        params.len(),
        24,
        "pages of 10 are followed to the end, recursively"
    );
    let p5 = params
        .iter()
        .find(|p| p.name == "/ferry-test/pages/p05")
        .unwrap();
    assert!(p5.secure);
    assert_eq!(p5.value, "value-5", "SecureString values are decrypted");
    assert_eq!(
        masker.len(),
        5,
        "every SecureString value is registered with the masker"
    );
    assert_eq!(masker.mask("x value-10 y"), "x **** y");
}

#[tokio::test]
async fn put_refuses_to_overwrite_unless_asked() {
    let client = aws_sdk_ssm::Client::new(&base().await);
    let name = "/ferry-test/overwrite/token";
    assert_eq!(
        ssm::put(&client, "dev", name, "one", true, false)
            .await
            .unwrap(),
        1
    );
    let err = ssm::put(&client, "dev", name, "two", true, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialsError::ParameterExists { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--overwrite"));
    assert_eq!(
        ssm::put(&client, "dev", name, "two", true, true)
            .await
            .unwrap(),
        2
    );
    let masker = Masker::new();
    assert_eq!(
        ssm::get(&client, "dev", name, &masker).await.unwrap().value,
        "two"
    );
    let missing = ssm::get(&client, "dev", "/ferry-test/overwrite/nope", &masker)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, CredentialsError::ParameterNotFound { .. }),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_selector_reads_the_version_or_label_it_names() {
    let client = aws_sdk_ssm::Client::new(&base().await);
    let name = "/ferry-test/selector/token";
    for value in ["one", "two", "three"] {
        ssm::put(&client, "dev", name, value, true, true)
            .await
            .unwrap();
    }
    client
        .label_parameter_version()
        .name(name)
        .parameter_version(2)
        .labels("live")
        .send()
        .await
        .unwrap();
    let masker = Masker::new();
    let get = |n: String| {
        let (client, masker) = (&client, &masker);
        async move { ssm::get(client, "dev", &n, masker).await }
    };
    let latest = get(name.to_string()).await.unwrap();
    assert_eq!((latest.value.as_str(), latest.version), ("three", 3));
    let first = get(format!("{name}:1")).await.unwrap();
    assert_eq!((first.value.as_str(), first.version), ("one", 1));
    assert_eq!(first.revision, "1", "a parameter's revision is its version");
    let live = get(format!("{name}:live")).await.unwrap();
    assert_eq!((live.value.as_str(), live.version), ("two", 2));
    assert_eq!(live.name, name, "the name is given without its selector");
    for missing in [format!("{name}:9"), format!("{name}:gone")] {
        let err = get(missing.clone()).await.unwrap_err();
        assert!(
            matches!(&err, CredentialsError::SelectorNotFound { name: n, .. } if n == name),
            "{missing}: {err:?}"
        );
        assert!(err.to_string().contains("get-parameter-history"), "{err}");
    }
    // A selector no SSM version or label can be is refused before any call.
    let err = get(format!("{name}:0")).await.unwrap_err();
    assert!(matches!(err, CredentialsError::BadName(_)), "{err:?}");
}
