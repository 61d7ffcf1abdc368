//! The benchmark table: metric, Hearth figure, baseline figure, ratio,
//! target. Printed for people, or as JSON with `--json`.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub unit: &'static str,
    pub hearth: f64,
    /// What the figure is compared with, measured in the same run.
    pub baseline_name: Option<String>,
    pub baseline: Option<f64>,
    /// hearth / baseline.
    pub ratio: Option<f64>,
    pub target: String,
    /// Whether the target is met; `None` where no target is set.
    pub meets_target: Option<bool>,
}

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy)]
pub enum Better {
    Lower,
    Higher,
}

impl Row {
    pub fn new(metric: impl Into<String>, unit: &'static str, hearth: f64) -> Self {
        Self {
            metric: metric.into(),
            unit,
            hearth,
            baseline_name: None,
            baseline: None,
            ratio: None,
            target: "-".into(),
            meets_target: None,
        }
    }

    pub fn baseline(mut self, name: impl Into<String>, value: f64) -> Self {
        self.baseline_name = Some(name.into());
        self.baseline = Some(value);
        self.ratio = (value != 0.0).then(|| self.hearth / value);
        self
    }

    pub fn target(mut self, better: Better, limit: f64) -> Self {
        let (sign, meets) = match better {
            Better::Lower => ("<=", self.hearth <= limit),
            Better::Higher => (">=", self.hearth >= limit),
        };
        self.target = format!("{sign} {} {}", human(limit), self.unit);
        self.meets_target = Some(meets);
        self
    }
}

/// A number with a sensible number of digits.
pub fn human(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn print(title: &str, rows: &[Row], json: bool) {
    if json {
        match serde_json::to_string_pretty(rows) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("cannot encode the table: {e}"),
        }
        return;
    }
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let baseline = match (&r.baseline_name, r.baseline) {
                (Some(name), Some(v)) => format!("{} {} ({name})", human(v), r.unit),
                _ => "-".into(),
            };
            let ratio = r.ratio.map_or("-".into(), |x| format!("{x:.2}x"));
            let target = match r.meets_target {
                Some(true) => format!("{} (met)", r.target),
                Some(false) => format!("{} (MISSED)", r.target),
                None => r.target.clone(),
            };
            [
                r.metric.clone(),
                format!("{} {}", human(r.hearth), r.unit),
                baseline,
                ratio,
                target,
            ]
        })
        .collect();
    let header = ["metric", "hearth", "baseline", "ratio", "target"];
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |row: [&str; 5]| {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    println!("{title}\n");
    line(header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
}

/// The median of unsorted samples (NaN for none).
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    percentile(&samples, 50.0)
}

/// p-th percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_target() {
        let r = Row::new("x", "us", 8.0)
            .baseline("y", 2.0)
            .target(Better::Lower, 10.0);
        assert_eq!(r.ratio, Some(4.0));
        assert_eq!(r.meets_target, Some(true));
        let r = Row::new("x", "msg/s", 400.0).target(Better::Higher, 500.0);
        assert_eq!(r.meets_target, Some(false));
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
    }
}
