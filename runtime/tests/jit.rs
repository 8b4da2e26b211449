//! The JIT backend against the interpreter (the oracle): reduce results equal (bit for bit for
//! linf, within 1e-12 relative for sums), thresholds bit for bit (when no reduced axis is
//! reversed: then both backends see a group's entries in the same order), apply results bit for
//! bit given the same group actions, in-place apply never storing to kept elements nor letting
//! zero-filled groups' data through, non-finite input rejected with the interpreter's error, and
//! the kernel cache reused across shapes of the same structure.

use ndarray::{Array, ArrayD, ArrayViewD, ArrayViewMutD, Dimension, IxDyn, ShapeBuilder, Slice};
use proptest::prelude::*;

use multiproj_compiler::{DType, Norm, Plan, TensorInfo};
use multiproj_runtime::backend::Work;
use multiproj_runtime::balls::SoftThreshold;
use multiproj_runtime::jit::Jit;
use multiproj_runtime::progress::Ticker;
use multiproj_runtime::solve::{Aggregates, GroupAction};
use multiproj_runtime::{DataError, Element, half, interp};

mod support;
/// The JIT's passes: the global JIT, one of its own, and its helpers.
mod jit {
    pub use super::support::*;
    pub use multiproj_runtime::jit::{find_non_finite, global};
}

/// A small deterministic generator (xorshift*), so a case is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Mostly spread-out values, with exact zeros, negative zeros and repeated values.
    fn value(&mut self) -> f64 {
        match self.below(12) {
            0 => 0.0,
            1 => -0.0,
            2 => 1.5,
            3 => -1.5,
            _ => (self.unit() - 0.5) * 20.0,
        }
    }
}

/// A random spec of 1–4 levels over `rank` axes: axes shuffled, cut into levels, each level's
/// axes written in one of the grammar's forms.
fn random_spec(rng: &mut Rng, rank: usize) -> String {
    let mut axes: Vec<usize> = (0..rank).collect();
    for i in (1..rank).rev() {
        axes.swap(i, rng.below(i + 1));
    }
    let levels = 1 + rng.below(rank.min(4));
    // `levels - 1` distinct cut points in 1..rank.
    let mut cuts: Vec<usize> = (1..rank).collect();
    for i in (1..cuts.len()).rev() {
        cuts.swap(i, rng.below(i + 1));
    }
    cuts.truncate(levels - 1);
    cuts.sort();
    let mut bounds = vec![0];
    bounds.extend(cuts);
    bounds.push(rank);
    let norms = ["l1", "l2", "linf"];
    let parts: Vec<String> = bounds
        .windows(2)
        .map(|w| {
            let mut set = axes[w[0]..w[1]].to_vec();
            set.sort();
            let norm = norms[rng.below(3)];
            let over = if set.len() == 1 {
                format!("dim{}", set[0])
            } else {
                let list: Vec<String> = set.iter().map(|a| a.to_string()).collect();
                format!("dims{}", list.join(","))
            };
            format!("{norm} over {over}")
        })
        .collect();
    parts.join(" of ")
}

/// [`random_spec`] with the innermost norm replaced by l1, so the plan has a threshold stage.
fn random_l1_spec(rng: &mut Rng, rank: usize) -> String {
    let spec = random_spec(rng, rank);
    let (outer, inner) = match spec.rfind(" of ") {
        Some(at) => (&spec[..at + 4], &spec[at + 4..]),
        None => ("", spec.as_str()),
    };
    let over = &inner[inner.find(" over ").expect("a level has `over`")..];
    format!("{outer}l1{over}")
}

/// A tensor of logical shape `shape` in C or F order; axes in `strided` are taken every other
/// element of a twice-as-long axis, axes in `flipped` are reversed.
fn make_tensor<T: Element>(
    rng: &mut Rng,
    shape: &[usize],
    fortran: bool,
    strided: &[bool],
    flipped: &[bool],
) -> ArrayD<T> {
    let base_shape: Vec<usize> = shape
        .iter()
        .zip(strided)
        .map(|(&n, &s)| if s { 2 * n } else { n })
        .collect();
    let len = base_shape.iter().product();
    let values: Vec<T> = (0..len).map(|_| T::from_f64(rng.value())).collect();
    let shape_spec = IxDyn(&base_shape);
    let mut a = if fortran {
        Array::from_shape_vec(shape_spec.f(), values).unwrap()
    } else {
        Array::from_shape_vec(shape_spec, values).unwrap()
    };
    for (ax, &s) in strided.iter().enumerate() {
        if s {
            a.slice_axis_inplace(ndarray::Axis(ax), Slice::new(0, None, 2));
        }
    }
    for (ax, &f) in flipped.iter().enumerate() {
        if f {
            a.invert_axis(ndarray::Axis(ax));
        }
    }
    a
}

fn info_of<T: Element>(x: &ArrayViewD<'_, T>) -> TensorInfo {
    TensorInfo {
        shape: x.shape().to_vec(),
        strides: x.strides().to_vec(),
        dtype: T::DTYPE,
    }
}

fn plan_for(spec: &str, info: TensorInfo) -> Plan {
    let spec = multiproj_grammar::parse(spec).unwrap();
    multiproj_compiler::plan(&multiproj_compiler::check(&spec, &info).unwrap())
}

/// An output array with the plan's output layout (dense in the input's memory order).
fn output_for<T: Element>(plan: &Plan) -> ArrayD<T> {
    let order = &plan.schedule().memory_order();
    let permuted: Vec<usize> = order.iter().map(|&a| plan.tensor().shape[a]).collect();
    let mut inverse = vec![0; order.len()];
    for (p, &a) in order.iter().enumerate() {
        inverse[a] = p;
    }
    let out = ArrayD::from_elem(IxDyn(&permuted), T::from_f64(7.0)).permuted_axes(IxDyn(&inverse));
    assert!(
        out.shape()
            .iter()
            .zip(out.strides().iter().zip(&plan.output().strides))
            .all(|(&n, (a, b))| n <= 1 || a == b)
    );
    out
}

