#![doc = include_str!("../README.md")]
//! What an AWS SDK error means, in one readable line that says what to do.
//!
//! The SDK's own rendering of a failed call is either a bare "dispatch failure" or, through
//! `DisplayErrorContext`, the whole chain with a Rust `Debug` dump of it (hyper internals, the
//! HTML body an unexpected server answered). [`explain`] turns an `SdkError` into an
//! [`AwsError`]: a [`Kind`] (unreachable endpoint, not an AWS answer, no credentials, throttled,
//! a server error, a refusal with its code, …), the operation, and a message naming the endpoint
//! and what to do. Every Ferry crate that calls AWS words its errors through here.
//!
//! The endpoint in messages is what [`set_endpoint`] was last told (the credentials crate says
//! it when it builds a run's configuration: the local emulator, `AWS_ENDPOINT_URL`, or AWS).

/// Largest template CloudFormation accepts inline (TemplateBody), in bytes; a larger one must be
/// uploaded and passed by URL.
pub const MAX_INLINE_TEMPLATE: usize = 51_200;

use std::error::Error;
use std::sync::RwLock;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What kind of failure an AWS call met.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Nothing answered at the endpoint (refused, unknown host, reset).
    Unreachable,
    /// The endpoint is not a usable URL.
    BadEndpoint,
    /// No answer in time.
    Timeout,
    /// Something answered, but not as AWS does (an HTML page, a proxy's error page).
    NotAws { status: u16 },
    /// No credentials could be loaded.
    NoCredentials,
    /// The credentials have expired.
    Expired,
    /// The caller may not do this.
    Denied,
    /// Throttled even after the SDK's retries.
    Throttled,
    /// The service failed internally (HTTP 5xx).
    ServerError { status: u16 },
    /// The service refused the request with an error code.
    Service,
    /// Anything else.
    Other,
}

/// One failed AWS call, worded for a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: Kind,
    /// The service's error code, when it answered with one (`ValidationError`, …).
    pub code: Option<String>,
    /// The service's own message, or the most specific cause, without advice.
    pub detail: String,
    /// The whole sentence: what failed, on what, and what to do.
    pub message: String,
}

/// Where a process's AWS calls go, for messages (and for what a message may say of the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The local emulator Ferry runs (`--local`), at this URL.
    Emulator(String),
    /// Another endpoint for every service (LocalStack, a test's moto, a proxy): its URL and the
    /// setting that names it (`AWS_ENDPOINT_URL`, or a profile's `endpoint_url`), and the
    /// services sent elsewhere still (see `Aws`).
    Custom {
        url: String,
        from: String,
        overrides: Vec<(String, String)>,
    },
    /// AWS itself, in this region, except for the services that variables such as
    /// `AWS_ENDPOINT_URL_CLOUDFORMATION` send elsewhere: each variable and its URL, sorted. A
    /// message names the one its call used ([`Endpoint::for_operation`]), or all of them for an
    /// operation of a service Ferry does not know.
    Aws {
        region: String,
        overrides: Vec<(String, String)>,
    },
}

/// The service an operation Ferry calls belongs to, as its endpoint variable names it
/// (`AWS_ENDPOINT_URL_<SERVICE>`); `None` for one this table does not know.
fn service_of(operation: &str) -> Option<&'static str> {
    const STS: &[&str] = &["AssumeRole", "GetCallerIdentity"];
    const S3: &[&str] = &[
        "CreateBucket",
        "DeleteBucket",
        "HeadBucket",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListBuckets",
    ];
    if STS.contains(&operation) {
        Some("STS")
    } else if operation.contains("Parameter") {
        Some("SSM")
    } else if operation.contains("Stack")
        || operation.contains("ChangeSet")
        || operation.contains("Export")
        || operation.contains("Import")
        || operation.contains("Template")
        || operation == "UpdateTerminationProtection"
        || operation == "ContinueUpdateRollback"
    {
        Some("CLOUDFORMATION")
    } else if S3.contains(&operation) || operation.contains("Object") {
        Some("S3")
    } else if operation == "Publish" {
        Some("SNS")
    } else if operation == "ReceiveMessage" || operation == "SendMessage" {
        Some("SQS")
    } else if operation == "GetItem" || operation == "PutItem" {
        Some("DYNAMODB")
    } else if operation.contains("Function") {
        Some("LAMBDA")
    } else {
        None
    }
}

