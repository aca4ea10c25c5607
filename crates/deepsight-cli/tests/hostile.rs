//! A hostile new user's inputs, by class of defect (issue 15): every one is refused with one line
//! that names the input and the problem, a non-zero status that is not a panic (101) or a signal,
//! and no output file; the valid-but-odd ones (two images of one name) give distinct outputs.

mod common;

use common::{deepsight, fails, ok, tmp};
use onnx_protobuf::{Message, ModelProto};
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn png(path: &Path, w: u32, h: u32) -> PathBuf {
    image::RgbImage::from_pixel(w, h, image::Rgb([120, 80, 40]))
        .save(path)
        .unwrap();
    path.to_path_buf()
}

/// A safetensors file with one tensor `input` of raw little-endian `bytes`.
fn tensor_file(name: &str, dtype: safetensors::Dtype, shape: &[usize], bytes: &[u8]) -> PathBuf {
    let path = tmp(name);
    let view = safetensors::tensor::TensorView::new(dtype, shape.to_vec(), bytes).unwrap();
    let out = safetensors::serialize([("input", view)], None).unwrap();
    std::fs::write(&path, out).unwrap();
    path
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn jpeg() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg")
}

/// PNG's chunk checksum (CRC-32, polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn assert_says(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "'{err}' should say '{p}'");
    }
}

