//! Metrics in CloudWatch Embedded Metric Format (EMF): JSON lines on stdout that CloudWatch
//! Logs turns into metrics, with no API call from the function.
//!
//! Specification:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
//! (the `_aws` metadata with `Timestamp` in epoch milliseconds and `CloudWatchMetrics`, at
//! most 30 dimension keys in a dimension set, at most 100 metric definitions in a directive,
//! at most 100 values in a metric's array, every referenced dimension and metric a member of
//! the root object). Units are those of `MetricDatum`:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html>.
//!
//! Each invocation gets its own collector ([`Emitter::invocation`] → [`Metrics`]), which the
//! handler fills and flushes once at the end, on the error path too. A collector groups what it
//! records by dimension values and writes one document per group (more when a group holds
//! over 100 metrics or a metric over 100 values). Dimension values are `&'static str`: a
//! function name, a job kind from the registry, an outcome; never an id or an address, so the
//! number of metrics stays bounded by construction.
//!
//! Why not the `metrics` facade with `metrics_cloudwatch_embedded`: that crate installs one
//! global recorder per process (its own tests fork a process per test). The emulator's
//! in-process invoker and the test suites run the three functions' handlers concurrently in
//! one process, so a global recorder would mix their invocations' metrics and could not be
//! asserted per test; a per-invocation collector written to an injected [`MetricsSink`] can.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Variable: the CloudWatch namespace of the metrics ([`DEFAULT_NAMESPACE`] when unset).
pub const NAMESPACE_VAR: &str = "NIGHTSHIFT_METRICS_NAMESPACE";

/// The namespace when [`NAMESPACE_VAR`] is unset.
pub const DEFAULT_NAMESPACE: &str = "nightshift";

/// The dimension every document carries: the function that emitted it.
pub const FUNCTION_DIMENSION: &str = "Function";

/// EMF: "A DimensionSet MUST NOT contain more than 30 dimension keys."
pub const MAX_DIMENSIONS: usize = 30;

/// EMF: a directive's `Metrics` array "MUST NOT contain more than 100 MetricDefinition
/// objects".
pub const MAX_METRICS: usize = 100;

/// EMF: a metric's value array holds at most 100 values.
pub const MAX_VALUES: usize = 100;

/// The units CloudWatch accepts (`MetricDatum`'s `Unit`), which EMF's `Unit` takes.
pub const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The units nightshift's metrics use (a subset of [`UNITS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A duration.
    Milliseconds,
}

impl Unit {
    /// The unit's name in EMF.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// Where flushed EMF documents go, one JSON line each.
pub trait MetricsSink: Send + Sync {
    /// Writes one document (a JSON object on one line, without the newline).
    fn write_line(&self, line: &str);
}

/// The sink of deployed functions: stdout, which Lambda sends to CloudWatch Logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdout;

impl MetricsSink for Stdout {
    fn write_line(&self, line: &str) {
        // `println!` (not a locked `write_all`) so that test harnesses capture it.
        println!("{line}");
    }
}

/// Makes the collectors of one function: its namespace, its name (the [`FUNCTION_DIMENSION`])
/// and its sink. Built once per instance; cheap to clone.
#[derive(Clone)]
pub struct Emitter {
    namespace: Arc<str>,
    function: &'static str,
    sink: Arc<dyn MetricsSink>,
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("namespace", &self.namespace)
            .field("function", &self.function)
            .finish_non_exhaustive()
    }
}

impl Emitter {
    /// Documents for `function` in `namespace`, written to `sink`.
    pub fn new(namespace: &str, function: &'static str, sink: Arc<dyn MetricsSink>) -> Self {
        Emitter {
            namespace: namespace.into(),
            function,
            sink,
        }
    }

    /// Documents for `function` in [`DEFAULT_NAMESPACE`] on stdout.
    pub fn stdout(function: &'static str) -> Self {
        Emitter::new(DEFAULT_NAMESPACE, function, Arc::new(Stdout))
    }

