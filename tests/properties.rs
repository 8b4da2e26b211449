//! Property tests of the semantics (`docs/SEMANTICS.md`) on random specs: 1–4 levels with random norms and
//! axis sets over random shapes of rank 1–4 (extents 1–7), spelled in every syntax form, on C-
//! and F-order, f64, f32, f16 and bf16 data, with radii inside and outside the ball.
//!
//! Reference results are computed here, independently of `multiproj-runtime`'s ball code: a
//! sort-based l1 projection, the exact group-lasso projection, clipping and l2 scaling.
//!
//! Rounding bounds used throughout, for `n` elements, input `Y` with multi-level norm `‖Y‖`:
//! - `slack = n·ε·(max|Y| + ‖Y‖)` (ε = f64::EPSILON): the absolute error of summing `n` terms
//!   of size at most `max|Y|` (innermost) or `‖Y‖` (aggregates). Thresholds are differences of
//!   such sums, so a tiny radius on large data is only accurate to this much.
//! - In the ball: `‖X‖ ≤ R·(1 + 1e-12) + slack` for f64, `‖X‖ ≤ R·(1 + rtol) + slack` for the
//!   narrower types, `rtol` a few of their ulps (1e-6 for f32, 2e-3 for f16, 1.6e-2 for bf16:
//!   rounding each entry scales it by at most `1 + u`, and every multi-level norm is monotone in
//!   the magnitudes). The exact test (`in_the_ball_exactly`) has no tolerance at all.
//! - "Equal within 1e-12": `|got − expected| ≤ 1e-12·|expected| + slack` element-wise (1e-6
//!   relative for f32, and so on, whose results are rounded once from f64; plus an ulp of `max|Y|`,
//!   by which fitting the rounded results into the ball may move a soft threshold).

mod common;

use std::fmt::Write as _;
use std::ops::RangeInclusive;

use multiproj::runtime::float16;
use multiproj::runtime::rng::SplitMix64;
use multiproj::{Backend, DType, Norm, Projection, half};
use ndarray::{ArrayBase, ArrayD, ArrayViewD, IxDyn, RawData, ShapeBuilder, Slice};
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::TestCaseError;

use common::{Float, compare_bits, compare_close, has_order, max_abs};

/// One random problem: a shape, a partition of its axes into levels, data, layout, dtype, and
/// the radius as a fraction of the data's multi-level norm.
#[derive(Clone, Debug)]
struct Case {
    shape: Vec<usize>,
    /// Axis sets of the levels, outermost first, each in the order it is written.
    parts: Vec<Vec<usize>>,
    /// Values in logical row-major order.
    data: Vec<f64>,
    fortran: bool,
    dtype: DType,
    /// The radius is `frac · ‖Y‖`: 0, inside (≥ 1) or outside (< 1) the ball.
    frac: f64,
    /// Chooses among the spellings of axis clauses and white space.
    style: u64,
}

impl Case {
    fn rank(&self) -> usize {
        self.shape.len()
    }

    fn order(&self) -> &'static str {
        if self.fortran { "F" } else { "C" }
    }

    /// The spec with these norms, one per level (extra norms are ignored).
    fn spec(&self, norms: &[Norm]) -> String {
        let levels: Vec<(Norm, &[usize])> = norms
            .iter()
            .zip(&self.parts)
            .map(|(&n, axes)| (n, axes.as_slice()))
            .collect();
        spell(&levels, self.rank(), self.style)
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // A failure prints its shrunk case; integration tests have no `lib.rs` for proptest
        // to file regressions next to.
        failure_persistence: None,
        ..ProptestConfig::with_cases(128)
    }
}

fn norm() -> impl Strategy<Value = Norm> {
    prop_oneof![Just(Norm::L1), Just(Norm::L2), Just(Norm::Linf)]
}

fn norms() -> impl Strategy<Value = Vec<Norm>> {
    prop::collection::vec(norm(), 4)
}

/// Mostly uniform values, with exact zeros and repeated values for ties.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -10.0f64..10.0,
        1 => Just(0.0),
        1 => prop::sample::select(vec![-2.5, 2.5, 4.0]),
    ]
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        3 => Just(DType::F64),
        3 => Just(DType::F32),
        1 => Just(DType::F16),
        1 => Just(DType::BF16),
    ]
}

fn radius_fraction() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => Just(0.0),
        6 => 0.01f64..1.0,
        1 => Just(1.0),
        2 => 1.0f64..3.0,
    ]
}

/// An ordered partition of `0..rank` into between `levels.start()` and `levels.end()`
/// (at most `rank`) non-empty parts, axes shuffled.
fn partition(rank: usize, levels: RangeInclusive<usize>) -> impl Strategy<Value = Vec<Vec<usize>>> {
    let lo = *levels.start();
    let hi = (*levels.end()).min(rank);
    assert!(
        1 <= lo && lo <= hi,
        "cannot cut rank {rank} into {levels:?} levels"
    );
    (
        lo..=hi,
        Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
    )
        .prop_flat_map(move |(k, perm)| {
            (
                Just(perm),
                subsequence((1..rank).collect::<Vec<_>>(), k - 1),
            )
        })
        .prop_map(|(perm, cuts)| {
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(perm.len());
            bounds
                .windows(2)
                .map(|w| perm[w[0]..w[1]].to_vec())
                .collect()
        })
}

