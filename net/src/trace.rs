//! Trace context on gRPC calls: the caller's `traceparent` (W3C) in the
//! request metadata when its span is traced, read back by the server
//! ([`confab_common::trace`] decides and makes the spans).

use tonic::Request;
use tonic::metadata::MetadataValue;

const HEADER: &str = "traceparent";

/// `msg` as a request carrying the current span's trace context (none when
/// it is not traced).
pub fn request<T>(msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(tp) = confab_common::trace::traceparent()
        && let Ok(v) = MetadataValue::try_from(tp.as_str())
    {
        req.metadata_mut().insert(HEADER, v);
    }
    req
}

/// The caller's trace context, when the call carries one.
pub fn parent<T>(req: &Request<T>) -> Option<&str> {
    req.metadata().get(HEADER)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untraced_call_carries_nothing() {
        let req = request(7u32);
        assert_eq!(parent(&req), None);
        let mut req = Request::new(());
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        req.metadata_mut().insert(HEADER, tp.parse().expect("ascii"));
        assert_eq!(parent(&req), Some(tp));
    }
}
