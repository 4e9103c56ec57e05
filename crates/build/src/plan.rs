//! The stage planner: which stages the target needs (FROM another stage, COPY --from,
//! RUN --mount from=), and in which order, as waves of stages that can build in parallel.

use crate::parser::{Dockerfile, Inst};
use crate::{Error, Result};

/// The stage a `--from` / FROM name refers to: a stage name (case-insensitive) or index
/// (only stages before `before`).
pub fn stage_ref(df: &Dockerfile, name: &str, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(s) = df.stages[..before]
        .iter()
        .find(|s| s.name() == Some(lower.as_str()))
    {
        return Some(s.index);
    }
    name.parse::<usize>().ok().filter(|&i| i < before)
}

/// Stages `i` depends on. FROM names are compared unexpanded (a FROM with variables names an image).
pub fn deps(df: &Dockerfile, i: usize) -> Vec<usize> {
    let s = &df.stages[i];
    let mut v = Vec::new();
    if let Some(d) = stage_ref_name(df, s.base(), i) {
        v.push(d);
    }
    for st in &s.steps {
        let mut froms: Vec<String> = Vec::new();
        match &st.inst {
            Inst::Copy { add: false, .. } => froms.extend(st.flags.get("from").map(str::to_string)),
            Inst::Run { .. } => {
                for m in st.flags.all("mount") {
                    if let Ok(m) = crate::mounts::RunMount::parse(m) {
                        froms.extend(m.from);
                    }
                }
            }
            _ => {}
        }
        for f in froms {
            if let Some(d) = stage_ref(df, &f, i) {
                v.push(d);
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

fn stage_ref_name(df: &Dockerfile, name: &str, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    df.stages[..before]
        .iter()
        .find(|s| s.name() == Some(lower.as_str()))
        .map(|s| s.index)
}

/// The target's index: a stage name, or the last stage.
pub fn target(df: &Dockerfile, target: Option<&str>) -> Result<usize> {
    match target {
        None => Ok(df.stages.len() - 1),
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            df.stages
                .iter()
                .find(|s| s.name() == Some(lower.as_str()))
                .map(|s| s.index)
                .ok_or_else(|| Error::msg(format!("target stage {t:?} could not be found")))
        }
    }
}

/// Waves of the stages the target needs: each wave depends only on earlier waves.
pub fn waves(df: &Dockerfile, target: usize) -> Vec<Vec<usize>> {
    let mut needed = vec![false; df.stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !needed[i] {
            needed[i] = true;
            todo.extend(deps(df, i));
        }
    }
    let mut level = vec![0usize; df.stages.len()];
    for i in 0..df.stages.len() {
        if needed[i] {
            level[i] = deps(df, i).iter().map(|&d| level[d] + 1).max().unwrap_or(0);
        }
    }
    let max = (0..df.stages.len())
        .filter(|&i| needed[i])
        .map(|i| level[i])
        .max()
        .unwrap_or(0);
    (0..=max)
        .map(|l| {
            (0..df.stages.len())
                .filter(|&i| needed[i] && level[i] == l)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_needed_stages_in_waves() {
        let df = crate::parser::parse(
            "FROM busybox AS a\nRUN true\nFROM busybox AS b\nRUN true\nFROM busybox AS unused\nFROM a AS c\nCOPY --from=b /x /x\nCOPY --from=0 /y /y\n",
        )
        .unwrap();
        assert_eq!(deps(&df, 3), vec![0, 1]);
        assert_eq!(waves(&df, 3), vec![vec![0, 1], vec![3]]);
        assert_eq!(waves(&df, target(&df, Some("B")).unwrap()), vec![vec![1]]);
        assert!(target(&df, Some("nope")).is_err());
    }
}
