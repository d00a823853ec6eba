//! The per-scorer scores of one node in an allocation's `ScoreMetaData`. Every placed
//! allocation keeps five of these, and the scorer names are the same for nearly all of them,
//! so the names live in one shared slice and each node holds only its values. On the wire it
//! is the JSON object `{scorer: score}` in name order, as Nomad sends it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Scorer names, sorted, each once; shared by every [`NodeScores`] with the same names.
pub type ScorerNames = Arc<[Cow<'static, str>]>;

/// Scores by scorer name: `values[i]` belongs to `names[i]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeScores {
    names: ScorerNames,
    values: Box<[f64]>,
}

impl NodeScores {
    /// Scores from `(name, value)` pairs in any order; a repeated name keeps its last value.
    /// `names` is reused when it holds exactly these names, so equal sets share one slice.
    pub fn from_pairs(
        mut pairs: Vec<(Cow<'static, str>, f64)>,
        names: Option<&ScorerNames>,
    ) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        // Keep the last of equal names, as a map insert would.
        let mut deduped: Vec<(Cow<'static, str>, f64)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            match deduped.last_mut() {
                Some(last) if last.0 == name => last.1 = value,
                _ => deduped.push((name, value)),
            }
        }
        let same = names.filter(|n| {
            n.len() == deduped.len() && n.iter().zip(&deduped).all(|(a, (b, _))| a == b)
        });
        let values = deduped.iter().map(|(_, v)| *v).collect();
        let names = match same {
            Some(n) => n.clone(),
            None => deduped.into_iter().map(|(n, _)| n).collect(),
        };
        NodeScores { names, values }
    }

    /// The shared names, to hand to the next [`NodeScores::from_pairs`].
    pub fn names(&self) -> &ScorerNames {
        &self.names
    }

    /// Points the names at `shared` when it holds the same names.
    pub fn share_names(&mut self, shared: &ScorerNames) {
        if !Arc::ptr_eq(&self.names, shared) && *self.names == **shared {
            self.names = shared.clone();
        }
    }

    /// The score of scorer `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names
            .binary_search_by(|n| n.as_ref().cmp(name))
            .ok()
            .map(|i| self.values[i])
    }

    /// True when scorer `name` scored this node.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// `(scorer, score)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.names
            .iter()
            .map(|n| n.as_ref())
            .zip(self.values.iter().copied())
    }

    /// How many scorers scored this node.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when no scorer did.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl Serialize for NodeScores {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for NodeScores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeScores;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of scorer names to scores")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeScores, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
                while let Some((name, value)) = map.next_entry::<String, f64>()? {
                    pairs.push((Cow::Owned(name), value));
                }
                Ok(NodeScores::from_pairs(pairs, None))
            }
            // `null` reads as no scores, as for the map this replaces.
            fn visit_unit<E: serde::de::Error>(self) -> Result<NodeScores, E> {
                Ok(NodeScores::default())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<NodeScores, E> {
                Ok(NodeScores::default())
            }
        }
        d.deserialize_any(V)
    }
}

impl std::ops::Index<&str> for NodeScores {
    type Output = f64;

    /// Panics when `name` did not score this node, like a map's index.
    fn index(&self, name: &str) -> &f64 {
        match self.names.binary_search_by(|n| n.as_ref().cmp(name)) {
            Ok(i) => &self.values[i],
            Err(_) => panic!("no score from scorer {name:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_a_sorted_map_and_reads_back() {
        let s = NodeScores::from_pairs(
            vec![
                (Cow::Borrowed("node-affinity"), 0.0),
                (Cow::Borrowed("binpack"), 0.5),
                (Cow::Borrowed("job-anti-affinity"), -0.25),
            ],
            None,
        );
        let v = serde_json::to_value(&s).expect("encode");
        assert_eq!(
            serde_json::to_string(&v).expect("text"),
            r#"{"binpack":0.5,"job-anti-affinity":-0.25,"node-affinity":0.0}"#
        );
        let back: NodeScores = serde_json::from_value(v).expect("decode");
        assert_eq!(back, s);
        assert_eq!(back["binpack"], 0.5);
        assert_eq!(back.get("job-anti-affinity"), Some(-0.25));
        assert!(!back.contains_key("devices"));
        let empty: NodeScores = serde_json::from_str("{}").expect("empty");
        assert!(empty.is_empty());
        let null: NodeScores = serde_json::from_str("null").expect("null");
        assert!(null.is_empty());
    }

    #[test]
    fn equal_name_sets_share_one_slice() {
        let pairs = || {
            vec![
                (Cow::Borrowed("binpack"), 0.1),
                (Cow::Borrowed("node-affinity"), 0.0),
            ]
        };
        let a = NodeScores::from_pairs(pairs(), None);
        let b = NodeScores::from_pairs(pairs(), Some(a.names()));
        assert!(Arc::ptr_eq(a.names(), b.names()));
        let other = NodeScores::from_pairs(vec![(Cow::Borrowed("binpack"), 0.1)], Some(a.names()));
        assert!(!Arc::ptr_eq(a.names(), other.names()));
        let mut c: NodeScores =
            serde_json::from_value(serde_json::to_value(&b).expect("encode")).expect("decode");
        assert!(!Arc::ptr_eq(a.names(), c.names()));
        c.share_names(a.names());
        assert!(Arc::ptr_eq(a.names(), c.names()));
        assert_eq!(c, b);
    }

    #[test]
    fn a_repeated_name_keeps_its_last_value() {
        let s = NodeScores::from_pairs(
            vec![(Cow::Borrowed("b"), 1.0), (Cow::Borrowed("b"), 2.0)],
            None,
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s["b"], 2.0);
    }
}
