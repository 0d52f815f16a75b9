//! metrics: the functions' CloudWatch metrics as the emulator sees them.
//!
//! A function emits its metrics as Embedded Metric Format documents, JSON lines on stdout
//! (`nightshift::metrics`), which CloudWatch Logs turns into metrics in AWS. The emulator reads
//! the same lines from the functions' output ([`MetricStore::observe`], fed by the invocation
//! history's log tee) and keeps each metric's data points the way CloudWatch would extract
//! them: one metric per (namespace, name, dimension set), so a document with several
//! dimension sets (a rollup) counts its values under each. A developer then reads the numbers
//! CloudWatch would show ([`MetricStore::query`]: `nightshift metrics`, `GET
//! /_nightshift/metrics`) without an AWS account.
//!
//! Extraction follows the specification
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! a value is a number or an array of numbers; a metric or dimension the directive names but
//! the root lacks is skipped, as CloudWatch skips it. Data points are stamped with the
//! emulator's clock when the line is read, so `--since 10m` means ten minutes of the clock the
//! schedules run on (a manual or accelerated clock included), not the function's own
//! timestamps, which are wall-clock time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::SharedClock;

/// Data points kept per metric; older ones are dropped first (the totals keep counting).
pub const KEEP_POINTS: usize = 10_000;

/// Most metrics kept; a document naming a new metric past this is counted as dropped, so a
/// function putting an id in a dimension cannot grow the emulator without bound.
pub const KEEP_METRICS: usize = 2_000;

/// A metric: what CloudWatch keys its data by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MetricId {
    /// The namespace.
    pub namespace: String,
    /// The metric's name.
    pub name: String,
    /// The dimensions, by key.
    pub dimensions: BTreeMap<String, String>,
}

/// One data point extracted from a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// Which metric.
    pub metric: MetricId,
    /// The unit the directive gave (`None` when it gave none).
    pub unit: Option<String>,
    /// The values (a document's array gives several).
    pub values: Vec<f64>,
}

/// The data points of an EMF document, or `None` when `line` is not one (not a JSON object,
/// or no `_aws.CloudWatchMetrics` array).
pub fn extract(line: &str) -> Option<Vec<Datum>> {
    // Cheap refusal of the usual log line before any JSON parse.
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') || !line.contains("\"_aws\"") {
        return None;
    }
    let root: serde_json::Map<String, Value> = serde_json::from_str(line).ok()?;
    let directives = root.get("_aws")?.get("CloudWatchMetrics")?.as_array()?;
    let mut data = Vec::new();
    for directive in directives {
        let Some(namespace) = directive.get("Namespace").and_then(Value::as_str) else {
            continue;
        };
        let sets = directive.get("Dimensions").and_then(Value::as_array);
        let no_sets = [Value::Array(Vec::new())];
        let sets = match sets {
            Some(sets) if !sets.is_empty() => sets.as_slice(),
            _ => &no_sets,
        };
        for definition in directive
            .get("Metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = definition.get("Name").and_then(Value::as_str) else {
                continue;
            };
            let values: Vec<f64> = match root.get(name) {
                Some(Value::Number(n)) => n.as_f64().into_iter().collect(),
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_f64).collect(),
                _ => continue,
            };
            if values.is_empty() {
                continue;
            }
            let unit = definition
                .get("Unit")
                .and_then(Value::as_str)
                .map(str::to_owned);
            for set in sets {
                let Some(keys) = set.as_array() else { continue };
                let dimensions: Option<BTreeMap<String, String>> = keys
                    .iter()
                    .map(|k| {
                        let k = k.as_str()?;
                        let v = root.get(k)?.as_str()?;
                        Some((k.to_owned(), v.to_owned()))
                    })
                    .collect();
                let Some(dimensions) = dimensions else {
                    continue;
                };
                data.push(Datum {
                    metric: MetricId {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        dimensions,
                    },
                    unit: unit.clone(),
                    values: values.clone(),
                });
            }
        }
    }
    Some(data)
}

/// What `nightshift metrics` asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetricsQuery {
    /// Only metrics of this function: its `Function` dimension, or the function (its name
    /// in the emulator) that wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Only data points of the last this many seconds of the emulator's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_s: Option<u64>,
}

/// A metric's statistics over a window, as CloudWatch's `GetMetricStatistics` would give them
/// for one period spanning it (`SampleCount`, `Sum`, `Minimum`, `Maximum`, `Average`) with the
/// p50 and p95 of its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// The metric.
    #[serde(flatten)]
    pub metric: MetricId,
    /// Its unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The function (its name in the emulator) that wrote it last.
    pub source: String,
    /// Values in the window.
    pub samples: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// `sum / samples`.
    pub avg: f64,
    /// The median value (nearest rank).
    pub p50: f64,
    /// The 95th percentile value (nearest rank).
    pub p95: f64,
}

