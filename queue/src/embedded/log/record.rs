//! The record codec of the log's files. A record is `[len u32][crc32
//! u32][body]` (little-endian, the CRC-32 of the body); a segment's record
//! body is an entry (kind, partition, key, payload) or the acks of entries
//! (kind, then (partition, key) pairs); a dead letter's body is (reason
//! length, reason, payload). Reading stops at the first torn or corrupt
//! record.

/// Record header: body length and CRC-32 of the body.
pub(super) const HEADER: usize = 8;
/// Largest record body accepted when reading back (far above any entry:
/// persist takes at most 5,000 messages of at most a few KiB per call).
const MAX_RECORD: usize = 256 << 20;

pub(super) const KIND_ENTRY: u8 = 1;
pub(super) const KIND_ACKS: u8 = 2;

/// Bytes of an entry record's body before its payload: kind, partition, key.
pub(super) const ENTRY_PREFIX: usize = 1 + 4 + 8;

/// An entry on its way to the log: the messages of one enqueue call for
/// one partition, under the key the partition gave them.
pub(super) struct NewEntry {
    pub(super) partition: u32,
    pub(super) key: u64,
    pub(super) payload: Vec<u8>,
    pub(super) messages: u32,
}

/// Appends one record (header and body) to `buf`; returns where the body
/// starts within `buf`.
pub(super) fn put_record(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    body(buf);
    let len = (buf.len() - start - HEADER) as u32;
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    start + HEADER
}

/// Appends an entry record; returns where its payload starts within `buf`.
pub(super) fn put_entry(buf: &mut Vec<u8>, e: &NewEntry) -> usize {
    put_record(buf, |b| {
        b.push(KIND_ENTRY);
        b.extend_from_slice(&e.partition.to_le_bytes());
        b.extend_from_slice(&e.key.to_le_bytes());
        b.extend_from_slice(&e.payload);
    }) + ENTRY_PREFIX
}

/// Appends an ack record of (partition, key) pairs.
pub(super) fn put_acks(buf: &mut Vec<u8>, acks: &[(u32, u64)]) {
    put_record(buf, |b| {
        b.push(KIND_ACKS);
        for (p, k) in acks {
            b.extend_from_slice(&p.to_le_bytes());
            b.extend_from_slice(&k.to_le_bytes());
        }
    });
}

/// The records of `data`, with each body's offset, up to the first torn or
/// corrupt one; the second value is where the good records end.
pub(super) fn records(data: &[u8]) -> (Vec<(usize, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while data.len() - at >= HEADER {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap_or_default());
        let start = at + HEADER;
        if len > MAX_RECORD || data.len() - start < len || len == 0 {
            break;
        }
        let body = &data[start..start + len];
        if crc32fast::hash(body) != crc {
            break;
        }
        out.push((start, body));
        at = start + len;
    }
    (out, at)
}

pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(super) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stop_at_a_torn_or_corrupt_tail() {
        let mut buf = Vec::new();
        put_record(&mut buf, |b| b.extend_from_slice(b"one"));
        put_record(&mut buf, |b| b.extend_from_slice(b"two"));
        let whole = buf.len();
        let (recs, end) = records(&buf);
        assert_eq!(recs.len(), 2);
        assert_eq!(end, whole);
        assert_eq!(recs[1].1, b"two");

        let (recs, end) = records(&buf[..whole - 1]);
        assert_eq!(
            (recs.len(), end),
            (1, HEADER + 3),
            "a torn last record is not read"
        );

        let mut flipped = buf.clone();
        flipped[whole - 1] ^= 1;
        let (recs, _) = records(&flipped);
        assert_eq!(recs.len(), 1, "a record whose checksum fails is not read");
    }
}
