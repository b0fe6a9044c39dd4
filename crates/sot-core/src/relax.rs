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
    current: f64,
    /// The factor handed out for the update under way (current once it lands).
    pending: f64,
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
        Relaxation {
            enabled,
            omega: 1.0,
            current: 1.0,
            pending: 1.0,
            probe: false,
            since_probe: 0,
            history: Vec::new(),
            best: f64::INFINITY,
        }
    }

    /// The factor of the next update: 1 when `plain` asks for a plain one
    /// (the last update before a return always is), or a probe is due.
    pub(crate) fn next(&mut self, plain: bool) -> f64 {
        self.pending = if plain || self.probe { 1.0 } else { self.omega };
        self.pending
    }

    /// Whether the current potentials come from a plain update (only then
    /// may convergence be declared).
    pub(crate) fn current_is_plain(&self) -> bool {
        self.current == 1.0
    }

    /// The update handed out by `next` has landed: takes the error of the
    /// pair it started from (`None` when that error is not meaningful), then
    /// makes the new pair current.
    pub(crate) fn advance(&mut self, err: Option<f64>, tol: f64) {
        if let Some(err) = err {
            self.observe(err, tol);
        }
        self.current = self.pending;
    }

    fn restart(&mut self, omega: f64) {
        self.omega = omega;
        self.history.clear();
        self.best = f64::INFINITY;
    }

    /// Takes the error of the current pair, made by an update with `current`.
    fn observe(&mut self, err: f64, tol: f64) {
        if !self.enabled || !err.is_finite() {
            return;
        }
        if self.current > 1.0 {
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
        let rate = (self.history[k - 1] / self.history[k - 1 - Self::WINDOW])
            .powf(1.0 / Self::WINDOW as f64);
        let w = self.omega;
        let plain_rate = if w == 1.0 {
            rate
        } else {
            (rate + w - 1.0).powi(2) / (rate * w * w)
        };
        if !(rate < 1.0 && plain_rate > 0.5 && plain_rate < 1.0) {
            return;
        }
        let optimum = (2.0 / (1.0 + (1.0 - plain_rate).sqrt())).min(Self::MAX_OMEGA);
        if optimum > w + 0.005 {
            self.restart(optimum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Relaxation;

    /// Feeds errors falling at `rate` per update for `steps` updates; returns the factors handed out.
    fn run(r: &mut Relaxation, err: &mut f64, rate: f64, steps: usize, tol: f64) -> Vec<f64> {
        (0..steps)
            .map(|_| {
                let w = r.next(false);
                r.advance(Some(*err), tol);
                *err *= rate;
                w
            })
            .collect()
    }

    #[test]
    fn a_slow_linear_rate_gets_the_sor_factor_then_a_plain_probe_near_tolerance() {
        let mut r = Relaxation::new(true);
        let mut err = 1.0;
        // a window of plain updates measures the rate 0.95
        assert!(run(&mut r, &mut err, 0.95, Relaxation::WINDOW + 1, 1e-12)
            .iter()
            .all(|&w| w == 1.0));
        let optimum = 2.0 / (1.0 + (1.0 - 0.95f64).sqrt());
        assert!((r.next(false) - optimum).abs() < 1e-9, "{}", r.next(false));
        // the last update before a return is plain whatever the factor
        assert_eq!(r.next(true), 1.0);
        // a relaxed pair within tolerance makes the next update a plain probe
        r.next(false);
        r.advance(Some(1.0), 1e-12);
        assert!(!r.current_is_plain());
        r.next(false);
        r.advance(Some(1e-13), 1e-12);
        assert_eq!(r.next(false), 1.0);
        r.advance(None, 1e-12);
        assert!(r.current_is_plain());
    }

    #[test]
    fn disabled_relaxation_stays_plain() {
        let mut r = Relaxation::new(false);
        let mut err = 1.0;
        assert!(run(&mut r, &mut err, 0.95, 40, 1e-12)
            .iter()
            .all(|&w| w == 1.0));
        assert!(r.current_is_plain());
    }
}
