//! openraft's storage conformance suite on the RocksDB log store and the
//! snapshotting state machine.

use confab_router::sm::StateMachine;
use confab_router::store::LogStore;
use confab_router::store::NodeDb;
use confab_router::types::TypeConfig;
use openraft::StorageError;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::testing::blank_ent;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::type_config::TypeConfigExt;
use tempfile::TempDir;

struct RocksBuilder;

fn storage_error(e: &(impl std::error::Error + 'static)) -> StorageError<TypeConfig> {
    StorageError::read(TypeConfig::err_from_error(e))
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| storage_error(&e))?;
        let db = NodeDb::open(dir.path()).map_err(|e| storage_error(&e))?;
        // Group 7 shares the database with groups 3 and 9 holding entries on
        // both sides of its key range: the prefixes must keep them apart.
        for neighbour in [3, 9] {
            let mut other = LogStore::new(db.clone(), neighbour);
            let entries = (0..50).map(|i| blank_ent::<TypeConfig>(1, 1, i));
            other
                .append(entries, IOFlushed::noop())
                .await
                .map_err(|e| storage_error(&e))?;
        }
        Ok((dir, LogStore::new(db.clone(), 7), StateMachine::new(7, Some(db))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_store_passes_the_openraft_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await
}
