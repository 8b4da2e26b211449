//! The parser against `numpy.load` itself, on the hand-written cases and random token soup
//! (skipped where python3 with numpy is not installed).

use super::*;

/// What `numpy.load` makes of each file, one line per path: `OK|<f8|1|2,3` or `ERR|reason`.
const NUMPY_LOAD: &str = r#"
import io, sys, warnings
import numpy as np
from numpy.lib import format as fmt
try:
    from numpy.lib._format_impl import _read_array_header
except ImportError:
    _read_array_header = fmt._read_array_header
warnings.simplefilter("ignore")
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    try:
        fp = io.BytesIO(data)
        version = fmt.read_magic(fp)
        shape, fortran, dtype = _read_array_header(fp, version)
        count = 1
        for d in shape:
            count *= int(d)
        count = max(0, min(count, 1 << 20))
        a = np.load(io.BytesIO(data[:fp.tell()] + bytes(count * dtype.itemsize)))
        descr = a.dtype.str if a.dtype.names is None else "other"
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous
        print("OK|%s|%d|%s" % (descr, fortran, ",".join(map(str, a.shape))))
    except Exception as e:
        print("ERR|%s" % type(e).__name__)
"#;

/// Our verdict in the same form: refused unless the header parses with descr '<f8' or
/// '<f4' (all multiproj reads; the test headers use no other dtype NumPy reads).
fn our_verdict(bytes: &[u8]) -> String {
    match parse(bytes) {
        Ok(h) => match &h.descr {
            Literal::Str(descr) if descr == "<f8" || descr == "<f4" => {
                let dims: Vec<String> = h.shape.iter().map(usize::to_string).collect();
                // NumPy calls an array that is both C- and F-contiguous C.
                let fortran = h.fortran_order && h.shape.iter().filter(|&&d| d > 1).count() > 1;
                format!("OK|{descr}|{}|{}", u8::from(fortran), dims.join(","))
            }
            _ => "ERR".into(),
        },
        Err(_) => "ERR".into(),
    }
}

/// Every hand-written case of these tests that NumPy has an opinion on, and a few hundred
/// random ones, against `numpy.load` itself — where python3 with numpy is installed.
#[test]
fn agrees_with_numpy_load() {
    let numpy = std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .output();
    if !matches!(&numpy, Ok(o) if o.status.success()) {
        eprintln!("skipped: python3 with numpy is not installed");
        return;
    }
    let d = "'descr': '<f8', 'fortran_order': False";
    let mut texts: Vec<(u8, String)> = Vec::new();
    let ones = |n: usize| format!("({})", vec!["1"; n].join(", ") + ",");
    let many = [ones(64), ones(65)];
    for shape in [
        "(1,)",
        "(2, 3)",
        "(1 ,2 )",
        "((1),)",
        "(+1,)",
        "(-0,)",
        "(0x1f, 0o10, 0b101)",
        "(0x_1, 0b_1, 0o1_0)",
        "(1_000, 00, 0_0)",
        "()",
        "(1 # c\n, 2)",
        "(1,\\\n 2)",
        "(1L, 2L)",
        "(1 L L,)",
        "(0xfL,)",
        "(1 \\\n L,)",
        "(1l,)",
        "(1LL,)",
        "(1 #\n L,)",
        "(1,) L",
        "(1.5L,)",
        "(1+1, 3)",
        "(2-1,)",
        "(1,)*1",
        "(--1,)",
        "(-True,)",
        "(x,)",
        "(...,)",
        "(f'1',)",
        "(1,),,",
        "(,)",
        "(1 2)",
        "(01,)",
        "(1_,)",
        "(1__0,)",
        "(0x,)",
        "(0o8,)",
        "(0b12,)",
        "(1e,)",
        "[1]",
        "(1)",
        "(1.0,)",
        "(2j,)",
        "(True, 3)",
        "(2, -1)",
        "(18446744073709551616,)",
        &many[0],
        &many[1],
    ] {
        for v in [1, 3] {
            texts.push((v, format!("{{{d}, 'shape': {shape}, }}")));
        }
    }
    for descr in [
        "'<f8'",
        "\"<f4\"",
        "'''<f8'''",
        "r'<f8'",
        "u'<f8'",
        "'<' 'f8'",
        "'\\x3cf8'",
        "'<f\\70'",
        "'<f\\u0038'",
        "'<\\\nf8'",
        "('<f8')",
        "b'<f8'",
        "f'<f8'",
        "'<f8",
        "'\\x4'",
        "r'\\'",
        "ur'<f8'",
    ] {
        texts.push((
            1,
            format!("{{'descr': {descr}, 'fortran_order': True, 'shape': (2, 3)}}"),
        ));
    }
    let f = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}";
    for text in [
        format!("  \t{f}"),
        format!("\n{f}"),
        format!("# c\n{f}"),
        format!("\x0c\n{f}"),
        format!("\\\n{f}"),
        format!("{f} # c\n#d"),
        format!("({f})"),
        format!("{f}\0"),
        format!("{f} ;"),
        format!("{f} {{}}"),
        format!("{f} \\"),
        format!("\n  {f}"),
        format!("  # c\n  {f}"),
        format!(" \\\n {f}"),
        String::new(),
        "{'descr': '<f8', 'shape': (1,)}".into(),
        "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}".into(),
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}".into(),
        "{'descr': '<f8', 'fortran_order': (False), 'shape': (1,), 'descr': '<f4'}".into(),
        "{\"descr\": '<f8', 'fortran_' r'order': False, u'shape': (1,)}".into(),
    ] {
        for v in [1, 2, 3] {
            texts.push((v, text.clone()));
        }
    }
    // Random token soup in the shape, from a fixed seed.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    const SHAPE_SOUP: &[&str] = &[
        "(", ")", ",", " ", "1", "2", "0", "0x1", "0b", "0o7", "_", "L", "-", "+", "True", "1.5",
        "j", "e", "'", "#", "\n", "\\\n", "[", "]", "None", "l",
    ];
    for _ in 0..600 {
        let n = 1 + next(12);
        let soup: String = (0..n).map(|_| SHAPE_SOUP[next(SHAPE_SOUP.len())]).collect();
        let v = 1 + next(3) as u8;
        texts.push((v, format!("{{{d}, 'shape': ({soup}), }}")));
    }

    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut ours = Vec::new();
    for (i, (v, text)) in texts.iter().enumerate() {
        let bytes = padded(*v, text);
        let path = dir.path().join(format!("{i}.npy"));
        std::fs::write(&path, &bytes).unwrap();
        paths.push(path);
        ours.push(our_verdict(&bytes));
    }
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(NUMPY_LOAD)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("ERR") {
                "ERR".into()
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert_eq!(theirs.len(), texts.len());
    let mut disagreements = Vec::new();
    for (i, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
        if ours != theirs {
            disagreements.push(format!("{:?}: ours {ours}, numpy {theirs}", texts[i]));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
