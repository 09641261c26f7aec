//! What differs between the three SQL engines, in one place.
//!
//! Fixed statements are written once, with PostgreSQL's numbered
//! placeholders, each number used once and in text order (`$1`, `$2`, ...:
//! bind a value twice rather than naming it twice). SQLite and PostgreSQL
//! take that text as it is; for MySQL/MariaDB, which knows only `?`,
//! [`sql`] rewrites it once per statement and keeps the result. The few
//! statements whose grammar differs (upserts, `UPDATE ... RETURNING`, the
//! batch sequence update) are chosen per engine where they are used.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::Backend;

/// `text` for `backend`: as written, or with `?` placeholders for MySQL.
/// A statement that breaks the order rule is a bug: it panics in every
/// test of the statement on MySQL, the one engine where it would bind the
/// wrong values.
pub(crate) fn sql(backend: Backend, text: &'static str) -> &'static str {
    if backend != Backend::Mysql {
        return text;
    }
    static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // A bounded set: one entry per fixed statement of the crate.
    cache
        .entry(text)
        .or_insert_with(|| Box::leak(owned(backend, text.to_owned()).into_boxed_str()))
}

/// A generated statement for `backend` (see [`sql`]); not kept.
pub(crate) fn owned(backend: Backend, text: String) -> String {
    if backend != Backend::Mysql {
        return text;
    }
    match question_marks(&text) {
        Ok(t) => t,
        Err(why) => panic!("statement not portable to MySQL ({why}): {text}"),
    }
}

/// Rewrites `$1, $2, ...` to `?` outside quoted strings; an error when the
/// numbers do not run 1, 2, 3... in text order.
fn question_marks(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut next = 1u32;
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
            out.push(c);
            continue;
        }
        if c != '$' || quoted {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let n: u32 = digits.parse().map_err(|_| "a '$' without a number".to_owned())?;
        if n != next {
            return Err(format!("${n} where ${next} was due"));
        }
        next += 1;
        out.push('?');
    }
    Ok(out)
}

/// `INSERT` that skips a row whose key is already stored: the verb (MySQL's
/// `INSERT IGNORE`) and the tail (`ON CONFLICT ... DO NOTHING` elsewhere).
pub(crate) fn insert_or_skip(backend: Backend, conflict: &str) -> (&'static str, String) {
    match backend {
        Backend::Mysql => ("INSERT IGNORE", String::new()),
        _ => ("INSERT", format!(" ON CONFLICT {conflict} DO NOTHING")),
    }
}

/// The tail of an upsert that sets `columns` to the new row's values.
pub(crate) fn upsert(backend: Backend, key: &str, columns: &[&str]) -> String {
    let set = |c: &&str| match backend {
        Backend::Mysql => format!("{c} = VALUES({c})"),
        _ => format!("{c} = excluded.{c}"),
    };
    let set: Vec<String> = columns.iter().map(set).collect();
    match backend {
        Backend::Mysql => format!(" ON DUPLICATE KEY UPDATE {}", set.join(", ")),
        _ => format!(" ON CONFLICT {key} DO UPDATE SET {}", set.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_question_marks_for_mysql_only() {
        let s = "SELECT a FROM t WHERE b = $1 AND c = '$2' AND d IN ($2, $3)";
        assert_eq!(sql(Backend::Postgres, s), s);
        assert_eq!(sql(Backend::Sqlite, s), s);
        assert_eq!(
            sql(Backend::Mysql, s),
            "SELECT a FROM t WHERE b = ? AND c = '$2' AND d IN (?, ?)"
        );
        // Kept: the same text comes back.
        assert!(std::ptr::eq(sql(Backend::Mysql, s), sql(Backend::Mysql, s)));
    }

    #[test]
    fn a_repeated_or_unordered_placeholder_is_refused() {
        assert!(question_marks("x = $1 OR y = $1").is_err());
        assert!(question_marks("x = $2, y = $1").is_err());
        assert!(question_marks("x = $").is_err());
        assert_eq!(question_marks("x = $1, y = $2").unwrap(), "x = ?, y = ?");
    }

    #[test]
    fn upserts_per_engine() {
        assert_eq!(
            upsert(Backend::Postgres, "(a, b)", &["c", "d"]),
            " ON CONFLICT (a, b) DO UPDATE SET c = excluded.c, d = excluded.d"
        );
        assert_eq!(
            upsert(Backend::Mysql, "(a, b)", &["c"]),
            " ON DUPLICATE KEY UPDATE c = VALUES(c)"
        );
        assert_eq!(insert_or_skip(Backend::Mysql, "(id)").0, "INSERT IGNORE");
        assert_eq!(
            insert_or_skip(Backend::Sqlite, "(id)").1,
            " ON CONFLICT (id) DO NOTHING"
        );
    }
}
