//! `GSCHED_DEBUG`: diagnostics switched on from the environment, as Go's `GODEBUG`.

use std::time::Duration;

/// The environment variable: comma-separated `key=value` settings, as Go's `GODEBUG`.
///
/// - `schedtrace=N`: print the scheduler's counters ([`Metrics`](crate::Metrics)) to stderr
///   every `N` milliseconds, as `GODEBUG=schedtrace=N` does;
/// - `sigquit=1`: print the goroutine dump to stderr on `SIGQUIT`, and go on.
///
/// Unknown keys are ignored, as Go does; a value that does not parse is reported on stderr
/// once and ignored. Builder settings override the variable.
pub const DEBUG_VAR: &str = "GSCHED_DEBUG";

/// The settings `GSCHED_DEBUG` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DebugSettings {
    pub(crate) schedtrace: Option<Duration>,
    pub(crate) sigquit: bool,
}

/// The settings in the environment now.
pub(crate) fn debug_settings() -> DebugSettings {
    match std::env::var(DEBUG_VAR) {
        Ok(value) => parse(&value, |warning| {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| eprintln!("gsched: {DEBUG_VAR}: {warning}"));
        }),
        Err(_) => DebugSettings::default(),
    }
}

fn parse(value: &str, mut warn: impl FnMut(String)) -> DebugSettings {
    let mut settings = DebugSettings::default();
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        match key {
            "schedtrace" => match value.parse::<u64>() {
                Ok(0) => settings.schedtrace = None,
                Ok(ms) => settings.schedtrace = Some(Duration::from_millis(ms)),
                Err(_) => warn(format!(
                    "schedtrace={value:?} is not a period in milliseconds; ignored"
                )),
            },
            "sigquit" => match value {
                "1" => settings.sigquit = true,
                "0" => settings.sigquit = false,
                _ => warn(format!("sigquit={value:?} is neither 0 nor 1; ignored")),
            },
            _ => {}
        }
    }
    settings
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{DebugSettings, parse};

    #[test]
    fn settings_parse_as_godebug_does() {
        let mut warnings = Vec::new();
        let settings = parse("schedtrace=1000, gctrace=1,sigquit=1", |w| warnings.push(w));
        assert_eq!(
            settings,
            DebugSettings {
                schedtrace: Some(Duration::from_secs(1)),
                sigquit: true
            }
        );
        assert!(warnings.is_empty());
        let settings = parse("schedtrace=often,sigquit=yes", |w| warnings.push(w));
        assert_eq!(settings, DebugSettings::default());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("schedtrace=\"often\""));
    }
}
