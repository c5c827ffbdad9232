//! Did-you-mean hints: the nearest valid name to a misspelt one, for every error that names a key,
//! preset, recipe, tensor or parameter.

/// The closest of `candidates` to `found`, if it is close enough to be a plausible typo: at most
/// one edit per three characters (a transposition counts as one edit, so `mpl` finds `mlp`).
pub fn nearest<'a>(found: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let budget = (found.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(found, c), c))
        .filter(|(distance, _)| *distance <= budget)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.to_owned())
}

/// `" (did you mean `name`?)"` for the nearest of `candidates`, or nothing: the tail of an error
/// that names something unknown.
pub fn did_you_mean<'a>(found: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(found, candidates).map_or(String::new(), |near| format!(" (did you mean `{near}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_close_names() {
        let keys = ["seed", "warmup", "iterations"];
        assert_eq!(nearest("iteratons", keys), Some("iterations".into()));
        assert_eq!(nearest("warmpu", keys), Some("warmup".into()));
        assert_eq!(nearest("colour", keys), None);
        assert_eq!(nearest("mpl", ["linear", "mlp"]), Some("mlp".into()));
    }
}
