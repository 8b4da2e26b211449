//! What the compiler needs to know about a tensor: shape, element type and strides.

use std::fmt;

/// Element type of the tensor. Aggregates are always computed in f64; results are rounded to
/// the element type once, to nearest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary16 (NumPy `float16`, torch `float16`).
    F16,
    /// bfloat16: the upper half of an f32 (torch `bfloat16`, `ml_dtypes.bfloat16`).
    BF16,
    F32,
    F64,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// The unit roundoff `u`: storing a result rounds it by a factor in `[1 − u, 1 + u]` (in the
    /// normal range). 2^-53, 2^-24, 2^-11 and 2^-8.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            DType::F64 => f64::EPSILON / 2.0,
            DType::F32 => f64::from(f32::EPSILON) / 2.0,
            DType::F16 => 2f64.powi(-11),
            DType::BF16 => 2f64.powi(-8),
        }
    }

    /// The smallest positive (subnormal) value. 2^-1074, 2^-149, 2^-24 and 2^-133.
    pub fn min_positive_subnormal(self) -> f64 {
        match self {
            DType::F64 => f64::from_bits(1),
            DType::F32 => f64::from(f32::from_bits(1)),
            DType::F16 => 2f64.powi(-24),
            DType::BF16 => 2f64.powi(-133),
        }
    }

    /// Whether the type is one of the 16-bit formats.
    pub fn is_half(self) -> bool {
        matches!(self, DType::F16 | DType::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// Memory order of a tensor, as far as it has a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// Row-major, last axis contiguous.
    C,
    /// Column-major, first axis contiguous.
    F,
    /// Anything else (a sliced, permuted or reversed view).
    Strided,
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::C => "C",
            Order::F => "F",
            Order::Strided => "strided",
        })
    }
}

/// Shape, dtype and strides (in elements, possibly negative) of a tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
    pub dtype: DType,
}

impl TensorInfo {
    /// A dense tensor in C order.
    pub fn c_order(shape: &[usize], dtype: DType) -> Self {
        let mut strides = vec![0isize; shape.len()];
        let mut s = 1isize;
        for (i, &n) in shape.iter().enumerate().rev() {
            strides[i] = s;
            s *= n.max(1) as isize;
        }
        TensorInfo {
            shape: shape.to_vec(),
            strides,
            dtype,
        }
    }

    /// A dense tensor in Fortran order.
    pub fn f_order(shape: &[usize], dtype: DType) -> Self {
        let mut strides = vec![0isize; shape.len()];
        let mut s = 1isize;
        for (i, &n) in shape.iter().enumerate() {
            strides[i] = s;
            s *= n.max(1) as isize;
        }
        TensorInfo {
            shape: shape.to_vec(),
            strides,
            dtype,
        }
    }

    pub fn with_order(shape: &[usize], dtype: DType, order: Order) -> Self {
        match order {
            Order::F => Self::f_order(shape, dtype),
            _ => Self::c_order(shape, dtype),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The named order, judged only on axes longer than 1 (their strides do not matter).
    pub fn order(&self) -> Order {
        if *self == Self::c_order(&self.shape, self.dtype) || self.same_layout(Order::C) {
            Order::C
        } else if self.same_layout(Order::F) {
            Order::F
        } else {
            Order::Strided
        }
    }

    fn same_layout(&self, order: Order) -> bool {
        let dense = Self::with_order(&self.shape, self.dtype, order);
        self.shape
            .iter()
            .zip(self.strides.iter().zip(&dense.strides))
            .all(|(&n, (a, b))| n <= 1 || a == b)
    }
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape: Vec<String> = self.shape.iter().map(|n| n.to_string()).collect();
        let strides: Vec<String> = self.strides.iter().map(|n| n.to_string()).collect();
        write!(
            f,
            "{} {} [{}] order {} strides [{}]",
            self.dtype,
            if self.shape.is_empty() {
                "scalar"
            } else {
                "tensor"
            },
            shape.join("x"),
            self.order(),
            strides.join(", ")
        )
    }
}