    /// The same namespace and function, written to `sink` instead.
    pub fn with_sink(mut self, sink: Arc<dyn MetricsSink>) -> Self {
        self.sink = sink;
        self
    }

    /// An empty collector for one invocation.
    pub fn invocation(&self) -> Metrics {
        Metrics {
            emitter: self.clone(),
            rollups: &[],
            series: Mutex::default(),
        }
    }
}

/// The dimension values a metric is recorded under, besides the function.
type Dimensions = Vec<(&'static str, &'static str)>;

/// One metric's unit and values within a group.
#[derive(Debug)]
struct Series {
    unit: Unit,
    values: Vec<u64>,
}

/// The metrics of one invocation. Counts add up into one value; durations keep each value
/// (a value array). Shared by the records of a batch (`&self` methods), flushed once.
#[derive(Debug)]
pub struct Metrics {
    emitter: Emitter,
    rollups: &'static [&'static [&'static str]],
    series: Mutex<BTreeMap<Dimensions, BTreeMap<&'static str, Series>>>,
}

impl Metrics {
    /// The same collector, publishing every metric also under each of `rollups` that its
    /// dimensions cover: a rollup is a subset of dimension keys (besides `Function`, which
    /// every set has), and EMF's `Dimensions` takes several sets for one value, so a job
    /// counted under `Function, Kind, Outcome` with the rollups `[["Outcome"], []]` is also
    /// counted under `Function, Outcome` and under `Function` alone. An alarm then reads a
    /// function's total or its dead-lettered share directly; CloudWatch alarms cannot sum
    /// over a dimension themselves (no `SEARCH` in an alarm).
    pub fn with_rollups(mut self, rollups: &'static [&'static [&'static str]]) -> Self {
        self.rollups = rollups;
        self
    }

    /// Adds `n` to the count `name` under `dimensions` (recorded even when `n` is 0, so the
    /// metric has a data point for every invocation).
    pub fn count(&self, name: &'static str, dimensions: &[(&'static str, &'static str)], n: u64) {
        let mut series = self.series.lock().expect("metrics lock");
        let entry = series
            .entry(dimensions.to_vec())
            .or_default()
            .entry(name)
            .or_insert(Series {
                unit: Unit::Count,
                values: vec![0],
            });
        entry.values[0] += n;
    }

    /// Records one duration `name` under `dimensions`, in whole milliseconds.
    pub fn duration(
        &self,
        name: &'static str,
        dimensions: &[(&'static str, &'static str)],
        took: Duration,
    ) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.series
            .lock()
            .expect("metrics lock")
            .entry(dimensions.to_vec())
            .or_default()
            .entry(name)
            .or_insert(Series {
                unit: Unit::Milliseconds,
                values: Vec::new(),
            })
            .values
            .push(ms);
    }

    /// The EMF documents of what was recorded, stamped `at`: one per group of dimension
    /// values (in their order), split so that no document has over [`MAX_METRICS`] metrics
    /// or a metric over [`MAX_VALUES`] values. Empty when nothing was recorded.
    pub fn documents(&self, at: DateTime<Utc>) -> Vec<Value> {
        let series = self.series.lock().expect("metrics lock");
        let mut documents = Vec::new();
        for (dimensions, metrics) in series.iter() {
            // Round i holds the i-th chunk of values of each metric that has one.
            let mut rounds: Vec<Vec<(&str, Unit, &[u64])>> = Vec::new();
            for (name, series) in metrics {
                for (i, chunk) in series.values.chunks(MAX_VALUES).enumerate() {
                    if rounds.len() <= i {
                        rounds.push(Vec::new());
                    }
                    rounds[i].push((name, series.unit, chunk));
                }
            }
            for round in &rounds {
                for part in round.chunks(MAX_METRICS) {
                    documents.push(self.document(at, dimensions, part));
                }
            }
        }
        documents
    }