fn cases(
    ranks: RangeInclusive<usize>,
    levels: RangeInclusive<usize>,
) -> impl Strategy<Value = Case> {
    prop::collection::vec(1usize..=7, ranks)
        .prop_flat_map(move |shape| {
            let rank = shape.len();
            let n: usize = shape.iter().product();
            (
                Just(shape),
                partition(rank, levels.clone()),
                prop::collection::vec(value(), n),
                any::<bool>(),
                dtype(),
                radius_fraction(),
                any::<u64>(),
            )
        })
        .prop_map(|(shape, parts, data, fortran, dtype, frac, style)| Case {
            shape,
            parts,
            data,
            fortran,
            dtype,
            frac,
            style,
        })
}

/// The spelling choices, reproducible from `Case::style` (the seed of a [`SplitMix64`]).
struct Choices(SplitMix64);

impl Choices {
    fn pick(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }

    fn space(&mut self) -> &'static str {
        [" ", " ", "  ", "\t", "\n  "][self.pick(5)]
    }
}

/// One of the spellings of an axis set that the grammar accepts and that means exactly `axes`.
fn axes_clause(axes: &[usize], rank: usize, ch: &mut Choices) -> String {
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    let mut forms = Vec::new();
    if axes.len() == 1 {
        forms.push(format!("dim{lo}"));
        forms.push(format!("dim {lo}"));
    } else {
        let sep = [",", " , ", ", "][ch.pick(3)];
        let list: Vec<String> = axes.iter().map(usize::to_string).collect();
        forms.push(format!("dims {}", list.join(sep)));
        forms.push(format!("dims{}", list.join(",")));
    }
    if hi - lo + 1 == axes.len() {
        forms.push(format!("dims{lo}..{hi}"));
        forms.push(format!("dims {lo} .. {hi}"));
        if hi == rank - 1 {
            forms.push(format!("dims {lo}.."));
        }
    }
    forms.swap_remove(ch.pick(forms.len()))
}

fn spell(levels: &[(Norm, &[usize])], rank: usize, style: u64) -> String {
    let mut ch = Choices(SplitMix64::new(style));
    let mut out = String::new();
    for (i, (norm, axes)) in levels.iter().enumerate() {
        if i > 0 {
            let (a, b) = (ch.space(), ch.space());
            let _ = write!(out, "{a}of{b}");
        }
        let (a, b) = (ch.space(), ch.space());
        let _ = write!(out, "{norm}{a}over{b}{}", axes_clause(axes, rank, &mut ch));
    }
    out
}

/// The case's data as an array of `T`, in the case's memory order. For f16, whose largest
/// value is 65504, larger magnitudes are clamped to it instead of becoming ±∞.
fn build<T: Float>(c: &Case) -> ArrayD<T> {
    let max = match T::DTYPE {
        DType::F16 => 65504.0,
        _ => f64::MAX,
    };
    let values: Vec<T> = c
        .data
        .iter()
        .map(|&v| T::from_f64(v.clamp(-max, max)))
        .collect();
    let shape = IxDyn(&c.shape);
    let x = if c.fortran {
        ArrayD::from_shape_vec(shape.f(), values)
    } else {
        ArrayD::from_shape_vec(shape, values)
    };
    x.expect("the data has as many values as the shape")
}

/// Turns a library error into a test failure that names the spec.
fn lib<T>(spec: &str, what: &str, r: Result<T, multiproj::Error>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("`{spec}`: {what} failed: {e}")))
}

fn compared(spec: &str, what: &str, r: Result<(), String>) -> Result<(), TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("`{spec}`: {what}: {e}")))
}

/// A compiled spec, the data, its norm and the radius `frac · norm`.
struct Setup<T> {
    spec: String,
    x: ArrayD<T>,
    proj: Projection,
    norm: f64,
    radius: f64,
}

impl<T: Float> Setup<T> {
    fn new(c: &Case, spec: String) -> Result<Self, TestCaseError> {
        let x = build::<T>(c);
        Self::with_radius(c, spec, x, None)
    }

    /// With `radius` (or `frac · norm` when `None`).
    fn with_radius(
        c: &Case,
        spec: String,
        x: ArrayD<T>,
        radius: Option<f64>,
    ) -> Result<Self, TestCaseError> {
        let proj = lib(&spec, "compile", Projection::compile(&spec))?;
        let norm = lib(&spec, "norm", proj.norm(&x))?;
        let radius = radius.unwrap_or(c.frac * norm);
        let proj = lib(&spec, "with_radius", proj.with_radius(radius))?;
        Ok(Setup {
            spec,
            x,
            proj,
            norm,
            radius,
        })
    }

    fn project(&self, y: &ArrayViewD<'_, T>) -> Result<ArrayD<T>, TestCaseError> {
        lib(&self.spec, "project", self.proj.project(y))
    }

    fn slack(&self) -> f64 {
        let max = max_abs(&self.x.view());
        // f32 and narrower: an l1 threshold is raised until the rounded results fit the ball,
        // which moves every entry by up to about an ulp of the largest one.
        let ulp = if T::DTYPE == DType::F64 {
            0.0
        } else {
            2.0 * T::DTYPE.unit_roundoff() * max
        };
        self.x.len() as f64 * f64::EPSILON * (max + self.norm) + ulp
    }

    /// A few ulps of the type: results are rounded once from f64.
    fn rtol(&self) -> f64 {
        multiproj::runtime::verify::rtol(T::DTYPE)
    }
}

