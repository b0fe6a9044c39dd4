//! Row kernels of the Sinkhorn sweep, written so that LLVM vectorises them,
//! with a runtime switch to AVX-512 or AVX2+FMA code on x86-64 (prebuilt
//! binaries must still run on any x86-64). The row exp, which bounds a dense
//! pass, has its own AVX-512 code (`avx512`).
//!
//! Costs are stored in f32; everything computed from them is f64. The Gibbs
//! argument is a difference of potentials and costs divided by a small eps,
//! and the kernel entries feed sums over thousands of terms: in f32 both
//! would leave a noise floor near 1e-7 on the marginals. The sweep is bound
//! by reading the cost matrix, so the f64 arithmetic costs little.

#[cfg(target_arch = "x86_64")]
mod avx512;

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2: f64 = std::f64::consts::LN_2;
/// 1.5 * 2^52: adding it rounds an f64 in range to an integer kept in the low mantissa bits.
const ROUND: f64 = 6_755_399_441_055_744.0;

/// `a * b + c`, fused where the CPU has FMA (`mul_add` without hardware FMA
/// would be a slow library call, so the generic path keeps two operations).
#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// exp(x), branch-free so that it vectorises; relative error below 1e-11 on
/// [-708, 709] (the f32 costs carry far more); clamped outside (about 3e-308 below).
#[inline(always)]
pub fn exp<const FMA: bool>(x: f64) -> f64 {
    let x = x.clamp(-708.0, 709.0);
    let t = madd::<FMA>(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = madd::<FMA>(-n, LN2, x); // |r| <= ln2 / 2
                                     // Taylor series of degree 9: truncation below 1e-11 relative on |r| <= 0.35.
    let mut p = 1.0 / 362_880.0;
    p = madd::<FMA>(p, r, 1.0 / 40_320.0);
    p = madd::<FMA>(p, r, 1.0 / 5_040.0);
    p = madd::<FMA>(p, r, 1.0 / 720.0);
    p = madd::<FMA>(p, r, 1.0 / 120.0);
    p = madd::<FMA>(p, r, 1.0 / 24.0);
    p = madd::<FMA>(p, r, 1.0 / 6.0);
    p = madd::<FMA>(p, r, 0.5);
    p = madd::<FMA>(p, r, 1.0);
    p = madd::<FMA>(p, r, 1.0);
    let k = (t.to_bits() as i64).wrapping_sub(ROUND.to_bits() as i64);
    p * f64::from_bits(((k + 1023) << 52) as u64)
}

/// Independent partial sums: a single running sum is a dependency chain that
/// LLVM may not reorder, and it would keep the whole loop scalar.
const LANES: usize = 8;

/// out[j] = exp(shift + gb[j] - c[j] * inv_eps); returns sum_j out[j].
#[inline(always)]
fn row_exp_impl<const FMA: bool>(
    c: &[impl Copy + Into<f64>],
    shift: f64,
    gb: &[f64],
    inv_eps: f64,
    out: &mut [f64],
) -> f64 {
    let m = c.len().min(gb.len()).min(out.len());
    let (c, gb, out) = (&c[..m], &gb[..m], &mut out[..m]);
    let mut acc = [0.0f64; LANES];
    let body = m - m % LANES;
    for ((o, cc), gg) in out[..body]
        .chunks_exact_mut(LANES)
        .zip(c[..body].chunks_exact(LANES))
        .zip(gb[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let e = exp::<FMA>(madd::<FMA>(-cc[l].into(), inv_eps, shift + gg[l]));
            o[l] = e;
            acc[l] += e;
        }
    }
    let mut sum = acc.iter().sum::<f64>();
    for j in body..m {
        let e = exp::<FMA>(madd::<FMA>(-c[j].into(), inv_eps, shift + gb[j]));
        out[j] = e;
        sum += e;
    }
    sum
}

/// max_j (gb[j] - c[j] * inv_eps).
#[inline(always)]
fn row_max_impl<const FMA: bool>(c: &[impl Copy + Into<f64>], gb: &[f64], inv_eps: f64) -> f64 {
    let m = c.len().min(gb.len());
    let mut acc = [f64::NEG_INFINITY; LANES];
    let body = m - m % LANES;
    for (cc, gg) in c[..body]
        .chunks_exact(LANES)
        .zip(gb[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let v = madd::<FMA>(-cc[l].into(), inv_eps, gg[l]);
            acc[l] = if v > acc[l] { v } else { acc[l] };
        }
    }
    let mut top = acc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    for j in body..m {
        top = top.max(madd::<FMA>(-c[j].into(), inv_eps, gb[j]));
    }
    top
}

/// acc[j] += w * v[j].
#[inline(always)]
fn axpy_impl<const FMA: bool>(acc: &mut [f64], w: f64, v: &[f64]) {
    for (a, &x) in acc.iter_mut().zip(v) {
        *a = madd::<FMA>(w, x, *a);
    }
}

/// How far ahead of a stored kernel row's reads to ask for its cache lines:
/// 8 KiB, into L2. A stored pass reads the kernel from memory once, row after
/// row; the hardware's stream prefetchers stop at every 4 KiB page and start
/// again only after a few misses, and one core's own misses in flight are too
/// few to keep memory busy. Asked for 8 KiB ahead, the row sums of 20k x 2k
/// read the kernel 1.8x faster (at the rate of a bare sum of it).
const PREFETCH_AHEAD: usize = 8 << 10;
/// Bytes per cache line, so one request per line.
const LINE: usize = 64;

/// Asks for the cache line at `p` to be brought into L2; a hint only, which
/// never faults, whatever the address (so it may point past a slice's end).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// sum_j k[j] * v[j]: a stored f32 kernel row against f64 scalings. Asks
/// for the kernel `PREFETCH_AHEAD` bytes ahead: the next rows, where a pass reads next.
#[inline(always)]
fn dot_impl<const FMA: bool>(k: &[f32], v: &[f64]) -> f64 {
    let m = k.len().min(v.len());
    let (k, v) = (&k[..m], &v[..m]);
    let mut acc = [0.0f64; LANES];
    let body = m - m % LANES;
    let ahead = k.as_ptr().wrapping_byte_add(PREFETCH_AHEAD);
    for (t, (kk, vv)) in k[..body]
        .chunks_exact(LANES)
        .zip(v[..body].chunks_exact(LANES))
        .enumerate()
    {
        if (t * LANES * 4).is_multiple_of(LINE) {
            prefetch(ahead.wrapping_add(t * LANES));
        }
        for l in 0..LANES {
            acc[l] = madd::<FMA>(kk[l] as f64, vv[l], acc[l]);
        }
    }
    let mut sum = acc.iter().sum::<f64>();
    for j in body..m {
        sum = madd::<FMA>(k[j] as f64, v[j], sum);
    }
    sum
}

/// Columns per tile of `block_axpy_f32`: 64 f64 sums, 8 AVX-512 registers.
const TILE: usize = 64;

/// acc[j] += sum_r w[r] * rows[r * m + j]: a block of consecutive stored
/// kernel rows, weighted, into the column sums. Tile by tile of columns, so
/// the tile's sums stay in registers over the block's rows (read from L2)
/// and `acc` is loaded and stored once per block, not once per row.
#[inline(always)]
fn block_axpy_f32_impl<const FMA: bool>(acc: &mut [f64], w: &[f64], rows: &[f32]) {
    let m = acc.len();
    let body = m - m % TILE;
    for (j0, acc_tile) in acc[..body]
        .chunks_exact_mut(TILE)
        .enumerate()
        .map(|(t, a)| (t * TILE, a))
    {
        let mut sums = [0.0f64; TILE];
        for (r, &wr) in w.iter().enumerate() {
            let k = &rows[r * m + j0..r * m + j0 + TILE];
            for l in 0..TILE {
                sums[l] = madd::<FMA>(wr, k[l] as f64, sums[l]);
            }
        }
        for (a, s) in acc_tile.iter_mut().zip(sums) {
            *a += s;
        }
    }
    for (r, &wr) in w.iter().enumerate() {
        for j in body..m {
            acc[j] = madd::<FMA>(wr, rows[r * m + j] as f64, acc[j]);
        }
    }
}

/// out[t] = exp(shift + gb[col[t]] - c[t] * inv_eps); returns the sum (a truncated row).
#[inline(always)]
fn gather_exp_impl<const FMA: bool>(
    c: &[f32],
    col: &[u32],
    shift: f64,
    gb: &[f64],
    inv_eps: f64,
    out: &mut [f64],
) -> f64 {
    let mut acc = [0.0f64; LANES];
    let k = c.len().min(col.len()).min(out.len());
    let body = k - k % LANES;
    for ((o, cc), ii) in out[..body]
        .chunks_exact_mut(LANES)
        .zip(c[..body].chunks_exact(LANES))
        .zip(col[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let e = exp::<FMA>(madd::<FMA>(
                -(cc[l] as f64),
                inv_eps,
                shift + gb[ii[l] as usize],
            ));
            o[l] = e;
            acc[l] += e;
        }
    }
    let mut sum = acc.iter().sum::<f64>();
    for t in body..k {
        let e = exp::<FMA>(madd::<FMA>(
            -(c[t] as f64),
            inv_eps,
            shift + gb[col[t] as usize],
        ));
        out[t] = e;
        sum += e;
    }
    sum
}

/// max_t (gb[col[t]] - c[t] * inv_eps).
#[inline(always)]
fn gather_max_impl<const FMA: bool>(c: &[f32], col: &[u32], gb: &[f64], inv_eps: f64) -> f64 {
    c.iter()
        .zip(col)
        .map(|(&c, &j)| madd::<FMA>(-(c as f64), inv_eps, gb[j as usize]))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// acc[col[t]] += w * v[t] - q * e[col[t]]: a truncated row's share of the
/// column sums, minus the part of its mean-field tail that the row already holds exactly.
#[inline(always)]
fn scatter_impl<const FMA: bool>(
    acc: &mut [f64],
    col: &[u32],
    w: f64,
    v: &[f64],
    q: f64,
    e: &[f64],
) {
    for (&j, &x) in col.iter().zip(v) {
        let j = j as usize;
        acc[j] = madd::<FMA>(w, x, madd::<FMA>(-q, e[j], acc[j]));
    }
}

/// sum_t k[t] * v[col[t]]: a stored truncated kernel row against the column
/// scalings (prefetching the rows ahead, like `dot`).
#[inline(always)]
fn gather_dot_impl<const FMA: bool>(k: &[f32], col: &[u32], v: &[f64]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let n = k.len().min(col.len());
    let body = n - n % LANES;
    let ahead = k.as_ptr().wrapping_byte_add(PREFETCH_AHEAD);
    for (t, (kk, ii)) in k[..body]
        .chunks_exact(LANES)
        .zip(col[..body].chunks_exact(LANES))
        .enumerate()
    {
        if (t * LANES * 4).is_multiple_of(LINE) {
            prefetch(ahead.wrapping_add(t * LANES));
        }
        for l in 0..LANES {
            acc[l] = madd::<FMA>(kk[l] as f64, v[ii[l] as usize], acc[l]);
        }
    }
    let mut sum = acc.iter().sum::<f64>();
    for t in body..n {
        sum = madd::<FMA>(k[t] as f64, v[col[t] as usize], sum);
    }
    sum
}

/// acc[col[t]] += w * k[t] - q * e[col[t]], for a stored truncated kernel row.
#[inline(always)]
fn scatter_f32_impl<const FMA: bool>(
    acc: &mut [f64],
    col: &[u32],
    w: f64,
    k: &[f32],
    q: f64,
    e: &[f64],
) {
    for (&j, &x) in col.iter().zip(k) {
        let j = j as usize;
        acc[j] = madd::<FMA>(w, x as f64, madd::<FMA>(-q, e[j], acc[j]));
    }
}

/// sum_j w[j] * exp(shift - c[j] * inv_eps), the exponent clamped (so that a zero weight
/// always zeroes its term).
#[inline(always)]
fn weighted_exp_sum_impl<const FMA: bool>(c: &[f32], w: &[f64], shift: f64, inv_eps: f64) -> f64 {
    let m = c.len().min(w.len());
    let (c, w) = (&c[..m], &w[..m]);
    let mut acc = [0.0f64; LANES];
    let body = m - m % LANES;
    for (cc, ww) in c[..body]
        .chunks_exact(LANES)
        .zip(w[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] = madd::<FMA>(
                ww[l],
                exp::<FMA>(madd::<FMA>(-(cc[l] as f64), inv_eps, shift)),
                acc[l],
            );
        }
    }
    let mut sum = acc.iter().sum::<f64>();
    for j in body..m {
        sum = madd::<FMA>(
            w[j],
            exp::<FMA>(madd::<FMA>(-(c[j] as f64), inv_eps, shift)),
            sum,
        );
    }
    sum
}

/// k[j] = v[j] in f32, flushed to zero below f32's normal range (NaN too);
/// returns the largest k[j] (+inf where a value is beyond f32's range).
#[inline(always)]
fn to_f32_impl<const FMA: bool>(k: &mut [f32], v: &[f64]) -> f32 {
    let m = k.len().min(v.len());
    let (k, v) = (&mut k[..m], &v[..m]);
    let flush = |x: f64| {
        if x >= f32::MIN_POSITIVE as f64 {
            x as f32
        } else {
            0.0
        }
    };
    let mut top = [0.0f32; LANES];
    let body = m - m % LANES;
    for (kk, vv) in k[..body]
        .chunks_exact_mut(LANES)
        .zip(v[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            kk[l] = flush(vv[l]);
            top[l] = top[l].max(kk[l]);
        }
    }
    let mut top = top.iter().cloned().fold(0.0, f32::max);
    for j in body..m {
        k[j] = flush(v[j]);
        top = top.max(k[j]);
    }
    top
}

/// Whether every value is finite, without a branch per value (`x - x` is 0
/// for finite values and NaN otherwise): four vectors of partial sums, and
/// the values asked for ahead like a stored kernel's rows, so that a scan of
/// a cost matrix runs at the rate of a plain read of it.
#[inline(always)]
#[allow(clippy::eq_op)] // x - x is the test
fn all_finite_impl<const FMA: bool>(v: &[f32]) -> bool {
    const L: usize = 64;
    let mut acc = [0.0f32; L];
    let body = v.len() - v.len() % L;
    let ahead = v.as_ptr().wrapping_byte_add(PREFETCH_AHEAD);
    for (t, c) in v[..body].chunks_exact(L).enumerate() {
        for q in (0..L).step_by(LINE / 4) {
            prefetch(ahead.wrapping_add(t * L + q));
        }
        for l in 0..L {
            acc[l] += c[l] - c[l];
        }
    }
    let tail: f32 = v[body..].iter().map(|x| x - x).sum();
    acc.iter().sum::<f32>() + tail == 0.0
}

/// Each kernel is compiled three times: for AVX-512, for AVX2+FMA, and for
/// any x86-64 (or other CPU); the fastest the CPU supports runs.
macro_rules! dispatch {
    ($(fn $name:ident = $imp:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        #[inline]
        pub fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $imp::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $imp::<true>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the features the function was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp::<false>($($arg),*)
        }
    )*};
}

