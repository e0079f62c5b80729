//! `compile` with stand-in CLIs (shell scripts that behave like the framework's `package`, or
//! misbehave): the arguments and environment it gets, reuse of an earlier compile, and every
//! failure it can have, each naming the service and saying what to do. The real CLI is driven
//! by the example monorepo's tests.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use ferry_serverless::{Compile, ServerlessError, compile};

/// A workspace with one Serverless service, `notifier`, whose CLI is `script` (a shell script
/// written to the service folder as `fake-sls`).
fn workspace(script: &str, extra_manifest: &str) -> (tempfile::TempDir, ferry_manifest::Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("ferry.toml"),
        "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"eu-west-1\"\n",
    )
    .unwrap();
    let svc = root.join("services/notifier");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(svc.join("serverless.yml"), "service: shop-notifications\n").unwrap();
    std::fs::write(
        svc.join("service.toml"),
        format!("[service]\nkind = \"serverless\"\nserverless-command = [\"./fake-sls\"]\n{extra_manifest}"),
    )
    .unwrap();
    let cli = svc.join("fake-sls");
    std::fs::write(&cli, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ws = ferry_manifest::load(root).unwrap();
    (dir, ws)
}

/// A stand-in for `package`: records its arguments and environment, writes a template naming
/// one archive and the archive itself (zipped by Python), and the state file.
const PACKAGE: &str = r#"
all="$*"
while [ $# -gt 0 ]; do
  case "$1" in --package) out="$2"; shift;; esac; shift
done
mkdir -p "$out"
python3 -c "
import zipfile,sys
with zipfile.ZipFile(sys.argv[1],'w') as z: z.writestr('src/notify.py','def handle(e,c): return 1\n')
" "$out/shop-notifications.zip"
cat > "$out/cloudformation-template-update-stack.json" <<'T'
{"Resources": {
  "ServerlessDeploymentBucket": {"Type": "AWS::S3::Bucket"},
  "NotifyLambdaFunction": {"Type": "AWS::Lambda::Function", "Properties": {
    "Code": {"S3Bucket": {"Ref": "ServerlessDeploymentBucket"}, "S3Key": "serverless/shop-notifications/dev/1-x/shop-notifications.zip"}}}}}
T
cat > "$out/serverless-state.json" <<'T'
{"service": {"service": "shop-notifications", "provider": {"stage": "dev"}}}
T
echo "compiled $all" >> calls.log
echo "${AWS_REGION:-none} ${FERRY_SERVICE:-none} ${FERRY_SERVERLESS_PARAM_0:-none}" > env.txt
"#;