impl Endpoint {
    /// AWS itself in `region`, with no service sent elsewhere.
    pub fn aws(region: &str) -> Endpoint {
        Endpoint::Aws {
            region: region.to_string(),
            overrides: Vec::new(),
        }
    }

    fn overrides(&self) -> &[(String, String)] {
        match self {
            Endpoint::Emulator(_) => &[],
            Endpoint::Custom { overrides, .. } | Endpoint::Aws { overrides, .. } => overrides,
        }
    }

    /// What a reader can change to send the calls elsewhere: the settings that chose these
    /// endpoints, else `AWS_ENDPOINT_URL`.
    fn setting(&self) -> String {
        let vars = self.overrides().iter().map(|(v, _)| v.as_str());
        let names: Vec<&str> = match self {
            Endpoint::Custom { from, .. } => std::iter::once(from.as_str()).chain(vars).collect(),
            Endpoint::Aws { overrides, .. } if !overrides.is_empty() => vars.collect(),
            _ => vec!["AWS_ENDPOINT_URL"],
        };
        names.join(" and ")
    }

    /// Where a call of `operation` went: the `AWS_ENDPOINT_URL_<SERVICE>` endpoint of its
    /// service when one is set, else this one without the other services' (a message names
    /// only what the call used). An operation of a service it does not know keeps them all.
    fn for_operation(&self, operation: &str) -> Endpoint {
        let overrides = self.overrides();
        if overrides.is_empty() {
            return self.clone();
        }
        let Some(service) = service_of(operation) else {
            return self.clone();
        };
        let var = format!("AWS_ENDPOINT_URL_{service}");
        if let Some((var, url)) = overrides.iter().find(|(v, _)| *v == var) {
            return Endpoint::Custom {
                url: url.clone(),
                from: var.clone(),
                overrides: Vec::new(),
            };
        }
        match self {
            Endpoint::Custom { url, from, .. } => Endpoint::Custom {
                url: url.clone(),
                from: from.clone(),
                overrides: Vec::new(),
            },
            Endpoint::Aws { region, .. } => Endpoint::aws(region),
            Endpoint::Emulator(_) => self.clone(),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Emulator(url) => write!(f, "the local AWS emulator at {url}")?,
            Endpoint::Custom { url, from, .. } => write!(f, "{url} ({from})")?,
            Endpoint::Aws { region, .. } => write!(f, "AWS ({region})")?,
        }
        for (var, url) in self.overrides() {
            write!(f, " or {url} ({var})")?;
        }
        Ok(())
    }
}

static ENDPOINT: RwLock<Option<Endpoint>> = RwLock::new(None);

/// Says where this process's AWS calls go, for messages: e.g. "the local AWS emulator at
/// http://127.0.0.1:5000", "http://… (AWS_ENDPOINT_URL)", "AWS (us-east-1)".
pub fn set_endpoint(endpoint: Endpoint) {
    *ENDPOINT.write().unwrap_or_else(|e| e.into_inner()) = Some(endpoint);
}

fn endpoint() -> Option<Endpoint> {
    ENDPOINT.read().unwrap_or_else(|e| e.into_inner()).clone()
}

const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequests",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ThrottledException",
    "SlowDown",
];
const EXPIRED: &[&str] = &["ExpiredToken", "ExpiredTokenException", "RequestExpired"];
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

