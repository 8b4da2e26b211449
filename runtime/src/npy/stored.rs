//! What an `.npy` header says, checked against the file's bytes (or chosen for a new file), and
//! the views of the data built from it without parsing the header again.

use std::path::Path;

use multiproj_compiler::{DType, Order};
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::{Header, Layout};
use ndarray_npy::{ViewDataError, ViewElement, ViewMutElement, WritableElement};

use super::{TensorView, TensorViewMut};
use crate::DataError;
use crate::npy_header::{self, Literal, MAGIC};

/// The header's type descriptor of `dtype` (bf16 has none; it never gets this far).
fn descriptor(dtype: DType) -> py_literal::Value {
    match dtype {
        DType::F64 => f64::type_descriptor(),
        DType::F32 => f32::type_descriptor(),
        DType::F16 | DType::BF16 => py_literal::Value::String("<f2".into()),
    }
}

/// The descriptor of the Rust element type the data is viewed as (see `Stored::view_descr`).
fn view_descriptor(dtype: DType) -> py_literal::Value {
    match dtype {
        DType::F16 | DType::BF16 => u16::type_descriptor(),
        other => descriptor(other),
    }
}

/// What the header says, checked against the bytes: enough to rebuild a view without
/// re-parsing.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    /// Kept whole because `ViewElement` wants the header's type descriptor.
    header: Header,
    /// The descriptor `ViewElement` checks: the header's, except for f16, whose bytes are
    /// viewed as `u16` (ndarray-npy has no f16) and then cast (`bytemuck`, same layout).
    view_descr: py_literal::Value,
    pub(super) dtype: DType,
    data_offset: usize,
    len: usize,
}

