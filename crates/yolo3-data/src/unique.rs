//! Output file names that stay distinct when inputs share a name.
//!
//! Two inputs can map to one output: `c/x.png` and `b/x.png` have one file name, and `a.png`
//! and `a.jpg` one label file (`a.txt`) in YOLO's layout. Written as they come, the second
//! overwrites the first and its boxes are silently attached to the other image. Names are
//! therefore made unique by **stem**, ignoring case (so they stay unique on case-insensitive
//! file systems too): the first keeps its name, later ones get `_2`, `_3`, ... before the
//! extension, and the caller reports each rename.

use std::collections::HashSet;

/// Hands out file names whose stems are pairwise distinct.
#[derive(Debug, Default)]
pub struct UniqueNames {
    taken: HashSet<String>,
}

impl UniqueNames {
    /// An empty set of names.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// `name` itself when its stem is free, otherwise `<stem>_<n>.<ext>` with the smallest free
    /// `n >= 2`. The returned name's stem is taken from then on.
    pub fn claim(&mut self, name: &str) -> String {
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i..]),
            _ => (name, ""),
        };
        if self.taken.insert(stem.to_lowercase()) {
            return name.to_owned();
        }
        for n in 2.. {
            let candidate = format!("{stem}_{n}");
            if self.taken.insert(candidate.to_lowercase()) {
                return format!("{candidate}{ext}");
            }
        }
        unreachable!("an unbounded range always yields a free name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_stems_and_names_get_suffixes() {
        let mut u = UniqueNames::new();
        assert_eq!(u.claim("a.png"), "a.png");
        assert_eq!(u.claim("a.jpg"), "a_2.jpg");
        assert_eq!(u.claim("A.png"), "A_3.png");
        assert_eq!(u.claim("a_2.png"), "a_2_2.png");
        assert_eq!(u.claim("b"), "b");
        assert_eq!(u.claim("b"), "b_2");
        assert_eq!(u.claim(".hidden"), ".hidden");
    }
}
