//! `unlinked_cf_readers`: a Serverless service reading another service's stack outputs with
//! `${cf:…}` without depending on it is named (validate warns), whatever kind the other is.

use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_cf_read_of_another_services_stack_without_depends_on_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"links\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    // A CloudFormation service whose stack its deploy script named.
    write(
        r,
        "services/queue/service.toml",
        "[service]\ntemplate = \"t.yaml\"\nstack-name = \"shop-queue-{stage}\"\n",
    );
    write(
        r,
        "services/queue/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
    );
    write(
        r,
        "services/topic/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(
        r,
        "services/topic/t.yaml",
        "Resources:\n  T:\n    Type: AWS::SNS::Topic\n",
    );
    // Reads both; depends on topic only. A stack of no service (a fallback's) is none of these.
    write(
        r,
        "services/auth/service.toml",
        "[service]\nkind = \"serverless\"\ndepends-on = [\"topic\"]\n",
    );
    write(
        r,
        "services/auth/serverless.yml",
        "service: auth\nprovider:\n  name: aws\n  environment:\n    QUEUE: ${cf:shop-queue-${sls:stage}.QueueUrl}\n    TOPIC: ${cf(us-east-1):topic-${sls:stage}.TopicArn}\n    OLD: ${env:OLD, cf:legacy-prod.Url}\nfunctions:\n  h:\n    handler: h.h\n",
    );
    let ws = ferry_manifest::load(r).unwrap();
    assert_eq!(
        ferry_serverless::unlinked_cf_readers(&ws),
        [(
            "auth".to_string(),
            vec!["queue".to_string()],
            "shop-queue-${sls:stage}".to_string()
        )]
    );
    assert_eq!(
        ferry_serverless::cf_stacks(r, ws.service("auth").unwrap()),
        [
            "shop-queue-${sls:stage}",
            "topic-${sls:stage}",
            "legacy-prod"
        ]
    );
}

/// A stack written with variables may be several services' (`api${…}-dev` is `api`'s and
/// `api-gw`'s): no warning while one of them is a dependency (before, the first found was
/// named, though the reader depended on the other).
#[test]
fn a_cf_read_that_may_be_several_services_stacks_is_named_only_when_none_is_a_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "ferry.toml",
        "[project]\nname = \"links\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
    );
    for s in ["api", "api-gw"] {
        write(
            r,
            &format!("services/{s}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        );
        write(
            r,
            &format!("services/{s}/t.yaml"),
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
    }
    let reader = |depends: &str| {
        write(
            r,
            "services/web/service.toml",
            &format!("[service]\nkind = \"serverless\"\n{depends}"),
        );
        write(
            r,
            "services/web/serverless.yml",
            "service: web\nprovider:\n  name: aws\n  environment:\n    URL: ${cf:api${self:custom.suffix}-${sls:stage}.Url}\ncustom:\n  suffix: -gw\nfunctions:\n  h:\n    handler: h.h\n",
        );
        ferry_serverless::unlinked_cf_readers(&ferry_manifest::load(r).unwrap())
    };
    assert!(reader("depends-on = [\"api-gw\"]\n").is_empty());
    assert_eq!(
        reader(""),
        [(
            "web".to_string(),
            vec!["api".to_string(), "api-gw".to_string()],
            "api${self:custom.suffix}-${sls:stage}".to_string()
        )]
    );
}