fn in_ball_identity_in_place<T: Float>(c: &Case, spec: String) -> Result<(), TestCaseError> {
    let s = Setup::<T>::new(c, spec)?;
    let out = s.project(&s.x.view())?;
    prop_assert!(
        has_order(&out.view(), c.order()),
        "`{}`: a {}-order input gave an output with strides {:?}",
        s.spec,
        c.order(),
        out.strides()
    );
    let after = lib(&s.spec, "norm of the result", s.proj.norm(&out))?;
    let bound = s.radius * (1.0 + s.rtol()) + s.slack();
    prop_assert!(
        after <= bound,
        "`{}` ({}): radius {:e}, norm before {:e}, norm after {after:e} > bound {bound:e}",
        s.spec,
        T::NAME,
        s.radius,
        s.norm
    );
    if s.radius >= s.norm {
        compared(
            &s.spec,
            "inside the ball, the identity",
            compare_bits(&out.view(), &s.x.view()),
        )?;
    }
    let mut y = s.x.clone();
    lib(&s.spec, "project_in_place", s.proj.project_in_place(&mut y))?;
    compared(
        &s.spec,
        "in place vs out of place",
        compare_bits(&y.view(), &out.view()),
    )
}

fn idempotent(c: &Case, spec: String) -> Result<(), TestCaseError> {
    let s = Setup::<f64>::new(c, spec)?;
    let once = s.project(&s.x.view())?;
    let twice = s.project(&once.view())?;
    compared(
        &s.spec,
        "project(project(x)) vs project(x)",
        compare_close(&twice.view(), &once.view(), 1e-12, s.slack()),
    )
}

/// How to lay a tensor out in a bigger buffer: every other element along `step` (in buffer
/// axes), `reversed` buffer axes, then the buffer's axes permuted by `perm`.
#[derive(Clone, Debug)]
struct Strided {
    step: Option<usize>,
    reversed: Vec<bool>,
    perm: Vec<usize>,
}

fn strided_layouts(rank: usize) -> impl Strategy<Value = Strided> {
    (
        prop::option::of(0..rank),
        prop::collection::vec(any::<bool>(), rank),
        Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
    )
        .prop_map(|(step, reversed, perm)| Strided {
            step,
            reversed,
            perm,
        })
}

impl Strided {
    /// The view of `buffer` this layout describes.
    fn carve<S: RawData>(&self, mut buffer: ArrayBase<S, IxDyn>) -> ArrayBase<S, IxDyn> {
        buffer.slice_each_axis_inplace(|ax| {
            let j = ax.axis.index();
            let step = if self.step == Some(j) { 2 } else { 1 };
            Slice::new(0, None, if self.reversed[j] { -step } else { step })
        });
        buffer.permuted_axes(IxDyn(&self.perm))
    }

    /// A buffer whose carved view has logical shape `shape`, filled with NaN.
    fn buffer<T: Float>(&self, shape: &[usize]) -> ArrayD<T> {
        let mut dims = vec![0; shape.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            dims[p] = shape[i];
        }
        if let Some(j) = self.step {
            dims[j] *= 2;
        }
        ArrayD::from_elem(IxDyn(&dims), T::from_f64(f64::NAN))
    }
}

fn strided_matches_dense<T: Float>(
    c: &Case,
    layout: &Strided,
    norms: &[Norm],
) -> Result<(), TestCaseError> {
    let spec = c.spec(norms);
    let dense = build::<T>(c);
    // The data goes into a NaN-filled buffer: reading outside the view is an error.
    let mut buffer = layout.buffer::<T>(&c.shape);
    layout.carve(buffer.view_mut()).assign(&dense);
    let view = layout.carve(buffer.view());
    prop_assert_eq!(view.shape(), c.shape.as_slice());
    let copy = ArrayD::from_shape_vec(IxDyn(&c.shape), view.iter().copied().collect())
        .expect("as many values as the shape");
    let s = Setup::with_radius(c, spec, copy, None)?;

    let from_view = s.project(&view)?;
    let from_copy = s.project(&s.x.view())?;
    // Only sums depend on the order of the reduce pass; a linf innermost level only takes
    // maxima there, and everything above works on aggregates in group order.
    let innermost = norms[c.parts.len() - 1];
    let what = format!("strided view {layout:?} vs its standard-layout copy");
    if innermost == Norm::Linf {
        compared(
            &s.spec,
            &what,
            compare_bits(&from_view.view(), &from_copy.view()),
        )?;
    } else {
        compared(
            &s.spec,
            &what,
            compare_close(&from_view.view(), &from_copy.view(), s.rtol(), s.slack()),
        )?;
    }

    let mut in_place = layout.carve(buffer.view_mut());
    lib(
        &s.spec,
        "project_in_place on a strided view",
        s.proj.project_in_place(&mut in_place),
    )?;
    compared(
        &s.spec,
        "in place vs out of place on a strided view",
        compare_bits(&in_place.view(), &from_view.view()),
    )?;
    let untouched = buffer.iter().filter(|v| v.to_f64().is_nan()).count();
    prop_assert_eq!(
        untouched,
        buffer.len() - c.data.len(),
        "`{}`: in place wrote outside the strided view",
        s.spec
    );
    Ok(())
}

/// The Euclidean projection onto the l1 ball by sorting magnitudes (Held, Wolfe & Crowder).
fn l1_ball_by_sorting(y: &[f64], r: f64) -> Vec<f64> {
    let total: f64 = y.iter().map(|v| v.abs()).sum();
    if total <= r {
        return y.to_vec();
    }
    if r == 0.0 {
        return vec![0.0; y.len()];
    }
    let mut u: Vec<f64> = y.iter().map(|v| v.abs()).collect();
    u.sort_by(|a, b| b.total_cmp(a));
    let (mut sum, mut tau) = (0.0, 0.0);
    for (j, &uj) in u.iter().enumerate() {
        sum += uj;
        let t = (sum - r) / (j + 1) as f64;
        if uj > t {
            tau = t;
        } else {
            break;
        }
    }
    y.iter()
        .map(|&v| (v.abs() - tau).max(0.0).copysign(v))
        .collect()
}

