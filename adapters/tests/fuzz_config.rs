//! Property tests (proptest) over configuration parsing: `DATABASE_URL` / libpq variables, `REDIS_URL` and the
//! Redis variables, the pool variables. Whatever the input, parsing returns a value or a typed error (never a
//! panic), an error names the variable or field it is about, and a password never shows in an error, `Debug` or
//! `Display`. CI runs proptest's default 256 cases per property; `PROPTEST_CASES=100000` runs a longer search
//! (figures in docs/RELIABILITY.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "postgres", feature = "redis"))]

use std::collections::HashMap;

use cpc_adapters::pool::PoolConfig;
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::redis::RedisConfig;
use proptest::prelude::*;

/// A password that cannot appear by accident in a message: a fixed marker around random letters.
fn password() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]{4,12}".prop_map(|s| format!("Pw{s}Zq"))
}

/// Text for one URL part: mostly plausible, sometimes hostile (separators, percent signs, non-ASCII).
fn part() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9.-]{0,12}", ".{0,12}", "[:/@?&=%#\\[\\]]{0,6}"]
}

fn lookup(vars: HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
    move |k| vars.get(k).cloned()
}

proptest! {
    #[test]
    fn database_urls_parse_or_fail_typed_and_never_show_the_password(
        scheme in prop_oneof![Just("postgres".to_owned()), Just("postgresql".to_owned()), Just("mysql".to_owned()), "[a-z]{0,8}"],
        user in part(), pw in password(), host in part(), port in prop_oneof!["[0-9]{1,6}", part()],
        db in part(), query in part(),
    ) {
        let url = format!("{scheme}://{user}:{pw}@{host}:{port}/{db}?{query}");
        match PgConfig::from_url(&url) {
            Ok(c) => {
                prop_assert!(!format!("{c:?}").contains(&pw), "Debug shows the password: {c:?}");
                prop_assert!(!format!("{c}").contains(&pw), "Display shows the password: {c}");
            }
            Err(e) => prop_assert!(!e.to_string().contains(&pw), "the error shows the password: {e}"),
        }
    }

    #[test]
    fn arbitrary_text_as_a_database_url_never_panics(url in ".{0,80}") {
        let _ = PgConfig::from_url(&url);
    }

    #[test]
    fn libpq_variables_parse_or_name_the_variable(
        port in ".{0,8}", sslmode in prop_oneof![Just("require".to_owned()), ".{0,10}"],
        timeout in ".{0,6}", pw in password(),
    ) {
        let vars = HashMap::from([
            ("PGHOST", "db".to_owned()), ("PGPORT", port), ("PGSSLMODE", sslmode),
            ("PGCONNECT_TIMEOUT", timeout), ("PGPASSWORD", pw.clone()),
        ]);
        match PgConfig::from_lookup(lookup(vars)) {
            Ok(c) => {
                let shown = format!("{c:?} {c}");
                prop_assert!(!shown.contains(&pw), "{}", shown);
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(!m.contains(&pw), "{m}");
                prop_assert!(["PGPORT", "PGSSLMODE", "PGCONNECT_TIMEOUT"].iter().any(|v| m.contains(v)), "names no variable: {m}");
            }
        }
    }

    #[test]
    fn redis_urls_parse_or_fail_typed_and_never_show_the_password(
        scheme in prop_oneof![Just("redis".to_owned()), Just("rediss".to_owned()), "[a-z+]{0,8}"],
        user in part(), pw in password(), host in part(), port in prop_oneof!["[0-9]{1,6}", part()], db in part(),
    ) {
        let url = format!("{scheme}://{user}:{pw}@{host}:{port}/{db}");
        match RedisConfig::parse_url(&url, "REDIS_URL") {
            Ok(c) => {
                let shown = format!("{c:?} {c}");
                prop_assert!(!shown.contains(&pw), "{}", shown);
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(!m.contains(&pw), "the error shows the password: {m}");
                prop_assert!(m.contains("REDIS_URL"), "names no variable: {m}");
            }
        }
    }

    #[test]
    fn redis_variables_parse_or_name_the_variable(connect in ".{0,8}", response in ".{0,8}", url in ".{0,40}") {
        let vars = HashMap::from([
            ("REDIS_URL", url), ("REDIS_CONNECT_TIMEOUT_MS", connect), ("REDIS_RESPONSE_TIMEOUT_MS", response),
        ]);
        if let Err(e) = RedisConfig::from_lookup(lookup(vars)) {
            let m = e.to_string();
            prop_assert!(["REDIS_URL", "REDIS_CONNECT_TIMEOUT_MS", "REDIS_RESPONSE_TIMEOUT_MS", "timeout"].iter().any(|v| m.contains(v)), "names no variable: {m}");
        }
    }

    #[test]
    fn pool_variables_parse_or_name_the_variable(
        min in prop_oneof!["[0-9]{1,3}", ".{0,6}"], max in prop_oneof!["[0-9]{1,3}", ".{0,6}"],
        timeout in prop_oneof!["[0-9]{1,5}", ".{0,6}"],
    ) {
        let vars = HashMap::from([("DB_POOL_MIN", min), ("DB_POOL_MAX", max), ("DB_POOL_TIMEOUT_MS", timeout)]);
        if let Err(e) = PoolConfig::from_lookup(lookup(vars)) {
            let m = e.to_string();
            prop_assert!(
                ["DB_POOL_MIN", "DB_POOL_MAX", "DB_POOL_TIMEOUT_MS", "min_connections", "max_connections", "connection_timeout"]
                    .iter()
                    .any(|v| m.contains(v)),
                "names no variable or field: {m}"
            );
        }
    }
}
