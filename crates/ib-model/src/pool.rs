//! The GUID pool: which GUIDs of the configured range are free.
//!
//! The default range holds 2^56 GUIDs, so nothing here may grow with the range. The pool keeps the
//! *free* GUIDs as a set of disjoint, non-adjacent inclusive intervals in a `BTreeMap` (start → end).
//! Allocating one GUID splits at most one interval and releasing one merges at most two, so the map never
//! holds more than `allocated + 1` intervals and every operation is O(log n) in the number of allocated
//! GUIDs, whatever their layout. Exhaustion is an empty map: O(1).
//!
//! Generation is next-fit with a true cursor: it hands out the first free GUID at or after the cursor
//! (wrapping once to the range start) and moves the cursor just past it. A fresh pool's first GUID is the
//! range start, as in the Go daemon.

use std::collections::BTreeMap;
use std::fmt;

use crate::guid::Guid;

/// A validated inclusive GUID range.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GuidRange {
    start: Guid,
    end: Guid,
}

/// Why a range or a pool operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "each variant's #[error] message is its documentation; its fields are the values the message names"
)]
pub enum PoolError {
    #[error(
        "invalid GUID range {start} - {end}: the start must not be 00:00:00:00:00:00:00:00, the end must not be ff:ff:ff:ff:ff:ff:ff:ff, and the start must not be after the end"
    )]
    InvalidRange { start: Guid, end: Guid },
    #[error("GUID {guid} is out of the pool range {range}")]
    OutOfRange { guid: Guid, range: GuidRange },
    #[error("GUID {guid} is already allocated")]
    AlreadyAllocated { guid: Guid },
    #[error("GUID {guid} cannot be released: it is not allocated")]
    NotAllocated { guid: Guid },
    #[error("the GUID pool {range} is exhausted: all {capacity} GUIDs are in use")]
    Exhausted { range: GuidRange, capacity: u64 },
}

// A validated range is never empty (start ≤ end), so it has no `is_empty`.
#[expect(clippy::len_without_is_empty, reason = "a validated range is never empty")]
impl GuidRange {
    /// The Go daemon's validation: 0 is its "not found" sentinel and an all-ones end made its scan loop
    /// forever; we keep both rules so configurations stay interchangeable.
    pub fn new(start: Guid, end: Guid) -> Result<Self, PoolError> {
        if start.as_u64() == 0 || end.as_u64() == u64::MAX || start > end {
            return Err(PoolError::InvalidRange { start, end });
        }
        Ok(GuidRange { start, end })
    }

    /// The first GUID of the range.
    pub fn start(&self) -> Guid {
        self.start
    }

    /// The last GUID of the range.
    pub fn end(&self) -> Guid {
        self.end
    }

    /// Whether `guid` lies in the range.
    pub fn contains(&self, guid: Guid) -> bool {
        (self.start..=self.end).contains(&guid)
    }

    /// Number of GUIDs in the range; never overflows because start ≥ 1.
    pub fn len(&self) -> u64 {
        self.end.as_u64() - self.start.as_u64() + 1
    }
}

impl fmt::Display for GuidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} - {}", self.start, self.end)
    }
}

impl fmt::Debug for GuidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuidRange({self})")
    }
}

/// Free GUIDs of a range, with next-fit generation.
#[derive(Clone, Debug)]
pub struct GuidPool {
    range: GuidRange,
    /// Free intervals, start → inclusive end; disjoint and never adjacent.
    free: BTreeMap<u64, u64>,
    free_count: u64,
    /// Where the next generation starts looking.
    cursor: u64,
}

impl GuidPool {
    /// A pool with every GUID of `range` free.
    pub fn new(range: GuidRange) -> Self {
        let (s, e) = (range.start.as_u64(), range.end.as_u64());
        GuidPool { range, free: BTreeMap::from([(s, e)]), free_count: range.len(), cursor: s }
    }

    /// The range the pool hands out GUIDs from.
    pub fn range(&self) -> GuidRange {
        self.range
    }

    /// Whether the GUID lies in the pool's range (allocated or not).
    pub fn contains(&self, guid: Guid) -> bool {
        self.range.contains(guid)
    }

    /// Whether `guid` is held (not free).
    pub fn is_allocated(&self, guid: Guid) -> bool {
        self.contains(guid) && self.free_interval_of(guid.as_u64()).is_none()
    }

    /// How many GUIDs the range has.
    pub fn capacity(&self) -> u64 {
        self.range.len()
    }

    /// How many GUIDs are free.
    pub fn free_count(&self) -> u64 {
        self.free_count
    }

    /// How many GUIDs are held.
    pub fn allocated_count(&self) -> u64 {
        self.range.len() - self.free_count
    }

    /// Marks a specific GUID as allocated.
    pub fn allocate(&mut self, guid: Guid) -> Result<(), PoolError> {
        self.check_range(guid)?;
        let g = guid.as_u64();
        let (s, e) = self.free_interval_of(g).ok_or(PoolError::AlreadyAllocated { guid })?;
        self.free.remove(&s);
        if s < g {
            self.free.insert(s, g - 1);
        }
        if g < e {
            self.free.insert(g + 1, e);
        }
        self.free_count -= 1;
        Ok(())
    }