fn l1_matches_sorting<T: Float>(c: &Case) -> Result<(), TestCaseError> {
    let s = Setup::<T>::new(c, c.spec(&[Norm::L1]))?;
    let out = s.project(&s.x.view())?;
    let y: Vec<f64> = s.x.iter().map(|v| v.to_f64()).collect();
    let expected: Vec<T> = l1_ball_by_sorting(&y, s.radius)
        .into_iter()
        .map(T::from_f64)
        .collect();
    let expected = ArrayD::from_shape_vec(IxDyn(&c.shape), expected).expect("same length");
    compared(
        &s.spec,
        &format!("vs the sort-based l1 projection, radius {:e}", s.radius),
        compare_close(&out.view(), &expected.view(), s.rtol(), s.slack()),
    )
}

/// The exact projection onto the group-lasso ball `Σ_g ‖y_g‖₂ ≤ r`: soft-threshold the group
/// norms by λ with `Σ max(‖y_g‖ − λ, 0) = r` (found by sorting), scale each group accordingly.
fn group_lasso(groups: &[Vec<f64>], r: f64) -> Vec<Vec<f64>> {
    let norms: Vec<f64> = groups
        .iter()
        .map(|g| g.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    if norms.iter().sum::<f64>() <= r {
        return groups.to_vec();
    }
    if r == 0.0 {
        return groups.iter().map(|g| vec![0.0; g.len()]).collect();
    }
    let mut sorted = norms.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let (mut sum, mut lambda) = (0.0, 0.0);
    for (j, &n) in sorted.iter().enumerate() {
        sum += n;
        let t = (sum - r) / (j + 1) as f64;
        if n > t {
            lambda = t;
        } else {
            break;
        }
    }
    groups
        .iter()
        .zip(&norms)
        .map(|(g, &n)| {
            let scale = if n > 0.0 {
                (n - lambda).max(0.0) / n
            } else {
                0.0
            };
            g.iter().map(|v| v * scale).collect()
        })
        .collect()
}

fn l1_of_l2_is_group_lasso<T: Float>(c: &Case) -> Result<(), TestCaseError> {
    let s = Setup::<T>::new(c, c.spec(&[Norm::L1, Norm::L2]))?;
    let out = s.project(&s.x.view())?;
    // With the outer axes first, logical order walks one group after another.
    let order: Vec<usize> = c.parts.concat();
    let inner: usize = c.parts[1].iter().map(|&a| c.shape[a]).product();
    let x = s.x.view().permuted_axes(IxDyn(&order));
    let values: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
    let groups: Vec<Vec<f64>> = values.chunks(inner).map(<[f64]>::to_vec).collect();
    let expected: Vec<T> = group_lasso(&groups, s.radius)
        .concat()
        .into_iter()
        .map(T::from_f64)
        .collect();
    let expected = ArrayD::from_shape_vec(x.raw_dim(), expected).expect("same length");
    let got = out.view().permuted_axes(IxDyn(&order));
    compared(
        &s.spec,
        &format!("vs the exact group-lasso projection, radius {:e}", s.radius),
        compare_close(&got, &expected.view(), s.rtol(), s.slack()),
    )
}

/// One level of `norm` over the union of the case's parts, in one of its spellings.
fn union_spec(c: &Case, norm: Norm) -> String {
    let all: Vec<usize> = c.parts.concat();
    spell(&[(norm, &all)], c.rank(), c.style.rotate_left(7))
}

fn linf_of_linf_is_one_linf<T: Float>(c: &Case) -> Result<(), TestCaseError> {
    let two = Setup::<T>::new(c, c.spec(&[Norm::Linf, Norm::Linf]))?;
    let one = Setup::with_radius(
        c,
        union_spec(c, Norm::Linf),
        two.x.clone(),
        Some(two.radius),
    )?;
    let a = two.project(&two.x.view())?;
    let b = one.project(&one.x.view())?;
    compared(
        &two.spec,
        &format!("vs `{}`", one.spec),
        compare_bits(&a.view(), &b.view()),
    )?;
    let r = two.radius;
    // The bound is the radius rounded toward zero to the element type, so that the clipped
    // values stay inside the ball.
    let bound = match T::DTYPE {
        DType::F64 => r,
        DType::F32 => {
            let b = r as f32;
            f64::from(if f64::from(b) > r { b.next_down() } else { b })
        }
        DType::F16 => float16::F16.toward_zero(r),
        DType::BF16 => float16::BF16.toward_zero(r),
    };
    // Radius 0 zero-fills (+0.0), where clamping would keep the sign of negative entries.
    let clipped = two.x.mapv(|v| {
        let y = v.to_f64();
        if y.abs() <= r {
            v
        } else if bound == 0.0 {
            T::zero()
        } else {
            T::from_f64(y.clamp(-bound, bound))
        }
    });
    compared(
        &two.spec,
        &format!("vs clipping to [-{r:e}, {r:e}]"),
        compare_bits(&a.view(), &clipped.view()),
    )
}

fn l2_of_l2_is_one_l2<T: Float>(c: &Case) -> Result<(), TestCaseError> {
    let two = Setup::<T>::new(c, c.spec(&[Norm::L2, Norm::L2]))?;
    let one = Setup::with_radius(c, union_spec(c, Norm::L2), two.x.clone(), Some(two.radius))?;
    let a = two.project(&two.x.view())?;
    let b = one.project(&one.x.view())?;
    compared(
        &two.spec,
        &format!("vs `{}`", one.spec),
        compare_close(&a.view(), &b.view(), two.rtol(), two.slack()),
    )?;
    let total = two.x.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt();
    let factor = if total > two.radius {
        two.radius / total
    } else {
        1.0
    };
    let scaled = two.x.mapv(|v| T::from_f64(v.to_f64() * factor));
    compared(
        &two.spec,
        &format!("vs scaling by {factor:e}"),
        compare_close(&a.view(), &scaled.view(), two.rtol(), two.slack()),
    )
}

fn radius_zero_gives_zeros<T: Float>(c: &Case, spec: String) -> Result<(), TestCaseError> {
    let s = Setup::<T>::with_radius(c, spec, build::<T>(c), Some(0.0))?;
    let out = s.project(&s.x.view())?;
    let nonzero = out.iter().filter(|v| v.to_f64() != 0.0).count();
    prop_assert_eq!(
        nonzero,
        0,
        "`{}` with radius 0 left non-zero entries",
        s.spec
    );
    let mut y = s.x.clone();
    lib(&s.spec, "project_in_place", s.proj.project_in_place(&mut y))?;
    let nonzero = y.iter().filter(|v| v.to_f64() != 0.0).count();
    prop_assert_eq!(
        nonzero,
        0,
        "`{}` in place with radius 0 left non-zero entries",
        s.spec
    );
    Ok(())
}

/// Projection commutes with scaling by `c = 2^k`: `P(c·Y, c·R) = c·P(Y, R)`. Multiplying by a
/// power of two is exact, so this pins down that nothing in the pipeline overflows, underflows
/// or depends on an absolute scale.
fn scaling_covariant(c: &Case, spec: String, k: i32) -> Result<(), TestCaseError> {
    let scale = 2f64.powi(k);
    let s = Setup::<f64>::new(c, spec.clone())?;
    let scaled = Setup::with_radius(c, spec, s.x.mapv(|v| v * scale), Some(s.radius * scale))?;
    let expected = s.project(&s.x.view())?.mapv(|v| v * scale);
    let got = scaled.project(&scaled.x.view())?;
    compared(
        &s.spec,
        &format!("P(2^{k}·Y, 2^{k}·R) vs 2^{k}·P(Y, R), R = {:e}", s.radius),
        compare_close(&got.view(), &expected.view(), 1e-12, s.slack() * scale),
    )
}

/// The same near the top of the f64 range: `2^k·Y` with entries up to about `f64::MAX`, whose
/// sums overflow (several entries of that size in a group or a level). Norms beyond `f64::MAX`
/// are computed scaled by a power of two, so the projection still commutes with the scaling.
/// The radius is the case's fraction of the scaled norm, or of `f64::MAX` when that norm
/// overflows.
fn scaling_to_the_top(c: &Case, spec: String, below: i32) -> Result<(), TestCaseError> {
    let x = build::<f64>(c);
    let max = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    prop_assume!(max > 0.0);
    // The largest entry lands within a factor 2^(below+1) of f64::MAX. (`2^k` itself may not
    // be a finite f64: scale in two steps.)
    let k = f64::MAX_EXP - 1 - max.log2().ceil() as i32 - below;
    let times_2k = |v: f64| v * 2f64.powi(k / 2) * 2f64.powi(k - k / 2);
    let proj = lib(&spec, "compile", Projection::compile(&spec))?;
    let norm = lib(&spec, "norm", proj.norm(&x))?;
    let top = if times_2k(norm).is_finite() {
        times_2k(norm)
    } else {
        f64::MAX
    };
    let radius = c.frac.min(1.5) * top;
    prop_assume!(radius.is_finite());
    // 2^k·P(Y, R/2^k), computed where nothing overflows.
    let unscaled = radius * 2f64.powi(-(k / 2)) * 2f64.powi(-(k - k / 2));
    let s = Setup::with_radius(c, spec.clone(), x.clone(), Some(unscaled))?;
    let expected = s.project(&s.x.view())?.mapv(times_2k);
    let y = x.mapv(times_2k);
    for (backend, name) in [(Backend::Jit, "jit"), (Backend::Interp, "interp")] {
        let proj = lib(&spec, "compile", Projection::compile(&spec))?;
        let proj = lib(&spec, "with_radius", proj.with_radius(radius))?.with_backend(backend);
        let got = lib(&spec, "project", proj.project(&y))?;
        compared(
            &s.spec,
            &format!("{name}: P(2^{k}·Y, R) vs 2^{k}·P(Y, R/2^{k}), R = {radius:e}"),
            compare_close(&got.view(), &expected.view(), 1e-12, times_2k(s.slack())),
        )?;
        prop_assert!(
            got.iter().all(|v| v.is_finite()),
            "`{}`: {name} left a non-finite entry",
            s.spec
        );
    }
    Ok(())
}

/// A NaN or an infinity anywhere is an error naming its index, from `norm`, `project` and
/// `project_in_place`, and in place nothing is written.
fn non_finite_is_an_error<T: Float>(
    c: &Case,
    spec: String,
    at: prop::sample::Index,
    bad: f64,
) -> Result<(), TestCaseError> {
    let mut x = build::<T>(c);
    let flat = at.index(x.len());
    let index: Vec<usize> = {
        let mut rest = flat;
        let mut idx = vec![0; c.rank()];
        for (a, &n) in c.shape.iter().enumerate().rev() {
            idx[a] = rest % n;
            rest /= n;
        }
        idx
    };
    x[index.as_slice()] = T::from_f64(bad);
    let proj = lib(&spec, "compile", Projection::compile(&spec))?;
    let proj = lib(&spec, "with_radius", proj.with_radius(1.0))?;
    let expect_error = |what: &str, r: Result<(), multiproj::Error>| match r {
        Err(multiproj::Error::Data(multiproj::DataError::NonFinite { index: i, .. })) => {
            prop_assert_eq!(&i, &index, "`{}`: {} names the wrong index", spec, what);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "`{spec}`: {what} with {bad} at {index:?} should fail with a NonFinite error, got {other:?}"
        ))),
    };
    expect_error("norm", proj.norm(&x).map(drop))?;
    expect_error("project", proj.project(&x).map(drop))?;
    let before = x.clone();
    expect_error("project_in_place", proj.project_in_place(&mut x).map(drop))?;
    compared(
        &spec,
        "data after a failed in-place projection",
        compare_bits(&x.view(), &before.view()),
    )
}

