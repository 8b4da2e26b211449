//! The progress bar of `project` and `norm` on stderr (the README's command-line contract: long runs show one when
//! stderr is a terminal).
//!
//! [`run`] decides whether to show it (`--progress auto|always|never`; auto means stderr is a
//! terminal and the input is at least [`LARGE_INPUT`] bytes or the run has taken
//! [`SHOW_AFTER`]), hands the command a [`Bar`] — the runtime's [`Progress`] hook — and draws it
//! from a thread of its own at most every [`INTERVAL`], and at once when a step of the command
//! or a stage of the runtime starts (a handful per run). Ticks from the passes only raise an
//! atomic counter, so the bar costs the passes next to nothing.
//!
//! A frame is one line redrawn in place with `\r`: phase, stage, percent, bytes done of the
//! stage's total, time since the command started. On success a last frame says `done`, ended by
//! a newline; on failure the line is wiped before the diagnostic is printed, and a panic wipes it
//! (and stops all drawing) before the panic is reported: a bar never shares a line with a
//! message. Everything goes through one lock on the screen, so frames never interleave.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use multiproj_runtime::{Progress, Stage};

use crate::args::ProgressArg;

/// Inputs at least this large show the bar from the start (in auto mode, on a terminal).
pub const LARGE_INPUT: u64 = 256 << 20;
/// Smaller inputs show it once the run has taken this long.
pub const SHOW_AFTER: Duration = Duration::from_millis(500);
/// The shortest time between two periodic redraws.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Cells of the drawn bar.
const CELLS: usize = 20;

/// Runs `f` with a progress bar on stderr if `mode` (and, for auto, the terminal and the size
/// of the input) asks for one; `f` gets the bar to hand to the runtime, or `None`.
pub fn run<T, E>(
    mode: ProgressArg,
    input_bytes: u64,
    f: impl FnOnce(Option<&Bar>) -> Result<T, E>,
) -> Result<T, E> {
    let at_once = match mode {
        ProgressArg::Never => return f(None),
        ProgressArg::Auto if !io::stderr().is_terminal() => return f(None),
        ProgressArg::Auto => input_bytes >= LARGE_INPUT,
        ProgressArg::Always => true,
    };
    let bar = Bar::new(at_once);
    thread::scope(|scope| {
        // Stops the drawing thread however `f` ends, a panic included (the scope joins it).
        let _stop = StopOnDrop(&bar);
        // Without a drawing thread the bar still shows each stage as it starts.
        let drawer = thread::Builder::new()
            .name("multiproj-progress".into())
            .spawn_scoped(scope, || bar.draw_periodically())
            .ok();
        let result = f(Some(&bar));
        bar.stop.store(true, Ordering::Release);
        if let Some(d) = drawer {
            d.thread().unpark();
            // The drawing thread does not panic; if it did, the run's result still stands.
            let _ = d.join();
        }
        match &result {
            Ok(_) => bar.finish(),
            Err(_) => screen().clear(),
        }
        result
    })
}

/// Wipes a bar off the screen and stops all drawing, for good: called by the panic hook before
/// it prints.
pub fn silence() {
    let mut s = screen();
    s.clear();
    s.silenced = true;
}

