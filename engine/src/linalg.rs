//! The numerics every method family shares, in one place: least squares by Householder
//! QR, Cholesky for positive definite systems (on ndarray matrices for the estimators, on
//! flat row-major slices for the forecasters' hot loops: the same factorisation), the
//! inverse of a small general matrix, R's rule for aliased columns, and the quantiles.
//!
//! Written here rather than taken from a crate: the systems are small (one row and column
//! per covariate), ndarray-linalg needs a system LAPACK that a fresh machine lacks, and
//! faer would be the costliest crate of the build for three routines of a few dozen
//! lines. QR keeps least squares accurate on raw covariates such as earnings and their
//! squares, where the normal equations would square an already large condition number.

// Index loops mirror the formulas (as in `causal`).
#![allow(clippy::needless_range_loop)]

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// Relative size below which a pivot or diagonal counts as zero (collinear columns).
const RANK_TOL: f64 = 1e-10;

/// The least-squares solution of `x b ≈ y` and `(x'x)⁻¹`, by Householder QR on the
/// columns scaled to unit norm (scaling fixes units; QR keeps the rest accurate).
/// `None` if `x` has fewer rows than columns or its columns are collinear; then
/// [`collinear_column`] tells which column to blame.
pub fn least_squares(x: ArrayView2<f64>, y: ArrayView1<f64>) -> Option<(Array1<f64>, Array2<f64>)> {
    let (n, p) = x.dim();
    if n < p || p == 0 {
        return None;
    }
    let scale: Vec<f64> = (0..p)
        .map(|j| x.column(j).iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    if scale.iter().any(|&s| s == 0.0 || !s.is_finite()) {
        return None;
    }
    let mut a = x.to_owned();
    for (j, &s) in scale.iter().enumerate() {
        a.column_mut(j).mapv_inplace(|v| v / s);
    }
    let mut b = y.to_owned();
    let mut diag = vec![0.0; p];
    for k in 0..p {
        // Householder reflection that zeroes a[k+1.., k].
        let norm = (k..n).map(|i| a[[i, k]] * a[[i, k]]).sum::<f64>().sqrt();
        if norm <= RANK_TOL {
            return None;
        }
        let alpha = if a[[k, k]] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..n).map(|i| a[[i, k]]).collect();
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|t| t * t).sum();
        diag[k] = alpha;
        if vnorm2 > 0.0 {
            for j in k + 1..p {
                let dot: f64 = (k..n).map(|i| v[i - k] * a[[i, j]]).sum();
                let f = 2.0 * dot / vnorm2;
                for i in k..n {
                    a[[i, j]] -= f * v[i - k];
                }
            }
            let dot: f64 = (k..n).map(|i| v[i - k] * b[i]).sum();
            let f = 2.0 * dot / vnorm2;
            for i in k..n {
                b[i] -= f * v[i - k];
            }
        }
    }
    // R: diag on the diagonal, a above it. Collinearity shows as a tiny diagonal
    // relative to the largest.
    let rmax = diag.iter().fold(0.0f64, |m, d| m.max(d.abs()));
    if diag.iter().any(|d| d.abs() <= RANK_TOL * rmax) {
        return None;
    }
    let mut r = Array2::<f64>::zeros((p, p));
    for i in 0..p {
        r[[i, i]] = diag[i];
        for j in i + 1..p {
            r[[i, j]] = a[[i, j]];
        }
    }
    let rinv = upper_inverse(&r);
    let mut coef = Array1::<f64>::zeros(p);
    for i in 0..p {
        coef[i] = (i..p).map(|j| rinv[[i, j]] * b[j]).sum::<f64>() / scale[i];
    }
    // (x'x)⁻¹ = S⁻¹ R⁻¹ R⁻ᵀ S⁻¹.
    let mut xtx_inv = rinv.dot(&rinv.t());
    for i in 0..p {
        for j in 0..p {
            xtx_inv[[i, j]] /= scale[i] * scale[j];
        }
    }
    Some((coef, xtx_inv))
}