    fn document(
        &self,
        at: DateTime<Utc>,
        dimensions: &Dimensions,
        metrics: &[(&str, Unit, &[u64])],
    ) -> Value {
        let emitter = &self.emitter;
        let mut root = Map::new();
        let mut keys = vec![FUNCTION_DIMENSION];
        root.insert(FUNCTION_DIMENSION.into(), json!(emitter.function));
        for (key, value) in dimensions {
            keys.push(key);
            root.insert((*key).into(), json!(value));
        }
        let mut sets = vec![keys];
        for rollup in self.rollups {
            if !rollup
                .iter()
                .all(|k| dimensions.iter().any(|(d, _)| d == k))
            {
                continue;
            }
            let set: Vec<&str> = std::iter::once(FUNCTION_DIMENSION)
                .chain(rollup.iter().copied())
                .collect();
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        let mut definitions = Vec::with_capacity(metrics.len());
        for (name, unit, values) in metrics {
            definitions.push(json!({"Name": name, "Unit": unit.as_str()}));
            let value = match values {
                [one] => json!(one),
                many => json!(many),
            };
            root.insert((*name).into(), value);
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": &*emitter.namespace,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// Writes the documents ([`Metrics::documents`]) to the emitter's sink, one line each,
    /// and empties the collector.
    pub fn flush(&self, at: DateTime<Utc>) {
        let documents = self.documents(at);
        self.series.lock().expect("metrics lock").clear();
        for document in documents {
            self.emitter.sink.write_line(&document.to_string());
        }
    }
}

/// Why a JSON value is not a valid EMF document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmfError {
    /// A required member is missing or has the wrong JSON type.
    #[error("{path} must be {expected}")]
    Shape {
        /// Where, like `_aws.CloudWatchMetrics[0].Namespace`.
        path: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A limit of the specification is exceeded.
    #[error("{path} has {found} entries, at most {max} are allowed")]
    TooMany {
        /// Where.
        path: String,
        /// How many there are.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// A unit CloudWatch does not know.
    #[error("{path} has unit {unit:?}, which is not a CloudWatch unit")]
    Unit {
        /// Where.
        path: String,
        /// The unit.
        unit: String,
    },
    /// A dimension or metric a directive names is not a member of the root object.
    #[error("{name:?} is referenced by {path} but is not a member of the root object")]
    Missing {
        /// Where it is referenced.
        path: String,
        /// The member.
        name: String,
    },
}

fn shape(path: impl Into<String>, expected: &'static str) -> EmfError {
    EmfError::Shape {
        path: path.into(),
        expected,
    }
}

fn at_most(path: &str, found: usize, max: usize) -> Result<(), EmfError> {
    if found > max {
        return Err(EmfError::TooMany {
            path: path.into(),
            found,
            max,
        });
    }
    Ok(())
}

/// Checks `document` against the EMF specification (module docs): the `_aws` metadata with a
/// numeric `Timestamp` and a `CloudWatchMetrics` array; each directive's `Namespace`,
/// `Dimensions` (sets of at most [`MAX_DIMENSIONS`] keys, each a string member of the root)
/// and `Metrics` (at most [`MAX_METRICS`] definitions with a `Name` and a `Unit` from
/// [`UNITS`], each a member of the root holding a number or at most [`MAX_VALUES`] numbers).
pub fn validate(document: &Value) -> Result<(), EmfError> {
    let root = document
        .as_object()
        .ok_or_else(|| shape("$", "an object"))?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or_else(|| shape("_aws", "an object"))?;
    aws.get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or_else(|| shape("_aws.Timestamp", "epoch milliseconds"))?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("_aws.CloudWatchMetrics", "an array"))?;
    for (i, directive) in directives.iter().enumerate() {
        let path = format!("_aws.CloudWatchMetrics[{i}]");
        directive
            .get("Namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| shape(format!("{path}.Namespace"), "a non-empty string"))?;
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or_else(|| shape(format!("{path}.Dimensions"), "an array"))?;
        for (j, set) in sets.iter().enumerate() {
            let set_path = format!("{path}.Dimensions[{j}]");
            let keys = set.as_array().ok_or_else(|| shape(&set_path, "an array"))?;
            at_most(&set_path, keys.len(), MAX_DIMENSIONS)?;
            for key in keys {
                let key = key
                    .as_str()
                    .ok_or_else(|| shape(&set_path, "an array of strings"))?;
                match root.get(key) {
                    Some(Value::String(_)) => {}
                    Some(_) => return Err(shape(format!("dimension {key}"), "a string")),
                    None => {
                        return Err(EmfError::Missing {
                            path: set_path,
                            name: key.into(),
                        });
                    }
                }
            }
        }
        let metrics_path = format!("{path}.Metrics");
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or_else(|| shape(&metrics_path, "an array"))?;
        at_most(&metrics_path, metrics.len(), MAX_METRICS)?;
        for (k, metric) in metrics.iter().enumerate() {
            let metric_path = format!("{metrics_path}[{k}]");
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .ok_or_else(|| shape(format!("{metric_path}.Name"), "a string"))?;
            if let Some(unit) = metric.get("Unit") {
                let unit = unit
                    .as_str()
                    .ok_or_else(|| shape(format!("{metric_path}.Unit"), "a string"))?;
                if !UNITS.contains(&unit) {
                    return Err(EmfError::Unit {
                        path: metric_path,
                        unit: unit.into(),
                    });
                }
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values)) if values.iter().all(Value::is_number) => {
                    at_most(&format!("metric {name}"), values.len(), MAX_VALUES)?
                }
                Some(_) => {
                    return Err(shape(format!("metric {name}"), "a number or numbers"));
                }
                None => {
                    return Err(EmfError::Missing {
                        path: metric_path,
                        name: name.into(),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl MetricsSink for Lines {
        fn write_line(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_string());
        }
    }

    fn at() -> DateTime<Utc> {
        "2026-11-22T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn groups_by_dimension_values_and_flushes_once() {
        let lines = Arc::new(Lines::default());
        let metrics = Emitter::new("ns", "f", lines.clone()).invocation();
        metrics.count("Jobs", &[("Kind", "a")], 1);
        metrics.count("Jobs", &[("Kind", "a")], 2);
        metrics.duration("Took", &[("Kind", "a")], Duration::from_millis(7));
        metrics.duration("Took", &[("Kind", "a")], Duration::from_micros(2500));
        metrics.count("Batch", &[], 0);
        metrics.flush(at());
        metrics.flush(at());
        let documents: Vec<Value> = lines
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let stamp = at().timestamp_millis();
        assert_eq!(
            documents,
            [
                json!({"Function": "f", "Batch": 0, "_aws": {"Timestamp": stamp,
                    "CloudWatchMetrics": [{"Namespace": "ns", "Dimensions": [["Function"]],
                    "Metrics": [{"Name": "Batch", "Unit": "Count"}]}]}}),
                json!({"Function": "f", "Kind": "a", "Jobs": 3, "Took": [7, 2],
                    "_aws": {"Timestamp": stamp, "CloudWatchMetrics": [{"Namespace": "ns",
                    "Dimensions": [["Function", "Kind"]], "Metrics": [
                        {"Name": "Jobs", "Unit": "Count"},
                        {"Name": "Took", "Unit": "Milliseconds"}]}]}}),
            ]
        );
        for document in &documents {
            validate(document).unwrap();
        }
    }

    #[test]
    fn rollups_publish_a_value_under_each_covered_dimension_set() {
        let metrics = Emitter::new("ns", "f", Arc::new(Lines::default()))
            .invocation()
            .with_rollups(&[&["Outcome"], &["Region"], &[]]);
        metrics.count("Jobs", &[("Kind", "a"), ("Outcome", "ok")], 1);
        metrics.count("Batch", &[], 1);
        let documents = metrics.documents(at());
        let sets: Vec<&Value> = documents
            .iter()
            .map(|d| &d["_aws"]["CloudWatchMetrics"][0]["Dimensions"])
            .collect();
        // `Region` is not a dimension of either group, so it adds no set; `[]` is the
        // `Function` set the batch group has already, so it is not repeated.
        assert_eq!(
            sets,
            [
                &json!([["Function"]]),
                &json!([
                    ["Function", "Kind", "Outcome"],
                    ["Function", "Outcome"],
                    ["Function"]
                ]),
            ]
        );
        for document in &documents {
            validate(document).unwrap();
        }
    }

    #[test]
    fn splits_over_100_values_and_100_metrics() {
        let metrics = Emitter::new("ns", "f", Arc::new(Lines::default())).invocation();
        for _ in 0..150 {
            metrics.duration("Took", &[], Duration::from_millis(1));
        }
        for name in NUMBERS {
            metrics.count(name, &[], 1);
        }
        let documents = metrics.documents(at());
        for document in &documents {
            validate(document).unwrap();
        }
        let took: Vec<usize> = documents
            .iter()
            .filter_map(|d| d.get("Took"))
            .map(|t| t.as_array().map_or(1, Vec::len))
            .collect();
        assert_eq!(took, [100, 50]);
        let defined: usize = documents
            .iter()
            .map(|d| {
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .sum();
        // 101 counts and 2 chunks of Took, in 3 documents (100 + 2 in round 0, 1 in round 1).
        assert_eq!(defined, 103);
        assert_eq!(documents.len(), 3);
    }

    /// 101 distinct static metric names.
    const NUMBERS: [&str; 101] = [
        "M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7", "M8", "M9", "M10", "M11", "M12", "M13",
        "M14", "M15", "M16", "M17", "M18", "M19", "M20", "M21", "M22", "M23", "M24", "M25", "M26",
        "M27", "M28", "M29", "M30", "M31", "M32", "M33", "M34", "M35", "M36", "M37", "M38", "M39",
        "M40", "M41", "M42", "M43", "M44", "M45", "M46", "M47", "M48", "M49", "M50", "M51", "M52",
        "M53", "M54", "M55", "M56", "M57", "M58", "M59", "M60", "M61", "M62", "M63", "M64", "M65",
        "M66", "M67", "M68", "M69", "M70", "M71", "M72", "M73", "M74", "M75", "M76", "M77", "M78",
        "M79", "M80", "M81", "M82", "M83", "M84", "M85", "M86", "M87", "M88", "M89", "M90", "M91",
        "M92", "M93", "M94", "M95", "M96", "M97", "M98", "M99", "M100",
    ];

    #[test]
    fn validate_names_each_violation() {
        let valid = json!({"Function": "f", "Jobs": 1, "_aws": {"Timestamp": 1,
            "CloudWatchMetrics": [{"Namespace": "ns", "Dimensions": [["Function"]],
            "Metrics": [{"Name": "Jobs", "Unit": "Count"}]}]}});
        validate(&valid).unwrap();
        let broken = |edit: fn(&mut Value)| {
            let mut doc = valid.clone();
            edit(&mut doc);
            validate(&doc).unwrap_err().to_string()
        };
        assert_eq!(
            broken(|d| d["_aws"]["Timestamp"] = json!("now")),
            "_aws.Timestamp must be epoch milliseconds"
        );
        assert_eq!(
            broken(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Days")),
            "_aws.CloudWatchMetrics[0].Metrics[0] has unit \"Days\", which is not a CloudWatch unit"
        );
        assert_eq!(
            broken(|d| {
                d.as_object_mut().unwrap().remove("Jobs");
            }),
            "\"Jobs\" is referenced by _aws.CloudWatchMetrics[0].Metrics[0] but is not a member of the root object"
        );
        assert_eq!(
            broken(|d| {
                d.as_object_mut().unwrap().remove("Function");
            }),
            "\"Function\" is referenced by _aws.CloudWatchMetrics[0].Dimensions[0] but is not a member of the root object"
        );
        assert_eq!(
            broken(|d| {
                let keys: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
                for key in &keys {
                    d[key.as_str()] = json!("v");
                }
                d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([keys]);
            }),
            "_aws.CloudWatchMetrics[0].Dimensions[0] has 31 entries, at most 30 are allowed"
        );
        assert_eq!(
            broken(|d| d["Jobs"] = json!(vec![1; 101])),
            "metric Jobs has 101 entries, at most 100 are allowed"
        );
    }
}