// ---- inside the ball by construction, and "inside" decided the same way by both backends ----

/// Values over many binades, subnormals of both types included: `m·2^e` with `e` down to the
/// f32 subnormal range (the data must also fit f32), exact zeros and ties.
fn wide_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (1.0f64..2.0, -40i32..40, any::<bool>())
            .prop_map(|(m, e, neg)| if neg { -m } else { m } * 2f64.powi(e)),
        2 => (1.0f64..2.0, -149i32..-100, any::<bool>())
            .prop_map(|(m, e, neg)| if neg { -m } else { m } * 2f64.powi(e)),
        2 => -10.0f64..10.0,
        1 => Just(0.0),
        1 => prop::sample::select(vec![-2.5, 2.5, 4.0]),
    ]
}

/// How the radius of [`in_the_ball_exactly`] is chosen from the input's norm `N`.
#[derive(Clone, Copy, Debug)]
enum RadiusKind {
    /// `frac · N`.
    Fraction(f64),
    /// `N` moved by `k` ulps (up or down).
    Ulps(i32),
    /// `k` times the smallest positive subnormal of the data's type.
    Subnormal(u32),
    /// `N · 2^-e`: radii far below the data.
    Tiny(i32),
}

fn radius_kind() -> impl Strategy<Value = RadiusKind> {
    prop_oneof![
        3 => (0.001f64..1.0).prop_map(RadiusKind::Fraction),
        2 => (-4i32..=4).prop_map(RadiusKind::Ulps),
        2 => (1u32..40).prop_map(RadiusKind::Subnormal),
        1 => (20i32..200).prop_map(RadiusKind::Tiny),
    ]
}

