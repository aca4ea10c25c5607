//! Fashion-MNIST mosaics: a multi-label image set with ground-truth pixel masks, for the
//! benchmark of Stalder et al. 2022 (explainer masks against segmentations) where ImageNet has
//! no segmentation. Reproducible: the same source files, counts and seed give identical bytes.
//!
//! # Images
//! - Canvas 112x112, stored as 8-bit RGB PNG (the grey value replicated into the 3 channels, so
//!   RGB classifiers and the usual loaders take it as is).
//! - **Items**: 1 to 3 labelled Fashion-MNIST items of *distinct* classes (the count uniform in
//!   `1..=3`), each upscaled 2x by **nearest neighbour** (pixel replication) to 56x56, at a random
//!   position such that the bounding box of its visible pixels lies fully inside the canvas and
//!   does not overlap the boxes of the image's other items. Up to [`PLACEMENT_TRIES`] positions are
//!   tried per item; an item that fits nowhere is dropped (the count is reduced; the first item
//!   always fits). Fashion-MNIST's items mostly fill their frame, so three fit less often than
//!   drawn: with seed 0 the default `train` split has 39% / 45% / 16% images of 1 / 2 / 3 items.
//! - An item's pixel is **visible** when its source value is above [`MASK_THRESHOLD`] (38, i.e.
//!   `> 0.15 * 255` = 38.25, the same after the nearest-neighbour scaling); visible pixels are
//!   drawn opaque and **exactly those pixels** form the item's ground-truth mask.
//! - **Clutter**, so that thresholding intensity does not find the objects: a smooth random
//!   texture (uniform values in `[0, 0.45]` on a grid of 8-pixel cells, bilinearly interpolated),
//!   then 2 to 5 **fragments** (uniform count): random crops of 12..=20 x 12..=20 source pixels
//!   (each side uniform; a crop with under a quarter of its pixels visible is redrawn up to 10
//!   times) of items of classes *not* among the image's labels, upscaled 2x like the items, at
//!   random positions fully inside the canvas, drawn opaque where visible. Fragments are drawn
//!   before the items (items cover them), carry no label and are not in the mask. Last, pixel
//!   noise uniform in `±0.06` is added to every pixel (items included; the mask does not change).
//! - Labels are the classes of the items placed, in ascending order; the classes of the labels and
//!   fragments are drawn from the classes present in the split's pool.
//!
//! # Splits
//! `train` and `val` come from the Fashion-MNIST training file: its items are shuffled by the seed
//! and the first sixth (10,000 of 60,000) is the `val` pool, the rest the `train` pool, so the two
//! splits never share an item; `test` comes from `t10k`. Items are drawn with replacement within
//! a pool. Every image has its own generator, seeded by `(seed, split, index)` through
//! [`crate::rng::mix`]: image `i` of a split does not depend on the counts of the other splits.
//!
//! # Mask annotation format (what `deepsight evaluate --metrics segmentation` reads)
//! ```text
//! OUT/classes.txt                  the 10 class names, one per line (line i = class i)
//! OUT/README.md                    the command and seed that made the set
//! OUT/<split>/dataset.txt          ./images/NAME.png, L1 L2 L3   (one line per image, written last)
//! OUT/<split>/images/NAME.png      8-bit RGB
//! OUT/<split>/masks/NAME.png       8-bit grey, the size of the image
//! ```
//! `dataset.txt` lines hold one or more whitespace-separated class indices after the last comma
//! (single-label `./FILE, L` lines stay valid). Mask pixel values: 0 = background, `v` in
//! `1..=254` = object of class `v - 1`, 255 = void (ignored by the metrics): VOC's
//! SegmentationClass convention shifted by one. The mosaics have no void pixel.
//! `dataset.txt` is removed when a split starts and written (atomically) after its last image, so
//! a failed run never leaves a list that names missing or stale images.

