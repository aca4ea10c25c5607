//! A restricted unpickler: reads the pickle opcodes that `torch.save` emits for a state dict and
//! refuses everything else. It never imports or calls anything: the only callables it accepts are
//! the handful of tensor-rebuilding functions and containers on its allow-list, which it
//! interprets itself.

use crate::error::ModelError;
use std::collections::HashMap;

/// A value on the unpickler's stack.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// An allow-listed global, `module.name`.
    Global(String),
    /// A persistent-id record: a tensor storage of `dtype`, found under `key`.
    Storage {
        dtype: StorageType,
        key: String,
        numel: usize,
    },
    /// A tensor view into a storage.
    Tensor(TensorRecord),
    Mark,
}

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageType {
    fn from_global(name: &str) -> Option<Self> {
        Some(match name.rsplit('.').next()? {
            "FloatStorage" => StorageType::F32,
            "DoubleStorage" => StorageType::F64,
            "HalfStorage" => StorageType::F16,
            "BFloat16Storage" => StorageType::BF16,
            "LongStorage" => StorageType::I64,
            "IntStorage" => StorageType::I32,
            "ShortStorage" => StorageType::I16,
            "CharStorage" => StorageType::I8,
            "ByteStorage" => StorageType::U8,
            "BoolStorage" => StorageType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StorageType::F64 | StorageType::I64 => 8,
            StorageType::F32 | StorageType::I32 => 4,
            StorageType::F16 | StorageType::BF16 | StorageType::I16 => 2,
            StorageType::I8 | StorageType::U8 | StorageType::Bool => 1,
        }
    }

    /// Whether the storage holds floating-point numbers (weights), as opposed to counters.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            StorageType::F32 | StorageType::F64 | StorageType::F16 | StorageType::BF16
        )
    }
}

/// A tensor as the pickle describes it: a strided view into a storage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorRecord {
    pub dtype: StorageType,
    pub key: String,
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

const ALLOWED: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_parameter",
    "torch.nn.parameter.Parameter",
];

fn allowed(global: &str) -> bool {
    ALLOWED.contains(&global) || (global.starts_with("torch.") && StorageType::from_global(global).is_some())
}

/// Runs one pickle from `data[*pos..]`, advancing `pos` past its STOP opcode.
pub(crate) fn unpickle(data: &[u8], pos: &mut usize) -> Result<Value, ModelError> {
    let mut m = Machine {
        data,
        pos: *pos,
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    let v = m.run()?;
    *pos = m.pos;
    Ok(v)
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

fn bad(reason: impl Into<String>) -> ModelError {
    ModelError::Format(reason.into())
}

impl Machine<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], ModelError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| bad("truncated pickle"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(self.bytes(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().expect("8 bytes")))
    }
    fn line(&mut self) -> Result<String, ModelError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("truncated pickle"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> Result<Value, ModelError> {
        let b = self.bytes(n)?;
        Ok(Value::Str(
            String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8 string in pickle"))?,
        ))
    }
    fn pop(&mut self) -> Result<Value, ModelError> {
        self.stack.pop().ok_or_else(|| bad("pickle stack underflow"))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, ModelError> {
        let at = self
            .stack
            .iter()
            .rposition(|v| *v == Value::Mark)
            .ok_or_else(|| bad("pickle MARK missing"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn top(&mut self) -> Result<&mut Value, ModelError> {
        self.stack.last_mut().ok_or_else(|| bad("pickle stack underflow"))
    }
    fn memo_get(&self, k: u32) -> Result<Value, ModelError> {
        self.memo
            .get(&k)
            .cloned()
            .ok_or_else(|| bad(format!("pickle memo key {k} missing")))
    }
    fn set_items(&mut self, items: Vec<Value>) -> Result<(), ModelError> {
        if !items.len().is_multiple_of(2) {
            return Err(bad("odd number of dict items"));
        }
        let Value::Dict(d) = self.top()? else {
            return Err(bad("SETITEMS on a non-dict"));
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Value, ModelError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                } // PROTO
                0x95 => {
                    self.u64()?;
                } // FRAME
                b'.' => return self.pop(), // STOP
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64))
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64))
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes
                    let n = self.u8()? as usize;
                    let b = self.bytes(n)?;
                    if n > 8 {
                        let b = b.to_vec();
                        self.stack.push(Value::BigInt(b));
                        continue;
                    }
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v))
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.bytes(8)?.try_into().expect("8 bytes"));
                    self.stack.push(Value::Float(v))
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.bytes(n)?.to_vec();
                    self.stack.push(Value::Bytes(b))
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.bytes(n)?.to_vec();
                    self.stack.push(Value::Bytes(b))
                }
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(bad("pickle stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items))
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'r' => {
                    let k = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    let v = self.memo_get(k)?;
                    self.stack.push(v)
                }
                b'j' => {
                    let k = self.u32()?;
                    let v = self.memo_get(k)?;
                    self.stack.push(v)
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let global = format!("{module}.{name}");
                    if !allowed(&global) {
                        return Err(ModelError::UnsafePickle(global));
                    }
                    self.stack.push(Value::Global(global))
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(bad("STACK_GLOBAL without strings"));
                    };
                    let global = format!("{module}.{name}");
                    if !allowed(&global) {
                        return Err(ModelError::UnsafePickle(global));
                    }
                    self.stack.push(Value::Global(global))
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent(pid)?)
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    self.stack.push(reduce(func, args)?)
                }
                0x81 => {
                    // NEWOBJ: only OrderedDict() and the like are allowed as classes
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(reduce(cls, args)?)
                }
                b'b' => {
                    self.pop()?; // BUILD: state (e.g. a state dict's _metadata) is not needed
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                b'a' => {
                    let v = self.pop()?;
                    let Value::List(l) = self.top()? else {
                        return Err(bad("APPEND on a non-list"));
                    };
                    l.push(v)
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let Value::List(l) = self.top()? else {
                        return Err(bad("APPENDS on a non-list"));
                    };
                    l.extend(items)
                }
                other => return Err(bad(format!("unsupported pickle opcode 0x{other:02x}"))),
            }
        }
    }
}

