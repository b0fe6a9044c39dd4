mod common;

use common::*;
use ndarray::{concatenate, Array2, Axis};
use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::StandardNormal;
use sot_core::*;

/// Points around `center` with isotropic noise.
fn cloud(r: &mut SmallRng, n: usize, center: &[f32], spread: f32) -> Array2<f32> {
    Array2::from_shape_fn((n, center.len()), |(_, k)| {
        center[k] + spread * r.sample::<f32, _>(StandardNormal)
    })
}

fn unit(d: usize, k: usize) -> Vec<f32> {
    (0..d).map(|j| if j == k { 1.0 } else { 0.0 }).collect()
}

struct Planted {
    downstream: Array2<f32>,
    anchor: Array2<f32>,
    harmful: Array2<f32>,
    /// downstream rows from `clean` on are planted harmful samples
    clean: usize,
}

/// A benign task of three clusters, 10% planted harmful samples from a fourth
/// region, an anchor and a harmful reference drawn separately.
fn planted(seed: u64, n_clean: usize, n_bad: usize, d: usize) -> Planted {
    let mut r = rng(seed);
    let task: Vec<Vec<f32>> = (0..3).map(|k| unit(d, k)).collect();
    let harm: Vec<f32> = unit(d, 3)
        .iter()
        .zip(unit(d, 0))
        .map(|(a, b)| a + 0.5 * b)
        .collect();
    let per = n_clean / 3;
    let mut parts: Vec<Array2<f32>> = task.iter().map(|c| cloud(&mut r, per, c, 0.1)).collect();
    parts.push(cloud(&mut r, n_bad, &harm, 0.1));
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let downstream = concatenate(Axis(0), &views).unwrap();
    let anchor_parts: Vec<Array2<f32>> = task.iter().map(|c| cloud(&mut r, 10, c, 0.1)).collect();
    let anchor_views: Vec<_> = anchor_parts.iter().map(|p| p.view()).collect();
    let anchor = concatenate(Axis(0), &anchor_views).unwrap();
    let harmful = cloud(&mut r, 300, &harm, 0.1);
    Planted {
        downstream,
        anchor,
        harmful,
        clean: 3 * per,
    }
}

fn sets(p: &Planted) -> Sets<'_> {
    Sets {
        downstream: p.downstream.view(),
        anchor: Some(Reference {
            points: p.anchor.view(),
            weights: None,
        }),
        harmful: Reference {
            points: p.harmful.view(),
            weights: None,
        },
    }
}

fn worst_clean_and_best_planted(rank: &[usize], clean: usize) -> (usize, usize) {
    (
        rank[..clean].iter().copied().max().unwrap(),
        rank[clean..].iter().copied().min().unwrap(),
    )
}

#[test]
fn ranks_every_planted_sample_below_every_clean_one() {
    let p = planted(1, 540, 60, 16);
    for debiased in [false, true] {
        let opts = LearnerOptions {
            debiased,
            ..Default::default()
        };
        let r = learn_weights(&sets(&p), &opts, &Control::default()).unwrap();
        assert!(
            r.converged && r.inner_converged,
            "debiased {debiased}: {} steps",
            r.steps
        );
        let sel = select_top_k(&r.weights, Keep::Fraction(0.9), Some(&r.weights)).unwrap();
        let (worst_clean, best_planted) = worst_clean_and_best_planted(&sel.rank, p.clean);
        assert!(
            worst_clean < best_planted,
            "debiased {debiased}: clean down to rank {worst_clean}, planted from {best_planted}"
        );
        assert!(sel.kept[..p.clean].iter().all(|k| *k) && sel.kept[p.clean..].iter().all(|k| !k));
        // the objective decreases overall
        assert!(r.objective.last().unwrap() < &r.objective[0]);
    }
}