fn request<'a>(
    ws: &'a ferry_manifest::Workspace,
    out: &'a Path,
    parameters: &'a BTreeMap<String, String>,
    env: &'a [(String, String)],
    mask: &'a (dyn Fn(&str) -> String + Sync),
    input_key: Option<&'a str>,
) -> Compile<'a> {
    Compile {
        root: &ws.root,
        project: &ws.project.name,
        service: ws.service("notifier").unwrap(),
        stage_id: "dev",
        region: "eu-west-1",
        parameters,
        env,
        out,
        input_key,
        mask,
        timeout: Duration::from_secs(20),
        prebuilt: None,
        on_step: &|_| {},
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn no_mask(s: &str) -> String {
    s.to_string()
}

#[test]
fn a_compile_passes_the_stage_region_and_parameters_and_is_reused_for_the_same_inputs() {
    let (dir, ws) = workspace(PACKAGE, "");
    let out = dir.path().join("target/ferry/package");
    let params: BTreeMap<String, String> =
        [("TableName".to_string(), "orders-dev".to_string())].into();
    let env = vec![("AWS_REGION".to_string(), "eu-west-1".to_string())];
    let c = request(&ws, &out, &params, &env, &no_mask, Some("tree-1"));
    let first = rt().block_on(compile(&c)).unwrap();
    assert!(!first.reused);
    assert_eq!(first.stack_name.as_deref(), Some("shop-notifications-dev"));
    assert_eq!(first.artifacts.len(), 1);
    let calls = std::fs::read_to_string(dir.path().join("services/notifier/calls.log")).unwrap();
    assert!(
        calls.starts_with("compiled package --stage dev --region eu-west-1 --package "),
        "{calls}"
    );
    // The value is in the CLI's environment, named on its command line, where `ps` shows
    // every argument to every user of the machine.
    assert!(
        calls
            .trim_end()
            .ends_with("--param TableName=${env:FERRY_SERVERLESS_PARAM_0}"),
        "{calls}"
    );
    assert!(!calls.contains("orders-dev"), "{calls}");
    let seen = std::fs::read_to_string(dir.path().join("services/notifier/env.txt")).unwrap();
    assert_eq!(seen.trim_end(), "eu-west-1 notifier orders-dev");

    // The same inputs: nothing runs again.
    let again = rt().block_on(compile(&c)).unwrap();
    assert!(again.reused);
    assert_eq!(again.template_sha256, first.template_sha256);
    let calls = std::fs::read_to_string(dir.path().join("services/notifier/calls.log")).unwrap();
    assert_eq!(calls.lines().count(), 1, "reused: {calls}");

    // Another parameter value, or no input key (a dirty tree): compiled again.
    let other: BTreeMap<String, String> =
        [("TableName".to_string(), "orders-2".to_string())].into();
    let c2 = request(&ws, &out, &other, &env, &no_mask, Some("tree-1"));
    assert!(!rt().block_on(compile(&c2)).unwrap().reused);
    let c3 = request(&ws, &out, &params, &env, &no_mask, None);
    assert!(!rt().block_on(compile(&c3)).unwrap().reused);
    let calls = std::fs::read_to_string(dir.path().join("services/notifier/calls.log")).unwrap();
    assert_eq!(calls.lines().count(), 3, "{calls}");
}

/// A file the configuration includes from outside the service's folder (shared settings) is
/// none of the input key's: its change is a new compile (before, the old one was reused, also
/// by `deploy --all`).
#[test]
fn a_change_to_a_file_the_configuration_includes_from_outside_compiles_again() {
    let (dir, ws) = workspace(PACKAGE, "");
    let root = dir.path();
    std::fs::create_dir_all(root.join("cfg")).unwrap();
    std::fs::write(root.join("cfg/common.yml"), "memory: 256\n").unwrap();
    std::fs::write(
        root.join("services/notifier/serverless.yml"),
        "service: shop-notifications\nprovider:\n  memorySize: ${file(../../cfg/common.yml):memory}\n",
    )
    .unwrap();
    let out = root.join("target/ferry/package");
    let params = BTreeMap::new();
    let c = request(&ws, &out, &params, &[], &no_mask, Some("tree-1"));
    assert!(!rt().block_on(compile(&c)).unwrap().reused);
    assert!(rt().block_on(compile(&c)).unwrap().reused);
    std::fs::write(root.join("cfg/common.yml"), "memory: 1024\n").unwrap();
    assert!(!rt().block_on(compile(&c)).unwrap().reused);
}

/// Compiles with `script` as the CLI and returns the error's text.
fn failure(
    script: &str,
    extra_manifest: &str,
    params: &[(&str, &str)],
    secret: Option<&str>,
) -> String {
    let (dir, ws) = workspace(script, extra_manifest);
    let out = dir.path().join("target/ferry/package");
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let secret = secret.map(String::from);
    let mask = move |s: &str| match &secret {
        Some(x) => s.replace(x.as_str(), "****"),
        None => s.to_string(),
    };
    let c = request(&ws, &out, &params, &[], &mask, Some("tree-1"));
    let e = rt().block_on(compile(&c)).unwrap_err();
    assert!(
        !out.join("serverless").exists(),
        "nothing kept after a failure: {e}"
    );
    e.to_string()
}

#[test]
fn a_framework_that_fails_shows_its_last_lines_masked() {
    let e = failure(
        "for i in $(seq 1 30); do echo line $i; done; echo 'Cannot resolve variable at \"provider.x\": token s3cr3t'; exit 1\n",
        "",
        &[("DbUrl", "postgres://admin:Pw-0f-the-db@db:5432/app")],
        Some("s3cr3t"),
    );
    assert!(
        e.starts_with("notifier: `./fake-sls package --stage dev --region eu-west-1 --package "),
        "{e}"
    );
    // A parameter's value is not shown: it may be a secret the masker does not know (a
    // password in a URL kept in an SSM String parameter). Before, the whole line was.
    assert!(e.contains(" --param DbUrl=…` failed"), "{e}");
    assert!(!e.contains("Pw-0f-the-db"), "{e}");
    assert!(
        e.contains("failed (exit status: 1); nothing was deployed. Its last lines:"),
        "{e}"
    );
    assert!(
        e.contains("  | Cannot resolve variable at \"provider.x\": token ****"),
        "{e}"
    );
    assert!(!e.contains("line 10\n"), "only the last 20 lines: {e}");
    assert!(e.contains("  | line 30"), "{e}");
}

/// The framework works in `.serverless/` of the service folder; one that fails (a full disk as
/// it copies to `--package`) left it there, an untracked folder that made every later package
/// of the checkout dirty. It goes now, unless it was there before the compile.
#[test]
fn a_failed_compile_leaves_no_serverless_folder_it_made() {
    let script = "mkdir -p .serverless && echo '{}' > .serverless/serverless-state.json; echo 'Error: ENOSPC: no space left on device'; exit 1\n";
    let (dir, ws) = workspace(script, "");
    let out = dir.path().join("target/ferry/package");
    let params = BTreeMap::new();
    let scratch = dir.path().join("services/notifier/.serverless");
    let c = request(&ws, &out, &params, &[], &no_mask, Some("tree-1"));
    let e = rt().block_on(compile(&c)).unwrap_err().to_string();
    assert!(e.contains("  | Error: ENOSPC"), "{e}");
    assert!(!scratch.exists(), "the framework's folder is gone");
    // One the user had is theirs.
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("mine"), "x").unwrap();
    rt().block_on(compile(&c)).unwrap_err();
    assert!(scratch.join("mine").exists());
    std::fs::remove_dir_all(&scratch).unwrap();

    // A compile killed while the framework ran (a CI job's SIGKILL) could not remove it: the
    // folder stayed for good, and every later deploy from the checkout was dirty (a protected
    // stage refused its packages). The next compile removes it.
    let (dir, ws) = workspace(
        "mkdir -p .serverless; echo x > .serverless/state; kill -9 $PPID; sleep 5\n",
        "",
    );
    let out = dir.path().join("target/ferry/package");
    let scratch = dir.path().join("services/notifier/.serverless");
    let c = request(&ws, &out, &params, &[], &no_mask, Some("tree-1"));
    let exe = std::env::current_exe().unwrap();
    // The compile in a process of its own, killed by the CLI: this test's binary, run for the
    // one test below.
    let killed = std::process::Command::new(&exe)
        .args([
            "--exact",
            "compile::killed_compile_child",
            "--ignored",
            "--nocapture",
        ])
        .env("FERRY_TEST_KILLED_COMPILE_ROOT", dir.path())
        .status()
        .unwrap();
    assert!(!killed.success(), "the compile's process was killed");
    assert!(scratch.join("state").exists(), "left by the killed compile");
    std::fs::write(
        dir.path().join("services/notifier/fake-sls"),
        "#!/bin/sh\nexit 1\n",
    )
    .unwrap();
    // Written after the killed compile could have ended (an hour later): the user's own since.
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::open(&scratch)
        .unwrap()
        .set_modified(later)
        .unwrap();
    rt().block_on(compile(&c)).unwrap_err();
    assert!(scratch.join("state").exists(), "the user's, kept");
    std::fs::File::open(&scratch)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let e = rt().block_on(compile(&c)).unwrap_err().to_string();
    assert!(!scratch.exists(), "removed by the next compile: {e}");
}

