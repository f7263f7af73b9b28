//! A growable array whose elements never move: segments of doubling size, each allocated
//! once and kept until the array is dropped. Readers index it without a lock, so a thread
//! validating a kernel report reaches its registration's slot without touching any
//! port-wide lock; growing is done by whoever holds the registry's table lock.

use std::sync::OnceLock;

/// The first segment holds `1 << BASE` elements; segment `k` holds `1 << (BASE + k)`.
const BASE: u32 = 6;
/// Enough segments for every index below `u32::MAX`.
const SEGMENTS: usize = 27;

pub(crate) struct Slab<T> {
    segments: [OnceLock<Box<[T]>>; SEGMENTS],
}

/// The segment and offset of `index`.
fn locate(index: usize) -> (usize, usize) {
    let biased = index + (1 << BASE);
    let segment = (usize::BITS - 1 - biased.leading_zeros() - BASE) as usize;
    (segment, biased - (1 << (BASE as usize + segment)))
}

impl<T: Default> Slab<T> {
    pub(crate) fn new() -> Slab<T> {
        Slab {
            segments: [const { OnceLock::new() }; SEGMENTS],
        }
    }

    /// The element at `index`, if its segment exists.
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        let (segment, offset) = locate(index);
        self.segments.get(segment)?.get().map(|s| &s[offset])
    }

    /// The element at `index`, allocating its segment (default elements) if needed.
    ///
    /// # Panics
    /// For an index at or above `u32::MAX`, which the registry never passes.
    pub(crate) fn get_or_grow(&self, index: usize) -> &T {
        let (segment, offset) = locate(index);
        let len = 1usize << (BASE as usize + segment);
        &self.segments[segment].get_or_init(|| (0..len).map(|_| T::default()).collect())[offset]
    }

    /// The elements of every allocated segment, in index order, up to `end`.
    pub(crate) fn iter(&self, end: usize) -> impl Iterator<Item = &T> + '_ {
        (0..end).map_while(move |i| self.get(i))
    }
}

impl<T> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let allocated = self.segments.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("Slab")
            .field("segments", &allocated)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_map_to_distinct_stable_places() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        assert!(locate(u32::MAX as usize - 1).0 < SEGMENTS);
        let slab: Slab<std::sync::atomic::AtomicU32> = Slab::new();
        assert!(slab.get(5).is_none());
        let first = slab.get_or_grow(5) as *const _;
        slab.get_or_grow(1000);
        assert_eq!(slab.get(5).unwrap() as *const _, first, "an element moved");
        assert_eq!(
            slab.iter(70).count(),
            64,
            "iteration stops at a missing segment"
        );
    }
}