#[test]
fn converged_weights_are_the_gibbs_form_of_the_scores() {
    let p = planted(2, 240, 30, 8);
    // smooth enough (eps, tau) for the plain fixed-point iteration to contract
    let opts = LearnerOptions {
        eps: 0.2,
        tau: 0.2,
        step: 1.0,
        tol: 1e-13,
        max_steps: 2000,
        ..Default::default()
    };
    let r = learn_weights(&sets(&p), &opts, &Control::default()).unwrap();
    assert!(r.converged && r.steps < 2000, "{} steps", r.steps);
    let logits: Vec<f64> = r
        .pull
        .iter()
        .zip(&r.push)
        .map(|(a, b)| -(a - b) / opts.tau)
        .collect();
    let top = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = logits.iter().map(|l| (l - top).exp()).sum();
    for (w, l) in r.weights.iter().zip(&logits) {
        let gibbs = (l - top).exp() / z;
        assert!((w - gibbs).abs() <= 1e-4 * gibbs, "{w} vs {gibbs}");
    }
}

#[test]
fn gradient_matches_finite_differences_of_the_objective() {
    let p = planted(3, 60, 6, 6);
    let s = sets(&p);
    let n = p.downstream.nrows();
    let mut r = rng(33);
    let w = weights(&mut r, n);
    for debiased in [false, true] {
        let opts = LearnerOptions {
            debiased,
            lambda: 0.7,
            tau: 0.05,
            eps: 0.1,
            inner: SinkhornOptions {
                tol: 1e-11,
                max_iter: 100_000,
                ..Default::default()
            },
            ..Default::default()
        };
        let (_, grad) = objective(&s, &w, &opts, &Control::default()).unwrap();
        for (i, k) in [(0, 1), (10, 65), (40, 3)] {
            let h = 2e-3 * w[i].min(w[k]);
            let j_at = |t: f64| {
                let mut v = w.clone();
                v[i] += t;
                v[k] -= t;
                objective(&s, &v, &opts, &Control::default()).unwrap().0
            };
            let fd = (j_at(h) - j_at(-h)) / (2.0 * h);
            let an = grad[i] - grad[k];
            assert!(
                (fd - an).abs() <= 1e-4 * an.abs().max(1e-2),
                "debiased {debiased} ({i},{k}): fd {fd} vs {an}"
            );
        }
    }
}

/// The second solve's harmful reference is the reference proper plus one
/// point per row of the lowest-weighted 5% of the first solve (the mean of
/// the 3 other such rows nearest it), holding 30% of its mass; the
/// contamination estimate is the first solve's.
#[test]
fn the_data_s_own_harm_joins_the_reference_for_a_second_solve() {
    let p = planted(4, 540, 60, 16);
    let once = LearnerOptions {
        own_harm_share: 0.0,
        ..Default::default()
    };
    let first = learn_weights(&sets(&p), &once, &Control::default()).unwrap();
    assert!(first.fitted.own_harm_rows.is_empty());
    assert_eq!(first.fitted.own_harm_points.nrows(), 0);
    assert!(first.fitted.own_harm_members.is_empty());
    let r = learn_weights(&sets(&p), &LearnerOptions::default(), &Control::default()).unwrap();
    let rows = &r.fitted.own_harm_rows;
    assert_eq!(rows, &own_harm_rows(&first.weights, 0.05));
    assert_eq!(rows.len(), 30);
    assert_eq!(own_harm_count(600, 0.05), 30);
    // none when each point could not average 3 others; at most MAX_OWN_HARM
    assert_eq!(own_harm_count(60, 0.05), 0);
    assert_eq!(own_harm_rows(&first.weights[..60], 0.05).len(), 0);
    assert_eq!(own_harm_count(100, 0.05), 5);
    assert_eq!(own_harm_count(1_000_000, 0.05), MAX_OWN_HARM);
    // the lowest 5% here are planted samples
    assert!(rows.iter().all(|i| *i >= p.clean), "{rows:?}");
    // each point is the mean of the 3 other rows nearest its own (cosine, in f64)
    let cos = |a: usize, b: usize| {
        let (u, v) = (p.downstream.row(a), p.downstream.row(b));
        let dot: f64 = u.iter().zip(v).map(|(x, y)| *x as f64 * *y as f64).sum();
        let nu: f64 = u.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nv: f64 = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (nu * nv)
    };
    let pts = &r.fitted.own_harm_points;
    assert_eq!(pts.dim(), (30, 16));
    assert_eq!(r.fitted.own_harm_members.len(), 30 * 3);
    for (k, &i) in rows.iter().enumerate() {
        let mut others: Vec<usize> = rows.iter().copied().filter(|j| *j != i).collect();
        others.sort_by(|a, b| cos(i, *b).total_cmp(&cos(i, *a)));
        // the rows a reason cites for the point, nearest first
        assert_eq!(
            &r.fitted.own_harm_members[k * 3..k * 3 + 3],
            &others[..3],
            "row {i}"
        );
        for c in 0..16 {
            let want: f64 = others[..3]
                .iter()
                .map(|j| p.downstream[[*j, c]] as f64)
                .sum::<f64>()
                / 3.0;
            assert!(
                (pts[[k, c]] as f64 - want).abs() < 1e-5,
                "row {i} coordinate {c}"
            );
        }
    }
    let m = p.harmful.nrows();
    assert_eq!(r.fitted.harmful_potential.len(), m + 30);
    let w = &r.fitted.harmful_weights;
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!((w[m..].iter().sum::<f64>() - 0.3).abs() < 1e-12);
    assert!(w[m..].iter().all(|v| (v - 0.3 / 30.0).abs() < 1e-15));
    assert_eq!(r.contamination, first.contamination);
    assert!(r.steps > first.steps && r.converged);
    // and it still ranks every planted sample below every clean one
    let sel = select_top_k(&r.weights, Keep::Fraction(0.9), Some(&r.weights)).unwrap();
    let (worst_clean, best_planted) = worst_clean_and_best_planted(&sel.rank, p.clean);
    assert!(worst_clean < best_planted);
}