/// Wrapper messages that say nothing a user can act on.
fn is_wrapper(m: &str) -> bool {
    matches!(
        m,
        "dispatch failure"
            | "response error"
            | "service error"
            | "construction failure"
            | "timeout"
            | "io error"
            | "other"
            | "user error"
            | "timeout error"
            | "client error (Connect)"
            | "client error (SendRequest)"
    )
}

/// The messages of an error and its causes, first lines only, wrappers dropped.
fn causes(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        let first = text.lines().next().unwrap_or_default().trim().to_string();
        if !first.is_empty() && !is_wrapper(&first) && !out.contains(&first) {
            out.push(first);
        }
        next = err.source();
    }
    out
}

/// The SDK's refusal of an endpoint, without the request it prints beside it (a debug dump of
/// its body and headers): "the endpoint `not a url` is not a URL".
fn bad_endpoint(detail: &str) -> String {
    detail
        .split_once("failed to apply endpoint `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map_or_else(
            || detail.to_string(),
            |(endpoint, _)| format!("the endpoint `{endpoint}` is not a URL"),
        )
}

fn contains_any(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| text.contains(n))
}

/// The kind of failure a text describes, when the text alone tells (credentials, connections).
fn kind_of_text(text: &str) -> Option<Kind> {
    if contains_any(
        text,
        &[
            "failed to apply endpoint",
            "endpoint is not a valid URI",
            "invalid endpoint",
        ],
    ) {
        Some(Kind::BadEndpoint)
    } else if contains_any(text, EXPIRED) || text.contains("TokenRefreshRequired") {
        Some(Kind::Expired)
    } else if contains_any(text, DENIED) || text.contains("not authorized to perform") {
        Some(Kind::Denied)
    } else if contains_any(text, THROTTLED) {
        Some(Kind::Throttled)
    } else if contains_any(
        text,
        &[
            "no credentials found in chain",
            "credential provider was not enabled",
            "no providers in chain provided credentials",
            "while loading credentials",
            "failed to load credentials",
            "CredentialsNotLoaded",
            "IMDS session token",
        ],
    ) {
        Some(Kind::NoCredentials)
    } else if contains_any(
        text,
        &[
            "tcp connect error",
            "Connection refused",
            "connection refused",
            "dns error",
            "failed to lookup address",
            "Connection reset",
            "connection reset",
            "connection closed before message completed",
            "error trying to connect",
            "broken pipe",
        ],
    ) {
        Some(Kind::Unreachable)
    } else if contains_any(text, &["timed out", "timeout"]) {
        Some(Kind::Timeout)
    } else {
        None
    }
}

fn code_kind(code: &str) -> Option<Kind> {
    if THROTTLED.contains(&code) {
        Some(Kind::Throttled)
    } else if EXPIRED.contains(&code) {
        Some(Kind::Expired)
    } else if DENIED.contains(&code) {
        Some(Kind::Denied)
    } else {
        None
    }
}

/// The first `n` characters of a body's text, on one line, markup left out (an HTML error page
/// says what it is in its text: "502 Bad Gateway", "Welcome to nginx!").
fn snippet(body: &[u8], n: usize) -> String {
    let raw = String::from_utf8_lossy(body);
    let mut text = String::with_capacity(raw.len());
    let mut in_tag = false;
    for c in raw.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > n {
        format!("{}…", flat.chars().take(n).collect::<String>())
    } else {
        flat
    }
}

impl AwsError {
    fn new(operation: &'static str, kind: Kind, code: Option<String>, detail: String) -> Self {
        Self::at(operation, kind, code, detail, endpoint())
    }

