//! Small file systems mounted for a test — a tmpfs of a given size, an ext2 image (a file system
//! without `fallocate`) — and unmounted when dropped. Mounting takes root (or CAP_SYS_ADMIN);
//! where it is not permitted the constructors return `None` and the test says it skipped. Each
//! test crate uses a different subset, hence the `allow(dead_code)`.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted file system; `.0` is where.
pub struct Mounted(pub PathBuf);

fn ok(c: &mut Command) -> bool {
    c.output().is_ok_and(|o| o.status.success())
}

impl Mounted {
    /// A tmpfs mounted at `at` with the mount options `options` (e.g. `size=1m`).
    pub fn tmpfs(at: &Path, options: &str) -> Option<Mounted> {
        fs::create_dir_all(at).ok()?;
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at))
        .then(|| Mounted(at.to_path_buf()))
    }

    /// An ext2 file system of `mib` MiB in the file `image`, loop-mounted at `at`.
    pub fn ext2(image: &Path, at: &Path, mib: u32) -> Option<Mounted> {
        fs::create_dir_all(at).ok()?;
        ok(Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", image.display()))
            .args(["bs=1M", &format!("count={mib}")]))
        .then_some(())?;
        ok(Command::new("mkfs.ext2").args(["-q", "-F"]).arg(image)).then_some(())?;
        ok(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(at))
        .then(|| Mounted(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
