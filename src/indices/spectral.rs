//! Spectral indices of burn and vegetation, pixel by pixel, with invalid pixels (masked, no
//! data, zero denominators) propagated as NaN. Inputs are surface reflectances on one grid.

/// (a - b) / (a + b); NaN where either is invalid or the sum is zero.
fn normalized_difference(a: &[f32], b: &[f32], valid: &[bool]) -> Vec<f32> {
    a.iter()
        .zip(b)
        .zip(valid)
        .map(|((&a, &b), &ok)| {
            let sum = a + b;
            if ok && a.is_finite() && b.is_finite() && sum != 0.0 { (a - b) / sum } else { f32::NAN }
        })
        .collect()
}

/// Normalized Burn Ratio, NBR = (NIR - SWIR2) / (NIR + SWIR2), with NIR = B8 (or B8A) and
/// SWIR2 = B12 (Key & Benson 2006, FIREMON Landscape Assessment).
pub fn nbr(nir: &[f32], swir2: &[f32], valid: &[bool]) -> Vec<f32> {
    normalized_difference(nir, swir2, valid)
}

/// NDVI = (NIR - red) / (NIR + red).
pub fn ndvi(nir: &[f32], red: &[f32], valid: &[bool]) -> Vec<f32> {
    normalized_difference(nir, red, valid)
}

/// dNBR = NBR_pre - NBR_post (positive where vegetation burned).
pub fn dnbr(nbr_pre: &[f32], nbr_post: &[f32]) -> Vec<f32> {
    nbr_pre.iter().zip(nbr_post).map(|(a, b)| a - b).collect()
}

/// Smallest |NBR_pre| used as the RdNBR denominator: the relative index is undefined where the
/// pre-fire NBR is 0 (bare ground), so it is floored here as in Miller & Thode (2007) practice.
pub const RDNBR_MIN_ABS_NBR_PRE: f32 = 0.001;

/// Relativized dNBR, RdNBR = dNBR / sqrt(|NBR_pre|) (Miller & Thode 2007), with |NBR_pre| floored
/// at [`RDNBR_MIN_ABS_NBR_PRE`].
pub fn rdnbr(nbr_pre: &[f32], dnbr: &[f32]) -> Vec<f32> {
    nbr_pre
        .iter()
        .zip(dnbr)
        .map(|(p, d)| if p.is_finite() { d / p.abs().max(RDNBR_MIN_ABS_NBR_PRE).sqrt() } else { f32::NAN })
        .collect()
}

/// Relativized Burn Ratio, RBR = dNBR / (NBR_pre + 1.001) (Parks, Dillon & Miller 2014).
pub fn rbr(nbr_pre: &[f32], dnbr: &[f32]) -> Vec<f32> {
    nbr_pre.iter().zip(dnbr).map(|(p, d)| d / (p + 1.001)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nbr_of_known_reflectances_and_masks() {
        let v = nbr(&[0.4, 0.2, 0.3, 0.0], &[0.1, 0.2, 0.1, 0.0], &[true, true, false, true]);
        assert!((v[0] - 0.6).abs() < 1e-6);
        assert_eq!(v[1], 0.0);
        assert!(v[2].is_nan(), "masked pixel");
        assert!(v[3].is_nan(), "zero denominator");
    }

    #[test]
    fn relativized_indices() {
        let pre = [0.64, 0.0, -0.3];
        let d = dnbr(&pre, &[0.1, -0.2, -0.3]);
        assert!((d[0] - 0.54).abs() < 1e-6);
        let r = rdnbr(&pre, &d);
        assert!((r[0] - 0.54 / 0.8).abs() < 1e-6);
        assert!((r[1] - 0.2 / 0.001f32.sqrt()).abs() < 1e-3, "floored denominator");
        let b = rbr(&pre, &d);
        assert!((b[0] - 0.54 / 1.641).abs() < 1e-6);
        assert!(rdnbr(&[f32::NAN], &[0.3])[0].is_nan());
    }
}
