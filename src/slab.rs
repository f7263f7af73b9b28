//! A growable array whose elements never move: segments of doubling size, each allocated
//! once and kept until the array is dropped. Readers index it without a lock, so a thread
//! validating a kernel report reaches its registration's slot without touching any
//! port-wide lock; growing is done by whoever holds the registry's table lock.
//!
//! A segment is one pointer, null until it is allocated: its length follows from its
//! number, so finding an element is the segment's number (one bit scan), one load and one
//! add, with no length to check.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The first segment holds `1 << BASE` elements; segment `k` holds `1 << (BASE + k)`.
const BASE: u32 = 6;
/// Enough segments for every index below `u32::MAX`.
const SEGMENTS: usize = 27;

pub(crate) struct Slab<T> {
    /// Segment `k`: null, or the first of its `len(k)` elements (a leaked `Box<[T]>`).
    segments: [AtomicPtr<T>; SEGMENTS],
    /// The slab owns its elements (for the drop check).
    _owns: PhantomData<T>,
}

// SAFETY: a `Slab` hands out `&T` to every thread that shares it, and creates its elements
// on whichever thread grows it and drops them where it is dropped; so sharing it needs
// `T: Send + Sync`, as sharing a `OnceLock<Box<[T]>>` would.
unsafe impl<T: Send + Sync> Sync for Slab<T> {}

/// The segment and offset of `index`.
#[inline]
fn locate(index: usize) -> (usize, usize) {
    let biased = index + (1 << BASE);
    let top = usize::BITS - 1 - biased.leading_zeros();
    ((top - BASE) as usize, biased - (1 << top))
}

/// The number of elements of segment `segment`.
fn len(segment: usize) -> usize {
    1 << (BASE as usize + segment)
}

impl<T: Default> Slab<T> {
    pub(crate) fn new() -> Slab<T> {
        Slab {
            segments: [const { AtomicPtr::new(std::ptr::null_mut()) }; SEGMENTS],
            _owns: PhantomData,
        }
    }

    /// The element at `index`, if its segment exists.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        let (segment, offset) = locate(index);
        let first = self.segments.get(segment)?.load(Ordering::Acquire);
        if first.is_null() {
            return None;
        }
        // SAFETY: a non-null segment pointer is the start of `len(segment)` initialised
        // elements (published by the release in `get_or_grow`, seen by the acquire above),
        // never freed before the slab is dropped; `offset < len(segment)` by `locate`.
        Some(unsafe { &*first.add(offset) })
    }

    /// The element at `index`, allocating its segment (default elements) if needed.
    ///
    /// # Panics
    /// For an index at or above `u32::MAX`, which the registry never passes.
    pub(crate) fn get_or_grow(&self, index: usize) -> &T {
        if let Some(element) = self.get(index) {
            return element;
        }
        let (segment, offset) = locate(index);
        let cell = &self.segments[segment];
        let fresh: Box<[T]> = (0..len(segment)).map(|_| T::default()).collect();
        let fresh = Box::into_raw(fresh).cast::<T>();
        let first = match cell.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(won) => {
                // Another thread grew it first: ours goes.
                // SAFETY: `fresh` came from `Box::into_raw` of `len(segment)` elements
                // just above and was never published.
                drop(unsafe {
                    Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, len(segment)))
                });
                won
            }
        };
        // SAFETY: as in `get`: `first` starts `len(segment)` elements, `offset` is below it.
        unsafe { &*first.add(offset) }
    }

    /// The elements of every allocated segment, in index order, up to `end`.
    pub(crate) fn iter(&self, end: usize) -> impl Iterator<Item = &T> + '_ {
        (0..end).map_while(move |i| self.get(i))
    }
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        for (segment, cell) in self.segments.iter_mut().enumerate() {
            let first = *cell.get_mut();
            if !first.is_null() {
                // SAFETY: a non-null segment pointer came from `Box::into_raw` of a boxed
                // slice of `len(segment)` elements; it is dropped once, here.
                drop(unsafe {
                    Box::from_raw(std::ptr::slice_from_raw_parts_mut(first, len(segment)))
                });
            }
        }
    }
}

impl<T> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let allocated = self
            .segments
            .iter()
            .filter(|s| !s.load(Ordering::Relaxed).is_null())
            .count();
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
