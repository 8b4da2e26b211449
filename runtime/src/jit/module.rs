//! Cranelift code generation for the passes over the big tensor: the reduce pass, the gather of
//! the threshold stage (innermost l1) and the apply pass of a [`Plan`] (its stages: see `plan.rs`), compiled to
//! native loop nests.
//!
//! A kernel is compiled for the *structure* of a plan — the pass and its norm or operation, the
//! element type, the depth of the loop nest, whether the innermost loop runs inside one group
//! and whether it is contiguous — never for its sizes: extents and strides are read at run time
//! from a loop descriptor ([`loop_descriptor`]). So a new shape with the same structure reuses
//! the kernels already compiled ([`Jit`] caches them by [`KernelKey`]). A JIT made with
//! [`Jit::with_disk_cache`] also keeps their machine code on disk for later processes (`disk.rs`).
//!
//! [`Jit`] owns the `JITModule` with everything needed to compile into it, in the style of
//! cranelift-jit-demo; the translator (`translate.rs`) has one `translate_*` per kernel kind.
//! Kernel handles keep the module's code alive ([`ReduceKernel`], [`GatherKernel`],
//! [`ApplyKernel`]), so a handle can outlive the [`Jit`] it came from and be called from any
//! thread without a lock.
//!
//! # Kernel ABI
//! Pointers are raw byte addresses, counts and strides are `i64`, strides in elements:
//! - `reduce(data, loops, acc, aux, begin, end) -> i64`: for loop-0 indices `begin..end`, folds
//!   every visited element into `acc[g]` (f64: Σ|x|, Σx² or max|x|, where `g` is the element's
//!   group index relative to the group of the nest's first element); for l2 also max|x| into
//!   `aux[g]` (so the caller can tell a sum of squares that over- or underflowed; `aux` is unused
//!   otherwise). Returns `-1`, or the position in the loop nest (row-major over the loops, loop 0
//!   counted from 0) of a NaN or ±inf it found; it stops at the first one it sees, in the run
//!   where it saw it.
//! - `gather(data, loops, cursor, out, begin, end)`: for loop-0 indices `begin..end`, copies
//!   `|x|` as f64 of every visited element whose group `g` (relative, as above) has
//!   `cursor[g] ≥ 0` to `out[cursor[g]]` and increments `cursor[g]`; groups with a negative
//!   cursor are skipped (their cursors may be rewritten with the same value). A group's elements
//!   are visited in loop-nest order, i.e. memory order, so each gathered group is a contiguous
//!   run of `out` in memory order.
//! - `apply(src, dst, loops, groups, begin, end)`: writes the projected elements. `groups` points
//!   at a [`GroupParams`]: per group `g`, `keep[g]` is all ones for an untouched group, `live[g]`
//!   all ones for a group the operation applies to with parameters `param[g]` (clip radius,
//!   scale factor, or threshold base) and `offset[g]` (threshold offset: the soft threshold is
//!   `(|y| - param) - offset`); a group with neither is zero-filled. For clip and scale, a kept
//!   group must also have `live` all ones and the identity parameter (radius +inf, factor 1):
//!   column-wise kernels compute `op(y) & live` for it. `param32[g]` and `live32[g]` are
//!   `param[g]` rounded to f32 and `live[g]` as a 32-bit mask: the column-wise clip of f32 data
//!   out of place runs on four f32 lanes with them (bit-identical to the clip in f64, rounded).
//!   The in-place kernel ignores `dst` and the output strides, and never stores to an element
//!   of a kept group.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cranelift_codegen::ir::{AbiParam, Function, Signature, UserFuncName, types};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, isa};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

pub use multiproj_compiler::MAX_JAM_ROWS;
use multiproj_compiler::{ApplyOp, DType, KernelShape, Norm, PassKind, Plan};

use super::{disk, translate};

/// Entries of the loop descriptor per loop: extent, data stride, group stride, output stride.
pub(crate) const LOOP_DESC_LEN: usize = 4;

