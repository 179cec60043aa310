//! The random baseline (METHOD.md step 3): `M_ij = 1/n2` within each group, so
//! `P(j|i) = 1/n2`, trace `1/n`, FOSCTTM 0.5. It is the floor every matcher must beat.

use crate::coupling::{Coupling, CouplingKind};
use crate::{Group, Metric};

/// The random coupling of a group.
pub fn random_coupling(group: &Group, metric: Metric) -> Coupling<'_> {
    Coupling::new(group, metric, CouplingKind::Random)
}