/// Not a test of its own: the compile [`a_failed_compile_leaves_no_serverless_folder_it_made`]
/// runs in a process the CLI kills.
#[test]
#[ignore = "run by a_failed_compile_leaves_no_serverless_folder_it_made"]
fn killed_compile_child() {
    let Some(root) = std::env::var_os("FERRY_TEST_KILLED_COMPILE_ROOT") else {
        return;
    };
    let root = std::path::PathBuf::from(root);
    let ws = ferry_manifest::load(&root).unwrap();
    let out = root.join("target/ferry/package");
    let params = BTreeMap::new();
    let c = request(&ws, &out, &params, &[], &no_mask, Some("tree-1"));
    let _ = rt().block_on(compile(&c));
}

/// Serverless Framework 3 exits 0 after a failed hook script (a probe: `build-layer.sh: not
/// found`, then `NpmRunAllError`): the error shows what it printed, as for a failure (before,
/// it only asked whether the CLI was one).
#[test]
fn a_framework_that_succeeds_without_a_template_is_an_error_showing_its_last_lines() {
    let e = failure(
        "echo 'sh: 1: build-layer.sh: not found'; echo 'NpmRunAllError: \"hook:before:package:initialize\" exited with 127'; exit 0\n",
        "",
        &[],
        None,
    );
    assert!(
        e.starts_with("notifier: `./fake-sls` exited successfully but wrote no cloudformation-template-update-stack.json: a hook or plugin may have failed without failing the CLI"),
        "{e}"
    );
    assert!(
        e.contains("build-layer.sh: not found") && e.contains("NpmRunAllError"),
        "{e}"
    );
}

