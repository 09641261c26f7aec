//! Configuration plumbing shared by the services: one loader (defaults,
//! then a TOML file, then the environment), the environment overrides, the
//! `--check-config` print, and command-line overrides. Each service keeps
//! its own types and its own `validate()`.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// `T`'s configuration: its defaults, then `file` (TOML; it must exist
/// when given), then the environment (`CONFAB_<KEY>`,
/// `CONFAB_<SECTION>__<KEY>`, see [`env_overrides`]). Not validated.
pub fn load<T>(file: Option<&Path>) -> Result<T, Error>
where
    T: Serialize + DeserializeOwned + Default,
{
    load_with(file, |layers| layers)
}

/// [`load`] with `extra` layers between the file and the `CONFAB_*`
/// environment (a service's own variables, such as `DATABASE_URL`).
pub fn load_with<T>(file: Option<&Path>, extra: impl FnOnce(Figment) -> Figment) -> Result<T, Error>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut layers = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(Error::ConfigFileMissing {
                path: path.to_path_buf(),
            });
        }
        layers = layers.merge(Toml::file(path));
    }
    extra(layers)
        .merge(env_overrides::<T>())
        .extract()
        .map_err(|e| Error::Config(Box::new(e)))
}

/// `--check-config`: the effective configuration, as TOML, on stdout.
pub fn print<T: Serialize>(config: &T) -> Result<(), Error> {
    println!("{}", toml::to_string_pretty(config)?);
    Ok(())
}

/// A command-line flag overrides the configured value when it was given.
pub fn set_from_flag<T>(slot: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *slot = value;
    }
}

/// Environment overrides `CONFAB_<KEY>` / `CONFAB_<SECTION>__<KEY>` for the
/// configuration type `T`, limited to `T`'s own top-level keys: other tools
/// read `CONFAB_*` variables too (`CONFAB_ROUTER` for confabctl and
/// confab-bench), and a service must not refuse to start over one of theirs.
pub fn env_overrides<T: Serialize + Default>() -> Env {
    let known: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    Env::prefixed("CONFAB_")
        .filter(move |key| {
            let top = key
                .as_str()
                .split("__")
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            known.contains(&top)
        })
        .split("__")
        .lowercase(true)
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::Serialized;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        port: u16,
        inner: Inner,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        depth: u32,
    }

    #[test]
    // figment::Jail's closure signature returns figment's (large) error type.
    #[allow(clippy::result_large_err)]
    fn known_keys_override_and_foreign_ones_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONFAB_PORT", "7");
            jail.set_env("CONFAB_INNER__DEPTH", "3");
            jail.set_env("CONFAB_ROUTER", "127.0.0.1:1");
            let got: Sample = Figment::from(Serialized::defaults(Sample::default()))
                .merge(env_overrides::<Sample>())
                .extract()?;
            assert_eq!(
                got,
                Sample {
                    port: 7,
                    inner: Inner { depth: 3 }
                }
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn load_layers_defaults_file_extra_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sample.toml", "port = 5\n[inner]\ndepth = 1\n")?;
            jail.set_env("CONFAB_INNER__DEPTH", "3");
            let got: Sample = load_with(Some(Path::new("sample.toml")), |layers| layers.merge(("port", 6)))
                .map_err(|e| e.to_string())?;
            assert_eq!(
                got,
                Sample {
                    port: 6,
                    inner: Inner { depth: 3 }
                }
            );
            let defaults: Sample = load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                defaults,
                Sample {
                    port: 0,
                    inner: Inner { depth: 3 }
                }
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_or_a_bad_key_is_an_error() {
        let missing = load::<Sample>(Some(Path::new("/nonexistent/confab.toml"))).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "config file /nonexistent/confab.toml does not exist"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "nope = 1\n").expect("write");
        let bad = load::<Sample>(Some(&file)).unwrap_err();
        assert!(matches!(bad, Error::Config(_)), "{bad}");
        assert!(bad.to_string().contains("nope"), "{bad}");
    }

    #[test]
    fn a_flag_overrides_only_when_given() {
        let mut port = 1u16;
        set_from_flag(&mut port, None);
        assert_eq!(port, 1);
        set_from_flag(&mut port, Some(2));
        assert_eq!(port, 2);
    }
}
