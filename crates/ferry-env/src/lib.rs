#![doc = include_str!("../README.md")]

/// The stage's name as given (`dev`, or a branch name for a preview stage).
pub const STAGE: &str = "FERRY_STAGE";
/// The stage's id: what stack and resource names contain (a preview stage's sanitised name).
pub const STAGE_ID: &str = "FERRY_STAGE_ID";
/// The stage's region.
pub const REGION: &str = "FERRY_REGION";
/// The project's name (`[project] name` of `ferry.toml`).
pub const PROJECT: &str = "FERRY_PROJECT";
/// The service whose command runs.
pub const SERVICE: &str = "FERRY_SERVICE";
/// A JSON file `{"<service>": {"<Key>": "<value>"}}`: the stack outputs of the service under test
/// and of each service it depends on.
pub const OUTPUTS_FILE: &str = "FERRY_OUTPUTS_FILE";
/// Prefix of one variable per stack output: `FERRY_OUTPUT_<SERVICE>_<KEY>`.
pub const OUTPUT_PREFIX: &str = "FERRY_OUTPUT_";
/// Prefix of one variable per SSM parameter under the stage's path (`exec` only):
/// `FERRY_PARAM_<NAME>`.
pub const PARAM_PREFIX: &str = "FERRY_PARAM_";
/// `SOURCE_DATE_EPOCH` for every build and package command: 1980-01-01, the earliest time a zip
/// holds, so that tools which honour it embed no build time in what they make.
pub const SOURCE_DATE_EPOCH: (&str, &str) = ("SOURCE_DATE_EPOCH", "315532800");

/// Who a child runs for: the variables every child of a stage gets.
#[derive(Debug, Clone, Copy)]
pub struct StageVars<'a> {
    pub project: &'a str,
    pub stage: &'a str,
    pub stage_id: &'a str,
    pub region: &'a str,
}

impl StageVars<'_> {
    /// `FERRY_PROJECT`, `FERRY_STAGE`, `FERRY_STAGE_ID`, `FERRY_REGION`.
    pub fn vars(&self) -> [(&'static str, String); 4] {
        [
            (PROJECT, self.project.to_string()),
            (STAGE, self.stage.to_string()),
            (STAGE_ID, self.stage_id.to_string()),
            (REGION, self.region.to_string()),
        ]
    }
}

/// A name part as a variable name part: ASCII letters and digits upper-cased, anything else `_`.
fn upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `FERRY_OUTPUT_<SERVICE>_<KEY>` of one stack output.
pub fn output_var(service: &str, key: &str) -> String {
    format!("{OUTPUT_PREFIX}{}_{}", upper(service), upper(key))
}

/// The `FERRY_OUTPUT_*` variable of each `(service, key)` output, with the outputs that give it:
/// more than one where names differ only in case or in characters other than letters and
/// digits (`Url` and `URL`, which CloudFormation tells apart). Such a variable stands for none
/// of them: set, the last would stand for all.
pub fn output_vars<'a>(
    outputs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> std::collections::BTreeMap<String, Vec<(&'a str, &'a str)>> {
    let mut vars = std::collections::BTreeMap::<String, Vec<_>>::new();
    for (service, key) in outputs {
        vars.entry(output_var(service, key))
            .or_default()
            .push((service, key));
    }
    vars
}

/// `FERRY_PARAM_<NAME>` of an SSM parameter `name` under the stage's `path`:
/// `/shop/dev/db/password` under `/shop/dev/` → `FERRY_PARAM_DB_PASSWORD`.
pub fn param_var(path: &str, name: &str) -> String {
    let rel = name
        .strip_prefix(path.trim_end_matches('/'))
        .unwrap_or(name)
        .trim_start_matches('/');
    format!("{PARAM_PREFIX}{}", upper(rel))
}

/// What lets a process get credentials of its own without AWS's variables: GitHub Actions'
/// OIDC token request (a script could mint a token and assume any role that trusts the
/// repository's workflows).
pub const CREDENTIAL_SOURCES: [&str; 2] = [
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
];

/// Whether `name` belongs to a stage: its credentials, region or profile (`AWS_*`, and what
/// gets credentials otherwise, [`CREDENTIAL_SOURCES`]) or Ferry's stage variables. A
/// stage-independent child (a package build, a script) must not inherit these from Ferry's own
/// environment.
pub fn is_stage_variable(name: &str) -> bool {
    name.starts_with("AWS_")
        || CREDENTIAL_SOURCES.contains(&name)
        || [STAGE, STAGE_ID, REGION, PROJECT, SERVICE, OUTPUTS_FILE].contains(&name)
        || name.starts_with(OUTPUT_PREFIX)
        || name.starts_with(PARAM_PREFIX)
}