/// The first column of `x` that is (nearly) a linear combination of the ones before it,
/// to name in an error; `None` if there is none.
pub fn collinear_column(x: ArrayView2<f64>) -> Option<usize> {
    (1..=x.ncols())
        .find(|&j| {
            let sub = x.slice(ndarray::s![.., ..j]);
            least_squares(sub, x.column(0)).is_none()
        })
        .map(|j| j - 1)
}

/// Relative norm below which a column counts as aliased: R's `lm` and `glm` (`qr(tol = 1e-7)`).
pub const ALIAS_TOL: f64 = 1e-7;

/// Which columns of `x` are kept, in order, as R's `lm` keeps them: a column whose norm,
/// after the kept columns before it are projected out, falls below [`ALIAS_TOL`] of its
/// own norm is aliased (R's pivoted QR, `dqrdc2`, moves it to the end and reports its
/// coefficient as `NA`). An all-zero column is aliased too. Gram–Schmidt twice, on unit
/// columns, which is as exact as Householder for this decision.
pub fn independent_columns(x: ArrayView2<f64>) -> Vec<bool> {
    independent_columns_given(x, x)
}

/// [`independent_columns`] for columns from which other regressors (fixed effects) have
/// already been projected out: `residual` holds them after that projection, `original`
/// before it, whose norms R's rule measures against (`lm(y ~ factor(unit) + factor(time)
/// + d1 + d2)` with the dummies after the fixed effects).
pub fn independent_columns_given(
    residual: ArrayView2<f64>,
    original: ArrayView2<f64>,
) -> Vec<bool> {
    let (n, p) = residual.dim();
    let mut basis: Vec<Array1<f64>> = Vec::new();
    let mut keep = vec![false; p];
    for j in 0..p {
        let norm = original.column(j).iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() || basis.len() >= n {
            continue;
        }
        let mut v = residual.column(j).mapv(|t| t / norm);
        for _ in 0..2 {
            for q in &basis {
                let c = q.dot(&v);
                v.scaled_add(-c, q);
            }
        }
        let r = v.dot(&v).sqrt();
        if r > ALIAS_TOL {
            keep[j] = true;
            basis.push(v / r);
        }
    }
    keep
}

/// The same decision from a Gram matrix `x'x` (weighted or not), by a Cholesky that skips
/// aliased columns: the squared residual norm of a column is its Schur complement. The
/// Gram squares the condition number, so the threshold is the square of 1e-6 rather than
/// of [`ALIAS_TOL`]: exact aliasing (a dummy held by no unit of the group, dummies adding
/// up to the intercept) is far below either.
pub fn independent_in_gram(g: &Array2<f64>) -> Vec<bool> {
    let p = g.nrows();
    let mut l = Array2::<f64>::zeros((p, p));
    let mut keep = vec![false; p];
    for j in 0..p {
        let gjj = g[[j, j]];
        if gjj <= 0.0 || !gjj.is_finite() {
            continue;
        }
        let r = gjj
            - (0..j)
                .filter(|&k| keep[k])
                .map(|k| l[[j, k]] * l[[j, k]])
                .sum::<f64>();
        if r <= 1e-12 * gjj {
            continue;
        }
        keep[j] = true;
        let ljj = r.sqrt();
        l[[j, j]] = ljj;
        for i in j + 1..p {
            let s = g[[i, j]]
                - (0..j)
                    .filter(|&k| keep[k])
                    .map(|k| l[[i, k]] * l[[j, k]])
                    .sum::<f64>();
            l[[i, j]] = s / ljj;
        }
    }
    keep
}

/// Solves `a x = b` for a positive semi-definite `a` on the columns `keep` marks, the
/// others' unknowns set to zero (R's `NA` coefficients, which predict as zero).
pub fn solve_spd_kept(a: &Array2<f64>, b: &Array1<f64>, keep: &[bool]) -> Option<Array1<f64>> {
    let idx: Vec<usize> = (0..keep.len()).filter(|&j| keep[j]).collect();
    let m = idx.len();
    let sub = Array2::from_shape_fn((m, m), |(r, c)| a[[idx[r], idx[c]]]);
    let rhs = Array1::from_shape_fn(m, |r| b[idx[r]]);
    let x = solve_spd(&sub, &rhs)?;
    let mut out = Array1::<f64>::zeros(keep.len());
    for (r, &j) in idx.iter().enumerate() {
        out[j] = x[r];
    }
    Some(out)
}

