//! Large zeroed buffers whose pages are made resident up front, by every
//! thread at once.
//!
//! A stored kernel is hundreds of MB of fresh pages. Touched one by one by
//! the pass that fills it, each 4 KiB page costs a fault: 160 MB took 32–47
//! ms on two threads of a 2-core VM. Asked for in bulk with
//! `MADV_POPULATE_WRITE` (Linux 5.14), the same pages took 24 ms. Where the
//! call is unknown or refused the pages are left to fault in as before.

//!
//! These buffers are sized by the input, so the allocation is fallible: a
//! refusal (the machine's memory, `ulimit -v`) is a typed error, not an abort.

use crate::error::{ErrorKind, Result, SotError};
use std::alloc::{alloc_zeroed, Layout};

/// Below this the pages are few (or served from the heap, already resident).
const MIN_BYTES: usize = 8 << 20;

/// Number types whose all-zero bytes are the value 0.
pub trait Zero: Copy {}
impl Zero for f32 {}
impl Zero for f64 {}
impl Zero for u32 {}

/// `vec![0; len]` of a number type, its pages made resident in parallel where
/// the OS allows, or an error when the allocator refuses it.
pub(crate) fn zeroed<T: Zero>(len: usize) -> Result<Vec<T>> {
    zeroed_pages(len, true)
}

/// `vec![0; len]` whose pages fault in when first written, for a buffer
/// filled slowly (in batches from JS) rather than by one parallel pass.
pub fn zeroed_lazy<T: Zero>(len: usize) -> Result<Vec<T>> {
    zeroed_pages(len, false)
}

fn zeroed_pages<T: Zero>(len: usize, resident: bool) -> Result<Vec<T>> {
    let refused = || {
        let mib = (len as u128 * std::mem::size_of::<T>() as u128) >> 20;
        SotError::new(ErrorKind::InvalidOption, format!("could not allocate {mib} MiB ({len} values); lower storage.budget or the problem size"))
    };
    let layout = Layout::array::<T>(len).map_err(|_| refused())?;
    if layout.size() == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return Err(refused());
    }
    // SAFETY: `ptr` comes from the global allocator with the layout of `len`
    // values of T (what `Vec` uses), and zero bytes are a valid T (`Zero`).
    let v = unsafe { Vec::from_raw_parts(ptr, len, len) };
    if resident && layout.size() >= MIN_BYTES {
        populate(v.as_ptr() as usize, layout.size());
    }
    Ok(v)
}

/// A copy of `src`, or an error when the allocator refuses it. Large ones
/// (a cost matrix a caller hands over is hundreds of MB) go into pages made
/// resident in bulk and are copied by every thread: copied one page fault at
/// a time, 160 MB cost more than the passes of a short solve over them.
pub fn copy_of<T: Copy + Send + Sync>(src: &[T]) -> Result<Vec<T>> {
    let bytes = std::mem::size_of_val(src);
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(src.len()).map_err(|_| {
        SotError::new(
            ErrorKind::InvalidOption,
            format!(
                "could not allocate {} MiB for a copy of the input",
                bytes >> 20
            ),
        )
    })?;
    if bytes < MIN_BYTES {
        v.extend_from_slice(src);
        return Ok(v);
    }
    populate(v.as_ptr() as usize, bytes);
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 16;
    v.spare_capacity_mut()[..src.len()]
        .par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(dst, s)| {
            // SAFETY: `dst` and `s` have the same length, and a fresh
            // allocation cannot overlap the borrowed source.
            unsafe {
                std::ptr::copy_nonoverlapping(s.as_ptr(), dst.as_mut_ptr().cast::<T>(), s.len())
            }
        });
    // SAFETY: every one of the first `src.len()` values was written above.
    unsafe { v.set_len(src.len()) };
    Ok(v)
}

/// A zeroed `rows x cols` matrix (see `zeroed`); a size past `usize` is refused too.
pub(crate) fn zeros2<T: Zero>(rows: usize, cols: usize) -> Result<ndarray::Array2<T>> {
    let len = rows.saturating_mul(cols);
    Ok(ndarray::Array2::from_shape_vec((rows, cols), zeroed(len)?).expect("rows x cols values"))
}

#[cfg(all(target_os = "linux", not(miri)))]
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

#[cfg(any(not(target_os = "linux"), miri))]
fn populate(_start: usize, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_at_every_size() {
        // Miri checks the allocation itself; it would take minutes over the large sizes.
        let lens: &[usize] = if cfg!(miri) {
            &[0, 1, 1023]
        } else {
            &[0, 1, 1023, (MIN_BYTES / 4) + 3, 3 * MIN_BYTES / 4 + 1]
        };
        for &len in lens {
            let v = zeroed::<f32>(len).unwrap();
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0), "len {len}");
            assert!(
                zeroed::<u32>(len).unwrap().iter().all(|&x| x == 0),
                "len {len}"
            );
        }
    }

    #[test]
    fn copies_are_equal_at_every_size() {
        let lens: &[usize] = if cfg!(miri) {
            &[0, 1, 1023]
        } else {
            &[0, 1, 1023, (MIN_BYTES / 4) + 3, 3 * MIN_BYTES / 4 + 1]
        };
        for &len in lens {
            let src: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            assert_eq!(copy_of(&src).unwrap(), src, "len {len}");
            let src: Vec<f64> = (0..len).map(|i| (i as f64).sin()).collect();
            assert_eq!(copy_of(&src).unwrap(), src, "len {len}");
        }
    }

    #[test]
    fn sizes_no_allocator_can_give_are_errors() {
        // Under Miri only the size no layout can describe: Miri stops at any allocation it cannot serve.
        let lens: &[usize] = if cfg!(miri) {
            &[usize::MAX / 4]
        } else {
            &[usize::MAX / 4, usize::MAX / 8, 1 << 60]
        };
        for &len in lens {
            let e = zeroed::<f32>(len).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidOption);
            assert!(
                e.message.contains(&format!("({len} values)")),
                "{}",
                e.message
            );
        }
    }
}