#[test]
fn own_harm_rows_are_the_lowest_share_evenly_capped() {
    let w: Vec<f64> = (0..100).map(|i| ((i * 37) % 100) as f64).collect();
    // the 5 lowest weights are 0..5, at rows i with 37 i = k (mod 100)
    let mut want: Vec<usize> = (0..5)
        .map(|k| (0..100).find(|i| (i * 37) % 100 == k).unwrap())
        .collect();
    want.sort_unstable();
    assert_eq!(own_harm_rows(&w, 0.05), want);
    assert!(own_harm_rows(&w, 0.004).is_empty());
    // fewer than 4 rows cannot each average 3 others: none
    assert!(own_harm_rows(&w, 0.03).is_empty());
    assert!(own_harm_rows(&w, 0.0).is_empty());
    assert_eq!(own_harm_rows(&w, 0.04).len(), 4);
    // ties go to the lower row
    let tied = [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 2.0, 3.0, 4.0, 5.0];
    assert_eq!(own_harm_rows(&tied, 0.4), vec![1, 2, 3, 4]);
    // more than MAX_OWN_HARM: evenly spaced among the lowest, ascending rows
    let n = 50_000;
    let w: Vec<f64> = (0..n).map(|i| (n - i) as f64).collect();
    let rows = own_harm_rows(&w, 0.05);
    assert_eq!(rows.len(), MAX_OWN_HARM);
    assert!(rows.windows(2).all(|p| p[0] < p[1]));
    assert_eq!(*rows.last().unwrap(), n - 1);
    assert!(rows[0] >= n - 2500 && rows[0] < n - 2497, "{}", rows[0]);
}

#[test]
fn results_are_deterministic() {
    let p = planted(4, 150, 15, 8);
    // everything but the seconds the storage reports
    let untimed = |mut r: LearnResult| {
        for s in [&mut r.anchor_storage, &mut r.harmful_storage] {
            (s.kernel_seconds, s.build_seconds) = (0.0, 0.0);
        }
        r
    };
    let a = learn_weights(&sets(&p), &LearnerOptions::default(), &Control::default()).unwrap();
    let b = learn_weights(&sets(&p), &LearnerOptions::default(), &Control::default()).unwrap();
    assert_eq!(untimed(a), untimed(b));
}

#[test]
fn without_an_anchor_it_pulls_towards_the_data_and_warns() {
    let p = planted(5, 300, 30, 16);
    let s = Sets {
        anchor: None,
        ..sets(&p)
    };
    let r = learn_weights(&s, &LearnerOptions::default(), &Control::default()).unwrap();
    assert!(r.anchor_is_downstream);
    assert!(
        r.warnings[0].contains("no safe anchor given"),
        "{:?}",
        r.warnings
    );
    let sel = select_top_k(&r.weights, Keep::Count(300), None).unwrap();
    let dropped_planted = sel.kept[p.clean..].iter().filter(|k| !**k).count();
    // weaker than with a trusted anchor (the pull target contains the harm), but still most go
    assert!(
        dropped_planted >= 20,
        "only {dropped_planted} of 30 planted samples dropped"
    );
}

