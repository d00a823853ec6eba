//! Ranking: how good is a feasible node that fits? Each scorer yields a value in [-1, 1];
//! a node's final score is the mean of the scores that apply to it, as in Nomad.

use std::collections::HashMap;

use super::feasible::{Checker, resolve_target};
use super::fit::Usage;
use crate::structs::{Job, Node, TaskGroup};

/// Score name: bin packing.
pub const SCORE_BINPACK: &str = "binpack";
/// Score name: penalty for co-locating allocations of the same job and group.
pub const SCORE_ANTI_AFFINITY: &str = "job-anti-affinity";
/// Score name: node affinities.
pub const SCORE_NODE_AFFINITY: &str = "node-affinity";
/// Score name: spread.
pub const SCORE_SPREAD: &str = "allocation-spread";
/// Score name: penalty on the node a rescheduled allocation failed on.
pub const SCORE_RESCHEDULE_PENALTY: &str = "node-reschedule-penalty";

/// The best possible raw bin-packing fit (both dimensions fully used).
const BINPACK_MAX_FIT: f64 = 18.0;

/// `10^freeCpu + 10^freeMem`, the free fractions after the placement: 2 for a full node,
/// 20 for an empty one. Both fit scores are read off this.
fn free_exponents(capacity: &Usage, used_after: &Usage) -> f64 {
    let free = |used: i64, cap: i64| {
        if cap <= 0 {
            0.0
        } else {
            (1.0 - used as f64 / cap as f64).clamp(0.0, 1.0)
        }
    };
    10f64.powf(free(used_after.cpu, capacity.cpu))
        + 10f64.powf(free(used_after.memory_mb, capacity.memory_mb))
}

/// Bin-packing score in [0, 1]: higher when the node is fuller after the placement.
/// Uses Nomad's curve, `20 - (10^freeCpu + 10^freeMem)` scaled by its maximum of 18,
/// so a node is preferred the less it would leave free in either dimension.
pub fn binpack_score(capacity: &Usage, used_after: &Usage) -> f64 {
    let total = free_exponents(capacity, used_after);
    (20.0 - total).clamp(0.0, BINPACK_MAX_FIT) / BINPACK_MAX_FIT
}

/// The `spread` algorithm's fit score in [0, 1]: Nomad's mirror image of
/// [`binpack_score`], `10^freeCpu + 10^freeMem - 2` scaled by 18, so emptier nodes win.
pub fn spread_fit_score(capacity: &Usage, used_after: &Usage) -> f64 {
    let total = free_exponents(capacity, used_after);
    (total - 2.0).clamp(0.0, BINPACK_MAX_FIT) / BINPACK_MAX_FIT
}

/// Penalty for a node that already runs `collisions` allocations of the same job and group:
/// `-(collisions + 1) / desired`, or `None` when there are none.
pub fn anti_affinity_penalty(collisions: u32, desired: i64) -> Option<f64> {
    (collisions > 0).then(|| -(f64::from(collisions) + 1.0) / desired.max(1) as f64)
}

/// How many fitting nodes to rank before picking the best: `max(2, ceil(log2 n))` for
/// service jobs, 2 for batch jobs (power of two choices), every node when affinities or
/// spreads make the choice depend on more than packing.
pub fn candidate_limit(num_nodes: usize, batch: bool, exhaustive: bool) -> usize {
    if exhaustive {
        return num_nodes.max(1);
    }
    if batch || num_nodes < 2 {
        return 2;
    }
    let log = (num_nodes as f64).log2().ceil() as usize;
    log.max(2)
}

/// Node affinities of a group (job, group and task level) with their weights.
#[derive(Debug, Clone, Default)]
pub struct AffinityScorer {
    items: Vec<(Checker, f64)>,
    sum_weights: f64,
}

impl AffinityScorer {
    /// Collects the affinities that apply to `tg`.
    pub fn new(job: &Job, tg: &TaskGroup) -> AffinityScorer {
        let all = job
            .affinities
            .iter()
            .flatten()
            .chain(tg.affinities.iter().flatten())
            .chain(
                tg.tasks()
                    .iter()
                    .flat_map(|t| t.affinities.iter().flatten()),
            );
        let items: Vec<(Checker, f64)> = all
            .map(|a| (Checker::from_affinity(a), a.weight as f64))
            .collect();
        let sum_weights = items.iter().map(|(_, w)| w.abs()).sum();
        AffinityScorer { items, sum_weights }
    }

    /// True when the group has no affinities.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() || self.sum_weights == 0.0
    }

    /// Sum of the weights of the matching affinities over the sum of all absolute weights.
    pub fn score(&self, node: &Node) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let matched: f64 = self
            .items
            .iter()
            .filter(|(c, _)| c.matches(node))
            .map(|(_, w)| w)
            .sum();
        matched / self.sum_weights
    }
}