/// out[j] = exp(shift + gb[j] - c[j] * inv_eps); returns sum_j out[j]. On
/// AVX-512 by its own code (`avx512`), elsewhere as dispatched below.
pub fn row_exp(c: &[f32], shift: f64, gb: &[f64], inv_eps: f64, out: &mut [f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has the features the code was compiled for.
        return unsafe { avx512::row_exp(c, shift, gb, inv_eps, out) };
    }
    row_exp_generic(c, shift, gb, inv_eps, out)
}

/// A cost entry as the row kernels read it: f32 (stored costs) or f64 (the
/// costs recomputed exactly from the points for a solve's last passes).
pub trait Cost: Copy + Into<f64> + Send + Sync {
    /// `row_exp` over costs of this type.
    fn row_exp(c: &[Self], shift: f64, gb: &[f64], inv_eps: f64, out: &mut [f64]) -> f64;
    /// `row_max` over costs of this type.
    fn row_max(c: &[Self], gb: &[f64], inv_eps: f64) -> f64;
}

impl Cost for f32 {
    fn row_exp(c: &[f32], shift: f64, gb: &[f64], inv_eps: f64, out: &mut [f64]) -> f64 {
        row_exp(c, shift, gb, inv_eps, out)
    }

    fn row_max(c: &[f32], gb: &[f64], inv_eps: f64) -> f64 {
        row_max(c, gb, inv_eps)
    }
}

