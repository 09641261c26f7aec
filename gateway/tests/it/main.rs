//! End-to-end tests with real processes: 3 routers, 1 persist (SQLite +
//! embedded queue) and gateways, on 127.0.0.1 free ports and temp dirs.

mod amqp_pg;
mod authz;
mod bad_input;
mod bench_chat;
mod bench_faults;
mod bench_router;
mod chat;
mod chat_chaos;
mod chat_cli;
mod client_tls;
mod console;
mod discovery;
mod failover;
mod friends;
mod groups;
mod harness;
mod limits;
mod logs;
mod mariadb;
mod mtls;
mod pages;
mod persist_crash;
mod persist_scale;
mod pipeline;
mod read_receipts;
mod recall;
mod resend;
mod traces;
mod user_limits;
mod web;
mod websocket;
mod zone_http;
mod zones;
