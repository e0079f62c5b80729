//! What `init` takes for a secret, which it never copies into a `service.toml` nor shows in a
//! note: a parameter's name (`DbPassword`, `ApiToken`) or the form of the value passed (a
//! password inside a URL, a token of a well-known service).

/// Whether a value given to a parameter named `name` is a secret, by the name (see
/// [`secret_name`]) or by the value (see [`secret_value`]).
pub(crate) fn looks_secret(name: &str, value: &str) -> bool {
    secret_name(name) || secret_value(value) || (names_a_key(name) && random_looking(value))
}

/// Whether a parameter's name ends in `Key` (`MailgunKey`, `AppKey`), not naming where one is
/// kept (`KeyId`, `KeyArn`, `KeyName` end otherwise): a key, or a key's name (`SshKey`).
fn names_a_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    // A key meant to be seen: a public key, a site key (reCAPTCHA), a publishable key.
    n.ends_with("key")
        && !["public", "site", "publishable"]
            .iter()
            .any(|w| n.contains(w))
}

/// Whether `value` looks like generated key material: 32 or more hex digits (an HMAC key), or
/// 24 or more characters of base64 mixing upper- and lowercase letters and digits. Not a name
/// (`orders-key-2024`), a commit id alone is hex too but is given to no `…Key`.
fn random_looking(value: &str) -> bool {
    let v = value.trim();
    let hex = v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit());
    // Base64 has `/` or (URL-safe) `-`, never both: a path (`alias/MyApp-Prod-Key-2024`) may.
    let base64 = v.len() >= 24
        && !(v.contains('/') && v.contains('-'))
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-'))
        && v.chars().any(|c| c.is_ascii_uppercase())
        && v.chars().any(|c| c.is_ascii_lowercase())
        && v.chars().any(|c| c.is_ascii_digit());
    hex || base64
}

/// Whether `value` is one variable and nothing else (`${ssm:/shop/db}`, `$(TOKEN)`): it names
/// where a value comes from, and holds none.
pub(crate) fn only_variable(value: &str) -> bool {
    let v = value.trim();
    let inner = v
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .or_else(|| v.strip_prefix("$(").and_then(|r| r.strip_suffix(')')));
    inner.is_some_and(|i| !i.contains(['$', '{', '}', '(', ')']) || i.starts_with("ssm:"))
}

/// Whether a value is a secret by its form, whatever the name it is given: a password inside
/// a URL (`postgres://admin:pw@db…`), a Slack or Discord webhook, a private key, or a token of a
/// well-known service by its prefix (GitHub, GitLab, Stripe, Slack, npm, SendGrid, an AWS access
/// key, a Google API key).
pub(crate) fn secret_value(value: &str) -> bool {
    let v = value.trim();
    // `scheme://user:password@host`: a colon in the user part before the host (the last `@`
    // before any space: a password may hold a `/`, written unescaped).
    let password_in_url = v.split_once("://").is_some_and(|(_, rest)| {
        let word = rest.split(char::is_whitespace).next().unwrap_or_default();
        word.rsplit_once('@')
            .is_some_and(|(user, _)| user.split_once(':').is_some_and(|(_, pw)| !pw.is_empty()))
    });
    // `…?password=x`, `Server=db;Password=x;`, a JSON Web Token.
    let lower = v.to_ascii_lowercase();
    let password_field = ["password=", "pwd=", "passwd="].iter().any(|f| {
        lower
            .split(['?', '&', ';', ' '])
            .any(|p| p.starts_with(f) && p.len() > f.len())
    });
    let jwt = v.starts_with("eyJ") && v.split('.').count() == 3 && v.len() > 30;
    // A Sentry DSN carries its key as the URL's user (`https://<key>@o1.ingest.sentry.io/2`,
    // or 32 hex digits at a Sentry of one's own).
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let dsn = v.split_once("://").is_some_and(|(_, rest)| {
        rest.split_once('@').is_some_and(|(user, host)| {
            (user.len() >= 16 && host.contains("sentry.io")) || hex(user, 32)
        })
    });
    // A Mailgun key: `key-` and 32 characters, or (its newer form) `<32 hex>-<8 hex>-<8 hex>`.
    let mailgun = v
        .strip_prefix("key-")
        .is_some_and(|k| k.len() == 32 && k.chars().all(|c| c.is_ascii_alphanumeric()))
        || matches!(v.split('-').collect::<Vec<_>>()[..], [a, b, c] if hex(a, 32) && hex(b, 8) && hex(c, 8));
    // An OpenAI key of the older form carries this marker (`sk-…T3BlbkFJ…`).
    let openai = v.starts_with("sk-") && v.contains("T3BlbkFJ");
    let webhooks = [
        "hooks.slack.com/services/",
        "discord.com/api/webhooks/",
        "discordapp.com/api/webhooks/",
        "outlook.office.com/webhook/",
    ];
    let prefixes = [
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "sk_live_",
        "sk_test_",
        "rk_live_",
        "rk_test_",
        "xoxb-",
        "xoxp-",
        "xoxa-",
        "xoxs-",
        "xapp-",
        "npm_",
        "SG.",
        "AIza",
        // OpenAI (project, service account) and Anthropic keys.
        "sk-proj-",
        "sk-svcacct-",
        "sk-ant-",
    ];
    let aws_key = (v.starts_with("AKIA") || v.starts_with("ASIA"))
        && v.len() == 20
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    password_in_url
        || password_field
        || jwt
        || dsn
        || mailgun
        || openai
        || aws_key
        || v.contains("-----BEGIN")
        || webhooks.iter().any(|w| v.contains(w))
        || prefixes
            .iter()
            .any(|p| v.starts_with(p) && v.len() >= p.len() + 16)
}

