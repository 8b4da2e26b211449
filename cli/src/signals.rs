//! Signals: what an interrupted run leaves behind.
//!
//! - **SIGINT, SIGTERM, SIGHUP, SIGQUIT** are received by a thread of their own (signal-hook's
//!   iterator, so the handling runs as ordinary code, not in a signal handler). It removes the
//!   temporary files this process has named (`multiproj_runtime::files::named_temporaries`;
//!   unnamed `O_TMPFILE` outputs vanish with the process anyway), prints one line saying what
//!   was left, and exits with the conventional status 128 + the signal's number. Inside a
//!   [`Deferred`] section — the write pass of `--in-place=map` and every commit — the signal is
//!   held and acted on when the section ends, so a file is never left half-written by them.
//! - **SIGBUS** is what a memory-mapped file gives when a read or write of it cannot be served:
//!   the input was truncated by another process while we read it, or the output's file system
//!   failed (out of space on one without reserved blocks, a vanished network share). The handler
//!   (async-signal-safe: it only loads atomics, calls `write`, `unlink` and `_exit`) tells the
//!   two apart by the faulting address, prints a message prepared beforehand naming the file,
//!   removes named temporary files and exits with status 1.
//! - SIGKILL cannot be caught: `O_TMPFILE` is what makes it leave nothing.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/// Number of open [`Deferred`] sections, and the signal that arrived during one (0: none).
static DEFERRED: AtomicUsize = AtomicUsize::new(0);
static PENDING: AtomicI32 = AtomicI32::new(0);

/// What an interruption leaves, for the message ("nothing was written", "'w.npy' is unchanged").
static LEAVES: Mutex<Option<String>> = Mutex::new(None);

/// Installs the handlers. Called once, at the start of the command.
pub fn install() {
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
    {
        let spawned = std::thread::Builder::new()
            .name("multiproj-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if DEFERRED.load(Ordering::SeqCst) > 0 {
                        PENDING.store(sig, Ordering::SeqCst);
                        say(&format!(
                            "multiproj: {} received; finishing the write in progress first",
                            name(sig)
                        ));
                    } else {
                        terminate(sig);
                    }
                }
            });
        // Without the thread, signals keep their default actions (and O_TMPFILE still holds).
        drop(spawned);
    }
    // SAFETY: `on_bus` only does async-signal-safe things (atomic loads, write, unlink,
    // _exit) and never returns, see its comment. SIGBUS is not one of the signals
    // signal-hook-registry forbids.
    let _ = unsafe { signal_hook_registry::register_sigaction(libc::SIGBUS, on_bus) };
}

/// Says what an interruption from now on leaves behind ("no output was written").
pub fn set_leaves(what: impl Into<String>) {
    *LEAVES.lock().unwrap_or_else(|e| e.into_inner()) = Some(what.into());
}

/// A section during which SIGINT, SIGTERM, SIGHUP and SIGQUIT wait: when the last one ends, a
/// signal that arrived meanwhile ends the process.
#[derive(Debug)]
pub struct Deferred(());

impl Deferred {
    pub fn begin() -> Deferred {
        DEFERRED.fetch_add(1, Ordering::SeqCst);
        Deferred(())
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if DEFERRED.fetch_sub(1, Ordering::SeqCst) == 1 {
            let sig = PENDING.swap(0, Ordering::SeqCst);
            if sig != 0 {
                terminate(sig);
            }
        }
    }
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        SIGQUIT => "SIGQUIT",
        _ => "a signal",
    }
}

/// Writes a line to stderr, ignoring failure (a full or closed stderr must not stop us).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn terminate(sig: i32) -> ! {
    crate::progress::silence();
    for path in multiproj_runtime::files::named_temporaries() {
        let _ = std::fs::remove_file(path);
    }
    let leaves = LEAVES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| "nothing was written".into());
    say(&format!(
        "multiproj: interrupted by {}; {leaves}",
        name(sig)
    ));
    std::process::exit(128 + sig)
}

/// A mapped file whose faults the SIGBUS handler explains, with the message to print.
struct Watched {
    start: AtomicUsize,
    len: AtomicUsize,
    message: AtomicPtr<u8>,
    message_len: AtomicUsize,
}

const WATCHED_SLOTS: usize = 2;
static WATCHED: [Watched; WATCHED_SLOTS] = [const {
    Watched {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        message: AtomicPtr::new(std::ptr::null_mut()),
        message_len: AtomicUsize::new(0),
    }
}; WATCHED_SLOTS];

/// Which mapped file a [`watch`] is about.
#[derive(Clone, Copy, Debug)]
pub enum Mapped {
    /// Slot 0: the input (read).
    Input,
    /// Slot 1: the output, or the input written in place.
    Output,
}

/// Makes the SIGBUS handler explain a fault in `range` (address, length) with `message`. The
/// message is leaked on purpose: the handler may read it at any time until the process ends.
pub fn watch(which: Mapped, range: (usize, usize), message: String) {
    let slot = &WATCHED[which as usize];
    let text: &'static mut [u8] = format!("{message}\n").into_bytes().leak();
    slot.len.store(0, Ordering::SeqCst);
    slot.message_len.store(text.len(), Ordering::SeqCst);
    slot.message.store(text.as_mut_ptr(), Ordering::SeqCst);
    slot.start.store(range.0, Ordering::SeqCst);
    slot.len.store(range.1, Ordering::SeqCst);
}

/// The message for an input cut short under us.
pub fn input_message(path: &Path, what: &str) -> String {
    format!(
        "multiproj: error: '{}' changed size while it was being read (another process truncated \
         or rewrote it); {what}",
        path.display()
    )
}

/// The message for an output whose file system failed a write through the map.
pub fn output_message(path: &Path, what: &str) -> String {
    format!(
        "multiproj: error: could not write '{}': its file system failed a write through the \
         memory map (out of space, over quota, or the device is gone); {what}",
        path.display()
    )
}

/// The SIGBUS handler. Only async-signal-safe calls: atomic loads, `write`, `unlink`, `_exit`.
fn on_bus(info: &libc::siginfo_t) {
    // SAFETY: for SIGBUS the kernel fills in si_addr.
    let addr = unsafe { info.si_addr() } as usize;
    let mut explained = false;
    for slot in &WATCHED {
        let start = slot.start.load(Ordering::SeqCst);
        let len = slot.len.load(Ordering::SeqCst);
        if len != 0 && addr >= start && addr - start < len {
            let msg = slot.message.load(Ordering::SeqCst);
            let n = slot.message_len.load(Ordering::SeqCst);
            if !msg.is_null() {
                // SAFETY: `msg` points to a leaked buffer of `n` bytes (see `watch`).
                unsafe { libc::write(2, msg.cast(), n) };
                explained = true;
            }
            break;
        }
    }
    if !explained {
        let msg = b"multiproj: internal error: bus error (a memory access failed)\n";
        // SAFETY: writing a static buffer to stderr.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
    multiproj_runtime::files::for_each_named_temporary_signal_safe(|path| {
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        unsafe { libc::unlink(path.as_ptr()) };
    });
    // SAFETY: _exit ends the process at once, without running anything else.
    unsafe { libc::_exit(if explained { 1 } else { 128 + libc::SIGBUS }) }
}
