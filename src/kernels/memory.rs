//! Large work buffers and the page size they are mapped with.
//!
//! A training step streams through its records (gates, states, their gradients) a few
//! rows at a time, one row per sequence and step, tens of megabytes in all. With 4 KiB
//! pages every step touches dozens of pages spread over that range and the TLB misses
//! add up; on Linux, where transparent huge pages are commonly left to `madvise`, the
//! buffers this crate grows past [`HUGE_FROM`] bytes are marked for 2 MiB pages before
//! they are first written. The mark is advice: nothing is read or written, and where the
//! kernel declines it (huge pages off, another OS) the buffer works exactly as before.

use crate::error::{Error, Result};

/// The huge page size the advice is aligned to (x86-64 and most aarch64 kernels).
const HUGE_PAGE: usize = 2 << 20;

/// Buffers at least this large (bytes) get the advice: two huge pages, so that an
/// aligned one lies inside whatever the allocator returned.
pub(crate) const HUGE_FROM: usize = 2 * HUGE_PAGE;

/// Reserves room for `n` elements in `v` (`Error::Alloc` when memory cannot be had)
/// and, when that made a new allocation of at least [`HUGE_FROM`] bytes, advises the
/// OS to back it with huge pages. Contents and length are unchanged.
pub(crate) fn reserve(v: &mut Vec<f32>, n: usize) -> Result<()> {
    if n <= v.capacity() {
        return Ok(());
    }
    v.try_reserve_exact(n - v.len())
        .map_err(|_| Error::Alloc(format!("cannot allocate {n} floats")))?;
    let bytes = v.capacity() * std::mem::size_of::<f32>();
    if bytes >= HUGE_FROM {
        advise_huge(v.as_mut_ptr() as usize, bytes);
    }
    Ok(())
}

/// The huge-page-aligned part of `[start, start + len)`, if it holds at least one page.
fn aligned_inside(start: usize, len: usize) -> Option<(usize, usize)> {
    let lo = start.checked_add(HUGE_PAGE - 1)? & !(HUGE_PAGE - 1);
    let hi = start.checked_add(len)? & !(HUGE_PAGE - 1);
    (hi > lo).then(|| (lo, hi - lo))
}

#[cfg(target_os = "linux")]
fn advise_huge(start: usize, len: usize) {
    if let Some((lo, n)) = aligned_inside(start, len) {
        // SAFETY: `[lo, lo + n)` lies inside one live allocation owned by the caller's
        // `Vec` (aligned inward from its start and capacity end). MADV_HUGEPAGE only
        // changes how the kernel backs those pages; it reads, writes and frees nothing,
        // and its result is ignored because the buffer works either way.
        unsafe {
            libc::madvise(lo as *mut libc::c_void, n, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_start: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advised_range_is_whole_pages_inside_the_buffer() {
        let p = HUGE_PAGE;
        assert_eq!(aligned_inside(p, 2 * p), Some((p, 2 * p)));
        assert_eq!(aligned_inside(p + 16, 2 * p), Some((2 * p, p)));
        assert_eq!(aligned_inside(p + 16, 2 * p - 32), None);
        assert_eq!(aligned_inside(16, p - 16), None);
        assert_eq!(aligned_inside(usize::MAX - 8, 16), None);
    }

    #[test]
    fn reserving_keeps_contents_and_length() {
        let mut v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        reserve(&mut v, (HUGE_FROM / 4) * 2).unwrap();
        assert!(v.capacity() >= HUGE_FROM / 2);
        assert_eq!(v.len(), 1000);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        let cap = v.capacity();
        reserve(&mut v, 10).unwrap();
        assert_eq!(v.capacity(), cap);
        v.resize(cap, 1.5);
        assert!(v[1000..].iter().all(|&x| x == 1.5));
    }

    #[test]
    fn an_impossible_size_is_an_error() {
        let mut v = vec![1.0f32; 4];
        assert!(matches!(
            reserve(&mut v, usize::MAX / 2),
            Err(Error::Alloc(_))
        ));
        assert_eq!(v, vec![1.0; 4]);
    }
}
