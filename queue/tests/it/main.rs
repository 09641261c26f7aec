//! Integration tests of confab-queue: the embedded queue on a temp dir
//! (the log's segments, acks, replay, torn tails, bad input; switching
//! engines), the model-based crash test of both engines; RabbitMQ over TLS
//! against a node of the test's own. What needs a database or the writer
//! (the RabbitMQ backend end to end, redelivery, outages) is tested in
//! confab-persist.

mod amqps;
mod crash_disk;
mod embedded;
mod helpers;
mod model;
