//! Tests of the `.npy` files: headers read as NumPy reads them (and hostile ones refused at
//! once), round trips in both orders, outputs that leave nothing behind when dropped, in-place
//! writes, and the errors that name the file.

use super::*;
use crate::files;
use crate::npy_header::MAGIC;
use multiproj_compiler::Order;
use ndarray::{ArrayD, IxDyn, ShapeBuilder, s};
use ndarray_npy::{read_npy, write_npy};
use std::fs;
use std::path::Path;

const SHAPES: &[&[usize]] = &[&[7], &[3, 5], &[2, 3, 4], &[2, 1, 3, 2], &[1, 6]];

fn sample(shape: &[usize], fortran: bool) -> ArrayD<f64> {
    let mut k = 0.0;
    let mut a = ArrayD::zeros(IxDyn(shape).set_f(fortran));
    // Distinct values in index order, so any transposition shows.
    for x in a.iter_mut() {
        k += 1.0;
        *x = k * 0.5 - 3.0;
    }
    a
}

/// An .npy file with a hand-written header, for dtypes ndarray-npy would not write.
fn raw_npy(descr: &str, shape: &[usize], data_len: usize) -> Vec<u8> {
    let shape = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    raw_npy_text(1, dict.as_bytes(), data_len)
}

/// An .npy file of format `version` (1, 2 or 3) whose header text is `dict` padded with
/// spaces and a newline to a multiple of 64 bytes, then `data_len` zero bytes.
fn raw_npy_text(version: u8, dict: &[u8], data_len: usize) -> Vec<u8> {
    let len_bytes = if version == 1 { 2 } else { 4 };
    let unpadded = MAGIC.len() + 2 + len_bytes + dict.len() + 1;
    let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
    let mut out = MAGIC.to_vec();
    out.extend([version, 0]);
    out.extend(&(header_len as u32).to_le_bytes()[..len_bytes]);
    out.extend(dict);
    out.resize(MAGIC.len() + 2 + len_bytes + header_len - 1, b' ');
    out.push(b'\n');
    out.resize(out.len() + data_len, 0);
    out
}

fn with_shape(shape: &str) -> String {
    format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}")
}

/// Issue 8: a 176-byte header of nested lists took hours in `ndarray-npy`'s parser
/// (exponential backtracking), and deeply nested tuples overflowed the stack. Now the
/// first is an unsupported (structured-looking) dtype and the others are refused.
#[test]
fn hostile_headers_are_answered_at_once() {
    let lists = format!("{}{}", "[".repeat(30), "]".repeat(30));
    let dict = format!("{{'descr': {lists}, 'fortran_order': False, 'shape': (6,), }}");
    let e = open_err(&raw_npy_text(1, dict.as_bytes(), 48));
    assert!(
        matches!(&e, DataError::UnsupportedDtype { descr, .. } if *descr == lists),
        "{e:?}"
    );
    let e = open_err(&raw_npy_text(1, with_shape(&lists).as_bytes(), 48));
    assert!(e.to_string().contains("is not a tuple of integers"), "{e}");

    let tuples = |n: usize| format!("{}1{}", "(".repeat(n), ",)".repeat(n));
    let e = open_err(&raw_npy_text(2, with_shape(&tuples(3_000)).as_bytes(), 8));
    assert!(
        e.to_string()
            .contains("is not a .npy file: its header nests too deeply (more than 32 levels"),
        "{e}"
    );
    let e = open_err(&raw_npy_text(2, with_shape(&tuples(5_000)).as_bytes(), 8));
    assert!(
        e.to_string().contains(
            "is not a .npy file: its header is 15092 bytes long, more than the 10000 \
             characters numpy.load reads (its max_header_size)"
        ),
        "{e}"
    );
}