/// The group norms of the two backends: bit for bit (the interpreter sums in the JIT's order).
fn assert_reduce_close(plan: &Plan, jit: &[f64], interp: &[f64]) {
    assert_eq!(jit.len(), interp.len());
    for (g, (&a, &b)) in jit.iter().zip(interp).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{}: group {g}: jit {a} vs interp {b}",
            plan.tensor()
        );
    }
}

fn assert_bitwise<T: Element>(what: &str, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>) {
    assert_eq!(a.shape(), b.shape());
    for ((idx, &x), &y) in a.indexed_iter().zip(b.iter()) {
        assert!(
            x.to_f64().to_bits() == y.to_f64().to_bits(),
            "{what}: at {:?}: jit {x:?} vs interp {y:?}",
            idx.slice()
        );
    }
}

/// The interpreter's group actions for radius `frac × norm`, thresholds included.
fn actions_for<T: Element>(plan: &Plan, x: &ArrayViewD<'_, T>, frac: f64) -> Vec<GroupAction> {
    let inner = interp::reduce(plan, x).unwrap();
    let agg = Aggregates::reduce_up(plan, inner);
    let radius = agg.norm() * frac;
    let radii = agg.solve(plan, radius);
    let mut actions = agg.actions(plan, &radii);
    interp::threshold(plan, x, &mut actions).unwrap();
    actions
}

/// The interpreter's group actions for radius `frac × norm`, before the threshold stage.
fn pre_threshold_actions<T: Element>(
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    frac: f64,
) -> Vec<GroupAction> {
    let inner = interp::reduce(plan, x).unwrap();
    let agg = Aggregates::reduce_up(plan, inner);
    let radii = agg.solve(plan, agg.norm() * frac);
    agg.actions(plan, &radii)
}

/// Random actions before the threshold stage of an innermost-l1 plan: kept, zeroed, or a
/// threshold with a radius below the group's norm, exactly at it (the threshold stage keeps the
/// group) or a hair above.
fn random_threshold_actions<T: Element>(
    rng: &mut Rng,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
) -> Vec<GroupAction> {
    let norms = interp::reduce(plan, x).unwrap();
    norms
        .iter()
        .map(|&v| match rng.below(8) {
            0 => GroupAction::Keep,
            1 => GroupAction::Zero,
            2 => GroupAction::NeedsThreshold(v),
            3 => GroupAction::NeedsThreshold(v * (1.0 + 1e-15)),
            4 => GroupAction::NeedsThreshold(v * 1e-9),
            _ => GroupAction::NeedsThreshold(v * (0.01 + 0.98 * rng.unit())),
        })
        .collect()
}

/// A group action as bits, so that equal means bit for bit.
fn action_bits(a: GroupAction) -> (u8, u64, u64) {
    match a {
        GroupAction::Keep => (0, 0, 0),
        GroupAction::Zero => (1, 0, 0),
        GroupAction::Clip(r) => (2, r.to_bits(), 0),
        GroupAction::Scale(f) => (3, f.to_bits(), 0),
        GroupAction::NeedsThreshold(r) => (4, r.to_bits(), 0),
        GroupAction::Shrink(t) => (5, t.base.to_bits(), t.offset.to_bits()),
    }
}

/// Whether the view reverses an axis of the innermost level: then the JIT (forwards in memory)
/// and the interpreter (forwards in logical index) see a group's entries in different orders.
fn reverses_a_reduced_axis(plan: &Plan) -> bool {
    plan.innermost()
        .axes
        .iter()
        .any(|&a| plan.tensor().shape[a] > 1 && plan.tensor().strides[a] < 0)
}

/// The JIT's threshold stage against the interpreter's, from the same actions: bit for bit, or,
/// when a reduced axis is reversed, equal up to the rounding of a sum in another order.
fn check_threshold<T: Element>(
    jit_: &Jit,
    plan: &Plan,
    x: &ArrayViewD<'_, T>,
    actions: &[GroupAction],
    ctx: &str,
) {
    let mut from_jit = actions.to_vec();
    let mut from_interp = actions.to_vec();
    jit::threshold_with(jit_, plan, x, &mut from_jit, &Ticker::none()).unwrap();
    interp::threshold(plan, x, &mut from_interp).unwrap();
    let exact = !reverses_a_reduced_axis(plan);
    for (g, ((&a, &b), &before)) in from_jit.iter().zip(&from_interp).zip(actions).enumerate() {
        if exact {
            assert_eq!(
                action_bits(a),
                action_bits(b),
                "{ctx}: group {g}: jit {a:?} vs interp {b:?}"
            );
            continue;
        }
        match (a, b, before) {
            (GroupAction::Shrink(s), GroupAction::Shrink(t), _) => {
                let tol = 1e-9 * s.tau().abs().max(t.tau().abs()).max(1e-300);
                assert!(
                    (s.tau() - t.tau()).abs() <= tol,
                    "{ctx}: group {g}: jit {s:?} vs interp {t:?}"
                );
            }
            // Kept by one and shrunk by the other: only for a radius within rounding of the norm.
            (GroupAction::Keep, GroupAction::Shrink(_), GroupAction::NeedsThreshold(_))
            | (GroupAction::Shrink(_), GroupAction::Keep, GroupAction::NeedsThreshold(_)) => {
                let norm = interp::reduce(plan, x).unwrap()[g];
                let GroupAction::NeedsThreshold(r) = before else {
                    unreachable!()
                };
                assert!(
                    (norm - r).abs() <= 1e-12 * norm,
                    "{ctx}: group {g}: jit {a:?} vs interp {b:?} for radius {r} and norm {norm}"
                );
            }
            _ => assert_eq!(
                action_bits(a),
                action_bits(b),
                "{ctx}: group {g}: jit {a:?} vs interp {b:?}"
            ),
        }
    }
    assert!(
        from_jit
            .iter()
            .all(|a| !matches!(a, GroupAction::NeedsThreshold(_))),
        "{ctx}: a threshold was left undecided"
    );
}

