//! PyTorch `.pth` / `.pt` state dicts, read without running any pickled code.
//!
//! Both formats `torch.save` has written: the legacy stream (magic number, protocol, system info,
//! the state-dict pickle, the storage keys, then each storage as a little-endian element count
//! and its raw bytes) and the zip archive (`*/data.pkl` plus one `*/data/<key>` entry per
//! storage). Float tensors become [`WeightTensor`]s; integer tensors (BatchNorm's
//! `num_batches_tracked`) are not weights and are skipped.

use crate::error::{ModelError, Result};
use crate::pickle::{StorageType, TensorRecord, Value, unpickle};
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
    if magic != Value::BigInt(LEGACY_MAGIC.to_vec()) {
        return Err(fmt("not a PyTorch weight file (wrong magic number)"));
    }
    unpickle(bytes, &mut pos)?; // protocol version
    unpickle(bytes, &mut pos)?; // system info
    let root = unpickle(bytes, &mut pos)?;
    let Value::List(keys) = unpickle(bytes, &mut pos)? else {
        return Err(fmt("storage key list missing"));
    };
    let records = state_dict(root)?;
    let mut dtypes: HashMap<&str, StorageType> = HashMap::new();
    for r in records.values() {
        dtypes.insert(&r.key, r.dtype);
    }
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err(fmt("storage key is not a string"));
        };
        let elem = dtypes.get(key.as_str()).map_or(1, |d| d.size());
        let header = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| fmt(format!("truncated at storage '{key}'")))?;
        let numel = u64::from_le_bytes(header.try_into().expect("8 bytes")) as usize;
        let len = numel
            .checked_mul(elem)
            .ok_or_else(|| fmt("storage size overflows"))?;
        let data = bytes
            .get(pos + 8..pos + 8 + len)
            .ok_or_else(|| fmt(format!("truncated: storage '{key}' needs {len} bytes")))?;
        storages.insert(key, data);
        pos += 8 + len;
    }
    build(records, &storages)
}

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
    let mut read = |name: &str| -> Result<Vec<u8>> {
        let mut f = archive.by_name(name).map_err(bad)?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)
            .map_err(|e| fmt(format!("reading '{name}': {e}")))?;
        Ok(v)
    };
    let pickle = read(pkl)?;
    let records = state_dict(unpickle(&pickle, &mut 0)?)?;
    let mut owned: HashMap<String, Vec<u8>> = HashMap::new();
    for r in records.values() {
        if !owned.contains_key(&r.key) {
            owned.insert(r.key.clone(), read(&format!("{prefix}data/{}", r.key))?);
        }
    }
    let storages = owned.iter().map(|(k, v)| (k.clone(), v.as_slice())).collect();
    build(records, &storages)
}

/// The `name -> tensor record` pairs of a state dict (or of `{"state_dict": ...}`).
fn state_dict(root: Value) -> Result<BTreeMap<String, TensorRecord>> {
    let Value::Dict(items) = root else {
        return Err(fmt("the pickle holds no state dict"));
    };
    if let [(Value::Str(k), inner @ Value::Dict(_))] = items.as_slice()
        && (k == "state_dict" || k == "model")
    {
        return state_dict(inner.clone());
    }
    let mut out = BTreeMap::new();
    for (k, v) in items {
        match (k, v) {
            (Value::Str(name), Value::Tensor(t)) => {
                out.insert(name, t);
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
        let contiguous = r
            .size
            .iter()
            .zip(&r.stride)
            .rev()
            .try_fold(1usize, |want, (&d, &st)| (d == 1 || st == want).then(|| want * d));
        if contiguous.is_some() {
            let bytes = raw
                .get(r.offset * elem..(r.offset + numel) * elem)
                .ok_or_else(|| fmt(format!("tensor '{name}' reaches past its storage")))?;
            let data = bytes.chunks_exact(elem).map(|b| element(r.dtype, b)).collect();
            tensors.insert(name, WeightTensor { shape: r.size, data });
            continue;
        }
        let mut data = Vec::with_capacity(numel);
        let mut index = vec![0usize; r.size.len()];
        for _ in 0..numel {
            let at = r.offset + index.iter().zip(&r.stride).map(|(i, s)| i * s).sum::<usize>();
            let b = raw
                .get(at * elem..(at + 1) * elem)
                .ok_or_else(|| fmt(format!("tensor '{name}' reaches past its storage")))?;
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
    Ok(Weights { tensors })
}
