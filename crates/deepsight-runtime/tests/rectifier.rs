//! The one-pass flex rectifier against burn's own clamp and the generic backward, on random
//! tensors of odd sizes, with shared (copy-on-write) and unshared buffers.

use deepsight_runtime::{Bounds, RectifierRule, Tensor, TensorData, default_device, rectify, to_vec};

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 8.0
        })
        .collect()
}

#[test]
fn forward_equals_burns_clamp_and_leaves_shared_inputs_alone() {
    let d = default_device();
    for (i, shape) in [[1, 3, 5, 7], [2, 17, 9, 11], [1, 1, 1, 1], [3, 64, 33, 29]]
        .into_iter()
        .enumerate()
    {
        let n = shape.iter().product();
        let values = rand(n, i as u64);
        let x: Tensor<4> = Tensor::from_data(TensorData::new(values.clone(), shape), &d);
        for bounds in [
            Bounds::RELU,
            Bounds::RELU6,
            Bounds {
                lo: -1.5,
                hi: Some(2.5),
            },
        ] {
            let ours = to_vec(rectify(x.clone(), bounds, RectifierRule::Plain));
            let burn = match bounds.hi {
                Some(hi) => x.clone().clamp(bounds.lo, hi),
                None => x.clone().clamp_min(bounds.lo),
            };
            assert_eq!(ours, to_vec(burn), "{shape:?} {bounds:?}");
        }
        // `x` was shared by the clones above, so it must be unchanged.
        assert_eq!(
            to_vec(x),
            values,
            "{shape:?}: a shared input was clamped in place"
        );
    }
}

#[test]
fn backward_equals_the_definition_for_every_rule() {
    let d = default_device();
    let shape = [2, 5, 7, 3];
    let n = shape.iter().product();
    let (xv, gv) = (rand(n, 11), rand(n, 12));
    for rule in [RectifierRule::Plain, RectifierRule::Guided, RectifierRule::Deconv] {
        let ad = d.clone().autodiff();
        let x: Tensor<4> = Tensor::from_data(TensorData::new(xv.clone(), shape), &ad).require_grad();
        let g: Tensor<4> = Tensor::from_data(TensorData::new(gv.clone(), shape), &ad);
        let grads = (rectify(x.clone(), Bounds::RELU6, rule) * g).sum().backward();
        let ours = to_vec(x.grad(&grads).unwrap());
        for i in 0..n {
            let open = xv[i] > 0.0 && xv[i] < 6.0;
            let want = match rule {
                RectifierRule::Plain => {
                    if open {
                        gv[i]
                    } else {
                        0.0
                    }
                }
                RectifierRule::Guided => {
                    if open && gv[i] > 0.0 {
                        gv[i]
                    } else {
                        0.0
                    }
                }
                RectifierRule::Deconv => gv[i].max(0.0),
            };
            assert_eq!(ours[i], want, "{rule:?} at {i}: x {} g {}", xv[i], gv[i]);
        }
    }
}
