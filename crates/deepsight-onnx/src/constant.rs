//! Constant tensors (initializers, `Constant` nodes, shape arithmetic) and the operations that
//! fold them at import time, so that the shape-computing subgraphs exporters emit (TF-SAME
//! padding, `x.view(x.size(0), -1)`) vanish before anything runs.

use onnx_protobuf::TensorProto;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A constant tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    pub dims: Vec<usize>,
    pub data: Data,
}

pub(crate) type FoldResult<T> = std::result::Result<T, String>;

/// The element count of `dims`, within the process's tensor budget (a malformed file must not
/// allocate terabytes).
fn numel(dims: &[usize]) -> FoldResult<usize> {
    deepsight_runtime::limits::check_tensor("a constant", dims)?;
    Ok(dims.iter().product())
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Resolves a possibly negative axis against `rank`.
pub(crate) fn axis(a: i64, rank: usize) -> FoldResult<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if (0..r.max(1)).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!("axis {a} is out of range for rank {rank}"))
    }
}

impl Const {
    pub fn f32(dims: Vec<usize>, v: Vec<f32>) -> Const {
        Const {
            dims,
            data: Data::F32(v),
        }
    }

    pub fn i64(dims: Vec<usize>, v: Vec<i64>) -> Const {
        Const {
            dims,
            data: Data::I64(v),
        }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    pub fn to_i64(&self) -> Vec<i64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
        }
    }

    /// The single value of a scalar or one-element tensor.
    pub fn scalar_f32(&self) -> FoldResult<f32> {
        match self.to_f32().as_slice() {
            [v] => Ok(*v),
            v => Err(format!("expected one value, got {}", v.len())),
        }
    }

    /// Reads an initializer or a `Constant` node's tensor.
    pub fn from_proto(t: &TensorProto) -> FoldResult<Const> {
        use onnx_protobuf::tensor_proto::{DataLocation, DataType};
        use protobuf::Enum;
        if !t.external_data.is_empty() || t.data_location.enum_value() == Ok(DataLocation::EXTERNAL) {
            return Err(format!(
                "tensor '{}' keeps its data in an external file; export the model with the weights inside \
                 (torch.onnx.export(..., external_data=False) or onnx.save(model, path, save_as_external_data=False))",
                t.name
            ));
        }
        let dims = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("tensor '{}' has a negative dimension", t.name)))
            .collect::<FoldResult<Vec<_>>>()?;
        let n = numel(&dims)?;
        let raw = &t.raw_data;
        let from_raw = |width: usize| -> FoldResult<Vec<&[u8]>> {
            if raw.len() != n * width {
                return Err(format!(
                    "tensor '{}' of shape {dims:?} has {} bytes of data, expected {}",
                    t.name,
                    raw.len(),
                    n * width
                ));
            }
            Ok(raw.chunks_exact(width).collect())
        };
        let kind = DataType::from_i32(t.data_type)
            .ok_or_else(|| format!("tensor '{}' has an unknown data type", t.name))?;
        let data = match kind {
            DataType::FLOAT if raw.is_empty() => Data::F32(t.float_data.clone()),
            DataType::FLOAT => Data::F32(
                from_raw(4)?
                    .iter()
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DataType::DOUBLE if raw.is_empty() => {
                Data::F32(t.double_data.iter().map(|&v| v as f32).collect())
            }
            DataType::DOUBLE => Data::F32(
                from_raw(8)?
                    .iter()
                    .map(|c| f64::from_le_bytes(c[..8].try_into().expect("8 bytes")) as f32)
                    .collect(),
            ),
            DataType::FLOAT16 if raw.is_empty() => Data::F32(
                t.int32_data
                    .iter()
                    .map(|&b| half::f16::from_bits(b as u16).to_f32())
                    .collect(),
            ),
            DataType::FLOAT16 => Data::F32(
                from_raw(2)?
                    .iter()
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            DataType::INT64 if raw.is_empty() => Data::I64(t.int64_data.clone()),
            DataType::INT64 => Data::I64(
                from_raw(8)?
                    .iter()
                    .map(|c| i64::from_le_bytes(c[..8].try_into().expect("8 bytes")))
                    .collect(),
            ),
            DataType::INT32 | DataType::INT16 | DataType::INT8 | DataType::UINT8 | DataType::BOOL
                if raw.is_empty() =>
            {
                Data::I64(t.int32_data.iter().map(|&v| v as i64).collect())
            }
            DataType::INT32 => Data::I64(
                from_raw(4)?
                    .iter()
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
            ),
            DataType::INT8 => Data::I64(from_raw(1)?.iter().map(|c| c[0] as i8 as i64).collect()),
            DataType::UINT8 | DataType::BOOL => Data::I64(from_raw(1)?.iter().map(|c| c[0] as i64).collect()),
            other => {
                return Err(format!(
                    "tensor '{}' has data type {other:?}, which DeepSight does not read",
                    t.name
                ));
            }
        };
        let c = Const { dims, data };
        if c.len() != n {
            return Err(format!(
                "tensor '{}' has {} values for shape {:?}",
                t.name,
                c.len(),
                c.dims
            ));
        }
        Ok(c)
    }

    fn with_data(&self, dims: Vec<usize>, pick: impl Fn(usize) -> usize) -> FoldResult<Const> {
        let n = numel(&dims)?;
        let data = match &self.data {
            Data::F32(v) => Data::F32((0..n).map(|i| v[pick(i)]).collect()),
            Data::I64(v) => Data::I64((0..n).map(|i| v[pick(i)]).collect()),
        };
        Ok(Const { dims, data })
    }

    /// Same values, new shape (ONNX `Reshape` semantics for 0 and -1, `allowzero` off).
    pub fn reshape(&self, target: &[i64]) -> FoldResult<Const> {
        let dims = resolve_reshape(&self.dims, target)?;
        Ok(Const {
            dims,
            data: self.data.clone(),
        })
    }

    pub fn transpose(&self, perm: &[usize]) -> FoldResult<Const> {
        if perm.len() != self.dims.len() || !(0..perm.len()).all(|i| perm.contains(&i)) {
            return Err(format!("perm {perm:?} does not fit rank {}", self.dims.len()));
        }
        let src = strides(&self.dims);
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims[p]).collect();
        let dst = strides(&dims);
        self.with_data(dims.clone(), |i| {
            perm.iter()
                .enumerate()
                .map(|(k, &p)| (i / dst[k]) % dims[k] * src[p])
                .sum()
        })
    }

    pub fn gather(&self, ax: usize, indices: &Const) -> FoldResult<Const> {
        let d = *self.dims.get(ax).ok_or("gather axis out of range")?;
        let idx = indices
            .to_i64()
            .into_iter()
            .map(|i| {
                let j = if i < 0 { i + d as i64 } else { i };
                usize::try_from(j)
                    .ok()
                    .filter(|&j| j < d)
                    .ok_or(format!("index {i} out of range for {d}"))
            })
            .collect::<FoldResult<Vec<_>>>()?;
        let inner: usize = self.dims[ax + 1..].iter().product();
        let mut dims = self.dims[..ax].to_vec();
        dims.extend(&indices.dims);
        dims.extend(&self.dims[ax + 1..]);
        let k = idx.len();
        self.with_data(dims, |i| {
            let (o, rest) = (i / (k * inner), i % (k * inner));
            o * d * inner + idx[rest / inner] * inner + rest % inner
        })
    }

    /// ONNX `Slice`: per axis `start..end` by `step`, clamped like NumPy.
    pub fn slice(&self, starts: &[i64], ends: &[i64], axes: &[usize], steps: &[i64]) -> FoldResult<Const> {
        let mut ranges: Vec<(i64, i64, usize)> = self.dims.iter().map(|&d| (0, 1, d)).collect();
        for (k, &ax) in axes.iter().enumerate() {
            let d = *self.dims.get(ax).ok_or("slice axis out of range")? as i64;
            let step = steps.get(k).copied().unwrap_or(1);
            if step == 0 {
                return Err("slice step 0".into());
            }
            let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
            let (s, e) = (norm(starts[k]), norm(ends[k]));
            let (s, e) = if step > 0 {
                (s.clamp(0, d), e.clamp(0, d))
            } else {
                (s.clamp(-1, d - 1), e.clamp(-1, d - 1))
            };
            let count = if step > 0 {
                (e - s).max(0).div_euclid(step) + i64::from((e - s).max(0) % step != 0)
            } else {
                let span = (s - e).max(0);
                span / -step + i64::from(span % -step != 0)
            };
            ranges[ax] = (s, step, count as usize);
        }
        let dims: Vec<usize> = ranges.iter().map(|r| r.2).collect();
        let src = strides(&self.dims);
        let dst = strides(&dims);
        self.with_data(dims.clone(), |i| {
            ranges
                .iter()
                .enumerate()
                .map(|(k, &(s, step, _))| ((s + step * ((i / dst[k]) % dims[k]) as i64) as usize) * src[k])
                .sum()
        })
    }

    pub fn concat(parts: &[&Const], ax: usize) -> FoldResult<Const> {
        let first = parts.first().ok_or("nothing to concatenate")?;
        let rank = first.dims.len();
        if ax >= rank {
            return Err(format!(
                "cannot concatenate along axis {ax} of shape {:?}",
                first.dims
            ));
        }
        let float = parts.iter().any(|p| matches!(p.data, Data::F32(_)));
        let mut dims = first.dims.clone();
        dims[ax] = 0;
        for p in parts {
            if p.dims.len() != rank || (0..rank).any(|k| k != ax && p.dims[k] != first.dims[k]) {
                return Err(format!("cannot concatenate {:?} with {:?}", first.dims, p.dims));
            }
            dims[ax] += p.dims[ax];
        }
        let outer: usize = dims[..ax].iter().product();
        let (mut f, mut i) = (Vec::new(), Vec::new());
        for o in 0..outer {
            for p in parts {
                let chunk: usize = p.dims[ax..].iter().product();
                let range = o * chunk..(o + 1) * chunk;
                if float {
                    f.extend_from_slice(&p.to_f32()[range]);
                } else {
                    i.extend_from_slice(&p.to_i64()[range]);
                }
            }
        }
        Ok(if float {
            Const::f32(dims, f)
        } else {
            Const::i64(dims, i)
        })
    }

    /// Elementwise arithmetic with NumPy broadcasting; integer if both are integer.
    pub fn binary(&self, other: &Const, op: &str) -> FoldResult<Const> {
        let rank = self.dims.len().max(other.dims.len());
        let pad = |d: &[usize]| {
            let mut v = vec![1; rank - d.len()];
            v.extend_from_slice(d);
            v
        };
        let (a, b) = (pad(&self.dims), pad(&other.dims));
        let mut dims = vec![0; rank];
        for k in 0..rank {
            dims[k] = match (a[k], b[k]) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(format!("cannot broadcast {:?} with {:?}", self.dims, other.dims)),
            };
        }
        let n = numel(&dims)?;
        let (sa, sb, so) = (strides(&a), strides(&b), strides(&dims));
        let index = |i: usize, d: &[usize], s: &[usize]| -> usize {
            (0..rank)
                .map(|k| {
                    if d[k] == 1 {
                        0
                    } else {
                        (i / so[k]) % dims[k] * s[k]
                    }
                })
                .sum()
        };
        if let (Data::I64(x), Data::I64(y)) = (&self.data, &other.data) {
            let f = |p: i64, q: i64| -> FoldResult<i64> {
                Ok(match op {
                    "Add" => p.wrapping_add(q),
                    "Sub" => p.wrapping_sub(q),
                    "Mul" => p.wrapping_mul(q),
                    "Div" if q == 0 => return Err("integer division by zero".into()),
                    "Div" => p / q,
                    "Pow" => p
                        .checked_pow(q.try_into().map_err(|_| "negative integer power")?)
                        .ok_or("overflow")?,
                    _ => return Err(format!("{op} is not foldable")),
                })
            };
            let v = (0..n)
                .map(|i| f(x[index(i, &a, &sa)], y[index(i, &b, &sb)]))
                .collect::<FoldResult<Vec<_>>>()?;
            return Ok(Const::i64(dims, v));
        }
        let (x, y) = (self.to_f32(), other.to_f32());
        let f = |p: f32, q: f32| match op {
            "Add" => p + q,
            "Sub" => p - q,
            "Mul" => p * q,
            "Div" => p / q,
            _ => p.powf(q),
        };
        let v = (0..n)
            .map(|i| f(x[index(i, &a, &sa)], y[index(i, &b, &sb)]))
            .collect();
        Ok(Const::f32(dims, v))
    }
}

/// ONNX `Reshape` target resolution: 0 copies the input dimension, one -1 is inferred.
pub(crate) fn resolve_reshape(dims: &[usize], target: &[i64]) -> FoldResult<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, &t) in target.iter().enumerate() {
        match t {
            0 => out.push(
                *dims
                    .get(k)
                    .ok_or("a 0 in the shape has no input dimension to copy")?,
            ),
            -1 if infer.is_none() => {
                infer = Some(k);
                out.push(1);
            }
            t if t > 0 => out.push(t as usize),
            _ => return Err(format!("invalid reshape target {target:?}")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(k) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {dims:?} to {target:?}"));
        }
        out[k] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!("cannot reshape {dims:?} ({total} values) to {target:?}"));
    }
    Ok(out)
}
