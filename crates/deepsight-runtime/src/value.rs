//! The shape of a value of any rank and what its axes mean.
//!
//! A value's *logical* shape is its ONNX shape (any rank from 1 to [`MAX_RANK`], the batch
//! first). Every value is stored as a rank-4 burn tensor, its *physical* shape: a logical shape of
//! rank up to 4 is padded with trailing ones (`[N, F]` is `[N, F, 1, 1]`, `[N, C, L]` is
//! `[N, C, L, 1]`), a longer one merges its trailing axes (`[N, a, b, c, d]` is `[N, a, b, c*d]`).
//! Both keep the row-major order of the values, so a reshape between them is free, and the
//! classic CNN operations (channel axis 1, spatial axes 2 and 3) read rank-4 values unchanged.
//!
//! Each axis also carries what it means ([`Axis`]), tracked through transposes and reshapes, so
//! that a value in another layout (ConvNeXt's NHWC blocks) is still seen as a feature map: its
//! *canonical* form, the one captures, gradients and CAM methods see, is `[N, C, H, W]`.

/// The most axes a value may have.
pub const MAX_RANK: usize = 6;

/// What an axis of a value means, as far as the graph shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Batch,
    Channel,
    Height,
    Width,
    /// Anything else (a group of channels, flattened positions).
    Other,
}

/// A value's logical shape and the meaning of each axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueShape {
    pub dims: Vec<usize>,
    pub axes: Vec<Axis>,
}

/// The physical (stored) shape of a logical shape.
pub fn physical(dims: &[usize]) -> [usize; 4] {
    let mut p = [1usize; 4];
    if dims.len() <= 4 {
        p[..dims.len()].copy_from_slice(dims);
    } else {
        p[..3].copy_from_slice(&dims[..3]);
        p[3] = dims[3..].iter().product();
    }
    p
}

impl ValueShape {
    /// An image-like `[N, C, H, W]` value.
    pub fn nchw(dims: [usize; 4]) -> Self {
        ValueShape {
            dims: dims.to_vec(),
            axes: vec![Axis::Batch, Axis::Channel, Axis::Height, Axis::Width],
        }
    }

    /// A flat `[N, F]` value.
    pub fn flat(n: usize, f: usize) -> Self {
        ValueShape {
            dims: vec![n, f],
            axes: vec![Axis::Batch, Axis::Channel],
        }
    }

