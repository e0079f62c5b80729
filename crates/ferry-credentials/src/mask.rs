//! One masker for every secret: SecureString values and credentials are registered as they are
//! loaded, and every piece of output Ferry prints (logs, errors, progress, JSON, reports, the
//! captured output of child processes) goes through [`Masker::mask`].
//!
//! A secret is hidden as it is, and (when it is 8 characters or longer) also in the forms in
//! which programs commonly print it: inside base64 (an `Authorization: Basic` header, a Kubernetes
//! secret, a JWT), URL-encoded (a query string, a form body) and escaped inside a JSON string.
//! Base64 is taken at each of the three offsets a secret can have inside a longer encoded text,
//! less the characters it shares with its neighbours (at most a few bits of the secret stay
//! visible at either end). Shorter secrets are hidden as they are only: their encoded pieces
//! would match ordinary text too often.

use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a secret is replaced with.
pub const MASK: &str = "****";

/// A secret's base64 longer than this may be wrapped across lines (`base64` wraps at 76
/// columns, after what precedes it): its runs of [`WRAPPED`] characters are masked too.
const WRAP_FROM: usize = 48;
/// See [`WRAP_FROM`].
const WRAPPED: usize = 16;

/// Secrets shorter than this are masked only where they stand alone (see [`Masker::mask`]).
const MIN_ANYWHERE: usize = 4;

/// Secrets shorter than this are hidden only as they are, and a text holding one inside
/// something longer is not taken to hold a secret (see [`Masker::holds_secret`]).
const MIN_ENCODED: usize = 8;

/// RFC 3986's unreserved characters stay; everything else is percent-encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Python's `urllib.parse.quote` also leaves `/` as it is.
const PATH_QUOTE: &AsciiSet = &RFC3986.remove(b'/');

/// JavaScript's `encodeURIComponent` also leaves `!'()*` as they are.
const URI_COMPONENT: &AsciiSet = &RFC3986
    .remove(b'!')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*');