/// The loop descriptor a kernel reads its sizes from: for each loop of `plan.schedule().loops()`, outermost
/// first, `[extent, stride, group_stride, out_stride]` (strides in elements). A plan without
/// loops (a single element) is run as one loop of one element.
pub(crate) fn loop_descriptor(plan: &Plan) -> Vec<i64> {
    if plan.schedule().loops().is_empty() {
        return vec![1, 1, 0, 1];
    }
    plan.schedule()
        .loops()
        .iter()
        .flat_map(|l| {
            [
                l.extent as i64,
                l.stride as i64,
                l.group_stride as i64,
                l.out_stride as i64,
            ]
        })
        .collect()
}

/// The operation of an apply kernel (the plan's [`ApplyOp`], hashable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApplyKind {
    Clip,
    Scale,
    Shrink,
}

impl From<ApplyOp> for ApplyKind {
    fn from(op: ApplyOp) -> Self {
        match op {
            ApplyOp::Clip => ApplyKind::Clip,
            ApplyOp::Scale => ApplyKind::Scale,
            ApplyOp::Shrink => ApplyKind::Shrink,
        }
    }
}

/// Which pass a kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// The innermost norm of every group.
    Reduce(Norm),
    /// The threshold stage's data movement: `|x|` of the groups that need a threshold, group
    /// by group.
    Gather,
    /// The projection of every element, into a separate output or in place.
    Apply { op: ApplyKind, in_place: bool },
}

/// Everything a kernel is specialized on. Two plans with equal keys share kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelKey {
    pub pass: Pass,
    pub dtype: DType,
    /// Number of loops of the nest (at least 1).
    pub depth: usize,
    /// The innermost loop runs inside one group (group stride 0): one group per run.
    pub inner_reduced: bool,
    /// The innermost loop is contiguous in the data (and in the output, out of place, and in the
    /// group index when it is not reduced), so it is vectorized.
    pub inner_contiguous: bool,
    /// Column-wise groups are unrolled-and-jammed this many rows at a time, or 0 (see
    /// [`KernelShape::jam`]).
    pub jam: usize,
}

impl KernelKey {
    /// The key of `pass` for `plan`: the kernel shape its schedule chose for that pass.
    pub(crate) fn for_plan(plan: &Plan, pass: Pass) -> Self {
        let kind = match pass {
            Pass::Reduce(_) => PassKind::Reduce,
            Pass::Gather => PassKind::Gather,
            Pass::Apply {
                in_place: false, ..
            } => PassKind::Apply,
            Pass::Apply { in_place: true, .. } => PassKind::ApplyInPlace,
        };
        let KernelShape {
            depth,
            inner_reduced,
            inner_contiguous,
            jam,
        } = plan.schedule().kernel_shape(kind);
        KernelKey {
            pass,
            dtype: plan.tensor().dtype,
            depth,
            inner_reduced,
            inner_contiguous,
            jam,
        }
    }

    fn name(&self) -> String {
        let pass = match self.pass {
            Pass::Reduce(n) => format!("reduce_{n}"),
            Pass::Gather => "gather".to_string(),
            Pass::Apply { op, in_place } => format!(
                "apply_{}{}",
                format!("{op:?}").to_lowercase(),
                if in_place { "_in_place" } else { "" }
            ),
        };
        format!(
            "{pass}_{}_d{}_{}_{}",
            self.dtype,
            self.depth,
            if self.inner_reduced { "rows" } else { "cols" },
            if self.inner_contiguous {
                "vec"
            } else {
                "strided"
            }
        ) + &if self.jam > 0 {
            format!("_jam{}", self.jam)
        } else {
            String::new()
        }
    }
}

impl fmt::Display for KernelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Code generation failed: the host is not supported, or Cranelift rejected a kernel (a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("code generation failed: {0}")]
pub struct CodegenError(String);

