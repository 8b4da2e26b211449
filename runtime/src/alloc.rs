//! Output buffers for out-of-place projections.
//!
//! A fresh output is written once, by the apply pass, and its memory is new to the process: every
//! page is faulted in on first touch. With the kernel's default 4 KiB pages that is one fault
//! per 4 KiB — on virtual machines, where a fault costs microseconds, more than the pass itself
//! for large tensors (a 64 MB result: 16,384 faults, 5–9× the time of the same projection in
//! place, measured from Python in `bench/sae_timing.md`). So large buffers are advised to use
//! transparent huge pages (`madvise(MADV_HUGEPAGE)`, what NumPy does for its own arrays of 4 MiB
//! and more): 2 MiB per fault where the system allows it (`/sys/kernel/mm/transparent_hugepage/
//! enabled` set to `always` or `madvise`). The advice changes no contents and no semantics; if
//! the system refuses it, nothing changes.

use crate::element::Element;

/// Buffers from this size on are advised to use huge pages (NumPy's threshold).
const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// `len` zeros, in memory advised to use huge pages when large. The zeros come from the
/// allocator's zeroed allocation (fresh pages from the kernel for large sizes), so no page is
/// touched here: the apply pass faults them in, in huge pages where the advice is taken.
pub(crate) fn zeroed<T: Element>(len: usize) -> Vec<T> {
    let v = vec![T::zero(); len];
    advise_huge_pages(&v);
    v
}

/// [`zeroed`], returning `None` instead of aborting when the memory cannot be had.
pub(crate) fn try_zeroed<T: Element>(len: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    advise_huge_pages(&v.spare_capacity_mut()[..len]);
    v.resize(len, T::zero());
    Some(v)
}

#[cfg(target_os = "linux")]
fn advise_huge_pages<E>(buf: &[E]) {
    let bytes = std::mem::size_of_val(buf);
    if bytes < HUGE_PAGE_THRESHOLD {
        return;
    }
    // madvise wants page-aligned ranges: advise the whole pages inside the buffer.
    let page = rustix::param::page_size();
    let start = buf.as_ptr() as usize;
    let aligned = start.next_multiple_of(page);
    let end = (start + bytes) / page * page;
    if end <= aligned {
        return;
    }
    // SAFETY: [aligned, end) lies inside `buf`, an allocation this process owns and nobody else
    // references while the advice is given; MADV_HUGEPAGE only changes how the kernel backs the
    // pages (it never changes their contents or frees them), so no Rust invariant depends on it.
    let _ = unsafe {
        rustix::mm::madvise(
            aligned as *mut std::ffi::c_void,
            end - aligned,
            rustix::mm::Advice::LinuxHugepage,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<E>(_buf: &[E]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_buffers_are_zero_whatever_their_size() {
        for len in [0, 1, 1000, (HUGE_PAGE_THRESHOLD / 8) + 12_345] {
            let v = zeroed::<f64>(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x.to_bits() == 0));
            let w = try_zeroed::<f32>(len).unwrap();
            assert_eq!(w.len(), len);
            assert!(w.iter().all(|&x| x.to_bits() == 0));
        }
    }

    #[test]
    fn an_impossible_size_is_none() {
        assert!(try_zeroed::<f64>(usize::MAX / 4).is_none());
    }
}
