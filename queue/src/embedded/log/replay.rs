//! Reading the log back at open: each segment's entries go into the index,
//! its acks take entries out again (from whichever segment holds them), so
//! what is left is what was never acked. A torn record at the end of the
//! last segment (a crash mid-write, never acknowledged) is cut off; damage
//! anywhere else is refused, never skipped.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use super::index::{Entry, State};
use super::record::{ENTRY_PREFIX, KIND_ACKS, KIND_ENTRY, records, u32_at, u64_at};
use super::segment::{Segment, segment_path};
use crate::embedded::shared::{Durable, DurableObserver, messages_in};
use crate::error::QueueError;

/// An error about the queue's directory, naming it.
pub(super) fn invalid(dir: &Path, what: String) -> QueueError {
    QueueError::Invalid(format!("embedded queue in {}: {what}", dir.display()))
}

/// Reads one segment into the index. A torn tail is cut off in the last
/// segment (it was never acknowledged) and refused anywhere else. The last
/// segment is synced (the cut, and acks a previous run left unsynced)
/// before a later segment exists, so a crash cannot tear it afterwards.
pub(super) fn replay(
    dir: &Path,
    id: u64,
    last: bool,
    state: &mut State,
    next: &mut [u64],
    durable: Option<&DurableObserver>,
) -> Result<(), QueueError> {
    let path = segment_path(dir, id);
    let data = fs::read(&path)?;
    let (recs, good) = records(&data);
    if good < data.len() && !last {
        return Err(invalid(
            dir,
            format!("segment {} is damaged at byte {good}", path.display()),
        ));
    }
    if last {
        let f = OpenOptions::new().write(true).open(&path)?;
        if good < data.len() {
            tracing::warn!(segment = %path.display(), at = good, "cutting off a torn record at the end of the queue log");
            f.set_len(good as u64)?;
        }
        f.sync_data()?;
        if let Some(observe) = durable {
            observe(Durable::File {
                path: &path,
                len: good as u64,
            });
        }
    }
    let file = Arc::new(File::open(&path)?);
    let live = index_records(&recs, id, state, next).map_err(|at| {
        invalid(
            dir,
            format!("segment {}: bad record at byte {at}", path.display()),
        )
    })?;
    state.segments.insert(id, Segment { file, path, live });
    Ok(())
}

/// Puts the records of segment `id` into the index: entries in, acks take
/// entries out (from whichever segment holds them). Returns the entries of
/// this segment still live, or the offset of the first record that is not
/// a well-formed entry or ack of a known partition.
pub(super) fn index_records(
    recs: &[(usize, &[u8])],
    id: u64,
    state: &mut State,
    next: &mut [u64],
) -> Result<usize, usize> {
    let parts = state.parts.len();
    let mut live = 0usize;
    for &(at, body) in recs {
        match body.first() {
            Some(&KIND_ENTRY) => {
                let p = u32_at(body, 1).ok_or(at)? as usize;
                let key = u64_at(body, 5).ok_or(at)?;
                // Keys count up from 1; the largest key has no successor.
                if p >= parts || key == u64::MAX {
                    return Err(at);
                }
                let payload = &body[ENTRY_PREFIX..];
                let entry = Entry {
                    segment: id,
                    offset: (at + ENTRY_PREFIX) as u64,
                    len: payload.len() as u32,
                    messages: messages_in(payload),
                };
                // A key written twice replaces the earlier entry: it is live
                // once, here.
                if let Some(old) = state.parts[p].insert(key, entry) {
                    forget(state, id, &mut live, old.segment);
                }
                next[p] = next[p].max(key + 1);
                live += 1;
            }
            Some(&KIND_ACKS) => {
                for pair in body[1..].chunks_exact(12) {
                    let p = u32_at(pair, 0).ok_or(at)? as usize;
                    let key = u64_at(pair, 4).ok_or(at)?;
                    let Some(e) = state.parts.get_mut(p).and_then(|m| m.remove(&key)) else {
                        continue;
                    };
                    forget(state, id, &mut live, e.segment);
                }
            }
            _ => return Err(at),
        }
    }
    Ok(live)
}

/// One live entry fewer in `segment` (this one, counted in `live`, or an
/// earlier one).
fn forget(state: &mut State, id: u64, live: &mut usize, segment: u64) {
    if segment == id {
        *live = live.saturating_sub(1);
    } else if let Some(s) = state.segments.get_mut(&segment) {
        s.live = s.live.saturating_sub(1);
    }
}

/// What a segment holds, read the way opening the queue replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// Whole records read (entries and acks).
    pub records: usize,
    /// Where the good records end; bytes after it are a torn tail.
    pub good_bytes: usize,
    /// Entries not acked within the segment.
    pub live: usize,
    /// Messages in those entries.
    pub messages: u64,
}

