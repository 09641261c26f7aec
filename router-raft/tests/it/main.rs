//! Integration tests of confab-router: storage conformance, in-process
//! clusters, and real processes under SIGKILL.

mod bad_input;
mod cluster;
mod harness;
mod kill_during_move;
mod lease;
mod moves;
mod mtls;
mod process;
mod storage_suite;
mod tombstone;