#[test]
fn a_missing_cli_or_node_says_how_to_get_one() {
    let e = failure("", "", &[], None).to_string();
    // The script is empty but runs: it writes nothing.
    assert!(
        e.contains("wrote no cloudformation-template-update-stack.json"),
        "{e}"
    );

    let (dir, ws) = workspace("", "");
    let mut service = ws.service("notifier").unwrap().clone();
    service.serverless_command = Some(vec!["/nonexistent/node-cli".into()]);
    let out = dir.path().join("out");
    let params = BTreeMap::new();
    let c = Compile {
        service: &service,
        ..request(&ws, &out, &params, &[], &no_mask, None)
    };
    let e = rt().block_on(compile(&c)).unwrap_err();
    assert!(matches!(e, ServerlessError::NotStarted { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("could not start: No such file or directory (os error 2); is it installed and on PATH? (the Serverless Framework CLI needs Node.js 20.19 or newer)"),
        "{e}"
    );

    service.serverless_command = None;
    let found = ferry_serverless::find_cli(&ws.root, &service);
    match found {
        Ok(argv) => assert_eq!(
            argv,
            ["serverless"],
            "a `serverless` on this machine's PATH"
        ),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("npm install --save-dev osls"), "{e}");
            assert!(e.contains("serverless-command"), "{e}");
            // A configuration pinned to version 3, which osls (version 4) refuses: the
            // framework's own version 3 instead.
            std::fs::write(
                ws.root.join(service.template_path()),
                "service: shop-notifications\nframeworkVersion: '3'\n",
            )
            .unwrap();
            let e = ferry_serverless::find_cli(&ws.root, &service)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(
                    "`npm install --save-dev osls@3`, the open-source CLI at version 3: its frameworkVersion takes version 3 and not 4"
                ),
                "{e}"
            );
            // The root's package.json names a CLI that nobody installed: that is what to do,
            // not to add one.
            std::fs::write(
                ws.root.join("package.json"),
                r#"{"private": true, "devDependencies": {"osls": "^3.51.0"}}"#,
            )
            .unwrap();
            let e = ferry_serverless::find_cli(&ws.root, &service)
                .unwrap_err()
                .to_string();
            assert!(
                e.ends_with(
                    "nor `serverless` on PATH. `package.json` names one, but its dependencies are not installed: install them in its folder first (`npm ci`, `yarn install --frozen-lockfile` or `pnpm install --frozen-lockfile`, by its lock file), e.g. in CI's install phase or as a `[package] build` of the service"
                ),
                "{e}"
            );
        }
    }
    // Found above the service folder, up to the repository root.
    let bin = ws.root.join("node_modules/.bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("serverless"), "#!/bin/sh\n").unwrap();
    assert_eq!(
        ferry_serverless::find_cli(&ws.root, &service).unwrap(),
        [bin.join("serverless").to_string_lossy().to_string()]
    );
}

#[test]
fn a_secret_parameter_is_refused_as_the_compiled_template_would_hold_it() {
    let e = failure(
        PACKAGE,
        "",
        &[("ApiKey", "s3cr3t-value")],
        Some("s3cr3t-value"),
    );
    assert_eq!(
        e,
        "notifier: parameter `ApiKey` holds a secret (an SSM SecureString), and the framework writes a parameter's value into the template it compiles, which Ferry keeps and uploads (as it does a ${ssm:…} of it in serverless.yml); have the function read the secret from SSM when it runs instead"
    );
}

#[test]
fn a_failing_build_stops_before_the_framework_runs() {
    let e = failure(
        PACKAGE,
        "\n[package]\nbuild = [\"sh\", \"-c\", \"echo npm ERR! network; exit 3\"]\n",
        &[],
        None,
    );
    assert!(e.starts_with("notifier: build command `sh -c echo npm ERR! network; exit 3` failed (exit status: 3); nothing was compiled or deployed"), "{e}");
    assert!(e.contains("  | npm ERR! network"), "{e}");
}