/// Random actions of every kind the plan's apply operation allows.
fn random_actions(rng: &mut Rng, plan: &Plan) -> Vec<GroupAction> {
    (0..plan.groups())
        .map(|_| match rng.below(5) {
            0 => GroupAction::Keep,
            1 => GroupAction::Zero,
            _ => {
                let p = rng.unit() * 6.0;
                match plan.innermost().norm {
                    Norm::Linf => GroupAction::Clip(p),
                    Norm::L2 => GroupAction::Scale(p / 6.0),
                    Norm::L1 => {
                        let base = [0.0, 1.5, p][rng.below(3)];
                        GroupAction::Shrink(SoftThreshold {
                            base,
                            offset: rng.unit() * 1e-3,
                        })
                    }
                }
            }
        })
        .collect()
}

/// The layout of a test tensor (see [`make_tensor`]).
struct Layout<'a> {
    shape: &'a [usize],
    fortran: bool,
    strided: &'a [bool],
    flipped: &'a [bool],
}

const NONE: &[bool] = &[false; 4];

impl<'a> Layout<'a> {
    fn dense(shape: &'a [usize], fortran: bool) -> Self {
        Layout {
            shape,
            fortran,
            strided: &NONE[..shape.len()],
            flipped: &NONE[..shape.len()],
        }
    }
}

/// Runs one differential case: reduce, threshold (innermost l1), apply out of place and in
/// place.
fn check_case<T: Element>(jit_: &Jit, rng: &mut Rng, spec: &str, layout: &Layout<'_>, frac: f64) {
    let x = make_tensor::<T>(
        rng,
        layout.shape,
        layout.fortran,
        layout.strided,
        layout.flipped,
    );
    let plan = plan_for(spec, info_of(&x.view()));
    let ctx = format!(
        "{spec} on {} ({:?})",
        plan.tensor(),
        plan.schedule().loops()
    );

    let from_jit = jit::reduce_with(jit_, &plan, &x.view(), &Ticker::none()).unwrap();
    let from_interp = interp::reduce(&plan, &x.view()).unwrap();
    assert_reduce_close(&plan, &from_jit, &from_interp);

    if plan.innermost().norm == Norm::L1 {
        let pre = pre_threshold_actions(&plan, &x.view(), frac);
        check_threshold(jit_, &plan, &x.view(), &pre, &ctx);
        let random = random_threshold_actions(rng, &plan, &x.view());
        check_threshold(jit_, &plan, &x.view(), &random, &ctx);
    }

    for actions in [
        actions_for(&plan, &x.view(), frac),
        random_actions(rng, &plan),
    ] {
        let (out_jit, out_interp) = applied_by_both(jit_, &plan, &actions, &x);
        assert_bitwise(&ctx, &out_jit.view(), &out_interp.view());

        let mut in_jit = x.clone();
        let mut in_interp = x.clone();
        let mut in_jit_v = same_layout_view(&x, &mut in_jit);
        let mut in_interp_v = same_layout_view(&x, &mut in_interp);
        jit::apply_in_place_with(jit_, &plan, &actions, &mut in_jit_v, &Ticker::none()).unwrap();
        interp::apply_in_place(&plan, &actions, &mut in_interp_v).unwrap();
        assert_bitwise(&ctx, &in_jit_v.view(), &in_interp_v.view());
    }
}

/// The apply pass in place by the JIT, on a copy of `x` (with `x`'s strides).
fn applied_in_place_by_jit<T: Element>(
    jit_: &Jit,
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayD<T>,
) -> ArrayD<T> {
    let mut y = x.clone();
    jit::apply_in_place_with(jit_, plan, actions, &mut y.view_mut(), &Ticker::none()).unwrap();
    y
}

/// The apply pass out of place by the JIT and by the interpreter: `(jit, interp)`.
fn applied_by_both<T: Element>(
    jit_: &Jit,
    plan: &Plan,
    actions: &[GroupAction],
    x: &ArrayD<T>,
) -> (ArrayD<T>, ArrayD<T>) {
    let mut by_jit = output_for::<T>(plan);
    let mut by_interp = output_for::<T>(plan);
    jit::apply_with(
        jit_,
        plan,
        actions,
        &x.view(),
        &mut by_jit.view_mut(),
        &Ticker::none(),
    )
    .unwrap();
    interp::apply(plan, actions, &x.view(), &mut by_interp.view_mut()).unwrap();
    (by_jit, by_interp)
}

/// A mutable view of `copy` (a clone of `x`) with exactly `x`'s strides, or the clone itself
/// when cloning kept them.
fn same_layout_view<'a, T: Element>(
    x: &ArrayD<T>,
    copy: &'a mut ArrayD<T>,
) -> ArrayViewMutD<'a, T> {
    assert_eq!(copy.strides(), x.strides(), "ndarray's clone keeps strides");
    copy.view_mut()
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    shape: Vec<usize>,
    fortran: bool,
    strided: Vec<bool>,
    flipped: Vec<bool>,
    frac: f64,
    dtype: DType,
}

/// Runs `$f::<T>($args)` with `T` the element type of `$dtype`.
macro_rules! typed {
    ($dtype:expr, $f:ident($($arg:expr),*)) => {
        match $dtype {
            DType::F64 => $f::<f64>($($arg),*),
            DType::F32 => $f::<f32>($($arg),*),
            DType::F16 => $f::<half::f16>($($arg),*),
            DType::BF16 => $f::<half::bf16>($($arg),*),
        }
    };
}

fn cases() -> impl Strategy<Value = Case> {
    (1usize..=4)
        .prop_flat_map(|rank| {
            (
                any::<u64>(),
                prop::collection::vec(prop_oneof![1 => Just(1usize), 6 => 1usize..=11], rank),
                any::<bool>(),
                prop::collection::vec(prop::bool::weighted(0.2), rank),
                prop::collection::vec(prop::bool::weighted(0.2), rank),
                prop_oneof![Just(0.0), Just(2.0), 0.01f64..1.0],
                prop_oneof![
                    3 => Just(DType::F64),
                    3 => Just(DType::F32),
                    2 => Just(DType::F16),
                    2 => Just(DType::BF16)
                ],
            )
        })
        .prop_map(
            |(seed, shape, fortran, strided, flipped, frac, dtype)| Case {
                seed,
                shape,
                fortran,
                strided,
                flipped,
                frac,
                dtype,
            },
        )
}

