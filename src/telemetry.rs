//! Logging setup: one event per line, JSON for machines and readable text for people.
//!
//! [`subscriber`] builds the whole subscriber from the `[log]` settings, the `RUST_LOG` value
//! and a writer, so tests capture output by passing their own writer (as in
//! zero-to-production's `get_subscriber`). [`init`] installs it globally, writing to stderr:
//! stdout is kept for command output (`orgsync status --json`), which a log line must never
//! corrupt. With `log.format = "auto"` the format follows the destination: JSON when stderr is
//! not a terminal (journald, Docker, a pipe), text when a person is watching.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// The logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {filter:?} (from {origin}): {message}")]
    BadFilter {
        filter: String,
        origin: &'static str,
        message: String,
    },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// The filter: `RUST_LOG` when set and not empty, else `log.level`.
pub fn filter(settings: &LogSettings, rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let (text, origin) = match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => (text, "RUST_LOG"),
        None => (settings.level.as_str(), "log.level"),
    };
    EnvFilter::builder()
        .parse(text)
        .map_err(|e| TelemetryError::BadFilter {
            filter: text.to_string(),
            origin,
            message: e.to_string(),
        })
}

/// Whether to write JSON: always for `json`, never for `text`, and for `auto` when the
/// destination is not a terminal.
pub fn use_json(format: LogFormat, destination_is_terminal: bool) -> bool {
    match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !destination_is_terminal,
    }
}

/// Builds the subscriber writing to `writer`.
pub fn subscriber<W>(
    settings: &LogSettings,
    rust_log: Option<&str>,
    destination_is_terminal: bool,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter(settings, rust_log)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // A log line that cannot be written (stderr closed: a pipe whose reader went away)
        // is dropped. By default tracing-subscriber reports that with `eprint!`, which panics
        // on the same closed stderr and takes the daemon down mid-page.
        .log_internal_errors(false)
        .with_target(true);
    if use_json(settings.format, destination_is_terminal) {
        Ok(Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ))
    } else {
        Ok(Box::new(
            builder.with_ansi(destination_is_terminal).finish(),
        ))
    }
}

/// Installs the global subscriber: stderr, filter from `RUST_LOG` or `log.level`.
pub fn init(settings: &LogSettings) -> Result<(), TelemetryError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let is_terminal = std::io::stderr().is_terminal();
    let subscriber = subscriber(settings, rust_log.as_deref(), is_terminal, std::io::stderr)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps everything in memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn settings(format: LogFormat, level: &str) -> LogSettings {
        LogSettings {
            format,
            level: level.into(),
        }
    }

    #[test]
    fn json_is_one_object_per_line() {
        let capture = Capture::default();
        let sub = subscriber(
            &settings(LogFormat::Auto, "info"),
            None,
            false,
            capture.clone(),
        )
        .unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(cycle = 7, direction = "a_to_b", "cycle done");
            tracing::debug!("hidden at info");
        });
        let text = capture.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(event["cycle"], 7);
        assert_eq!(event["direction"], "a_to_b");
        assert_eq!(event["message"], "cycle done");
        assert_eq!(event["level"], "INFO");
    }

    #[test]
    fn text_on_a_terminal_and_rust_log_wins() {
        let capture = Capture::default();
        let sub = subscriber(
            &settings(LogFormat::Auto, "warn"),
            Some("debug"),
            true,
            capture.clone(),
        )
        .unwrap();
        tracing::subscriber::with_default(sub, || tracing::debug!(records = 3, "page written"));
        let text = capture.text();
        assert!(text.contains("page written"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }

    #[test]
    fn format_choice() {
        assert!(use_json(LogFormat::Json, true));
        assert!(!use_json(LogFormat::Text, false));
        assert!(use_json(LogFormat::Auto, false));
        assert!(!use_json(LogFormat::Auto, true));
    }

    #[test]
    fn bad_rust_log_names_its_origin() {
        let err = filter(&settings(LogFormat::Auto, "info"), Some("=== nope [")).unwrap_err();
        assert!(err.to_string().contains("RUST_LOG"), "{err}");
    }
}
