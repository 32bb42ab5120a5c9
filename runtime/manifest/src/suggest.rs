//! "Did you mean" suggestions and lists of names for hints.

/// The candidate closest to `word`, if one is close enough to be a typo.
///
/// Closeness is the optimal-string-alignment distance (insertions, deletions,
/// substitutions and swaps of two neighbours each cost one), ignoring case; a
/// candidate qualifies within a third of the longer word's length (at least 1).
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = distance(&word_lower, &candidate.to_lowercase());
        let longest = word.chars().count().max(candidate.chars().count());
        let limit = (longest / 3).max(1);
        if distance <= limit && best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance between two words.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    // rows[i * width + j] = distance between a[..i] and b[..j]
    let mut rows = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        rows[i * width] = i;
    }
    for (j, cell) in rows.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[(i - 1) * width + j] + 1)
                .min(rows[i * width + j - 1] + 1)
                .min(rows[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[(i - 2) * width + j - 2] + 1);
            }
            rows[i * width + j] = best;
        }
    }
    rows[a.len() * width + b.len()]
}

/// "`a`, `b`, `c`": names in backticks, comma separated.
pub(crate) fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "expected one of `a`, `b`; did you mean `a`?" (or "expected `a`").
pub(crate) fn expected_hint(word: &str, expected: &[&str]) -> String {
    let mut hint = match expected {
        [] => "nothing is expected here".to_owned(),
        [only] => format!("expected `{only}`"),
        _ => format!("expected one of {}", quoted_list(expected.iter().copied())),
    };
    if let Some(near) = did_you_mean(word, expected.iter().copied()) {
        hint.push_str(&format!("; did you mean `{near}`?"));
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_found() {
        assert_eq!(
            did_you_mean("mdoe", ["name", "mode", "batch"]),
            Some("mode")
        );
        assert_eq!(did_you_mean("rulez", ["crm", "rules"]), Some("rules"));
        assert_eq!(
            did_you_mean("warehose", ["warehouse", "eu_warehouse"]),
            Some("warehouse")
        );
        assert_eq!(did_you_mean("Source", ["source", "sink"]), Some("source"));
        assert_eq!(did_you_mean("xyz", ["name", "mode"]), None);
        assert_eq!(did_you_mean("mode", ["mode"]), None);
    }

    #[test]
    fn distance_counts_swaps_once() {
        assert_eq!(distance("mdoe", "mode"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn hints_list_what_is_expected() {
        assert_eq!(
            expected_hint("mdoe", &["name", "mode"]),
            "expected one of `name`, `mode`; did you mean `mode`?"
        );
        assert_eq!(expected_hint("x", &["field"]), "expected `field`");
    }
}