/// Issue 8: headers NumPy refuses were accepted (and a projection of them written out in
/// a form NumPy cannot load), headers it reads were refused.
#[test]
fn headers_are_read_as_numpy_reads_them() {
    // Arithmetic: `ndarray-npy` evaluated it to shape [2, 3].
    let e = open_err(&raw_npy_text(1, with_shape("(1+1, 3)").as_bytes(), 48));
    assert!(
        e.to_string()
            .contains("its header cannot be parsed (arithmetic ('+'), which NumPy does not evaluate, at byte 62)"),
        "{e}"
    );
    // 65 dimensions.
    let e = open_err(&raw_npy_text(
        1,
        with_shape(&format!("({})", "1, ".repeat(65))).as_bytes(),
        8,
    ));
    assert!(
        e.to_string().ends_with(
            "is not a .npy file: its shape has 65 dimensions; NumPy supports at most 64"
        ),
        "{e}"
    );
    // Longer than 10,000 characters, even if valid.
    let mut long = with_shape("(1,)").into_bytes();
    long.resize(10_001, b' ');
    let e = open_err(&raw_npy_text(2, &long, 8));
    assert!(e.to_string().contains("numpy.load reads"), "{e}");
    // `True` as a dimension, a float, a negative one.
    for shape in ["(True,)", "(1.0,)", "(-1,)"] {
        let e = open_err(&raw_npy_text(1, with_shape(shape).as_bytes(), 8));
        assert!(matches!(e, DataError::NotNpy { .. }), "{shape}: {e:?}");
    }

    // What NumPy reads: no final newline, Python 2's `L` suffix, Latin-1 in a comment,
    // another spelling of the same strings.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.npy");
    let no_newline = {
        let dict = with_shape("(2, 3)");
        let mut out = MAGIC.to_vec();
        out.extend([1, 0]);
        let pad = (64 - (10 + dict.len()) % 64) % 64;
        out.extend(((dict.len() + pad) as u16).to_le_bytes());
        out.extend(dict.bytes());
        out.resize(out.len() + pad, b' ');
        out.resize(out.len() + 48, 0);
        out
    };
    assert_eq!(no_newline.len() % 8, 0);
    for bytes in [
        no_newline,
        raw_npy_text(1, with_shape("(2L, 3L)").as_bytes(), 48),
        raw_npy_text(
            2,
            b"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)} # \xe9",
            48,
        ),
        raw_npy_text(
            3,
            "{\"descr\": u'<' 'f8', 'fortran_order': False, 'shape': (0x2, 3)} # é".as_bytes(),
            48,
        ),
    ] {
        fs::write(&path, &bytes).unwrap();
        let f = NpyInput::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.info().shape, [2, 3]);
        assert_eq!(f.dtype(), DType::F64);
    }
}

#[test]
fn structured_dtypes_show_their_literal() {
    let dict =
        "{'descr': [('a', '<f8'), ('b', '<i4', (2,))], 'fortran_order': False, 'shape': (1,), }";
    let e = open_err(&raw_npy_text(1, dict.as_bytes(), 16));
    assert!(
        e.to_string()
            .contains("has dtype '[('a', '<f8'), ('b', '<i4', (2,))]'; multiproj reads"),
        "{e}"
    );
    // Control characters in a dtype string are not written to the terminal raw.
    let e = open_err(&raw_npy("\\x1b[2J", &[1], 8));
    assert!(e.to_string().contains("has dtype '\\u{1b}[2J'"), "{e}");
}

fn open_err(bytes: &[u8]) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npy");
    fs::write(&path, bytes).unwrap();
    let err = NpyInput::open(&path).unwrap_err();
    // The read-write path makes the same decisions.
    assert_eq!(
        NpyInPlace::open(&path).unwrap_err().to_string(),
        err.to_string()
    );
    err
}

#[test]
fn opens_what_ndarray_npy_writes() {
    let dir = tempfile::tempdir().unwrap();
    for &shape in SHAPES {
        for fortran in [false, true] {
            let a = sample(shape, fortran);
            let p64 = dir.path().join("a64.npy");
            let p32 = dir.path().join("a32.npy");
            write_npy(&p64, &a).unwrap();
            write_npy(&p32, &a.mapv(|x| x as f32)).unwrap();

            let f = NpyInput::open(&p64).unwrap();
            let TensorView::F64(v) = f.view() else {
                panic!("dtype")
            };
            assert_eq!(v, a);
            // ndarray-npy writes arrays that are both C and F contiguous (1-D, [1, n]) in C.
            let order = if fortran && !a.is_standard_layout() {
                Order::F
            } else {
                Order::C
            };
            assert_eq!(f.order(), order);
            let expected = TensorInfo::with_order(shape, DType::F64, order);
            assert_eq!(f.info(), expected);
            assert_eq!(v.strides(), expected.strides);
            assert_eq!(f.dtype(), DType::F64);
            assert_eq!(f.path(), p64);

            let f = NpyInput::open(&p32).unwrap();
            let TensorView::F32(v) = f.view() else {
                panic!("dtype")
            };
            assert_eq!(v, a.mapv(|x| x as f32));
            assert_eq!(f.info(), TensorInfo::with_order(shape, DType::F32, order));
        }
    }
}

