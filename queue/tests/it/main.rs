//! Integration tests of confab-queue: the embedded log on a temp dir
//! (segments, acks, replay, torn tails, bad input); RabbitMQ over TLS
//! against a node of the test's own. What needs a database or the writer
//! (the RabbitMQ backend end to end, redelivery, outages) is tested in
//! confab-persist.

mod amqps;
mod embedded;
mod helpers;
