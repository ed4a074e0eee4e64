//! What is marked for another look by the planner, where at times that is everything of a kind.
//!
//! A leader's start marks every pod and every GUID it reads (100,000 pods and 275,000 GUIDs in a large
//! GPU cluster), all at once and before any of them can be planned. Held one by one, those marks are a
//! B-tree entry each (about 20 bytes a GUID), at the moment the start's memory is highest. Marking
//! everything is a flag instead: the caller names, when it takes the marks, where "everything" is read
//! from, and gets them sorted and once each, in the order a set of them would have given.

use std::collections::BTreeSet;

/// Marks of `T`: some one by one, or every one of a source the taker names.
#[derive(Clone, Debug)]
pub(crate) struct Marks<T> {
    some: BTreeSet<T>,
    every: bool,
}

impl<T> Default for Marks<T> {
    fn default() -> Self {
        Marks { some: BTreeSet::new(), every: false }
    }
}

impl<T: Ord> Marks<T> {
    /// Marks one.
    pub(crate) fn insert(&mut self, t: T) {
        self.some.insert(t);
    }

    /// Marks each of `ts`.
    pub(crate) fn extend<I: IntoIterator<Item = T>>(&mut self, ts: I) {
        self.some.extend(ts);
    }

    /// Moves every mark of `other` here.
    pub(crate) fn append(&mut self, other: &mut BTreeSet<T>) {
        self.some.append(other);
    }

    /// Marks every one the next [`take`](Self::take) finds in its source.
    pub(crate) fn mark_every(&mut self) {
        self.every = true;
    }

    /// Whether every one is marked.
    pub(crate) fn is_every(&self) -> bool {
        self.every
    }

    /// Whether nothing is marked.
    pub(crate) fn is_empty(&self) -> bool {
        !self.every && self.some.is_empty()
    }

    /// Takes the marks, sorted and each once: those marked one by one, and when every one is marked, each
    /// of `every` as well.
    pub(crate) fn take<I: IntoIterator<Item = T>>(&mut self, every: impl FnOnce() -> I) -> Vec<T> {
        let some = std::mem::take(&mut self.some);
        if !std::mem::take(&mut self.every) {
            return some.into_iter().collect();
        }
        let mut all: Vec<T> = every().into_iter().chain(some).collect();
        all.sort_unstable();
        all.dedup();
        all.shrink_to_fit();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Taking gives exactly what a set of every mark would have held, in its order.
        #[test]
        fn taking_gives_what_a_set_of_the_marks_would(
            steps in proptest::collection::vec((0u8..4, proptest::collection::vec(0u16..64, 0..8)), 0..24),
            source in proptest::collection::vec(0u16..64, 0..32),
        ) {
            let mut marks = Marks::default();
            let mut set = BTreeSet::new();
            for (what, values) in steps {
                match what {
                    0 => for v in &values {
                        marks.insert(*v);
                        set.insert(*v);
                    },
                    1 => {
                        marks.extend(values.iter().copied());
                        set.extend(values.iter().copied());
                    }
                    2 => {
                        let mut other: BTreeSet<u16> = values.iter().copied().collect();
                        set.extend(other.iter().copied());
                        marks.append(&mut other);
                        prop_assert!(other.is_empty());
                    }
                    _ => {
                        marks.mark_every();
                        set.extend(source.iter().copied());
                    }
                }
                prop_assert_eq!(marks.is_empty(), set.is_empty() && !marks.is_every());
            }
            let taken = marks.take(|| source.clone());
            prop_assert_eq!(taken, set.into_iter().collect::<Vec<_>>());
            prop_assert!(marks.is_empty());
            prop_assert!(marks.take(|| source.clone()).is_empty(), "every one is marked once, not for good");
        }
    }
}
