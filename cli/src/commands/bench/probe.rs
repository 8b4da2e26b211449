//! The bandwidth probe: how fast this machine streams memory, the floor every pass over a
//! tensor is measured against.
//!
//! Like STREAM, on buffers of f64 far larger than the last-level cache, split into chunks that
//! rayon spreads over the threads: a *read* pass (a sum, with eight independent accumulators so
//! that the loop vectorizes), a *write* pass (filling with zeros, which compiles to `memset`:
//! the best a pass over zeroed groups can do) and a *read+write* pass
//! (STREAM's "scale", `b = s·a`). Bytes are counted as STREAM counts them: what the program
//! reads plus what it writes, without the cache's read-for-ownership of written lines. Each pass
//! runs once untimed (which also faults the pages in), then `repeat` times; the median counts.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::{Value, json};

/// f64 elements per parallel task (1 MiB).
const CHUNK: usize = 1 << 17;

/// The probe's measurements. Bandwidths are in GB/s (10⁹ bytes per second).
#[derive(Clone, Debug)]
pub struct Bandwidth {
    pub size_mib: usize,
    pub threads: usize,
    pub repeat: usize,
    pub read_gbps: f64,
    pub write_gbps: f64,
    pub copy_gbps: f64,
    pub read_ms: f64,
    pub write_ms: f64,
    pub copy_ms: f64,
}

/// Runs the probe on the current rayon pool with two buffers of `size_mib` MiB each.
pub fn measure(size_mib: usize, repeat: usize) -> Bandwidth {
    let n = size_mib * (1 << 20) / 8;
    let bytes = (n * 8) as f64;
    let mut a = vec![0.0f64; n];
    let mut b = vec![0.0f64; n];
    // Touch every page (and give `a` values that are not all alike) before anything is timed.
    a.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| chunk.fill(1.0 + c as f64 * 1e-6));
    b.par_chunks_mut(CHUNK).for_each(|chunk| chunk.fill(0.5));

    let read = median(repeat, || {
        let total: f64 = a.par_chunks(CHUNK).map(sum).sum();
        black_box(total);
    });
    let write = median(repeat, || {
        b.par_chunks_mut(CHUNK).for_each(|chunk| chunk.fill(0.0));
        black_box(&b);
    });
    let mut factor = 1.0;
    let copy = median(repeat, || {
        factor *= 1.000_001;
        let s = factor;
        b.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .for_each(|(dst, src)| scale(dst, src, s));
        black_box(&b);
    });
    let gbps = |bytes: f64, t: Duration| bytes / t.as_secs_f64() / 1e9;
    Bandwidth {
        size_mib,
        threads: rayon::current_num_threads(),
        repeat,
        read_gbps: gbps(bytes, read),
        write_gbps: gbps(bytes, write),
        copy_gbps: gbps(2.0 * bytes, copy),
        read_ms: ms(read),
        write_ms: ms(write),
        copy_ms: ms(copy),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// Runs `f` once untimed and `repeat` times timed; the median time.
fn median(repeat: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..repeat.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// `Σ v`, with eight accumulators: a single one would chain every addition to the previous
/// (floating-point addition is not reassociated), and the loop would be latency-bound.
fn sum(v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `dst = s · src`.
fn scale(dst: &mut [f64], src: &[f64], s: f64) {
    for (d, x) in dst.iter_mut().zip(src) {
        *d = s * x;
    }
}

impl Bandwidth {
    pub fn json(&self) -> Value {
        json!({
            "size_mib": self.size_mib,
            "threads": self.threads,
            "repeat": self.repeat,
            "read_gbps": self.read_gbps,
            "write_gbps": self.write_gbps,
            "copy_gbps": self.copy_gbps,
            "read_ms": self.read_ms,
            "write_ms": self.write_ms,
            "copy_ms": self.copy_ms,
        })
    }

    /// Aligned lines, ending in a newline.
    pub fn human(&self) -> String {
        format!(
            "probe          two buffers of {} MiB (f64), {} thread{}, median of {} runs\n\
             read           {:.2} GB/s  (sum)\n\
             write          {:.2} GB/s  (fill with zeros)\n\
             read+write     {:.2} GB/s  (b = s·a, counting bytes read plus bytes written)\n",
            self.size_mib,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.repeat,
            self.read_gbps,
            self.write_gbps,
            self.copy_gbps,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_scales() {
        let v: Vec<f64> = (0..1003).map(f64::from).collect();
        assert_eq!(sum(&v), 1002.0 * 1003.0 / 2.0);
        let mut d = vec![0.0; 5];
        scale(&mut d, &[1.0, 2.0, 3.0, 4.0, 5.0], 2.0);
        assert_eq!(d, [2.0, 4.0, 6.0, 8.0, 10.0]);
    }

    #[test]
    fn a_small_probe_gives_positive_rates() {
        let b = measure(2, 2);
        assert!(b.read_gbps > 0.0 && b.write_gbps > 0.0 && b.copy_gbps > 0.0);
        assert_eq!(b.json()["size_mib"], 2);
    }
}