fn as_usize(v: &Value) -> Result<usize, ModelError> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        _ => Err(bad(format!("expected a non-negative integer, found {v:?}"))),
    }
}

fn usize_list(v: &Value) -> Result<Vec<usize>, ModelError> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(as_usize).collect(),
        _ => Err(bad("expected a tuple of integers")),
    }
}

fn persistent(pid: Value) -> Result<Value, ModelError> {
    let Value::Tuple(items) = pid else {
        return Err(bad("persistent id is not a tuple"));
    };
    match items.as_slice() {
        [
            Value::Str(kind),
            Value::Global(ty),
            Value::Str(key),
            _location,
            numel,
            ..,
        ] if kind == "storage" => {
            let dtype =
                StorageType::from_global(ty).ok_or_else(|| bad(format!("unknown storage type {ty}")))?;
            Ok(Value::Storage {
                dtype,
                key: key.clone(),
                numel: as_usize(numel)?,
            })
        }
        _ => Err(bad("persistent id is not a tensor storage record")),
    }
}

fn reduce(func: Value, args: Value) -> Result<Value, ModelError> {
    let Value::Global(name) = func else {
        return Err(bad("REDUCE on a non-callable"));
    };
    let Value::Tuple(args) = args else {
        return Err(bad("REDUCE arguments are not a tuple"));
    };
    match name.as_str() {
        "collections.OrderedDict" => Ok(Value::Dict(Vec::new())),
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => match args.as_slice() {
            [Value::Storage { dtype, key, numel }, offset, size, stride, ..] => {
                let record = TensorRecord {
                    dtype: *dtype,
                    key: key.clone(),
                    offset: as_usize(offset)?,
                    size: usize_list(size)?,
                    stride: usize_list(stride)?,
                };
                let extent = record
                    .size
                    .iter()
                    .zip(&record.stride)
                    .map(|(s, t)| s.saturating_sub(1) * t)
                    .sum::<usize>();
                if record.size.iter().all(|&s| s > 0) && record.offset + extent >= *numel {
                    return Err(bad(format!("tensor view exceeds its storage '{key}'")));
                }
                Ok(Value::Tensor(record))
            }
            _ => Err(bad("malformed tensor record")),
        },
        "torch._utils._rebuild_parameter" | "torch.nn.parameter.Parameter" => args
            .into_iter()
            .next()
            .ok_or_else(|| bad("malformed parameter record")),
        other => Err(ModelError::UnsafePickle(other.to_string())),
    }
}
