//! The mosaic generator on a tiny synthetic Fashion-MNIST (and on the real one when present).

use super::*;
use std::collections::BTreeSet;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("deepsight-mosaic-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` items, label `i % 10`: a rectangle of visible values (>= 60) on zeros, with a few faint
/// pixels (20, below the threshold) that must stay out of the mask.
fn synthetic_items(n: usize, seed: u64) -> Items {
    let mut rng = generator(seed);
    let mut pixels = vec![0u8; n * ITEM * ITEM];
    for i in 0..n {
        let (w, h) = (rng.random_range(4..=20usize), rng.random_range(4..=28usize));
        let (x0, y0) = (rng.random_range(0..=ITEM - w), rng.random_range(0..=ITEM - h));
        let px = &mut pixels[i * ITEM * ITEM..(i + 1) * ITEM * ITEM];
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                px[y * ITEM + x] = 60 + ((x * 7 + y * 13 + i) % 190) as u8;
            }
        }
        px[0] = px[0].max(20);
        px[ITEM * ITEM - 1] = px[ITEM * ITEM - 1].max(20);
    }
    Items {
        pixels,
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
    }
}

fn write_source(dir: &Path, prefix: &str, items: &Items) {
    let images = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    write_idx_gz(&images, &[items.len(), ITEM, ITEM], &items.pixels).unwrap();
    let labels = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    write_idx_gz(&labels, &[items.len()], &items.labels).unwrap();
}

/// The mask the placements imply, recomputed from the source pixels.
fn expected_mask(m: &Mosaic, items: &Items) -> Vec<u8> {
    let mut mask = vec![0u8; CANVAS * CANVAS];
    for p in &m.items {
        let px = items.item(p.item);
        for y in 0..CANVAS as isize {
            for x in 0..CANVAS as isize {
                let (sx, sy) = (x - p.left, y - p.top);
                if (0..56).contains(&sx) && (0..56).contains(&sy) {
                    let v = px[(sy as usize / 2) * ITEM + sx as usize / 2];
                    if v > MASK_THRESHOLD {
                        mask[y as usize * CANVAS + x as usize] = p.class as u8 + 1;
                    }
                }
            }
        }
    }
    mask
}

fn mask_classes(mask: &[u8]) -> BTreeSet<usize> {
    mask.iter()
        .filter(|&&v| v > 0 && v < VOID)
        .map(|&v| v as usize - 1)
        .collect()
}

#[test]
fn masks_match_the_placements_and_labels_are_the_classes_drawn() {
    let items = synthetic_items(60, 1);
    let (train, _) = train_val_pools(&items, 3);
    let mut counts = [0usize; 4];
    for i in 0..60 {
        let m = mosaic(&train, 3, Split::Train, i);
        assert_eq!(m.mask, expected_mask(&m, &items), "image {i}");
        assert!((1..=3).contains(&m.labels.len()), "{:?}", m.labels);
        counts[m.labels.len()] += 1;
        let set: BTreeSet<usize> = m.labels.iter().copied().collect();
        assert_eq!(set.len(), m.labels.len(), "distinct labels");
        assert!(m.labels.windows(2).all(|w| w[0] < w[1]), "ascending");
        assert_eq!(
            mask_classes(&m.mask),
            set,
            "image {i}: labels are the classes in the mask"
        );
        assert!((2..=5).contains(&m.fragments.len()));
        for f in &m.fragments {
            assert!(!set.contains(&f.class), "fragment class {} is a label", f.class);
            assert_eq!(items.labels[f.item] as usize, f.class);
            assert!((12..=20).contains(&f.crop[2]) && (12..=20).contains(&f.crop[3]));
        }
        for (a, p) in m.items.iter().enumerate() {
            assert!(p.bbox[2] < CANVAS && p.bbox[3] < CANVAS);
            assert_eq!(items.labels[p.item] as usize, p.class);
            for q in &m.items[a + 1..] {
                assert!(!overlaps(&p.bbox, &q.bbox), "{p:?} {q:?}");
            }
        }
        // Items are opaque: the image shows the item's value, up to the pixel noise.
        let tol = (NOISE * 255.0).ceil() as i32 + 1;
        for p in &m.items {
            let px = items.item(p.item);
            for (at, &v) in m.mask.iter().enumerate() {
                if v as usize == p.class + 1 {
                    let (x, y) = ((at % CANVAS) as isize - p.left, (at / CANVAS) as isize - p.top);
                    let src = px[(y as usize / 2) * ITEM + x as usize / 2] as i32;
                    assert!((m.image[at] as i32 - src).abs() <= tol);
                }
            }
        }
    }
    assert!(counts[1] > 0 && counts[2] > 0 && counts[3] > 0, "{counts:?}");
}

#[test]
fn train_and_val_pools_are_disjoint() {
    let items = synthetic_items(60, 2);
    let (train, val) = train_val_pools(&items, 9);
    let t: BTreeSet<usize> = train.by_class.iter().flatten().copied().collect();
    let v: BTreeSet<usize> = val.by_class.iter().flatten().copied().collect();
    assert_eq!((t.len(), v.len()), (50, 10));
    assert!(t.is_disjoint(&v));
}