impl Cost for f64 {
    fn row_exp(c: &[f64], shift: f64, gb: &[f64], inv_eps: f64, out: &mut [f64]) -> f64 {
        row_exp_f64(c, shift, gb, inv_eps, out)
    }

    fn row_max(c: &[f64], gb: &[f64], inv_eps: f64) -> f64 {
        row_max_f64(c, gb, inv_eps)
    }
}

dispatch! {
    fn row_exp_generic = row_exp_impl(c: &[f32], shift: f64, gb: &[f64], inv_eps: f64, out: &mut [f64]) -> f64;
    fn row_max = row_max_impl(c: &[f32], gb: &[f64], inv_eps: f64) -> f64;
    fn row_exp_f64 = row_exp_impl(c: &[f64], shift: f64, gb: &[f64], inv_eps: f64, out: &mut [f64]) -> f64;
    fn row_max_f64 = row_max_impl(c: &[f64], gb: &[f64], inv_eps: f64) -> f64;
    fn axpy = axpy_impl(acc: &mut [f64], w: f64, v: &[f64]) -> ();
    fn dot = dot_impl(k: &[f32], v: &[f64]) -> f64;
    fn block_axpy_f32 = block_axpy_f32_impl(acc: &mut [f64], w: &[f64], rows: &[f32]) -> ();
    fn gather_exp = gather_exp_impl(c: &[f32], col: &[u32], shift: f64, gb: &[f64], inv_eps: f64, out: &mut [f64]) -> f64;
    fn gather_max = gather_max_impl(c: &[f32], col: &[u32], gb: &[f64], inv_eps: f64) -> f64;
    fn scatter = scatter_impl(acc: &mut [f64], col: &[u32], w: f64, v: &[f64], q: f64, e: &[f64]) -> ();
    fn weighted_exp_sum = weighted_exp_sum_impl(c: &[f32], w: &[f64], shift: f64, inv_eps: f64) -> f64;
    fn gather_dot = gather_dot_impl(k: &[f32], col: &[u32], v: &[f64]) -> f64;
    fn scatter_f32 = scatter_f32_impl(acc: &mut [f64], col: &[u32], w: f64, k: &[f32], q: f64, e: &[f64]) -> ();
    fn all_finite = all_finite_impl(v: &[f32]) -> bool;
    fn to_f32 = to_f32_impl(k: &mut [f32], v: &[f64]) -> f32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_across_the_range() {
        let mut worst = 0.0f64;
        let mut x = -700.0;
        while x < 700.0 {
            let (got, want) = (exp::<false>(x), x.exp());
            let fused = exp::<true>(x);
            worst = worst.max(((fused - want) / want).abs());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0731;
        }
        assert!(worst < 1e-11, "worst relative error {worst}");
    }

    #[test]
    fn exp_saturates_instead_of_overflowing() {
        assert!(exp::<false>(-1e4) < 1e-300);
        assert!(exp::<false>(f64::NEG_INFINITY) < 1e-300);
        assert!(exp::<false>(1e4).is_finite());
        assert!(exp::<false>(-700.0) > 0.0);
    }

    #[test]
    fn row_kernels_agree_with_scalar_code() {
        let m = 37;
        let c: Vec<f32> = (0..m).map(|j| (j as f32 * 0.37).sin().abs()).collect();
        let gb: Vec<f64> = (0..m).map(|j| (j as f64 * 0.11).cos()).collect();
        let mut out = vec![0.0; m];
        let s = row_exp(&c, -0.5, &gb, 10.0, &mut out);
        let want: Vec<f64> = (0..m)
            .map(|j| (-0.5 + gb[j] - c[j] as f64 * 10.0).exp())
            .collect();
        for j in 0..m {
            assert!((out[j] - want[j]).abs() <= 1e-11 * want[j]);
        }
        assert!((s - want.iter().sum::<f64>()).abs() < 1e-12 * s);
        let mx = want
            .iter()
            .fold(f64::NEG_INFINITY, |a, v| a.max(v.ln() + 0.5));
        assert!((row_max(&c, &gb, 10.0) - mx).abs() < 1e-9);
        let mut acc = vec![1.0; m];
        axpy(&mut acc, 2.0, &out);
        assert!((acc[3] - (1.0 + 2.0 * out[3])).abs() < 1e-15);
    }

    /// Every kernel as dispatched (AVX-512 or AVX2 where the CPU has them)
    /// against its portable build, on data that leaves a remainder after the lanes.
    #[test]
    fn dispatched_kernels_agree_with_the_portable_build() {
        let m = 53;
        let c: Vec<f32> = (0..m).map(|j| (j as f32 * 0.61).cos().abs()).collect();
        let v: Vec<f64> = (0..m)
            .map(|j| 0.5 + (j as f64 * 0.23).sin().abs())
            .collect();
        let col: Vec<u32> = (0..m as u32).filter(|j| j % 3 != 1).collect();
        let kc: Vec<f32> = col.iter().map(|&j| c[j as usize]).collect();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300);
        // the row exp has its own AVX-512 code, with another polynomial: both within 1e-11 of exp
        let (mut o1, mut o2) = (vec![0.0; m], vec![0.0; m]);
        let near = |a: f64, b: f64| (a - b).abs() <= 2e-11 * a.abs().max(b.abs());
        assert!(near(
            row_exp(&c, 0.3, &v, 7.0, &mut o1),
            row_exp_impl::<false>(&c, 0.3, &v, 7.0, &mut o2)
        ));
        assert!(o1.iter().zip(&o2).all(|(a, b)| near(*a, *b)));
        assert!(close(
            row_exp_generic(&c, 0.3, &v, 7.0, &mut o1),
            row_exp_impl::<false>(&c, 0.3, &v, 7.0, &mut o2)
        ));
        assert!(o1.iter().zip(&o2).all(|(a, b)| close(*a, *b)));
        assert!(close(
            row_max(&c, &v, 7.0),
            row_max_impl::<false>(&c, &v, 7.0)
        ));
        assert!(close(dot(&c, &v), dot_impl::<false>(&c, &v)));
        assert!(close(
            weighted_exp_sum(&c, &v, 1.0, 4.0),
            weighted_exp_sum_impl::<false>(&c, &v, 1.0, 4.0)
        ));
        assert!(close(
            gather_dot(&kc, &col, &v),
            gather_dot_impl::<false>(&kc, &col, &v)
        ));
        // a non-finite value anywhere, in the vectors' body or in the tail after them
        let long: Vec<f32> = (0..200).map(|t| t as f32 * 0.5).collect();
        assert!(all_finite(&long) && all_finite_impl::<false>(&long) && all_finite(&[]));
        for (at, bad) in [
            (0, f32::NAN),
            (63, f32::INFINITY),
            (130, f32::NEG_INFINITY),
            (199, f32::NAN),
        ] {
            let mut w = long.clone();
            w[at] = bad;
            assert!(
                !all_finite(&w) && !all_finite_impl::<false>(&w),
                "{bad} at {at}"
            );
        }
        assert!(close(
            gather_max(&kc, &col, &v, 3.0),
            gather_max_impl::<false>(&kc, &col, &v, 3.0)
        ));
        let (mut g1, mut g2) = (vec![0.0; col.len()], vec![0.0; col.len()]);
        assert!(close(
            gather_exp(&kc, &col, 0.2, &v, 3.0, &mut g1),
            gather_exp_impl::<false>(&kc, &col, 0.2, &v, 3.0, &mut g2)
        ));
        assert!(g1.iter().zip(&g2).all(|(a, b)| close(*a, *b)));
        let (mut a1, mut a2) = (v.clone(), v.clone());
        axpy(&mut a1, 0.7, &o1);
        axpy_impl::<false>(&mut a2, 0.7, &o1);
        scatter(&mut a1, &col, 0.9, &g1, 0.1, &v);
        scatter_impl::<false>(&mut a2, &col, 0.9, &g1, 0.1, &v);
        scatter_f32(&mut a1, &col, 0.4, &kc, 0.2, &v);
        scatter_f32_impl::<false>(&mut a2, &col, 0.4, &kc, 0.2, &v);
        assert!(a1.iter().zip(&a2).all(|(a, b)| close(*a, *b)));
    }

    /// The row exp as dispatched (AVX-512 code where the CPU has it) against
    /// std's exp, at every length of the tail after the vectors, with
    /// arguments spanning the range where the entries are normal.
    #[test]
    fn row_exp_matches_std_at_every_tail_length() {
        let (shift, inv_eps) = (-1.5, 3.0);
        for m in 1..=27 {
            let c: Vec<f32> = (0..m).map(|j| j as f32 * 0.25).collect();
            // x spread over [-706, 707] in an order that mixes signs and scales
            let gb: Vec<f64> = (0..m)
                .map(|j| ((j * 7919) % 27) as f64 * 52.4 - 704.5 + c[j] as f64 * inv_eps)
                .collect();
            let want: Vec<f64> = (0..m)
                .map(|j| (shift + gb[j] - c[j] as f64 * inv_eps).exp())
                .collect();
            let mut out = vec![f64::NAN; m];
            let sum = row_exp(&c, shift, &gb, inv_eps, &mut out);
            for j in 0..m {
                assert!(
                    (out[j] - want[j]).abs() <= 1e-11 * want[j],
                    "m {m}, j {j}: {} against {}",
                    out[j],
                    want[j]
                );
            }
            let total: f64 = want.iter().sum();
            assert!(
                (sum - total).abs() <= 1e-11 * total,
                "m {m}: sum {sum} against {total}"
            );
        }
    }

    /// On AVX-512 the row exp saturates instead of clamping: 0 far below, +inf
    /// far above (a row sum out of the safe range either way), NaN stays NaN.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_row_exp_saturates() {
        if !avx512::available() {
            eprintln!(
                "no AVX-512 on this CPU: the dispatched test above covered the portable build"
            );
            return;
        }
        let gb = [
            -800.0,
            -745.5,
            0.0,
            709.0,
            710.0,
            1e300,
            -1e300,
            f64::NAN,
            1.0,
        ];
        let c = [0.0f32; 9];
        let mut out = [0.0; 9];
        // SAFETY: checked just above.
        let sum = unsafe { avx512::row_exp(&c, 0.0, &gb, 1.0, &mut out) };
        assert_eq!(out[0], 0.0);
        assert!(out[1] >= 0.0 && out[1] < 1e-323);
        assert_eq!(out[2], 1.0);
        assert!((out[3] - 709f64.exp()).abs() <= 1e-12 * 709f64.exp());
        assert_eq!(
            (out[4], out[5], out[6]),
            (f64::INFINITY, f64::INFINITY, 0.0)
        );
        assert!(out[7].is_nan() && sum.is_nan());
        assert!((out[8] - 1f64.exp()).abs() <= 1e-12 * 1f64.exp());
    }

    /// A kernel row into f32: normal values rounded, the rest flushed to zero,
    /// and the largest reported (+inf for a value beyond f32's range).
    #[test]
    fn to_f32_flushes_and_reports_the_largest() {
        let v = [
            1.5,
            1e-39,
            -3.0,
            f64::NAN,
            3e38,
            0.25,
            1e-300,
            7.0,
            2.0,
            1e-20,
            0.5,
        ];
        let want = [1.5f32, 0.0, 0.0, 0.0, 3e38, 0.25, 0.0, 7.0, 2.0, 1e-20, 0.5];
        for m in [3, 8, 11] {
            let (mut k, mut portable) = (vec![9.0f32; m], vec![9.0f32; m]);
            let top = to_f32(&mut k, &v[..m]);
            assert_eq!(top, to_f32_impl::<false>(&mut portable, &v[..m]));
            assert_eq!(k, &want[..m]);
            assert_eq!(portable, &want[..m]);
            assert_eq!(top, if m > 4 { 3e38 } else { 1.5 });
        }
        let mut k = [0.0f32; 9];
        assert_eq!(
            to_f32(&mut k, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1e39]),
            f32::INFINITY
        );
    }

    /// A block of rows into column sums, against one axpy per row, on a
    /// width that leaves a remainder after the column tiles.
    #[test]
    fn block_axpy_is_one_axpy_per_row() {
        let (m, rows) = (2 * TILE + 13, 5);
        let k: Vec<f32> = (0..rows * m)
            .map(|t| ((t as f32) * 0.173).sin().abs())
            .collect();
        let w = [0.3, 0.0, 1.7, 2.5e-3, 0.9];
        let start: Vec<f64> = (0..m).map(|j| j as f64 * 0.01).collect();
        let mut want = start.clone();
        for (r, &wr) in w.iter().enumerate() {
            for j in 0..m {
                want[j] += wr * k[r * m + j] as f64;
            }
        }
        let (mut got, mut portable) = (start.clone(), start);
        block_axpy_f32(&mut got, &w, &k);
        block_axpy_f32_impl::<false>(&mut portable, &w, &k);
        for j in 0..m {
            assert!(
                (got[j] - want[j]).abs() <= 1e-14 * want[j].abs().max(1.0),
                "column {j}"
            );
            assert!(
                (portable[j] - want[j]).abs() <= 1e-14 * want[j].abs().max(1.0),
                "column {j}"
            );
        }
    }
}