/// The shared state of a bar: written by the command (phase), the runtime (stages, ticks) and
/// read by the drawing thread.
#[derive(Debug)]
pub struct Bar {
    started: Instant,
    /// Drawn (from the start, or since [`SHOW_AFTER`]).
    visible: AtomicBool,
    stop: AtomicBool,
    current: Mutex<Current>,
    /// Elements done in the current stage (the largest count heard).
    done: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
struct Current {
    phase: &'static str,
    stage: Option<Stage>,
    total: u64,
    element_size: u64,
    /// The largest stage total so far: the tensor's elements.
    elements: u64,
}

impl Bar {
    fn new(at_once: bool) -> Self {
        Bar {
            started: Instant::now(),
            visible: AtomicBool::new(at_once),
            stop: AtomicBool::new(false),
            current: Mutex::new(Current {
                phase: "",
                stage: None,
                total: 0,
                element_size: 1,
                elements: 0,
            }),
            done: AtomicU64::new(0),
        }
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        // The state is plain values, consistent at every point: a poisoned lock is still usable.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the command is doing now ("project", "verify", "stats", "norm"); no stage until the
    /// runtime starts one.
    pub fn phase(&self, phase: &'static str) {
        {
            let mut c = self.current();
            c.phase = phase;
            c.stage = None;
            c.total = 0;
            self.done.store(0, Ordering::Relaxed);
        }
        if self.visible.load(Ordering::Relaxed) {
            self.draw();
        }
    }

    /// The size of an element of the tensor in bytes, to show bytes rather than elements.
    pub fn element_size(&self, bytes: usize) {
        self.current().element_size = bytes as u64;
    }

    /// Redraws every [`INTERVAL`] until stopped, once visible.
    fn draw_periodically(&self) {
        let mut next = Instant::now() + INTERVAL;
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now < next {
                thread::park_timeout(next - now);
                continue;
            }
            next = now + INTERVAL;
            if !self.visible.load(Ordering::Relaxed) && self.started.elapsed() >= SHOW_AFTER {
                self.visible.store(true, Ordering::Relaxed);
            }
            if self.visible.load(Ordering::Relaxed) {
                self.draw();
            }
        }
    }

    fn draw(&self) {
        let text = {
            let c = self.current();
            // Read under the lock: a stage start resets the count while holding it.
            let done = self.done.load(Ordering::Relaxed);
            frame(&c, done, self.started.elapsed())
        };
        screen().show(&text);
    }

    /// The end of a successful run: if the bar was shown, a last frame saying so, and a newline.
    fn finish(&self) {
        if self.visible.load(Ordering::Relaxed) {
            let text = {
                let c = self.current();
                done_frame(
                    c.elements.saturating_mul(c.element_size),
                    self.started.elapsed(),
                )
            };
            let mut s = screen();
            s.show(&text);
            s.end_line();
        }
    }
}

impl Progress for Bar {
    fn update(&self, _stage: Stage, done: u64, _total: u64) {
        // Ticks of a stage come only while it runs: the count is the current stage's. Calls
        // from different threads may arrive out of order, so keep the largest.
        self.done.fetch_max(done, Ordering::Relaxed);
    }

    fn start(&self, stage: Stage, total: u64) {
        {
            let mut c = self.current();
            c.stage = Some(stage);
            c.total = total;
            c.elements = c.elements.max(total);
            self.done.store(0, Ordering::Relaxed);
        }
        if self.visible.load(Ordering::Relaxed) {
            self.draw();
        }
    }
}

struct StopOnDrop<'a>(&'a Bar);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
    }
}

/// One line of the bar, e.g.
/// `project: reduce     42% [########------------] 1.1 GiB / 2.6 GiB  3.4s`.
fn frame(c: &Current, done: u64, elapsed: Duration) -> String {
    let phase = if c.phase.is_empty() {
        "starting"
    } else {
        c.phase
    };
    let elapsed = elapsed_text(elapsed);
    let Some(stage) = c.stage else {
        return format!("{phase}  {elapsed}");
    };
    if c.total == 0 {
        return format!("{phase}: {stage:<9}  {elapsed}");
    }
    let done = done.min(c.total);
    let percent = done * 100 / c.total;
    // u128: `done · CELLS` cannot overflow.
    let filled = (u128::from(done) * CELLS as u128 / u128::from(c.total)) as usize;
    format!(
        "{phase}: {stage:<9} {percent:>3}% [{}{}] {} / {}  {elapsed}",
        "#".repeat(filled),
        "-".repeat(CELLS - filled),
        bytes_text(done.saturating_mul(c.element_size)),
        bytes_text(c.total.saturating_mul(c.element_size)),
    )
}

