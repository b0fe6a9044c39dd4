//! Successive over-relaxation of Sinkhorn updates once convergence turns slow.

/// Chooses the over-relaxation factor from the observed convergence rate.
///
/// Plain Sinkhorn's linear rate `r` gives the SOR optimum `2 / (1 + sqrt(1 - r))`.
/// Early iterations underestimate `r`, so the rate keeps being measured under
/// relaxation: for SOR, a relaxed rate `l` at factor `w` implies
/// `r = (l + w - 1)^2 / (l w^2)`. A rise of the error halves the excess
/// factor. Relaxed pairs overshoot, so their error overstates how close a
/// plain update would land: a plain update probes for convergence whenever a
/// relaxed pair is within tolerance, and every `PROBE_EVERY` iterations.
pub(crate) struct Relaxation {
    enabled: bool,
    omega: f64,
    /// The factor of the update that produced the current potentials.
    pub(crate) last_omega: f64,
    /// A plain update is due, to test convergence.
    probe: bool,
    /// Relaxed updates since the last probe.
    since_probe: usize,
    /// Errors since the factor last changed.
    history: Vec<f64>,
    /// Smallest error seen since the factor last changed.
    best: f64,
}

impl Relaxation {
    /// Iterations over which a rate is measured.
    const WINDOW: usize = 8;
    const MAX_OMEGA: f64 = 1.99;
    const PROBE_EVERY: usize = 32;

    pub(crate) fn new(enabled: bool) -> Self {
        Relaxation { enabled, omega: 1.0, last_omega: 1.0, probe: false, since_probe: 0, history: Vec::new(), best: f64::INFINITY }
    }

    pub(crate) fn next(&self) -> f64 {
        if self.probe { 1.0 } else { self.omega }
    }

    fn restart(&mut self, omega: f64) {
        self.omega = omega;
        self.history.clear();
        self.best = f64::INFINITY;
    }

    /// Takes the error of the current pair, made by an update with `last_omega`.
    pub(crate) fn observe(&mut self, err: f64, tol: f64) {
        if !self.enabled || !err.is_finite() {
            return;
        }
        if self.last_omega > 1.0 {
            self.since_probe += 1;
            if err < tol || self.since_probe >= Self::PROBE_EVERY {
                self.probe = true;
                self.since_probe = 0;
                return;
            }
            if err > 10.0 * self.best {
                self.restart(1.0 + 0.5 * (self.omega - 1.0));
                return;
            }
            self.best = self.best.min(err);
        } else if self.probe {
            // the plain update fell short of the tolerance: relax again
            self.probe = false;
            self.history.clear();
            return;
        }
        self.history.push(err);
        let k = self.history.len();
        if k <= Self::WINDOW {
            return;
        }
        let rate = (self.history[k - 1] / self.history[k - 1 - Self::WINDOW]).powf(1.0 / Self::WINDOW as f64);
        let w = self.omega;
        let plain_rate = if w == 1.0 { rate } else { (rate + w - 1.0).powi(2) / (rate * w * w) };
        if !(rate < 1.0 && plain_rate > 0.5 && plain_rate < 1.0) {
            return;
        }
        let optimum = (2.0 / (1.0 + (1.0 - plain_rate).sqrt())).min(Self::MAX_OMEGA);
        if optimum > w + 0.005 {
            self.restart(optimum);
        }
    }
}
