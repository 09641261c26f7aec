//! A plain HTTP/1.1 GET over a fresh connection: enough for a router's
//! `/sd` and a process's `/metrics` (internal ports, no TLS), with no HTTP
//! client crate. The body may come with a Content-Length, chunked, or up
//! to the end of the connection.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest answer read (a router's /metrics is a few hundred KiB).
const MAX_ANSWER: u64 = 32 << 20;

/// Why a GET gave no body, short enough for a table cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetError {
    Refused,
    TimedOut,
    /// An answer other than 200.
    Status(u16),
    /// Not an HTTP answer we can read.
    Malformed(&'static str),
    Io(String),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Refused => f.write_str("connection refused"),
            GetError::TimedOut => f.write_str("timed out"),
            GetError::Status(code) => write!(f, "HTTP {code}"),
            GetError::Malformed(what) => write!(f, "bad answer: {what}"),
            GetError::Io(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for GetError {}

impl From<std::io::Error> for GetError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => GetError::Refused,
            std::io::ErrorKind::TimedOut => GetError::TimedOut,
            _ => GetError::Io(e.to_string()),
        }
    }
}

/// The body of `GET path` at `addr` (host:port), answered 200 within
/// `deadline`.
pub async fn get(addr: &str, path: &str, deadline: Duration) -> Result<String, GetError> {
    let answer = tokio::time::timeout(deadline, exchange(addr, path))
        .await
        .map_err(|_| GetError::TimedOut)??;
    let (code, body) = parse_answer(&answer)?;
    if code != 200 {
        return Err(GetError::Status(code));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Sends the request and reads until the server closes the connection.
async fn exchange(addr: &str, path: &str) -> Result<Vec<u8>, GetError> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    Ok(answer)
}

/// The status code and the body of a whole HTTP/1.x answer.
pub fn parse_answer(answer: &[u8]) -> Result<(u16, Vec<u8>), GetError> {
    let end = find(answer, b"\r\n\r\n").ok_or(GetError::Malformed("no end of headers"))?;
    let head = std::str::from_utf8(&answer[..end]).map_err(|_| GetError::Malformed("headers not UTF-8"))?;
    let rest = &answer[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = match status.split_whitespace().collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") => code.parse().ok(),
        _ => None,
    }
    .ok_or(GetError::Malformed("no status line"))?;
    let header = |name: &str| {
        lines.clone().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| GetError::Malformed("bad Content-Length"))?;
        rest.get(..length)
            .ok_or(GetError::Malformed("body shorter than its Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok((code, body))
}

/// The body of a chunked transfer encoding (chunk extensions and trailers
/// ignored).
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, GetError> {
    let mut body = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").ok_or(GetError::Malformed("truncated chunk size"))?;
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| GetError::Malformed("bad chunk size"))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| GetError::Malformed("bad chunk size"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or(GetError::Malformed("truncated chunk"))?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or(GetError::Malformed("truncated chunk"))?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_body_by_its_length() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello";
        assert_eq!(parse_answer(answer), Ok((200, b"hello".to_vec())));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello";
        assert!(matches!(parse_answer(short), Err(GetError::Malformed(_))));
    }

    #[test]
    fn reads_a_chunked_body() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        assert_eq!(parse_answer(answer), Ok((200, b"hello, world".to_vec())));
        let truncated = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        assert!(matches!(parse_answer(truncated), Err(GetError::Malformed(_))));
    }

    #[test]
    fn reads_to_the_end_without_a_length_and_keeps_the_status() {
        assert_eq!(
            parse_answer(b"HTTP/1.0 503 Service Unavailable\r\n\r\nnot ready\n"),
            Ok((503, b"not ready\n".to_vec()))
        );
        assert!(matches!(
            parse_answer(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(GetError::Malformed(_))
        ));
        assert!(matches!(parse_answer(b""), Err(GetError::Malformed(_))));
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let e = get(&addr, "/metrics", Duration::from_secs(5))
            .await
            .expect_err("closed");
        assert_eq!(e.to_string(), "connection refused");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let e = get(&addr, "/metrics", Duration::from_millis(100))
            .await
            .expect_err("silent");
        assert_eq!(e, GetError::TimedOut);
        drop(listener);
    }
}
