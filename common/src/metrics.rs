//! Rendering the default Prometheus registry.

use axum::http::StatusCode;
use prometheus::Encoder;
use prometheus::TextEncoder;

/// The default registry in Prometheus text format.
pub fn render() -> (StatusCode, String) {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&prometheus::gather(), &mut buf) {
        Ok(()) => (StatusCode::OK, String::from_utf8_lossy(&buf).into_owned()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        ),
    }
}