impl CodegenError {
    fn new(what: impl fmt::Display) -> Self {
        CodegenError(what.to_string())
    }
}

/// `reduce(data, loops, acc, aux, begin, end) -> i64`, see the module docs.
type ReduceFn = unsafe extern "C" fn(*const u8, *const i64, *mut f64, *mut f64, i64, i64) -> i64;
/// `gather(data, loops, cursor, out, begin, end)`, see the module docs.
type GatherFn = unsafe extern "C" fn(*const u8, *const i64, *mut i64, *mut f64, i64, i64);
/// `apply(src, dst, loops, groups, begin, end)`, see the module docs.
type ApplyFn = unsafe extern "C" fn(*const u8, *mut u8, *const i64, *const GroupParams, i64, i64);

/// Turns the address of finalized code into a callable function pointer.
///
/// # Safety
/// `code` must be the address `JITModule::get_finalized_function` returned for a function whose
/// Cranelift signature is the one `F` (an `unsafe extern "C" fn` pointer type) describes under the
/// host's default calling convention, and the module's code must stay alive as long as the
/// returned pointer may be called (kernel handles hold an `Arc` to it).
unsafe fn code_as_fn<F: Copy>(code: *const u8) -> F {
    assert_eq!(size_of::<F>(), size_of::<*const u8>());
    // SAFETY: `F` is a function pointer type of the same size (asserted), and `code` points at a
    // finalized function with `F`'s signature (the caller's contract).
    unsafe { std::mem::transmute_copy::<*const u8, F>(&code) }
}

/// The compiled code: the module, and the contexts compilation reuses. `JITModule` is `Send`
/// but not `Sync`, so it lives behind the mutex of [`Jit`].
struct State {
    /// `None` only while being dropped.
    module: Option<JITModule>,
    fctx: FunctionBuilderContext,
    ctx: Context,
    /// Code addresses (as integers, so the state stays `Send`) and CLIF text by key.
    cache: HashMap<KernelKey, (usize, Arc<LazyClif>)>,
    /// Kernels compiled by Cranelift, and kernels loaded from the disk cache.
    compiled: usize,
    loaded: usize,
    /// Where compiled kernels are kept between processes, if anywhere.
    disk: Option<disk::DiskCache>,
}

/// Owner of the code. Dropped when the [`Jit`] and every kernel handle are gone.
struct Code {
    state: Mutex<State>,
}

impl Drop for Code {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(module) = state.module.take() {
            // SAFETY: every kernel handle holds an `Arc<Code>`, so none is left when this runs:
            // no pointer into the module's code can be called any more.
            unsafe { module.free_memory() };
        }
    }
}

/// The JIT: compiles kernels on demand and caches them by [`KernelKey`]. Cheap to share
/// (`Send + Sync`); compilation takes a lock, calling a kernel does not.
pub struct Jit {
    code: Arc<Code>,
}

/// A compiled kernel whose entry point has the function type `F` ([`ReduceKernel`],
/// [`GatherKernel`] or [`ApplyKernel`]). Holds the code alive.
#[derive(Clone)]
pub struct Kernel<F> {
    entry: F,
    key: KernelKey,
    clif: Arc<LazyClif>,
    _code: Arc<Code>,
}

/// A compiled reduce kernel.
pub type ReduceKernel = Kernel<ReduceFn>;
/// A compiled gather kernel.
pub type GatherKernel = Kernel<GatherFn>;
/// A compiled apply kernel.
pub type ApplyKernel = Kernel<ApplyFn>;

impl<F> fmt::Debug for Kernel<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.key.pass {
            Pass::Reduce(_) => "ReduceKernel",
            Pass::Gather => "GatherKernel",
            Pass::Apply { .. } => "ApplyKernel",
        };
        write!(f, "{kind}({})", self.key)
    }
}

impl<F> Kernel<F> {
    pub fn key(&self) -> &KernelKey {
        &self.key
    }