#[test]
fn output_round_trip_in_both_orders() {
    let dir = tempfile::tempdir().unwrap();
    for &shape in SHAPES {
        for order in [Order::C, Order::F] {
            let a = sample(shape, order == Order::F);
            let target = dir.path().join("out.npy");
            for dtype in [DType::F64, DType::F32, DType::F16] {
                let mut out = NpyOutput::create(&target, dtype, shape, order).unwrap();
                assert_eq!(out.target(), target);
                assert_eq!(out.info(), TensorInfo::with_order(shape, dtype, order));
                let a32 = a.mapv(|x| x as f32);
                let a16 = a.mapv(half::f16::from_f64);
                let src = match dtype {
                    DType::F64 => TensorView::F64(a.view()),
                    DType::F32 => TensorView::F32(a32.view()),
                    DType::F16 => TensorView::F16(a16.view()),
                    DType::BF16 => unreachable!(),
                };
                out.view_mut().assign(&src).unwrap();
                out.commit(true).unwrap();
                match dtype {
                    DType::F64 => assert_eq!(read_npy::<_, ArrayD<f64>>(&target).unwrap(), a),
                    DType::F32 => assert_eq!(read_npy::<_, ArrayD<f32>>(&target).unwrap(), a32),
                    // ndarray-npy has no f16: the header says '<f2', the data is the bits.
                    DType::F16 => {
                        let bytes = fs::read(&target).unwrap();
                        let text = String::from_utf8_lossy(&bytes[..128]);
                        assert!(text.contains("'descr': '<f2'"), "{text}");
                        let back = NpyInput::open(&target).unwrap();
                        let TensorView::F16(v) = back.view() else {
                            panic!("dtype")
                        };
                        assert_eq!(v, a16);
                    }
                    DType::BF16 => unreachable!(),
                }
                let back = NpyInput::open(&target).unwrap();
                assert_eq!(back.order(), order);
                assert_eq!(back.info().strides, a.strides());
            }
        }
    }
    // Only the target is left: no temporary files.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn bfloat16_has_no_npy_type() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.npy");
    let e = NpyOutput::create(&target, DType::BF16, &[2, 2], Order::C).unwrap_err();
    assert!(matches!(e, DataError::Bf16NotInNpy { .. }), "{e:?}");
    assert!(e.to_string().contains("no bfloat16 type"), "{e}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn dropping_an_output_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.npy");
    let mut out = NpyOutput::create(&target, DType::F64, &[4, 4], Order::C).unwrap();
    let TensorViewMut::F64(mut v) = out.view_mut() else {
        panic!("dtype")
    };
    v.fill(1.0);
    // On Linux the file being built has no name at all (O_TMPFILE): a SIGKILL now would
    // leave nothing.
    #[cfg(target_os = "linux")]
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    drop(out);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

    // Where the file system cannot make unnamed files, the named temporary file is removed.
    let temp = files::TempFile::create_named(dir.path(), 0o600).unwrap();
    let name = temp.path().unwrap().to_path_buf();
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    assert!(files::named_temporaries().contains(&name));
    drop(temp);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(!files::named_temporaries().contains(&name));

    // An existing target is untouched until commit, and untouched if there is none.
    fs::write(&target, b"old").unwrap();
    drop(NpyOutput::create(&target, DType::F32, &[2], Order::C).unwrap());
    assert_eq!(fs::read(&target).unwrap(), b"old");
}