impl Stored {
    /// Parses and checks the header of the mapped file `bytes`, in the order a user would fix
    /// things: is it an .npy at all, is the dtype usable, does the length match, is there data.
    pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Self, DataError> {
        let not_npy = |reason: String| DataError::NotNpy {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.is_empty() {
            return Err(not_npy("the file is empty".into()));
        }
        if !bytes.starts_with(MAGIC) {
            return Err(not_npy(if bytes.starts_with(b"PK\x03\x04") {
                "it is a zip archive (an .npz?); save the array alone with numpy.save".into()
            } else {
                "it does not start with the .npy magic string \\x93NUMPY".into()
            }));
        }
        // Our own parser, not `ndarray-npy`'s, which hangs or overflows the stack on hostile
        // headers and accepts what NumPy refuses (see `npy_header`).
        let parsed = npy_header::parse(bytes).map_err(|e| not_npy(e.to_string()))?;
        let data_offset = parsed.data_offset;

        let dtype = match &parsed.descr {
            Literal::Str(s) if s == "<f8" => DType::F64,
            Literal::Str(s) if s == "<f4" => DType::F32,
            Literal::Str(s) if s == "<f2" => DType::F16,
            other => {
                return Err(DataError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    descr: match other {
                        Literal::Str(s) => npy_header::printable(s),
                        // A structured dtype: show the Python literal from the header.
                        other => other.to_string(),
                    },
                });
            }
        };
        // `ViewElement` wants `ndarray-npy`'s header; build it from what was checked.
        let header = Header {
            type_descriptor: descriptor(dtype),
            layout: if parsed.fortran_order {
                Layout::Fortran
            } else {
                Layout::Standard
            },
            shape: parsed.shape,
        };

        let too_large = || DataError::TooLarge {
            what: format!("'{}'", path.display()),
            shape: header.shape.clone(),
        };
        let len = element_count(&header.shape, dtype).ok_or_else(too_large)?;
        let data_bytes = len * dtype.size();
        let expected = data_offset.checked_add(data_bytes).ok_or_else(too_large)?;
        if bytes.len() < expected {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                expected_bytes: expected as u64,
                actual_bytes: bytes.len() as u64,
            });
        }
        if bytes.len() > expected {
            return Err(DataError::ExtraBytes {
                path: path.to_path_buf(),
                extra: (bytes.len() - expected) as u64,
            });
        }
        if len == 0 {
            return Err(DataError::Empty {
                what: format!("'{}'", path.display()),
                shape: header.shape,
            });
        }
        Ok(Stored {
            view_descr: view_descriptor(dtype),
            header,
            dtype,
            data_offset,
            len,
        })
    }

    /// The header of a new file.
    pub(super) fn new_output(
        target: &Path,
        dtype: DType,
        shape: &[usize],
        order: Order,
    ) -> Result<(Self, Vec<u8>), DataError> {
        if dtype == DType::BF16 {
            return Err(DataError::Bf16NotInNpy {
                path: target.to_path_buf(),
            });
        }
        let header = Header {
            type_descriptor: descriptor(dtype),
            layout: match order {
                Order::F => Layout::Fortran,
                Order::C | Order::Strided => Layout::Standard,
            },
            shape: shape.to_vec(),
        };
        let bytes = header.to_bytes().map_err(|e| {
            DataError::Internal(format!(
                "cannot format an .npy header for shape {shape:?}: {e}"
            ))
        })?;
        let too_large = || DataError::TooLarge {
            what: format!("the output '{}'", target.display()),
            shape: shape.to_vec(),
        };
        let len = element_count(shape, dtype).ok_or_else(too_large)?;
        bytes
            .len()
            .checked_add(len * dtype.size())
            .ok_or_else(too_large)?;
        let stored = Stored {
            view_descr: view_descriptor(dtype),
            header,
            dtype,
            data_offset: bytes.len(),
            len,
        };
        Ok((stored, bytes))
    }

    pub(super) fn total_bytes(&self) -> usize {
        self.data_offset + self.len * self.dtype.size()
    }

    pub(super) fn order(&self) -> Order {
        if self.header.layout.is_fortran() {
            Order::F
        } else {
            Order::C
        }
    }

    fn dim(&self) -> ndarray::Shape<IxDyn> {
        IxDyn(&self.header.shape).set_f(self.header.layout.is_fortran())
    }

    /// The view of the data in `bytes` (the whole file). Fails only on misalignment (checked
    /// once, at open; the mapping's address and length never change afterwards) or a
    /// non-native byte order.
    pub(super) fn try_view<'a>(
        &self,
        path: &Path,
        bytes: &'a [u8],
    ) -> Result<TensorView<'a>, DataError> {
        let data = &bytes[self.data_offset..];
        let descr = &self.view_descr;
        let err = |e| self.view_error(path, e);
        Ok(match self.dtype {
            DType::F64 => TensorView::F64(
                ArrayViewD::from_shape(
                    self.dim(),
                    f64::bytes_as_slice(data, descr, self.len).map_err(err)?,
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
            DType::F32 => TensorView::F32(
                ArrayViewD::from_shape(
                    self.dim(),
                    f32::bytes_as_slice(data, descr, self.len).map_err(err)?,
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
            DType::F16 => TensorView::F16(
                ArrayViewD::from_shape(
                    self.dim(),
                    bytemuck::cast_slice(u16::bytes_as_slice(data, descr, self.len).map_err(err)?),
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
            DType::BF16 => return Err(DataError::Internal("a bf16 .npy header".into())),
        })
    }

    pub(super) fn try_view_mut<'a>(
        &self,
        path: &Path,
        bytes: &'a mut [u8],
    ) -> Result<TensorViewMut<'a>, DataError> {
        let data = &mut bytes[self.data_offset..];
        let descr = &self.view_descr;
        let err = |e| self.view_error(path, e);
        Ok(match self.dtype {
            DType::F64 => TensorViewMut::F64(
                ArrayViewMutD::from_shape(
                    self.dim(),
                    f64::bytes_as_mut_slice(data, descr, self.len).map_err(err)?,
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
            DType::F32 => TensorViewMut::F32(
                ArrayViewMutD::from_shape(
                    self.dim(),
                    f32::bytes_as_mut_slice(data, descr, self.len).map_err(err)?,
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
            DType::F16 => TensorViewMut::F16(
                ArrayViewMutD::from_shape(
                    self.dim(),
                    bytemuck::cast_slice_mut(
                        u16::bytes_as_mut_slice(data, descr, self.len).map_err(err)?,
                    ),
                )
                .map_err(|e| DataError::Internal(format!("npy view: {e}")))?,
            ),
            DType::BF16 => return Err(DataError::Internal("a bf16 .npy header".into())),
        })
    }

    fn view_error(&self, path: &Path, e: ViewDataError) -> DataError {
        match e {
            ViewDataError::Misaligned => DataError::Misaligned {
                path: path.to_path_buf(),
                offset: self.data_offset,
                align: self.dtype.size(),
            },
            // Only on a big-endian machine, where '<f8' is foreign.
            ViewDataError::NonNativeEndian => DataError::UnsupportedDtype {
                path: path.to_path_buf(),
                descr: self.header.type_descriptor.to_string(),
            },
            e => DataError::Internal(format!(
                "viewing '{}' after its header was checked: {e}",
                path.display()
            )),
        }
    }
}

/// Number of elements, if it and its size in bytes fit in `isize` (ndarray's limit).
fn element_count(shape: &[usize], dtype: DType) -> Option<usize> {
    let len = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    let bytes = len.checked_mul(dtype.size())?;
    (bytes <= isize::MAX as usize).then_some(len)
}