pub(crate) use ferry_env::names_a_secret as secret_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_says_a_secret_unless_it_names_where_one_is_kept() {
        for n in [
            "DbPassword",
            "GithubToken",
            "ApiKey",
            "ClientSecret",
            "PrivateKey",
            "GeneratedPassword",
            "TokenGeneratorSecret",
            "USER_PASSWORD",
            "UserToken",
            "DB_MANAGER_PASSWORD",
            "CERT_MANAGER_TOKEN",
            "HOLIDAYS_API_KEY",
            "ROTATION_SECRET",
            "EXPIRING_TOKEN",
            "SSH_PRIVATE_KEY",
            "JWT_SIGNING_KEY",
            "ENCRYPTION_KEY",
            "API_KEY_ANDROID",
            "DB_PASSWORD_OVERRIDE",
            "api_key",
        ] {
            assert!(secret_name(n), "{n}");
        }
        for n in [
            "DbSecretArn",
            "SecretName",
            "TokenTableName",
            "ApiKeyId",
            "Stage",
            "RefreshTokenValidity",
            "defaultPasswordPolicy",
            "passwordPolicyCharacters",
            "GenerateSecret",
            "USE_SECRETS_MANAGER",
            "EnableTokenAuth",
            "TOKEN_EXPIRES_IN",
            "SECRET_ROTATION_DAYS",
            "TokenTimeoutSeconds",
            "AWS_SHARED_CREDENTIALS_FILE",
            "TOKEN_DIR",
            "passwordlength",
            "SECRETS_REGION",
        ] {
            assert!(!secret_name(n), "{n}");
        }
    }

    /// Values that are secrets by their form, whatever their parameter's name; values that only
    /// look alike are not.
    #[test]
    fn secrets_by_the_form_of_their_value() {
        for secret in [
            "postgres://admin:S3cretPassw0rd@db.example.com:5432/app",
            "mongodb+srv://u:p@cluster0.x.mongodb.net",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "github_pat_11ABCDEFG0abcdefghijklmnop",
            "sk_live_abcdefghijklmnop1234",
            "xoxb-1234567890-abcdefghijkl",
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            "AKIAIOSFODNN7EXAMPLE",
            "-----BEGIN RSA PRIVATE KEY-----",
            "postgres://u:ab/cd@h/db",
            "jdbc:postgresql://db/app?user=a&password=hunter2",
            "Server=db;Database=app;User Id=a;Password=hunter2;",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "sk-proj-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789",
            "sk-ant-api03-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789",
            "key-0123456789abcdef0123456789abcdef",
            "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
            "0123456789abcdef0123456789abcdef-0123abcd-4567ef01",
            "https://0123456789abcdef0123456789abcdef@o123.ingest.sentry.io/456",
            "https://0123456789abcdef0123456789abcdef@sentry.example.com/7",
            "sk-Ab3dEfGh1jKlMnOpQrStT3BlbkFJUvWxYz0123456789",
        ] {
            assert!(secret_value(secret), "{secret}");
        }
        // Key material given to a `…Key` (an HMAC key, a generated app key); not a name.
        for (name, value) in [
            (
                "HmacKey",
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            ("AppKey", "Zx8vQ2mN4pL7rT1wY5uI9oA3sD6fG0hJ"),
            ("MasterKey", "x"),
        ] {
            assert!(looks_secret(name, value), "{name}");
        }
        for (name, value) in [
            ("BucketKey", "orders-bucket-key-2024"),
            ("KmsKey", "alias/aws/lambda"),
            ("KmsKey", "alias/MyApp-Prod-Key-2024"),
            ("HmacAlgorithm", "SHA256"),
            ("RecaptchaSiteKey", "6LcAbCdEfGhIjKlMnOpQrStUvWxYz012345"),
            ("VapidPublicKey", "BEl62iUYgUivxIkv69yViEuiBIa40HIe8x"),
            ("Version", "0123456789abcdef0123456789abcdef01234567"),
        ] {
            assert!(!looks_secret(name, value), "{name} = {value}");
        }
        for plain in [
            "https://user@docs.example.com/x",
            "ghp_",
            "sk_live_x",
            "AKIA-not-a-key",
            "key-not-hex",
            "sk-orders-service-prod",
            "https://docs@sentry.io",
            "/shop/dev/db",
            "arn:aws:iam::123456789012:role/x",
        ] {
            assert!(!secret_value(plain), "{plain}");
        }
        assert!(looks_secret("GithubPat", "x") && !looks_secret("Path", "x"));
        for name in ["DbPwd", "AdminPass", "JwtSigningKey", "EncryptionKeyValue"] {
            assert!(looks_secret(name, "x"), "{name}");
        }
        assert!(only_variable("${ssm:/shop/db}") && only_variable("$(TOKEN)"));
        assert!(!only_variable("pw-${sls:stage}") && !only_variable("${a}${b}"));
    }
}
