//! A tiny seeded generator (SplitMix64) for fault decisions: reproducible
//! from its seed alone, with no dependency to pin.

#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for one rule: `seed` mixed with the rule's id, so rules
    /// created in the same order under the same seed decide alike, and two
    /// rules never share a sequence.
    pub(crate) fn for_rule(seed: u64, rule_id: u64) -> Self {
        let mut mixer = Rng(seed ^ rule_id.wrapping_mul(0xA076_1D64_78BD_642F));
        Rng(mixer.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        let high = u32::try_from(self.next_u64() >> 32).unwrap_or(u32::MAX);
        f64::from(high) / 4_294_967_296.0 < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let a: Vec<bool> = {
            let mut r = Rng::new(42);
            (0..64).map(|_| r.chance(0.5)).collect()
        };
        let b: Vec<bool> = {
            let mut r = Rng::new(42);
            (0..64).map(|_| r.chance(0.5)).collect()
        };
        assert_eq!(a, b);
        let mut other = Rng::new(43);
        let c: Vec<bool> = (0..64).map(|_| other.chance(0.5)).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn chance_is_roughly_right_and_bounded() {
        let mut r = Rng::new(7);
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
        assert!((0..1000).all(|_| r.chance(1.0)));
        assert!((0..1000).all(|_| !r.chance(0.0)));
    }

    #[test]
    fn rules_get_distinct_sequences() {
        assert_ne!(
            Rng::for_rule(1, 1).next_u64(),
            Rng::for_rule(1, 2).next_u64()
        );
        assert_eq!(
            Rng::for_rule(1, 2).next_u64(),
            Rng::for_rule(1, 2).next_u64()
        );
    }
}
