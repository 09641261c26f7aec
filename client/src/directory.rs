//! The directory: `GET /v1/gateway` on any gateway's public HTTP port
//! names the least-loaded live gateway the caller's network zone can reach,
//! with the address that zone reaches it at. A [`Directory`] holds one or
//! more such URLs and asks them in turn, so a client starts from the
//! directory instead of a fixed gateway, and after losing its gateway
//! asks again ([`crate::Client::reconnect_via`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::tls::ClientTls;

/// How long one directory URL may take to answer.
const ASK_WITHIN: Duration = Duration::from_secs(5);
/// The largest answer read.
const ANSWER_MAX: usize = 64 << 10;

/// The directory's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pick {
    pub gateway_id: u64,
    /// The gateway's client TCP address, as the caller's zone reaches it.
    pub addr: String,
    /// Its WebSocket URL, as the caller's zone reaches it.
    #[serde(default)]
    pub ws_url: String,
    /// The caller's zone.
    pub zone: String,
}

/// One or more directory URLs (`http://HOST:PORT` or `https://...`; the
/// path defaults to `/v1/gateway`).
#[derive(Debug, Clone)]
pub struct Directory {
    urls: Vec<Uri>,
}

impl Directory {
    /// Parses `urls` (at least one); a URL may list several separated by
    /// commas.
    pub fn new<S: AsRef<str>>(urls: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut parsed = Vec::new();
        for url in urls {
            for one in url.as_ref().split(',').map(str::trim).filter(|u| !u.is_empty()) {
                parsed.push(parse(one)?);
            }
        }
        if parsed.is_empty() {
            return Err(Error::Directory("no directory URL given".into()));
        }
        Ok(Self { urls: parsed })
    }

    /// Asks each URL in turn; the first answer wins. `tls` is used for
    /// `https://` URLs (the system's roots when `None`).
    pub async fn pick(&self, tls: Option<&ClientTls>) -> Result<Pick> {
        let mut why = Vec::new();
        for url in &self.urls {
            match tokio::time::timeout(ASK_WITHIN, ask(url, tls)).await {
                Ok(Ok(pick)) => return Ok(pick),
                Ok(Err(e)) => why.push(format!("{url}: {e}")),
                Err(_) => why.push(format!("{url}: no answer within {ASK_WITHIN:?}")),
            }
        }
        Err(Error::Directory(why.join("; ")))
    }
}

impl crate::Client {
    /// Asks `directory` for a gateway and connects to it (over TLS with
    /// `tls`, which also serves `https://` directory URLs).
    pub async fn connect_via(directory: &Directory, tls: Option<&ClientTls>) -> Result<(Self, Pick)> {
        let pick = directory.pick(tls).await?;
        let client = Self::connect_with(&pick.addr, tls).await?;
        Ok((client, pick))
    }

    /// After the gateway was lost: asks `directory` again and resumes this
    /// session on the gateway it names ([`crate::Client::reconnect`]: the
    /// outbox is sent again, missed messages synced).
    pub async fn reconnect_via(
        &mut self,
        directory: &Directory,
        tls: Option<&ClientTls>,
    ) -> Result<(crate::Reconnected, Pick)> {
        let pick = directory.pick(tls).await?;
        let conn = crate::Connection::connect_with(&pick.addr, tls).await?;
        let caught_up = self.reconnect(conn).await?;
        Ok((caught_up, pick))
    }
}

fn parse(url: &str) -> Result<Uri> {
    let bad = |why: &str| Error::Directory(format!("{url:?} is not a directory URL: {why}"));
    let uri: Uri = url.parse().map_err(|_| bad("unparsable"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
    let path = match uri.path() {
        "" | "/" => "/v1/gateway",
        p => p,
    };
    Uri::builder()
        .scheme(uri.scheme_str().unwrap_or("http"))
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| bad("unparsable"))
}

/// `GET url` over one fresh connection.
async fn ask(url: &Uri, tls: Option<&ClientTls>) -> Result<Pick> {
    let authority = url.authority().map(|a| a.as_str()).unwrap_or_default();
    let https = url.scheme_str() == Some("https");
    let addr = match url.port_u16() {
        Some(_) => authority.to_owned(),
        None if https => format!("{authority}:443"),
        None => format!("{authority}:80"),
    };
    let stream = TcpStream::connect(&addr).await.map_err(|source| Error::Connect {
        addr: addr.clone(),
        source,
    })?;
    if !https {
        return get(stream, url).await;
    }
    let roots;
    let tls = match tls {
        Some(t) => t,
        None => {
            roots = ClientTls::with_system_roots()?;
            &roots
        }
    };
    get(tls.connect(&addr, stream).await?, url).await
}

async fn get<S>(stream: S, url: &Uri) -> Result<Pick>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| Error::Directory(format!("HTTP: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    tokio::spawn(conn);
    let request = hyper::Request::get(url.path())
        .header(
            hyper::header::HOST,
            url.authority().map(|a| a.as_str()).unwrap_or_default(),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Directory(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    let body = Limited::new(response.into_body(), ANSWER_MAX)
        .collect()
        .await
        .map_err(|e| Error::Directory(format!("reading the answer: {e}")))?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(Error::Directory(format!("{status}: {}", text.trim())));
    }
    serde_json::from_slice(&body).map_err(|e| Error::Directory(format!("unreadable answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_the_default_path_and_bad_ones_are_refused() {
        let d = Directory::new(["http://198.18.1.1:8201", " https://gw.example:8443/v1/gateway ,"])
            .expect("parse");
        let urls: Vec<String> = d.urls.iter().map(Uri::to_string).collect();
        assert_eq!(
            urls,
            [
                "http://198.18.1.1:8201/v1/gateway",
                "https://gw.example:8443/v1/gateway"
            ]
        );
        let d = Directory::new(["http://a:1,http://b:2"]).expect("parse");
        assert_eq!(d.urls.len(), 2);
        for bad in ["", "198.18.1.1:8201", "ftp://a:1", "http://"] {
            assert!(Directory::new([bad]).is_err(), "{bad:?} refused");
        }
    }

    #[test]
    fn an_answer_without_ws_url_still_reads() {
        let p: Pick =
            serde_json::from_str(r#"{"gateway_id":2,"addr":"198.18.1.1:7201","zone":"z","connections":4}"#)
                .expect("JSON");
        assert_eq!(
            (p.gateway_id, p.addr.as_str(), p.ws_url.as_str()),
            (2, "198.18.1.1:7201", "")
        );
    }

    #[tokio::test]
    async fn a_dead_url_is_skipped_and_the_reasons_are_named_when_all_fail() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead_addr = dead.local_addr().expect("addr");
        drop(dead);
        let d = Directory::new([format!("http://{dead_addr}")]).expect("parse");
        let e = d.pick(None).await.expect_err("nothing answers");
        assert!(e.to_string().contains(&dead_addr.to_string()), "{e}");
    }
}
