//! Progress of a run, for whoever wants to show it: the [`Progress`] hook a caller hands to an
//! [`Executor`](crate::exec::Executor), and the [`Ticker`] the backends tick as they finish
//! pieces of a pass over the data.
//!
//! A run is a sequence of [`Stage`]s. For each one the driver calls [`Progress::start`] (from
//! the calling thread, while no pass is running), the backend then reports the elements it has
//! finished, and the stage ends with `done == total`. Ticks come from rayon's worker threads,
//! once per chunk of work (a JIT chunk, an interpreter row or block), so the hook must be cheap
//! and must not block; a tick costs one relaxed atomic add besides the hook, and nothing at all
//! when no hook is set. Ticks never influence what is computed.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

pub use multiproj_compiler::Stage;

/// Hears how far a run has got. Units are elements of the tensor; stages that do not pass over
/// the data have a total of 0.
///
/// Any `Fn(Stage, u64, u64) + Sync` closure is a `Progress`, called with `(stage, done, total)`
/// (with `done == 0` when a stage starts).
pub trait Progress: Sync {
    /// `done` of `total` elements of `stage` are finished. Called from worker threads after
    /// every chunk; `done` grows within a stage, but calls from different threads may arrive
    /// out of order (keep the largest). Must be cheap and must not block.
    fn update(&self, stage: Stage, done: u64, total: u64);

    /// `stage` starts, with `total` elements to go. Called from the thread that runs the plan,
    /// while no pass is running; the default reports `done == 0`.
    fn start(&self, stage: Stage, total: u64) {
        self.update(stage, 0, total);
    }
}

impl<F: Fn(Stage, u64, u64) + Sync> Progress for F {
    fn update(&self, stage: Stage, done: u64, total: u64) {
        self(stage, done, total)
    }
}

/// The counter of one stage that the backends tick: elements done so far, passed on to the
/// hook. Without a hook, ticking does nothing.
pub struct Ticker<'a> {
    hook: Option<&'a dyn Progress>,
    stage: Stage,
    total: u64,
    done: AtomicU64,
}

impl<'a> Ticker<'a> {
    /// Starts `stage` with `total` elements: tells the hook, if there is one.
    pub fn new(hook: Option<&'a dyn Progress>, stage: Stage, total: usize) -> Self {
        let total = total as u64;
        if let Some(h) = hook {
            h.start(stage, total);
        }
        Ticker {
            hook,
            stage,
            total,
            done: AtomicU64::new(0),
        }
    }

    /// Continues `stage`, which already started (another step of the same stage): like
    /// [`Ticker::new`], without telling the hook again that it starts.
    pub(crate) fn continued(hook: Option<&'a dyn Progress>, stage: Stage, total: usize) -> Self {
        Ticker {
            hook,
            stage,
            total: total as u64,
            done: AtomicU64::new(0),
        }
    }

    /// A ticker that reports to no one.
    pub fn none() -> Ticker<'static> {
        Ticker {
            hook: None,
            stage: Stage::Reduce,
            total: 0,
            done: AtomicU64::new(0),
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// `elements` more elements are done.
    #[inline]
    pub fn tick(&self, elements: usize) {
        if let Some(h) = self.hook {
            let n = elements as u64;
            // Relaxed: the count orders nothing else; each caller sees its own running total.
            let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
            h.update(self.stage, done, self.total);
        }
    }

    /// Elements ticked so far (always 0 without a hook).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Ends the stage: if the ticks did not already reach the total (a stage without a pass
    /// over the data, an empty tensor), the hook hears `done == total` now.
    pub fn finish(self) {
        if let Some(h) = self.hook
            && self.done() != self.total
        {
            h.update(self.stage, self.total, self.total);
        }
    }
}

impl fmt::Debug for Ticker<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker")
            .field("stage", &self.stage)
            .field("done", &self.done())
            .field("total", &self.total)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn ticks_reach_the_hook_and_finish_fills_up() {
        let seen = Mutex::new(Vec::new());
        let hook = |s: Stage, d: u64, t: u64| seen.lock().unwrap().push((s, d, t));
        let t = Ticker::new(Some(&hook), Stage::Apply, 10);
        t.tick(4);
        t.tick(6);
        assert_eq!(t.done(), 10);
        t.finish();
        let t = Ticker::new(Some(&hook), Stage::Solve, 0);
        t.finish();
        let t = Ticker::new(Some(&hook), Stage::Reduce, 5);
        t.tick(2);
        t.finish();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (Stage::Apply, 0, 10),
                (Stage::Apply, 4, 10),
                (Stage::Apply, 10, 10),
                (Stage::Solve, 0, 0),
                (Stage::Reduce, 0, 5),
                (Stage::Reduce, 2, 5),
                (Stage::Reduce, 5, 5),
            ]
        );
    }

    #[test]
    fn without_a_hook_nothing_is_counted() {
        let t = Ticker::none();
        t.tick(100);
        assert_eq!(t.done(), 0);
        t.finish();
    }
}
