//! Binding a service's listeners, the error naming which one and where.

use tokio::net::TcpListener;

use crate::error::Error;

/// A TCP listener on `addr`; `what` names it in the error ("gRPC", "HTTP").
pub async fn bind(addr: &str, what: &'static str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        what,
        addr: addr.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_address_names_the_listener() {
        let first = bind("127.0.0.1:0", "HTTP").await.expect("bind");
        let addr = first.local_addr().expect("addr").to_string();
        let err = bind(&addr, "gRPC").await.unwrap_err();
        assert_eq!(err.to_string(), format!("binding gRPC {addr}"));
        let source = std::error::Error::source(&err).expect("the io error");
        assert!(source.to_string().contains("in use"), "{source}");
    }
}