fn wide_cases() -> impl Strategy<Value = Case> {
    (cases(1..=4, 1..=4), any::<u64>())
        .prop_flat_map(|(c, _)| {
            let n = c.data.len();
            (Just(c), prop::collection::vec(wide_value(), n))
        })
        .prop_map(|(mut c, data)| {
            c.data = data;
            c
        })
}

fn radius_for<T: Float>(kind: RadiusKind, norm: f64) -> f64 {
    let r = match kind {
        RadiusKind::Fraction(f) => f * norm,
        RadiusKind::Ulps(k) => {
            let mut r = norm;
            for _ in 0..k.unsigned_abs() {
                r = if k > 0 { r.next_up() } else { r.next_down() };
            }
            r
        }
        RadiusKind::Subnormal(k) => f64::from(k) * T::DTYPE.min_positive_subnormal(),
        RadiusKind::Tiny(e) => norm * 2f64.powi(-e),
    };
    r.max(0.0)
}

/// On both backends, out of place and in place: `norm(project(x, R)) <= R` exactly, with the
/// norm as `multiproj` computes it (by either backend: they compute the same number), and the
/// two backends give the same bits.
fn in_the_ball_exactly<T: Float>(
    c: &Case,
    spec: String,
    kind: RadiusKind,
) -> Result<(), TestCaseError> {
    let x = build::<T>(c);
    let compile =
        |b: Backend| lib(&spec, "compile", Projection::compile(&spec)).map(|p| p.with_backend(b));
    let (jit, interp) = (compile(Backend::Jit)?, compile(Backend::Interp)?);
    let norm_jit = lib(&spec, "norm (jit)", jit.norm(&x))?;
    let norm_interp = lib(&spec, "norm (interp)", interp.norm(&x))?;
    prop_assert_eq!(
        norm_jit.to_bits(),
        norm_interp.to_bits(),
        "`{}` ({}): the backends' norms differ: jit {:e}, interp {:e}",
        spec,
        T::NAME,
        norm_jit,
        norm_interp
    );
    let radius = radius_for::<T>(kind, norm_jit);
    let mut outputs = Vec::new();
    for (name, p) in [("jit", &jit), ("interp", &interp)] {
        let p = lib(&spec, "with_radius", p.clone().with_radius(radius))?;
        let out = lib(&spec, "project", p.project(&x))?;
        let mut in_place = x.clone();
        lib(&spec, "project_in_place", p.project_in_place(&mut in_place))?;
        compared(
            &spec,
            &format!("{name}: in place vs out of place"),
            compare_bits(&in_place.view(), &out.view()),
        )?;
        for (by, q) in [("jit", &jit), ("interp", &interp)] {
            let after = lib(&spec, "norm of the result", q.norm(&out))?;
            prop_assert!(
                after <= radius,
                "`{}` ({}, {:?}): {} projected onto radius {:e} (norm before {:e}); the {} norm \
                 of the result is {:e}, {:e} above",
                spec,
                T::NAME,
                kind,
                name,
                radius,
                norm_jit,
                by,
                after,
                after - radius
            );
        }
        if radius >= norm_jit {
            compared(
                &spec,
                &format!(
                    "{name}: inside the ball (radius {radius:e} >= norm {norm_jit:e}), the identity"
                ),
                compare_bits(&out.view(), &x.view()),
            )?;
        }
        outputs.push(out);
    }
    compared(
        &spec,
        &format!("jit vs interp, radius {radius:e}"),
        compare_bits(&outputs[0].view(), &outputs[1].view()),
    )
}