fn shared_jit() -> &'static Jit {
    jit::global().unwrap()
}

/// [`check_case`] on a random spec from `spec_of`, the case's layout and dtype.
fn check_random_case(case: &Case, spec_of: fn(&mut Rng, usize) -> String) {
    let mut rng = Rng::new(case.seed);
    let spec = spec_of(&mut rng, case.shape.len());
    let layout = Layout {
        shape: &case.shape,
        fortran: case.fortran,
        strided: &case.strided,
        flipped: &case.flipped,
    };
    let jit_ = shared_jit();
    typed!(
        case.dtype,
        check_case(jit_, &mut rng, &spec, &layout, case.frac)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn jit_matches_interpreter(case in cases()) {
        check_random_case(&case, random_spec);
    }

    #[test]
    fn jit_threshold_matches_interpreter(case in cases()) {
        check_random_case(&case, random_l1_spec);
    }

    #[test]
    fn non_finite_is_reported_like_the_interpreter(
        case in cases(),
        bad in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
        count in 1usize..3,
    ) {
        typed!(case.dtype, check_non_finite(&case, bad, count));
    }
}

/// Plants `count` copies of `bad` at random places: the kernel names one of them, and the
/// backend's error is the interpreter's.
fn check_non_finite<T: Element>(case: &Case, bad: f64, count: usize) {
    let mut rng = Rng::new(case.seed);
    let spec = random_spec(&mut rng, case.shape.len());
    let mut x = make_tensor::<T>(
        &mut rng,
        &case.shape,
        case.fortran,
        &case.strided,
        &case.flipped,
    );
    let len = x.len();
    for _ in 0..count {
        let k = rng.below(len);
        *x.iter_mut().nth(k).unwrap() = T::from_f64(bad);
    }
    let plan = plan_for(&spec, info_of(&x.view()));
    let found = jit::find_non_finite(shared_jit(), &plan, &x.view()).unwrap();
    let index = found.expect("the kernel sees the bad element");
    assert!(
        !x[IxDyn(&index)].to_f64().is_finite(),
        "kernel named {index:?}"
    );
    let e_jit = jit::reduce(&plan, &x.view()).unwrap_err();
    let e_interp = interp::reduce(&plan, &x.view()).unwrap_err();
    assert_eq!(e_jit.to_string(), e_interp.to_string());
}

#[test]
fn big_tensors_run_in_parallel_chunks_and_match() {
    let jit_ = Jit::new().unwrap();
    let mut rng = Rng::new(42);
    // Row groups (split loop owns groups), column groups (split loop is reduced: per-chunk
    // accumulators), one flat group, f32 and f64, C and F order.
    let specs = [
        "l1 over dim0 of linf over dim1",
        "l1 over dim1 of linf over dim0",
        "l2 over dim1 of l2 over dim0",
        "l1 over dim0 of l1 over dim1",
        "l2 over dims0,1",
        "linf over dim1 of l1 over dim0",
    ];
    for spec in specs {
        for fortran in [false, true] {
            check_case::<f64>(
                &jit_,
                &mut rng,
                spec,
                &Layout::dense(&[301, 259], fortran),
                0.3,
            );
            check_case::<f32>(
                &jit_,
                &mut rng,
                spec,
                &Layout::dense(&[257, 263], fortran),
                0.3,
            );
        }
        let layout = Layout {
            shape: &[300, 260],
            fortran: false,
            strided: &[false, true],
            flipped: &[true, false],
        };
        check_case::<f64>(&jit_, &mut rng, spec, &layout, 0.3);
    }
}

#[test]
fn threshold_schedules_match_in_parallel() {
    // Big enough for several chunks: chunks that own their groups (row-wise, and a 3-D nest
    // whose innermost loop runs across groups), chunks that share groups (column-wise, tiled
    // when a row holds more than one tile of groups; a 3-D nest with a reduced innermost loop),
    // and one group over everything.
    let jit_ = Jit::new().unwrap();
    let mut rng = Rng::new(5);
    for (spec, shape) in [
        ("l1 over dim0 of l1 over dim1", &[301usize, 259][..]),
        ("l1 over dim1 of l1 over dim0", &[301, 600][..]),
        ("linf over dim1 of l1 over dim0", &[257, 263][..]),
        ("l2 over dims0,2 of l1 over dim1", &[40, 30, 70][..]),
        ("l1 over dim1 of l1 over dims0,2", &[40, 30, 70][..]),
        ("l1 over dims0..", &[300, 250][..]),
    ] {
        for fortran in [false, true] {
            for frac in [0.05, 0.5, 0.97] {
                check_case::<f64>(&jit_, &mut rng, spec, &Layout::dense(shape, fortran), frac);
            }
            check_case::<f32>(&jit_, &mut rng, spec, &Layout::dense(shape, fortran), 0.3);
        }
        let n = shape.len();
        let layout = Layout {
            shape,
            fortran: false,
            strided: &[true, false, true][..n],
            flipped: &[false, true, false][..n],
        };
        check_case::<f64>(&jit_, &mut rng, spec, &layout, 0.3);
    }
}

/// Every element's group index (logical index · group strides).
fn group_of(plan: &Plan, idx: &[usize]) -> usize {
    idx.iter()
        .zip(plan.group_strides())
        .map(|(&i, &s)| i * s)
        .sum()
}

/// Specs and layouts for the apply tests: row- and column-wise groups, every operation, vector
/// tails, several chunks.
const APPLY_SPECS: [&str; 6] = [
    "l1 over dim1 of linf over dim0",
    "l1 over dim1 of l2 over dim0",
    "l1 over dim1 of l1 over dim0",
    "l1 over dim0 of linf over dim1",
    "l1 over dim0 of l1 over dim1",
    "linf over dim0 of l2 over dim1",
];

#[test]
fn in_place_apply_never_stores_to_kept_elements() {
    // Kept groups hold signalling NaNs (f32) or NaN patterns with payloads (f16, bf16): the
    // kernels compute in f64, and widening one to f64 and narrowing it back quiets it (or, for
    // the 16-bit formats, rounds its payload away), so any store to a kept element of "its own
    // value" that went through a float changes its bits; the 16-bit clips, which work on the
    // bits, must give them back unchanged.
    /// An element's own bits (NaN payloads included).
    trait Raw {
        fn raw(&self) -> u64;
    }
    impl Raw for f32 {
        fn raw(&self) -> u64 {
            u64::from(self.to_bits())
        }
    }
    impl Raw for half::f16 {
        fn raw(&self) -> u64 {
            u64::from(self.to_bits())
        }
    }
    impl Raw for half::bf16 {
        fn raw(&self) -> u64 {
            u64::from(self.to_bits())
        }
    }
    fn check<T: Element + Raw>(jit_: &Jit, rng: &mut Rng, nan: fn(u32) -> T) {
        for spec in APPLY_SPECS {
            for fortran in [false, true] {
                for shape in [[9usize, 37], [300, 261], [4, 3]] {
                    let mut x = make_tensor::<T>(rng, &shape, fortran, NONE, NONE);
                    let plan = plan_for(spec, info_of(&x.view()));
                    let actions = random_actions(rng, &plan);
                    let mut payload = 1u32;
                    for (idx, v) in x.indexed_iter_mut() {
                        if actions[group_of(&plan, idx.slice())] == GroupAction::Keep {
                            *v = nan(payload);
                            payload = payload.wrapping_mul(2_654_435_761).wrapping_add(1);
                        }
                    }
                    assert!(
                        x.iter().any(|v| v.to_f64().is_nan())
                            || !actions.contains(&GroupAction::Keep)
                    );
                    let by_jit = applied_in_place_by_jit(jit_, &plan, &actions, &x);
                    let mut by_interp = x.clone();
                    interp::apply_in_place(&plan, &actions, &mut by_interp.view_mut()).unwrap();
                    let (out, _) = applied_by_both(jit_, &plan, &actions, &x);
                    let bits = |v: &T| v.to_f64().to_bits();
                    for ((idx, a), (b, before)) in
                        by_jit.indexed_iter().zip(by_interp.iter().zip(&x))
                    {
                        let kept = actions[group_of(&plan, idx.slice())] == GroupAction::Keep;
                        if kept {
                            // NaNs: compare the stored patterns, not values.
                            assert_eq!(
                                a.raw(),
                                before.raw(),
                                "{spec} {shape:?} at {:?}: kept element rewritten ({})",
                                idx.slice(),
                                T::DTYPE
                            );
                            // Out of place, the 16-bit clips (on the bits) copy kept elements'
                            // bits too; the other kernels move them through floats, which may
                            // quiet a NaN (data with NaNs never gets this far: the reduce
                            // refuses it).
                            if T::DTYPE.is_half() && plan.innermost().norm == Norm::Linf {
                                assert_eq!(out[idx.slice()].raw(), before.raw(), "out of place");
                            }
                        } else {
                            assert_eq!(
                                bits(a),
                                bits(b),
                                "{spec} {shape:?} at {:?}: jit {a:?} vs interp {b:?}",
                                idx.slice()
                            );
                        }
                    }
                }
            }
        }
    }
    let jit_ = Jit::new().unwrap();
    let mut rng = Rng::new(11);
    check::<f32>(&jit_, &mut rng, |p| {
        f32::from_bits(0x7f80_0000 | (p & 0x3f_ffff).max(1))
    });
    check::<half::f16>(&jit_, &mut rng, |p| {
        half::f16::from_bits(0x7c00 | (p as u16 & 0x3ff).max(1))
    });
    check::<half::bf16>(&jit_, &mut rng, |p| {
        half::bf16::from_bits(0x7f80 | (p as u16 & 0x7f).max(1))
    });
}

#[test]
fn zero_filled_groups_are_not_read() {
    // Zero groups hold NaN: the output there must be exact +0 and no NaN may leak anywhere.
    fn check<T: Element>(jit_: &Jit, rng: &mut Rng, spec: &str, shape: &[usize], fortran: bool) {
        let mut x = make_tensor::<T>(rng, shape, fortran, NONE, NONE);
        let plan = plan_for(spec, info_of(&x.view()));
        let actions = random_actions(rng, &plan);
        for (idx, v) in x.indexed_iter_mut() {
            if actions[group_of(&plan, idx.slice())] == GroupAction::Zero {
                *v = T::from_f64(f64::NAN);
            }
        }
        let mut out = output_for::<T>(&plan);
        jit::apply_with(
            jit_,
            &plan,
            &actions,
            &x.view(),
            &mut out.view_mut(),
            &Ticker::none(),
        )
        .unwrap();
        let in_place = applied_in_place_by_jit(jit_, &plan, &actions, &x);
        let mut expected = output_for::<T>(&plan);
        interp::apply(&plan, &actions, &x.view(), &mut expected.view_mut()).unwrap();
        for result in [out.view(), in_place.view()] {
            for (idx, &v) in result.indexed_iter() {
                if actions[group_of(&plan, idx.slice())] == GroupAction::Zero {
                    assert_eq!(v.to_f64().to_bits(), 0, "{spec} at {:?}", idx.slice());
                }
            }
            assert_bitwise(spec, &result, &expected.view());
        }
    }
    let jit_ = Jit::new().unwrap();
    let mut rng = Rng::new(13);
    for spec in APPLY_SPECS {
        for fortran in [false, true] {
            for shape in [[9usize, 37], [300, 261]] {
                check::<f64>(&jit_, &mut rng, spec, &shape, fortran);
                check::<f32>(&jit_, &mut rng, spec, &shape, fortran);
            }
        }
    }
}

#[test]
fn prepare_compiles_every_kernel_a_projection_runs() {
    let jit_ = Jit::new().unwrap();
    let mut rng = Rng::new(17);
    for spec in [
        "l1 over dim1 of l1 over dim0",
        "l1 over dim0 of linf over dim1",
    ] {
        let x = make_tensor::<f64>(&mut rng, &[30, 20], false, NONE, NONE);
        let plan = plan_for(spec, info_of(&x.view()));
        // One apply kernel per call: the one the projection runs.
        jit_.kernels(&plan, Work::project(&plan, false)).unwrap();
        let one = jit_.compiled();
        jit_.kernels(&plan, Work::project(&plan, true)).unwrap();
        assert_eq!(
            jit_.compiled(),
            one + 1,
            "{spec}: the in-place apply is compiled only now"
        );
        let compiled = jit_.compiled();
        jit_.kernels(&plan, Work::project(&plan, false)).unwrap();
        jit_.kernels(&plan, Work::project(&plan, true)).unwrap();
        assert_eq!(jit_.compiled(), compiled, "prepare twice compiles once");
        check_case::<f64>(&jit_, &mut rng, spec, &Layout::dense(&[30, 20], false), 0.5);
        assert_eq!(
            jit_.compiled(),
            compiled,
            "{spec}: a pass compiled after prepare"
        );
    }
}

#[test]
fn single_elements_and_vectors() {
    let jit_ = Jit::new().unwrap();
    let mut rng = Rng::new(7);
    for spec in ["l1 over dims0..1", "linf over dim0 of l2 over dim1"] {
        check_case::<f64>(&jit_, &mut rng, spec, &Layout::dense(&[1, 1], false), 0.5);
    }
    for n in [1, 2, 3, 7, 8, 9, 15, 16, 17, 33] {
        for spec in ["l1 over dim0", "l2 over dim0", "linf over dim0"] {
            check_case::<f32>(&jit_, &mut rng, spec, &Layout::dense(&[n], false), 0.5);
            let layout = Layout {
                shape: &[n],
                fortran: false,
                strided: &[true],
                flipped: &[true],
            };
            check_case::<f64>(&jit_, &mut rng, spec, &layout, 0.5);
        }
    }
}

#[test]
fn l2_sums_that_overflow_or_underflow_are_recomputed() {
    let jit_ = Jit::new().unwrap();
    for scale in [1e200, 1e-200] {
        let x = ArrayD::from_shape_fn(IxDyn(&[4, 9]), |i| scale * (i[0] * 9 + i[1]) as f64);
        let plan = plan_for("l1 over dim0 of l2 over dim1", info_of(&x.view()));
        let a = jit::reduce_with(&jit_, &plan, &x.view(), &Ticker::none()).unwrap();
        let b = interp::reduce(&plan, &x.view()).unwrap();
        assert!(a.iter().all(|v| v.is_finite()));
        assert_reduce_close(&plan, &a, &b);
    }
}

#[test]
fn the_cache_does_not_recompile_for_a_new_shape() {
    let jit_ = Jit::new().unwrap();
    let mut rng = Rng::new(1);
    let spec = "l1 over dim0 of linf over dim1";
    check_case::<f64>(&jit_, &mut rng, spec, &Layout::dense(&[7, 5], false), 0.5);
    let compiled = jit_.compiled();
    assert_eq!(compiled, 3, "reduce, apply, apply in place");
    check_case::<f64>(
        &jit_,
        &mut rng,
        spec,
        &Layout::dense(&[300, 1000], false),
        0.5,
    );
    check_case::<f64>(&jit_, &mut rng, spec, &Layout::dense(&[2, 3], false), 0.5);
    assert_eq!(jit_.compiled(), compiled);
    // Another structure (f32) compiles its own kernels.
    check_case::<f32>(&jit_, &mut rng, spec, &Layout::dense(&[7, 5], false), 0.5);
    assert_eq!(jit_.compiled(), 2 * compiled);
}

#[test]
fn views_with_another_layout_are_refused() {
    let x = ArrayD::<f64>::zeros(IxDyn(&[4, 6]));
    let plan = plan_for("l1 over dim0 of linf over dim1", info_of(&x.view()));
    let t = x.t();
    let plan_t = plan_for("l1 over dim0 of linf over dim1", info_of(&t));
    let y = ArrayD::<f64>::zeros(IxDyn(&[6, 4]));
    assert!(matches!(
        jit::reduce(&plan_t, &y.view()),
        Err(DataError::LayoutMismatch { .. })
    ));
    let z = ArrayD::<f32>::zeros(IxDyn(&[4, 6]));
    assert!(matches!(
        jit::reduce(&plan, &z.view()),
        Err(DataError::DTypeMismatch { .. })
    ));
    let mut out = ArrayD::<f64>::zeros(IxDyn(&[4, 6]).f());
    let actions = vec![GroupAction::Keep; plan.groups()];
    assert!(matches!(
        jit::apply(&plan, &actions, &x.view(), &mut out.view_mut()),
        Err(DataError::LayoutMismatch { .. })
    ));
    let plan_l1 = plan_for("l1 over dim1 of l1 over dim0", info_of(&t));
    let mut actions = vec![GroupAction::NeedsThreshold(1.0); plan_l1.groups()];
    assert!(matches!(
        jit::threshold(&plan_l1, &y.view(), &mut actions),
        Err(DataError::LayoutMismatch { .. })
    ));
    assert!(matches!(
        jit::threshold(&plan_l1, &t, &mut actions[1..]),
        Err(DataError::Internal(_))
    ));
}

#[test]
fn clif_is_stable_and_readable() {
    let x = ArrayD::<f64>::zeros(IxDyn(&[4, 6]));
    let plan = plan_for("l1 over dim0 of linf over dim1", info_of(&x.view()));
    let a = Jit::new().unwrap().reduce_kernel(&plan).unwrap();
    let b = Jit::new().unwrap().reduce_kernel(&plan).unwrap();
    assert_eq!(a.clif(), b.clif());
    assert!(a.clif().contains("f64x2"), "{}", a.clif());
}

/// Timing of JIT vs interpreter on 4096×4096 (run with
/// `cargo test --release -p multiproj-runtime --test jit -- --ignored --nocapture`).
#[test]
#[ignore]
fn timing_4096() {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    fn time(reps: usize, mut f: impl FnMut()) -> f64 {
        median(
            (0..reps)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    }
    fn run<T: Element>(spec: &str, threads: usize) {
        let mut rng = Rng::new(3);
        let x = make_tensor::<T>(&mut rng, &[4096, 4096], false, NONE, NONE);
        let plan = plan_for(spec, info_of(&x.view()));
        let actions = actions_for(&plan, &x.view(), 0.5);
        let jit_ = Jit::new().unwrap();
        let t = std::time::Instant::now();
        jit_.reduce_kernel(&plan).unwrap();
        jit_.apply_kernel(&plan, false).unwrap();
        let compile = t.elapsed().as_secs_f64() * 1e3;
        let mut out = output_for::<T>(&plan);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let jr = time(7, || {
                jit::reduce_with(&jit_, &plan, &x.view(), &Ticker::none()).unwrap();
            });
            let ja = time(7, || {
                let t = Ticker::none();
                jit::apply_with(&jit_, &plan, &actions, &x.view(), &mut out.view_mut(), &t).unwrap()
            });
            let ir = time(3, || {
                interp::reduce(&plan, &x.view()).unwrap();
            });
            let ia = time(3, || {
                interp::apply(&plan, &actions, &x.view(), &mut out.view_mut()).unwrap()
            });
            println!(
                "{spec:32} {:3} {threads}t  compile {compile:5.1} ms | jit reduce {jr:7.1} apply {ja:7.1} | \
                 interp reduce {ir:7.1} apply {ia:7.1} ms | speedup {:.0}x",
                T::DTYPE,
                (ir + ia) / (jr + ja)
            );
        });
    }
    for spec in [
        "l1 over dim0 of linf over dim1",
        "l1 over dim1 of linf over dim0",
    ] {
        for threads in [1, 2] {
            run::<f64>(spec, threads);
            run::<f32>(spec, threads);
        }
    }
}

