//! "Did you mean …?": the one edit distance and the one closest-candidate rule behind
//! every hint attrgate gives (input rules, pool schemas, policy and case files).
//! Pure: depends on nothing.

/// The candidate closest to `word`, if it is close enough to be a likely typo: at most
/// two edits, or a third of the word's length for longer words.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions,
/// so `verfiy` is one edit away from `verify`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for (i, cell) in table.iter_mut().step_by(width).enumerate() {
        *cell = i;
    }
    for (j, cell) in table.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::{closest, edit_distance};

    #[test]
    fn edit_distance_counts_insertions_deletions_substitutions_and_transpositions() {
        let table: &[(&str, &str, usize)] = &[
            ("update", "update", 0),
            ("updat", "update", 1),
            ("verfiy", "verify", 1),
            ("pool", "pools", 1),
            ("oneof", "one_of", 1),
            ("", "abc", 3),
            ("kitten", "sitting", 3),
        ];
        for &(a, b, expected) in table {
            assert_eq!(edit_distance(a, b), expected, "{a} -> {b}");
        }
    }

    #[test]
    fn suggestions_are_offered_only_for_likely_typos() {
        let keys = ["pools", "update", "verify", "deny", "constraints"];
        assert_eq!(closest("updates", keys), Some("update"));
        assert_eq!(closest("constraint", keys), Some("constraints"));
        assert_eq!(closest("dney", keys), Some("deny"));
        assert_eq!(closest("permissions", keys), None);
    }
}