/// Shared, cheap to clone; registering from any thread is fine.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The secrets as registered.
    secrets: Vec<String>,
    /// What is replaced: every secret and its encoded forms, longest first.
    forms: Vec<String>,
    /// Runs of a long secret's base64, which a wrapped line may hold only part of: every
    /// stretch of a line they cover, overlapping or not, is masked as one.
    pieces: Vec<String>,
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value. Empty values are ignored. A secret of several lines (a PEM
    /// key) is also registered line by line, as output is masked a line at a time: each line of
    /// 8 characters or more, but the armour (`-----BEGIN …-----`), which is no secret.
    pub fn register(&self, secret: &str) {
        let secret = secret.trim();
        if secret.is_empty() {
            return;
        }
        // A secret holding JSON (a Secrets Manager secret: `{"username", "password", …}`):
        // each of its string values as well, which a program prints alone, but those of keys
        // that describe where the secret is used (`username`, `engine`, `host`: an RDS
        // secret's `postgres` masked in every message would garble them).
        if secret.starts_with(['{', '['])
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(secret)
        {
            let mut strings = Vec::new();
            json_strings(&value, None, &mut strings);
            for (key, s) in strings {
                // A field named as a secret (`password`) whatever its value (of 8 characters
                // or more); another only when its value may be one (not a plain word).
                let named = key.is_some_and(ferry_env::names_a_secret);
                if (named && s.trim().chars().count() >= MIN_ENCODED)
                    || ferry_env::may_be_a_secret_value(&s)
                {
                    self.register(&s);
                }
            }
        }
        if secret.contains('\n') {
            for line in secret.lines().map(str::trim) {
                if line.chars().count() >= MIN_ENCODED && !line.starts_with("-----") {
                    self.register(line);
                }
            }
        }
        let mut inner = self.inner.write().expect("masker lock");
        if inner.secrets.iter().any(|x| x == secret) {
            return;
        }
        inner.secrets.push(secret.to_string());
        for form in forms(secret) {
            if !inner.forms.contains(&form) {
                inner.forms.push(form);
            }
        }
        for piece in base64_pieces(secret) {
            if !inner.pieces.contains(&piece) {
                inner.pieces.push(piece);
            }
        }
        // Longest first, so a secret containing another is masked whole.
        inner.forms.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }

    /// `text` with every registered secret, in any of its forms, replaced by [`MASK`].
    ///
    /// A secret shorter than 4 characters (a PIN, a `1`) is replaced only where it stands alone,
    /// between characters that are not letters or digits: everywhere, it would turn every `x`
    /// of the output into `****`, and a secret that short is no secret inside a word.
    pub fn mask(&self, text: &str) -> String {
        let inner = self.inner.read().expect("masker lock");
        let mut out = text.to_string();
        for s in &inner.forms {
            if !out.contains(s.as_str()) {
                continue;
            }
            out = if s.chars().count() < MIN_ANYWHERE {
                replace_alone(&out, s)
            } else {
                out.replace(s.as_str(), MASK)
            };
        }
        if !inner.pieces.is_empty() {
            out = mask_pieces(&out, &inner.pieces);
        }
        if out.contains(CUT) {
            out = mask_cut(&out, &inner.forms);
        }
        out
    }

    /// [`mask`](Self::mask) of bytes that may not be UTF-8 (a command's output: a dump, an
    /// archive): each run of valid UTF-8 is masked, every other byte passed on as it is (a
    /// secret, being text, is always inside such a run). Decoded whole, each such byte became
    /// three (U+FFFD), and a binary file piped through `exec` came out broken.
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for chunk in bytes.utf8_chunks() {
            out.extend_from_slice(self.mask(chunk.valid()).as_bytes());
            out.extend_from_slice(chunk.invalid());
        }
        out
    }

    /// Whether `text` is a registered secret, or holds one (in any of its forms) of at least 8
    /// characters. A shorter secret inside a longer text (`1` in a URL) is too likely to be a
    /// coincidence to refuse the text for: [`mask`](Self::mask) still hides it wherever it is
    /// printed.
    pub fn holds_secret(&self, text: &str) -> bool {
        let inner = self.inner.read().expect("masker lock");
        inner.forms.iter().any(|s| {
            text.trim() == s || (s.chars().count() >= MIN_ENCODED && text.contains(s.as_str()))
        })
    }

    /// How many secrets are registered (each counted once, whatever its forms).
    pub fn len(&self) -> usize {
        self.inner.read().expect("masker lock").secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The secret and, when it is long enough, the forms programs print it in.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    if secret.chars().count() < MIN_ENCODED {
        return out;
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        out.extend(base64_own(secret, engine));
    }
    let rfc3986 = utf8_percent_encode(secret, RFC3986).to_string();
    let percent = [
        // A form body (application/x-www-form-urlencoded) writes a space as `+`.
        rfc3986.replace("%20", "+"),
        utf8_percent_encode(secret, URI_COMPONENT).to_string(),
        // Python's `urllib.parse.quote` leaves `/` as it is (common in AWS secret keys).
        utf8_percent_encode(secret, PATH_QUOTE).to_string(),
        rfc3986,
    ];
    for p in percent {
        // Some encoders write the hexadecimal digits in lower case (`%2f`).
        out.push(lower_hex(&p));
        out.push(p);
    }
    // Inside a JSON string, as serde and JavaScript write it, as Go does (`<`, `>` and `&` as
    // \u003c…), and as Python's json.dumps does by default (every non-ASCII character as \uXXXX).
    let json = serde_json::to_string(secret).expect("a string serialises");
    let json = json[1..json.len() - 1].to_string();
    out.push(
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029"),
    );
    out.push(json);
    out.push(ascii_json(secret));
    out.retain(|f| f.chars().count() >= MIN_ENCODED || f == secret);
    out.sort();
    out.dedup();
    out
}