/// Timing of the threshold stage, JIT vs interpreter, on 4096×4096 (run with
/// `cargo test --release -p multiproj-runtime --test jit timing_threshold -- --ignored --nocapture`).
#[test]
#[ignore]
fn timing_threshold_4096() {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    fn time(reps: usize, mut f: impl FnMut()) -> f64 {
        median(
            (0..reps)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    }
    fn run<T: Element>(spec: &str, frac: f64, threads: usize) {
        let mut rng = Rng::new(3);
        let x = make_tensor::<T>(&mut rng, &[4096, 4096], false, NONE, NONE);
        let plan = plan_for(spec, info_of(&x.view()));
        let pre = pre_threshold_actions(&plan, &x.view(), frac);
        let needing = pre
            .iter()
            .filter(|a| matches!(a, GroupAction::NeedsThreshold(_)))
            .count();
        let jit_ = Jit::new().unwrap();
        let t = std::time::Instant::now();
        jit_.gather_kernel(&plan).unwrap();
        let compile = t.elapsed().as_secs_f64() * 1e3;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut a = pre.clone();
            let j = time(9, || {
                a.copy_from_slice(&pre);
                jit::threshold_with(&jit_, &plan, &x.view(), &mut a, &Ticker::none()).unwrap();
            });
            let mut b = pre.clone();
            let i = time(3, || {
                b.copy_from_slice(&pre);
                interp::threshold(&plan, &x.view(), &mut b).unwrap();
            });
            assert!(
                a.iter()
                    .zip(&b)
                    .all(|(p, q)| action_bits(*p) == action_bits(*q))
            );
            println!(
                "{spec:30} {:3} frac {frac:4} {threads}t  {needing:4} groups to threshold | \
                 gather compile {compile:4.1} ms | jit {j:7.1} ms | interp {i:7.1} ms | {:.1}x",
                T::DTYPE,
                i / j
            );
        });
    }
    for spec in [
        "l1 over dim0 of l1 over dim1",
        "l1 over dim1 of l1 over dim0",
    ] {
        for threads in [1, 2] {
            for frac in [0.5, 0.05] {
                run::<f64>(spec, frac, threads);
            }
            run::<f32>(spec, 0.5, threads);
        }
    }
}

