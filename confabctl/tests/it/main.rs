//! End-to-end tests of confabctl with real processes: 3 routers, persist
//! and a gateway on free loopback ports, and the built `confabctl` binary.

mod cluster;
mod top;