/// `x'x` summed over fixed blocks of rows on all cores, the blocks' products added in
/// their order (rayon's `reduce` adds them in a tree shaped by work stealing, which
/// changed the last bits of a 1,000,000-row AIPW between runs on 2 threads). For millions of rows this is the costly step of a sandwich or of the
/// normal equations, and the matrix-product kernel does it far faster than a loop.
pub fn gram(x: ArrayView2<f64>) -> Array2<f64> {
    use rayon::prelude::*;
    const BLOCK: usize = 8192;
    let (n, k) = x.dim();
    let starts: Vec<usize> = (0..n).step_by(BLOCK).collect();
    starts
        .par_iter()
        .map(|&a| {
            let b = x.slice(ndarray::s![a..(a + BLOCK).min(n), ..]);
            b.t().dot(&b)
        })
        .collect::<Vec<Array2<f64>>>()
        .into_iter()
        .fold(Array2::zeros((k, k)), |acc, g| acc + g)
}

/// Least squares by the normal equations, `(x'x)⁻¹ x'y`, for well-conditioned designs
/// (standardised covariates) with many rows, where QR's row-by-row reflections would
/// dominate the run time. `None` if `x'x` is not positive definite.
pub fn least_squares_normal(x: ArrayView2<f64>, y: ArrayView1<f64>) -> Option<Array1<f64>> {
    let xtx = gram(x);
    let xty = x.t().dot(&y);
    solve_spd(&xtx, &xty)
}

/// Inverse of an upper triangular matrix with a non-zero diagonal.
fn upper_inverse(r: &Array2<f64>) -> Array2<f64> {
    let p = r.nrows();
    let mut inv = Array2::<f64>::zeros((p, p));
    for j in 0..p {
        inv[[j, j]] = 1.0 / r[[j, j]];
        for i in (0..j).rev() {
            let s: f64 = (i + 1..=j).map(|k| r[[i, k]] * inv[[k, j]]).sum();
            inv[[i, j]] = -s / r[[i, i]];
        }
    }
    inv
}

/// Cholesky factor `L` (lower, `a = L Lᵀ`) of a symmetric positive definite matrix;
/// `None` if it is not numerically positive definite.
pub fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let p = a.nrows();
    let mut l = Array2::<f64>::zeros((p, p));
    let dmax = (0..p).fold(0.0f64, |m, i| m.max(a[[i, i]].abs()));
    for j in 0..p {
        let s: f64 = (0..j).map(|k| l[[j, k]] * l[[j, k]]).sum();
        let d = a[[j, j]] - s;
        if d.is_nan() || d <= RANK_TOL * dmax {
            return None;
        }
        let djj = d.sqrt();
        l[[j, j]] = djj;
        for i in j + 1..p {
            let s: f64 = (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum();
            l[[i, j]] = (a[[i, j]] - s) / djj;
        }
    }
    Some(l)
}

/// Solves `a x = b` for symmetric positive definite `a`.
pub fn solve_spd(a: &Array2<f64>, b: &Array1<f64>) -> Option<Array1<f64>> {
    let l = cholesky(a)?;
    let p = b.len();
    let mut z = Array1::<f64>::zeros(p);
    for i in 0..p {
        let s: f64 = (0..i).map(|k| l[[i, k]] * z[k]).sum();
        z[i] = (b[i] - s) / l[[i, i]];
    }
    let mut x = Array1::<f64>::zeros(p);
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|k| l[[k, i]] * x[k]).sum();
        x[i] = (z[i] - s) / l[[i, i]];
    }
    Some(x)
}