#[test]
fn images_that_are_not_images_or_too_large_are_refused_from_their_header() {
    let good = std::fs::read(jpeg()).unwrap();
    let cut = tmp("cut.jpg");
    std::fs::write(&cut, &good[..good.len() * 3 / 10]).unwrap();
    assert_says(&fails(&["classify", s(&cut)]), &["cut.jpg", "truncated"]);

    let empty = tmp("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert_says(&fails(&["classify", s(&empty)]), &["empty.png"]);

    // 1x60000: tiny as a file, 15 million pixels once its shorter side is resized to 256.
    let thin = png(&tmp("thin.png"), 60_000, 1);
    let e = fails(&["classify", "--preprocess", "torchvision", s(&thin)]);
    assert_says(&e, &["thin.png", "pixels", "--max-pixels"]);

    // A PNG claiming 100000x100000 in 70 bytes.
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\r".to_vec();
    bomb.extend_from_slice(&ihdr);
    bomb.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A first data chunk (a decoder reads the header up to it) and the end.
    for (kind, data) in [
        (&b"IDAT"[..], &b"\x78\x9c\x63\x00\x00\x00\x01\x00\x01"[..]),
        (b"IEND", b""),
    ] {
        let body = [kind, data].concat();
        bomb.extend_from_slice(&(data.len() as u32).to_be_bytes());
        bomb.extend_from_slice(&body);
        bomb.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let bomb_path = tmp("bomb.png");
    std::fs::write(&bomb_path, &bomb).unwrap();
    assert_says(&fails(&["classify", s(&bomb_path)]), &["bomb.png", "pixels"]);

    let e = fails(&["classify", "--max-pixels", "100", s(&jpeg())]);
    assert_says(&e, &["pixels", "more than the limit of 100"]);
    let e = fails(&["classify", "--max-tensor-gib", "0", s(&jpeg())]);
    assert_says(&e, &["--max-tensor-gib", "positive"]);
}

#[test]
fn tensors_that_are_not_finite_float_images_are_refused() {
    let n = 3 * 224 * 224;
    let nan = tensor_file(
        "nan.safetensors",
        safetensors::Dtype::F32,
        &[1, 3, 224, 224],
        &floats(&vec![f32::NAN; n]),
    );
    assert_says(
        &fails(&["classify", "--tensor", s(&nan)]),
        &["nan.safetensors", "not finite", "NaN"],
    );
    let mut v = vec![0.5f32; n];
    v[77] = f32::INFINITY;
    let inf = tensor_file(
        "inf.safetensors",
        safetensors::Dtype::F32,
        &[1, 3, 224, 224],
        &floats(&v),
    );
    assert_says(
        &fails(&["explain", "--tensor", s(&inf), "--out", s(&tmp("inf-out"))]),
        &["inf.safetensors", "index 77"],
    );
    assert!(!tmp("inf-out").exists(), "no output folder for a refused input");

    let ints: Vec<u8> = (0..n as i64).flat_map(|x| x.to_le_bytes()).collect();
    let int = tensor_file(
        "int.safetensors",
        safetensors::Dtype::I64,
        &[1, 3, 224, 224],
        &ints,
    );
    assert_says(
        &fails(&["classify", "--tensor", s(&int)]),
        &["int.safetensors", "tensor 'input' is of type I64"],
    );

    let none = tensor_file(
        "none.safetensors",
        safetensors::Dtype::F32,
        &[0, 3, 224, 224],
        &[],
    );
    assert_says(
        &fails(&["classify", "--tensor", s(&none)]),
        &["none.safetensors", "no image"],
    );
}

#[test]
fn arguments_are_checked_before_any_work() {
    let img = jpeg();
    let out = tmp("args-out");
    let o = s(&out);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--top", "5000"], vec!["--top 5000", "1000 classes"]),
        (vec!["--class", "5000"], vec!["--class 5000", "1000 classes"]),
        (
            vec!["--method", "gradcam", "--layer", "_fc"],
            vec!["--layer", "'_fc' is a flat layer"],
        ),
        (
            vec!["--method", "integrated-gradients", "--ig-baseline", "nan"],
            vec!["--ig-baseline must be a finite number"],
        ),
        (
            vec!["--method", "smoothgrad", "--smoothgrad-sigma", "inf"],
            vec!["--smoothgrad-sigma must be a finite number"],
        ),
        (vec!["--method", "no-such-method"], vec!["no-such-method"]),
        (vec!["--batch-size", "0"], vec!["--batch-size"]),
        (
            vec!["--method", "deconvnet", "--feature", "_fc:99999"],
            vec!["--feature _fc:99999", "1000 channels"],
        ),
        (
            vec!["--method", "deconvnet", "--feature", "nope:1"],
            vec!["unknown layer 'nope'"],
        ),
        (vec!["--input-size", "100000x100000"], vec!["pixels"]),
    ];
    for (extra, says) in cases {
        let mut args = vec!["explain", s(&img), "--out", o];
        args.extend(&extra);
        assert_says(&fails(&args), &says);
        assert!(!out.exists(), "{extra:?} left an output folder");
    }
    assert_says(
        &fails(&["explain", s(&img), s(&img), "--out", o]),
        &["given twice"],
    );

    assert_says(
        &fails(&["classify", s(&img), "--top", "1001"]),
        &["--top 1001", "1000 classes"],
    );
    assert_says(
        &fails(&["visualize", "top9"]),
        &["required arguments were not provided", "--data"],
    );

    let labels = tmp("labels.txt");
    std::fs::write(&labels, format!("{}, 3\n\n{}, 5000\n", s(&img), s(&img))).unwrap();
    assert_says(
        &fails(&["classify", "--labels", s(&labels)]),
        &["labels.txt' line 3", "label 5000 is out of range"],
    );

    let e = fails(&[
        "classify",
        s(&img),
        "--logits-out",
        "/proc/no/such/dir/logits.safetensors",
    ]);
    assert_says(&e, &["cannot write", "logits.safetensors"]);
}

#[test]
fn two_images_of_one_name_in_two_folders_give_two_outputs() {
    let dir = tmp("same-name");
    for d in ["a", "b"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let a = png(&dir.join("a/dog.png"), 40, 30);
    let b = png(&dir.join("b/dog.png"), 30, 40);
    let out = dir.join("out");
    ok(&["explain", s(&a), s(&b), "--method", "gradcam", "--out", s(&out)]);
    assert!(out.join("a_dog.montage.png").exists() && out.join("b_dog.montage.png").exists());
    assert!(!out.join("dog.montage.png").exists());
}

#[test]
fn onnx_files_with_out_of_domain_attributes_are_refused_by_the_cli() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deepsight-onnx/tests/data/handmade.onnx");
    let good = std::fs::read(&data).unwrap();
    let model = ModelProto::parse_from_bytes(&good).unwrap();
    let write = |name: &str, m: &ModelProto| {
        let p = tmp(name);
        std::fs::write(&p, m.write_to_bytes().unwrap()).unwrap();
        p
    };
    let mut future = model.clone();
    future.opset_import[0].version = 99;
    let f = write("opset99.onnx", &future);
    assert_says(
        &fails(&["layers", "--model", s(&f)]),
        &["opset99.onnx", "opset 99"],
    );

    let mut zero = model.clone();
    let graph = zero.graph.as_mut().unwrap();
    let conv = graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "Conv")
        .expect("a Conv");
    conv.attribute.retain(|a| a.name != "strides");
    conv.attribute.push(onnx_protobuf::AttributeProto {
        name: "strides".into(),
        type_: onnx_protobuf::attribute_proto::AttributeType::INTS.into(),
        ints: vec![0, 0],
        ..Default::default()
    });
    let z = write("stride0.onnx", &zero);
    assert_says(
        &fails(&["layers", "--model", s(&z)]),
        &["stride0.onnx", "strides = [0, 0]"],
    );

    let cut = tmp("cut.onnx");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    assert_says(&fails(&["layers", "--model", s(&cut)]), &["cut.onnx"]);
    // The status of a refusal is 1, never a panic's 101 or a signal.
    assert_eq!(deepsight(&["layers", "--model", s(&cut)]).status.code(), Some(1));
}
