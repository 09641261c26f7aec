//! The embedded queue on its own: bad input refused whole (both engines),
//! the log's segments rotating and going once drained, acks and torn tails
//! across a restart, a damaged segment refused; one engine refused over
//! messages the other holds; RocksDB's memory inside its bounds.

use std::time::Duration;

use confab_queue::embedded::{EmbeddedQueue, Engine, OpenOptions};
use confab_queue::{Consumer, Producer, QueueError};

use crate::helpers::{eventually, qmsg, segment_files, take};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_rejects_bad_input_and_enqueues_nothing() {
    for engine in [Engine::Log, Engine::Rocksdb] {
        let dir = tempfile::tempdir().expect("dir");
        let options = OpenOptions {
            engine,
            ..OpenOptions::default()
        };
        let q = EmbeddedQueue::open_with(dir.path(), 4, 100, &options).expect("open");
        let ok = qmsg(1, "d:1:2", 1, "fine");
        for bad in [
            qmsg(2, "d:1:2", 1, &"x".repeat(101)),
            qmsg(0, "d:1:2", 1, "zero id"),
            qmsg(3, "d:2:1", 1, "bad conversation"),
            qmsg(4, "g:1", 0, "no sender"),
            qmsg(5, "d:1:2", 1, ""),
        ] {
            let r = q.enqueue(&[ok.clone(), bad]).await;
            assert!(matches!(r, Err(QueueError::Invalid(_))), "{engine}: {r:?}");
        }
        assert!(q.is_empty(), "{engine}: nothing of a refused call is enqueued");
        q.enqueue(&[ok]).await.expect("the good one alone");
        assert_eq!(q.len(), 1);
    }
}

/// Messages one engine holds are never silently left behind by opening
/// the other over them; once they are written, switching is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_is_refused_over_messages_the_other_holds() {
    for (from, to) in [(Engine::Log, Engine::Rocksdb), (Engine::Rocksdb, Engine::Log)] {
        let dir = tempfile::tempdir().expect("dir");
        let with = |engine| OpenOptions {
            engine,
            ..OpenOptions::default()
        };
        {
            let q = EmbeddedQueue::open_with(dir.path(), 2, 1024, &with(from)).expect("open");
            q.enqueue(&[qmsg(1, "d:1:2", 1, "waiting")])
                .await
                .expect("enqueue");
        }
        match EmbeddedQueue::open_with(dir.path(), 2, 1024, &with(to)) {
            Err(QueueError::Invalid(why)) => assert!(why.contains("not yet written"), "{why}"),
            Err(e) => panic!("{from} -> {to}: expected a clear refusal, got {e}"),
            Ok(_) => panic!("{from} -> {to}: opened over a message the {from} engine holds"),
        }
        {
            let q = EmbeddedQueue::open_with(dir.path(), 2, 1024, &with(from)).expect("reopen");
            assert_eq!(q.engine(), from);
            let mut c = q.consumer(vec![0, 1]);
            let (got, tokens) = take(&mut c, 1).await;
            assert_eq!(got, vec!["waiting".to_owned()]);
            c.ack(tokens).await.expect("ack");
        }
        let q = EmbeddedQueue::open_with(dir.path(), 2, 1024, &with(to)).expect("switched once drained");
        assert!(q.is_empty());
    }
}