    /// A value of `dims` whose axes follow ONNX's convention: batch, channels, then spatial axes
    /// for rank 4, anything else beyond the channels otherwise.
    pub fn conventional(dims: Vec<usize>) -> Self {
        let axes = (0..dims.len())
            .map(|k| match (k, dims.len()) {
                (0, _) => Axis::Batch,
                (1, _) => Axis::Channel,
                (2, 4) => Axis::Height,
                (3, 4) => Axis::Width,
                _ => Axis::Other,
            })
            .collect();
        ValueShape { dims, axes }
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// The stored rank-4 shape.
    pub fn physical(&self) -> [usize; 4] {
        physical(&self.dims)
    }

    /// This shape with batch `n`.
    pub fn with_batch(&self, n: usize) -> Vec<usize> {
        let mut d = self.dims.clone();
        d[0] = n;
        d
    }

    fn position(&self, axis: Axis) -> Option<usize> {
        self.axes.iter().position(|&a| a == axis)
    }

    /// The permutation taking the physical tensor to `[N, C, H, W]`, for a rank-4 value whose
    /// channel and spatial axes are known but not in that order.
    pub fn to_canonical(&self) -> Option<[usize; 4]> {
        if self.rank() != 4 {
            return None;
        }
        let perm = [
            0,
            self.position(Axis::Channel)?,
            self.position(Axis::Height)?,
            self.position(Axis::Width)?,
        ];
        (perm != [0, 1, 2, 3]).then_some(perm)
    }

    /// The permutation back from `[N, C, H, W]` to the physical layout.
    pub fn from_canonical(&self) -> Option<[usize; 4]> {
        let perm = self.to_canonical()?;
        let mut inverse = [0; 4];
        for (k, &p) in perm.iter().enumerate() {
            inverse[p] = k;
        }
        Some(inverse)
    }

    /// The shape captures and gradients of this value have: `[N, C, H, W]` for a feature map in
    /// any layout, the physical shape otherwise.
    pub fn canonical(&self) -> [usize; 4] {
        let p = self.physical();
        match self.to_canonical() {
            Some(perm) => perm.map(|k| p[k]),
            None => p,
        }
    }

    /// Whether the value is a map of channels over positions: rank 4 with known channel and
    /// spatial axes, more than one position.
    pub fn is_feature_map(&self) -> bool {
        let c = self.canonical();
        self.rank() == 4
            && [Axis::Channel, Axis::Height, Axis::Width]
                .iter()
                .all(|&a| self.position(a).is_some())
            && c[2] * c[3] > 1
    }

    /// The shape after permuting the axes by `perm` (`out[k] = in[perm[k]]`).
    pub fn permuted(&self, perm: &[usize]) -> Self {
        ValueShape {
            dims: perm.iter().map(|&p| self.dims[p]).collect(),
            axes: perm.iter().map(|&p| self.axes[p]).collect(),
        }
    }

    /// The shape after a reshape to `dims` (batch first and unchanged): axes that keep their
    /// extent at the front (after the batch) or the back keep their meaning; a single axis left
    /// between them takes the channels; a rank-4 result with no spatial axis found follows the
    /// ONNX convention (a channel shuffle or a group norm reshaped back to `[N, C, H, W]`).
    pub fn reshaped(&self, dims: Vec<usize>) -> Self {
        let (r_in, r_out) = (self.rank(), dims.len());
        let mut axes = vec![Axis::Other; r_out];
        axes[0] = Axis::Batch;
        let mut front = 1;
        while front < r_in.min(r_out) && self.dims[front] == dims[front] && self.axes[front] != Axis::Other {
            axes[front] = self.axes[front];
            front += 1;
        }
        let mut back = 0;
        while back < r_in.min(r_out) - front
            && self.dims[r_in - 1 - back] == dims[r_out - 1 - back]
            && matches!(self.axes[r_in - 1 - back], Axis::Height | Axis::Width)
        {
            axes[r_out - 1 - back] = self.axes[r_in - 1 - back];
            back += 1;
        }
        if r_out - back - front == 1 && !axes.contains(&Axis::Channel) {
            axes[front] = Axis::Channel;
        }
        let spatial = axes.contains(&Axis::Height) || axes.contains(&Axis::Width);
        if r_out == 4 && !spatial {
            return ValueShape::conventional(dims);
        }
        ValueShape { dims, axes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_shapes_pad_or_merge() {
        assert_eq!(physical(&[2, 5]), [2, 5, 1, 1]);
        assert_eq!(physical(&[2, 5, 7]), [2, 5, 7, 1]);
        assert_eq!(physical(&[1, 2, 24, 28, 28]), [1, 2, 24, 784]);
    }

    #[test]
    fn nhwc_is_canonicalised_and_back() {
        let nhwc = ValueShape::nchw([1, 96, 56, 56]).permuted(&[0, 2, 3, 1]);
        assert_eq!(nhwc.dims, [1, 56, 56, 96]);
        assert_eq!(nhwc.canonical(), [1, 96, 56, 56]);
        assert_eq!(nhwc.to_canonical(), Some([0, 3, 1, 2]));
        assert_eq!(nhwc.from_canonical(), Some([0, 2, 3, 1]));
        assert!(nhwc.is_feature_map());
    }

    #[test]
    fn channel_shuffle_returns_to_nchw() {
        let x = ValueShape::nchw([1, 48, 28, 28]);
        let split = x.reshaped(vec![1, 2, 24, 28, 28]);
        assert_eq!(split.axes[3..], [Axis::Height, Axis::Width]);
        assert!(!split.is_feature_map());
        let back = split.permuted(&[0, 2, 1, 3, 4]).reshaped(vec![1, 48, 28, 28]);
        assert_eq!(back, ValueShape::nchw([1, 48, 28, 28]));
    }

    #[test]
    fn view_n_c_minus_one_keeps_the_channels() {
        let v = ValueShape::nchw([1, 64, 7, 7]).reshaped(vec![1, 64, 49]);
        assert_eq!(v.axes, [Axis::Batch, Axis::Channel, Axis::Other]);
        let g = ValueShape::nchw([1, 64, 7, 7]).reshaped(vec![1, 8, 392]);
        assert_eq!(g.reshaped(vec![1, 64, 7, 7]), ValueShape::nchw([1, 64, 7, 7]));
    }
}
