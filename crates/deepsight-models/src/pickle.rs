//! A restricted unpickler: reads the pickle opcodes that `torch.save` emits for a state dict and
//! refuses everything else. It never imports or calls anything: the only callables it accepts are
//! the handful of tensor-rebuilding functions and containers on its allow-list, which it
//! interprets itself.
//!
//! Hostile input is bounded: values live in one arena and containers hold indices into it, so a
//! memo GET shares a value instead of copying it (a few hundred bytes that copy a list into
//! itself per level cannot grow exponentially), nothing recurses (not building, not reading, not
//! dropping: the arena is flat), and every value pushed, shared or new, counts against
//! [`MAX_OBJECTS`]; containers nest at most [`MAX_DEPTH`] levels.

use crate::error::ModelError;
use std::collections::HashMap;

/// The most values one pickle may push (new ones, memo GETs and MARKs alike). A torch state
/// dict pushes about 25 per tensor: this is some 40000 tensors.
pub(crate) const MAX_OBJECTS: usize = 1_000_000;
/// The deepest container nesting one pickle may build (a state dict nests 4 levels).
pub(crate) const MAX_DEPTH: u32 = 1000;

/// Where a value lives in its [`Pickle`]'s arena.
pub(crate) type Id = u32;

/// A value of the unpickler; containers hold the [`Id`]s of their items.
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
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    /// An allow-listed global, `module.name`.
    Global(String),
    /// A persistent-id record: a tensor storage of `dtype`, found under `key`.
    Storage {
        dtype: StorageType,
        key: String,
        numel: usize,
    },
    /// A tensor view into a storage.
    Tensor(Box<TensorRecord>),
}

/// The result of one pickle: its arena and the value its STOP returned.
#[derive(Debug)]
pub(crate) struct Pickle {
    nodes: Vec<Value>,
    root: Id,
}

impl Pickle {
    /// The value the pickle returned.
    pub(crate) fn root(&self) -> &Value {
        self.get(self.root)
    }

