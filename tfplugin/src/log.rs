//! `tracing` → hclog JSON lines on stderr, which go-plugin parses and re-logs at the right
//! level, so `TF_LOG=debug terraform apply` shows our lines. Values of attributes are never
//! logged by the framework: only names, types and sizes.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

/// The level Terraform asked for: `TF_LOG_PROVIDER_<NAME>`, then `TF_LOG_PROVIDER`, then `TF_LOG`.
pub fn level_from_env(provider: &str) -> Option<Level> {
    let specific = format!("TF_LOG_PROVIDER_{}", provider.to_uppercase());
    let v = [specific.as_str(), "TF_LOG_PROVIDER", "TF_LOG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))?;
    match v.to_ascii_lowercase().as_str() {
        "trace" | "json" => Some(Level::TRACE),
        "debug" => Some(Level::DEBUG),
        "info" => Some(Level::INFO),
        "warn" => Some(Level::WARN),
        "error" => Some(Level::ERROR),
        _ => None,
    }
}

/// Install the hclog layer as the global subscriber (once; later calls are ignored).
pub fn init(module: &'static str, level: Level) {
    let layer = HclogLayer { module, max: level };
    let _ = tracing::subscriber::set_global_default(Registry::default().with(layer));
}

/// A `tracing` layer writing hclog JSON lines to stderr, one write per line.
pub struct HclogLayer {
    module: &'static str,
    max: Level,
}

struct Fields(Map<String, Json>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.0.insert(key(field), Json::String(s));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(key(field), Json::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(key(field), Json::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(key(field), Json::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(key(field), Json::from(value));
    }
}

fn key(f: &Field) -> String {
    if f.name() == "message" {
        "@message".into()
    } else {
        f.name().to_owned()
    }
}

/// hclog's level names.
fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// One hclog JSON line: level, module, timestamp, message and the event's fields.
pub fn format_line(module: &str, level: &Level, fields: Map<String, Json>) -> String {
    let ts = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.microsecond()
    );
    let mut m = Map::new();
    m.insert("@level".into(), Json::from(level_name(level)));
    m.insert("@module".into(), Json::from(module));
    m.insert("@timestamp".into(), Json::from(stamp));
    m.insert("@message".into(), Json::from(""));
    m.extend(fields);
    Json::Object(m).to_string()
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        // The HTTP/2 and TLS stacks log every frame at debug: only their warnings matter to
        // a Terraform user.
        let wire = ["h2", "hyper", "tower", "tonic", "rustls", "tokio_rustls"];
        let t = metadata.target();
        let max = if wire
            .iter()
            .any(|w| t == *w || t.starts_with(&format!("{w}::")))
        {
            Level::WARN
        } else {
            self.max
        };
        metadata.level() <= &max
    }
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut f = Fields(Map::new());
        event.record(&mut f);
        let line = format_line(self.module, event.metadata().level(), f.0);
        // One write per line so concurrent events never interleave.
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_hclog_json() {
        let mut f = Map::new();
        f.insert("@message".into(), "hello".into());
        f.insert("type_name".into(), "x".into());
        let line = format_line("provider.infraflux", &Level::DEBUG, f);
        let j: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(j["@level"], "debug");
        assert_eq!(j["@message"], "hello");
        assert_eq!(j["@module"], "provider.infraflux");
        let ts = j["@timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-01-02T03:04:05.000000Z".len(), "{ts}");
    }
}