/// The last frame of a successful run, over `bytes` of data.
fn done_frame(bytes: u64, elapsed: Duration) -> String {
    let bytes = bytes_text(bytes);
    format!(
        "done          100% [{}] {bytes} / {bytes}  {}",
        "#".repeat(CELLS),
        elapsed_text(elapsed)
    )
}

/// Bytes in binary units with one decimal (`512 B`, `1.5 KiB`, `2.6 GiB`).
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Seconds with one decimal under a minute, then minutes and seconds (`3.4s`, `2m05s`).
fn elapsed_text(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// What the bar has put on stderr's current line.
struct Screen {
    /// Characters of the line drawn last (0: none on screen).
    width: usize,
    /// After a panic nothing is drawn any more.
    silenced: bool,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen {
    width: 0,
    silenced: false,
});

fn screen() -> MutexGuard<'static, Screen> {
    SCREEN.lock().unwrap_or_else(|e| e.into_inner())
}

// Write errors on stderr are ignored: a bar that cannot be drawn must not fail the run.
impl Screen {
    /// Replaces the line with `text`, blanking what a longer previous line leaves over.
    fn show(&mut self, text: &str) {
        if self.silenced {
            return;
        }
        let width = text.chars().count();
        let pad = self.width.saturating_sub(width);
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{text}{:pad$}", "");
        let _ = err.flush();
        self.width = width;
    }

    /// Wipes the line and returns to its start.
    fn clear(&mut self) {
        if self.width == 0 {
            return;
        }
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{:w$}\r", "", w = self.width);
        let _ = err.flush();
        self.width = 0;
    }

    /// Leaves the line as it is and moves to the next.
    fn end_line(&mut self) {
        if self.width == 0 || self.silenced {
            return;
        }
        let mut err = io::stderr().lock();
        let _ = writeln!(err);
        let _ = err.flush();
        self.width = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(stage: Option<Stage>, total: u64) -> Current {
        Current {
            phase: "project",
            stage,
            total,
            element_size: 8,
            elements: total,
        }
    }

    #[test]
    fn frames() {
        let s = Duration::from_millis(3400);
        assert_eq!(frame(&current(None, 0), 0, s), "project  3.4s");
        assert_eq!(
            frame(&current(Some(Stage::Solve), 0), 0, s),
            "project: solve      3.4s"
        );
        assert_eq!(
            frame(&current(Some(Stage::Reduce), 1 << 27), 1 << 25, s),
            "project: reduce     25% [#####---------------] 256.0 MiB / 1.0 GiB  3.4s"
        );
        // Counts beyond the total (never sent by the runtime) show as done, not as 120%.
        assert_eq!(
            frame(&current(Some(Stage::Apply), 100), 120, s),
            "project: apply     100% [####################] 800 B / 800 B  3.4s"
        );
        let mut c = current(None, 0);
        c.phase = "";
        assert_eq!(frame(&c, 0, Duration::ZERO), "starting  0.0s");
        assert_eq!(
            done_frame(1 << 30, s),
            "done          100% [####################] 1.0 GiB / 1.0 GiB  3.4s"
        );
    }

    #[test]
    fn units() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(1023), "1023 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(5 << 40), "5.0 TiB");
        assert_eq!(bytes_text(u64::MAX), "16384.0 PiB");
        assert_eq!(elapsed_text(Duration::from_secs(125)), "2m05s");
        assert_eq!(elapsed_text(Duration::from_millis(59_940)), "59.9s");
    }

    #[test]
    fn the_count_keeps_the_largest_and_restarts_with_each_stage() {
        let bar = Bar::new(false);
        bar.start(Stage::Reduce, 100);
        bar.update(Stage::Reduce, 60, 100);
        bar.update(Stage::Reduce, 40, 100);
        assert_eq!(bar.done.load(Ordering::Relaxed), 60);
        bar.start(Stage::Apply, 100);
        assert_eq!(bar.done.load(Ordering::Relaxed), 0);
        bar.phase("stats");
        assert!(bar.current().stage.is_none());
    }
}
