//! Keyrings from code and from the environment: validation, redaction, the plaintext setting.

use std::collections::HashMap;

use super::*;
use crate::ConfigError;

/// A base64 key of 32 bytes of `byte`.
fn b64(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; KEY_LEN])
}

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| vars.get(name).cloned()
}

fn env_error(keys: &str) -> ConfigError {
    Keyring::from_lookup(lookup(&[(KEYS_ENV, keys)])).unwrap_err()
}

#[test]
fn the_environment_lists_keys_oldest_first() {
    let keys = format!(" old:{} , new:{}", b64(1), b64(2));
    let keyring = Keyring::from_lookup(lookup(&[(KEYS_ENV, &keys)])).unwrap().unwrap();
    let ids: Vec<&str> = keyring.key_ids().map(KeyId::as_str).collect();
    assert_eq!(ids, ["old", "new"]);
    assert_eq!(keyring.primary().as_str(), "new");
    assert_eq!(keyring.key("old"), Some(&[1; KEY_LEN]));
    assert!(!keyring.allows_plaintext());
    assert!(Keyring::from_lookup(lookup(&[])).unwrap().is_none(), "unset: encryption off");
    assert!(Keyring::from_lookup(lookup(&[(KEYS_ENV, "")])).unwrap().is_none(), "empty: encryption off");
}

#[test]
fn allow_plaintext_reads_a_switch_and_nothing_else() {
    let keys = format!("k:{}", b64(1));
    let allows = |v: &str| {
        Keyring::from_lookup(lookup(&[(KEYS_ENV, &keys), (ALLOW_PLAINTEXT_ENV, v)]))
            .map(|k| k.unwrap().allows_plaintext())
    };
    let cases = [("true", true), ("TRUE", true), ("1", true), ("on", true), ("Yes", true), (" false ", false)];
    for (v, expected) in cases.into_iter().chain([("0", false), ("off", false), ("no", false), ("", false)]) {
        assert_eq!(allows(v).unwrap(), expected, "{v:?}");
    }
    let err = allows("maybe").unwrap_err();
    assert_eq!(err.key(), ALLOW_PLAINTEXT_ENV);
    assert!(err.reason().contains("\"maybe\""), "{err}");
}

#[test]
fn bad_keys_name_the_variable_and_the_id_never_the_key() {
    let good = b64(3);
    let cases = [
        (format!("k1:{good},k1:{good}"), r#"key "k1" is listed twice"#),
        (format!("k1:{}", &good[..good.len() - 4]), r#"key "k1" must be 32 bytes, not 30"#),
        ("k1:AAECAw==".to_owned(), r#"key "k1" must be 32 bytes, not 4"#),
        (format!("k1:{}!", &good[..good.len() - 1]), r#"key "k1" is not valid standard base64"#),
        ("k1:".to_owned(), r#"key "k1" is empty"#),
        (format!("k1:{good},,k2:{good}"), "entry 2 is empty"),
        (format!("k1:{good},"), "entry 2 is empty"),
        (" ".to_owned(), "entry 1 is empty"),
        (good.clone(), "entry 1 must be id:base64key"),
        (format!("a b:{good}"), "entry 1: key id must be 1 to 64"),
        (format!("{}:{good}", "x".repeat(65)), "entry 1: key id must be 1 to 64"),
    ];
    for (value, reason) in cases {
        let err = env_error(&value);
        assert_eq!(err.key(), KEYS_ENV, "{value:?}");
        assert!(err.reason().starts_with(reason), "{value:?}: {err}");
        assert!(!err.to_string().contains(&good[..8]), "{err} echoes key text");
        assert!(std::error::Error::source(&err).is_none(), "a decoder's message could quote the key");
    }
}

#[test]
fn keyrings_built_in_code_are_checked() {
    let k = |s: &str| KeyId::new(s).unwrap();
    let none: [(KeyId, [u8; KEY_LEN]); 0] = [];
    let err = Keyring::new(none).unwrap_err();
    assert_eq!((err.key(), err.reason()), ("keys", "lists no key"));
    let err = Keyring::new([(k("a"), [1; KEY_LEN]), (k("a"), [2; KEY_LEN])]).unwrap_err();
    assert_eq!((err.key(), err.reason()), ("keys", r#"key "a" is listed twice"#));
    let keyring = Keyring::new([(k("a"), [1; KEY_LEN]), (k("b"), [2; KEY_LEN])]).unwrap();
    let err = keyring.with_primary(&k("c")).unwrap_err();
    assert_eq!((err.key(), err.reason()), ("primary", r#"key "c" is not in the keyring"#));
    assert_eq!(KeyId::new("a:b").unwrap_err().field, "key_id");
    assert_eq!("v1.2_x-y".parse::<KeyId>().unwrap().to_string(), "v1.2_x-y");
}

#[test]
fn debug_shows_ids_only() {
    let keys = format!("k1:{},k2:{}", b64(0xAB), b64(0xCD));
    let keyring = Keyring::from_lookup(lookup(&[(KEYS_ENV, &keys), (ALLOW_PLAINTEXT_ENV, "true")])).unwrap().unwrap();
    let debug = format!("{keyring:?}");
    assert_eq!(debug, r#"Keyring { key_ids: ["k1", "k2"], primary: "k2", allow_plaintext: true }"#);
    assert!(!debug.contains("171") && !debug.contains(&b64(0xAB)[..8]));
}
