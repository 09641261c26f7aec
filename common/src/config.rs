//! Configuration plumbing shared by the services.

use figment::providers::Env;
use serde::Serialize;

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
}