/// A consumer that keeps up acks each segment before the log moves on:
/// the drained segment is deleted when the next one starts (off the
/// writer thread), so the directory holds the active segment and at most
/// one on its way out, whatever went through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_drained_before_rotation_are_deleted() {
    let dir = tempfile::tempdir().expect("dir");
    let q = EmbeddedQueue::open_segmented(dir.path(), 1, 1024, 1024).expect("open");
    let mut c = q.consumer(vec![0]);
    for i in 1..=300u64 {
        q.enqueue(&[qmsg(i, "d:1:2", 1, &format!("body {i}"))])
            .await
            .expect("enqueue");
        let (got, tokens) = take(&mut c, 1).await;
        assert_eq!(got, vec![format!("body {i}")]);
        c.ack(tokens).await.expect("ack");
    }
    assert_eq!(q.len(), 0);
    eventually(
        Duration::from_secs(5),
        "drained segment files deleted",
        || async { segment_files(dir.path()).len() <= 2 },
    )
    .await;
    assert!(q.segments() <= 2, "{} segments", q.segments());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_segments_rotate_drain_and_replay_acks_and_torn_tails() {
    let dir = tempfile::tempdir().expect("dir");
    let bodies = |r: std::ops::RangeInclusive<u64>| r.map(|i| format!("body {i}")).collect::<Vec<_>>();
    {
        let q = EmbeddedQueue::open_segmented(dir.path(), 2, 1024, 1024).expect("open");
        assert!(
            EmbeddedQueue::open_segmented(dir.path(), 2, 1024, 1024).is_err(),
            "a second opener of the same directory is refused"
        );
        for i in 1..=200u64 {
            q.enqueue(&[qmsg(i, "d:1:2", 1, &format!("body {i}"))])
                .await
                .expect("enqueue");
        }
        assert_eq!(q.len(), 200);
        let before = q.segments();
        assert!(before > 5, "small segments rotate ({before})");
        assert_eq!(segment_files(dir.path()).len(), before);

        let mut c = q.consumer(vec![0, 1]);
        let (got, tokens) = take(&mut c, 150).await;
        assert_eq!(got, bodies(1..=150), "in enqueue order");
        c.ack(tokens).await.expect("ack");
        assert_eq!(q.len(), 50);
        let after = q.segments();
        assert!(
            after < before,
            "drained segments are deleted ({before} -> {after})"
        );
        assert_eq!(
            segment_files(dir.path()).len(),
            after,
            "and their files with them"
        );
    }

    // A crash mid-write leaves a torn record at the end of the last segment.
    let last = segment_files(dir.path()).pop().expect("a segment");
    let intact = std::fs::metadata(&last).expect("meta").len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .expect("open segment");
        f.write_all(b"\x40\x00\x00\x00\x01\x02\x03\x04torn")
            .expect("write");
    }

    let q = EmbeddedQueue::open_segmented(dir.path(), 2, 1024, 1024).expect("reopen");
    assert_eq!(
        std::fs::metadata(&last).expect("meta").len(),
        intact,
        "the torn tail is cut off"
    );
    assert_eq!(q.len(), 50, "the acks survived the restart");
    let mut c = q.consumer(vec![0, 1]);
    let (got, tokens) = take(&mut c, 50).await;
    assert_eq!(
        got,
        bodies(151..=200),
        "what was not acked comes again, in order, once"
    );
    c.ack(tokens).await.expect("ack");
    assert!(q.is_empty());
    q.enqueue(&[qmsg(201, "d:1:2", 1, "after")])
        .await
        .expect("enqueue after replay");
    let (got, _) = take(&mut c, 1).await;
    assert_eq!(got, vec!["after".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_segment_before_the_last_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let q = EmbeddedQueue::open_segmented(dir.path(), 1, 1024, 512).expect("open");
        for i in 1..=40u64 {
            q.enqueue(&[qmsg(i, "d:1:2", 1, "some body to fill segments")])
                .await
                .expect("enqueue");
        }
        assert!(q.segments() > 2);
    }
    let first = segment_files(dir.path()).remove(0);
    let mut data = std::fs::read(&first).expect("read");
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&first, data).expect("write");
    match EmbeddedQueue::open_segmented(dir.path(), 1, 1024, 512) {
        Err(QueueError::Invalid(why)) => assert!(why.contains("damaged"), "{why}"),
        Err(e) => panic!("expected a clear refusal, got {e}"),
        Ok(_) => panic!("a damaged segment in the middle of the log must not be skipped silently"),
    }
}

/// RocksDB's memory stays inside what the queue configures while a backlog
/// larger than the memtables goes to tables and is read back from them:
/// the memtables at most two of 8 MiB per column family, each table's
/// index with its reader, and the queue's reads (each entry is read once)
/// leave the shared block cache empty; `memory` reports all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_memory_stays_within_its_configured_bounds() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().expect("dir");
    let options = OpenOptions {
        engine: Engine::Rocksdb,
        ..OpenOptions::default()
    };
    // Entries of one to a few messages (what a cache would keep: a block
    // larger than a cache shard is never cached): 64 partitions, one
    // message to each per call.
    let q = EmbeddedQueue::open_with(dir.path(), 64, 16 << 10, &options).expect("open");
    // 48 MiB of bodies LZ4 cannot squeeze much: a backlog of six memtables.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut body = || {
        (0..16_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'!' + (seed % 90) as u8)
            })
            .collect::<String>()
    };
    let total = 3_000u64;
    for batch in 0..total / 60 {
        let msgs: Vec<_> = (1..=60)
            .map(|i| qmsg(batch * 60 + i, &format!("d:1:{}", i + 1), 1, &body()))
            .collect();
        q.enqueue(&msgs).await.expect("enqueue");
    }
    let parts = |q: &EmbeddedQueue| {
        q.memory()
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>()
    };
    let written = parts(&q);
    assert!(
        written["memtables"] > 0,
        "the memtables hold what was written: {written:?}"
    );
    assert!(
        written["memtables"] <= 3 * 2 * 8 * MIB,
        "memtables over 2 x 8 MiB per family: {written:?}"
    );
    assert!(
        written["table_readers"] > 0,
        "the backlog went to tables: {written:?}"
    );

    let mut c = q.consumer((0..64).collect());
    let mut read = 0;
    while read < total as usize {
        let batch = tokio::time::timeout(Duration::from_secs(5), c.next_batch(64, Duration::ZERO))
            .await
            .expect("deliveries in time")
            .expect("next_batch");
        let mut tokens = Vec::new();
        for d in batch {
            read += confab_queue::decode_payload(&d.payload, d.encoding, 16 << 10)
                .expect("decodable")
                .len();
            tokens.push(d.token);
        }
        c.ack(tokens).await.expect("ack");
    }
    assert_eq!(read, total as usize);
    let after = parts(&q);
    // Filling the cache, 40 MiB of tables read back would leave it at its
    // 1 MiB.
    assert!(
        after["block_cache"] < MIB / 4,
        "reading the backlog back filled the block cache: {after:?}"
    );
}
