//! Reproducible pseudo-random points for the unit tests (an LCG: no
//! dependency, the same values on every platform).

use ndarray::Array2;

/// `n x d` points with coordinates in [-0.5, 0.5), from `seed`.
pub fn points(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Array2::from_shape_fn((n, d), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
    })
}
