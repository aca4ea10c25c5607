//! PyTorch `.pth` / `.pt` state dicts, read without running any pickled code.
//!
//! Both formats `torch.save` has written: the legacy stream (magic number, protocol, system info,
//! the state-dict pickle, the storage keys, then each storage as a little-endian element count
//! and its raw bytes) and the zip archive (`*/data.pkl` plus one `*/data/<key>` entry per
//! storage). Float tensors become [`WeightTensor`]s; integer tensors (BatchNorm's
//! `num_batches_tracked`) are not weights and are skipped.

use crate::error::{ModelError, Result};
use crate::pickle::{MAX_DEPTH, Pickle, StorageType, TensorRecord, Value, unpickle};
use crate::weights::{WeightTensor, Weights};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// `0x1950a86a20f9469cfc6c`, little-endian, as the legacy format's first pickle holds it.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Reads a `.pth` file.
pub fn read_pth(path: &Path) -> Result<Weights> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.into(),
        source,
    })?;
    parse_pth(&bytes).map_err(|e| e.at(path))
}

/// Parses the bytes of a `.pth` file.
pub fn parse_pth(bytes: &[u8]) -> Result<Weights> {
    if bytes.starts_with(b"PK\x03\x04") {
        parse_zip(bytes)
    } else {
        parse_legacy(bytes)
    }
}

fn fmt(reason: impl Into<String>) -> ModelError {
    ModelError::Format(reason.into())
}

fn parse_legacy(bytes: &[u8]) -> Result<Weights> {
    let mut pos = 0;
    let magic = unpickle(bytes, &mut pos).map_err(|e| match e {
        refused @ ModelError::UnsafePickle(_) => refused,
        _ => fmt("not a PyTorch weight file (no pickle header)"),
    })?;
    if !matches!(magic.root(), Value::BigInt(b) if b[..] == LEGACY_MAGIC) {
        return Err(fmt("not a PyTorch weight file (wrong magic number)"));
    }
    unpickle(bytes, &mut pos)?; // protocol version
    unpickle(bytes, &mut pos)?; // system info
    let root = unpickle(bytes, &mut pos)?;
    let keys = unpickle(bytes, &mut pos)?;
    let Value::List(key_ids) = keys.root() else {
        return Err(fmt("storage key list missing"));
    };
    let records = state_dict(&root)?;
    let mut dtypes: HashMap<&str, StorageType> = HashMap::new();
    for r in records.values() {
        dtypes.insert(&r.key, r.dtype);
    }
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for &id in key_ids {
        let Value::Str(key) = keys.get(id) else {
            return Err(fmt("storage key is not a string"));
        };
        let elem = dtypes.get(key.as_str()).map_or(1, |d| d.size());
        let header = pos
            .checked_add(8)
            .and_then(|end| bytes.get(pos..end))
            .ok_or_else(|| fmt(format!("truncated at storage '{key}'")))?;
        let numel = u64::from_le_bytes(header.try_into().map_err(|_| fmt("truncated"))?);
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem))
            .ok_or_else(|| fmt("storage size overflows"))?;
        let data = (pos + 8)
            .checked_add(len)
            .and_then(|end| bytes.get(pos + 8..end))
            .ok_or_else(|| fmt(format!("truncated: storage '{key}' needs {len} bytes")))?;
        storages.insert(key.clone(), data);
        pos += 8 + len;
    }
    build(records, &storages)
}

/// The most bytes `data.pkl` may decompress to (a real one is kilobytes).
const MAX_PICKLE_BYTES: u64 = 256 << 20;