/// Inverse of a square matrix by Gauss–Jordan elimination with partial pivoting, rows and
/// columns first scaled to unit largest entry (moment Jacobians mix parameters on very
/// different scales). `None` if it is numerically singular.
pub fn inverse(a: &Array2<f64>) -> Option<Array2<f64>> {
    let p = a.nrows();
    if a.ncols() != p {
        return None;
    }
    let row_scale: Vec<f64> = (0..p)
        .map(|i| a.row(i).iter().fold(0.0f64, |m, v| m.max(v.abs())))
        .collect();
    if row_scale.iter().any(|&s| s == 0.0 || !s.is_finite()) {
        return None;
    }
    let mut m = a.to_owned();
    for i in 0..p {
        m.row_mut(i).mapv_inplace(|v| v / row_scale[i]);
    }
    let col_scale: Vec<f64> = (0..p)
        .map(|j| m.column(j).iter().fold(0.0f64, |acc, v| acc.max(v.abs())))
        .collect();
    if col_scale.contains(&0.0) {
        return None;
    }
    for j in 0..p {
        m.column_mut(j).mapv_inplace(|v| v / col_scale[j]);
    }
    let mut inv = Array2::<f64>::eye(p);
    for k in 0..p {
        let piv = (k..p).max_by(|&i, &j| m[[i, k]].abs().total_cmp(&m[[j, k]].abs()))?;
        if m[[piv, k]].abs() <= RANK_TOL {
            return None;
        }
        if piv != k {
            for j in 0..p {
                m.swap([k, j], [piv, j]);
                inv.swap([k, j], [piv, j]);
            }
        }
        let d = m[[k, k]];
        for j in 0..p {
            m[[k, j]] /= d;
            inv[[k, j]] /= d;
        }
        for i in 0..p {
            if i != k {
                let f = m[[i, k]];
                if f != 0.0 {
                    for j in 0..p {
                        m[[i, j]] -= f * m[[k, j]];
                        inv[[i, j]] -= f * inv[[k, j]];
                    }
                }
            }
        }
    }
    // (Dr A Dc)⁻¹ = Dc⁻¹ A⁻¹ Dr⁻¹, so A⁻¹ = Dc M⁻¹ Dr with Dr, Dc the inverse scales.
    for i in 0..p {
        for j in 0..p {
            inv[[i, j]] /= col_scale[i] * row_scale[j];
        }
    }
    Some(inv)
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi
/// rotations: slow for large matrices (O(p³) per sweep) but accurate to rounding for the
/// few hundred parameters of an information matrix, and free of LAPACK.
pub fn symmetric_eigen(a: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let p = a.nrows();
    let mut m = a.clone();
    let mut v = Array2::<f64>::eye(p);
    for _sweep in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[[i, j]] * m[[i, j]])
            .sum();
        let scale: f64 = m.iter().map(|x| x * x).sum();
        if off <= 1e-30 * scale || off == 0.0 {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = m[[i, j]];
                if aij == 0.0 {
                    continue;
                }
                let theta = (m[[j, j]] - m[[i, i]]) / (2.0 * aij);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..p {
                    let (mki, mkj) = (m[[k, i]], m[[k, j]]);
                    m[[k, i]] = c * mki - s * mkj;
                    m[[k, j]] = s * mki + c * mkj;
                }
                for k in 0..p {
                    let (mik, mjk) = (m[[i, k]], m[[j, k]]);
                    m[[i, k]] = c * mik - s * mjk;
                    m[[j, k]] = s * mik + c * mjk;
                }
                for k in 0..p {
                    let (vki, vkj) = (v[[k, i]], v[[k, j]]);
                    v[[k, i]] = c * vki - s * vkj;
                    v[[k, j]] = s * vki + c * vkj;
                }
            }
        }
    }
    (m.diag().to_owned(), v)
}

/// Moore–Penrose inverse of a symmetric positive semi-definite matrix, dropping
/// eigenvalues at or below `sqrt(ε)` times the largest (R's `MASS::ginv` rule).
pub fn pinv_psd(a: &Array2<f64>) -> Array2<f64> {
    let p = a.nrows();
    let (vals, vecs) = symmetric_eigen(a);
    let top = vals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let cut = f64::EPSILON.sqrt() * top;
    let mut out = Array2::<f64>::zeros((p, p));
    for (k, &l) in vals.iter().enumerate() {
        if l > cut {
            let col = vecs.column(k);
            for i in 0..p {
                let ci = col[i] / l;
                for j in 0..p {
                    out[[i, j]] += ci * col[j];
                }
            }
        }
    }
    out
}