#[test]
fn invalid_parameters_are_rejected() {
    let p = planted(6, 30, 3, 4);
    let s = sets(&p);
    let ctl = Control::default();
    for bad in [
        LearnerOptions {
            tau: 0.0,
            ..Default::default()
        },
        LearnerOptions {
            lambda: -1.0,
            ..Default::default()
        },
        LearnerOptions {
            step: 0.0,
            ..Default::default()
        },
        LearnerOptions {
            step: 1.5,
            ..Default::default()
        },
        LearnerOptions {
            max_steps: 0,
            ..Default::default()
        },
        LearnerOptions {
            eps: f64::NAN,
            ..Default::default()
        },
        LearnerOptions {
            own_harm_share: 0.6,
            ..Default::default()
        },
        LearnerOptions {
            own_harm_share: f64::NAN,
            ..Default::default()
        },
        LearnerOptions {
            own_harm_mass: 1.0,
            ..Default::default()
        },
        LearnerOptions {
            own_harm_mass: 0.0,
            ..Default::default()
        },
    ] {
        assert_eq!(
            learn_weights(&s, &bad, &ctl).unwrap_err().code(),
            "ERR_OPTION",
            "{bad:?}"
        );
    }
    let wrong_dim = Array2::<f32>::ones((5, 7));
    let e = learn_weights(
        &Sets {
            harmful: Reference {
                points: wrong_dim.view(),
                weights: None,
            },
            ..s
        },
        &LearnerOptions::default(),
        &ctl,
    )
    .unwrap_err();
    assert_eq!(e.code(), "ERR_SHAPE");
    assert!(
        e.message.contains("harmful has dimension 7"),
        "{}",
        e.message
    );
    let e = learn_weights(
        &Sets {
            anchor: Some(Reference {
                points: p.anchor.view(),
                weights: Some(&[1.0; 3]),
            }),
            ..s
        },
        &LearnerOptions::default(),
        &ctl,
    )
    .unwrap_err();
    assert_eq!(e.code(), "ERR_SHAPE");
    assert!(
        e.message.contains("anchor weights has 3 entries"),
        "{}",
        e.message
    );
}

#[test]
fn baselines_share_the_interface_and_behave_as_named() {
    let p = planted(7, 540, 60, 16);
    let s = sets(&p);
    let opts = LearnerOptions::default();
    let ctl = Control::default();
    let run = |m| baseline_scores(m, &s, &opts, &ctl).unwrap().0;

    let r1 = run(Baseline::Random { seed: 1 });
    assert_eq!(r1, run(Baseline::Random { seed: 1 }));
    assert_ne!(r1, run(Baseline::Random { seed: 2 }));
    assert!(r1.iter().all(|v| (0.0..1.0).contains(v)));

    // on this easy geometry the harm-aware baselines drop the planted cluster too
    for m in [Baseline::NearestHarmful, Baseline::PushOnly] {
        let sel = select_top_k(&run(m), Keep::Count(p.clean), None).unwrap();
        let (worst_clean, best_planted) = worst_clean_and_best_planted(&sel.rank, p.clean);
        assert!(worst_clean < best_planted, "{}", m.name());
    }
    // pull-only keeps what is close to the anchor: planted samples score below the clean mean
    let pull = run(Baseline::PullOnly);
    let mean_clean = pull[..p.clean].iter().sum::<f64>() / p.clean as f64;
    assert!(pull[p.clean..].iter().all(|v| *v < mean_clean));
    // SAFT's top direction separates the task clusters here, not the harm: it only needs to run and be finite
    let saft = run(Baseline::Saft { components: 2 });
    assert!(saft.iter().all(|v| v.is_finite() && *v <= 0.0));
    assert_eq!(
        baseline_scores(Baseline::Saft { components: 0 }, &s, &opts, &ctl)
            .unwrap_err()
            .code(),
        "ERR_OPTION"
    );
}