/// Runs `$f::<T>` with the case's element type `T`.
macro_rules! typed {
    ($case:expr, $f:ident ( $($arg:expr),* )) => {
        match $case.dtype {
            DType::F64 => $f::<f64>($($arg),*),
            DType::F32 => $f::<f32>($($arg),*),
            DType::F16 => $f::<half::f16>($($arg),*),
            DType::BF16 => $f::<half::bf16>($($arg),*),
        }
    };
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lands_in_the_ball_identity_inside_in_place_same_bits(
        c in cases(1..=4, 1..=4),
        norms in norms(),
    ) {
        let spec = c.spec(&norms);
        typed!(c, in_ball_identity_in_place(&c, spec))?;
    }

    #[test]
    fn lands_in_the_ball_exactly_on_both_backends(
        c in wide_cases(),
        norms in norms(),
        kind in radius_kind(),
    ) {
        let spec = c.spec(&norms);
        typed!(c, in_the_ball_exactly(&c, spec, kind))?;
    }

    #[test]
    fn projection_is_idempotent(c in cases(1..=4, 1..=4), norms in norms()) {
        idempotent(&c, c.spec(&norms))?;
    }

    #[test]
    fn strided_views_match_their_dense_copy(
        (c, layout) in cases(1..=4, 1..=4).prop_flat_map(|c| {
            let rank = c.rank();
            (Just(c), strided_layouts(rank))
        }),
        norms in norms(),
    ) {
        typed!(c, strided_matches_dense(&c, &layout, &norms))?;
    }

    #[test]
    fn single_level_l1_matches_sorting(c in cases(1..=4, 1..=1)) {
        typed!(c, l1_matches_sorting(&c))?;
    }

    #[test]
    fn l1_of_l2_is_the_group_lasso_projection(c in cases(2..=4, 2..=2)) {
        typed!(c, l1_of_l2_is_group_lasso(&c))?;
    }

    #[test]
    fn linf_of_linf_is_one_linf_level(c in cases(2..=4, 2..=2)) {
        typed!(c, linf_of_linf_is_one_linf(&c))?;
    }

    #[test]
    fn l2_of_l2_is_one_l2_level(c in cases(2..=4, 2..=2)) {
        typed!(c, l2_of_l2_is_one_l2(&c))?;
    }

    #[test]
    fn radius_zero_gives_all_zeros(c in cases(1..=4, 1..=4), norms in norms()) {
        let spec = c.spec(&norms);
        typed!(c, radius_zero_gives_zeros(&c, spec))?;
    }

    #[test]
    fn projection_commutes_with_power_of_two_scaling(
        c in cases(1..=4, 1..=4),
        norms in norms(),
        k in -400i32..=400,
    ) {
        scaling_covariant(&c, c.spec(&norms), k)?;
    }

    #[test]
    fn projection_commutes_with_scaling_up_to_f64_max(
        c in cases(1..=4, 1..=4),
        norms in norms(),
        below in 0i32..=3,
    ) {
        scaling_to_the_top(&c, c.spec(&norms), below)?;
    }

    #[test]
    fn non_finite_input_is_an_error(
        c in cases(1..=4, 1..=4),
        norms in norms(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
    ) {
        let spec = c.spec(&norms);
        typed!(c, non_finite_is_an_error(&c, spec, at, bad))?;
    }
}

/// Tensors big enough to be cut into parallel chunks (and, for one group or column-wise groups,
/// to sum in per-chunk partial sums): both backends compute the same norm bit for bit, and a
/// tensor scaled onto the sphere comes back unchanged from both.
#[test]
fn big_tensors_have_one_norm_and_the_sphere_is_inside() {
    let (n0, n1) = (301, 257);
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let data: Vec<f64> = (0..n0 * n1).map(|_| next() * 8.0).collect();
    let c_order = ArrayD::from_shape_vec(IxDyn(&[n0, n1]), data.clone()).unwrap();
    let f_order = ArrayD::from_shape_vec(IxDyn(&[n0, n1]).f(), data).unwrap();
    for spec in [
        "l1 over dims0..1",
        "l2 over dims0..1",
        "l1 over dim0 of l2 over dim1",
        "linf over dim1 of l1 over dim0",
        "l2 over dim0 of l1 over dim1",
    ] {
        for x in [&c_order, &f_order] {
            let x32 = x.mapv(|v| v as f32);
            let jit = Projection::compile(spec).unwrap();
            let interp = jit.clone().with_backend(Backend::Interp);
            let (a, b) = (jit.norm(x).unwrap(), interp.norm(x).unwrap());
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{spec}: norms jit {a:e}, interp {b:e}"
            );
            let (a32, b32) = (jit.norm(&x32).unwrap(), interp.norm(&x32).unwrap());
            assert_eq!(
                a32.to_bits(),
                b32.to_bits(),
                "{spec} f32: jit {a32:e}, interp {b32:e}"
            );
            for p in [&jit, &interp] {
                let out = p.clone().with_radius(a).unwrap().project(x).unwrap();
                assert!(
                    compare_bits(&out.view(), &x.view()).is_ok(),
                    "{spec}: sphere"
                );
                let out = p.clone().with_radius(a32).unwrap().project(&x32).unwrap();
                assert!(
                    compare_bits(&out.view(), &x32.view()).is_ok(),
                    "{spec} f32: sphere"
                );
                let r = a * 0.3;
                let out = p.clone().with_radius(r).unwrap().project(x).unwrap();
                for q in [&jit, &interp] {
                    let after = q.norm(&out).unwrap();
                    assert!(after <= r, "{spec}: norm after {after:e} > {r:e}");
                }
            }
        }
    }
}

