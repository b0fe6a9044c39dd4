//! cargo run --release -p sot-core --example learner_probe -- D N [tau eps inner_tol inner_max step]
use ndarray::{concatenate, Array2, Axis};
use sot_core::*;
use std::time::Instant;

fn cloud(seed: &mut u64, n: usize, center: &[f32], spread: f32) -> Array2<f32> {
    let mut next = || {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) as f32
    };
    Array2::from_shape_fn((n, center.len()), |(_, k)| {
        let (u, v) = (next().max(1e-12), next());
        center[k] + spread * (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    })
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: f64| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (d, n) = (arg(1, 256.0) as usize, arg(2, 5000.0) as usize);
    let mut o = LearnerOptions::default();
    o.tau = arg(3, o.tau);
    o.eps = arg(4, o.eps);
    o.inner.tol = arg(5, o.inner.tol);
    o.inner.max_iter = arg(6, o.inner.max_iter as f64) as usize;
    o.step = arg(7, o.step);
    let axis = |k: usize, e: f32| -> Vec<f32> { (0..d).map(|j| if j == k { 1.0 } else { 0.0 } + if j == 0 { e } else { 0.0 }).collect() };
    let spread = 0.5 / (d as f32).sqrt();
    let mut seed = 42u64;
    let bad = n / 10;
    let per = (n - bad) / 3;
    let parts = [cloud(&mut seed, per, &axis(0, 0.0), spread), cloud(&mut seed, per, &axis(1, 0.0), spread), cloud(&mut seed, n - bad - 2 * per, &axis(2, 0.0), spread), cloud(&mut seed, bad, &axis(3, 0.5), spread)];
    let x = concatenate(Axis(0), &parts.iter().map(|p| p.view()).collect::<Vec<_>>()).unwrap();
    let an = [cloud(&mut seed, 17, &axis(0, 0.0), spread), cloud(&mut seed, 17, &axis(1, 0.0), spread), cloud(&mut seed, 16, &axis(2, 0.0), spread)];
    let anchor = concatenate(Axis(0), &an.iter().map(|p| p.view()).collect::<Vec<_>>()).unwrap();
    let harmful = cloud(&mut seed, 5000, &axis(3, 0.5), spread);
    let sets = Sets { downstream: x.view(), anchor: Some(Reference { points: anchor.view(), weights: None }), harmful: Reference { points: harmful.view(), weights: None } };
    let t = Instant::now();
    let r = learn_weights(&sets, &o, &Control::default()).unwrap();
    let sel = select_top_k(&r.weights, Keep::Fraction(0.8), None).unwrap();
    let recall = sel.kept[n - bad..].iter().filter(|k| **k).count() as f64 / bad as f64;
    println!("{:?} d={d} n={n} tau={} eps={} inner tol={} max={} step={}: steps {} conv {} inner_conv {} inner_iters {} recall {recall} J {:.6}", t.elapsed(), o.tau, o.eps, o.inner.tol, o.inner.max_iter, o.step, r.steps, r.converged, r.inner_converged, r.inner_iterations, r.objective.last().unwrap());
}
