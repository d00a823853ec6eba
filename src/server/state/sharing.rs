//! Restored allocations are decoded one record at a time, so the parts the scheduler had
//! shared between them (per-task resources, lifecycles, NodesAvailable, score keys and
//! scorer names, the strings every allocation of a job or node repeats, the group networks
//! repeated three times in each) come back as separate copies. This points
//! equal parts back at one copy, so a restarted server holds no more per allocation than the
//! one that placed them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::structs::{Allocation, ScorerNames, VecMap};

/// The shared copies seen so far in one restore.
#[derive(Default)]
pub(super) struct Sharing {
    strs: HashSet<Arc<str>>,
    /// Per (namespace, job, group): the last per-task maps seen; allocations of one group
    /// nearly always carry equal ones.
    groups: HashMap<GroupKey, GroupParts>,
    nodes_available: Vec<Arc<VecMap<String, i64>>>,
    /// The last scorer names seen in a `ScoreMetaData`.
    scorer_names: Option<ScorerNames>,
}

/// (namespace, job, group).
type GroupKey = (Arc<str>, Arc<str>, Arc<str>);

#[derive(Default, Clone)]
struct GroupParts {
    tasks: Option<Arc<VecMap<String, crate::structs::AllocatedTaskResources>>>,
    lifecycles: Option<Arc<VecMap<String, Option<crate::structs::Lifecycle>>>>,
    legacy: Option<Arc<VecMap<String, crate::structs::Resources>>>,
}

/// Replaces `slot` with the cached copy when equal, else caches it.
fn share<T: PartialEq>(cached: &mut Option<Arc<T>>, slot: &mut Arc<T>) {
    match cached {
        Some(c) if **c == **slot => *slot = c.clone(),
        _ => *cached = Some(slot.clone()),
    }
}

/// Most distinct NodesAvailable maps remembered (one per evaluation that placed; a few
/// recent ones catch almost all).
const NODES_AVAILABLE_KEPT: usize = 8;

impl Sharing {
    fn intern(&mut self, s: &Arc<str>) -> Arc<str> {
        match self.strs.get(s) {
            Some(shared) => shared.clone(),
            None => {
                self.strs.insert(s.clone());
                s.clone()
            }
        }
    }