/// The 16-bit formats round once, to nearest even, in every kernel path (pairs and single
/// elements, rows and columns, in and out of place): scaling by 3/4 puts every value
/// `1 + k·ulp` with odd `k` exactly halfway between two neighbours, and halving the odd
/// subnormals does too. The JIT, the interpreter and `Format::round` of the exact product agree.
#[test]
fn half_precision_ties_round_to_even_in_the_kernels() {
    use multiproj_runtime::float16::{self, Format};
    fn check<T: Element>(f: Format, bits: &[u16], factor: f64, spec: &str, fortran: bool) {
        let jit_ = shared_jit();
        let len = bits.len();
        // 7 groups of odd length: vector pairs and scalar tails.
        let cols = 7;
        let rows = len.div_ceil(cols);
        let values: Vec<T> = (0..rows * cols)
            .map(|i| T::from_f64(f.widen(bits[i % len])))
            .collect();
        let shape = IxDyn(&[rows, cols]);
        let x = if fortran {
            Array::from_shape_vec(shape.f(), values).unwrap()
        } else {
            Array::from_shape_vec(shape, values).unwrap()
        };
        let plan = plan_for(spec, info_of(&x.view()));
        let actions = vec![GroupAction::Scale(factor); plan.groups()];
        let (by_jit, by_interp) = applied_by_both(jit_, &plan, &actions, &x);
        let in_place = applied_in_place_by_jit(jit_, &plan, &actions, &x);
        let ctx = format!("{spec}, {} ({})", plan.tensor(), T::DTYPE);
        assert_bitwise(&ctx, &by_jit.view(), &by_interp.view());
        assert_bitwise(&ctx, &in_place.view(), &by_interp.view());
        for (y, r) in x.iter().zip(by_jit.iter()) {
            let want = f.widen(f.round(y.to_f64() * factor));
            assert_eq!(
                r.to_f64().to_bits(),
                want.to_bits(),
                "{ctx}: {y:?} × {factor}"
            );
        }
    }
    for f in [float16::F16, float16::BF16] {
        let m = f.mant;
        let one = f.round(1.0);
        // [1, 4/3): 1 + k·2^-m; × 3/4 lands on ties for odd k.
        let near_one: Vec<u16> = (0..(1u16 << m) / 3).map(|k| one + k).collect();
        // Subnormals and the smallest normals: × 1/2 lands on ties for odd patterns.
        let tiny: Vec<u16> = (1..(1u16 << (m + 1))).collect();
        for spec in [
            "l1 over dim0 of l2 over dim1",
            "l1 over dim1 of l2 over dim0",
        ] {
            for fortran in [false, true] {
                for (bits, factor) in [(&near_one, 0.75), (&tiny, 0.5)] {
                    if f == float16::F16 {
                        check::<half::f16>(f, bits, factor, spec, fortran);
                    } else {
                        check::<half::bf16>(f, bits, factor, spec, fortran);
                    }
                }
            }
        }
    }
}