    /// The value at `id` (an id this pickle gave out).
    pub(crate) fn get(&self, id: Id) -> &Value {
        &self.nodes[id as usize]
    }
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
pub(crate) fn unpickle(data: &[u8], pos: &mut usize) -> Result<Pickle, ModelError> {
    let mut m = Machine {
        data,
        pos: *pos,
        nodes: Vec::new(),
        depth: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        pushed: 0,
    };
    let root = m.run()?;
    *pos = m.pos;
    Ok(Pickle { nodes: m.nodes, root })
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Value>,
    /// Per node: how deep its containers nest (0 for a scalar). Where a shared container grows
    /// after it was put into another, the outer one's figure is a lower bound: harmless, since
    /// nothing here recurses; the bound is there to refuse absurd files early.
    depth: Vec<u32>,
    stack: Vec<Id>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    /// Values pushed so far, against [`MAX_OBJECTS`].
    pushed: usize,
}

fn bad(reason: impl Into<String>) -> ModelError {
    ModelError::Format(reason.into())
}

/// What a REDUCE gives: a new value, or one of its arguments.
enum Reduced {
    New(Value),
    Same(Id),
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
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array()?))
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
    fn string(&mut self, n: u64) -> Result<Value, ModelError> {
        let n = usize::try_from(n).map_err(|_| bad("truncated pickle"))?;
        let b = self.bytes(n)?;
        Ok(Value::Str(
            String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8 string in pickle"))?,
        ))
    }
    fn count(&mut self) -> Result<(), ModelError> {
        self.pushed += 1;
        if self.pushed > MAX_OBJECTS {
            return Err(bad(format!("the pickle builds more than {MAX_OBJECTS} objects")));
        }
        Ok(())
    }
    /// Pushes an existing value (a memo GET, a parameter's tensor).
    fn push_id(&mut self, id: Id) -> Result<(), ModelError> {
        self.count()?;
        self.stack.push(id);
        Ok(())
    }
    /// Adds `v` to the arena and pushes it.
    fn push(&mut self, v: Value) -> Result<(), ModelError> {
        let depth = match &v {
            Value::Tuple(items) | Value::List(items) => self.nested(items.iter().copied())?,
            Value::Dict(items) => self.nested(items.iter().flat_map(|&(k, v)| [k, v]))?,
            _ => 0,
        };
        let id = Id::try_from(self.nodes.len()).map_err(|_| bad("the pickle has too many values"))?;
        self.count()?;
        self.nodes.push(v);
        self.depth.push(depth);
        self.stack.push(id);
        Ok(())
    }
    /// The depth of a container of `items`, refused past [`MAX_DEPTH`].
    fn nested(&self, items: impl Iterator<Item = Id>) -> Result<u32, ModelError> {
        let d = 1 + items.map(|i| self.depth[i as usize]).max().unwrap_or(0);
        if d > MAX_DEPTH {
            return Err(bad(format!("the pickle nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(d)
    }
    fn pop(&mut self) -> Result<Id, ModelError> {
        self.stack.pop().ok_or_else(|| bad("pickle stack underflow"))
    }
    fn pop_mark(&mut self) -> Result<Vec<Id>, ModelError> {
        let at = self.marks.pop().ok_or_else(|| bad("pickle MARK missing"))?;
        if at > self.stack.len() {
            return Err(bad("pickle stack underflow"));
        }
        Ok(self.stack.split_off(at))
    }
    fn top(&self) -> Result<Id, ModelError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| bad("pickle stack underflow"))
    }
    fn memo_put(&mut self, k: u32) -> Result<(), ModelError> {
        let v = self.top()?;
        if self.memo.insert(k, v).is_none() {
            self.count()?;
        }
        Ok(())
    }
    fn memo_get(&mut self, k: u32) -> Result<(), ModelError> {
        let v = *self
            .memo
            .get(&k)
            .ok_or_else(|| bad(format!("pickle memo key {k} missing")))?;
        self.push_id(v)
    }
    /// Adds `items` to the container on top of the stack (APPEND(S), SETITEM(S)).
    fn extend_top(&mut self, items: Vec<Id>, op: &str) -> Result<(), ModelError> {
        let top = self.top()?;
        let depth = self.nested(items.iter().copied())?.max(self.depth[top as usize]);
        match &mut self.nodes[top as usize] {
            Value::List(l) if op == "APPEND" => l.extend(items),
            Value::Dict(d) if op == "SETITEMS" => {
                if !items.len().is_multiple_of(2) {
                    return Err(bad("odd number of dict items"));
                }
                d.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
            }
            _ => return Err(bad(format!("{op} on a value of the wrong type"))),
        }
        self.depth[top as usize] = depth;
        Ok(())
    }
    fn global(&mut self, module: &str, name: &str) -> Result<(), ModelError> {
        let global = format!("{module}.{name}");
        if !allowed(&global) {
            return Err(ModelError::UnsafePickle(global));
        }
        self.push(Value::Global(global))
    }

    fn run(&mut self) -> Result<Id, ModelError> {
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
                b'(' => {
                    self.count()?;
                    self.marks.push(self.stack.len())
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))?
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64))?
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes
                    let n = self.u8()? as usize;
                    let b = self.bytes(n)?;
                    if n > 8 {
                        let b = b.to_vec();
                        self.push(Value::BigInt(b))?;
                        continue;
                    }
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(v))?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Value::Float(v))?
                }
                b'X' | b'T' => {
                    let n = self.u32()?;
                    let v = self.string(n as u64)?;
                    self.push(v)?
                }
                0x8c | b'U' => {
                    let n = self.u8()?;
                    let v = self.string(n as u64)?;
                    self.push(v)?
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.string(n)?;
                    self.push(v)?
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.bytes(n)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.bytes(n)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                b'}' => self.push(Value::Dict(Vec::new()))?,
                b']' => self.push(Value::List(Vec::new()))?,
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(bad("pickle stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Value::Tuple(items))?
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).map_err(|_| bad("pickle memo overflow"))?;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (self.get(module), self.get(name)) else {
                        return Err(bad("STACK_GLOBAL without strings"));
                    };
                    let (module, name) = (module.clone(), name.clone());
                    self.global(&module, &name)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.push(v)?
                }
                // REDUCE, and NEWOBJ: only OrderedDict() and the like are allowed as classes
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    match self.reduce(func, args)? {
                        Reduced::New(v) => self.push(v)?,
                        Reduced::Same(id) => self.push_id(id)?,
                    }
                }
                b'b' => {
                    self.pop()?; // BUILD: state (e.g. a state dict's _metadata) is not needed
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_top(vec![k, v], "SETITEMS")?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, "SETITEMS")?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(vec![v], "APPEND")?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, "APPEND")?
                }
                other => return Err(bad(format!("unsupported pickle opcode 0x{other:02x}"))),
            }
        }
    }

    fn get(&self, id: Id) -> &Value {
        &self.nodes[id as usize]
    }

    fn as_usize(&self, id: Id) -> Result<usize, ModelError> {
        match self.get(id) {
            Value::Int(i) if *i >= 0 => usize::try_from(*i).map_err(|_| bad("integer out of range")),
            v => Err(bad(format!(
                "expected a non-negative integer, found {}",
                describe(v)
            ))),
        }
    }

    fn usize_list(&self, id: Id) -> Result<Vec<usize>, ModelError> {
        match self.get(id) {
            Value::Tuple(items) | Value::List(items) => items.iter().map(|&i| self.as_usize(i)).collect(),
            _ => Err(bad("expected a tuple of integers")),
        }
    }

    fn persistent(&self, pid: Id) -> Result<Value, ModelError> {
        let Value::Tuple(items) = self.get(pid) else {
            return Err(bad("persistent id is not a tuple"));
        };
        let fields: Vec<&Value> = items.iter().map(|&i| self.get(i)).collect();
        match fields.as_slice() {
            [
                Value::Str(kind),
                Value::Global(ty),
                Value::Str(key),
                _location,
                _numel,
                ..,
            ] if kind == "storage" => {
                let dtype =
                    StorageType::from_global(ty).ok_or_else(|| bad(format!("unknown storage type {ty}")))?;
                Ok(Value::Storage {
                    dtype,
                    key: key.clone(),
                    numel: self.as_usize(items[4])?,
                })
            }
            _ => Err(bad("persistent id is not a tensor storage record")),
        }
    }

    fn reduce(&self, func: Id, args: Id) -> Result<Reduced, ModelError> {
        let Value::Global(name) = self.get(func) else {
            return Err(bad("REDUCE on a non-callable"));
        };
        let Value::Tuple(args) = self.get(args) else {
            return Err(bad("REDUCE arguments are not a tuple"));
        };
        match name.as_str() {
            "collections.OrderedDict" => Ok(Reduced::New(Value::Dict(Vec::new()))),
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => match args.as_slice() {
                &[storage, offset, size, stride, ..] => {
                    let Value::Storage { dtype, key, numel } = self.get(storage) else {
                        return Err(bad("malformed tensor record"));
                    };
                    let record = TensorRecord {
                        dtype: *dtype,
                        key: key.clone(),
                        offset: self.as_usize(offset)?,
                        size: self.usize_list(size)?,
                        stride: self.usize_list(stride)?,
                    };
                    let extent =
                        record
                            .size
                            .iter()
                            .zip(&record.stride)
                            .try_fold(record.offset, |acc, (s, t)| {
                                s.saturating_sub(1)
                                    .checked_mul(*t)
                                    .and_then(|x| acc.checked_add(x))
                            });
                    if record.size.iter().all(|&s| s > 0) && extent.is_none_or(|last| last >= *numel) {
                        return Err(bad(format!("tensor view exceeds its storage '{key}'")));
                    }
                    Ok(Reduced::New(Value::Tensor(Box::new(record))))
                }
                _ => Err(bad("malformed tensor record")),
            },
            "torch._utils._rebuild_parameter" | "torch.nn.parameter.Parameter" => args
                .first()
                .map(|&id| Reduced::Same(id))
                .ok_or_else(|| bad("malformed parameter record")),
            other => Err(ModelError::UnsafePickle(other.to_string())),
        }
    }
}

/// A short description of a value for an error message (never its whole content).
fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => format!("the string {:?}", s.chars().take(40).collect::<String>()),
        Value::Tuple(_) => "a tuple".into(),
        Value::List(_) => "a list".into(),
        Value::Dict(_) => "a dict".into(),
        Value::None => "None".into(),
        Value::Bool(b) => b.to_string(),
        Value::BigInt(_) => "a big integer".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::Global(g) => format!("the global {g}"),
        Value::Storage { .. } => "a storage".into(),
        Value::Tensor(_) => "a tensor".into(),
    }
}