    /// Points the parts of `alloc` equal to ones already seen at those.
    pub(super) fn share(&mut self, alloc: &mut Allocation) {
        for s in [
            &mut alloc.namespace,
            &mut alloc.eval_id,
            &mut alloc.node_id,
            &mut alloc.node_name,
            &mut alloc.job_id,
            &mut alloc.task_group,
        ] {
            *s = self.intern(s);
        }
        let key = (
            alloc.namespace.clone(),
            alloc.job_id.clone(),
            alloc.task_group.clone(),
        );
        let group = self.groups.entry(key).or_default();
        if let Some(ar) = alloc.allocated_resources.as_mut() {
            share(&mut group.tasks, &mut ar.tasks);
            if let Some(l) = ar.task_lifecycles.as_mut() {
                share(&mut group.lifecycles, l);
            }
            // The group networks appear in the shared resources and the legacy fields.
            if let Some(nets) = ar.shared.networks.clone() {
                for legacy in [alloc.resources.as_mut(), alloc.shared_resources.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    if let Some(n) = legacy.networks.as_mut()
                        && **n == *nets
                    {
                        *n = nets.clone();
                    }
                }
            }
        }
        if let Some(t) = alloc.task_resources.as_mut() {
            share(&mut group.legacy, t);
        }
        if let Some(m) = alloc.metrics.as_mut() {
            if let Some(avail) = m.nodes_available.as_mut() {
                match self.nodes_available.iter().find(|c| **c == *avail) {
                    Some(c) => *avail = c.clone(),
                    None => {
                        if self.nodes_available.len() == NODES_AVAILABLE_KEPT {
                            self.nodes_available.remove(0);
                        }
                        self.nodes_available.push(avail.clone());
                    }
                }
            }
            if let Some(scores) = m.scores.take() {
                m.scores = Some(
                    scores
                        .into_iter()
                        .map(|(k, v)| (self.intern(&k), v))
                        .collect(),
                );
            }
            for meta in m.score_meta_data.iter_mut().flatten() {
                meta.node_id = self.intern(&meta.node_id);
                if let Some(names) = &self.scorer_names {
                    meta.scores.share_names(names);
                }
                if !self
                    .scorer_names
                    .as_ref()
                    .is_some_and(|n| Arc::ptr_eq(n, meta.scores.names()))
                {
                    self.scorer_names = Some(meta.scores.names().clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{
        AllocMetric, AllocatedResources, AllocatedSharedResources, NetworkResource, NodeScoreMeta,
        NodeScores, Resources,
    };

    fn decoded(id: &str) -> Allocation {
        let nets = || {
            Some(Arc::new(vec![NetworkResource {
                ip: "10.0.0.1".into(),
                ..Default::default()
            }]))
        };
        let a = Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "g".into(),
            resources: Some(Resources {
                networks: nets(),
                ..Default::default()
            }),
            shared_resources: Some(Resources {
                networks: nets(),
                ..Default::default()
            }),
            task_resources: Some(Arc::new(
                [("t".to_string(), Resources::default())]
                    .into_iter()
                    .collect(),
            )),
            allocated_resources: Some(AllocatedResources {
                tasks: Arc::new(
                    [("t".to_string(), Default::default())]
                        .into_iter()
                        .collect(),
                ),
                task_lifecycles: Some(Arc::new([("t".to_string(), None)].into_iter().collect())),
                shared: AllocatedSharedResources {
                    networks: nets(),
                    ..Default::default()
                },
            }),
            metrics: Some(AllocMetric {
                nodes_available: Some(Arc::new([("dc1".to_string(), 3)].into_iter().collect())),
                // Records written before `Scores` was left null still carry it.
                scores: Some([(Arc::from("n1.binpack"), 0.5)].into_iter().collect()),
                score_meta_data: Some(vec![NodeScoreMeta {
                    node_id: Arc::from("n1"),
                    scores: NodeScores::from_pairs(
                        vec![("binpack".into(), 0.5), ("node-affinity".into(), 0.0)],
                        None,
                    ),
                    norm_score: 0.5,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // As from a record: nothing shared yet.
        serde_json::from_value(serde_json::to_value(&a).expect("encode")).expect("decode")
    }

    #[test]
    fn equal_parts_of_restored_allocations_become_one_copy() {
        let mut sharing = Sharing::default();
        let (mut a, mut b) = (decoded("a"), decoded("b"));
        let json_before = serde_json::to_value(&b).expect("encode");
        sharing.share(&mut a);
        sharing.share(&mut b);
        assert_eq!(serde_json::to_value(&b).expect("encode"), json_before);
        let (ra, rb) = (
            a.allocated_resources.as_ref().expect("a"),
            b.allocated_resources.as_ref().expect("b"),
        );
        assert!(Arc::ptr_eq(&ra.tasks, &rb.tasks));
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert!(Arc::ptr_eq(&a.job_id, &b.job_id));
        assert!(Arc::ptr_eq(&a.task_group, &b.task_group));
        let nets = rb.shared.networks.as_ref().expect("nets");
        let legacy = b.resources.as_ref().and_then(|r| r.networks.as_ref());
        assert!(Arc::ptr_eq(nets, legacy.expect("legacy nets")));
        let (ma, mb) = (
            a.metrics.as_ref().expect("a"),
            b.metrics.as_ref().expect("b"),
        );
        assert!(Arc::ptr_eq(
            ma.nodes_available.as_ref().expect("a"),
            mb.nodes_available.as_ref().expect("b")
        ));
        let key = |m: &AllocMetric| m.scores.as_ref().and_then(|s| s.keys().next().cloned());
        assert!(Arc::ptr_eq(&key(ma).expect("a"), &key(mb).expect("b")));
        let node = |m: &AllocMetric| {
            m.score_meta_data
                .as_ref()
                .and_then(|s| s.first().map(|n| n.node_id.clone()))
        };
        assert!(Arc::ptr_eq(&node(ma).expect("a"), &node(mb).expect("b")));
        let names = |m: &AllocMetric| {
            m.score_meta_data
                .as_ref()
                .and_then(|s| s.first().map(|n| n.scores.names().clone()))
        };
        assert!(Arc::ptr_eq(&names(ma).expect("a"), &names(mb).expect("b")));
    }
}