    /// The Cranelift IR of the kernel, as generated (before optimization).
    pub fn clif(&self) -> &str {
        self.clif.get()
    }
}

impl Kernel<ReduceFn> {
    /// Runs the kernel over loop-0 indices `begin..end`. Returns the loop-nest position of a
    /// non-finite element it found, if any.
    ///
    /// # Safety
    /// - `loops` is the descriptor of a plan with this kernel's key ([`loop_descriptor`]).
    /// - For every loop index tuple with loop-0 index in `begin..end` and every other index below
    ///   its loop's extent, `data + Σ index·stride` (in elements of the key's dtype) is a
    ///   readable element, and `acc + Σ index·group_stride` (and, for l2, `aux + …`) a writable
    ///   `f64` nothing else accesses during the call.
    pub(crate) unsafe fn call(
        &self,
        data: *const u8,
        loops: &[i64],
        acc: *mut f64,
        aux: *mut f64,
        begin: usize,
        end: usize,
    ) -> Option<u64> {
        assert_eq!(loops.len(), self.key.depth * LOOP_DESC_LEN);
        assert!(begin <= end && end as i64 <= loops[0]);
        let (begin, end) = (begin as i64, end as i64);
        // SAFETY: the descriptor has the depth the kernel reads (asserted); the memory the
        // kernel touches is in bounds by the caller's contract.
        let pos = unsafe { (self.entry)(data, loops.as_ptr(), acc, aux, begin, end) };
        u64::try_from(pos).ok()
    }
}

impl Kernel<GatherFn> {
    /// Runs the kernel over loop-0 indices `begin..end`.
    ///
    /// # Safety
    /// - `loops` is the descriptor of a plan with this kernel's key ([`loop_descriptor`]).
    /// - For every loop index tuple with loop-0 index in `begin..end` and every other index below
    ///   its loop's extent, `data + Σ index·stride` is a readable element, and
    ///   `cursor + Σ index·group_stride` a writable `i64` nothing else accesses during the call.
    /// - For every group `g` the call visits with `cursor[g] ≥ 0`, `out[cursor[g] ..
    ///   cursor[g] + m]` are writable `f64`s nothing else accesses during the call, where `m` is
    ///   the number of the group's elements the call visits.
    pub(crate) unsafe fn call(
        &self,
        data: *const u8,
        loops: &[i64],
        cursor: *mut i64,
        out: *mut f64,
        begin: usize,
        end: usize,
    ) {
        assert_eq!(loops.len(), self.key.depth * LOOP_DESC_LEN);
        assert!(begin <= end && end as i64 <= loops[0]);
        // SAFETY: the descriptor has the depth the kernel reads (asserted); the memory the
        // kernel touches is in bounds by the caller's contract.
        unsafe { (self.entry)(data, loops.as_ptr(), cursor, out, begin as i64, end as i64) }
    }
}

/// Per-group inputs of an apply kernel, as raw pointers already offset to the group of the
/// nest's first element (see the module docs for their meaning). The kernel reads the
/// pointers in this order. `param32` and `live32` are `param` rounded to f32 and `live` as
/// 32-bit masks, for the f32 column-wise clip, which runs four lanes of f32, and (`param32`
/// only) the column-wise scaling of f16/bf16 data, whose factors are f32s; `param16` and
/// `live16` the same as 16-bit patterns, for the column-wise clip and scaling of f16/bf16 data
/// (eight lanes of bits; empty arrays for other data).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct GroupParams {
    pub(crate) param: *const f64,
    pub(crate) offset: *const f64,
    pub(crate) keep: *const u64,
    pub(crate) live: *const u64,
    pub(crate) param32: *const f32,
    pub(crate) live32: *const u32,
    pub(crate) param16: *const u16,
    pub(crate) live16: *const u16,
}

