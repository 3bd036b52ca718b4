//! Small dense linear algebra in f64: the ridge regressions of the assessment's linear baseline
//! and of the generator's linear map at the start of training.

/// Solves `a x = b` (symmetric positive definite, n x n, row-major) by Cholesky.
pub fn solve_spd(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(x)
}


/// Sums for a least-squares fit of several targets on the same features, added pixel by pixel:
/// `X'X` (upper triangle) and `X'y` per target, with a constant feature last.
#[derive(Debug, Clone)]
pub struct RidgeSums {
    features: usize,
    targets: usize,
    xtx: Vec<f64>,
    xty: Vec<f64>,
    pub count: u64,
}

impl RidgeSums {
    pub fn new(features: usize, targets: usize) -> RidgeSums {
        let n = features + 1;
        RidgeSums { features, targets, xtx: vec![0.0; n * n], xty: vec![0.0; n * targets], count: 0 }
    }

    /// One sample: `x` (the features) and `y` (the targets).
    pub fn add(&mut self, x: &[f64], y: &[f64]) {
        let n = self.features + 1;
        let at = |i: usize| if i < self.features { x[i] } else { 1.0 };
        for i in 0..n {
            let xi = at(i);
            for j in i..n {
                self.xtx[i * n + j] += xi * at(j);
            }
            for (t, yt) in y.iter().enumerate() {
                self.xty[t * n + i] += xi * yt;
            }
        }
        self.count += 1;
    }

    /// Per target, the coefficients of the features and the intercept last, with `lambda`
    /// times the sample count added to the features' diagonal (not the intercept's). `None`
    /// without samples or when the system is singular.
    pub fn solve(&self, lambda: f64) -> Option<Vec<Vec<f64>>> {
        if self.count == 0 {
            return None;
        }
        let n = self.features + 1;
        let mut a = self.xtx.clone();
        for i in 0..n {
            for j in 0..i {
                a[i * n + j] = a[j * n + i];
            }
            if i < self.features {
                a[i * n + i] += lambda * self.count as f64;
            }
        }
        (0..self.targets).map(|t| solve_spd(&a, &self.xty[t * n..(t + 1) * n], n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ridge_with_no_penalty_recovers_a_linear_relation() {
        let mut s = RidgeSums::new(2, 2);
        for i in 0..50 {
            let (a, b) = (i as f64 * 0.1, ((i * 7) % 11) as f64);
            s.add(&[a, b], &[2.0 * a - 3.0 * b + 0.5, -a + 1.0]);
        }
        let fit = s.solve(0.0).unwrap();
        for (got, want) in fit.iter().zip([[2.0, -3.0, 0.5], [-1.0, 0.0, 1.0]]) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-9, "{got:?}");
            }
        }
        assert!(RidgeSums::new(2, 1).solve(0.0).is_none(), "no samples");
    }
}
