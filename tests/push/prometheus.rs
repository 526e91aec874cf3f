//! A strict reader of the Prometheus text format, for the tests that scrape `/metrics`.

use std::collections::BTreeMap;

/// A strict reading of the Prometheus text format (0.0.4): every sample belongs to a family
/// announced by `# TYPE` (with `_count`/`_sum` allowed), names and labels are well-formed,
/// values are floats, and no series appears twice. Returns series -> value.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default();
            assert!(name_ok(name), "bad metric name in {line:?}");
            if keyword == "TYPE" {
                let kind = parts.next().unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "bad type in {line:?}"
                );
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "TYPE twice: {line:?}"
                );
            } else {
                assert_eq!(keyword, "HELP", "unknown comment {line:?}");
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = match series.split_once('{') {
            None => series,
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(name_ok(k), "bad label name in {line:?}");
                    assert!(
                        !v.trim_end_matches('"').contains('"'),
                        "unescaped quote in {line:?}"
                    );
                }
                name
            }
        };
        assert!(name_ok(name), "bad name in {line:?}");
        // A histogram's samples are its name with `_bucket` (an `le` label), `_sum`, `_count`.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        if family != name && name.ends_with("_bucket") {
            assert!(series.contains("le=\""), "a bucket without le: {line:?}");
        }
        assert!(
            types.contains_key(family),
            "sample before its TYPE: {line:?}"
        );
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "series twice: {line:?}"
        );
    }
    assert!(!samples.is_empty(), "no samples");
    samples
}