impl Kernel<ApplyFn> {
    /// Runs the kernel over loop-0 indices `begin..end`.
    ///
    /// # Safety
    /// - `loops` is the descriptor of a plan with this kernel's key ([`loop_descriptor`]).
    /// - For every loop index tuple with loop-0 index in `begin..end` and every other index below
    ///   its loop's extent: `src + Σ index·stride` is a readable element (and, in place, a
    ///   writable one nothing else accesses during the call); out of place,
    ///   `dst + Σ index·out_stride` is a writable element nothing else accesses; the four
    ///   group arrays are readable at `Σ index·group_stride`.
    pub(crate) unsafe fn call(
        &self,
        src: *const u8,
        dst: *mut u8,
        loops: &[i64],
        groups: GroupParams,
        begin: usize,
        end: usize,
    ) {
        assert_eq!(loops.len(), self.key.depth * LOOP_DESC_LEN);
        assert!(begin <= end && end as i64 <= loops[0]);
        // SAFETY: the descriptor has the depth the kernel reads (asserted); the memory the
        // kernel touches is in bounds by the caller's contract.
        unsafe { (self.entry)(src, dst, loops.as_ptr(), &groups, begin as i64, end as i64) }
    }
}

impl Jit {
    /// A JIT for the host machine, with the verifier on in debug builds.
    pub fn new() -> Result<Jit, CodegenError> {
        Self::build(None)
    }

    /// A JIT that also keeps the machine code of the kernels it compiles in `dir`, and loads
    /// kernels compiled there before (by any process of the same user) instead of compiling them
    /// again. See [`default_kernel_cache_dir`](super::default_kernel_cache_dir) for the usual place; the cache is best effort (an
    /// unusable directory only means compiling).
    ///
    /// The directory (created mode 0700 if missing) and each file in it are used only if they
    /// are owned by the effective uid, not writable by group or others, and neither is a
    /// symbolic link (a file must be a regular file): otherwise the kernels are compiled in
    /// memory, the process says why once on stderr, and [`Jit::disk_cache_refusals`] lists the
    /// reasons (see `disk.rs` for the whole trust model).
    pub fn with_disk_cache(dir: impl Into<PathBuf>) -> Result<Jit, CodegenError> {
        Self::build(Some(dir.into()))
    }

