//! `whoami`, `param` and `exec` through the real binary against the local emulator.

use std::process::Command;

use crate::common::{run, xtask};
use ferry_test_support::{TestRepo, moto};

/// A repository whose stages keep their parameters under a path of their own.
fn repo(tag: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\nparameters-path = \"/cli-{tag}/dev/\"\n\n\
             [stages.staging]\nregion = \"us-east-1\"\naccount = \"123456789012\"\nrole-arn = \"arn:aws:iam::123456789012:role/ferry-deployer\"\nexternal-id = \"shop-staging\"\n\n\
             [stages.prod]\nregion = \"us-east-1\"\naccount = \"111111111111\"\n"
        ),
    )
    .write("services/a/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
    .write("services/a/t.yaml", "Resources: {}\n");
    r
}

#[test]
fn whoami_shows_the_identity_and_the_assumed_role() {
    let r = repo("whoami");
    let (code, out, err) = run(&mut xtask(&r, &["whoami", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("account   123456789012\n"), "{out}");
    assert!(
        out.contains(&format!("endpoint  {}\n", moto().endpoint())),
        "{out}"
    );
    let (code, out, err) = run(
        xtask(&r, &["whoami", "staging"]).env("CODEBUILD_BUILD_ID", "shop:abc-123"),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("arn       arn:aws:sts::123456789012:assumed-role/ferry-deployer/ferry-staging-shop-abc-123\n"), "{out}");
    assert!(
        out.contains("role      arn:aws:iam::123456789012:role/ferry-deployer (assumed)"),
        "{out}"
    );
}

#[test]
fn whoami_refuses_another_account_and_explains_missing_credentials() {
    let r = repo("account");
    let (code, _, err) = run(&mut xtask(&r, &["whoami", "prod"]), None);
    assert_eq!(code, 1);
    assert!(err.contains("must be deployed to account 111111111111, but the credentials belong to account 123456789012"), "{err}");

    let mut c = xtask(&r, &["whoami", "dev"]);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let (code, _, err) = run(&mut c, None);
    assert_eq!(code, 1);
    assert!(
        err.contains("no AWS credentials were found for stage `dev`") && err.contains("--local"),
        "{err}"
    );
}

/// A terminal: its master end (what a terminal emulator shows) and its slave end (the program's
/// standard input).
fn terminal() -> (std::fs::File, std::fs::File) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    (std::fs::File::from(master), slave)
}

fn echo_on(slave: &std::fs::File) -> bool {
    rustix::termios::tcgetattr(slave)
        .unwrap()
        .local_modes
        .contains(rustix::termios::LocalModes::ECHO)
}

/// What the terminal showed, read from its master end (once the program ended).
fn shown(master: &std::fs::File) -> String {
    rustix::io::ioctl_fionbio(master, true).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = std::io::Read::read(&mut &*master, &mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `param set --secure` typed at a terminal showed the secret as it was typed (into the
/// terminal's scrollback, a screen share, a recording): its echo is off now while the value is
/// read, and back on however the read ends, Ctrl-C included (then nothing is written).
#[test]
fn param_set_secure_typed_at_a_terminal_is_not_shown() {
    let r = repo("param-typed");
    let secret = "typed-at-the-terminal";
    let (master, slave) = terminal();
    let child = xtask(&r, &["param", "set", "dev", "db/typed", "--secure"])
        .stdin(slave.try_clone().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_quiet = || {
        let start = std::time::Instant::now();
        while echo_on(&slave) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "echo never went off"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_quiet();
    std::io::Write::write_all(&mut &master, format!("{secret}\n\x04").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("type the value (not shown as you type), then Ctrl-D"),
        "{stderr}"
    );
    let screen = shown(&master);
    assert!(!screen.contains(secret), "the terminal showed {screen:?}");
    assert!(echo_on(&slave), "the terminal's echo is back on");
    let (_, got, _) = run(
        &mut xtask(&r, &["param", "get", "dev", "db/typed", "--show-secrets"]),
        None,
    );
    assert_eq!(got, format!("{secret}\n"));

    // Ctrl-C while typing: echo back on, nothing written, exit 130.
    let child = xtask(&r, &["param", "set", "dev", "db/cancelled", "--secure"])
        .stdin(slave.try_clone().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_quiet();
    std::io::Write::write_all(&mut &master, b"half-typ").unwrap();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted (Ctrl-C): nothing written"),
        "{stderr}"
    );
    assert!(
        echo_on(&slave),
        "the terminal's echo is back on after Ctrl-C"
    );
    let (code, _, err) = run(
        &mut xtask(&r, &["param", "get", "dev", "db/cancelled"]),
        None,
    );
    assert_eq!(code, 1, "{err}");
}

#[test]
fn param_set_reads_standard_input_and_secure_values_stay_hidden() {
    let r = repo("param");
    let secret = "pa55-w0rd-from-stdin";
    let (code, out, err) = run(
        &mut xtask(&r, &["param", "set", "dev", "db/password", "--secure"]),
        Some(&format!("{secret}\n")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "/cli-param/dev/db/password written (SecureString, version 1)\n"
    );
    run(
        &mut xtask(&r, &["param", "set", "dev", "admin-email"]),
        Some("ops@example.com"),
    );

    let (_, out, _) = run(
        &mut xtask(&r, &["param", "get", "dev", "db/password"]),
        None,
    );
    assert_eq!(out, "(secure; --show-secrets to show)\n");
    let (_, out, _) = run(
        &mut xtask(
            &r,
            &["param", "get", "dev", "db/password", "--show-secrets"],
        ),
        None,
    );
    assert_eq!(
        out,
        format!("{secret}\n"),
        "stored without the trailing newline"
    );
    let (_, out, _) = run(&mut xtask(&r, &["param", "list", "dev"]), None);
    assert!(
        out.contains("/cli-param/dev/admin-email  String        1        ops@example.com"),
        "{out}"
    );
    assert!(!out.contains(secret), "{out}");
    // A String holding the secret (a stack copied it): `param get` masks it as `param list`
    // does. Before, it printed the secret in clear.
    let copy = format!("url=https://u:{secret}@h");
    run(
        &mut xtask(&r, &["param", "set", "dev", "db/url"]),
        Some(&copy),
    );
    let (code, out, err) = run(&mut xtask(&r, &["param", "get", "dev", "db/url"]), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "url=https://u:****@h\n");
    let (_, out, _) = run(
        &mut xtask(&r, &["param", "get", "dev", "db/url", "--show-secrets"]),
        None,
    );
    assert_eq!(out, format!("{copy}\n"));

    let (code, _, err) = run(
        &mut xtask(&r, &["param", "set", "dev", "db/password", "--secure"]),
        Some("other"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("exists already; pass --overwrite"), "{err}");
    assert!(
        !err.contains("other"),
        "the refused value is not echoed: {err}"
    );
    let (code, _, err) = run(&mut xtask(&r, &["param", "set", "dev", "empty"]), Some(""));
    assert_eq!(code, 1);
    assert!(err.contains("no value on standard input"), "{err}");
    // Ferry's own records and lock are not parameters to set: one written by hand discarded
    // the stage's good records from the plan, or locked the stage with a lock nobody holds.
    for (name, whose) in [
        ("/ferry/shop/dev/records/a", "stage `dev`"),
        ("/ferry/shop/dev/lock", "stage `dev`"),
        ("/ferry/shop/prod/health/a", "stage `prod`"),
        ("/ferry/shop/prod/nodes/a", "stage `prod`"),
    ] {
        let (code, _, err) = run(
            &mut xtask(&r, &["param", "set", "dev", name, "--overwrite"]),
            Some("garbage"),
        );
        assert_eq!(code, 1, "{name}: {err}");
        assert!(
            err.contains(&format!("`{name}` is Ferry's own parameter (a deployment record, health mark, batch node's mark or lock of {whose}): `param set` does not write it")),
            "{err}"
        );
    }
    // A name merely beside them is a parameter like any other.
    let (code, _, err) = run(
        &mut xtask(&r, &["param", "set", "dev", "/ferry/shop/dev/settings/x"]),
        Some("fine"),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_secret_appears_in_no_output_even_from_a_failing_child() {
    let r = repo("mask");
    let secret = "sup3r-secret-t0ken";
    run(
        &mut xtask(&r, &["param", "set", "dev", "api-token", "--secure"]),
        Some(secret),
    );
    // Also as an HTTP client would send it: inside base64, after "user:".
    let script = r#"echo "stdout: $FERRY_PARAM_API_TOKEN in $FERRY_STAGE/$FERRY_REGION"; echo "Authorization: Basic $(printf 'user:%s' "$FERRY_PARAM_API_TOKEN" | base64)"; echo "stderr: $FERRY_PARAM_API_TOKEN $AWS_SECRET_ACCESS_KEY" >&2; exit 7"#;
    let (code, out, err) = run(
        &mut xtask(&r, &["exec", "dev", "--", "sh", "-c", script]),
        None,
    );
    assert_eq!(code, 1);
    // "dXNlcjp" is "user:" (its last character mixes in the token's first two bits), "4="
    // the token's last four bits and the padding: the rest of the token is masked.
    assert_eq!(
        out,
        "stdout: **** in dev/us-east-1\nAuthorization: Basic dXNlcjp****4=\n"
    );
    assert!(err.contains("stderr: **** ****\n"), "{err}");
    assert!(err.contains("exit status: 7"), "{err}");
    for (name, text) in [("stdout", &out), ("stderr", &err)] {
        assert!(
            !text.contains(secret),
            "the secret leaked into {name}: {text}"
        );
        assert!(
            !text.contains("test-secret"),
            "the AWS secret key leaked into {name}: {text}"
        );
    }
    // The child got the real values (in its environment only).
    let check = format!(
        "test \"$FERRY_PARAM_API_TOKEN\" = '{secret}' && test -n \"$AWS_SESSION_TOKEN$AWS_ACCESS_KEY_ID\""
    );
    let (code, _, err) = run(
        &mut xtask(&r, &["exec", "dev", "--", "sh", "-c", &check]),
        None,
    );
    assert_eq!(code, 0, "{err}");
}

/// Keeps `secret` as SecureString `name` in stage dev, then runs `exec dev` of a command
/// printing it to standard output and standard error: (exit code, output, error output).
fn exec_printing_a_secret(r: &TestRepo, name: &str, secret: &str) -> (i32, String, String) {
    let (code, _, err) = run(
        &mut xtask(r, &["param", "set", "dev", name, "--secure"]),
        Some(secret),
    );
    assert_eq!(code, 0, "{err}");
    run(
        &mut xtask(
            r,
            &[
                "exec",
                "dev",
                "--",
                "sh",
                "-c",
                &format!("echo value={secret}; echo {secret} >&2"),
            ],
        ),
        None,
    )
}

/// A SecureString a service reads from outside the stage's parameters-path (an absolute
/// `${ssm:…}` name, as `init` once advised without writing a parameters-path) is masked in what
/// `exec` runs prints: before, only those under the path were, and a probe saw it in clear.
#[test]
fn exec_masks_a_secret_a_service_reads_from_outside_the_parameters_path() {
    let r = repo("outside");
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nDbPassword = \"${ssm:/cli-outside-elsewhere/${stage}/DbPassword}\"\n",
    )
    .write(
        "services/a/t.yaml",
        "Parameters:\n  DbPassword: {Type: String, NoEcho: true}\nResources: {}\n",
    );
    let secret = "0utside-S3cr3t-value";
    let (code, out, err) =
        exec_printing_a_secret(&r, "/cli-outside-elsewhere/dev/DbPassword", secret);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "value=****\n");
    assert!(err.contains("****") && !err.contains(secret), "{err}");
}

/// A SecureString a Serverless Framework configuration reads itself
/// (`${ssm:/configuration/${sls:stage}/okta}`, as the framework resolves it when it compiles) is
/// masked in what `exec` runs prints: before, only the secrets of `[parameters]` and of
/// CloudFormation templates were, and a probe saw it in clear. A name Ferry cannot resolve is
/// warned of.
#[test]
fn exec_masks_a_secret_a_serverless_configuration_reads() {
    let r = repo("sls-secret");
    r.write(
        "services/sls/service.toml",
        "[service]\nkind = \"serverless\"\n",
    )
    .write(
        "services/sls/serverless.yml",
        "service: sls\nprovider:\n  name: aws\n  environment:\n    OKTA: ${ssm:/cli-sls-secret-okta/${sls:stage}/client_secret}\n    TEAM: ${ssm:/teams/${env:TEAM}/name}\n",
    );
    let secret = "S3cr3tOkta-XYZ123";
    let (code, out, err) =
        exec_printing_a_secret(&r, "/cli-sls-secret-okta/dev/client_secret", secret);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "value=****\n", "{err}");
    assert!(!err.contains(secret), "{err}");
    assert!(
        err.contains("warning: sls reads SSM parameters through `/teams/${env:TEAM}/name`, which Ferry cannot resolve before the framework runs"),
        "{err}"
    );
}

/// Two parameters whose names give one `FERRY_PARAM_*` variable (`api/token` and
/// `api_token`): `exec` refuses, naming both. Before, the command got whichever was read last,
/// a plain value in place of the secret, in silence.
#[test]
fn exec_refuses_two_parameters_of_one_variable() {
    let r = repo("collide");
    let secret = "c0llide-secret-t0ken";
    let (code, _, err) = run(
        &mut xtask(&r, &["param", "set", "dev", "api/token", "--secure"]),
        Some(secret),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &mut xtask(&r, &["param", "set", "dev", "api_token"]),
        Some("pl4in-v4lue"),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        &mut xtask(&r, &["exec", "dev", "--", "sh", "-c", "echo ran"]),
        None,
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("ran"), "{out}");
    assert!(
        err.contains("and") && err.contains("both become the variable FERRY_PARAM_API_TOKEN"),
        "{err}"
    );
    assert!(
        !err.contains(secret) && !err.contains("pl4in-v4lue"),
        "{err}"
    );
}

#[test]
fn local_starts_the_emulator_for_the_run() {
    let r = repo("local");
    let state = tempfile::tempdir().unwrap();
    let _down = ferry_test_support::StopEmulatorOnDrop(state.path().to_path_buf());
    let mut c = xtask(&r, &["--local", "whoami", "dev"]);
    c.env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("FERRY_LOCAL_DIR", state.path());
    let (code, out, err) = run(&mut c, None);
    let down = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["local", "down"])
        .env("FERRY_LOCAL_DIR", state.path())
        .output()
        .unwrap();
    assert!(down.status.success());
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("local: started the AWS emulator at http://127.0.0.1:"),
        "{err}"
    );
    assert!(out.contains("(local emulator)"), "{out}");
}

/// `exec`: output that cannot be written fails the command; SIGTERM (a CI runner stopping the
/// job) is passed on to the command, which holds the stage's credentials, instead of leaving it
/// running on its own.
#[test]
fn exec_passes_sigterm_on_and_fails_when_its_output_cannot_be_written() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let r = repo("exec-signals");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = xtask(&r, &["exec", "dev", "--", "sh", "-c", "echo hi"])
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("failed to write to stdout"), "{err}");
    // Bytes that are not UTF-8 (a dump, an archive) come out as they went in (before, each
    // became U+FFFD: a file piped through exec came out broken).
    let bytes = xtask(
        &r,
        &[
            "exec",
            "dev",
            "--",
            "printf",
            r"\351\000\377 binary\n\303\050",
        ],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(bytes.status.code(), Some(0));
    assert_eq!(bytes.stdout, b"\xe9\x00\xff binary\n\xc3\x28");
    // `param set` refuses a NUL byte; one another tool wrote is named by exec, which runs
    // nothing (before: "nul byte found in provided data", naming nothing).
    let (code, _, err) = run(
        &mut xtask(&r, &["param", "set", "dev", "nul"]),
        Some("a\0b"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("holds a NUL byte"), "{err}");
    let ssm = aws_sdk_ssm::Client::new(&crate::common::config());
    crate::common::rt()
        .block_on(
            ssm.put_parameter()
                .name("/cli-exec-signals/dev/nul")
                .value("a\0b")
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .overwrite(true)
                .send(),
        )
        .unwrap();
    let (code, out, err) = run(
        &mut xtask(&r, &["exec", "dev", "--", "sh", "-c", "echo ran"]),
        None,
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("ran"), "{out}");
    assert!(
        err.contains("FERRY_PARAM_NUL would hold a NUL byte, which no environment variable can: nothing was run"),
        "{err}"
    );
    crate::common::rt()
        .block_on(
            ssm.delete_parameter()
                .name("/cli-exec-signals/dev/nul")
                .send(),
        )
        .unwrap();

    let pid_file = r.path().join("child.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let mut ferry = xtask(&r, &["exec", "dev", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let child: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        Command::new("kill")
            .args(["-TERM", &ferry.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = ferry.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = ferry.kill();
            panic!("exec did not end after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let alive = std::fs::read_to_string(format!("/proc/{child}/stat"))
        .is_ok_and(|s| s[s.rfind(')').unwrap() + 1..].split_whitespace().next() != Some("Z"));
    assert!(!alive, "the command (pid {child}) was stopped with Ferry");
}

/// `exec`: SIGINT (Ctrl-C; GitHub Actions cancels with it) and SIGHUP (a closed terminal) are
/// passed on to the command too, and Ferry goes on relaying its output and waits for it, so its
/// cleanup runs and is seen. Before, Ferry died at once, leaving the command (with the stage's
/// credentials) running on its own, or cutting the pipe its cleanup wrote to.
#[test]
fn exec_passes_sigint_and_sighup_on_and_waits_for_the_cleanup() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let r = repo("exec-sigint");
    for signal in ["-INT", "-HUP"] {
        let pid_file = r.path().join("child.pid");
        let _ = std::fs::remove_file(&pid_file);
        let script = format!(
            "trap 'sleep 0.5; echo cleaned up; exit 3' INT HUP; echo $$ > {}; while :; do sleep 0.2; done",
            pid_file.display()
        );
        let mut ferry = xtask(&r, &["exec", "dev", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pid_file.exists() {
            assert!(Instant::now() < deadline, "the command never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            Command::new("kill")
                .args([signal, &ferry.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while ferry.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = ferry.kill();
                panic!("exec did not end after {signal}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = ferry.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{signal}: {stdout}{stderr}");
        assert!(stdout.contains("cleaned up"), "{signal}: {stdout}{stderr}");
        assert!(stderr.contains("exit status: 3"), "{signal}: {stderr}");
    }
    // A command that does not end on Ctrl-C is stopped by a second one.
    let pid_file = r.path().join("stubborn.pid");
    let script = format!(
        "trap '' INT; echo $$ > {}; while :; do sleep 0.2; done",
        pid_file.display()
    );
    let mut ferry = xtask(&r, &["exec", "dev", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = ferry.id().to_string();
    let interrupt = || Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(interrupt().success());
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        ferry.try_wait().unwrap().is_none(),
        "a first Ctrl-C is the command's to take"
    );
    assert!(interrupt().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = ferry.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = ferry.kill();
            panic!("exec did not end after a second Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
}

/// `exec` gives the command the stage's credentials and endpoint alone: the shell's old-style
/// session token (which the AWS CLI reads first), its per-service endpoints (which would send
/// the command's requests elsewhere than `--local`'s emulator) and GitHub's OIDC token request
/// are not passed on.
#[test]
fn exec_passes_on_no_credential_or_endpoint_of_the_shell() {
    let r = repo("exec-env");
    let mut c = xtask(
        &r,
        &[
            "exec",
            "dev",
            "--",
            "sh",
            "-c",
            "env | grep -E '^(AWS_SECURITY_TOKEN|AWS_ENDPOINT_URL_DYNAMODB|AWS_ROLE_ARN|ACTIONS_ID_TOKEN_REQUEST_TOKEN|AWS_ENDPOINT_URL)=' | sort",
        ],
    );
    c.env("AWS_SECURITY_TOKEN", "ShellToken0001")
        .env("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/other")
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GhOidc0001");
    let (code, out, err) = run(&mut c, None);
    assert_eq!(code, 0, "{out}{err}");
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(names, ["AWS_ENDPOINT_URL"], "{out}");
}

/// `param` output is masked like every output: a stack that copied a secret into a String
/// parameter does not show it through `param list`; `--show-secrets` alone shows values. A value
/// typed on the command line by mistake is refused without being repeated (it would be in the
/// build log).
#[test]
fn param_output_is_masked_and_a_value_on_the_command_line_is_never_repeated() {
    let r = repo("param-mask");
    let secret = "Pl4nted-S3cret-Value-0042";
    let (code, _, err) = run(
        &mut xtask(&r, &["param", "set", "dev", "db/password", "--secure"]),
        Some(secret),
    );
    assert_eq!(code, 0, "{err}");
    crate::common::put_parameter("/cli-param-mask/dev/copy", secret);
    let (code, out, err) = run(&mut xtask(&r, &["param", "list", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(secret), "{out}");
    assert!(out.contains("/cli-param-mask/dev/copy"), "{out}");
    let (code, out, _) = run(
        &mut xtask(&r, &["param", "list", "dev", "--show-secrets"]),
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains(secret), "{out}");
    // Rotated: a String still holding the earlier value (copied before the rotation), and a
    // command given the stage's parameters that prints it, are masked too.
    let (code, _, err) = run(
        &mut xtask(
            &r,
            &[
                "param",
                "set",
                "dev",
                "db/password",
                "--secure",
                "--overwrite",
            ],
        ),
        Some("Rotated-S3cret-Value-0043"),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&mut xtask(&r, &["param", "list", "dev"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("/cli-param-mask/dev/copy") && !out.contains(secret),
        "{out}"
    );
    let (code, out, err) = run(&mut xtask(&r, &["param", "get", "dev", "copy"]), None);
    assert_eq!((code, out.as_str()), (0, "****\n"), "{err}");
    let (code, out, err) = run(
        &mut xtask(
            &r,
            &[
                "exec",
                "dev",
                "--",
                "sh",
                "-c",
                "echo \"copy=$FERRY_PARAM_COPY\"",
            ],
        ),
        None,
    );
    assert_eq!((code, out.as_str()), (0, "copy=****\n"), "{err}");
    // The history cannot be read (not allowed): nothing is printed, and the command does not
    // run, rather than show an earlier secret in clear.
    let refusing = crate::common::refusing_ssm("GetParameterHistory", "db/password");
    for args in [
        &["param", "get", "dev", "copy"][..],
        &["param", "list", "dev"],
        &[
            "exec",
            "dev",
            "--",
            "sh",
            "-c",
            "echo \"copy=$FERRY_PARAM_COPY\"",
        ],
    ] {
        let mut c = xtask(&r, args);
        c.env("AWS_ENDPOINT_URL", refusing.endpoint());
        let (code, out, err) = run(&mut c, None);
        assert_eq!(code, 1, "{args:?}: {out}\n{err}");
        assert!(
            out.is_empty() && !err.contains(secret),
            "{args:?}: {out}\n{err}"
        );
        assert!(err.contains("not allowed here"), "{args:?}: {err}");
    }
    let (code, out, err) = run(
        &mut xtask(&r, &["param", "set", "dev", "other", secret]),
        None,
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("param set takes the value from standard input only"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains(secret), "{out}{err}");
}

/// A long secret through `base64`, which wraps at 76 columns: masked on every line.
#[test]
fn a_long_secret_wrapped_by_base64_is_masked_on_every_line() {
    use base64::Engine as _;
    let r = repo("mask-wrapped");
    let secret = "a-long-api-token-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ";
    run(
        &mut xtask(&r, &["param", "set", "dev", "long-token", "--secure"]),
        Some(secret),
    );
    let (code, out, err) = run(
        &mut xtask(
            &r,
            &[
                "exec",
                "dev",
                "--",
                "sh",
                "-c",
                r#"printf 'user:%s' "$FERRY_PARAM_LONG_TOKEN" | base64"#,
            ],
        ),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() >= 2, "wrapped: {out}");
    let own = base64::engine::general_purpose::STANDARD.encode(format!("user:{secret}"));
    for start in 8..own.len() - 16 {
        assert!(!out.contains(&own[start..start + 16]), "{out}");
    }
    assert!(out.contains("****"), "{out}");
}

/// A one-character secret is masked where it stands alone in a command's output, but the exit
/// status Ferry reports is its own: `exit status: 1` stays readable.
#[test]
fn a_short_secret_does_not_hide_the_exit_status_of_exec() {
    let r = repo("mask-status");
    run(
        &mut xtask(&r, &["param", "set", "dev", "flag", "--secure"]),
        Some("1"),
    );
    let (code, _, err) = run(
        &mut xtask(
            &r,
            &[
                "exec",
                "dev",
                "--",
                "sh",
                "-c",
                r#"echo "flag is $FERRY_PARAM_FLAG"; exit 1"#,
            ],
        ),
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exit status: 1; its last lines:"), "{err}");
    assert!(err.contains("flag is ***"), "{err}");
    assert!(!err.contains("flag is 1"), "{err}");
    // A command that printed nothing: said so, not an empty block of last lines.
    let (code, _, err) = run(&mut xtask(&r, &["exec", "dev", "--", "false"]), None);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`false` exit status: 1 (it printed nothing)"),
        "{err}"
    );
}