// Data at the edges of the f64 range. Squares of entries beyond ~1e154 overflow and squares
// below ~1e-154 underflow; the l2 norms of the data must not.

fn project_f64(spec: &str, radius: f64, x: &ArrayD<f64>) -> (ArrayD<f64>, f64) {
    let proj = Projection::compile(spec)
        .and_then(|p| p.with_radius(radius))
        .unwrap_or_else(|e| panic!("`{spec}`: {e}"));
    let out = proj
        .project(x)
        .unwrap_or_else(|e| panic!("`{spec}` radius {radius:e}: {e}"));
    let norm = proj.norm(x).unwrap_or_else(|e| panic!("`{spec}`: {e}"));
    (out, norm)
}

fn array(shape: &[usize], values: &[f64]) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), values.to_vec()).expect("values fit the shape")
}

#[test]
fn l2_of_huge_entries_does_not_overflow() {
    let x = array(&[2], &[1e200, 1e200]);
    let (out, norm) = project_f64("l2 over dim0", 1.0, &x);
    let expected = std::f64::consts::SQRT_2 * 1e200;
    assert!(
        (norm - expected).abs() <= 1e-15 * expected,
        "norm of [1e200, 1e200] is {norm:e}, expected {expected:e}"
    );
    // Within 1e-14: the scale factor is lowered by a bound on the rounding errors (about
    // (n + 16)·2^-53 relative), so that the result is inside the ball.
    let want = array(&[2], &[std::f64::consts::FRAC_1_SQRT_2; 2]);
    if let Err(e) = compare_close(&out.view(), &want.view(), 1e-14, 0.0) {
        panic!("projecting [1e200, 1e200] onto the unit l2 ball: {e}");
    }
}

#[test]
fn l2_of_tiny_entries_does_not_underflow() {
    let x = array(&[2], &[1e-200, 1e-200]);
    let (out, norm) = project_f64("l2 over dim0", 1e-201, &x);
    let expected = std::f64::consts::SQRT_2 * 1e-200;
    assert!(
        (norm - expected).abs() <= 1e-15 * expected,
        "norm of [1e-200, 1e-200] is {norm:e}, expected {expected:e}"
    );
    let want = array(&[2], &[1e-201 * std::f64::consts::FRAC_1_SQRT_2; 2]);
    if let Err(e) = compare_close(&out.view(), &want.view(), 1e-14, 0.0) {
        panic!("projecting [1e-200, 1e-200] onto the l2 ball of radius 1e-201: {e}");
    }
}

#[test]
fn group_lasso_with_a_huge_group_does_not_panic() {
    let x = array(&[2, 2], &[1e200, 1e200, 1.0, 0.0]);
    let (out, _) = project_f64("l1 over dim0 of l2 over dim1", 1.0, &x);
    assert!(out.iter().all(|v| v.is_finite()), "non-finite result {out}");
    // The huge row keeps the whole radius: its l2 norm is about 1, the small row is zeroed.
    let row0 = (out[[0, 0]].powi(2) + out[[0, 1]].powi(2)).sqrt();
    assert!(
        (row0 - 1.0).abs() <= 1e-6,
        "row 0 has l2 norm {row0}, expected 1; result {out}"
    );
    assert_eq!(
        (out[[1, 0]], out[[1, 1]]),
        (0.0, 0.0),
        "row 1 should be zeroed; result {out}"
    );
}

#[test]
fn l1_with_a_tiny_radius_lands_on_the_sphere() {
    let x = array(&[3], &[1e6, 0.5, -3.0]);
    let (out, _) = project_f64("l1 over dim0", 1e-9, &x);
    let want = array(&[3], &[1e-9, 0.0, 0.0]);
    if let Err(e) = compare_close(&out.view(), &want.view(), 1e-9, 0.0) {
        panic!("projecting [1e6, 0.5, -3] onto the l1 ball of radius 1e-9: {e}");
    }
}

#[test]
fn empty_tensor_is_an_error() {
    let proj = Projection::compile("l1 over dim0 of linf over dim1")
        .and_then(|p| p.with_radius(1.0))
        .expect("a valid spec");
    let mut x = ArrayD::<f64>::zeros(IxDyn(&[0, 3]));
    for (what, r) in [
        ("norm", proj.norm(&x).map(drop)),
        ("project", proj.project(&x).map(drop)),
        ("project_in_place", proj.project_in_place(&mut x).map(drop)),
    ] {
        assert!(
            matches!(
                r,
                Err(multiproj::Error::Check(
                    multiproj::CheckError::EmptyTensor { .. }
                ))
            ),
            "{what} of a [0, 3] tensor should fail with EmptyTensor, got {r:?}"
        );
    }
}

#[test]
fn invalid_run_time_radii_are_errors() {
    for r in [
        -1.0,
        -f64::MIN_POSITIVE,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let result = Projection::compile("l2 over dim0").and_then(|p| p.with_radius(r));
        assert!(
            matches!(
                result,
                Err(multiproj::Error::Check(
                    multiproj::CheckError::InvalidRadius { .. }
                ))
            ),
            "radius {r} should be rejected with InvalidRadius, got {result:?}"
        );
    }
}
