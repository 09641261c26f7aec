//! The Prometheus text format, the part `top` reads: sample lines
//! `name{label="value",...} value [timestamp]`; comments (`# HELP`,
//! `# TYPE`) and lines it cannot read are skipped. Queries sum or take the
//! maximum of a metric's series, or a histogram's buckets.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Every sample of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    samples: Vec<Sample>,
}

/// A histogram's cumulative buckets, `(le, count)` by rising `le`; the last
/// one is `+Inf` when the histogram is whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

impl Samples {
    pub fn parse(text: &str) -> Self {
        Samples {
            samples: text.lines().filter_map(parse_line).collect(),
        }
    }

    /// The values of `name`'s series whose labels include every pair of
    /// `matching` (NaN left out); `None` when no series has that name (the
    /// process does not have the metric, or a labelled one was never set).
    fn values(&self, name: &str, matching: &[(&str, &str)]) -> Option<Vec<f64>> {
        let mut named = self.samples.iter().filter(|s| s.name == name).peekable();
        named.peek()?;
        Some(
            named
                .filter(|s| matching.iter().all(|(k, v)| s.label(k) == Some(v)))
                .map(|s| s.value)
                .filter(|v| !v.is_nan())
                .collect(),
        )
    }

    /// The sum of the matching series; 0 when the metric has series but
    /// none matches.
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> Option<f64> {
        self.values(name, matching).map(|v| v.iter().sum())
    }

    /// The largest value of the matching series.
    pub fn max(&self, name: &str, matching: &[(&str, &str)]) -> Option<f64> {
        self.values(name, matching)?.into_iter().reduce(f64::max)
    }

    /// Histogram `name`'s buckets (`name_bucket`), summed over its other
    /// labels, like `sum by (le)`.
    pub fn buckets(&self, name: &str) -> Option<Buckets> {
        let bucket = format!("{name}_bucket");
        let mut all: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| s.name == bucket)
            .filter_map(|s| Some((parse_value(s.label("le")?)?, s.value)))
            .collect();
        if all.is_empty() {
            return None;
        }
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, f64)> = Vec::new();
        for (le, count) in all {
            match merged.last_mut() {
                Some(last) if last.0 == le => last.1 += count,
                _ => merged.push((le, count)),
            }
        }
        Some(Buckets(merged))
    }
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One sample line; `None` for a comment, a blank line or a line it cannot
/// read.
fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    // The value, then an optional timestamp (ignored).
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `key="value",...}` up to and including the closing brace: the labels
/// and what follows the brace.
fn parse_labels(mut rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once('=')?;
        let (value, after) = parse_quoted(after.trim_start().strip_prefix('"')?)?;
        labels.push((key.trim().to_owned(), value));
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A label value after its opening quote, with `\\`, `\"` and `\n`
/// escapes: the value and what follows the closing quote.
fn parse_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP confab_router_rpc_total RPCs served by method
# TYPE confab_router_rpc_total counter
confab_router_rpc_total{method="login"} 7
confab_router_rpc_total{method="logout"} 3
confab_router_rpc_total{method="lookup"} 11
confab_router_group{group="0",field="is_leader"} 1
confab_router_group{group="1",field="is_leader"} 0
confab_router_group{group="1",field="term"} 4
odd{path="a \"quoted\" \\ value\nnext",x="y",} 2.5 1700000000000
not_a_number NaN
h_bucket{command="login",le="0.001"} 2
h_bucket{command="login",le="+Inf"} 5
h_bucket{command="meta",le="0.001"} 1
h_bucket{command="meta",le="+Inf"} 1
h_count 6
broken{x="unterminated} 1
"#;

    #[test]
    fn reads_samples_labels_and_special_values() {
        let s = Samples::parse(TEXT);
        let odd = s.samples.iter().find(|s| s.name == "odd").expect("odd");
        assert_eq!(odd.labels[0].1, "a \"quoted\" \\ value\nnext");
        assert_eq!(odd.labels[1], ("x".to_owned(), "y".to_owned()));
        assert_eq!(odd.value, 2.5);
        let nan = s.samples.iter().find(|s| s.name == "not_a_number").expect("NaN");
        assert!(nan.value.is_nan());
        assert!(!s.samples.iter().any(|s| s.name == "broken"));
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("1e-3"), Some(0.001));
        assert_eq!(parse_value("x"), None);
    }

    #[test]
    fn sums_and_maxes_matching_series() {
        let s = Samples::parse(TEXT);
        assert_eq!(
            s.sum("confab_router_rpc_total", &[("method", "login")]),
            Some(7.0)
        );
        assert_eq!(s.sum("confab_router_rpc_total", &[]), Some(21.0));
        // Present but never for this label: zero; absent: unknown.
        assert_eq!(
            s.sum("confab_router_rpc_total", &[("method", "batch")]),
            Some(0.0)
        );
        assert_eq!(s.sum("confab_router_nothing", &[]), None);
        assert_eq!(s.sum("confab_router_group", &[("field", "is_leader")]), Some(1.0));
        assert_eq!(s.max("confab_router_group", &[]), Some(4.0));
        assert_eq!(s.max("confab_router_group", &[("field", "none")]), None);
        // NaN is no value.
        assert_eq!(s.sum("not_a_number", &[]), Some(0.0));
        assert_eq!(s.max("not_a_number", &[]), None);
    }

    #[test]
    fn merges_buckets_over_other_labels() {
        let s = Samples::parse(TEXT);
        assert_eq!(
            s.buckets("h"),
            Some(Buckets(vec![(0.001, 3.0), (f64::INFINITY, 6.0)]))
        );
        assert_eq!(s.buckets("confab_router_rpc_total"), None);
    }
}