    fn build(disk_dir: Option<PathBuf>) -> Result<Jit, CodegenError> {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(CodegenError::new)?;
        flags
            .set(
                "enable_verifier",
                if cfg!(debug_assertions) {
                    "true"
                } else {
                    "false"
                },
            )
            .map_err(CodegenError::new)?;
        // cranelift-jit needs these (see `JITBuilder::with_flags`).
        flags
            .set("use_colocated_libcalls", "false")
            .map_err(CodegenError::new)?;
        flags.set("is_pic", "false").map_err(CodegenError::new)?;
        // `cranelift_native` enables the host's extensions (SSE4.1, FMA, ...) so vector
        // operations lower to instructions, not to libcalls the module could not resolve.
        let isa: isa::OwnedTargetIsa = cranelift_native::builder()
            .map_err(CodegenError::new)?
            .finish(settings::Flags::new(flags))
            .map_err(CodegenError::new)?;
        // What machine code is valid for: cached kernels must match it exactly.
        let target = format!(
            "multiproj {} | {} {} | {} | {}",
            env!("CARGO_PKG_VERSION"),
            isa.name(),
            isa.triple(),
            isa.flags(),
            isa.isa_flags()
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let disk = disk_dir.map(|dir| disk::DiskCache::new(dir, target));
        let module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let ctx = module.make_context();
        Ok(Jit {
            code: Arc::new(Code {
                state: Mutex::new(State {
                    module: Some(module),
                    fctx: FunctionBuilderContext::new(),
                    ctx,
                    cache: HashMap::new(),
                    compiled: 0,
                    loaded: 0,
                    disk,
                }),
            }),
        })
    }

    /// The directory of the disk cache, if this JIT has one.
    pub fn disk_cache_dir(&self) -> Option<PathBuf> {
        self.lock().disk.as_ref().map(|d| d.dir().to_path_buf())
    }

    /// Why the disk cache, or files in it, were not used: one sentence per refusal, naming
    /// the directory or file and the reason (empty without a disk cache, or if it was used).
    pub fn disk_cache_refusals(&self) -> Vec<String> {
        self.lock()
            .disk
            .as_ref()
            .map_or_else(Vec::new, |d| d.refusals().to_vec())
    }

    /// Number of kernels loaded from the disk cache instead of compiled.
    pub fn loaded(&self) -> usize {
        self.lock().loaded
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while compiling leaves no half-finished cache entry behind (entries are
        // inserted after finalization), so a poisoned lock is still usable.
        self.code.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of kernels compiled so far (cache hits and kernels loaded from disk do not count).
    pub fn compiled(&self) -> usize {
        self.lock().compiled
    }

    /// The reduce kernel for `plan`.
    pub fn reduce_kernel(&self, plan: &Plan) -> Result<ReduceKernel, CodegenError> {
        let key = KernelKey::for_plan(plan, Pass::Reduce(plan.innermost().norm));
        // SAFETY: the key's pass is reduce, whose kernels the translator gives the `ReduceFn`
        // signature.
        unsafe { self.handle(key) }
    }

    /// The gather kernel of the threshold stage for `plan`.
    pub fn gather_kernel(&self, plan: &Plan) -> Result<GatherKernel, CodegenError> {
        let key = KernelKey::for_plan(plan, Pass::Gather);
        // SAFETY: the key's pass is gather, whose kernels the translator gives the `GatherFn`
        // signature.
        unsafe { self.handle(key) }
    }

    /// The apply kernel for `plan`, out of place or in place.
    pub fn apply_kernel(&self, plan: &Plan, in_place: bool) -> Result<ApplyKernel, CodegenError> {
        let op = ApplyOp::for_norm(plan.innermost().norm).into();
        let key = KernelKey::for_plan(plan, Pass::Apply { op, in_place });
        // SAFETY: the key's pass is apply, whose kernels the translator gives the `ApplyFn`
        // signature.
        unsafe { self.handle(key) }
    }

    /// A handle on the kernel for `key`, compiled (or found) by [`Jit::kernel`]; it holds the
    /// code alive.
    ///
    /// # Safety
    /// `F` must be the function pointer type of `key`'s pass (see the module docs).
    unsafe fn handle<F: Copy>(&self, key: KernelKey) -> Result<Kernel<F>, CodegenError> {
        let (code, clif) = self.kernel(key)?;
        Ok(Kernel {
            // SAFETY: `code` was compiled for `key`, and `F` is its signature (the caller's
            // contract); the handle holds the code alive.
            entry: unsafe { code_as_fn::<F>(code as *const u8) },
            key,
            clif,
            _code: Arc::clone(&self.code),
        })
    }

    /// The code address and CLIF text of the kernel for `key`, compiling it on a cache miss
    /// (or loading it from the disk cache).
    fn kernel(&self, key: KernelKey) -> Result<(usize, Arc<LazyClif>), CodegenError> {
        let mut guard = self.lock();
        if let Some((code, clif)) = guard.cache.get(&key) {
            return Ok((*code, Arc::clone(clif)));
        }
        let state = &mut *guard;
        let module = state
            .module
            .as_mut()
            .expect("the module lives as long as the Jit");
        let config = module.target_config();
        let call_conv = module.isa().default_call_conv();
        let sig = signature(key, config.pointer_type(), call_conv);
        let id = module
            .declare_function(&key.name(), Linkage::Local, &sig)
            .map_err(CodegenError::new)?;
        let clif = Arc::new(LazyClif {
            key,
            config,
            call_conv,
            text: OnceLock::new(),
        });
        // The disk cache knows a kernel by its key and the code generator's source: what
        // determines its CLIF, without translating it.
        let disk_id = format!("{key:?} codegen {:016x}", codegen_source_hash());
        let cached = state.disk.as_mut().and_then(|d| d.load(&disk_id));
        if let Some((bytes, align)) = cached {
            // Machine code an earlier compile of this very kernel for this very target produced,
            // read from a directory and a file only this user can have written (see `disk`),
            // without relocations: defined as it is.
            module
                .define_function_bytes(id, align, &bytes, &[])
                .map_err(|e| CodegenError::new(format!("{key}: {e:?}")))?;
            state.loaded += 1;
        } else {
            state.ctx.clear();
            state.ctx.func.signature = sig;
            translate::translate(&mut state.ctx.func, &mut state.fctx, key, config);
            // Printed under the kernel's structural name, not its module id (which depends on
            // the order kernels were compiled in), so the text is stable for snapshots.
            state.ctx.func.name = UserFuncName::testcase(key.name());
            let _ = clif.text.set(state.ctx.func.display().to_string());
            state.ctx.func.name = UserFuncName::user(0, id.as_u32());
            let defined = module.define_function(id, &mut state.ctx);
            if defined.is_ok()
                && let (Some(disk), Some(compiled)) =
                    (state.disk.as_mut(), state.ctx.compiled_code())
                && compiled.buffer.relocs().is_empty()
            {
                disk.store(
                    &disk_id,
                    compiled.code_buffer(),
                    u64::from(compiled.buffer.alignment),
                );
            }
            state.ctx.clear();
            defined.map_err(|e| CodegenError::new(format!("{key}: {e:?}")))?;
            state.compiled += 1;
        }
        module.finalize_definitions().map_err(CodegenError::new)?;
        let code = module.get_finalized_function(id) as usize;
        state.cache.insert(key, (code, Arc::clone(&clif)));
        Ok((code, clif))
    }
}

/// The signature of every kernel of `key`'s kind: four pointers and the loop-0 range, and the
/// reduce pass's result.
fn signature(key: KernelKey, ptr: types::Type, call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params
        .extend(std::iter::repeat_n(AbiParam::new(ptr), 4));
    sig.params
        .extend(std::iter::repeat_n(AbiParam::new(types::I64), 2));
    if let Pass::Reduce(_) = key.pass {
        sig.returns.push(AbiParam::new(types::I64));
    }
    sig
}

/// A hash of the code generator's source (this file and the translator): part of the identity
/// of a kernel in the disk cache, so that a changed translator never meets old machine code.
fn codegen_source_hash() -> u64 {
    static HASH: OnceLock<u64> = OnceLock::new();
    *HASH.get_or_init(|| {
        let mut h = DefaultHasher::new();
        include_str!("module.rs").hash(&mut h);
        include_str!("translate/mod.rs").hash(&mut h);
        include_str!("translate/apply.rs").hash(&mut h);
        include_str!("translate/gather.rs").hash(&mut h);
        include_str!("translate/loops.rs").hash(&mut h);
        include_str!("translate/memory.rs").hash(&mut h);
        include_str!("translate/reduce.rs").hash(&mut h);
        h.finish()
    })
}

/// The CLIF text of a kernel, made when first asked for: a kernel loaded from the disk cache is
/// never translated otherwise. The same text a compile prints (same name, same signature, same
/// translation).
struct LazyClif {
    key: KernelKey,
    config: TargetFrontendConfig,
    call_conv: CallConv,
    text: OnceLock<String>,
}

impl LazyClif {
    fn get(&self) -> &str {
        self.text.get_or_init(|| {
            let sig = signature(self.key, self.config.pointer_type(), self.call_conv);
            let mut func =
                Function::with_name_signature(UserFuncName::testcase(self.key.name()), sig);
            translate::translate(
                &mut func,
                &mut FunctionBuilderContext::new(),
                self.key,
                self.config,
            );
            func.display().to_string()
        })
    }
}

impl fmt::Debug for Jit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jit({} kernels)", self.compiled())
    }
}