/// The running totals of a metric since the emulator started, for `status`: cheap to give
/// every second, unlike percentiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricTotal {
    /// The metric.
    #[serde(flatten)]
    pub metric: MetricId,
    /// Its unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Values so far.
    pub samples: u64,
    /// Their sum.
    pub sum: f64,
}

#[derive(Debug)]
struct Series {
    unit: Option<String>,
    source: String,
    points: VecDeque<(DateTime<Utc>, f64)>,
    samples: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    series: BTreeMap<MetricId, Series>,
    dropped: u64,
}

/// The metrics extracted from the functions' output; cheap to clone (one store).
#[derive(Clone)]
pub struct MetricStore {
    clock: SharedClock,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MetricStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricStore").finish_non_exhaustive()
    }
}

impl MetricStore {
    /// An empty store stamping data points with `clock`.
    pub fn new(clock: SharedClock) -> Self {
        MetricStore {
            clock,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads a line `function` wrote; keeps its data points when it is an EMF document.
    pub fn observe(&self, function: &str, line: &str) {
        let Some(data) = extract(line) else {
            return;
        };
        let now = self.clock.now();
        let mut inner = self.lock();
        for datum in data {
            let known = inner.series.len();
            let series = match inner.series.get_mut(&datum.metric) {
                Some(series) => series,
                None if known >= KEEP_METRICS => {
                    inner.dropped += 1;
                    continue;
                }
                None => inner.series.entry(datum.metric).or_insert(Series {
                    unit: None,
                    source: String::new(),
                    points: VecDeque::new(),
                    samples: 0,
                    sum: 0.0,
                }),
            };
            series.unit = datum.unit;
            function.clone_into(&mut series.source);
            for value in datum.values {
                if series.points.len() >= KEEP_POINTS {
                    series.points.pop_front();
                }
                series.points.push_back((now, value));
                series.samples += 1;
                series.sum += value;
            }
        }
    }

    /// Metrics named in documents after [`KEEP_METRICS`] were reached, not kept.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The statistics of each metric matching `query` that has data points in its window,
    /// ordered by namespace, name and dimensions.
    pub fn query(&self, query: &MetricsQuery) -> Vec<MetricSummary> {
        let from = query
            .since_s
            .map(|s| self.clock.now() - Duration::from_secs(s));
        let inner = self.lock();
        inner
            .series
            .iter()
            .filter(|(id, series)| matches_function(query.function.as_deref(), id, series))
            .filter_map(|(id, series)| {
                let mut values: Vec<f64> = series
                    .points
                    .iter()
                    .filter(|(at, _)| from.is_none_or(|from| *at >= from))
                    .map(|(_, v)| *v)
                    .collect();
                if values.is_empty() {
                    return None;
                }
                values.sort_by(f64::total_cmp);
                let sum: f64 = values.iter().sum();
                let rank = |p: f64| {
                    let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
                    values[i - 1]
                };
                Some(MetricSummary {
                    metric: id.clone(),
                    unit: series.unit.clone(),
                    source: series.source.clone(),
                    samples: values.len() as u64,
                    sum,
                    min: values[0],
                    max: values[values.len() - 1],
                    avg: sum / values.len() as f64,
                    p50: rank(0.50),
                    p95: rank(0.95),
                })
            })
            .collect()
    }

    /// Every metric's running totals since the start.
    pub fn totals(&self) -> Vec<MetricTotal> {
        self.lock()
            .series
            .iter()
            .map(|(id, series)| MetricTotal {
                metric: id.clone(),
                unit: series.unit.clone(),
                samples: series.samples,
                sum: series.sum,
            })
            .collect()
    }
}

/// Whether a metric belongs to `function`: its `Function` dimension (the name the function
/// gives itself, `queue-processor`) or the emulator's name of the function that wrote it
/// (`nightshift-QueueProcessorFunction`), by the same suffix rule as `resolve_function`.
fn matches_function(function: Option<&str>, id: &MetricId, series: &Series) -> bool {
    let Some(function) = function else {
        return true;
    };
    id.dimensions.get("Function").map(String::as_str) == Some(function)
        || series.source == function
        || series.source.ends_with(&format!("-{function}"))
}

/// Renders summaries as the table `nightshift metrics` prints.
pub fn render_table(summaries: &[MetricSummary]) -> String {
    let mut rows = vec![[
        "METRIC".to_owned(),
        "DIMENSIONS".to_owned(),
        "UNIT".to_owned(),
        "SAMPLES".to_owned(),
        "SUM".to_owned(),
        "AVG".to_owned(),
        "P95".to_owned(),
        "MAX".to_owned(),
    ]];
    for s in summaries {
        let dimensions: Vec<String> = s
            .metric
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push([
            format!("{}/{}", s.metric.namespace, s.metric.name),
            dimensions.join(" "),
            s.unit.clone().unwrap_or_default(),
            s.samples.to_string(),
            number(s.sum),
            number(s.avg),
            number(s.p95),
            number(s.max),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i >= 3 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A value as a person reads it: whole numbers without a fraction, others to two places.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn store() -> (MetricStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new("2026-12-02T10:00:00Z".parse().unwrap()));
        (MetricStore::new(clock.clone()), clock)
    }

    const JOB: &str = r#"{"Function":"queue-processor","Kind":"order.placed","Outcome":"succeeded","Jobs":1,"JobDuration":[4,8],"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"nightshift","Dimensions":[["Function","Kind","Outcome"],["Function"]],"Metrics":[{"Name":"Jobs","Unit":"Count"},{"Name":"JobDuration","Unit":"Milliseconds"}]}]}}"#;

    #[test]
    fn extracts_each_metric_under_each_dimension_set() {
        let data = extract(JOB).unwrap();
        let names: Vec<(String, usize, Vec<f64>)> = data
            .iter()
            .map(|d| {
                (
                    d.metric.name.clone(),
                    d.metric.dimensions.len(),
                    d.values.clone(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("Jobs".into(), 3, vec![1.0]),
                ("Jobs".into(), 1, vec![1.0]),
                ("JobDuration".into(), 3, vec![4.0, 8.0]),
                ("JobDuration".into(), 1, vec![4.0, 8.0]),
            ]
        );
        assert_eq!(data[0].unit.as_deref(), Some("Count"));
    }

    #[test]
    fn lines_that_are_no_documents_are_ignored() {
        assert!(extract("INFO email sent").is_none());
        assert!(extract(r#"{"level":"INFO","fields":{"message":"hi"}}"#).is_none());
        assert!(extract(r#"{"_aws": broken"#).is_none());
        // A metric the root lacks, or a dimension that is no string, is skipped (as
        // CloudWatch skips it), not the whole document.
        let partial = r#"{"A":1,"D":2,"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["D"],[]],"Metrics":[{"Name":"A"},{"Name":"B"}]}]}}"#;
        let data = extract(partial).unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].metric.name, "A");
        assert!(data[0].metric.dimensions.is_empty());
    }

    #[test]
    fn queries_sum_count_and_percentiles_in_a_window_of_the_emulator_clock() {
        let (store, clock) = store();
        store.observe("nightshift-QueueProcessorFunction", JOB);
        clock.advance(Duration::from_secs(600)).unwrap();
        store.observe("nightshift-QueueProcessorFunction", JOB);
        store.observe("nightshift-EmailSenderFunction", "not a metric");
        let all = store.query(&MetricsQuery::default());
        assert_eq!(all.len(), 4);
        let jobs = all
            .iter()
            .find(|s| s.metric.name == "Jobs" && s.metric.dimensions.len() == 3)
            .unwrap();
        assert_eq!((jobs.samples, jobs.sum), (2, 2.0));
        let durations = all
            .iter()
            .find(|s| s.metric.name == "JobDuration" && s.metric.dimensions.len() == 1)
            .unwrap();
        assert_eq!(
            (
                durations.samples,
                durations.min,
                durations.p50,
                durations.p95,
                durations.max
            ),
            (4, 4.0, 4.0, 8.0, 8.0)
        );
        // The last 5 minutes hold the second document only.
        let recent = store.query(&MetricsQuery {
            since_s: Some(300),
            ..MetricsQuery::default()
        });
        assert!(recent.iter().all(|s| s.samples <= 2));
        assert_eq!(
            recent.iter().find(|s| s.metric.name == "Jobs").unwrap().sum,
            1.0
        );
        // By the Function dimension, by the emulator's name, by its suffix.
        for name in [
            "queue-processor",
            "nightshift-QueueProcessorFunction",
            "QueueProcessorFunction",
        ] {
            let only = store.query(&MetricsQuery {
                function: Some(name.into()),
                ..MetricsQuery::default()
            });
            assert_eq!(only.len(), 4, "{name}");
        }
        let none = store.query(&MetricsQuery {
            function: Some("email-sender".into()),
            ..MetricsQuery::default()
        });
        assert!(none.is_empty());
        let totals = store.totals();
        assert_eq!(totals.iter().map(|t| t.samples).sum::<u64>(), 2 + 2 + 4 + 4);
        let table = render_table(&all);
        assert!(table.starts_with("METRIC"), "{table}");
        let row: Vec<&str> = table.lines().last().unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "nightshift/Jobs",
                "Function=queue-processor",
                "Kind=order.placed",
                "Outcome=succeeded",
                "Count",
                "2",
                "2",
                "1",
                "1",
                "1"
            ],
            "{table}"
        );
    }

    #[test]
    fn metrics_past_the_bound_are_dropped_and_counted() {
        let (store, _) = store();
        for i in 0..KEEP_METRICS + 3 {
            let line = format!(
                r#"{{"Id":"{i}","X":1,"_aws":{{"Timestamp":1,"CloudWatchMetrics":[{{"Namespace":"n","Dimensions":[["Id"]],"Metrics":[{{"Name":"X"}}]}}]}}}}"#
            );
            store.observe("f", &line);
        }
        assert_eq!(store.totals().len(), KEEP_METRICS);
        assert_eq!(store.dropped(), 3);
    }
}
