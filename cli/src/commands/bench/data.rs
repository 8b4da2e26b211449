//! The random tensors `bench` projects: deterministic for a seed, the same logical values in C
//! and Fortran order, generated in parallel without depending on the number of threads.
//!
//! Every element is `u · s_g`: `u` uniform in [-1, 1) and `s_g` the scale of its innermost group
//! `g`. The scale is the product, over the levels above the innermost, of a factor uniform in
//! (0, 1] drawn for each node of the aggregate tree that contains the group (a row for the
//! bi-level l1,∞ spec; a slab and then a row of it for three levels). Equal scales would make
//! every group cross the threshold at the same radius, so the projection would zero all or none;
//! spread scales give the mix of zeroed, shrunk and untouched groups of real weight matrices.
//! For the bi-level l1,∞ spec on long rows, the group norms are then close to uniform on (0, 1],
//! and `--radius-frac F` zeroes about `1 − √F` of the rows.
//!
//! The numbers come from [`SplitMix64`] used as a counter-based generator: element `i` (its
//! index in C order) is the `i`-th output of the stream seeded with `key`
//! ([`SplitMix64::nth`]), so any chunk can be generated on its own.

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use rayon::prelude::*;

use multiproj_compiler::{Order, Plan};
use multiproj_runtime::Element;
use multiproj_runtime::rng::SplitMix64;

/// What the data is, in words, for reports.
pub const DISTRIBUTION: &str = "uniform(-1,1) × per-group scale (product of one uniform(0,1] \
    factor per enclosing aggregate node), splitmix64";

/// Elements generated per parallel task.
const CHUNK: usize = 1 << 16;

/// The `i`-th number of the stream seeded with `key`, uniform in [0, 1).
fn unit(key: u64, i: u64) -> f64 {
    SplitMix64::unit_f64(SplitMix64::nth(key, i))
}

/// The scale of every innermost group, indexed like the plan's groups (row-major over the
/// levels' axes, level by level).
pub fn group_scales(plan: &Plan, seed: u64) -> Vec<f64> {
    let key = SplitMix64::mix(seed ^ 0x5CA1_E5CA_1E5C_A1E5);
    let outer = &plan.levels()[..plan.levels().len() - 1];
    // Number of nodes of each outer level, and where that level's nodes start in the counter
    // space, so that every node of the tree draws its own number.
    let mut offsets = Vec::with_capacity(outer.len());
    let mut nodes = 1usize;
    let mut offset = 0u64;
    for level in outer {
        nodes *= level.extent;
        offsets.push(offset);
        offset = offset.wrapping_add(nodes as u64);
    }
    (0..plan.groups())
        .into_par_iter()
        .map(|g| {
            // Node index of `g`'s ancestor at each level, innermost outer level first.
            let mut scale = 1.0;
            let mut node = g;
            for (level, &off) in outer.iter().zip(&offsets).rev() {
                scale *= 1.0 - unit(key, off.wrapping_add(node as u64));
                node /= level.extent;
            }
            scale
        })
        .collect()
}

/// A dense tensor of the plan's shape in `order`, filled as the module describes.
pub fn generate<T: Element>(plan: &Plan, order: Order, seed: u64) -> ArrayD<T> {
    let shape = &plan.tensor().shape;
    let rank = shape.len();
    let n: usize = shape.iter().product();
    let scales = group_scales(plan, seed);
    let key = SplitMix64::mix(seed);

    // Axes from the outermost in memory to the innermost, and each axis's step of the C-order
    // index, which keys the values so that both orders hold the same tensor.
    let axes: Vec<usize> = match order {
        Order::F => (0..rank).rev().collect(),
        _ => (0..rank).collect(),
    };
    let mut c_strides = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        c_strides[a] = c_strides[a + 1] * shape[a + 1];
    }
    let group_strides = &plan.group_strides();

    let mut data = vec![T::zero(); n];
    data.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            // The multi-index (by memory position) of the chunk's first element.
            let mut idx = vec![0usize; rank];
            let mut rest = c * CHUNK;
            for &a in axes.iter().rev() {
                idx[a] = rest % shape[a];
                rest /= shape[a];
            }
            let mut g: usize = (0..rank).map(|a| idx[a] * group_strides[a]).sum();
            let mut lin: usize = (0..rank).map(|a| idx[a] * c_strides[a]).sum();
            for out in chunk.iter_mut() {
                let u = 2.0 * unit(key, lin as u64) - 1.0;
                *out = T::from_f64(u * scales[g]);
                // Step the odometer in memory order, keeping the group and C index in step.
                for &a in axes.iter().rev() {
                    idx[a] += 1;
                    if idx[a] < shape[a] {
                        g += group_strides[a];
                        lin += c_strides[a];
                        break;
                    }
                    idx[a] = 0;
                    g -= group_strides[a] * (shape[a] - 1);
                    lin -= c_strides[a] * (shape[a] - 1);
                }
            }
        });
    let dim = IxDyn(shape);
    let array = match order {
        Order::F => ArrayD::from_shape_vec(dim.f(), data),
        _ => ArrayD::from_shape_vec(dim, data),
    };
    // The vector was sized from the shape just above.
    array.expect("the data fills the shape exactly")
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiproj_compiler::{DType, TensorInfo};

    fn plan(spec: &str, shape: &[usize], order: Order) -> Plan {
        let spec = multiproj_grammar::parse(spec).unwrap();
        let tensor = TensorInfo::with_order(shape, DType::F64, order);
        multiproj_compiler::plan(&multiproj_compiler::check(&spec, &tensor).unwrap())
    }

    #[test]
    fn same_values_in_both_orders_and_deterministic() {
        let spec = "l1 over dim0 of linf over dim1 of l2 over dim2";
        let c = generate::<f64>(&plan(spec, &[5, 4, 3], Order::C), Order::C, 7);
        let f = generate::<f64>(&plan(spec, &[5, 4, 3], Order::F), Order::F, 7);
        assert!(c.is_standard_layout());
        assert!(f.t().is_standard_layout());
        assert_eq!(c, f);
        assert_eq!(
            c,
            generate::<f64>(&plan(spec, &[5, 4, 3], Order::C), Order::C, 7)
        );
        assert_ne!(
            c,
            generate::<f64>(&plan(spec, &[5, 4, 3], Order::C), Order::C, 8)
        );
    }

    #[test]
    fn values_are_bounded_by_their_group_scale() {
        let p = plan("l1 over dim1 of linf over dim0", &[300, 70], Order::C);
        let x = generate::<f32>(&p, Order::C, 1);
        let scales = group_scales(&p, 1);
        assert_eq!(scales.len(), 70);
        assert!(scales.iter().all(|&s| s > 0.0 && s <= 1.0));
        for ((_, j), &v) in x
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .indexed_iter()
        {
            assert!(f64::from(v).abs() <= scales[j] + 1e-6);
        }
        // Spread: neither all near 0 nor all near 1.
        let mean = scales.iter().sum::<f64>() / 70.0;
        assert!((0.3..0.7).contains(&mean), "{mean}");
    }

    #[test]
    fn uniform_values() {
        let p = plan("l1 over dims0..", &[100_000], Order::C);
        let x = generate::<f64>(&p, Order::C, 3);
        let mean = x.iter().sum::<f64>() / 1e5;
        let below = x.iter().filter(|&&v| v < -0.5).count() as f64 / 1e5;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((below - 0.25).abs() < 0.01, "{below}");
        assert!(x.iter().all(|&v| (-1.0..1.0).contains(&v)));
    }
}