/// Quantile of sorted values by linear interpolation (R's type 7, NumPy's default); NaN
/// for no values.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The standard normal quantile.
pub fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}

/// Solves the symmetric positive definite system `a x = b`, `a` row-major `k × k`, by
/// Cholesky in place (the factor overwrites `a`'s lower triangle, the solution `b`);
/// `None` if a pivot falls to 1e-12 of its diagonal (or of 1 for a small diagonal).
pub fn solve_spd_flat(a: &mut [f64], b: &mut [f64], k: usize) -> Option<Vec<f64>> {
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        if d <= 1e-12 * a[j * k + j].abs().max(1.0) {
            return None;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut v = a[i * k + j];
            for p in 0..j {
                v -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = v / d;
        }
    }
    for i in 0..k {
        let mut v = b[i];
        for p in 0..i {
            v -= a[i * k + p] * b[p];
        }
        b[i] = v / a[i * k + i];
    }
    for i in (0..k).rev() {
        let mut v = b[i];
        for p in i + 1..k {
            v -= a[p * k + i] * b[p];
        }
        b[i] = v / a[i * k + i];
    }
    Some(b.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn least_squares_recovers_an_exact_fit_on_badly_scaled_columns() {
        // y = 3 + 2e-4·x1 − 5e-9·x1²: columns span 1 to 1e10.
        let x1: Vec<f64> = (0..40).map(|i| 1_000.0 * i as f64 + 17.0).collect();
        let x = Array2::from_shape_fn((40, 3), |(i, j)| x1[i].powi(j as i32));
        let y = Array1::from_shape_fn(40, |i| 3.0 + 2e-4 * x1[i] - 5e-9 * x1[i] * x1[i]);
        let (b, _) = least_squares(x.view(), y.view()).unwrap();
        assert!((b[0] - 3.0).abs() < 1e-9);
        assert!((b[1] - 2e-4).abs() < 1e-15);
        assert!((b[2] + 5e-9).abs() < 1e-19);
    }

    #[test]
    fn collinear_columns_are_named() {
        let x = array![
            [1.0, 2.0, 4.0],
            [1.0, 3.0, 6.0],
            [1.0, 5.0, 10.0],
            [1.0, 7.0, 14.0]
        ];
        assert!(least_squares(x.view(), array![1.0, 2.0, 3.0, 4.0].view()).is_none());
        assert_eq!(collinear_column(x.view()), Some(2));
    }

    #[test]
    fn inverse_and_spd_solve_agree_with_known_results() {
        let a = array![[4.0, 2.0, 0.6], [2.0, 5.0, 1.0], [0.6, 1.0, 3.0]];
        let inv = inverse(&a).unwrap();
        let eye = a.dot(&inv);
        for i in 0..3 {
            for j in 0..3 {
                assert!((eye[[i, j]] - f64::from(i == j)).abs() < 1e-14);
            }
        }
        let x = solve_spd(&a, &array![1.0, 2.0, 3.0]).unwrap();
        let back = a.dot(&x);
        assert!((back[0] - 1.0).abs() < 1e-14 && (back[2] - 3.0).abs() < 1e-14);
        assert!(inverse(&array![[1.0, 2.0], [2.0, 4.0]]).is_none());
        assert!(cholesky(&array![[1.0, 2.0], [2.0, 1.0]]).is_none());
    }

    #[test]
    fn pseudo_inverse_of_a_singular_matrix_is_moore_penrose() {
        // Rank 2 in 3 dimensions: A A⁺ A = A and A⁺ A A⁺ = A⁺.
        let b = array![[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]];
        let a = b.dot(&b.t());
        let g = pinv_psd(&a);
        let r1 = a.dot(&g).dot(&a) - &a;
        let r2 = g.dot(&a).dot(&g) - &g;
        assert!(r1.iter().all(|v| v.abs() < 1e-10), "{r1}");
        assert!(r2.iter().all(|v| v.abs() < 1e-10), "{r2}");
        // Full rank: the inverse.
        let c = array![[4.0, 1.0], [1.0, 3.0]];
        let gi = pinv_psd(&c).dot(&c);
        assert!((gi - Array2::<f64>::eye(2)).iter().all(|v| v.abs() < 1e-12));
    }
}
