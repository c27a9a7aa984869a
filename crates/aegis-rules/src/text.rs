//! Small text helpers for matching names that were probably meant to be the same.

/// The Levenshtein edit distance between two strings.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Whether two names are probably the same name mistyped: equal once separators are dropped,
/// or within a small edit distance relative to their length.
pub fn similar(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let squash = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | '.'))
            .collect::<String>()
            .to_ascii_lowercase()
    };
    if squash(a) == squash(b) {
        return true;
    }
    let limit = (a.len().max(b.len()) / 4).clamp(1, 3);
    edit_distance(a, b) <= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_names_are_typos_of_each_other() {
        let cases = [
            ("store-front", "storefront", true),
            ("api-gateway-conf", "api-gateway-config", true),
            ("1.25.33", "1.25.3", true),
            ("frontend", "backend", false),
            ("web", "db", false),
            ("orders", "orders", true),
        ];
        for (a, b, expected) in cases {
            assert_eq!(similar(a, b), expected, "{a} ~ {b}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
