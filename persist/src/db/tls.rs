//! TLS to PostgreSQL, as the URL asks: `sslmode=verify-full` (or
//! `verify-ca`) with `sslrootcert=FILE` verifies the server against that CA
//! (plus the system's roots); `require` encrypts without verifying. A URL
//! that names no `sslmode` (and no `PGSSLMODE` in the environment) stays
//! plain: sqlx's own default, `prefer`, would encrypt without verifying
//! anything whenever the server offers TLS, which protects nothing and
//! costs CPU, so it is never chosen silently.
//!
//! MySQL/MariaDB connections are plain in this version (sqlx's default
//! there, `PREFERRED`, is turned off the same way); a URL that asks for
//! TLS to them is refused at start rather than half honoured.

use std::path::PathBuf;

use url::Url;

/// What a database URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTls {
    /// The `sslmode` (lowercase) of the URL, else of `PGSSLMODE`; `None`
    /// when neither names one.
    pub mode: Option<String>,
    /// `sslrootcert` (or `ssl-root-cert`, `ssl-ca`).
    pub root_cert: Option<PathBuf>,
}

const MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

impl SqlTls {
    /// Reads the TLS parameters of a `postgres://` URL; an unknown
    /// `sslmode`, or a CA file with a mode that does not verify, is an
    /// error. Other URLs (SQLite) ask for nothing.
    pub fn of(url: &str) -> Result<Self, String> {
        Self::parse(url, std::env::var("PGSSLMODE").ok())
    }

    /// [`SqlTls::of`] with `PGSSLMODE` given.
    fn parse(url: &str, env_mode: Option<String>) -> Result<Self, String> {
        let none = SqlTls {
            mode: None,
            root_cert: None,
        };
        if is_mysql(url) {
            let parsed = Url::parse(url).map_err(|e| format!("database.url is not a URL: {e}"))?;
            for (key, value) in parsed.query_pairs() {
                let plain = key == "ssl-mode" && value.eq_ignore_ascii_case("disabled");
                if key.starts_with("ssl") && !plain {
                    return Err(format!(
                        "database.url: {key}={value}: TLS to MySQL/MariaDB is not supported in this \
                         version (reach it over a private network, or use PostgreSQL with \
                         sslmode=verify-full)"
                    ));
                }
            }
            return Ok(none);
        }
        if !url.starts_with("postgres") {
            return Ok(none);
        }
        let parsed = Url::parse(url).map_err(|e| format!("database.url is not a URL: {e}"))?;
        let mut tls = none;
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "sslmode" | "ssl-mode" => {
                    let mode = value.to_ascii_lowercase();
                    if !MODES.contains(&mode.as_str()) {
                        return Err(format!(
                            "database.url: unknown sslmode {value:?} (one of {})",
                            MODES.join(", ")
                        ));
                    }
                    tls.mode = Some(mode);
                }
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => tls.root_cert = Some(PathBuf::from(&*value)),
                _ => {}
            }
        }
        // sqlx takes PGSSLMODE when the URL names no sslmode, as libpq does.
        if tls.mode.is_none()
            && let Some(mode) = env_mode
        {
            let mode = mode.to_ascii_lowercase();
            if !MODES.contains(&mode.as_str()) {
                return Err(format!(
                    "PGSSLMODE: unknown sslmode {mode:?} (one of {})",
                    MODES.join(", ")
                ));
            }
            tls.mode = Some(mode);
        }
        if let Some(ca) = &tls.root_cert
            && !tls.verifies()
        {
            return Err(format!(
                "database.url names sslrootcert={} but sslmode={} does not verify the server; \
                 use sslmode=verify-full",
                ca.display(),
                tls.mode.as_deref().unwrap_or("(none)")
            ));
        }
        Ok(tls)
    }

    /// True when every connection is encrypted (the server must offer TLS).
    pub fn required(&self) -> bool {
        matches!(
            self.mode.as_deref(),
            Some("require" | "verify-ca" | "verify-full")
        )
    }

    /// True when the server's certificate is verified.
    pub fn verifies(&self) -> bool {
        matches!(self.mode.as_deref(), Some("verify-ca" | "verify-full"))
    }

    /// For the `tls_mode` gauge: 0 plain (or maybe, with `prefer`/`allow`),
    /// 1 encrypted without verifying the server, 2 verified.
    pub fn gauge(&self) -> i64 {
        if self.verifies() {
            2
        } else if self.required() {
            1
        } else {
            0
        }
    }

    /// Checks that the CA file exists and holds at least one certificate.
    pub fn check_files(&self) -> Result<(), String> {
        if let Some(path) = &self.root_cert {
            let pem = std::fs::read(path).map_err(|e| format!("database CA file {}: {e}", path.display()))?;
            confab_tls::files::certificates(path, &pem).map_err(|e| format!("database CA file {e}"))?;
        }
        Ok(())
    }
}