/// The 16-bit formats scale in f32 (`solve::apply_one_as`): the result is the product
/// `fl32(y·f)` rounded to the format, in every kernel path (eight lanes, single elements, rows
/// and columns, in and out of place). The factors are chosen so that the exact product lies
/// within half an f32 ulp of a midpoint of the format (where it rounds to the midpoint in f32,
/// which then goes to even) on the other side of it from the even neighbour: rounding the exact
/// product once gives another value for about half of the groups, so a kernel that skipped the
/// f32 step (or did it twice) is caught.
#[test]
fn half_precision_scaling_rounds_the_f32_product() {
    use multiproj_runtime::float16::{self, Format};
    fn check<T: Element>(f: Format, spec: &str, columns: bool, fortran: bool) {
        let jit_ = shared_jit();
        let one = f.round(1.0);
        // Group g: every element y_g (a value in [1, 2)), factor f_g with y_g·f_g near the
        // midpoint above the format's value nearest 0.75·y_g.
        let (mut ys, mut factors) = (Vec::new(), Vec::new());
        for k in 0..(1u16 << f.mant).min(200) {
            let y = f.widen(one + k * 3 % (1 << f.mant));
            let low = f.widen(f.round(0.75 * y));
            let mid = (low + f.widen(f.round(low) + 1)) / 2.0;
            let factor = f64::from((mid / y) as f32);
            ys.push(y);
            factors.push(factor);
        }
        let groups = ys.len();
        let len = 7;
        let shape = if columns {
            [len, groups]
        } else {
            [groups, len]
        };
        let values: Vec<T> = (0..groups * len)
            .map(|i| {
                let g = if columns { i % groups } else { i / len };
                T::from_f64(ys[g])
            })
            .collect();
        let x = if fortran {
            let mut t =
                Array::from_shape_vec(IxDyn(&shape).f(), vec![T::zero(); groups * len]).unwrap();
            for (i, v) in t.indexed_iter_mut() {
                let g = if columns { i[1] } else { i[0] };
                *v = T::from_f64(ys[g]);
            }
            t
        } else {
            Array::from_shape_vec(IxDyn(&shape), values).unwrap()
        };
        let plan = plan_for(spec, info_of(&x.view()));
        assert_eq!(plan.groups(), groups);
        let actions: Vec<GroupAction> = factors.iter().map(|&c| GroupAction::Scale(c)).collect();
        let (by_jit, by_interp) = applied_by_both(jit_, &plan, &actions, &x);
        let in_place = applied_in_place_by_jit(jit_, &plan, &actions, &x);
        let ctx = format!("{spec}, {} ({})", plan.tensor(), T::DTYPE);
        assert_bitwise(&ctx, &by_jit.view(), &by_interp.view());
        assert_bitwise(&ctx, &in_place.view(), &by_interp.view());
        let mut differ = 0;
        for g in 0..groups {
            let idx = if columns { [0, g] } else { [g, 0] };
            let got = by_jit[IxDyn(&idx)].to_f64();
            let y32 = ys[g] as f32;
            let want = f.widen(f.round(f64::from(y32 * factors[g] as f32)));
            assert_eq!(got.to_bits(), want.to_bits(), "{ctx}: group {g}");
            differ += usize::from(want != f.widen(f.round(ys[g] * factors[g])));
        }
        assert!(
            differ * 4 >= groups,
            "{ctx}: only {differ} of {groups} groups discriminate"
        );
    }
    for f in [float16::F16, float16::BF16] {
        for (spec, columns) in [
            ("l1 over dim0 of l2 over dim1", false),
            ("l1 over dim1 of l2 over dim0", true),
        ] {
            for fortran in [false, true] {
                if f == float16::F16 {
                    check::<half::f16>(f, spec, columns, fortran);
                } else {
                    check::<half::bf16>(f, spec, columns, fortran);
                }
            }
        }
    }
}

