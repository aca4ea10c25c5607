//! `--shard I/N` and `--shards N`: one of N processes evaluates image k of the list (0-based,
//! after `--limit`) when `k mod N == I`. The split depends on nothing but the list, `--limit` and
//! N, so shards may run anywhere, in any order, any number of times. Indices are 0-based, as
//! Kubernetes' `JOB_COMPLETION_INDEX`; with `--shards N` the index is read from that variable, or
//! else from Slurm's `SLURM_ARRAY_TASK_ID` (submit the array as `--array=0-(N-1)`).

use anyhow::{Result, bail};

/// The environment variables that name the shard index, in the order they are read.
pub const INDEX_VARS: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `--shard I/N`.
    pub fn parse(s: &str) -> Result<Shard> {
        let Some((i, n)) = s.split_once('/') else {
            bail!("--shard '{s}': expected I/N, e.g. 0/4 (I is 0-based)");
        };
        let (Ok(index), Ok(count)) = (i.trim().parse::<usize>(), n.trim().parse::<usize>()) else {
            bail!("--shard '{s}': expected I/N with whole numbers, e.g. 0/4 (I is 0-based)");
        };
        if count == 0 {
            bail!("--shard '{s}': the shard count must be at least 1");
        }
        if index >= count {
            bail!(
                "--shard '{s}': the index is 0-based and must be below the count (0..={})",
                count - 1
            );
        }
        Ok(Shard { index, count })
    }

    /// `--shards N` with the index from the first of [`INDEX_VARS`] that is set (`var` reads one).
    pub fn from_env(count: usize, var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        if count == 0 {
            bail!("--shards 0: the shard count must be at least 1");
        }
        let Some((name, value)) = INDEX_VARS.iter().find_map(|n| var(n).map(|v| (*n, v))) else {
            bail!(
                "--shards {count}: no shard index: set JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or \
                 SLURM_ARRAY_TASK_ID (Slurm job array), or pass --shard I/{count}"
            );
        };
        let Ok(index) = value.trim().parse::<usize>() else {
            bail!("{name}='{value}': not a shard index (a 0-based whole number)");
        };
        if index >= count {
            bail!(
                "{name}={index} is out of range for --shards {count}: indices are 0-based, 0..={} (Slurm: \
                 --array=0-{})",
                count - 1,
                count - 1
            );
        }
        Ok(Shard { index, count })
    }

    /// Whether image `k` of the list (0-based) is this shard's.
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// The shard's sub-folder of `--out`: `shard-I-of-N`, I zero-padded to the width of N - 1 so
    /// that the folders sort in index order.
    pub fn folder(&self) -> String {
        let width = (self.count - 1).to_string().len();
        format!("shard-{:0width$}-of-{}", self.index, self.count)
    }

    /// Reads a folder name written by [`Shard::folder`].
    pub fn of_folder(name: &str) -> Option<Shard> {
        let (i, n) = name.strip_prefix("shard-")?.split_once("-of-")?;
        let (index, count) = (i.parse().ok()?, n.parse().ok()?);
        let s = Shard { index, count };
        (index < count && s.folder() == name).then_some(s)
    }
}

/// `1, 3, 4` (at most 20, then how many in all).
pub fn list(indices: &[usize]) -> String {
    let mut s: Vec<String> = indices.iter().take(20).map(|i| i.to_string()).collect();
    if indices.len() > 20 {
        s.push(format!("… ({} in all)", indices.len()));
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_a_0_based_index_below_the_count() {
        assert_eq!(Shard::parse("0/1").unwrap(), Shard { index: 0, count: 1 });
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        for (bad, says) in [
            ("3/3", "0-based and must be below the count (0..=2)"),
            ("0/0", "at least 1"),
            ("1", "expected I/N"),
            ("a/3", "whole numbers"),
            ("-1/3", "whole numbers"),
        ] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn the_index_comes_from_kubernetes_then_slurm() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let s = Shard::from_env(4, env(&[("SLURM_ARRAY_TASK_ID", "3")])).unwrap();
        assert_eq!(s, Shard { index: 3, count: 4 });
        let s = Shard::from_env(
            4,
            env(&[("SLURM_ARRAY_TASK_ID", "3"), ("JOB_COMPLETION_INDEX", "1")]),
        )
        .unwrap();
        assert_eq!(s.index, 1);
        let e = Shard::from_env(4, env(&[])).unwrap_err().to_string();
        assert!(
            e.contains("JOB_COMPLETION_INDEX") && e.contains("--shard I/4"),
            "{e}"
        );
        let e = Shard::from_env(4, env(&[("SLURM_ARRAY_TASK_ID", "4")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SLURM_ARRAY_TASK_ID=4 is out of range") && e.contains("--array=0-3"),
            "{e}"
        );
        let e = Shard::from_env(4, env(&[("JOB_COMPLETION_INDEX", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX='x'"), "{e}");
        assert!(Shard::from_env(0, env(&[("JOB_COMPLETION_INDEX", "0")])).is_err());
    }

    #[test]
    fn shards_partition_the_images_round_robin() {
        for count in 1..=7 {
            let mut owner = vec![None; 23];
            for index in 0..count {
                let s = Shard { index, count };
                for (k, o) in owner.iter_mut().enumerate() {
                    if s.owns(k) {
                        assert!(o.is_none(), "image {k} in two shards");
                        *o = Some(index);
                    }
                }
            }
            assert!(owner.iter().all(|o| o.is_some()), "every image in a shard");
            // Sizes differ by at most one.
            let sizes: Vec<usize> = (0..count)
                .map(|i| owner.iter().filter(|o| **o == Some(i)).count())
                .collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn folder_names_sort_and_read_back() {
        let s = Shard { index: 7, count: 100 };
        assert_eq!(s.folder(), "shard-07-of-100");
        assert_eq!(Shard::of_folder("shard-07-of-100"), Some(s));
        assert_eq!(Shard { index: 0, count: 1 }.folder(), "shard-0-of-1");
        assert_eq!(Shard::of_folder("shard-7-of-100"), None);
        assert_eq!(Shard::of_folder("shard-3-of-3"), None);
        assert_eq!(Shard::of_folder("results"), None);
        assert_eq!(list(&[1, 3]), "1, 3");
        assert!(list(&(0..30).collect::<Vec<_>>()).ends_with("… (30 in all)"));
    }
}
