//! Pull progress bookkeeping, summarized in Nomad's words.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::CreateImageInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerState {
    Waiting,
    Pulling,
    Complete,
}

#[derive(Debug, Clone, Copy)]
struct Layer {
    state: LayerState,
    current: i64,
    total: i64,
}

/// Per-layer state of one pull, fed with the engine's progress messages.
#[derive(Debug, Default)]
pub struct PullProgress {
    layers: BTreeMap<String, Layer>,
}

impl PullProgress {
    /// Folds one progress message in.
    pub fn update(&mut self, info: &CreateImageInfo) {
        let (Some(id), Some(status)) = (&info.id, &info.status) else {
            return;
        };
        let state = match status.as_str() {
            "Waiting" | "Pulling fs layer" => LayerState::Waiting,
            "Downloading" | "Extracting" | "Verifying Checksum" | "Download complete" => {
                LayerState::Pulling
            }
            "Pull complete" | "Already exists" => LayerState::Complete,
            // Tag-level lines ("Pulling from library/x", digests) are not layers.
            _ => return,
        };
        let layer = self.layers.entry(id.clone()).or_insert(Layer {
            state,
            current: 0,
            total: 0,
        });
        layer.state = state;
        if status == "Downloading"
            && let Some(detail) = &info.progress_detail
        {
            layer.current = detail.current.unwrap_or(layer.current);
            layer.total = detail.total.unwrap_or(layer.total);
        }
        if state == LayerState::Complete {
            layer.current = layer.total;
        }
    }

    /// `Pulled 1/3 (1.2 MiB/5.0 MiB) layers: 1 waiting/1 pulling - est 4.0s remaining`.
    pub fn summary(&self, elapsed: Duration) -> String {
        let count = |s: LayerState| self.layers.values().filter(|l| l.state == s).count();
        let current: i64 = self.layers.values().map(|l| l.current).sum();
        let total: i64 = self.layers.values().map(|l| l.total).sum();
        let mut msg = format!(
            "Pulled {}/{} ({}/{}) layers: {} waiting/{} pulling",
            count(LayerState::Complete),
            self.layers.len(),
            bytes(current),
            bytes(total),
            count(LayerState::Waiting),
            count(LayerState::Pulling),
        );
        if current > 0 && total > current {
            let secs = elapsed.as_secs_f64() * (total - current) as f64 / current as f64;
            msg.push_str(&format!(" - est {secs:.1}s remaining"));
        }
        msg
    }
}

/// Human-readable binary size, like docker's `units.BytesSize`.
fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    // Four significant digits, trailing zeros trimmed (`%.4g`).
    let int_digits = format!("{}", value.trunc() as i64).len();
    let decimals = 4usize.saturating_sub(int_digits);
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ProgressDetail;

    fn msg(id: &str, status: &str, current: i64, total: i64) -> CreateImageInfo {
        CreateImageInfo {
            id: Some(id.to_string()),
            status: Some(status.to_string()),
            progress_detail: Some(ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn summarizes_layers() {
        let mut p = PullProgress::default();
        p.update(&msg("a", "Pulling fs layer", 0, 0));
        p.update(&msg("b", "Pulling fs layer", 0, 0));
        p.update(&msg("c", "Already exists", 0, 0));
        p.update(&msg("a", "Downloading", 1024, 4096));
        let s = p.summary(Duration::from_secs(1));
        assert!(
            s.starts_with("Pulled 1/3 (1KiB/4KiB) layers: 1 waiting/1 pulling"),
            "{s}"
        );
        assert!(s.contains("est 3.0s remaining"), "{s}");
    }
}