#[derive(Debug, Clone)]
struct SpreadState {
    attribute: String,
    weight: f64,
    /// Value → percent; empty for an even spread.
    targets: HashMap<String, f64>,
    /// Percent left for values without a target.
    remainder: f64,
    counts: HashMap<String, u32>,
}

/// Spread scoring: prefers nodes whose attribute value holds fewer of the group's
/// allocations than its target share (or than the busiest value, for an even spread).
#[derive(Debug, Clone)]
pub struct SpreadScorer {
    spreads: Vec<SpreadState>,
    desired: f64,
}

impl SpreadScorer {
    /// The spreads of `tg` (group and job level); `None` when there are none.
    pub fn new(job: &Job, tg: &TaskGroup) -> Option<SpreadScorer> {
        let all: Vec<_> = tg
            .spreads
            .iter()
            .flatten()
            .chain(job.spreads.iter().flatten())
            .collect();
        let sum: f64 = all.iter().map(|s| s.weight.unsigned_abs() as f64).sum();
        if all.is_empty() {
            return None;
        }
        let spreads = all
            .iter()
            .map(|s| {
                let targets: HashMap<String, f64> = s
                    .spread_target
                    .iter()
                    .flatten()
                    .map(|t| (t.value.clone(), t.percent as f64))
                    .collect();
                let used: f64 = targets.values().sum();
                SpreadState {
                    attribute: s.attribute.clone(),
                    // Weights are shares of the total; equal shares when all weights are 0.
                    weight: if sum > 0.0 {
                        s.weight.unsigned_abs() as f64 / sum
                    } else {
                        1.0 / all.len() as f64
                    },
                    targets,
                    remainder: (100.0 - used).max(0.0),
                    counts: HashMap::new(),
                }
            })
            .collect();
        Some(SpreadScorer {
            spreads,
            desired: tg.count.max(1) as f64,
        })
    }

    /// Records a live allocation of the group on `node`.
    pub fn add(&mut self, node: &Node) {
        for s in &mut self.spreads {
            if let Some(v) = resolve_target(&s.attribute, node) {
                *s.counts.entry(v.to_string()).or_insert(0) += 1;
            }
        }
    }