#[test]
fn under_a_small_memory_budget_the_harmful_costs_are_truncated_and_the_ranking_holds() {
    let p = planted(7, 1_500, 150, 16);
    let (n, m) = (p.downstream.nrows(), p.harmful.nrows());
    let budget = n * m * 3; // the dense harmful costs do not fit
    let mut opts = LearnerOptions::default();
    opts.inner.storage = StorageOptions {
        budget,
        neighbours: 32,
        ..Default::default()
    };
    let small = learn_weights(&sets(&p), &opts, &Control::default()).unwrap();
    let dense = learn_weights(&sets(&p), &LearnerOptions::default(), &Control::default()).unwrap();

    assert_eq!(
        (dense.anchor_storage.storage, dense.harmful_storage.storage),
        ("dense+kernel", "dense+kernel")
    );
    assert_eq!(small.anchor_storage.storage, "dense+kernel");
    assert_eq!(
        (
            small.harmful_storage.storage,
            small.harmful_storage.neighbours
        ),
        ("truncated+kernel", 32)
    );
    assert!(small.anchor_storage.bytes + small.harmful_storage.bytes <= budget);
    // warm-started steps reuse the stored kernels instead of forming them again
    for s in [
        &small.anchor_storage,
        &small.harmful_storage,
        &dense.harmful_storage,
    ] {
        assert!(s.kernel_passes > 2 * s.kernel_builds, "{s:?}");
    }
    let v = small
        .harmful_storage
        .verification
        .expect("truncated terms are verified");
    assert!(v.max_error <= small.harmful_storage.bound + 1e-12 && v.max_error.is_finite());

    let sel = select_top_k(&small.weights, Keep::Fraction(0.9), Some(&small.weights)).unwrap();
    let (worst_clean, best_planted) = worst_clean_and_best_planted(&sel.rank, p.clean);
    assert!(
        worst_clean < best_planted,
        "clean down to rank {worst_clean}, planted from {best_planted}"
    );
    let l1: f64 = small
        .weights
        .iter()
        .zip(&dense.weights)
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(l1 < 0.05, "weights moved by {l1} in L1");
}

#[test]
fn blocked_costs_learn_the_dense_weights() {
    let p = planted(8, 300, 30, 8);
    let mut opts = LearnerOptions::default();
    opts.inner.storage = StorageOptions {
        storage: Storage::Blocked,
        ..Default::default()
    };
    let blocked = learn_weights(&sets(&p), &opts, &Control::default()).unwrap();
    opts.inner.storage = StorageOptions {
        storage: Storage::Dense,
        store_kernel: false,
        ..Default::default()
    };
    let dense = learn_weights(&sets(&p), &opts, &Control::default()).unwrap();
    assert_eq!(
        (
            blocked.harmful_storage.storage,
            dense.harmful_storage.storage
        ),
        ("blocked", "dense")
    );
    assert_eq!(blocked.weights, dense.weights);
}

#[test]
fn extreme_tau_or_lambda_is_blamed_not_the_weights() {
    let p = planted(7, 60, 6, 16);
    for (tau, lambda, named) in [
        (1e-300, 1.5, "tau = 1e-300 is too small for lambda = 1.5"),
        (1e-6, 1.5, "tau = 1e-6 is"),
        (0.2, 1e300, "lambda = 1e300 "),
    ] {
        let opts = LearnerOptions {
            tau,
            lambda,
            ..LearnerOptions::default()
        };
        let e = learn_weights(&sets(&p), &opts, &Control::default()).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::InvalidOption,
            "tau {tau}, lambda {lambda}: {}",
            e.message
        );
        assert!(
            e.message.starts_with("tau = ") && e.message.contains(named),
            "{}",
            e.message
        );
    }
}

#[test]
fn the_debiased_self_cost_counts_against_the_budget() {
    let p = planted(8, 60, 6, 16);
    let mut opts = LearnerOptions {
        debiased: true,
        ..LearnerOptions::default()
    };
    opts.inner.storage.budget = 1000;
    let e = learn_weights(&sets(&p), &opts, &Control::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidOption);
    assert!(
        e.message.contains("66 x 66 self cost") && e.message.contains("use debiased = false"),
        "{}",
        e.message
    );
}