    /// The GUID the next [`generate`](Self::generate) would return, without reserving it.
    pub fn peek(&self) -> Option<Guid> {
        self.free_from_cursor().next()
    }

    /// Allocates the first free GUID at or after the cursor, wrapping once, and moves the cursor past it.
    pub fn generate(&mut self) -> Result<Guid, PoolError> {
        let guid = self.peek().ok_or(PoolError::Exhausted { range: self.range, capacity: self.range.len() })?;
        self.allocate(guid)?;
        self.cursor = if guid == self.range.end { self.range.start.as_u64() } else { guid.as_u64() + 1 };
        Ok(guid)
    }

    /// Marks an allocated GUID as free again.
    pub fn release(&mut self, guid: Guid) -> Result<(), PoolError> {
        self.check_range(guid)?;
        let g = guid.as_u64();
        if self.free_interval_of(g).is_some() {
            return Err(PoolError::NotAllocated { guid });
        }
        let mut start = g;
        let mut end = g;
        // Merge with a free interval ending right before g and one starting right after it.
        if let Some((&s, &e)) = self.free.range(..g).next_back()
            && e + 1 == g
        {
            self.free.remove(&s);
            start = s;
        }
        // g ≤ end < u64::MAX, so g + 1 cannot overflow.
        if let Some(e) = self.free.remove(&(g + 1)) {
            end = e;
        }
        self.free.insert(start, end);
        self.free_count += 1;
        Ok(())
    }

