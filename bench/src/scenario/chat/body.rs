//! The body of a bench message: its sequence number and when it was sent,
//! padded to the body size.

/// A message body: "SEQ SENT_US " padded to the body size.
pub(super) fn body(seq: u64, sent_us: u64, size: usize) -> String {
    let mut b = format!("{seq} {sent_us} ");
    while b.len() < size {
        b.push('x');
    }
    b
}

pub(super) fn parse_body(b: &str) -> Option<(u64, u64)> {
    let mut it = b.split(' ');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_sequence_and_time() {
        let b = body(42, 1_234_567, 64);
        assert_eq!(b.len(), 64);
        assert_eq!(parse_body(&b), Some((42, 1_234_567)));
        assert_eq!(parse_body("x y"), None);
    }
}