    /// Forgets a live allocation of the group on `node` (one the plan replaces).
    pub fn remove(&mut self, node: &Node) {
        for s in &mut self.spreads {
            if let Some(n) = resolve_target(&s.attribute, node).and_then(|v| s.counts.get_mut(v)) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// The weighted boost of placing one more allocation on `node`, in [-1, 1].
    pub fn score(&self, node: &Node) -> f64 {
        self.spreads
            .iter()
            .map(|s| s.weight * s.boost(node, self.desired))
            .sum()
    }
}

impl SpreadState {
    fn boost(&self, node: &Node, desired_total: f64) -> f64 {
        // A node without the attribute cannot help the spread.
        let Some(value) = resolve_target(&self.attribute, node) else {
            return -1.0;
        };
        let used = f64::from(self.counts.get(value).copied().unwrap_or(0));
        if self.targets.is_empty() {
            let max = self.counts.values().copied().max().unwrap_or(0);
            if max == 0 {
                return 0.0;
            }
            return (f64::from(max) - used) / f64::from(max);
        }
        let (desired, used) = match self.targets.get(value) {
            Some(pct) => (pct / 100.0 * desired_total, used),
            None => {
                // Untargeted values share the remainder.
                let others: u32 = self
                    .counts
                    .iter()
                    .filter(|(k, _)| !self.targets.contains_key(*k))
                    .map(|(_, c)| *c)
                    .sum();
                (self.remainder / 100.0 * desired_total, f64::from(others))
            }
        };
        if desired <= 0.0 {
            return -1.0;
        }
        ((desired - (used + 1.0)) / desired).clamp(-1.0, 1.0)
    }
}

/// The scores one candidate node got for one placement.
#[derive(Debug, Clone, Default)]
pub struct ScoreCard {
    /// Scorer name, score, and whether it counts in the final score, in the order they ran.
    pub scores: Vec<(&'static str, f64, bool)>,
    sum: f64,
    n: u32,
}

impl ScoreCard {
    /// Records a score; `counts` says whether it takes part in the final mean.
    pub fn push(&mut self, name: &'static str, value: f64, counts: bool) {
        self.scores.push((name, value, counts));
        if counts {
            self.sum += value;
            self.n += 1;
        }
    }

    /// The mean of the scores that count.
    pub fn final_score(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / f64::from(self.n)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::structs::{Affinity, Spread, SpreadTarget};

    #[test]
    fn binpack_prefers_fuller_nodes() {
        let cap = Usage {
            cpu: 4000,
            memory_mb: 8192,
            disk_mb: 0,
        };
        let empty = binpack_score(
            &cap,
            &Usage {
                cpu: 500,
                memory_mb: 256,
                disk_mb: 0,
            },
        );
        let busy = binpack_score(
            &cap,
            &Usage {
                cpu: 3000,
                memory_mb: 6000,
                disk_mb: 0,
            },
        );
        let full = binpack_score(&cap, &cap);
        assert!(busy > empty, "{busy} <= {empty}");
        assert!((full - 1.0).abs() < 1e-9);
        assert!((0.0..=1.0).contains(&empty));
        // A node without capacity counts as full rather than dividing by zero.
        assert_eq!(binpack_score(&Usage::default(), &Usage::default()), 1.0);
    }

    #[test]
    fn spread_fit_prefers_emptier_nodes() {
        let cap = Usage {
            cpu: 1000,
            memory_mb: 1000,
            ..Default::default()
        };
        let half = Usage {
            cpu: 500,
            memory_mb: 500,
            ..Default::default()
        };
        let little = Usage {
            cpu: 100,
            memory_mb: 100,
            ..Default::default()
        };
        assert!(spread_fit_score(&cap, &little) > spread_fit_score(&cap, &half));
        assert_eq!(spread_fit_score(&cap, &cap), 0.0);
        assert!(binpack_score(&cap, &little) < binpack_score(&cap, &half));
    }

    #[test]
    fn anti_affinity_grows_with_collisions() {
        assert_eq!(anti_affinity_penalty(0, 3), None);
        assert_eq!(anti_affinity_penalty(1, 4), Some(-0.5));
        assert_eq!(anti_affinity_penalty(3, 4), Some(-1.0));
    }

    #[test]
    fn limits() {
        assert_eq!(candidate_limit(1000, false, false), 10);
        assert_eq!(candidate_limit(3, false, false), 2);
        assert_eq!(candidate_limit(1000, true, false), 2);
        assert_eq!(candidate_limit(1000, false, true), 1000);
    }

    fn node(dc: &str, rack: &str) -> Node {
        Node {
            datacenter: dc.into(),
            meta: Some(BTreeMap::from([("rack".to_string(), rack.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn affinity_score_is_weighted_share() {
        let job = Job {
            affinities: Some(vec![Affinity {
                l_target: "${node.datacenter}".into(),
                r_target: "dc1".into(),
                operand: "=".into(),
                weight: 75,
            }]),
            ..Default::default()
        };
        let tg = TaskGroup {
            affinities: Some(vec![Affinity {
                l_target: "${meta.rack}".into(),
                r_target: "r2".into(),
                operand: "=".into(),
                weight: -25,
            }]),
            ..Default::default()
        };
        let s = AffinityScorer::new(&job, &tg);
        assert_eq!(s.score(&node("dc1", "r1")), 0.75);
        assert_eq!(s.score(&node("dc1", "r2")), 0.5);
        assert_eq!(s.score(&node("dc2", "r2")), -0.25);
        assert_eq!(s.score(&node("dc2", "r1")), 0.0);
    }

    #[test]
    fn spread_prefers_underused_values() {
        let tg = TaskGroup {
            count: 4,
            spreads: Some(vec![Spread {
                attribute: "${node.datacenter}".into(),
                weight: 100,
                spread_target: None,
            }]),
            ..Default::default()
        };
        let mut s = SpreadScorer::new(&Job::default(), &tg).unwrap();
        assert_eq!(s.score(&node("dc1", "")), 0.0);
        s.add(&node("dc1", ""));
        assert!(s.score(&node("dc2", "")) > s.score(&node("dc1", "")));

        let tg = TaskGroup {
            count: 10,
            spreads: Some(vec![Spread {
                attribute: "${node.datacenter}".into(),
                weight: 50,
                spread_target: Some(vec![SpreadTarget {
                    value: "dc1".into(),
                    percent: 80,
                }]),
            }]),
            ..Default::default()
        };
        let mut s = SpreadScorer::new(&Job::default(), &tg).unwrap();
        for _ in 0..2 {
            s.add(&node("dc2", ""));
        }
        // dc2 already has its 20% share; dc1 has room for 8.
        assert!(s.score(&node("dc1", "")) > 0.5);
        assert!(s.score(&node("dc2", "")) < 0.0);
    }

    #[test]
    fn final_score_is_mean_of_counted_scores() {
        let mut c = ScoreCard::default();
        c.push(SCORE_BINPACK, 0.8, true);
        c.push(SCORE_ANTI_AFFINITY, 0.0, false);
        c.push(SCORE_NODE_AFFINITY, -0.2, true);
        assert!((c.final_score() - 0.3).abs() < 1e-9);
        assert_eq!(c.scores.len(), 3);
    }
}