/// Sums of 16-bit data (l1, l2) are formed in the interpreter's order, to the bit, where the
/// order matters: values from 2^-24 to 65504, whose squares span more than f64's 53 bits, in
/// rows of every length from 1 to 40 (every remainder of the eight-element steps).
#[test]
fn half_precision_sums_keep_the_interpreters_order() {
    fn check<T: Element>(spec: &str, cols: usize) {
        let mut rng = Rng::new(cols as u64);
        let rows = 6;
        let values: Vec<T> = (0..rows * cols)
            .map(|_| {
                let mag = match rng.below(3) {
                    0 => 60000.0 * rng.unit(),
                    1 => 2f64.powi(-24) * rng.below(2000) as f64,
                    _ => rng.unit() * 3.0,
                };
                T::from_f64(if rng.below(2) == 0 { mag } else { -mag })
            })
            .collect();
        let x = Array::from_shape_vec(IxDyn(&[rows, cols]), values).unwrap();
        let plan = plan_for(spec, info_of(&x.view()));
        let from_jit = jit::reduce_with(shared_jit(), &plan, &x.view(), &Ticker::none()).unwrap();
        let from_interp = interp::reduce(&plan, &x.view()).unwrap();
        assert_reduce_close(&plan, &from_jit, &from_interp);
    }
    for cols in 1..=40 {
        for spec in [
            "l1 over dim0 of l2 over dim1",
            "l1 over dim0 of l1 over dim1",
        ] {
            check::<half::f16>(spec, cols);
            check::<half::bf16>(spec, cols);
        }
    }
}