#[test]
fn a_framework_that_hangs_is_stopped() {
    let (dir, ws) = workspace("sleep 30\n", "");
    let out = dir.path().join("out");
    let params = BTreeMap::new();
    let c = Compile {
        timeout: Duration::from_secs(1),
        ..request(&ws, &out, &params, &[], &no_mask, None)
    };
    let t0 = std::time::Instant::now();
    let e = rt().block_on(compile(&c)).unwrap_err().to_string();
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "stopped at the timeout"
    );
    assert!(
        e.contains("did not finish within 1 s and was stopped; nothing was deployed"),
        "{e}"
    );
}

/// Compiles with the build started ahead ([`ferry_serverless::Prebuilds`]), collecting the
/// steps the compile reports. The masker hides `secret`.
fn compile_with_prebuild(
    ws: &ferry_manifest::Workspace,
    out: &Path,
    secret: &str,
) -> (
    Result<ferry_serverless::Compiled, ServerlessError>,
    Vec<String>,
) {
    let masker = ferry_credentials::Masker::new();
    masker.register(secret);
    let steps = std::sync::Mutex::new(Vec::new());
    let params = BTreeMap::new();
    let mask = |s: &str| masker.mask(s);
    let result = rt().block_on(async {
        let prebuilds = ferry_serverless::Prebuilds::start(ws, ["notifier"], &masker, None);
        assert_eq!(prebuilds.services().collect::<Vec<_>>(), ["notifier"]);
        let on_step = |s: &str| steps.lock().unwrap().push(s.to_string());
        let c = Compile {
            prebuilt: Some(&prebuilds),
            on_step: &on_step,
            ..request(ws, out, &params, &[], &mask, None)
        };
        let result = compile(&c).await;
        prebuilds.finish().await;
        result
    });
    (result, steps.into_inner().unwrap())
}

#[test]
fn a_build_started_ahead_runs_once_and_its_compile_waits_for_it() {
    // The build is slow and leaves a mark; the stand-in CLI fails unless the mark is there.
    let (dir, ws) = workspace(
        &format!("[ -f built.mark ] || exit 9\n{PACKAGE}"),
        "\n[package]\nbuild = [\"sh\", \"-c\", \"sleep 1; echo built $SOURCE_DATE_EPOCH >> built.mark\"]\n",
    );
    let out = dir.path().join("target/ferry/package");
    let (result, steps) = compile_with_prebuild(&ws, &out, "unused-secret");
    let compiled = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(compiled.artifacts.len(), 1);
    let marks = std::fs::read_to_string(dir.path().join("services/notifier/built.mark")).unwrap();
    assert_eq!(
        marks, "built 315532800\n",
        "the build ran once (not again in the compile), with SOURCE_DATE_EPOCH as every build"
    );
    assert_eq!(
        steps,
        [
            "waiting for its build `sh -c sleep 1; echo built $SOURCE_DATE_EPOCH >> built.mark` (started ahead)",
            "running `./fake-sls package`",
            "zipping its archives again, reproducibly",
        ]
    );
}

#[test]
fn a_build_started_ahead_that_fails_fails_the_compile_with_its_own_masked_error() {
    let (dir, ws) = workspace(
        PACKAGE,
        "\n[package]\nbuild = [\"sh\", \"-c\", \"echo token tok-123; exit 4\"]\n",
    );
    let out = dir.path().join("target/ferry/package");
    let (result, _) = compile_with_prebuild(&ws, &out, "tok-123");
    let e = result.unwrap_err();
    assert!(matches!(e, ServerlessError::Prebuilt(_)), "{e:?}");
    let e = e.to_string();
    assert!(
        e.starts_with("notifier: build command `sh -c echo token ****; exit 4` failed (exit status: 4); nothing was compiled or deployed"),
        "{e}"
    );
    assert!(e.contains("  | token ****"), "{e}");
    assert!(!e.contains("tok-123"), "{e}");
    assert!(
        !dir.path().join("services/notifier/calls.log").exists(),
        "the framework never ran"
    );
}