fn parse_list(text: &str) -> Vec<(String, Vec<usize>)> {
    text.lines()
        .map(|l| {
            let (f, labels) = l.rsplit_once(',').unwrap();
            (
                f.trim().to_string(),
                labels.split_whitespace().map(|v| v.parse().unwrap()).collect(),
            )
        })
        .collect()
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((
                p.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn generate_writes_the_layout_and_is_deterministic() {
    let src = tmp("src");
    let (train_items, test_items) = (synthetic_items(60, 4), synthetic_items(30, 5));
    write_source(&src, "train", &train_items);
    write_source(&src, "t10k", &test_items);
    let cfg = MosaicConfig {
        train: 6,
        val: 3,
        test: 3,
        seed: 5,
    };
    let (a, b, c) = (tmp("a"), tmp("b"), tmp("c"));
    let mut calls = 0;
    generate(&src, &a, &cfg, &mut |_, _, _| calls += 1).unwrap();
    assert_eq!(calls, 12);
    generate(&src, &b, &cfg, &mut |_, _, _| {}).unwrap();
    assert_eq!(files(&a), files(&b), "same seed, same bytes");
    generate(&src, &c, &MosaicConfig { seed: 6, ..cfg }, &mut |_, _, _| {}).unwrap();
    assert_ne!(files(&a), files(&c));
    let classes = std::fs::read_to_string(a.join("classes.txt")).unwrap();
    assert_eq!(classes.lines().collect::<Vec<_>>(), CLASSES.to_vec());
    assert!(
        std::fs::read_to_string(a.join("README.md"))
            .unwrap()
            .contains("--seed 5")
    );
    let read = read_items(&src, "train").unwrap();
    assert_eq!(read, train_items);
    let (train, val) = train_val_pools(&read, 5);
    let test = Pool::new(&test_items, 0..test_items.len());
    for (split, pool, n) in [
        (Split::Train, &train, 6),
        (Split::Val, &val, 3),
        (Split::Test, &test, 3),
    ] {
        let dir = a.join(split.name());
        let list = parse_list(&std::fs::read_to_string(dir.join("dataset.txt")).unwrap());
        assert_eq!(list.len(), n);
        for (i, (file, labels)) in list.iter().enumerate() {
            assert_eq!(file, &format!("./images/{i:05}.png"));
            let mask = read_mask(&dir.join(format!("masks/{i:05}.png"))).unwrap();
            assert_eq!((mask.width, mask.height), (CANVAS, CANVAS));
            let m = mosaic(pool, 5, split, i);
            assert_eq!(mask.values, m.mask, "{} {i}", split.name());
            assert_eq!(&m.labels, labels);
            assert_eq!(mask_classes(&mask.values), labels.iter().copied().collect());
            let rgb = image::open(dir.join(file.trim_start_matches("./")))
                .unwrap()
                .to_rgb8();
            let expected: Vec<u8> = m.image.iter().flat_map(|&v| [v, v, v]).collect();
            assert_eq!(rgb.into_raw(), expected);
        }
    }
    // RGB is not a mask.
    let e = read_mask(&a.join("train/images/00000.png"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("00000.png") && e.contains("8-bit grey"), "{e}");
}

#[test]
fn broken_sources_are_errors_naming_the_file() {
    let src = tmp("broken");
    let items = synthetic_items(20, 6);
    write_source(&src, "train", &items);
    let images = src.join("train-images-idx3-ubyte.gz");
    let full = std::fs::read(&images).unwrap();
    std::fs::write(&images, &full[..full.len() / 2]).unwrap();
    let e = read_items(&src, "train").unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("not a complete IDX"),
        "{e}"
    );
    // Labels where images are expected: the magic says 1 dimension.
    std::fs::copy(src.join("train-labels-idx1-ubyte.gz"), &images).unwrap();
    let e = read_items(&src, "train").unwrap_err().to_string();
    assert!(e.contains("magic") && e.contains("train-images"), "{e}");
    // Not gzip and not IDX.
    std::fs::write(&images, b"hello, world").unwrap();
    assert!(
        read_items(&src, "train")
            .unwrap_err()
            .to_string()
            .contains("magic")
    );
    // Fewer pixels than the header declares (a valid gzip stream).
    write_idx_gz(&images, &[20, ITEM, ITEM], &items.pixels[..100]).unwrap();
    let e = read_items(&src, "train").unwrap_err().to_string();
    assert!(e.contains("holds 100"), "{e}");
    // Counts that disagree.
    write_idx_gz(&images, &[19, ITEM, ITEM], &items.pixels[..19 * ITEM * ITEM]).unwrap();
    assert!(
        read_items(&src, "train")
            .unwrap_err()
            .to_string()
            .contains("20 labels for 19")
    );
    let e = generate(
        &src.join("missing"),
        &tmp("out"),
        &MosaicConfig::default(),
        &mut |_, _, _| {},
    );
    assert!(e.unwrap_err().to_string().contains("missing"));
}

#[test]
fn real_fashion_mnist_if_present() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fashion-mnist");
    if !dir.join("t10k-images-idx3-ubyte.gz").exists() {
        eprintln!("skipped: no Fashion-MNIST at {}", dir.display());
        return;
    }
    let out = tmp("real");
    let cfg = MosaicConfig {
        train: 10,
        val: 5,
        test: 5,
        seed: 0,
    };
    generate(&dir, &out, &cfg, &mut |_, _, _| {}).unwrap();
    for (split, n) in [("train", 10), ("val", 5), ("test", 5)] {
        let list = parse_list(&std::fs::read_to_string(out.join(split).join("dataset.txt")).unwrap());
        assert_eq!(list.len(), n);
        for (i, (_, labels)) in list.iter().enumerate() {
            let mask = read_mask(&out.join(format!("{split}/masks/{i:05}.png"))).unwrap();
            assert_eq!(mask_classes(&mask.values), labels.iter().copied().collect());
        }
    }
}
