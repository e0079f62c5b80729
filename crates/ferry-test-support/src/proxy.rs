//! A scripted HTTP proxy on loopback, for the faults an emulator does not make on its own.
//!
//! [`Proxy::start`] listens on `127.0.0.1` and hands each request to a rule, which forwards it
//! to the upstream (the emulator) as it is, forwards it and rewrites the answer (e.g. a stack
//! status or time in a ListStacks answer), answers in the upstream's place (an HTML page, an
//! HTTP 500), delays it, or drops the connection. AWS SDK requests are recognised by their
//! action: the `Action=` of a query-protocol body (CloudFormation, STS) or the `X-Amz-Target`
//! header of a JSON-protocol one (SSM). One request per connection (answers carry
//! `Connection: close`), which the SDK's client handles by connecting again.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// One request as the proxy received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The AWS action: `ListStacks`, `GetParameter`, … (empty when none is recognised).
    pub fn action(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or_default().to_string();
        }
        let body = String::from_utf8_lossy(&self.body);
        body.split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or_default()
            .to_string()
    }
}

/// What to do with a request.
pub enum Rule {
    /// Forward it as it is.
    Forward,
    /// Forward it and rewrite the answer's body.
    Rewrite(Box<dyn Fn(String) -> String + Send>),
    /// Answer in the upstream's place.
    Respond {
        status: u16,
        content_type: String,
        body: String,
    },
    /// Wait, then forward it.
    Delay(Duration),
    /// Close the connection without an answer.
    Drop,
}

type Rules = dyn Fn(&Request) -> Rule + Send + Sync;

/// A running proxy; it stops serving when dropped (its thread ends with the test process).
pub struct Proxy {
    pub port: u16,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`host:port`; ignored by rules that answer
    /// themselves) that asks `rules` what to do with each request.
    pub fn start(
        upstream: &str,
        rules: impl Fn(&Request) -> Rule + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let rules: Arc<Rules> = Arc::new(rules);
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (rules, upstream) = (rules.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, &*rules);
                });
            }
        });
        Proxy { port }
    }

    /// A server that answers every request itself with `status` and `body`.
    pub fn answering(status: u16, content_type: &str, body: &str) -> Proxy {
        let (content_type, body) = (content_type.to_string(), body.to_string());
        Proxy::start("127.0.0.1:9", move |_| Rule::Respond {
            status,
            content_type: content_type.clone(),
            body: body.clone(),
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A request or status line and its headers.
type Head = (String, Vec<(String, String)>);

fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((first.trim_end().to_string(), headers)))
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A message body: by Content-Length, chunked, or (for answers) to the end of the stream.
fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    to_end: bool,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if header(headers, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = header(headers, "content-length").and_then(|v| v.parse().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if to_end {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

fn write_response(
    w: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    write!(w, "HTTP/1.1 {status} Proxied\r\n")?;
    for (k, v) in headers {
        let skip = ["content-length", "transfer-encoding", "connection"];
        if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
            write!(w, "{k}: {v}\r\n")?;
        }
    }
    write!(
        w,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    w.write_all(body)?;
    w.flush()
}

fn serve(conn: TcpStream, upstream: &str, rules: &Rules) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let Some((line, headers)) = read_head(&mut reader)? else {
        return Ok(());
    };
    let body = read_body(&mut reader, &headers, false)?;
    let mut parts = line.split_whitespace();
    let req = Request {
        method: parts.next().unwrap_or_default().to_string(),
        path: parts.next().unwrap_or("/").to_string(),
        headers,
        body,
    };
    let mut out = conn;
    let rewrite: Option<Box<dyn Fn(String) -> String + Send>> = match rules(&req) {
        Rule::Drop => return out.shutdown(Shutdown::Both),
        Rule::Respond {
            status,
            content_type,
            body,
        } => {
            let h = [("Content-Type".to_string(), content_type)];
            return write_response(&mut out, status, &h, body.as_bytes());
        }
        Rule::Delay(d) => {
            std::thread::sleep(d);
            None
        }
        Rule::Forward => None,
        Rule::Rewrite(f) => Some(f),
    };
    // Forward, one request per upstream connection.
    let mut up = TcpStream::connect(upstream)?;
    write!(up, "{} {} HTTP/1.1\r\n", req.method, req.path)?;
    for (k, v) in &req.headers {
        let skip = ["content-length", "transfer-encoding", "connection"];
        if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
            write!(up, "{k}: {v}\r\n")?;
        }
    }
    write!(
        up,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        req.body.len()
    )?;
    up.write_all(&req.body)?;
    up.flush()?;
    let mut ur = BufReader::new(up);
    let Some((status_line, up_headers)) = read_head(&mut ur)? else {
        return out.shutdown(Shutdown::Both);
    };
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    if req.method == "HEAD" || status == 204 || status == 304 {
        // No body follows, whatever Content-Length says: pass the head on as it is.
        write!(out, "HTTP/1.1 {status} Proxied\r\n")?;
        for (k, v) in up_headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("connection"))
        {
            write!(out, "{k}: {v}\r\n")?;
        }
        write!(out, "Connection: close\r\n\r\n")?;
        return out.flush();
    }
    let mut answer = read_body(&mut ur, &up_headers, true)?;
    if let Some(f) = rewrite {
        answer = f(String::from_utf8_lossy(&answer).into_owned()).into_bytes();
    }
    write_response(&mut out, status, &up_headers, &answer)
}