/// The stage's permissions boundary is passed to the compile of a service that reads it,
/// whether its `serverless.yml` names `${param:…}` itself or through a file it includes, and
/// only then (another service's parameters stay as they were).
#[test]
fn a_parameter_is_read_through_included_files() {
    let (dir, ws) = workspace("", "");
    let svc = dir.path().join("services/notifier");
    let service = ws.service("notifier").unwrap();
    let reads = || ferry_serverless::reads_param(&ws.root, service, "FerryPermissionsBoundary");
    assert!(!reads(), "the configuration reads no parameter");
    std::fs::write(
        svc.join("serverless.yml"),
        "service: shop-notifications\nprovider: ${file(../shared/provider.yml)}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("services/shared")).unwrap();
    std::fs::write(
        dir.path().join("services/shared/provider.yml"),
        "name: aws\niam:\n  role:\n    permissionsBoundary: arn:aws:iam::1:policy/${param:FerryPermissionsBoundary}\n",
    )
    .unwrap();
    assert!(reads(), "through the included provider.yml");
    // Another parameter of the same start is not it.
    std::fs::write(
        dir.path().join("services/shared/provider.yml"),
        "name: aws\ntags:\n  b: ${param:FerryPermissionsBoundaryName}\n",
    )
    .unwrap();
    assert!(
        !reads(),
        "`FerryPermissionsBoundaryName` is another parameter"
    );
}

/// The variables named as secrets a configuration reads from the environment, itself or in a
/// file it includes, a fallback's too: the compiled template holds their values (ESquad's
/// `${env:CLIENT_SECRET}` was kept and uploaded unwarned). Plain ones, and names of where a
/// secret is kept, are not among them.
#[test]
fn secret_env_reads_are_the_variables_named_as_secrets() {
    let (dir, ws) = workspace(PACKAGE, "");
    let svc = dir.path().join("services/notifier");
    std::fs::write(
        svc.join("serverless.yml"),
        "service: n\nprovider:\n  name: aws\n  environment:\n    SECRET: ${env:CLIENT_SECRET}\n    TABLE: ${env:TABLE_NAME}\n    ARN: ${env:DB_SECRET_ARN}\n    LEVEL: ${env:LEVEL, env:LOG_TOKEN, 'info'}\ncustom: ${file(./custom.yml)}\nextra: ${file(./extra.js):values}\n",
    )
    .unwrap();
    std::fs::write(
        svc.join("custom.yml"),
        "pw: ${env: DB_PASSWORD}\nagain: ${env:CLIENT_SECRET}\nper_stage: ${env:STAGE_PASSWORD_${sls:stage}}\nteam: ${env:${self:custom.team}_API_TOKEN}\nplain: ${env:TABLE_${sls:stage}}\n",
    )
    .unwrap();
    // A resolver written in JavaScript reads them as `process.env`.
    std::fs::write(
        svc.join("extra.js"),
        "module.exports.values = () => ({ key: process.env.STRIPE_API_KEY, region: process.env['AWS_REGION'], pw: process.env.DB_PASSWORD });\n",
    )
    .unwrap();
    let service = ws.service("notifier").unwrap();
    assert_eq!(
        ferry_serverless::secret_env_reads(&ws.root, service),
        [
            "CLIENT_SECRET",
            "LOG_TOKEN",
            "DB_PASSWORD",
            "STAGE_PASSWORD_${sls:stage}",
            "${self:custom.team}_API_TOKEN",
            "STRIPE_API_KEY"
        ]
    );
    assert!(
        ferry_serverless::env_secret_warning("notifier", "CLIENT_SECRET").starts_with(
            "notifier reads `CLIENT_SECRET`, a secret by its name, from the environment (`${env:…}`, or `process.env` in a configuration written as a program), so the framework writes its value, in clear, into the template it compiles"
        )
    );
}

/// A value holding `${` (from a stack output or an SSM value) is refused before the framework
/// runs, which would resolve it as a variable of its own: `${env:AWS_SECRET_ACCESS_KEY}` would
/// land, resolved, in the template. The value is not shown.
#[test]
fn a_parameter_value_holding_a_variable_is_refused() {
    let e = failure(
        PACKAGE,
        "",
        &[("Greeting", "hi ${env:AWS_SECRET_ACCESS_KEY}")],
        None,
    );
    assert!(
        e.starts_with("notifier: the value of parameter `Greeting` (not shown) holds `${`"),
        "{e}"
    );
    assert!(!e.contains("hi ${"), "the value is not shown: {e}");
}
