//! Large zeroed buffers whose pages are made resident up front, by every
//! thread at once.
//!
//! A stored kernel is hundreds of MB of fresh pages. Touched one by one by
//! the pass that fills it, each 4 KiB page costs a fault: 160 MB took 32–47
//! ms on two threads of a 2-core VM. Asked for in bulk with
//! `MADV_POPULATE_WRITE` (Linux 5.14), the same pages took 24 ms. Where the
//! call is unknown or refused the pages are left to fault in as before.

/// Below this the pages are few (or served from the heap, already resident).
const MIN_BYTES: usize = 8 << 20;

/// `vec![0; len]` of a number type, its pages made resident in parallel where the OS allows.
pub(crate) fn zeroed<T: Copy + Default>(len: usize) -> Vec<T> {
    // `vec!` of a zero number allocates zeroed memory (fresh pages) without writing it
    let v = vec![T::default(); len];
    let bytes = std::mem::size_of_val(v.as_slice());
    if bytes >= MIN_BYTES {
        populate(v.as_ptr() as usize, bytes);
    }
    v
}

#[cfg(target_os = "linux")]
fn populate(start: usize, bytes: usize) {
    use rayon::prelude::*;
    const PAGE: usize = 4096;
    // Chunks of whole pages inside the buffer, a few per thread to balance them.
    let (lo, hi) = (start.next_multiple_of(PAGE), (start + bytes) / PAGE * PAGE);
    if hi <= lo {
        return;
    }
    let chunks = (4 * rayon::current_num_threads()).max(1);
    let step = ((hi - lo) / PAGE).div_ceil(chunks) * PAGE;
    (lo..hi).into_par_iter().step_by(step).for_each(|a| {
        let len = step.min(hi - a);
        // SAFETY: [a, a + len) lies inside the live allocation `start..start + bytes`,
        // page-aligned; MADV_POPULATE_WRITE only faults pages in (zero pages stay zero)
        // and fails harmlessly (EINVAL) on kernels that do not know it.
        unsafe { libc::madvise(a as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) };
    });
}

#[cfg(not(target_os = "linux"))]
fn populate(_start: usize, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_at_every_size() {
        for len in [0, 1, 1023, (MIN_BYTES / 4) + 3, 3 * MIN_BYTES / 4 + 1] {
            let v = zeroed::<f32>(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0), "len {len}");
            assert!(zeroed::<u32>(len).iter().all(|&x| x == 0), "len {len}");
        }
    }
}
