//! A plain HTTP/1.1 GET over a fresh connection: enough for `/readyz` and
//! `/metrics`, with no HTTP client crate.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status code and the whole answer (head and body) of `GET path` at
/// `addr`; `None` when the connection or the exchange fails.
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, answer))
}