#[test]
fn a_target_turned_into_a_fifo_meanwhile_is_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.npy");
    let out = NpyOutput::create(&target, DType::F64, &[2], Order::C).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&target)
        .status()
        .unwrap();
    assert!(made.success());
    let e = out.commit(false).unwrap_err();
    assert!(matches!(&e, DataError::RefusedOutput { .. }), "{e:?}");
    assert!(e.to_string().contains("FIFO"), "{e}");
    assert!(fs::symlink_metadata(&target).unwrap().file_type().is_fifo());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn output_files_get_ordinary_permissions() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, b"").unwrap();
        let target = dir.path().join("out.npy");
        NpyOutput::create(&target, DType::F64, &[1], Order::C)
            .unwrap()
            .commit(true)
            .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&target), mode(&plain));
    }
}

#[test]
fn write_npy_atomic_keeps_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("w.npy");
    let f = sample(&[3, 4], true);
    write_npy_atomic(&target, TensorView::F64(f.view())).unwrap();
    let back = NpyInput::open(&target).unwrap();
    assert_eq!(back.order(), Order::F);
    assert_eq!(read_npy::<_, ArrayD<f64>>(&target).unwrap(), f);

    // A strided view (every other column) is written in C order.
    let c = sample(&[3, 4], false);
    let strided = c.slice(s![.., ..;2]).into_dyn();
    write_npy_atomic(&target, TensorView::F64(strided.view())).unwrap();
    let back = NpyInput::open(&target).unwrap();
    assert_eq!(back.order(), Order::C);
    assert_eq!(read_npy::<_, ArrayD<f64>>(&target).unwrap(), strided);
}

#[test]
fn in_place_writes_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.npy");
    let a = sample(&[2, 3], true);
    write_npy(&path, &a.mapv(|x| x as f32)).unwrap();
    let mut f = NpyInPlace::open(&path).unwrap();
    assert_eq!(f.order(), Order::F);
    assert_eq!(f.info().dtype, DType::F32);
    assert_eq!(f.path(), path);
    let TensorViewMut::F32(mut v) = f.view_mut() else {
        panic!("dtype")
    };
    v.mapv_inplace(|x| 2.0 * x);
    f.flush().unwrap();
    assert_eq!(
        read_npy::<_, ArrayD<f32>>(&path).unwrap(),
        a.mapv(|x| 2.0 * x as f32)
    );
}

#[test]
fn scalars_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.npy");
    write_npy(&path, &ndarray::arr0(2.5f64)).unwrap();
    let f = NpyInput::open(&path).unwrap();
    assert_eq!(f.info().shape, Vec::<usize>::new());
    let TensorView::F64(v) = f.view() else {
        panic!("dtype")
    };
    assert_eq!(v.iter().copied().collect::<Vec<_>>(), [2.5]);
}

#[test]
fn truncated_and_extra_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npy");
    write_npy(&path, &sample(&[4, 4], false)).unwrap();
    let full = fs::read(&path).unwrap();
    assert_eq!(full.len(), 128 + 16 * 8);

    match open_err(&full[..full.len() - 3]) {
        DataError::Truncated {
            expected_bytes: 256,
            actual_bytes: 253,
            ..
        } => {}
        e => panic!("{e:?}"),
    }
    let mut longer = full.clone();
    longer.extend([0; 5]);
    let e = open_err(&longer);
    assert!(matches!(e, DataError::ExtraBytes { extra: 5, .. }), "{e:?}");
    assert!(
        e.to_string()
            .ends_with("has 5 unexpected bytes after the data its header describes")
    );

    // Cut inside the header.
    let e = open_err(&full[..20]);
    assert!(
        e.to_string()
            .ends_with("is not a .npy file: its header is cut short"),
        "{e}"
    );
}

#[test]
fn not_npy_files() {
    for (bytes, reason) in [
        (&b""[..], "the file is empty"),
        (
            b"hello world",
            "it does not start with the .npy magic string",
        ),
        (b"PK\x03\x04rest", "it is a zip archive"),
    ] {
        let e = open_err(bytes);
        assert!(matches!(e, DataError::NotNpy { .. }), "{e:?}");
        assert!(e.to_string().contains(reason), "{e}");
    }
    let mut bad_version = raw_npy("<f8", &[1], 8);
    bad_version[6] = 9;
    assert!(
        open_err(&bad_version)
            .to_string()
            .contains("format version 9.0")
    );
    let mut bad_dict = raw_npy("<f8", &[1], 8);
    bad_dict[10] = b'[';
    assert!(
        open_err(&bad_dict)
            .to_string()
            .contains("its header cannot be parsed")
    );

    let dir = tempfile::tempdir().unwrap();
    let e = NpyInput::open(dir.path()).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("is a directory, not a regular file"),
        "{e}"
    );
}