    /// [`AwsError::new`] for a call that went `to` there.
    fn at(
        operation: &'static str,
        kind: Kind,
        code: Option<String>,
        detail: String,
        to: Option<Endpoint>,
    ) -> Self {
        let to = to.map(|e| e.for_operation(operation));
        let at = to
            .as_ref()
            .map_or_else(|| "the AWS endpoint".to_string(), ToString::to_string);
        let setting = to
            .as_ref()
            .map_or_else(|| "AWS_ENDPOINT_URL".to_string(), Endpoint::setting);
        let message = match &kind {
            Kind::Unreachable => format!(
                "{operation} could not reach {at}: {detail}; with --local Ferry starts the emulator itself, otherwise check {setting}, the network and any proxy"
            ),
            Kind::BadEndpoint => format!(
                "{operation} was not sent: {}; set {setting} to a URL such as http://127.0.0.1:5000, or unset it to use AWS",
                bad_endpoint(&detail)
            ),
            Kind::Timeout => format!(
                "{operation} got no answer in time from {at} ({detail}); check the network, then run again"
            ),
            Kind::NotAws { status } => format!(
                "{operation}: {at} answered HTTP {status} with something that is not an AWS response ({detail}); is {setting} an AWS endpoint or the emulator (--local)?"
            ),
            Kind::NoCredentials => format!(
                "{operation} found no AWS credentials ({detail}); configure a profile (AWS_PROFILE, or `aws sso login` for SSO), export credentials in the environment, or use --local for the local emulator"
            ),
            Kind::Expired => format!(
                "{operation}: the AWS credentials have expired ({detail}); refresh them (e.g. `aws sso login`, or a new session) and run again"
            ),
            Kind::Denied => {
                format!("{operation} was denied ({detail}); the caller's policy must allow it")
            }
            Kind::Throttled => format!(
                "AWS throttled {operation} even after retries ({detail}); run again later or lower --concurrency"
            ),
            // The emulator answers 500 to what it cannot do (a template with a property it does
            // not model): running again would not help, its log says what it was.
            Kind::ServerError { status } if matches!(to, Some(Endpoint::Emulator(_))) => format!(
                "{operation} failed inside {at} (HTTP {status}: {detail}): a request the emulator cannot serve, which AWS itself may take; its log says why (`local status` names it)"
            ),
            Kind::ServerError { status } => {
                format!("{operation} failed inside {at} (HTTP {status}: {detail}); run again")
            }
            Kind::Service | Kind::Other => format!("{operation} failed: {detail}"),
        };
        AwsError {
            operation,
            kind,
            code,
            detail,
            message,
        }
    }
}

/// `code: message`, or the code alone when the service gave no message.
fn coded_detail(code: &str, message: &str) -> String {
    if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    }
}

/// What an answer's HTTP status says when its code says nothing: a server error from 500 on,
/// else the service's refusal.
fn status_kind(status: Option<u16>) -> Kind {
    match status {
        Some(s) if s >= 500 => Kind::ServerError { status: s },
        _ => Kind::Service,
    }
}

/// Explains a failed SDK call of `operation`.
pub fn explain<E>(operation: &'static str, err: &SdkError<E, Response>) -> AwsError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let code = err.code().map(String::from);
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ServiceError(_) if code.is_some() => {
            let c = code.clone().unwrap_or_default();
            let detail = coded_detail(&c, err.message().unwrap_or_default());
            let kind = code_kind(&c)
                .or_else(|| kind_of_text(&detail).filter(|k| *k != Kind::Unreachable))
                .unwrap_or(status_kind(status));
            AwsError::new(operation, kind, code, detail)
        }
        // An answer the SDK could not read as the service's: say what it was instead.
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let raw = err.raw_response();
            let status = status.unwrap_or(0);
            let content_type = raw
                .and_then(|r| r.headers().get("content-type"))
                .unwrap_or("no content type")
                .to_string();
            let bytes = raw.and_then(|r| r.body().bytes()).unwrap_or_default();
            // An AWS error in JSON where the SDK reads XML (an emulator, a proxy of another
            // protocol): the service refused, and says why.
            if let Some((code, message)) = json_error(bytes) {
                let kind = code_kind(&code).unwrap_or(status_kind(Some(status)));
                let detail = coded_detail(&code, &message);
                return AwsError::new(operation, kind, Some(code), detail);
            }
            let body = snippet(bytes, 80);
            let detail = if body.is_empty() {
                format!("{content_type}, empty body")
            } else {
                format!("{content_type}: `{body}`")
            };
            let kind = if status >= 500 {
                Kind::ServerError { status }
            } else {
                Kind::NotAws { status }
            };
            AwsError::new(operation, kind, None, detail)
        }
        SdkError::TimeoutError(_) => {
            AwsError::new(operation, Kind::Timeout, None, causes(err).join(": "))
        }
        SdkError::DispatchFailure(d) => {
            let detail = causes(err).join(": ");
            let kind = kind_of_text(&detail).unwrap_or(if d.is_io() {
                Kind::Unreachable
            } else if d.is_timeout() {
                Kind::Timeout
            } else {
                Kind::Other
            });
            AwsError::new(operation, kind, None, detail)
        }
        _ => {
            let detail = causes(err).join(": ");
            let kind = kind_of_text(&detail).unwrap_or(Kind::Other);
            AwsError::new(operation, kind, code, detail)
        }
    }
}

