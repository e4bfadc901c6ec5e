//! Evaluation: exact average precision and summary statistics.

/// Average precision: the area under the precision-recall curve, computed exactly by
/// sorting the scores (descending) and summing precision times the recall gained at each
/// distinct score (tied scores form one threshold, as scikit-learn's
/// `average_precision_score` does). `positive[i]` is the clean label of `scores[i]`.
pub fn average_precision(scores: &[f32], positive: &[bool]) -> f64 {
    let total = positive.iter().filter(|&&p| p).count();
    if total == 0 {
        return 0.0;
    }
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
    let (mut seen, mut hits, mut ap) = (0usize, 0usize, 0.0f64);
    let mut i = 0;
    while i < order.len() {
        let score = scores[order[i] as usize];
        let before = hits;
        while i < order.len() && scores[order[i] as usize] == score {
            hits += usize::from(positive[order[i] as usize]);
            seen += 1;
            i += 1;
        }
        ap += (hits - before) as f64 / total as f64 * (hits as f64 / seen as f64);
    }
    ap
}

/// Mean and (min, max) of a sample.
pub fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ap_by_hand() {
        // ranks: P N P -> (1/1 + 2/3) / 2
        let ap = average_precision(&[0.9, 0.5, 0.1], &[true, false, true]);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // a tie of one positive and one negative counts as one threshold with precision 1/2
        let ap = average_precision(&[0.5, 0.5], &[true, false]);
        assert!((ap - 0.5).abs() < 1e-12);
    }
}