#[test]
fn unsupported_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.npy");
    write_npy(&path, &ndarray::arr1(&[1i64, 2, 3])).unwrap();
    let e = NpyInput::open(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "'{}' has dtype '<i8'; multiproj reads little-endian float64 ('<f8'), float32 ('<f4') and float16 ('<f2')",
            path.display()
        )
    );

    let e = open_err(&raw_npy(">f8", &[2, 2], 32));
    assert!(matches!(&e, DataError::UnsupportedDtype { descr, .. } if descr == ">f8"));
    assert!(e.to_string().contains("'>f8', which is big-endian"), "{e}");
    assert!(
        open_err(&raw_npy(">f4", &[3], 12))
            .to_string()
            .contains("big-endian")
    );

    let e = open_err(&raw_npy("|O", &[2], 16));
    assert!(
        matches!(&e, DataError::UnsupportedDtype { descr, .. } if descr == "|O"),
        "{e:?}"
    );
    let e = open_err(&raw_npy("<c16", &[2], 32));
    assert!(e.to_string().contains("dtype '<c16'"), "{e}");
}

#[test]
fn empty_tensors_are_refused() {
    let e = open_err(&raw_npy("<f8", &[3, 0], 0));
    assert!(
        matches!(&e, DataError::Empty { shape, .. } if shape == &[3, 0]),
        "{e:?}"
    );
    assert!(
        e.to_string().ends_with("has no elements (shape [3, 0])"),
        "{e}"
    );
}

