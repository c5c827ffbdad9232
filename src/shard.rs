//! `--shard INDEX/COUNT`: a deterministic, balanced slice of a run's variants, so that a farm's
//! array job splits one suite over nodes and `precheck merge` joins the slices back.
//!
//! Every variant id is hashed (the first 8 bytes of its SHA-256, big-endian); the ids are ranked
//! by hash (then by id), and the variant of rank `k` belongs to shard `k mod COUNT`. So the shards
//! partition the plan exactly, their sizes differ by at most one, and the assignment depends only
//! on the ids: every task of an array job computes the same split without talking to the others,
//! on any machine, with any precheck build that plans the same ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Slice `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// This slice, `0..count`.
    pub index: usize,
    /// How many slices the run is split into, at least 1.
    pub count: usize,
}

/// The environment variable holding the shard count of a Kubernetes Indexed Job, which Kubernetes
/// does not export itself: the Job's manifest sets it to its `completions`.
pub const SHARD_COUNT_VAR: &str = "PRECHECK_SHARD_COUNT";

/// A shard that cannot be made from the command line or the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `INDEX/COUNT` with `INDEX < COUNT`.
    #[error("shard `{text}`: expected INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4)")]
    Syntax {
        /// What was given.
        text: String,
    },
    /// A scheduler variable that is set, but without what makes it usable.
    #[error("{0}")]
    Environment(String),
}

impl Shard {
    /// The items of this shard, in their order; `id` gives an item's variant id.
    pub fn select<T>(&self, items: Vec<T>, id: impl Fn(&T) -> &str) -> Vec<T> {
        let ids: Vec<&str> = items.iter().map(&id).collect();
        let shard_of = Shard::assign(self.count, &ids);
        items
            .into_iter()
            .zip(shard_of)
            .filter(|(_, shard)| *shard == self.index)
            .map(|(item, _)| item)
            .collect()
    }

    /// Which of `count` shards each id belongs to, in the order given.
    pub fn assign(count: usize, ids: &[&str]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_cached_key(|&i| (stable_hash(ids[i]), ids[i]));
        let mut shard_of = vec![0; ids.len()];
        for (rank, i) in order.into_iter().enumerate() {
            shard_of[i] = rank % count;
        }
        shard_of
    }

    /// The shard from the scheduler's environment: a Slurm array task
    /// (`SLURM_ARRAY_TASK_ID` with `SLURM_ARRAY_TASK_COUNT`, or with `SLURM_ARRAY_TASK_MIN` and
    /// `SLURM_ARRAY_TASK_MAX`), or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, with the
    /// Job's `completions` passed as [`SHARD_COUNT_VAR`]). `None` outside both.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
        let number = |name: &str| -> Result<Option<usize>, ShardError> {
            var(name)
                .map(|text| {
                    text.trim().parse().map_err(|_| {
                        ShardError::Environment(format!("{name}={text}: expected a number"))
                    })
                })
                .transpose()
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            if number("SLURM_ARRAY_TASK_STEP")?.is_some_and(|step| step != 1) {
                return Err(ShardError::Environment(
                    "SLURM_ARRAY_TASK_STEP is not 1: give --shard INDEX/COUNT explicitly".into(),
                ));
            }
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = match (
                number("SLURM_ARRAY_TASK_COUNT")?,
                number("SLURM_ARRAY_TASK_MAX")?,
            ) {
                (Some(count), _) => count,
                (None, Some(max)) => (max + 1).saturating_sub(min),
                (None, None) => {
                    return Err(ShardError::Environment(
                        "SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MAX".into(),
                    ))
                }
            };
            return checked(id.wrapping_sub(min), count, "SLURM_ARRAY_TASK_ID").map(Some);
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = number(SHARD_COUNT_VAR)?.ok_or_else(|| {
                ShardError::Environment(format!(
                    "JOB_COMPLETION_INDEX is set but {SHARD_COUNT_VAR} is not: set it to the Job's `completions`"
                ))
            })?;
            return checked(index, count, "JOB_COMPLETION_INDEX").map(Some);
        }
        Ok(None)
    }
}