    /// Free GUIDs in generation order: from the cursor to the range end, then from the range start.
    pub fn free_from_cursor(&self) -> impl Iterator<Item = Guid> + '_ {
        let c = self.cursor;
        let head = self.free_interval_of(c).map(|(_, e)| (c, e));
        let after = self.free.range(c.saturating_add(1)..).map(|(&s, &e)| (s, e));
        // The interval holding the cursor may start before it; `head` already yielded its part from the
        // cursor on, so the wrapped part stops just before the cursor (c ≥ range start ≥ 1).
        let before = self.free.range(..c).map(move |(&s, &e)| (s, e.min(c - 1)));
        head.into_iter().chain(after).chain(before).flat_map(|(s, e)| (s..=e).map(Guid::from_u64))
    }

    fn free_interval_of(&self, g: u64) -> Option<(u64, u64)> {
        self.free.range(..=g).next_back().filter(|(_, e)| **e >= g).map(|(&s, &e)| (s, e))
    }

    fn check_range(&self, guid: Guid) -> Result<(), PoolError> {
        if self.range.contains(guid) { Ok(()) } else { Err(PoolError::OutOfRange { guid, range: self.range }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn g(v: u64) -> Guid {
        Guid::from_u64(v)
    }

    fn pool(s: u64, e: u64) -> GuidPool {
        GuidPool::new(GuidRange::new(g(s), g(e)).unwrap())
    }

    /// Number of free intervals: the pool's memory use.
    fn fragments(p: &GuidPool) -> usize {
        p.free.len()
    }

    fn is_exhausted(p: &GuidPool) -> bool {
        p.free.is_empty()
    }

    #[test]
    fn range_validation_follows_go() {
        assert!(GuidRange::new(g(0), g(5)).is_err());
        assert!(GuidRange::new(g(1), g(u64::MAX)).is_err());
        assert!(GuidRange::new(g(6), g(5)).is_err());
        assert!(GuidRange::new(g(5), g(5)).is_ok());
        let err = GuidRange::new(g(6), g(5)).unwrap_err().to_string();
        assert!(err.contains("00:00:00:00:00:00:00:06 - 00:00:00:00:00:00:00:05"), "{err}");
        let default = GuidRange::new(
            Guid::parse("02:00:00:00:00:00:00:00").unwrap(),
            Guid::parse("02:FF:FF:FF:FF:FF:FF:FF").unwrap(),
        )
        .unwrap();
        assert_eq!(default.len(), 1 << 56);
    }

    // The Go tests pin these sequences.
    #[test]
    fn first_generated_is_range_start_then_next() {
        let mut p = pool(0x100, 0x101);
        assert_eq!(p.generate(), Ok(g(0x100)));
        assert_eq!(p.generate(), Ok(g(0x101)));
        assert!(matches!(p.generate(), Err(PoolError::Exhausted { capacity: 2, .. })));

        let mut p = pool(0x100, 0x101);
        p.allocate(g(0x100)).unwrap();
        assert_eq!(p.generate(), Ok(g(0x101)));
    }

    #[test]
    fn wraps_to_released_guids_below_the_cursor() {
        let mut p = pool(0x100, 0x1ff);
        assert_eq!(p.generate(), Ok(g(0x100)));
        p.release(g(0x100)).unwrap();
        for want in 0x101..=0x1ff {
            assert_eq!(p.generate(), Ok(g(want)));
        }
        assert_eq!(p.generate(), Ok(g(0x100)));
        assert!(is_exhausted(&p));
    }

    #[test]
    fn cursor_moves_past_the_found_guid_not_by_one() {
        let mut p = pool(1, 1000);
        for v in 1..=500 {
            p.allocate(g(v)).unwrap();
        }
        assert_eq!(p.generate(), Ok(g(501)));
        p.release(g(7)).unwrap();
        // Next-fit: the hole behind the cursor waits until the cursor wraps.
        assert_eq!(p.generate(), Ok(g(502)));
    }

    #[test]
    fn errors_name_the_guid() {
        let mut p = pool(0x10, 0x20);
        assert_eq!(p.allocate(g(0x21)), Err(PoolError::OutOfRange { guid: g(0x21), range: p.range() }));
        p.allocate(g(0x11)).unwrap();
        assert_eq!(p.allocate(g(0x11)), Err(PoolError::AlreadyAllocated { guid: g(0x11) }));
        assert_eq!(p.release(g(0x12)), Err(PoolError::NotAllocated { guid: g(0x12) }));
        assert!(p.release(g(0x9)).unwrap_err().to_string().contains("00:00:00:00:00:00:00:09"));
    }

    #[test]
    fn full_u64_edges_do_not_overflow() {
        let mut p = pool(u64::MAX - 3, u64::MAX - 1);
        assert_eq!(p.generate(), Ok(g(u64::MAX - 3)));
        p.allocate(g(u64::MAX - 1)).unwrap();
        assert_eq!(p.generate(), Ok(g(u64::MAX - 2)));
        assert!(is_exhausted(&p));
        p.release(g(u64::MAX - 1)).unwrap();
        assert_eq!(p.generate(), Ok(g(u64::MAX - 1)));
        p.release(g(u64::MAX - 3)).unwrap();
        p.release(g(u64::MAX - 1)).unwrap();
        assert_eq!((p.free_count(), fragments(&p)), (2, 2));
    }

    #[test]
    fn default_range_is_cheap() {
        let mut p = GuidPool::new(
            GuidRange::new(
                Guid::parse("02:00:00:00:00:00:00:00").unwrap(),
                Guid::parse("02:ff:ff:ff:ff:ff:ff:ff").unwrap(),
            )
            .unwrap(),
        );
        for _ in 0..10_000 {
            p.generate().unwrap();
        }
        assert_eq!(p.allocated_count(), 10_000);
        assert_eq!(fragments(&p), 1);
        assert_eq!(p.free_count(), (1 << 56) - 10_000);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Generate,
        Allocate(u64),
        Release(u64),
    }

    fn op(size: u64) -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Generate),
            2 => (0..size + 2).prop_map(Op::Allocate),
            3 => (0..size + 2).prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Against a plain set model: no GUID is handed out twice, released GUIDs come back, counts agree,
        /// generation order is next-fit.
        #[test]
        fn behaves_like_a_set_with_next_fit(ops in prop::collection::vec(op(24), 1..200)) {
            let (lo, hi) = (1u64, 24u64);
            let mut p = pool(lo, hi);
            let mut used = BTreeSet::new();
            let mut cursor = lo;
            for o in ops {
                match o {
                    Op::Generate => {
                        let want = (cursor..=hi).chain(lo..cursor).find(|v| !used.contains(v));
                        match p.generate() {
                            Ok(got) => {
                                prop_assert_eq!(Some(got.as_u64()), want);
                                prop_assert!(used.insert(got.as_u64()), "handed out twice");
                                cursor = if got.as_u64() == hi { lo } else { got.as_u64() + 1 };
                            }
                            Err(PoolError::Exhausted { .. }) => prop_assert_eq!(want, None),
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                    Op::Allocate(v) => {
                        let r = p.allocate(g(v));
                        let in_range = (lo..=hi).contains(&v);
                        prop_assert_eq!(r.is_ok(), in_range && !used.contains(&v));
                        if r.is_ok() { used.insert(v); }
                    }
                    Op::Release(v) => {
                        let r = p.release(g(v));
                        prop_assert_eq!(r.is_ok(), used.remove(&v));
                    }
                }
                prop_assert_eq!(p.allocated_count(), used.len() as u64);
                prop_assert_eq!(p.free_count() + p.allocated_count(), hi - lo + 1);
                prop_assert!(fragments(&p) <= used.len() + 1);
                prop_assert_eq!(is_exhausted(&p), used.len() as u64 == hi - lo + 1);
                for v in lo..=hi {
                    prop_assert_eq!(p.is_allocated(g(v)), used.contains(&v));
                }
                let free: Vec<u64> = p.free_from_cursor().map(Guid::as_u64).collect();
                let want: Vec<u64> = (cursor..=hi).chain(lo..cursor).filter(|v| !used.contains(v)).collect();
                prop_assert_eq!(free, want);
            }
        }
    }
}