/// Reads `data` as the only segment of a log of `partitions` partitions,
/// through the same record and index code as [`super::LogQueue::open`],
/// without touching a file. A record that is not a well-formed entry or ack
/// of a known partition is an error naming its offset.
pub fn scan_segment(data: &[u8], partitions: u32) -> Result<SegmentScan, QueueError> {
    if partitions == 0 {
        return Err(QueueError::Invalid(
            "the partition count must be at least 1".into(),
        ));
    }
    let (recs, good_bytes) = records(data);
    let mut state = State::new(partitions);
    let mut next = vec![1u64; partitions as usize];
    let live = index_records(&recs, 1, &mut state, &mut next)
        .map_err(|at| QueueError::Invalid(format!("segment: bad record at byte {at}")))?;
    let messages = state
        .parts
        .iter()
        .flat_map(|p| p.values())
        .map(|e| u64::from(e.messages))
        .sum();
    Ok(SegmentScan {
        records: recs.len(),
        good_bytes,
        live,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::embedded::log::record::{NewEntry, put_acks, put_entry};

    /// One entry record: kind, partition, key, payload.
    fn entry_body(p: u32, key: u64, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![KIND_ENTRY];
        b.extend_from_slice(&p.to_le_bytes());
        b.extend_from_slice(&key.to_le_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn the_largest_key_is_a_bad_record_not_an_overflow() {
        let mut seg = Vec::new();
        crate::embedded::log::record::put_record(&mut seg, |b| b.extend(entry_body(0, u64::MAX, b"x")));
        let e = scan_segment(&seg, 1).expect_err("refused");
        assert!(e.to_string().contains("bad record at byte 8"), "{e}");
    }

    #[test]
    fn a_key_written_twice_is_live_once() {
        let mut seg = Vec::new();
        for _ in 0..2 {
            put_entry(
                &mut seg,
                &NewEntry {
                    partition: 0,
                    key: 5,
                    payload: b"x".to_vec(),
                    messages: 1,
                },
            );
        }
        assert_eq!(scan_segment(&seg, 1).expect("scan").live, 1);
        put_acks(&mut seg, &[(0, 5)]);
        assert_eq!(scan_segment(&seg, 1).expect("scan").live, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_replay_or_fail_never_panic(
            b in proptest::collection::vec(any::<u8>(), 0..1024),
            partitions in 1..8u32,
        ) {
            if let Ok(scan) = scan_segment(&b, partitions) {
                prop_assert!(scan.good_bytes <= b.len());
                prop_assert!(scan.live <= scan.records);
            }
        }

        #[test]
        fn written_entries_and_acks_replay_as_written(
            entries in proptest::collection::vec((0..4u32, 1..1000u64, proptest::collection::vec(any::<u8>(), 0..64)), 0..16),
            acked in proptest::collection::vec(any::<bool>(), 16),
            torn in 0..8usize,
        ) {
            let mut seg = Vec::new();
            let mut live = std::collections::BTreeMap::new();
            for (p, key, payload) in &entries {
                // A payload that starts like an envelope is read as one.
                let payload = if payload.first() == Some(&0x0A) { payload[1..].to_vec() } else { payload.clone() };
                put_entry(&mut seg, &NewEntry { partition: *p, key: *key, payload, messages: 1 });
                live.insert((*p, *key), ());
            }
            let acks: Vec<(u32, u64)> = entries
                .iter()
                .zip(&acked)
                .filter(|(_, a)| **a)
                .map(|((p, k, _), _)| (*p, *k))
                .collect();
            if !acks.is_empty() {
                put_acks(&mut seg, &acks);
                for a in &acks {
                    live.remove(a);
                }
            }
            let whole = seg.len();
            let scan = scan_segment(&seg, 4)?;
            prop_assert_eq!(scan.good_bytes, whole);
            prop_assert_eq!(scan.records, entries.len() + usize::from(!acks.is_empty()));
            prop_assert_eq!(scan.live, live.len());
            prop_assert_eq!(scan.messages, live.len() as u64);
            // A torn tail loses only the last record.
            if torn > 0 && whole > 0 {
                let cut = &seg[..whole - torn.min(whole)];
                let scan = scan_segment(cut, 4)?;
                prop_assert!(scan.good_bytes < whole);
                prop_assert_eq!(scan.records, (entries.len() + usize::from(!acks.is_empty())).saturating_sub(1));
            }
        }
    }

    /// Writes the seed corpus of the fuzz targets `queue_replay` and
    /// `conversation_id` under `$CONFAB_FUZZ_SEEDS` (`make fuzz-seeds`).
    #[test]
    #[ignore = "writes the fuzz seed corpus"]
    fn write_fuzz_seeds() {
        let Some(root) = std::env::var_os("CONFAB_FUZZ_SEEDS") else {
            return;
        };
        let root = std::path::PathBuf::from(root);
        let replay = root.join("queue_replay");
        fs::create_dir_all(&replay).expect("dir");
        let batch = prost::Message::encode_to_vec(&crate::QueuedBatch {
            messages: vec![crate::QueuedMessage {
                message_id: 7,
                conversation_id: "d:1:2".into(),
                sender: 1,
                body: "hi".into(),
                client_msg_id: "c1".into(),
                server_time_ms: 1,
                traceparent: String::new(),
            }],
        });
        let mut seg = vec![3u8]; // 4 partitions
        put_entry(
            &mut seg,
            &NewEntry {
                partition: 0,
                key: 1,
                payload: b"\x08\x01".to_vec(),
                messages: 1,
            },
        );
        put_entry(
            &mut seg,
            &NewEntry {
                partition: 3,
                key: 1,
                payload: batch,
                messages: 1,
            },
        );
        fs::write(replay.join("entries"), &seg).expect("write");
        put_acks(&mut seg, &[(0, 1)]);
        fs::write(replay.join("entries-acks"), &seg).expect("write");
        seg.extend_from_slice(&[9, 0, 0, 0, 1]);
        fs::write(replay.join("torn-tail"), &seg).expect("write");
        let ids = root.join("conversation_id");
        fs::create_dir_all(&ids).expect("dir");
        for (name, id) in [
            ("direct", "d:1:2"),
            ("group", "g:42"),
            ("largest", "d:9223372036854775806:9223372036854775807"),
        ] {
            fs::write(ids.join(name), id).expect("write");
        }
    }
}