fn checked(index: usize, count: usize, source: &str) -> Result<Shard, ShardError> {
    if index < count {
        Ok(Shard { index, count })
    } else {
        Err(ShardError::Environment(format!(
            "{source} gives shard {index} of {count}, which does not exist"
        )))
    }
}

/// The first 8 bytes of SHA-256 of the id, big-endian: the same on every machine and build.
pub fn stable_hash(id: &str) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax {
            text: text.to_owned(),
        };
        let (index, count) = text.split_once('/').ok_or_else(syntax)?;
        let index: usize = index.trim().parse().map_err(|_| syntax())?;
        let count: usize = count.trim().parse().map_err(|_| syntax())?;
        if index < count {
            Ok(Shard { index, count })
        } else {
            Err(syntax())
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn parses_index_over_count() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_hash_is_sha256s_first_bytes() {
        let digest = format!("{:x}", Sha256::digest(b"m/fp16/cpu"));
        assert_eq!(format!("{:016x}", stable_hash("m/fp16/cpu")), digest[..16]);
    }

    #[test]
    fn slurm_and_kubernetes_variables_give_the_shard() {
        type Vars = &'static [(&'static str, &'static str)];
        let cases: &[(Vars, Option<Shard>)] = &[
            (&[], None),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "2"),
                    ("SLURM_ARRAY_TASK_COUNT", "3"),
                ],
                Some(Shard { index: 2, count: 3 }),
            ),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "3"),
                    ("SLURM_ARRAY_TASK_MIN", "1"),
                    ("SLURM_ARRAY_TASK_MAX", "3"),
                ],
                Some(Shard { index: 2, count: 3 }),
            ),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "1"),
                    ("SLURM_ARRAY_TASK_MIN", "1"),
                    ("SLURM_ARRAY_TASK_COUNT", "3"),
                ],
                Some(Shard { index: 0, count: 3 }),
            ),
            (
                &[("JOB_COMPLETION_INDEX", "0"), ("PRECHECK_SHARD_COUNT", "4")],
                Some(Shard { index: 0, count: 4 }),
            ),
        ];
        for (vars, expected) in cases {
            assert_eq!(Shard::from_env(env(vars)).unwrap(), *expected, "{vars:?}");
        }
    }

    #[test]
    fn unusable_variables_are_errors_that_say_what_is_missing() {
        let error = Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "JOB_COMPLETION_INDEX is set but PRECHECK_SHARD_COUNT is not: set it to the Job's `completions`"
        );
        let error = Shard::from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "SLURM_ARRAY_TASK_ID gives shard 5 of 3, which does not exist"
        );
        assert!(Shard::from_env(env(&[("SLURM_ARRAY_TASK_ID", "0")])).is_err());
    }

    proptest::proptest! {
        /// Over any set of ids and any count, the shards partition the ids, each id exactly once
        /// and in the order given, with sizes that differ by at most one.
        #[test]
        fn shards_partition_the_ids_evenly(
            ids in proptest::collection::btree_set("[a-z]{1,6}/[a-z0-9_]{1,8}/cpu", 0..60),
            count in 1usize..9,
        ) {
            let ids: Vec<String> = ids.into_iter().collect();
            let shards: Vec<Vec<String>> = (0..count)
                .map(|index| Shard { index, count }.select(ids.clone(), |id| id.as_str()))
                .collect();
            let mut union: Vec<String> = shards.concat();
            union.sort();
            proptest::prop_assert_eq!(&union, &ids, "each id in exactly one shard");
            for shard in &shards {
                let mut sorted = shard.clone();
                sorted.sort();
                proptest::prop_assert_eq!(&sorted, shard, "the order given is kept");
            }
            let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            proptest::prop_assert!(max - min <= 1, "{:?}", sizes);
        }
    }
}