/// What a stage-independent child (a build, a script) gets in place of the AWS setup it could
/// otherwise find on its own, its stage variables removed: the SDKs' and CLIs' credentials and
/// config files pointed at nothing, and the instance metadata service off. Without them a build
/// took the developer's default profile from `~/.aws`, or the machine's role.
pub const NO_AWS_SETUP: [(&str, &str); 3] = [
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The stage variables ([`is_stage_variable`]) in this process's environment: what a
/// stage-independent child (a build, a script) has removed from what it inherits.
pub fn inherited_stage_variables() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_str().is_some_and(is_stage_variable))
        .collect()
}

/// Whether a parameter's or variable's name says it holds a secret (`DbPassword`,
/// `CLIENT_SECRET`, `GithubPat`): one that names where a secret is kept or what it is
/// (`DbSecretArn`, `SecretName`, `TokenTableName`) does not.
pub fn names_a_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    // Also where one is kept on disk (`AWS_SHARED_CREDENTIALS_FILE=/dev/null`, `TOKEN_DIR`).
    let about_it = [
        "arn",
        "name",
        "id",
        "ids",
        "table",
        "ttl",
        "length",
        "path",
        "uri",
        "url",
        "file",
        "files",
        "dir",
        "folder",
        "directory",
        "region",
    ];
    // Rules about secrets, not secrets: `RefreshTokenValidity`, `PasswordPolicy`,
    // `PasswordCharacters`, `GenerateSecret`; switches and durations, by whole words
    // (`USE_SECRETS_MANAGER`, `EnableTokenAuth`, `TOKEN_EXPIRES_IN`, `SECRET_ROTATION_DAYS`,
    // but not `DB_MANAGER_PASSWORD` or `EXPIRING_TOKEN`).
    let rules = ["validity", "policy", "characters"];
    let words = words(name);
    let first = words.first().map(String::as_str);
    let last = words.last().map(String::as_str);
    let switch = matches!(first, Some("use" | "enable" | "disable" | "is" | "has"));
    let size = matches!(
        last,
        Some(
            "manager"
                | "rotation"
                | "expiry"
                | "expiration"
                | "seconds"
                | "secs"
                | "minutes"
                | "hours"
                | "days"
                | "timeout"
        )
    ) || words.iter().any(|w| w == "expires" || w == "expire");
    // By its last word (`API_KEY_ANDROID` names no id), or a name of one word's end
    // (`passwordlength`).
    let about = match words.as_slice() {
        [one] => about_it.iter().any(|s| one.ends_with(s)),
        _ => last.is_some_and(|l| about_it.contains(&l)),
    };
    // Compound words however they are written (`SSH_PRIVATE_KEY`, `JwtSigningKey`).
    let n = n.replace(['_', '-'], "");
    if about
        || rules.iter().any(|w| n.ends_with(w))
        || (n.starts_with("generate") && !n.starts_with("generated"))
        || switch
        || size
    {
        return false;
    }
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "privatekey",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
        // A personal access token (`GithubPat`), a password by a short name (`DbPwd`,
        // `AdminPass`), a key that signs or encrypts.
        || ["pat", "pwd", "pass"].iter().any(|s| n.ends_with(s))
        || ["signingkey", "encryptionkey", "masterkey", "hmackey", "hmacsecret"]
            .iter()
            .any(|w| n.contains(w))
}