use crate::error::{Result, TrainError};
use crate::rng::{generator, mix};
use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};
use rand::Rng;
use rand::rngs::StdRng;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Side of the canvas, in pixels.
pub const CANVAS: usize = 112;
/// Side of a Fashion-MNIST item.
pub const ITEM: usize = 28;
/// The upscaling factor of items and fragments (nearest neighbour).
pub const SCALE: usize = 2;
/// A source pixel is visible (drawn, and in the mask) when its value is above this.
pub const MASK_THRESHOLD: u8 = 38;
/// The mask value of void pixels.
pub const VOID: u8 = 255;
/// Positions tried per item before it is dropped.
pub const PLACEMENT_TRIES: usize = 100;
/// Fashion-MNIST's classes, in label order.
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const TEXTURE_CELL: usize = 8;
const TEXTURE_MAX: f32 = 0.45;
const NOISE: f32 = 0.06;

fn data_err(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Data {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fashion-MNIST items: `count` 28x28 grey images and their labels (`0..10`).
#[derive(Debug, Clone, PartialEq)]
pub struct Items {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Items {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The 28x28 pixels of item `i`, row-major.
    pub fn item(&self, i: usize) -> &[u8] {
        &self.pixels[i * ITEM * ITEM..(i + 1) * ITEM * ITEM]
    }
}

/// Reads an IDX file (gzip-compressed, or plain: the content decides) of `dims` dimensions of
/// unsigned bytes (type code 0x08); returns the sizes and the data. A wrong magic, a short or
/// corrupt stream and data beyond the declared size are errors naming the file.
pub fn read_idx(path: &Path, dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut head = [0u8; 2];
    let mut reader = std::io::BufReader::new(file);
    let gz = {
        use std::io::BufRead;
        let buf = reader.fill_buf().map_err(io_err(path))?;
        head[..buf.len().min(2)].copy_from_slice(&buf[..buf.len().min(2)]);
        head == [0x1f, 0x8b]
    };
    let mut r: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let broken = |e: std::io::Error| data_err(path, format!("not a complete IDX file ({e})"));
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(broken)?;
    if magic != [0, 0, 0x08, dims as u8] {
        return Err(data_err(
            path,
            format!(
                "not an IDX file of {dims}-d unsigned bytes: magic {:02x}{:02x}{:02x}{:02x}, expected 000008{dims:02x}",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    let mut sizes = Vec::with_capacity(dims);
    for _ in 0..dims {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(broken)?;
        sizes.push(u32::from_be_bytes(b) as usize);
    }
    let total = sizes
        .iter()
        .try_fold(1usize, |a, &s| a.checked_mul(s))
        .filter(|&t| t <= 1 << 34)
        .ok_or_else(|| data_err(path, format!("implausible IDX sizes {sizes:?}")))?;
    let mut data = Vec::new();
    r.take(total as u64 + 1).read_to_end(&mut data).map_err(broken)?;
    if data.len() != total {
        return Err(data_err(
            path,
            format!(
                "the header declares {sizes:?} ({total} bytes) but the file holds {}",
                if data.len() > total {
                    "more".to_string()
                } else {
                    data.len().to_string()
                }
            ),
        ));
    }
    Ok((sizes, data))
}

/// Writes a gzip-compressed IDX file of unsigned bytes (synthetic sets, tests).
pub fn write_idx_gz(path: &Path, sizes: &[usize], data: &[u8]) -> Result<()> {
    let mut bytes = vec![0, 0, 0x08, sizes.len() as u8];
    for &s in sizes {
        bytes.extend_from_slice(&(s as u32).to_be_bytes());
    }
    bytes.extend_from_slice(data);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&bytes).map_err(io_err(path))?;
    let gz = enc.finish().map_err(io_err(path))?;
    std::fs::write(path, gz).map_err(io_err(path))
}

/// The source file `DIR/{prefix}-{kind}-ubyte.gz`, or the uncompressed one when only it exists.
fn source_file(dir: &Path, prefix: &str, kind: &str) -> PathBuf {
    let gz = dir.join(format!("{prefix}-{kind}-ubyte.gz"));
    let plain = dir.join(format!("{prefix}-{kind}-ubyte"));
    if !gz.exists() && plain.exists() { plain } else { gz }
}

/// Reads `DIR/{prefix}-images-idx3-ubyte.gz` and `DIR/{prefix}-labels-idx1-ubyte.gz` (`prefix`
/// `train` or `t10k`): 28x28 items, as many labels as images, labels below 10.
pub fn read_items(dir: &Path, prefix: &str) -> Result<Items> {
    let images = source_file(dir, prefix, "images-idx3");
    let labels_path = source_file(dir, prefix, "labels-idx1");
    let (sizes, pixels) = read_idx(&images, 3)?;
    if sizes[1..] != [ITEM, ITEM] {
        return Err(data_err(
            &images,
            format!("items are {}x{}, expected {ITEM}x{ITEM}", sizes[1], sizes[2]),
        ));
    }
    let (lsizes, labels) = read_idx(&labels_path, 1)?;
    if lsizes[0] != sizes[0] {
        return Err(data_err(
            &labels_path,
            format!(
                "{} labels for {} images in '{}'",
                lsizes[0],
                sizes[0],
                images.display()
            ),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES.len()) {
        return Err(data_err(
            &labels_path,
            format!("label {} of item {i} is not below 10", labels[i]),
        ));
    }
    Ok(Items { pixels, labels })
}

/// The three splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
    fn tag(self) -> u64 {
        self as u64 + 1
    }
}

/// The items a split draws from, by class.
#[derive(Debug, Clone)]
pub struct Pool<'a> {
    pub items: &'a Items,
    pub by_class: Vec<Vec<usize>>,
}

impl<'a> Pool<'a> {
    pub fn new(items: &'a Items, indices: impl IntoIterator<Item = usize>) -> Pool<'a> {
        let mut by_class = vec![Vec::new(); CLASSES.len()];
        for i in indices {
            by_class[items.labels[i] as usize].push(i);
        }
        Pool { items, by_class }
    }
    fn classes(&self) -> Vec<usize> {
        (0..CLASSES.len())
            .filter(|&c| !self.by_class[c].is_empty())
            .collect()
    }
    fn pick(&self, class: usize, rng: &mut StdRng) -> usize {
        let v = &self.by_class[class];
        v[rng.random_range(0..v.len())]
    }
}

/// The `train` and `val` pools of the training file: a seeded shuffle, the first sixth to `val`.
pub fn train_val_pools(items: &Items, seed: u64) -> (Pool<'_>, Pool<'_>) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    crate::rng::shuffle(&mut order, mix(&[seed, 0x706f_6f6c]));
    let val = items.len() / 6;
    (
        Pool::new(items, order[val..].iter().copied()),
        Pool::new(items, order[..val].iter().copied()),
    )
}

/// A labelled item on the canvas: the 56x56 upscaled item's top-left corner (it may hang over the
/// edge where its pixels are invisible) and the inclusive box `[x0, y0, x1, y1]` of its visible
/// pixels, inside the canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub class: usize,
    pub item: usize,
    pub left: isize,
    pub top: isize,
    pub bbox: [usize; 4],
}

/// An unlabelled fragment: the crop `[x, y, width, height]` of the source item (source pixels)
/// and the canvas position of its upscaled top-left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    pub class: usize,
    pub item: usize,
    pub crop: [usize; 4],
    pub left: usize,
    pub top: usize,
}

/// One generated image: grey pixels and mask values (`CANVAS * CANVAS`, row-major), the labels
/// (ascending), and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Mosaic {
    pub image: Vec<u8>,
    pub mask: Vec<u8>,
    pub labels: Vec<usize>,
    pub items: Vec<Placement>,
    pub fragments: Vec<Fragment>,
}

/// The inclusive box of the visible pixels of a 28x28 item, upscaled; `None` if none is visible.
fn visible_box(px: &[u8]) -> Option<[usize; 4]> {
    let mut b: Option<[usize; 4]> = None;
    for (i, &v) in px.iter().enumerate() {
        if v > MASK_THRESHOLD {
            let (x, y) = (i % ITEM, i / ITEM);
            b = Some(match b {
                None => [x, y, x, y],
                Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
            });
        }
    }
    b.map(|[x0, y0, x1, y1]| {
        [
            x0 * SCALE,
            y0 * SCALE,
            x1 * SCALE + SCALE - 1,
            y1 * SCALE + SCALE - 1,
        ]
    })
}

fn overlaps(a: &[usize; 4], b: &[usize; 4]) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// `k` distinct values of `from`, in drawing order.
fn sample(from: &[usize], k: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut v = from.to_vec();
    let k = k.min(v.len());
    for i in 0..k {
        let j = rng.random_range(i..v.len());
        v.swap(i, j);
    }
    v.truncate(k);
    v
}

/// The smooth background texture: uniform values on a grid of `TEXTURE_CELL` cells, bilinear.
fn texture(rng: &mut StdRng) -> Vec<f32> {
    let g = CANVAS / TEXTURE_CELL + 1;
    let grid: Vec<f32> = (0..g * g).map(|_| rng.random_range(0.0..TEXTURE_MAX)).collect();
    let mut out = vec![0f32; CANVAS * CANVAS];
    for y in 0..CANVAS {
        let (gy, fy) = (y / TEXTURE_CELL, (y % TEXTURE_CELL) as f32 / TEXTURE_CELL as f32);
        for x in 0..CANVAS {
            let (gx, fx) = (x / TEXTURE_CELL, (x % TEXTURE_CELL) as f32 / TEXTURE_CELL as f32);
            let at = |yy: usize, xx: usize| grid[yy * g + xx];
            let top = at(gy, gx) * (1.0 - fx) + at(gy, gx + 1) * fx;
            let bottom = at(gy + 1, gx) * (1.0 - fx) + at(gy + 1, gx + 1) * fx;
            out[y * CANVAS + x] = top * (1.0 - fy) + bottom * fy;
        }
    }
    out
}

/// Image `index` of `split` (see the module doc), from `pool`, seeded by `(seed, split, index)`.
pub fn mosaic(pool: &Pool, seed: u64, split: Split, index: usize) -> Mosaic {
    let mut rng = generator(mix(&[seed, split.tag(), index as u64]));
    let mut canvas = texture(&mut rng);
    let available = pool.classes();
    let count = rng.random_range(1..=3usize);
    let mut items: Vec<Placement> = Vec::new();
    for class in sample(&available, count, &mut rng) {
        // An item with no visible pixel cannot be placed: another of the class is drawn.
        let Some((item, b)) = (0..10).find_map(|_| {
            let item = pool.pick(class, &mut rng);
            visible_box(pool.items.item(item)).map(|b| (item, b))
        }) else {
            continue;
        };
        let (bw, bh) = (b[2] - b[0] + 1, b[3] - b[1] + 1);
        let placed = (0..PLACEMENT_TRIES).find_map(|_| {
            let (x0, y0) = (
                rng.random_range(0..=CANVAS - bw),
                rng.random_range(0..=CANVAS - bh),
            );
            let bbox = [x0, y0, x0 + bw - 1, y0 + bh - 1];
            (!items.iter().any(|p| overlaps(&p.bbox, &bbox))).then_some(bbox)
        });
        if let Some(bbox) = placed {
            let (left, top) = (bbox[0] as isize - b[0] as isize, bbox[1] as isize - b[1] as isize);
            items.push(Placement {
                class,
                item,
                left,
                top,
                bbox,
            });
        }
    }
    let labelled: Vec<usize> = items.iter().map(|p| p.class).collect();
    let others: Vec<usize> = available.into_iter().filter(|c| !labelled.contains(c)).collect();
    let mut fragments = Vec::new();
    let n_fragments = rng.random_range(2..=5usize);
    for _ in 0..n_fragments {
        if others.is_empty() {
            break;
        }
        let class = others[rng.random_range(0..others.len())];
        let item = pool.pick(class, &mut rng);
        let px = pool.items.item(item);
        let mut crop = [0; 4];
        for _ in 0..10 {
            let (w, h) = (rng.random_range(12..=20usize), rng.random_range(12..=20usize));
            crop = [
                rng.random_range(0..=ITEM - w),
                rng.random_range(0..=ITEM - h),
                w,
                h,
            ];
            let visible = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .filter(|&(x, y)| px[(crop[1] + y) * ITEM + crop[0] + x] > MASK_THRESHOLD)
                .count();
            if visible * 4 >= w * h {
                break;
            }
        }
        let left = rng.random_range(0..=CANVAS - crop[2] * SCALE);
        let top = rng.random_range(0..=CANVAS - crop[3] * SCALE);
        fragments.push(Fragment {
            class,
            item,
            crop,
            left,
            top,
        });
    }
    for f in &fragments {
        let px = pool.items.item(f.item);
        for y in 0..f.crop[3] * SCALE {
            for x in 0..f.crop[2] * SCALE {
                let v = px[(f.crop[1] + y / SCALE) * ITEM + f.crop[0] + x / SCALE];
                if v > MASK_THRESHOLD {
                    canvas[(f.top + y) * CANVAS + f.left + x] = v as f32 / 255.0;
                }
            }
        }
    }
    let mut mask = vec![0u8; CANVAS * CANVAS];
    for p in &items {
        let px = pool.items.item(p.item);
        for y in 0..ITEM * SCALE {
            for x in 0..ITEM * SCALE {
                let v = px[(y / SCALE) * ITEM + x / SCALE];
                if v > MASK_THRESHOLD {
                    // Inside the canvas: the visible box is.
                    let at = (p.top + y as isize) as usize * CANVAS + (p.left + x as isize) as usize;
                    canvas[at] = v as f32 / 255.0;
                    mask[at] = p.class as u8 + 1;
                }
            }
        }
    }
    let image = canvas
        .iter()
        .map(|&v| ((v + rng.random_range(-NOISE..=NOISE)).clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let mut labels = labelled;
    labels.sort_unstable();
    Mosaic {
        image,
        mask,
        labels,
        items,
        fragments,
    }
}

/// Image and split counts and the seed of [`generate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MosaicConfig {
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub seed: u64,
}

impl Default for MosaicConfig {
    fn default() -> Self {
        MosaicConfig {
            train: 8000,
            val: 1000,
            test: 1000,
            seed: 0,
        }
    }
}

impl MosaicConfig {
    fn count(&self, s: Split) -> usize {
        match s {
            Split::Train => self.train,
            Split::Val => self.val,
            Split::Test => self.test,
        }
    }
}

fn png(path: &Path, pixels: &[u8], colour: ExtendedColorType) -> Result<()> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(pixels, CANVAS as u32, CANVAS as u32, colour)
        .map_err(|e| data_err(path, format!("cannot encode the PNG: {e}")))?;
    std::fs::write(path, bytes).map_err(io_err(path))
}

/// Writes the set into `out` (layout in the module doc) from the Fashion-MNIST files in `source`;
/// `progress(split, done, total)` after each image. A split with count 0 is not written and its
/// source file not read.
pub fn generate(
    source: &Path,
    out: &Path,
    cfg: &MosaicConfig,
    progress: &mut dyn FnMut(Split, usize, usize),
) -> Result<()> {
    let train_items = if cfg.train + cfg.val > 0 {
        Some(read_items(source, "train")?)
    } else {
        None
    };
    let test_items = if cfg.test > 0 {
        Some(read_items(source, "t10k")?)
    } else {
        None
    };
    let pools = train_items.as_ref().map(|t| train_val_pools(t, cfg.seed));
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    for split in Split::ALL {
        let n = cfg.count(split);
        if n == 0 {
            continue;
        }
        let pool = match split {
            Split::Train => pools.as_ref().map(|p| p.0.clone()),
            Split::Val => pools.as_ref().map(|p| p.1.clone()),
            Split::Test => test_items.as_ref().map(|t| Pool::new(t, 0..t.len())),
        };
        let Some(pool) = pool.filter(|p| !p.classes().is_empty()) else {
            return Err(TrainError::Config(format!(
                "the {} pool of '{}' holds no item",
                split.name(),
                source.display()
            )));
        };
        let dir = out.join(split.name());
        let list = dir.join("dataset.txt");
        match std::fs::remove_file(&list) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&list)(e)),
            _ => {}
        }
        for sub in ["images", "masks"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io_err(&dir.join(sub)))?;
        }
        let width = (n - 1).to_string().len().max(5);
        let mut text = String::new();
        for i in 0..n {
            let m = mosaic(&pool, cfg.seed, split, i);
            let name = format!("{i:0width$}.png");
            let rgb: Vec<u8> = m.image.iter().flat_map(|&v| [v, v, v]).collect();
            png(&dir.join("images").join(&name), &rgb, ExtendedColorType::Rgb8)?;
            png(&dir.join("masks").join(&name), &m.mask, ExtendedColorType::L8)?;
            let labels: Vec<String> = m.labels.iter().map(|l| l.to_string()).collect();
            text += &format!("./images/{name}, {}\n", labels.join(" "));
            progress(split, i + 1, n);
        }
        deepsight_models::write_atomic(&list, text.as_bytes())?;
    }
    let classes = CLASSES.join("\n") + "\n";
    deepsight_models::write_atomic(&out.join("classes.txt"), classes.as_bytes())?;
    let readme = format!(
        "# Fashion-MNIST mosaics\n\nMade by `deepsight mosaic --fashion-mnist DIR --out DIR --train {} --val {} \
         --test {} --seed {}` (deepsight {}), DIR holding Fashion-MNIST's four IDX files.\n\n\
         112x112 RGB images of 1-3 labelled items of distinct classes (upscaled 2x, nearest), with a noise \
         texture and unlabelled fragments of other classes. `<split>/dataset.txt`: `./images/NAME.png, L1 L2 ...`; \
         `<split>/masks/NAME.png`: 8-bit grey, 0 = background, v in 1..=254 = class v-1, 255 = void. \
         `classes.txt`: class names, line i = class i. `val` and `train` items are disjoint (both from the \
         training file), `test` is from t10k.\n",
        cfg.train,
        cfg.val,
        cfg.test,
        cfg.seed,
        env!("CARGO_PKG_VERSION")
    );
    deepsight_models::write_atomic(&out.join("README.md"), readme.as_bytes())?;
    Ok(())
}

/// A mask annotation (module doc): `width * height` values, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskImage {
    pub width: usize,
    pub height: usize,
    pub values: Vec<u8>,
}

/// Reads a mask annotation: an 8-bit grey PNG; any other image is refused (a palette or RGB PNG
/// would not hold class values).
pub fn read_mask(path: &Path) -> Result<MaskImage> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| data_err(path, format!("not a readable PNG mask: {e}")))?;
    match img {
        image::DynamicImage::ImageLuma8(g) => Ok(MaskImage {
            width: g.width() as usize,
            height: g.height() as usize,
            values: g.into_raw(),
        }),
        other => Err(data_err(
            path,
            format!(
                "a mask must be an 8-bit grey PNG (0 background, v = class v-1, 255 void), got {:?}",
                other.color()
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