fn parse_zip(bytes: &[u8]) -> Result<Weights> {
    use std::io::Read;
    let bad = |e: zip::result::ZipError| fmt(format!("broken zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(bad)?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| fmt("no data.pkl in the archive"))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    // Every entry is read under a cap, whatever its header claims: a deflated entry of a few
    // kilobytes can inflate to gigabytes. The storages together are held to the tensor budget.
    let mut budget = deepsight_runtime::limits::max_tensor_bytes();
    let mut read = |name: &str, cap: u64| -> Result<Vec<u8>> {
        let f = archive.by_name(name).map_err(bad)?;
        let mut v = Vec::new();
        f.take(cap.saturating_add(1))
            .read_to_end(&mut v)
            .map_err(|e| fmt(format!("reading '{name}': {e}")))?;
        if v.len() as u64 > cap {
            return Err(fmt(format!(
                "'{name}' decompresses to more than {:.1} MiB, beyond the limit \
                 (raise it with --max-tensor-gib)",
                cap as f64 / (1u64 << 20) as f64
            )));
        }
        Ok(v)
    };
    let pickle = read(pkl, MAX_PICKLE_BYTES)?;
    let records = state_dict(&unpickle(&pickle, &mut 0)?)?;
    let mut owned: HashMap<String, Vec<u8>> = HashMap::new();
    for r in records.values() {
        if !owned.contains_key(&r.key) {
            let data = read(&format!("{prefix}data/{}", r.key), budget)?;
            budget -= data.len() as u64;
            owned.insert(r.key.clone(), data);
        }
    }
    let storages = owned.iter().map(|(k, v)| (k.clone(), v.as_slice())).collect();
    build(records, &storages)
}

/// The `name -> tensor record` pairs of a state dict (or of `{"state_dict": ...}`).
fn state_dict(p: &Pickle) -> Result<BTreeMap<String, TensorRecord>> {
    let Value::Dict(items) = p.root() else {
        return Err(fmt("the pickle holds no state dict"));
    };
    let mut items: &[(u32, u32)] = items;
    // `{"state_dict": {...}}` (or "model"), followed without recursion: a dict that holds
    // itself this way is refused, not followed forever.
    for level in 0.. {
        let [(k, inner)] = items else { break };
        let (Value::Str(k), Value::Dict(inner)) = (p.get(*k), p.get(*inner)) else {
            break;
        };
        if k != "state_dict" && k != "model" {
            break;
        }
        if level >= MAX_DEPTH {
            return Err(fmt(format!("the pickle nests deeper than {MAX_DEPTH} levels")));
        }
        items = inner;
    }
    let mut out = BTreeMap::new();
    for &(k, v) in items {
        match (p.get(k), p.get(v)) {
            (Value::Str(name), Value::Tensor(t)) => {
                out.insert(name.clone(), (**t).clone());
            }
            (Value::Str(_), _) => {} // non-tensor entries (hyper-parameters) are not weights
            _ => return Err(fmt("state dict key is not a string")),
        }
    }
    Ok(out)
}

fn element(dtype: StorageType, b: &[u8]) -> f32 {
    match dtype {
        StorageType::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")),
        StorageType::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
        StorageType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
        StorageType::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        _ => 0.0,
    }
}

fn build(records: BTreeMap<String, TensorRecord>, storages: &HashMap<String, &[u8]>) -> Result<Weights> {
    let mut tensors = BTreeMap::new();
    for (name, r) in records {
        if !r.dtype.is_float() {
            continue;
        }
        let raw = storages
            .get(&r.key)
            .ok_or_else(|| fmt(format!("storage of '{name}' is missing")))?;
        let elem = r.dtype.size();
        let numel = r.size.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let numel = numel
            .filter(|n| n.saturating_mul(elem) <= raw.len())
            .ok_or_else(|| {
                fmt(format!(
                    "tensor '{name}' of shape {:?} is larger than its storage",
                    r.size
                ))
            })?;
        let past = || fmt(format!("tensor '{name}' reaches past its storage"));
        if r.size.len() != r.stride.len() {
            return Err(fmt(format!(
                "tensor '{name}' has {} sizes but {} strides",
                r.size.len(),
                r.stride.len()
            )));
        }
        let contiguous = r
            .size
            .iter()
            .zip(&r.stride)
            .rev()
            .try_fold(1usize, |want, (&d, &st)| (d == 1 || st == want).then(|| want * d));
        if contiguous.is_some() {
            let start = r.offset.checked_mul(elem).ok_or_else(past)?;
            let end = r.offset.checked_add(numel).and_then(|e| e.checked_mul(elem));
            let bytes = end.and_then(|end| raw.get(start..end)).ok_or_else(past)?;
            let data = bytes.chunks_exact(elem).map(|b| element(r.dtype, b)).collect();
            tensors.insert(name, WeightTensor { shape: r.size, data });
            continue;
        }
        let mut data = Vec::with_capacity(numel);
        let mut index = vec![0usize; r.size.len()];
        for _ in 0..numel {
            let at = index
                .iter()
                .zip(&r.stride)
                .try_fold(r.offset, |acc, (i, s)| {
                    i.checked_mul(*s).and_then(|x| acc.checked_add(x))
                })
                .and_then(|at| at.checked_mul(elem))
                .ok_or_else(past)?;
            let b = at
                .checked_add(elem)
                .and_then(|end| raw.get(at..end))
                .ok_or_else(past)?;
            data.push(element(r.dtype, b));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < r.size[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        tensors.insert(name, WeightTensor { shape: r.size, data });
    }
    Ok(Weights {
        tensors,
        ..Default::default()
    })
}