/// Whether a value found where only a name suggests a secret (an environment variable named
/// `DB_PASSWORD`, a JSON secret's field named `channel`) may be one: 8 characters or more, not
/// a number nor the path of a file, and either mixing letters with digits or signs
/// (`Db-Pa55word-0123`) or 16 characters or more. A plain word (`postgres`, `password`,
/// `deployments`) is not: masked wherever it stands, it would garble every message holding it
/// (`aws-node-heroku-postgres`).
pub fn may_be_a_secret_value(value: &str) -> bool {
    let v = value.trim();
    let n = v.chars().count();
    let numeric = v.chars().all(|c| c.is_ascii_digit() || c == '.');
    let path = std::path::Path::new(v);
    // A path that exists, or one under a folder paths start from (random base64 may start
    // with `/` and hold another).
    let roots = [
        "/dev/",
        "/home/",
        "/tmp/",
        "/usr/",
        "/etc/",
        "/var/",
        "/opt/",
        "/root/",
        "/run/",
        "/proc/",
        "/mnt/",
        "/srv/",
        "/Users/",
        "/codebuild/",
        "/github/",
        "~/",
        "./",
        "../",
    ];
    let path_like = (path.is_absolute() && path.exists())
        || (roots.iter().any(|r| v.starts_with(r)) && !v.contains(char::is_whitespace));
    let mixed = v.chars().any(char::is_alphabetic)
        && v.chars()
            .any(|c| c.is_ascii_digit() || !c.is_alphanumeric());
    // An AWS region (`us-east-1`), and a URL of no path nor user (`https://api.example.com`):
    // where something is, not a secret (a webhook's URL, whose path is its token, is one).
    let region = match v.split('-').collect::<Vec<_>>().as_slice() {
        [area, words @ .., number] if !words.is_empty() => {
            ["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn"].contains(area)
                && words.iter().all(|w| {
                    [
                        "gov",
                        "iso",
                        "isob",
                        "isoe",
                        "isof",
                        "east",
                        "west",
                        "north",
                        "south",
                        "central",
                        "northeast",
                        "northwest",
                        "southeast",
                        "southwest",
                    ]
                    .contains(w)
                })
                && number.len() == 1
                && number.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    };
    let origin = v.split_once("://").is_some_and(|(scheme, rest)| {
        scheme.chars().all(|c| c.is_ascii_alphabetic())
            && !rest.contains(['@', '?'])
            && !rest.trim_end_matches('/').contains('/')
    });
    let arn = v.starts_with("arn:");
    n >= 8 && !numeric && !path_like && !region && !origin && !arn && (mixed || n >= 16)
}

/// The environment variables a JavaScript or TypeScript program reads by name
/// (`process.env.CLIENT_SECRET`, `process.env['API_TOKEN']`, `process.env?.X`), each once, in
/// order: a Serverless Framework configuration written as a program (`serverless.ts`) puts
/// their values into the template it compiles, as `${env:…}` does. A name computed at run time
/// is not known here.
pub fn program_env_reads(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (at, found) in text.match_indices("process.env") {
        // Not a part of a longer name (`myprocess.env`, `process.envelope`).
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '.') {
            continue;
        }
        let rest = text[at + found.len()..].trim_start();
        let rest = rest.strip_prefix('?').unwrap_or(rest);
        let name: String = if let Some(r) = rest.strip_prefix('.') {
            r.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
                .collect()
        } else if let Some(r) = rest.strip_prefix('[') {
            let r = r.trim_start();
            match r.chars().next() {
                Some(q @ ('\'' | '"' | '`')) => {
                    let inner = &r[1..];
                    match inner.find(q) {
                        Some(end) if !inner[..end].contains("${") => inner[..end].to_string(),
                        _ => String::new(),
                    }
                }
                _ => String::new(),
            }
        } else {
            String::new()
        };
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    // Destructured: `const { CLIENT_SECRET, API_TOKEN: token = '' } = process.env`.
    let mut from = 0;
    while let Some(at) = text[from..].find("process.env").map(|i| from + i) {
        from = at + "process.env".len();
        let before = text[..at].trim_end();
        let Some(before) = before.strip_suffix('=') else {
            continue;
        };
        let Some(inner) = before.trim_end().strip_suffix('}') else {
            continue;
        };
        let Some(open) = inner.rfind('{') else {
            continue;
        };
        for part in inner[open + 1..].split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
                .collect();
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The words of a name, lower-cased: split at anything but a letter or digit and where a lower
/// case letter meets an upper case one (`DbPassword`, `DB_PASSWORD`: `db`, `password`).
fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut lower_before = false;
    for c in name.chars() {
        if (!c.is_ascii_alphanumeric() || (c.is_ascii_uppercase() && lower_before))
            && !word.is_empty()
        {
            out.push(std::mem::take(&mut word));
        }
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        }
        lower_before = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Whether a line a child process printed says an error, as the tools Ferry runs word one:
/// the Serverless Framework's `✖` and `Error:` (also inside: `TypeError:`, `Serverless Error:`), npm's `npm error`
/// (`npm ERR!` before npm 10), yarn's `error …`, pnpm's `ERR_PNPM_…`. A failure's message shows
/// the first such line and a few after it besides the last lines, as the cause often comes
/// first, then pages of usage text or a stack trace.
pub fn says_error(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('✖')
        || t.contains("Error:")
        || t.starts_with("npm error")
        || t.starts_with("npm ERR!")
        || t.starts_with("error ")
        || t.contains("ERR_PNPM_")
        // esbuild, webpack, tsc, rustc and cargo, gcc and clang.
        || t.starts_with("✘ [ERROR]")
        || t.starts_with("ERROR in ")
        || t.contains(": error TS")
        || t.starts_with("error[E")
        || t.starts_with("error:")
        || t.contains(": error:")
}

/// How many lines from the first that [`says_error`] a failure's message shows besides the
/// last ones.
pub const ERROR_LINES: usize = 8;

/// What a failure's message shows of a child's output, each line masked and marked `  | `: the
/// first error's lines (`first`: those lines, then how many lie between them and `last`; see
/// [`says_error`]) when they came before the last lines, then the last lines.
pub fn output_excerpt(
    first: Option<(&[String], usize)>,
    last: &[String],
    mask: &dyn Fn(&str) -> String,
) -> String {
    let mut shown: Vec<String> = Vec::new();
    if let Some((lines, between)) = first {
        shown.extend(lines.iter().map(|l| format!("  | {}", mask(l))));
        if between > 0 {
            shown.push(format!("  | … ({between} lines)"));
        }
    }
    shown.extend(last.iter().map(|l| format!("  | {}", mask(l))));
    shown.join("\n")
}

/// A line a child process printed, as Ferry keeps it: without the terminal's control
/// sequences (`ESC [ … m` colours, which tools such as npm, cargo and the Serverless Framework
/// write even into a pipe when told to, the `ESC [ K` that gcc and grep put after them, any
/// other `ESC [` sequence, and `ESC ( B` of `tput sgr0`), so that what Ferry shows of it reads
/// as text, and a secret coloured in it is still the secret the masker knows. Any other control
/// character (a sequence cut short, an `ESC ]` title) stays, for the printer to show as its code.
pub fn without_terminal_codes(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(line);
    }
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let (mut i, mut kept) = (0, 0);
    while i < bytes.len() {
        // The length of a sequence starting at `i`, if one does: ESC [, parameter bytes
        // (0x30-0x3F), intermediate bytes (0x20-0x2F), a final byte (0x40-0x7E); ESC ( or ESC )
        // and the character set's letter. All ASCII, so every cut is a character boundary.
        let len = match bytes[i..] {
            [0x1b, b'[', ref rest @ ..] => {
                let params = rest
                    .iter()
                    .take_while(|b| (0x30..=0x3f).contains(*b))
                    .count();
                let between = rest[params..]
                    .iter()
                    .take_while(|b| (0x20..=0x2f).contains(*b))
                    .count();
                match rest.get(params + between) {
                    Some(f) if (0x40..=0x7e).contains(f) => Some(2 + params + between + 1),
                    _ => None,
                }
            }
            [0x1b, b'(' | b')', c, ..] if c.is_ascii_alphanumeric() => Some(3),
            _ => None,
        };
        match len {
            Some(n) => {
                out.push_str(&line[kept..i]);
                i += n;
                kept = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&line[kept..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_may_be_a_secret_unless_it_is_a_plain_word_a_number_or_a_path() {
        for secret in [
            "Db-Pa55word-0123456789",
            "hunter2hunter2",
            "correcthorsebatterystaple",
            "/AbCdEf+ghIJ==",
            "https://hooks.example.com/services/T0/B0/Xyz0123",
            "https://user:pw0123@db.example.com",
            "db-pa55word-0123456789",
            "my-secretphrase-42",
            "/9j4AbCdEfGh/IjKlMnOp",
        ] {
            assert!(super::may_be_a_secret_value(secret), "{secret}");
        }
        for plain in [
            "postgres",
            "password",
            "deployments",
            "short1",
            "12345678901",
            "/dev/null",
            "/home/runner/work/_temp/gcp-key.json",
            "./secrets/key.pem",
            "us-east-1",
            "us-gov-west-1",
            "arn:aws:iam::123456789012:role/deployer",
            "https://api.example.com/",
        ] {
            assert!(!super::may_be_a_secret_value(plain), "{plain}");
        }
    }

    #[test]
    fn a_programs_reads_of_the_environment_are_found_by_name() {
        let text = r#"
const secret = process.env.CLIENT_SECRET;
const token = process.env['API_TOKEN'] ?? '';
const other = process.env["DB_PASSWORD"], again = process.env.CLIENT_SECRET;
const opt = process.env?.OPTIONAL_KEY;
const spaced = process.env . SPACED;
const tpl = process.env[`TPL_NAME`];
const computed = process.env[name], built = process.env[`X_${stage}`];
const all = process.env;
const { DESTRUCTURED_TOKEN, OTHER_SECRET: other = '' } = process.env;
const notit = myprocess.env.NOT_THIS, nor = process.envelope.NOR_THIS;
"#;
        assert_eq!(
            super::program_env_reads(text),
            [
                "CLIENT_SECRET",
                "API_TOKEN",
                "DB_PASSWORD",
                "OPTIONAL_KEY",
                "SPACED",
                "TPL_NAME",
                "DESTRUCTURED_TOKEN",
                "OTHER_SECRET"
            ]
        );
        assert!(super::program_env_reads("no reads here").is_empty());
    }

    #[test]
    fn terminal_codes_are_taken_out_and_other_controls_kept() {
        use super::without_terminal_codes as plain;
        assert_eq!(plain("plain, ünïcode"), "plain, ünïcode");
        assert_eq!(
            plain(
                "\u{1b}[31mError:\u{1b}[0m bad \u{1b}[1;38;5;208mthing\u{1b}[m \u{1b}[38:5:208mé\u{1b}[m"
            ),
            "Error: bad thing é"
        );
        assert_eq!(plain("s3cr\u{1b}[1met"), "s3cret");
        // gcc's and grep's erase-line after a colour, a cursor move, tput sgr0's charset.
        assert_eq!(
            plain("\u{1b}[01;31m\u{1b}[Kerror:\u{1b}[m\u{1b}[K a\u{1b}[2Jb\u{1b}(B\u{1b}[m"),
            "error: ab"
        );
        // A title (not `ESC [`), a lone escape and a sequence cut short stay.
        assert_eq!(
            plain("a\u{1b}]0;title\u{7}c\u{1b}x\u{1b}[12"),
            "a\u{1b}]0;title\u{7}c\u{1b}x\u{1b}[12"
        );
    }

    use super::*;

    #[test]
    fn lines_that_say_an_error() {
        for yes in [
            "✖ Stack orders-dev failed to deploy",
            "Error: Cannot resolve variable",
            "  TypeError: x is not a function",
            "npm error Missing: bindings@1.5.0 from lock file",
            "npm ERR! code ELIFECYCLE",
            "error An unexpected error occurred: \"https://registry…\"",
            " ERR_PNPM_OUTDATED_LOCKFILE  Cannot install with \"frozen-lockfile\"",
        ] {
            assert!(says_error(yes), "{yes}");
        }
        for yes in [
            "✘ [ERROR] Could not resolve \"x\"",
            "ERROR in ./src/index.ts",
            "src/a.ts(1,7): error TS2322: Type 'string' is not assignable",
            "error[E0425]: cannot find value `x` in this scope",
            "main.c:3:5: error: expected ';'",
        ] {
            assert!(says_error(yes), "{yes}");
        }
        for no in [
            "errors: 0",
            "no error here",
            "Deploying…",
            "npm warn deprecated",
        ] {
            assert!(!says_error(no), "{no}");
        }
    }

    #[test]
    fn output_vars_shared() {
        let vars = output_vars([
            ("api", "Url"),
            ("api", "URL"),
            ("api", "Name"),
            ("db", "Url"),
        ]);
        assert_eq!(
            vars["FERRY_OUTPUT_API_URL"],
            [("api", "Url"), ("api", "URL")]
        );
        assert_eq!(vars["FERRY_OUTPUT_API_NAME"], [("api", "Name")]);
        assert_eq!(vars["FERRY_OUTPUT_DB_URL"], [("db", "Url")]);
        assert_eq!(vars.len(), 3);
    }

    #[test]
    fn names() {
        assert_eq!(output_var("api", "Url"), "FERRY_OUTPUT_API_URL");
        assert_eq!(
            output_var("order-events", "topic.arn"),
            "FERRY_OUTPUT_ORDER_EVENTS_TOPIC_ARN"
        );
        assert_eq!(
            param_var("/shop/dev/", "/shop/dev/db/password"),
            "FERRY_PARAM_DB_PASSWORD"
        );
        assert_eq!(
            param_var("/shop/dev/", "/shop/dev/admin-email"),
            "FERRY_PARAM_ADMIN_EMAIL"
        );
        // A name outside the path keeps all of its parts.
        assert_eq!(param_var("/shop/dev", "/other/x"), "FERRY_PARAM_OTHER_X");
    }

    #[test]
    fn stage_variables() {
        for name in [
            "AWS_PROFILE",
            "FERRY_STAGE",
            "FERRY_STAGE_ID",
            "FERRY_REGION",
            "FERRY_OUTPUT_API_URL",
            "FERRY_PARAM_X",
        ] {
            assert!(is_stage_variable(name), "{name}");
        }
        for name in ["PATH", "HOME", "FERRY_LOCAL_DIR", "CARGO_HOME", "AWSX"] {
            assert!(!is_stage_variable(name), "{name}");
        }
    }
}