#[test]
fn misaligned_data_is_refused() {
    // A valid header whose length is not a multiple of 8 (numpy.save never writes one).
    let mut bytes = raw_npy("<f8", &[2], 0);
    let dict_end = bytes.len() - 1;
    bytes.insert(dict_end, b' ');
    let header_len = (bytes.len() - 10) as u16;
    bytes[8..10].copy_from_slice(&header_len.to_le_bytes());
    bytes.extend([0; 16]);
    let e = open_err(&bytes);
    let header_len = bytes.len() - 16;
    assert_eq!(header_len % 8, 1);
    match e {
        DataError::Misaligned { offset, align, .. } => {
            assert_eq!((offset, align), (header_len, 8))
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn io_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = NpyInput::open(&missing.join("x.npy")).unwrap_err();
    assert!(matches!(&e, DataError::Io { action: "open", .. }), "{e:?}");

    let e = NpyOutput::create(&missing.join("out.npy"), DType::F64, &[2], Order::C).unwrap_err();
    match &e {
        DataError::Io { path, action, .. } => {
            assert_eq!(path, &missing);
            assert_eq!(*action, "create a temporary file in");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        e.to_string(),
        format!(
            "could not create a temporary file in '{}'",
            missing.display()
        )
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

    // A directory at the target's name is refused before anything is created.
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("keep"), b"").unwrap();
    let e = NpyOutput::create(&sub, DType::F64, &[2], Order::C).unwrap_err();
    assert!(matches!(&e, DataError::RefusedOutput { .. }), "{e:?}");
    assert!(e.to_string().contains("it is a directory"), "{e}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

    // A rename that fails at commit cleans up the temporary file: the target's directory
    // disappears under us.
    let gone = dir.path().join("gone");
    fs::create_dir(&gone).unwrap();
    let out = NpyOutput::create(&gone.join("o.npy"), DType::F64, &[2], Order::C).unwrap();
    fs::rename(&gone, dir.path().join("moved")).unwrap();
    let e = out.commit(false).unwrap_err();
    assert!(
        matches!(
            &e,
            DataError::Io {
                action: "rename a temporary file onto",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(fs::read_dir(dir.path().join("moved")).unwrap().count(), 0);
}

#[test]
fn finite_check_reports_the_first_index_in_c_order() {
    let mut a = sample(&[3, 4], true);
    a[[2, 0]] = f64::INFINITY;
    a[[1, 3]] = f64::NAN;
    let e = TensorView::F64(a.view()).check_finite().unwrap_err();
    assert_eq!(e.to_string(), "the input holds NaN at index [1, 3]");
    let b = a.mapv(|x| x as f32);
    let e = TensorView::F32(b.slice(s![2.., ..]).into_dyn())
        .check_finite()
        .unwrap_err();
    assert_eq!(e.to_string(), "the input holds +inf at index [0, 0]");
    assert!(
        TensorView::F64(sample(&[2, 2], false).view())
            .check_finite()
            .is_ok()
    );
}

#[test]
fn assign_checks_shape_and_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let mut out =
        NpyOutput::create(&dir.path().join("o.npy"), DType::F64, &[2, 3], Order::C).unwrap();
    let small = sample(&[3], false);
    let e = out
        .view_mut()
        .assign(&TensorView::F64(small.view()))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the output has shape [2, 3], but the result has shape [3]"
    );
    let f32s = sample(&[2, 3], false).mapv(|x| x as f32);
    let e = out
        .view_mut()
        .assign(&TensorView::F32(f32s.view()))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the output has dtype f64, but the result has dtype f32"
    );
}

/// Writes `whole` through a shared output in `parts` slices along `axis` (as processes would,
/// each joining the file the first created), commits, and returns what the target holds.
fn through_shared(
    whole: &ArrayD<f64>,
    axis: usize,
    parts: usize,
    fortran: bool,
    named: bool,
) -> ArrayD<f64> {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.npy");
    let order = if fortran { Order::F } else { Order::C };
    let shape = whole.shape().to_vec();
    let first = SharedOutput::create(
        files::Target::resolve(&target).unwrap(),
        DType::F64,
        &shape,
        order,
        named,
    )
    .unwrap();
    let id = first.identity().unwrap();
    // Unnamed, the file is reached through this process's descriptor, and the directory
    // holds nothing until the commit.
    assert_eq!(first.name().starts_with("/proc/"), !named);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        usize::from(named)
    );
    let n = shape[axis];
    let mut start = 0;
    for p in 0..parts {
        let len = n / parts + usize::from(p < n % parts);
        let part = whole.slice_axis(
            ndarray::Axis(axis),
            ndarray::Slice::from(start..start + len),
        );
        if p == 0 {
            first
                .write_part(axis, start, &TensorView::F64(part))
                .unwrap();
        } else {
            let other =
                SharedOutput::join(first.name(), &target, DType::F64, &shape, order, Some(id))
                    .unwrap();
            other
                .write_part(axis, start, &TensorView::F64(part))
                .unwrap();
            other.finish(p % 2 == 0).unwrap();
        }
        start += len;
    }
    // Nothing at the target until the commit.
    assert!(!target.exists());
    first.commit(true).unwrap();
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the target is left"
    );
    let input = NpyInput::open(&target).unwrap();
    assert_eq!(input.order(), order);
    let TensorView::F64(v) = input.view() else {
        panic!("dtype")
    };
    v.to_owned()
}

#[test]
fn a_shared_output_is_written_slice_by_slice_along_any_axis() {
    for shape in [&[7][..], &[5, 6], &[3, 4, 5], &[2, 1, 3, 4]] {
        for fortran in [false, true] {
            let whole = sample(shape, fortran);
            for axis in 0..shape.len() {
                for parts in [1, 2, 3, shape[axis] + 1] {
                    for named in [false, true] {
                        let got = through_shared(&whole, axis, parts, fortran, named);
                        assert_eq!(
                            got, whole,
                            "{shape:?} axis {axis}, {parts} parts, F {fortran}, named {named}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_shared_output_writes_long_runs_in_pieces() {
    // More than CHUNK_BYTES in one run: the slice along axis 0 of a C-order tensor.
    let whole = sample(&[4, 300_000], false);
    assert_eq!(through_shared(&whole, 0, 2, false, false), whole);
    let whole32 = whole.mapv(|x| x as f32);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("o.npy");
    let out = SharedOutput::create(
        files::Target::resolve(&target).unwrap(),
        DType::F32,
        &[4, 300_000],
        Order::C,
        false,
    )
    .unwrap();
    out.write_part(0, 0, &TensorView::F32(whole32.view()))
        .unwrap();
    out.commit(false).unwrap();
    let back: ArrayD<f32> = read_npy(&target).unwrap();
    assert_eq!(back, whole32);
}

#[test]
fn a_shared_output_refuses_what_is_not_the_file_made_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.npy");
    let shape = [3usize, 4];
    let out = SharedOutput::create(
        files::Target::resolve(&target).unwrap(),
        DType::F64,
        &shape,
        Order::C,
        true,
    )
    .unwrap();
    let id = out.identity().unwrap();
    let join = |name: &Path, dtype, shape: &[usize], order, id| {
        SharedOutput::join(name, &target, dtype, shape, order, id)
            .unwrap_err()
            .to_string()
    };
    // Another dtype, shape or order: another header (or length).
    assert!(join(out.name(), DType::F32, &shape, Order::C, Some(id)).contains("bytes"));
    assert!(join(out.name(), DType::F64, &[4, 3], Order::C, Some(id)).contains("header"));
    assert!(join(out.name(), DType::F64, &shape, Order::F, Some(id)).contains("header"));
    // Another file under the name (as if it had been replaced on this host).
    let elsewhere = (id.0, id.1 + 1);
    assert!(
        join(out.name(), DType::F64, &shape, Order::C, Some(elsewhere)).contains("not the file")
    );
    // A symbolic link to it is not followed.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(out.name(), &link).unwrap();
    assert!(join(&link, DType::F64, &shape, Order::C, None).contains("open"));
    // A second name (a hard link someone made to read the result).
    let hard = dir.path().join("hard");
    fs::hard_link(out.name(), &hard).unwrap();
    assert!(join(out.name(), DType::F64, &shape, Order::C, Some(id)).contains("2 names, not 1"));
    fs::remove_file(&hard).unwrap();
    // A FIFO under the name: refused without blocking.
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert!(join(&fifo, DType::F64, &shape, Order::C, None).contains("not a regular file"));
    // A part that does not fit.
    let part = ArrayD::<f64>::zeros(IxDyn(&[2, 5]));
    assert!(
        out.write_part(0, 0, &TensorView::F64(part.view()))
            .unwrap_err()
            .to_string()
            .contains("does not fit")
    );
    let part = ArrayD::<f64>::zeros(IxDyn(&[2, 4]));
    assert!(out.write_part(0, 2, &TensorView::F64(part.view())).is_err());
    assert!(out.write_part(0, 1, &TensorView::F64(part.view())).is_ok());
    // Only the creator commits; dropped, its temporary file is gone and the target untouched.
    let other =
        SharedOutput::join(out.name(), &target, DType::F64, &shape, Order::C, Some(id)).unwrap();
    assert!(other.commit(false).is_err());
    let name = out.name().to_path_buf();
    drop(out);
    assert!(!name.exists());
    assert!(!target.exists());

    // Unnamed: reached through the creator's descriptor, with no link; another file there (a
    // descriptor reused) is refused by its identity.
    let out = SharedOutput::create(
        files::Target::resolve(&target).unwrap(),
        DType::F64,
        &shape,
        Order::C,
        false,
    )
    .unwrap();
    let id = out.identity().unwrap();
    assert!(
        SharedOutput::join(out.name(), &target, DType::F64, &shape, Order::C, Some(id)).is_ok()
    );
    let elsewhere = (id.0, id.1 + 1);
    assert!(
        join(out.name(), DType::F64, &shape, Order::C, Some(elsewhere)).contains("not the file")
    );
    let name = out.name().to_path_buf();
    drop(out);
    // The descriptor is closed: the name no longer opens, or (tests run in parallel) it names
    // a descriptor another test reused for another file, which the identity refuses.
    let err = join(&name, DType::F64, &shape, Order::C, Some(id));
    assert!(
        err.contains("open") || err.contains("not the file"),
        "{err}"
    );
    // Only the symbolic link and the FIFO made above: the unnamed file left nothing.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn a_shared_output_is_never_a_stream() {
    let err = SharedOutput::create(
        files::Target::resolve(Path::new("/dev/null")).unwrap(),
        DType::F64,
        &[2],
        Order::C,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("regular file"), "{err}");
}
