use burn::tensor::activation::relu;
use deepsight_runtime::{Tensor, default_device};
use deepsight_train::classifier::MosaicCnn;
use std::time::Instant;

#[test]
#[ignore]
fn bench_layers() {
    let ad = default_device().autodiff();
    let m = MosaicCnn::pytorch_default(10, 0, &ad);
    let x = Tensor::<4>::ones([64, 3, 112, 112], &ad);
    for rep in 0..2 {
        let mut t = Instant::now();
        let mut h = x.clone();
        let pool = burn::nn::pool::MaxPool2dConfig::new([2, 2]).init();
        let mut outs = vec![];
        for (i, b) in m.blocks.iter().enumerate() {
            let c = b.conv.forward(h.clone());
            let _ = c.clone().into_data();
            let tc = t.elapsed().as_secs_f64();
            t = Instant::now();
            let n = b.bn.forward(c);
            let _ = n.clone().into_data();
            let tb = t.elapsed().as_secs_f64();
            t = Instant::now();
            h = relu(n);
            if deepsight_models::mosaic_cnn::BLOCKS[i].pool {
                h = pool.forward(h);
            }
            let _ = h.clone().into_data();
            let tp = t.elapsed().as_secs_f64();
            t = Instant::now();
            outs.push(format!("block{i}: conv {tc:.3} bn {tb:.3} relu/pool {tp:.3}"));
        }
        let l = h.mean();
        let _ = l.clone().into_data();
        let t0 = Instant::now();
        let g = l.backward();
        let tbk = t0.elapsed().as_secs_f64();
        drop(g);
        println!("rep {rep}: {outs:?} backward {tbk:.3}");
    }
}