/// The code and message of an AWS error written in JSON (`{"__type": "…#Code", "message": …}`,
/// `{"__type": "Code:http://…"}`, or `{"Error": {"Code": …, "Message": …}}`), the message cut
/// to 300 characters; `None` for any other body (another server's JSON error, with a `code` of
/// its own, is no AWS answer).
fn json_error(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let field = |v: &serde_json::Value, names: &[&str]| {
        names
            .iter()
            .find_map(|n| v.get(*n).and_then(serde_json::Value::as_str))
            .map(str::to_string)
    };
    let (code, message) = match v.get("Error") {
        Some(e) => (field(e, &["Code"])?, field(e, &["Message", "message"])),
        None => (field(&v, &["__type"])?, field(&v, &["message", "Message"])),
    };
    let code = code.rsplit('#').next().unwrap_or_default();
    let code = code
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if code.is_empty() {
        return None;
    }
    let message = message.unwrap_or_default();
    let message = if message.chars().count() > 300 {
        format!("{}…", message.chars().take(300).collect::<String>())
    } else {
        message
    };
    Some((
        code,
        message.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// Explains an error that is not an `SdkError` (e.g. a credentials provider's), by its causes.
pub fn explain_error(operation: &'static str, err: &(dyn Error + 'static)) -> AwsError {
    let detail = causes(err).join(": ");
    let kind = kind_of_text(&detail).unwrap_or(Kind::Other);
    AwsError::new(operation, kind, None, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endpoint the SDK cannot parse was named with a debug dump of the request beside it
    /// (its body, its headers): the endpoint alone now.
    #[test]
    fn a_bad_endpoint_is_named_without_the_request() {
        let detail = "failed to apply endpoint `not a url` to request `Request { body: SdkBody { inner: Once(Some(b\"Action=GetCallerIdentity\")) }, headers: {} }`: endpoint is not a valid URI";
        assert_eq!(
            bad_endpoint(detail),
            "the endpoint `not a url` is not a URL"
        );
        assert_eq!(bad_endpoint("something else"), "something else");
    }

    #[derive(Debug)]
    struct Chain(&'static str, Option<Box<Chain>>);
    impl std::fmt::Display for Chain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Chain {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|c| c as &(dyn Error + 'static))
        }
    }

    fn chain(parts: &[&'static str]) -> Chain {
        parts
            .iter()
            .rev()
            .fold(None, |next, p| Some(Chain(p, next.map(Box::new))))
            .unwrap()
    }

    #[test]
    fn texts_are_classified_and_wrappers_dropped() {
        let e = explain_error(
            "GetCallerIdentity",
            &chain(&[
                "dispatch failure",
                "other",
                "an error occurred while loading credentials",
                "failed to load IMDS session token",
                "service error",
                "request forbidden: IMDS is disabled or the caller has insufficient permissions.",
            ]),
        );
        assert_eq!(e.kind, Kind::NoCredentials);
        assert!(
            e.message.starts_with("GetCallerIdentity found no AWS credentials (an error occurred while loading credentials: failed to load IMDS session token: request forbidden"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("dispatch failure"), "{}", e.message);
        let e = explain_error(
            "ListStacks",
            &chain(&[
                "dispatch failure",
                "io error",
                "client error (Connect)",
                "tcp connect error",
                "Connection refused (os error 111)",
            ]),
        );
        assert_eq!(e.kind, Kind::Unreachable);
        assert!(
            e.message.contains(
                "could not reach the AWS endpoint: tcp connect error: Connection refused"
            ),
            "{}",
            e.message
        );
        assert_eq!(
            explain_error("X", &chain(&["failed to apply endpoint `x`"])).kind,
            Kind::BadEndpoint
        );
        assert_eq!(
            explain_error("X", &chain(&["Throttling: Rate exceeded"])).kind,
            Kind::Throttled
        );
        // A server error of the emulator is a request it cannot serve (running again does
        // not help); of anything else, one to run again. Decided by where the call went, not
        // by how that is worded.
        let server = |to: Endpoint| {
            AwsError::at(
                "CreateStack",
                Kind::ServerError { status: 500 },
                None,
                "InternalFailure".into(),
                Some(to),
            )
            .message
        };
        // What to check names the setting that sent the call there.
        let unreachable = |to: Endpoint| {
            AwsError::at(
                "DescribeStacks",
                Kind::Unreachable,
                None,
                "connection refused".into(),
                Some(to),
            )
            .message
        };
        let m = unreachable(Endpoint::Aws {
            region: "eu-west-1".into(),
            overrides: vec![(
                "AWS_ENDPOINT_URL_CLOUDFORMATION".into(),
                "http://127.0.0.1:9".into(),
            )],
        });
        assert_eq!(
            m,
            "DescribeStacks could not reach http://127.0.0.1:9 (AWS_ENDPOINT_URL_CLOUDFORMATION): connection refused; with --local Ferry starts the emulator itself, otherwise check AWS_ENDPOINT_URL_CLOUDFORMATION, the network and any proxy"
        );
        // Another service sent elsewhere beside an endpoint for all: a CloudFormation call
        // names only the endpoint it used (DynamoDB Local's variable is no concern of it)...
        let both = Endpoint::Custom {
            url: "http://127.0.0.1:45633".into(),
            from: "AWS_ENDPOINT_URL".into(),
            overrides: vec![
                (
                    "AWS_ENDPOINT_URL_DYNAMODB".into(),
                    "http://localhost:8000".into(),
                ),
                ("AWS_ENDPOINT_URL_SSM".into(), "http://127.0.0.1:9".into()),
            ],
        };
        let m = unreachable(both.clone());
        assert!(
            m.starts_with(
                "DescribeStacks could not reach http://127.0.0.1:45633 (AWS_ENDPOINT_URL): "
            ) && m.ends_with("otherwise check AWS_ENDPOINT_URL, the network and any proxy"),
            "{m}"
        );
        // ...an SSM call the one its variable names...
        let m = AwsError::at(
            "PutParameter",
            Kind::Unreachable,
            None,
            "refused".into(),
            Some(both.clone()),
        )
        .message;
        assert!(
            m.starts_with(
                "PutParameter could not reach http://127.0.0.1:9 (AWS_ENDPOINT_URL_SSM): "
            ),
            "{m}"
        );
        for (op, service) in [
            ("GetCallerIdentity", Some("STS")),
            ("AssumeRole", Some("STS")),
            ("GetParametersByPath", Some("SSM")),
            ("DeleteParameter", Some("SSM")),
            ("DescribeStacks", Some("CLOUDFORMATION")),
            ("ExecuteChangeSet", Some("CLOUDFORMATION")),
            ("ListImports", Some("CLOUDFORMATION")),
            ("GetTemplate", Some("CLOUDFORMATION")),
            ("UpdateTerminationProtection", Some("CLOUDFORMATION")),
            ("ListObjectVersions", Some("S3")),
            ("DeleteObjects", Some("S3")),
            ("HeadBucket", Some("S3")),
            ("Publish", Some("SNS")),
            ("ContinueUpdateRollback", Some("CLOUDFORMATION")),
            ("ReceiveMessage", Some("SQS")),
            ("GetItem", Some("DYNAMODB")),
            ("GetFunctionConfiguration", Some("LAMBDA")),
            ("an SNS or SQS call", None),
        ] {
            assert_eq!(service_of(op), service, "{op}");
        }
        // ...and an operation the table does not know, every one it may have used.
        let m = AwsError::at(
            "DoSomething",
            Kind::Unreachable,
            None,
            "refused".into(),
            Some(both),
        )
        .message;
        assert!(
            m.contains("http://127.0.0.1:45633 (AWS_ENDPOINT_URL) or http://localhost:8000 (AWS_ENDPOINT_URL_DYNAMODB) or http://127.0.0.1:9 (AWS_ENDPOINT_URL_SSM)"),
            "{m}"
        );
        let m = unreachable(Endpoint::Custom {
            url: "http://127.0.0.1:1".into(),
            from: "the AWS profile's endpoint_url".into(),
            overrides: Vec::new(),
        });
        assert!(
            m.ends_with(
                "otherwise check the AWS profile's endpoint_url, the network and any proxy"
            ),
            "{m}"
        );
        let emulator = server(Endpoint::Emulator("http://127.0.0.1:5000".into()));
        assert!(
            emulator.starts_with("CreateStack failed inside the local AWS emulator at http://127.0.0.1:5000 (HTTP 500: InternalFailure): a request the emulator cannot serve"),
            "{emulator}"
        );
        for to in [
            Endpoint::Custom {
                url: "http://127.0.0.1:4566".into(),
                from: "AWS_ENDPOINT_URL".into(),
                overrides: Vec::new(),
            },
            Endpoint::aws("eu-west-1"),
        ] {
            let m = server(to.clone());
            assert!(
                m.ends_with("; run again") && !m.contains("emulator"),
                "{to}: {m}"
            );
        }
        // An AWS error in JSON, whole, as the emulator answers a query-protocol call.
        assert_eq!(
            json_error(br#"{"__type": "BadRequestException", "message": "Role ARN must be specified for AWS integrations"}"#),
            Some((
                "BadRequestException".to_string(),
                "Role ARN must be specified for AWS integrations".to_string()
            ))
        );
        assert_eq!(
            json_error(br#"{"__type": "com.amazon.coral#ThrottlingException"}"#),
            Some(("ThrottlingException".to_string(), String::new()))
        );
        assert_eq!(
            json_error(br#"{"Error": {"Code": "ValidationError", "Message": "bad"}}"#),
            Some(("ValidationError".to_string(), "bad".to_string()))
        );
        assert_eq!(
            json_error(
                br#"{"__type": "InvalidParameterException:http://internal.amazon.com/coral/"}"#
            ),
            Some(("InvalidParameterException".to_string(), String::new()))
        );
        for other in [
            &b"<html>Bad Gateway</html>"[..],
            b"{}",
            b"[1]",
            b"{\"__type\": \"\"}",
            br#"{"code": "NotFound", "message": "no route"}"#,
        ] {
            assert_eq!(
                json_error(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        assert_eq!(
            snippet(b"<html>\n  <b>Bad</b> Gateway\n</html>", 80),
            "Bad Gateway"
        );
        assert_eq!(
            snippet(b"{\"message\": \"a long one\"}", 10),
            "{\"message\"…"
        );
    }
}