/// The runs of [`WRAPPED`] characters of a long secret's base64 (at each offset), which
/// `base64` cuts across lines at 76 columns: a line holding part of it holds some of them.
fn base64_pieces(secret: &str) -> Vec<String> {
    let mut out: Vec<String> = base64_own(secret, &STANDARD_NO_PAD)
        .iter()
        .filter(|own| own.len() > WRAP_FROM)
        .flat_map(|own| (0..=own.len() - WRAPPED).map(|i| own[i..i + WRAPPED].to_string()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The characters of `secret`'s base64 (by `engine`) that are its own wherever it starts in a
/// longer encoded text: it starts 0, 1 or 2 bytes into a 3-byte group, and the characters that
/// also carry bits of the bytes before it (0, 2 or 3 of them) and the last one, when it carries
/// bits of the bytes after it, differ from text to text, so they are left out.
fn base64_own(secret: &str, engine: &base64::engine::GeneralPurpose) -> [String; 3] {
    [0usize, 1, 2].map(|shift| {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(secret.as_bytes());
        let skip = [0, 2, 3][shift];
        let partial_end = usize::from(shifted.len() % 3 != 0);
        let encoded = engine.encode(&shifted);
        encoded[skip..encoded.len() - partial_end].to_string()
    })
}

/// `text` with every stretch that `pieces` cover (overlapping or touching) replaced by one
/// [`MASK`].
fn mask_pieces(text: &str, pieces: &[String]) -> String {
    let mut covered = vec![false; text.len()];
    let mut any = false;
    for p in pieces {
        for (at, _) in text.match_indices(p.as_str()) {
            covered[at..at + p.len()].fill(true);
            any = true;
        }
    }
    if !any {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_mask = false;
    for (i, c) in text.char_indices() {
        if covered[i] {
            if !in_mask {
                out.push_str(MASK);
                in_mask = true;
            }
        } else {
            in_mask = false;
            out.push(c);
        }
    }
    out
}

/// Every string inside `value` (the values of objects and arrays, at any depth) with the key
/// it stands under, but the values of keys that describe where a secret is used
/// ([`DESCRIPTIVE_KEYS`]).
fn json_strings<'v>(
    value: &'v serde_json::Value,
    key: Option<&'v str>,
    out: &mut Vec<(Option<&'v str>, String)>,
) {
    match value {
        serde_json::Value::String(s) => out.push((key, s.clone())),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, key, out)),
        // A descriptive key's own value is left out, not what lies further in (a password
        // under `database`).
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, v)| {
                let k = k.to_ascii_lowercase().replace(['_', '-'], "");
                !(v.is_string() && DESCRIPTIVE_KEYS.contains(&k.as_str()))
            })
            .for_each(|(k, v)| json_strings(v, Some(k), out)),
        _ => {}
    }
}

/// Keys of a JSON secret (lower case, without `_` and `-`) whose values say where the secret
/// is used, not what it is: Secrets Manager's RDS, Redshift and DocumentDB secrets' own, a
/// Google service account key's, a chat webhook's channel.
const DESCRIPTIVE_KEYS: &[&str] = &[
    "type",
    "projectid",
    "clientemail",
    "clientid",
    "authuri",
    "tokenuri",
    "authproviderx509certurl",
    "clientx509certurl",
    "universedomain",
    "channel",
    "email",
    "username",
    "user",
    "engine",
    "host",
    "hostname",
    "hosts",
    "port",
    "dbname",
    "database",
    "dbinstanceidentifier",
    "dbclusteridentifier",
    "region",
    "endpoint",
    "ssl",
    "sslmode",
    "masterarn",
];

/// How Ferry marks a text it cut short (an error page quoted in part).
pub const CUT: char = '…';

/// `text` with the start of a secret cut short by a clip masked: the run of characters right
/// before each [`CUT`] that begins one of `forms` (8 characters or more), at least 4 of it (a
/// quoted error page cut inside an echoed token showed its first 41 characters).
fn mask_cut(text: &str, forms: &[String]) -> String {
    let longest = forms.iter().map(|f| f.len()).max().unwrap_or(0);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(CUT) {
        let before = &rest[..at];
        // The longest end of `before` that starts a secret (no longer than the longest).
        let cut = before
            .char_indices()
            .filter(|(i, _)| before.len() - i < longest)
            .map(|(i, _)| &before[i..])
            .filter(|end| end.chars().count() >= MIN_ANYWHERE)
            .find(|end| {
                forms
                    .iter()
                    .any(|f| f.chars().count() >= MIN_ENCODED && f.starts_with(end) && f != end)
            });
        // A URL shown by its host (`https://hooks.example.com/…`, as Ferry shows a webhook)
        // was cut there on purpose: its host is no secret.
        let host_only = |end: &str| {
            end.split_once("://").is_some_and(|(_, rest)| {
                rest.ends_with('/') && rest.matches('/').count() == 1 && !rest.contains('@')
            })
        };
        match cut.filter(|end| !host_only(end)) {
            Some(end) => {
                out.push_str(&before[..before.len() - end.len()]);
                out.push_str(MASK);
            }
            None => out.push_str(before),
        }
        out.push(CUT);
        rest = &rest[at + CUT.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// `text` with each occurrence of `needle` that no letter or digit touches replaced by
/// [`MASK`].
fn replace_alone(text: &str, needle: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(needle) {
        let prior = rest[..at].chars().next_back().or(before);
        let after = rest[at + needle.len()..].chars().next();
        out.push_str(&rest[..at]);
        if word(prior) || word(after) {
            out.push_str(needle);
        } else {
            out.push_str(MASK);
        }
        before = needle.chars().next_back();
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    out
}

/// `encoded` with the hexadecimal digits of its `%XX` escapes in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            if c == '%' {
                hex_left = 2;
            }
            out.push(c);
        }
    }
    out
}

