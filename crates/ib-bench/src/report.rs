//! What every report carries (the machine it ran on) and how reports are written: a table for people on
//! standard output, JSON for the plots and for comparing runs.

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a report of this version: {source}")]
    Decode { path: PathBuf, source: serde_json::Error },
}

/// The machine a run was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_owned();
        Machine { cores, memory_gib: memory_kib / (1024.0 * 1024.0), cpu }
    }

    pub fn line(&self) -> String {
        format!("machine: {} cores, {:.1} GiB, {}", self.cores, self.memory_gib, self.cpu)
    }
}

/// Writes `report` as pretty JSON to `<dir>/<name>.json`; returns the path.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, report: &T) -> Result<PathBuf, ReportError> {
    let path = dir.join(format!("{name}.json"));
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write { path: dir.to_owned(), source })?;
    let text = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    std::fs::write(&path, text + "\n").map_err(|source| ReportError::Write { path: path.clone(), source })?;
    Ok(path)
}

/// Reads a report written by [`write_json`].
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: path.to_owned(), source })?;
    serde_json::from_str(&text).map_err(|source| ReportError::Decode { path: path.to_owned(), source })
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A plain text table: a header row, a rule, then the rows, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec()), widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let t = table(&["a", "long header"], &[vec!["wide cell".into(), "x".into()]]);
        assert_eq!(t, "a          long header\n---------  -----------\nwide cell  x");
    }

    #[test]
    fn machine_reads_proc() {
        let m = Machine::this();
        assert!(m.cores >= 1 && m.memory_gib > 0.0, "{m:?}");
    }

    #[test]
    fn json_round_trip_and_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_json(dir.path(), "m", &Machine::this()).unwrap();
        let back: Machine = read_json(&path).unwrap();
        assert_eq!(back, Machine::this());
        std::fs::write(&path, "{").unwrap();
        let err = read_json::<Machine>(&path).unwrap_err().to_string();
        assert!(err.contains("m.json"), "{err}");
    }
}