/// The URL the pool connects with: a PostgreSQL URL for which neither it
/// nor `PGSSLMODE` names an `sslmode` gets `sslmode=disable` (see the
/// module's note); every other URL is unchanged.
pub fn effective_url(url: &str, tls: &SqlTls) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    if is_mysql(url) && !url.contains("ssl-mode=") {
        return format!("{url}{sep}ssl-mode=disabled");
    }
    if !url.starts_with("postgres") || tls.mode.is_some() {
        return url.to_owned();
    }
    format!("{url}{sep}sslmode=disable")
}

fn is_mysql(url: &str) -> bool {
    url.starts_with("mysql:") || url.starts_with("mariadb:")
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SqlTls {
        fn parse_no_env(url: &str) -> Result<Self, String> {
            Self::parse(url, None)
        }
    }

    #[test]
    fn pgsslmode_counts_when_the_url_names_no_mode() {
        let plain = "postgres://u@h/x";
        let t = SqlTls::parse(plain, Some("verify-full".into())).unwrap();
        assert!(t.verifies());
        assert_eq!(effective_url(plain, &t), plain);
        let t = SqlTls::parse("postgres://u@h/x?sslmode=require", Some("verify-full".into())).unwrap();
        assert_eq!(t.mode.as_deref(), Some("require"), "the URL wins");
        let e = SqlTls::parse(plain, Some("sometimes".into())).unwrap_err();
        assert!(e.contains("PGSSLMODE"), "{e}");
    }

    #[test]
    fn reads_the_mode_and_the_ca_file() {
        let t = SqlTls::parse_no_env(
            "postgres://u@db.example:5432/x?sslmode=verify-full&sslrootcert=/etc/ca%20x.pem",
        )
        .unwrap();
        assert_eq!(t.mode.as_deref(), Some("verify-full"));
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ca x.pem")));
        assert!(t.required() && t.verifies());
        let t = SqlTls::parse_no_env("postgres://u@h/x?sslmode=require").unwrap();
        assert!(t.required() && !t.verifies());
        let t = SqlTls::parse_no_env("sqlite://x.db?mode=rwc").unwrap();
        assert_eq!(t.mode, None);
    }

    #[test]
    fn refuses_an_unknown_mode_and_a_ca_that_would_be_ignored() {
        let e = SqlTls::parse_no_env("postgres://u@h/x?sslmode=verify_full").unwrap_err();
        assert!(e.contains("unknown sslmode"), "{e}");
        let e = SqlTls::parse_no_env("postgres://u@h/x?sslmode=require&sslrootcert=/ca.pem").unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        let e = SqlTls::parse_no_env("postgres://u@h/x?sslrootcert=/ca.pem").unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
    }

    #[test]
    fn a_url_without_sslmode_stays_plain() {
        let plain = "postgres://u@h:5432/x";
        assert_eq!(
            effective_url(plain, &SqlTls::parse_no_env(plain).unwrap()),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        let opts = "postgres://u@h/x?application_name=a";
        assert_eq!(
            effective_url(opts, &SqlTls::parse_no_env(opts).unwrap()),
            "postgres://u@h/x?application_name=a&sslmode=disable"
        );
        let asked = "postgres://u@h/x?sslmode=verify-full";
        assert_eq!(effective_url(asked, &SqlTls::parse_no_env(asked).unwrap()), asked);
        let sqlite = "sqlite://x.db";
        assert_eq!(
            effective_url(sqlite, &SqlTls::parse_no_env(sqlite).unwrap()),
            sqlite
        );
    }

    #[test]
    fn mysql_stays_plain_and_refuses_to_half_honour_tls() {
        let plain = "mysql://root@h:3306/x";
        assert_eq!(
            effective_url(plain, &SqlTls::parse_no_env(plain).unwrap()),
            "mysql://root@h:3306/x?ssl-mode=disabled"
        );
        let off = "mariadb://root@h/x?ssl-mode=DISABLED";
        assert_eq!(effective_url(off, &SqlTls::parse_no_env(off).unwrap()), off);
        for asked in ["mysql://h/x?ssl-mode=required", "mysql://h/x?ssl-ca=/ca.pem"] {
            let e = SqlTls::parse_no_env(asked).unwrap_err();
            assert!(e.contains("not supported"), "{e}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let t = SqlTls::parse_no_env(&format!(
            "postgres://u@h/x?sslmode=verify-full&sslrootcert={}",
            missing.display()
        ))
        .unwrap();
        let e = t.check_files().unwrap_err();
        assert!(e.contains("none.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let t = SqlTls::parse_no_env(&format!(
            "postgres://u@h/x?sslmode=verify-full&sslrootcert={}",
            empty.display()
        ))
        .unwrap();
        let e = t.check_files().unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
    }
}
