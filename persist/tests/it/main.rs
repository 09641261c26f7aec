//! Integration tests of confab-persist, against real services: SQLite in a
//! temp dir, PostgreSQL on 127.0.0.1:5432, MariaDB on 127.0.0.1:3306,
//! RabbitMQ on 127.0.0.1:5672, and
//! a TLS-only PostgreSQL and RabbitMQ node each TLS test starts for itself.

mod amqp;
mod authz;
mod broker_tls;
mod caps;
mod db;
mod embedded;
mod helpers;
mod integrity;
mod pg_tls;
mod read_wait;
mod reads;
mod service;

/// Runs one async test body against SQLite, PostgreSQL and MariaDB.
#[macro_export]
macro_rules! every_backend {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::helpers::TestDb::new($crate::helpers::Kind::Sqlite)
                    .await
                    .expect("sqlite");
                super::$body(&t.db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(t) = $crate::helpers::TestDb::new($crate::helpers::Kind::Postgres).await {
                    super::$body(&t.db).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                if let Some(t) = $crate::helpers::TestDb::new($crate::helpers::Kind::Mysql).await {
                    super::$body(&t.db).await;
                }
            }
        }
    };
}