/// `secret` escaped inside a JSON string with only ASCII characters (`\u00e9`, surrogate pairs
/// beyond the Basic Multilingual Plane), as Python writes it.
fn ascii_json(secret: &str) -> String {
    let json = serde_json::to_string(secret).expect("a string serialises");
    let mut out = String::with_capacity(json.len());
    for c in json[1..json.len() - 1].chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::engine::general_purpose::STANDARD;

    /// A quoted error page cut short inside an echoed secret showed its start: the start of a
    /// secret right before the cut mark is masked; a word that merely starts alike and is not
    /// cut, or a start shorter than 4 characters, is not.
    /// Output that is not UTF-8 (a dump, an archive) is passed on byte for byte but the
    /// secrets: before, each such byte became U+FFFD, three bytes.
    #[test]
    fn bytes_that_are_not_utf8_pass_unchanged_and_secrets_are_masked() {
        let m = Masker::new();
        m.register("Byte-Secret-0123");
        let mut input = vec![0xe9, 0x00, 0xff, b' '];
        input.extend_from_slice(b"key=Byte-Secret-0123 ");
        input.extend_from_slice(&[0xc3, 0x28, 0x80, b'\n']);
        let mut expected = vec![0xe9, 0x00, 0xff, b' '];
        expected.extend_from_slice(b"key=**** ");
        expected.extend_from_slice(&[0xc3, 0x28, 0x80, b'\n']);
        assert_eq!(m.mask_bytes(&input), expected);
        let random: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        assert_eq!(m.mask_bytes(&random), random);
    }

    #[test]
    fn a_secret_cut_short_by_a_clip_is_masked() {
        let m = Masker::new();
        m.register("Pr0xy-Echoed-Secret-0123456789");
        assert_eq!(
            m.mask("HTTP 502: `refused, value Pr0xy-Ech…` (see above)"),
            "HTTP 502: `refused, value ****…` (see above)"
        );
        assert_eq!(
            m.mask("refused Pr0xy-Echoed-Secret-0123456789, again Pr0xy…"),
            "refused ****, again ****…"
        );
        assert_eq!(m.mask("a Pr0xy of ours…"), "a Pr0xy of ours…");
        assert_eq!(m.mask("value Pr0…"), "value Pr0…");
        assert_eq!(m.mask("Pr0xy-Ech"), "Pr0xy-Ech", "not cut");
        // A URL Ferry shows by its host alone.
        m.register("https://hooks.example.com/services/T0/B0/HookTokenSecret0123456789");
        assert_eq!(
            m.mask("notified https://hooks.example.com/…, ssm:/x"),
            "notified https://hooks.example.com/…, ssm:/x"
        );
        // Its token, registered alone as Ferry registers a webhook's pieces, cut short.
        m.register("HookTokenSecret0123456789");
        assert_eq!(
            m.mask("answered HTTP 404: \"no such hook /services/T0/B0/HookTokenSecret0123…\""),
            "answered HTTP 404: \"no such hook /services/T0/B0/****…\""
        );
    }

    /// A secret holding JSON (Secrets Manager's `{"username", "password", …}`) is masked by
    /// each of its string values too, which a connection log prints alone; not those of keys
    /// that say where it is used (`postgres` as an RDS secret's engine or user, its host), nor
    /// numbers (a port).
    #[test]
    fn a_json_secrets_values_are_masked_alone() {
        let m = Masker::new();
        m.register(r#"{"username": "postgres_admin", "password": "Sm-Pa55word-0123456789", "engine": "postgres", "host": "db-primary.internal", "port": 5432, "dbname": "app", "extra": {"api_key": "Sm-ApiKey-0123456789"}}"#);
        assert_eq!(
            m.mask("connecting as postgres_admin with password Sm-Pa55word-0123456789 to db-primary.internal:5432 (postgres)"),
            "connecting as postgres_admin with password **** to db-primary.internal:5432 (postgres)"
        );
        assert_eq!(m.mask("key Sm-ApiKey-0123456789"), "key ****");
        // A Google service account key: its private key, not where it is used; a field not
        // named as a secret only when its value may be one (not a Slack channel's name).
        let m = Masker::new();
        m.register(r#"{"type": "service_account", "project_id": "shop-prod-123", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n", "client_email": "ci@shop-prod-123.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token", "universe_domain": "googleapis.com"}"#);
        assert_eq!(
            m.mask("uploading to https://storage.googleapis.com/shop-prod-123/app.js as ci@shop-prod-123.iam.gserviceaccount.com"),
            "uploading to https://storage.googleapis.com/shop-prod-123/app.js as ci@shop-prod-123.iam.gserviceaccount.com"
        );
        assert_eq!(m.mask("key MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "key ****");
        let m = Masker::new();
        m.register(r#"{"webhook_url": "https://hooks.example.com/T0/B0/Xyz0123456789", "channel": "deployments", "pin": "hunter22", "note": "plainwords", "database": {"password": "letmeinplease", "host": "db.internal"}}"#);
        assert_eq!(
            m.mask("3 deployments done, plainwords, https://hooks.example.com/T0/B0/Xyz0123456789, pin hunter22, letmeinplease at db.internal"),
            "3 deployments done, plainwords, ****, pin ****, **** at db.internal"
        );
        m.register("{not json: Sm-Other-0123456789}");
        assert_eq!(m.mask("Sm-Other-0123456789"), "Sm-Other-0123456789");
    }

    /// Output is masked a line at a time: a secret of several lines (a PEM key) is masked on
    /// each of its lines, but the armour, which every key shares, is left as it is.
    #[test]
    fn a_secret_of_several_lines_is_masked_on_each() {
        let m = Masker::new();
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\nab\n-----END PRIVATE KEY-----\n";
        m.register(key);
        for line in key.lines() {
            let shown = m.mask(line);
            match line {
                l if l.starts_with("-----") => assert_eq!(shown, l),
                // Too short to tell from ordinary text on its own.
                "ab" => assert_eq!(shown, "ab"),
                _ => assert_eq!(shown, MASK, "{line}"),
            }
        }
        assert_eq!(m.mask(key), format!("{MASK}\n"));
    }

    #[test]
    fn a_secret_inside_base64_is_masked_wherever_it_starts() {
        let secret = "correct-horse-battery";
        let m = Masker::new();
        m.register(secret);
        for prefix in ["", "u", "us", "use", "user:", "Basic user:"] {
            for suffix in ["", "!", "!!", "!!!"] {
                let plain = format!("{prefix}{secret}{suffix}");
                for encoded in [STANDARD.encode(&plain), URL_SAFE_NO_PAD.encode(&plain)] {
                    let line = format!("Authorization: Basic {encoded}");
                    let masked = m.mask(&line);
                    assert!(masked.contains(MASK), "{plain:?}: {masked}");
                    // What stays visible: the header, the encoded neighbours and at most two
                    // characters that mix their bits with the secret's.
                    let visible = masked.len() - MASK.len() - "Authorization: Basic ".len();
                    let neighbours = (prefix.len() + suffix.len()).div_ceil(3) * 4 + 2;
                    assert!(visible <= neighbours + 2, "{plain:?}: {masked}");
                    assert!(m.holds_secret(&line), "{plain:?}");
                }
            }
        }
    }

    #[test]
    fn a_secret_url_encoded_or_escaped_in_json_is_masked() {
        let secret = "p@ss w0rd/+=&x";
        let m = Masker::new();
        m.register(secret);
        for text in [
            "GET /login?token=p%40ss%20w0rd%2F%2B%3D%26x HTTP/1.1",
            "token=p%40ss+w0rd%2F%2B%3D%26x&next=1",
        ] {
            let masked = m.mask(text);
            assert!(
                masked.contains(MASK) && !masked.contains("w0rd"),
                "{masked}"
            );
        }

        // As Python's quote() writes it (`/` left as it is), and in lower-case hex.
        for text in [
            "token=p%40ss%20w0rd/%2B%3D%26x",
            "token=p%40ss%20w0rd%2f%2b%3d%26x",
        ] {
            let masked = m.mask(text);
            assert!(!masked.contains("w0rd"), "{masked}");
        }
        // As Go's encoding/json writes it.
        let go = Masker::new();
        go.register("a<b>&c-long-enough");
        assert_eq!(
            go.mask(r#"{"v":"a\u003cb\u003e\u0026c-long-enough"}"#),
            r#"{"v":"****"}"#
        );

        let secret = "quote\"back\\slash-\u{e9}t\u{e9}-\u{1f600}";
        m.register(secret);
        // As serde and JavaScript write it, and as Python's json.dumps does (ASCII only).
        let serde = serde_json::json!({ "v": secret }).to_string();
        assert_eq!(m.mask(&serde), r#"{"v":"****"}"#);
        let python = r#"{"v": "quote\"back\\slash-\u00e9t\u00e9-\ud83d\ude00"}"#;
        assert_eq!(m.mask(python), r#"{"v": "****"}"#);
    }

    #[test]
    fn a_long_secret_base64_wraps_across_lines_is_masked_on_each() {
        let secret = "a-long-api-token-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ";
        let m = Masker::new();
        m.register(secret);
        for prefix in ["", "user:", "Authorization-Basic-user:"] {
            let encoded = STANDARD.encode(format!("{prefix}{secret}"));
            // As coreutils `base64` prints it: 76 columns a line.
            let lines: Vec<String> = encoded
                .as_bytes()
                .chunks(76)
                .map(|c| m.mask(std::str::from_utf8(c).unwrap()))
                .collect();
            let own = STANDARD.encode(secret);
            for line in &lines {
                // No run of 16 characters of the secret's own encoding is left on a line.
                for start in 0..own.len().saturating_sub(16) {
                    assert!(
                        !line.contains(&own[start..start + 16]),
                        "{prefix:?}: {line}"
                    );
                }
            }
            assert!(lines[0].contains(MASK), "{lines:?}");
        }
    }

    #[test]
    fn a_very_short_secret_is_masked_where_it_stands_alone() {
        let m = Masker::new();
        m.register("x");
        m.register("42");
        assert_eq!(
            m.mask("`/shop/dev/api-token` exists already; pin 42, x."),
            "`/shop/dev/api-token` exists already; pin ****, ****."
        );
        assert_eq!(m.mask("x-ray 420 ax"), "****-ray 420 ax");
        assert_eq!(m.mask("x"), "****");
    }

    #[test]
    fn a_short_secret_is_masked_only_as_it_is() {
        let m = Masker::new();
        m.register("1234567");
        let encoded = STANDARD.encode("1234567");
        assert_eq!(m.mask(&encoded), encoded);
        assert!(!m.holds_secret(&format!("x{encoded}")));
        assert_eq!(m.mask("pin 1234567"), "pin ****");
        assert_eq!(m.len(), 1, "one secret, whatever its forms");
    }

    #[test]
    fn a_text_holds_a_secret_when_it_is_one_or_contains_a_long_one() {
        let m = Masker::new();
        m.register("1");
        m.register("correct-horse");
        assert!(m.holds_secret("1"));
        assert!(!m.holds_secret("https://api.example.com/v1"));
        assert!(m.holds_secret("https://x/?t=correct-horse"));
        assert!(!m.holds_secret("correct"));
    }

    #[test]
    fn masks_every_registered_secret_longest_first() {
        let m = Masker::new();
        m.register("hunter2");
        m.register("hunter2-extended");
        m.register("  ");
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.mask("a hunter2-extended and hunter2."),
            "a **** and ****."
        );
        let clone = m.clone();
        clone.register("AKIAEXAMPLE");
        assert_eq!(
            m.mask("key AKIAEXAMPLE"),
            "key ****",
            "clones share one list"
        );
    }
}
