//! 3x3 convolution with stride 1 and padding 1 ("same" size) on NCHW `f32` feature maps: the
//! forward pass, the input gradient and the weight gradient.
//!
//! With `x: [B, C, H, W]`, `w: [O, C, 3, 3]`, `y: [B, O, H, W]` and `x` read as 0 outside the
//! image:
//!
//! ```text
//! y[b,o,i,j]  = bias[o] + Σ_c Σ_{u,v<3} w[o,c,u,v] · x[b,c,i+u-1,j+v-1]
//! dx[b,c,i,j] = Σ_o Σ_{u,v<3} w[o,c,u,v] · dy[b,o,i-u+1,j-v+1]
//!             = the same convolution of dy, with w transposed (o <-> c) and flipped (u,v -> 2-u,2-v)
//! dw[o,c,u,v] = Σ_b Σ_{i,j} dy[b,o,i,j] · x[b,c,i+u-1,j+v-1]
//! dbias[o]    = Σ_b Σ_{i,j} dy[b,o,i,j]
//! ```
//!
//! Both convolutions read a zero-padded copy of their input ([`Padded`]), so the inner loops have
//! no border cases; building that copy is also where a channel concatenation (the UNet's skip
//! connection) happens for free, and where the gradient of one is split back. The vector kernel
//! computes a tile of 4 output channels x 2 vectors of 8 pixels (8 accumulators, 6 loads per 8
//! FMAs, no register spills), or 4 x 4 vectors (16 accumulators, 8 loads per 16 FMAs) in AVX-512's
//! 32 registers where the CPU has them; the weight gradient keeps 4 output channels x 3 horizontal
//! taps in registers while sweeping the images once per input channel and kernel row.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{self, Isa};

/// Output channels per vector tile.
const BLOCK: usize = 4;
/// Pixel vectors (8 pixels each) per vector tile: 4x2 accumulators, 4 weights and a pixel
/// vector fit the 16 AVX registers without spills.
const TILE: usize = 2;
/// Pixel vectors per tile with AVX-512's 32 registers: 4x4 accumulators.
const WIDE_TILE: usize = 4;
// `run_tile` instantiates the kernels for tiles of 1 to `TILE` (AVX2) and 1 to `WIDE_TILE`
// (AVX-512) vectors.
const _: () = assert!(TILE == 2 && WIDE_TILE == 4);
/// Lanes of an AVX vector of `f32`.
const LANES: usize = 8;

/// A batch of feature maps with a zero border of one pixel, rows padded to whole vectors.
///
/// Pixel `(i, j)` of channel `c` of image `b` is at `(b * channels + c) * plane + (i + 1) * row
/// + j + 1`; every other element is 0. The rows are long enough for an 8-wide load starting at
/// any column `j` of the image plus 2.
#[derive(Debug)]
pub struct Padded {
    data: Vec<f32>,
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    row: usize,
    plane: usize,
}

impl Padded {
    /// The channel concatenation of `sources` (each `[batch, channels[k], height, width]`,
    /// contiguous), padded.
    ///
    /// # Panics
    /// If a source does not have `batch * channels[k] * height * width` elements.
    pub fn new(
        sources: &[&[f32]],
        channels: &[usize],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Self {
        assert_eq!(sources.len(), channels.len());
        for (source, &c) in sources.iter().zip(channels) {
            assert_eq!(source.len(), batch * c * height * width, "source size");
        }
        let total_channels: usize = channels.iter().sum();
        let row = width.div_ceil(LANES) * LANES + LANES;
        let plane = (height + 2) * row;
        let mut data = Vec::<f32>::with_capacity(batch * total_channels * plane);
        let area = height * width;
        data.spare_capacity_mut()[..batch * total_channels * plane]
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(index, out)| {
                let (b, mut c) = (index / total_channels, index % total_channels);
                let mut source = 0;
                while c >= channels[source] {
                    c -= channels[source];
                    source += 1;
                }
                let start = (b * channels[source] + c) * area;
                let src = &sources[source][start..start + area];
                fill_padded_plane(out, src, height, width, row);
            });
        // SAFETY: the chunks above cover the whole length and every element of each was written.
        unsafe { data.set_len(batch * total_channels * plane) };
        Self {
            data,
            batch,
            channels: total_channels,
            height,
            width,
            row,
            plane,
        }
    }

    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// Writes one padded plane: zero rows above and below, zero columns left and right.
fn fill_padded_plane(
    out: &mut [MaybeUninit<f32>],
    src: &[f32],
    height: usize,
    width: usize,
    row: usize,
) {
    let zero = MaybeUninit::new(0.0);
    out[..row].fill(zero);
    out[(height + 1) * row..].fill(zero);
    for (i, line) in src.chunks_exact(width).enumerate() {
        let dst = &mut out[(i + 1) * row..(i + 2) * row];
        dst[0] = zero;
        for (d, &s) in dst[1..=width].iter_mut().zip(line) {
            *d = MaybeUninit::new(s);
        }
        dst[width + 1..].fill(zero);
    }
}

/// A 3x3 kernel as a convolution reads it, straight from burn's `[out, in, 3, 3]` layout (no
/// repacking per call): for the forward pass as it is, for the input gradient the same memory
/// transposed (out <-> in) and flipped (tap `t` -> `8 - t`).
#[derive(Clone, Copy)]
pub struct Weights<'a> {
    data: &'a [f32],
    /// Output and input channels of the convolution computed with these weights.
    outs: usize,
    ins: usize,
    /// Distance in `data` between consecutive output channels and input channels.
    out_stride: usize,
    in_stride: usize,
    flipped: bool,
}

impl<'a> Weights<'a> {
    /// For the forward pass: `weight` is `[out, in, 3, 3]`.
    pub fn forward(weight: &'a [f32], out_channels: usize, in_channels: usize) -> Self {
        assert_eq!(weight.len(), out_channels * in_channels * 9, "weight size");
        Self {
            data: weight,
            outs: out_channels,
            ins: in_channels,
            out_stride: in_channels * 9,
            in_stride: 9,
            flipped: false,
        }
    }

    /// For the input gradient: the convolution of `dy` (`out` channels) producing `dx` (`in`
    /// channels) with `weight` (`[out, in, 3, 3]`) transposed and flipped.
    pub fn input_gradient(weight: &'a [f32], out_channels: usize, in_channels: usize) -> Self {
        assert_eq!(weight.len(), out_channels * in_channels * 9, "weight size");
        Self {
            data: weight,
            outs: in_channels,
            ins: out_channels,
            out_stride: 9,
            in_stride: in_channels * 9,
            flipped: true,
        }
    }

    /// Offsets of the 4 output channels of `block` (lanes past the last channel repeat it;
    /// their results are not stored).
    fn lane_offsets(&self, block: usize) -> [usize; BLOCK] {
        std::array::from_fn(|lane| (block * BLOCK + lane).min(self.outs - 1) * self.out_stride)
    }

    /// Offset of tap `tap` (row-major over the 3x3 window).
    fn tap(&self, tap: usize) -> usize {
        if self.flipped { 8 - tap } else { tap }
    }
}

/// Where output channels go: consecutive channel ranges of one or more `[batch, channels_k, h,
/// w]` buffers (several when the gradient of a concatenation is split back). The buffers may
/// be uninitialised: the convolution writes every element.
pub struct Outputs<'a> {
    buffers: Vec<&'a mut [MaybeUninit<f32>]>,
    channels: Vec<usize>,
}

impl<'a> Outputs<'a> {
    pub fn new(buffers: Vec<&'a mut [MaybeUninit<f32>]>, channels: Vec<usize>) -> Self {
        assert_eq!(buffers.len(), channels.len());
        Self { buffers, channels }
    }

    pub fn single(buffer: &'a mut [MaybeUninit<f32>], channels: usize) -> Self {
        Self::new(vec![buffer], vec![channels])
    }

    fn total(&self) -> usize {
        self.channels.iter().sum()
    }

    /// Raw base pointers and channel counts, for the parallel kernels.
    fn raw(&mut self) -> Vec<(SendPtr, usize)> {
        self.buffers
            .iter_mut()
            .zip(&self.channels)
            .map(|(b, &c)| (SendPtr(b.as_mut_ptr().cast::<f32>()), c))
            .collect()
    }
}

/// An initialised buffer seen as one the convolution may overwrite.
pub fn writable(buffer: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout, and writing initialised values keeps the
    // buffer initialised.
    unsafe { &mut *(buffer as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the kernels write disjoint planes through these pointers (each output channel of each
// image belongs to exactly one task), and the buffers outlive the parallel loop.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Start of output plane `(b, o)` among `outputs` (raw pointers from [`Outputs::raw`]).
fn plane_ptr(outputs: &[(SendPtr, usize)], b: usize, mut o: usize, area: usize) -> *mut f32 {
    for &(ptr, channels) in outputs {
        if o < channels {
            // SAFETY: (b * channels + o) * area is inside a [batch, channels, h, w] buffer.
            return unsafe { ptr.0.add((b * channels + o) * area) };
        }
        o -= channels;
    }
    unreachable!("output channel out of range")
}

/// `y = conv3x3(x) + bias`, then `max(y, 0)` if `relu`, into `outputs` (which must cover
/// `weights.outs` channels). With [`Weights::input_gradient`] weights and `x` the padded
/// output gradient, this is the input gradient.
pub fn forward(
    x: &Padded,
    weights: &Weights,
    bias: Option<&[f32]>,
    relu: bool,
    outputs: Outputs<'_>,
) {
    forward_with(simd::isa(), x, weights, bias, relu, outputs)
}

/// [`forward`] with a chosen instruction set.
pub fn forward_with(
    isa: Isa,
    x: &Padded,
    weights: &Weights,
    bias: Option<&[f32]>,
    relu: bool,
    mut outputs: Outputs<'_>,
) {
    assert_eq!(x.channels, weights.ins, "input channels");
    let out_channels = weights.outs;
    assert_eq!(outputs.total(), out_channels, "output channels");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), out_channels, "bias size");
    }
    for (buffer, &c) in outputs.buffers.iter().zip(&outputs.channels) {
        assert_eq!(
            buffer.len(),
            x.batch * c * x.height * x.width,
            "output size"
        );
    }
    let (height, width) = (x.height, x.width);
    let area = height * width;
    if area == 0 || x.batch == 0 || out_channels == 0 {
        return;
    }
    let raw = outputs.raw();
    let blocks = out_channels.div_ceil(BLOCK);
    // With small weights, each task computes every output block of its tiles one after the
    // other while the tiles' input rows are in L1, so a large input is read from memory once
    // instead of once per block; large weights stay per block (they would not fit).
    let weight_bytes = out_channels * x.channels * 9 * std::mem::size_of::<f32>();
    let blocks_per_task = if weight_bytes <= SHARED_WEIGHT_BYTES {
        blocks
    } else {
        1
    };
    let block_groups = blocks.div_ceil(blocks_per_task);
    let vectors_per_row = width.div_ceil(LANES);
    let tile = tile_vectors(isa);
    let tiles = (height * vectors_per_row).div_ceil(tile);
    // Enough tasks to keep every thread busy, not so many that scheduling shows.
    let threads = rayon::current_num_threads();
    let chunks = (threads * 4)
        .div_ceil(x.batch * block_groups)
        .clamp(1, tiles.max(1));
    let tiles_per_chunk = tiles.div_ceil(chunks);

    (0..x.batch * block_groups * chunks)
        .into_par_iter()
        .for_each(|task| {
            let chunk = task % chunks;
            let group = (task / chunks) % block_groups;
            let b = task / (chunks * block_groups);
            let image = &x.data[b * x.channels * x.plane..(b + 1) * x.channels * x.plane];
            let mut tiles: Vec<Tile> = (group * blocks_per_task
                ..((group + 1) * blocks_per_task).min(blocks))
                .map(|block| {
                    let mut tile = Tile {
                        image,
                        x,
                        weights: *weights,
                        lanes: weights.lane_offsets(block),
                        bias: [0.0; BLOCK],
                        relu,
                        planes: [std::ptr::null_mut(); BLOCK],
                        geometry: TileGeometry::default(),
                    };
                    for lane in 0..BLOCK {
                        let o = block * BLOCK + lane;
                        if o < out_channels {
                            tile.bias[lane] = bias.map_or(0.0, |bias| bias[o]);
                            tile.planes[lane] = plane_ptr(&raw, b, o, area);
                        }
                    }
                    tile
                })
                .collect();
            let first = chunk * tiles_per_chunk * tile;
            let last = ((chunk + 1) * tiles_per_chunk * tile).min(height * vectors_per_row);
            let mut v = first;
            while v < last {
                let n = (last - v).min(tile);
                let geometry = TileGeometry::new(v, n, vectors_per_row, width, x.row);
                for tile in &mut tiles {
                    tile.geometry = geometry;
                    run_tile(isa, tile, n);
                }
                v += n;
            }
        });
}

/// Pixel vectors per tile for `isa` on this CPU.
fn tile_vectors(isa: Isa) -> usize {
    match isa == Isa::Avx512 {
        true => WIDE_TILE,
        false => TILE,
    }
}

/// Weights up to this size are shared by all output blocks of a task (see `forward_with`).
const SHARED_WEIGHT_BYTES: usize = 64 << 10;

/// One tile with `n` pixel vectors, with the kernel for `isa`.
fn run_tile(isa: Isa, tile: &Tile, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: AVX2, FMA and AVX-512 F and VL are present (checked at run time); the offsets
        // stay inside the padded image and the output planes (TileGeometry).
        unsafe {
            match (n, tile.weights.flipped) {
                (4, false) => tile_avx512::<4, false>(tile),
                (4, true) => tile_avx512::<4, true>(tile),
                (3, false) => tile_avx512::<3, false>(tile),
                (3, true) => tile_avx512::<3, true>(tile),
                (2, false) => tile_avx512::<2, false>(tile),
                (2, true) => tile_avx512::<2, true>(tile),
                (_, false) => tile_avx512::<1, false>(tile),
                (_, true) => tile_avx512::<1, true>(tile),
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx2() {
        // SAFETY: AVX2 and FMA are present (checked at run time); the offsets stay inside the
        // padded image and the output planes (TileGeometry).
        unsafe {
            match (n, tile.weights.flipped) {
                (2, false) => tile_avx2::<2, false>(tile),
                (2, true) => tile_avx2::<2, true>(tile),
                (_, false) => tile_avx2::<1, false>(tile),
                (_, true) => tile_avx2::<1, true>(tile),
            }
        }
        return;
    }
    let _ = isa;
    tile_portable(tile, n);
}

/// Everything one tile kernel call reads and writes.
struct Tile<'a> {
    /// The padded planes of one image.
    image: &'a [f32],
    x: &'a Padded,
    weights: Weights<'a>,
    /// [`Weights::lane_offsets`] of the block.
    lanes: [usize; BLOCK],
    bias: [f32; BLOCK],
    relu: bool,
    /// Output plane of each lane, null past the last channel.
    planes: [*mut f32; BLOCK],
    geometry: TileGeometry,
}

/// Where the (up to [`WIDE_TILE`]) pixel vectors of a tile are: flat vector index `v` is row
/// `v / vectors_per_row`, columns from `8 * (v % vectors_per_row)`.
#[derive(Default, Clone, Copy)]
struct TileGeometry {
    /// Offset of each vector's 3x3 window (top-left) in a padded plane.
    input: [usize; WIDE_TILE],
    /// Offset of each vector's first pixel in an output plane.
    output: [usize; WIDE_TILE],
    /// Valid pixels in each vector (8 but at the right edge).
    lanes: [usize; WIDE_TILE],
}

impl TileGeometry {
    fn new(first: usize, n: usize, vectors_per_row: usize, width: usize, row: usize) -> Self {
        let mut g = Self {
            input: [0; WIDE_TILE],
            output: [0; WIDE_TILE],
            lanes: [0; WIDE_TILE],
        };
        for k in 0..n {
            let v = first + k;
            let (i, j) = (v / vectors_per_row, (v % vectors_per_row) * LANES);
            g.input[k] = i * row + j;
            g.output[k] = i * width + j;
            g.lanes[k] = (width - j).min(LANES);
        }
        g
    }
}

/// The vector tile kernel (`$tile`: sums, ReLU, stores) compiled for `$features`: with AVX2 +
/// FMA, and again with AVX-512 F and VL, whose 32 vector registers hold wider tiles
/// ([`WIDE_TILE`]) of the same 8-lane vectors.
macro_rules! tile_kernel {
    ($tile:ident, $sums:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        #[allow(clippy::needless_range_loop)] // indices into register arrays read best as indices
        unsafe fn $tile<const N: usize, const FLIPPED: bool>(t: &Tile) {
            use std::arch::x86_64::*;
            // SAFETY: same contract as this function's.
            let mut acc = unsafe { $sums::<N, FLIPPED>(t) };
            if t.relu {
                for acc in acc.iter_mut().flatten() {
                    // maxps returns its second operand when either is NaN: NaNs pass through.
                    *acc = _mm256_max_ps(_mm256_setzero_ps(), *acc);
                }
            }
            let g = &t.geometry;
            for lane in 0..BLOCK {
                let out = t.planes[lane];
                if out.is_null() {
                    continue;
                }
                for k in 0..N {
                    // SAFETY: output offset + valid lanes stays inside the output plane.
                    unsafe {
                        let at = out.add(g.output[k]);
                        if g.lanes[k] == LANES {
                            _mm256_storeu_ps(at, acc[lane][k]);
                        } else {
                            _mm256_maskstore_ps(
                                at,
                                simd::x86::first_lanes(g.lanes[k]),
                                acc[lane][k],
                            );
                        }
                    }
                }
            }
        }

        /// The accumulators of a tile: bias + Σ over channels and taps. A function of its own
        /// (never inlined into the stores) so that the accumulators are only ever indexed by
        /// constants and stay in registers; sharing the array with the store loop made the compiler
        /// write every accumulator back to memory after every FMA.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        #[inline(never)]
        #[allow(clippy::needless_range_loop)]
        unsafe fn $sums<const N: usize, const FLIPPED: bool>(
            t: &Tile,
        ) -> [[std::arch::x86_64::__m256; N]; BLOCK] {
            use std::arch::x86_64::*;
            let (row, plane) = (t.x.row, t.x.plane);
            let input = t.geometry.input;
            let mut acc = [[_mm256_setzero_ps(); N]; BLOCK];
            for lane in 0..BLOCK {
                acc[lane] = [_mm256_set1_ps(t.bias[lane]); N];
            }
            let base = t.image.as_ptr();
            let weights = t.weights.data.as_ptr();
            for c in 0..t.x.channels {
                // SAFETY (all loads below): channel c's plane lies inside `image`; a window offset
                // plus tap offset (< 2 * row + 2) plus 8 lanes stays inside the plane (Padded's row
                // length); lane offset + channel offset + tap is an element of the weights.
                unsafe {
                    let xc = base.add(c * plane);
                    let wc = weights.add(c * t.weights.in_stride);
                    let wl = t.lanes.map(|offset| wc.add(offset));
                    for tap in 0..9 {
                        let at = xc.add((tap / 3) * row + tap % 3);
                        let wt = if FLIPPED { 8 - tap } else { tap };
                        // BLOCK weights and one pixel vector at a time besides the accumulators: no
                        // register spills.
                        let mut w = [_mm256_setzero_ps(); BLOCK];
                        for lane in 0..BLOCK {
                            w[lane] = _mm256_broadcast_ss(&*wl[lane].add(wt));
                        }
                        for k in 0..N {
                            let xv = _mm256_loadu_ps(at.add(input[k]));
                            for lane in 0..BLOCK {
                                acc[lane][k] = _mm256_fmadd_ps(w[lane], xv, acc[lane][k]);
                            }
                        }
                    }
                }
            }
            acc
        }
    };
}

tile_kernel!(tile_avx2, tile_sums_avx2, "avx2,fma");
tile_kernel!(tile_avx512, tile_sums_avx512, "avx2,fma,avx512f,avx512vl");

/// The same tile without vector instructions, for `n` pixel vectors.
fn tile_portable(t: &Tile, n: usize) {
    let (row, plane) = (t.x.row, t.x.plane);
    let g = &t.geometry;
    let mut acc = [[[0.0f32; LANES]; WIDE_TILE]; BLOCK];
    for (lane, acc) in acc.iter_mut().enumerate() {
        *acc = [[t.bias[lane]; LANES]; WIDE_TILE];
    }
    for c in 0..t.x.channels {
        let xc = &t.image[c * plane..(c + 1) * plane];
        let wc = &t.weights.data[c * t.weights.in_stride..];
        for tap in 0..9 {
            let shift = (tap / 3) * row + tap % 3;
            for k in 0..n {
                let xs = &xc[g.input[k] + shift..g.input[k] + shift + LANES];
                for lane in 0..BLOCK {
                    let w = wc[t.lanes[lane] + t.weights.tap(tap)];
                    for (a, &v) in acc[lane][k].iter_mut().zip(xs) {
                        *a += w * v;
                    }
                }
            }
        }
    }
    for (acc, &out) in acc.iter().zip(&t.planes) {
        if out.is_null() {
            continue;
        }
        for k in 0..n {
            for (p, &value) in acc[k][..g.lanes[k]].iter().enumerate() {
                let value = if t.relu && value < 0.0 { 0.0 } else { value };
                // SAFETY: output offset + valid lanes stays inside the output plane.
                unsafe { *out.add(g.output[k] + p) = value };
            }
        }
    }
}

/// `dw` (`[out, in, 3, 3]`) from the padded input `x` and the output gradient `dy`
/// (`[batch, out, h, w]`).
pub fn weight_gradient(x: &Padded, dy: &[f32], out_channels: usize) -> Vec<f32> {
    weight_gradient_with(simd::isa(), x, dy, out_channels)
}

/// [`weight_gradient`] with a chosen instruction set: narrow maps (the last stages: 3x4 to
/// 12x16 at 128x96) as one matrix product over unfolded patches, where a row sweep would
/// spend more on its reductions than on its products; wider ones by [`weight_gradient_rows`].
pub fn weight_gradient_with(isa: Isa, x: &Padded, dy: &[f32], out_channels: usize) -> Vec<f32> {
    match x.width < NARROW {
        true => weight_gradient_unfolded(x, dy, out_channels),
        false => weight_gradient_rows(isa, x, dy, out_channels),
    }
}

/// Maps narrower than this take [`weight_gradient_unfolded`]. Measured on a 2-core EPYC,
/// batch 8: ResNet-18 UNet training 15.1 -> 19.4 images/s at 128x96 with widths up to 16
/// unfolded, 16.9 with widths up to 32 too; the UNet 68 -> 80 images/s at 128x96, the same at
/// 256x192.
const NARROW: usize = 3 * LANES;

/// Floats of unfolded patches one product of [`weight_gradient_unfolded`] takes at most
/// (64 MiB): more images are done in groups.
const UNFOLDED_FLOATS: usize = 1 << 24;

/// `dw[o, c·9 + tap] = Σ_{b, p} dy[b, o, p] · patch[b, c·9 + tap, p]`: the input unfolded into
/// its 3x3 patches (`[c·9, b·h·w]`), the output gradient gathered to `[o, b·h·w]`, and one
/// matrix product (the `gemm` crate, its kernels chosen at run time), its output rows split
/// across threads.
pub fn weight_gradient_unfolded(x: &Padded, dy: &[f32], out_channels: usize) -> Vec<f32> {
    unfolded_in_groups(x, dy, out_channels, UNFOLDED_FLOATS)
}

/// [`weight_gradient_unfolded`] with at most `floats` unfolded patches at a time.
fn unfolded_in_groups(x: &Padded, dy: &[f32], out_channels: usize, floats: usize) -> Vec<f32> {
    let (batch, channels, height, width) = (x.batch, x.channels, x.height, x.width);
    let area = height * width;
    assert_eq!(
        dy.len(),
        batch * out_channels * area,
        "output gradient size"
    );
    let columns = channels * 9;
    let mut dw = vec![0.0f32; out_channels * columns];
    if area == 0 || columns == 0 {
        return dw;
    }
    let group = (floats / (columns * area)).clamp(1, batch.max(1));
    let threads = rayon::current_num_threads().max(1);
    let rows_per_task = out_channels.div_ceil(threads).max(1);
    for first in (0..batch).step_by(group) {
        let images = group.min(batch - first);
        let k = images * area;
        // patches[(c·9 + ky·3 + kx)·k + b·area + i·width + j] = xp[b, c, i + ky, j + kx]
        let mut patches = vec![0.0f32; columns * k];
        patches
            .par_chunks_mut(9 * k)
            .enumerate()
            .for_each(|(c, taps)| {
                for (tap, out) in taps.chunks_mut(k).enumerate() {
                    let (ky, kx) = (tap / 3, tap % 3);
                    for b in 0..images {
                        let plane = ((first + b) * channels + c) * x.plane;
                        for i in 0..height {
                            let start = plane + (i + ky) * x.row + kx;
                            out[b * area + i * width..][..width]
                                .copy_from_slice(&x.data[start..start + width]);
                        }
                    }
                }
            });
        // gathered[o·k + b·area + p] = dy[first + b, o, p]
        let mut gathered = vec![0.0f32; out_channels * k];
        for (o, row) in gathered.chunks_mut(k).enumerate() {
            for b in 0..images {
                let start = ((first + b) * out_channels + o) * area;
                row[b * area..][..area].copy_from_slice(&dy[start..start + area]);
            }
        }
        dw.par_chunks_mut(rows_per_task * columns)
            .zip(gathered.par_chunks(rows_per_task * k))
            .for_each(|(dst, lhs)| {
                let m = lhs.len() / k;
                super::conv1x1::product(
                    dst,
                    super::conv1x1::Operand::rows(lhs, k),
                    super::conv1x1::Operand::columns(&patches, k),
                    [m, columns, k],
                    true,
                );
            });
    }
    dw
}

/// [`weight_gradient`] by sweeping rows of the padded input, 4 output channels at a time.
pub fn weight_gradient_rows(isa: Isa, x: &Padded, dy: &[f32], out_channels: usize) -> Vec<f32> {
    let (batch, height, width) = (x.batch, x.height, x.width);
    let area = height * width;
    assert_eq!(
        dy.len(),
        batch * out_channels * area,
        "output gradient size"
    );
    let in_channels = x.channels;
    let blocks = out_channels.div_ceil(BLOCK);
    let threads = rayon::current_num_threads();
    // Split the input channels only as far as needed for parallelism: each task sweeps its
    // output block's gradient once per input channel and kernel row, so fewer, longer tasks
    // keep that block in cache.
    let chunks = (threads * 3).div_ceil(blocks).clamp(1, in_channels.max(1));
    let per_chunk = in_channels.div_ceil(chunks);

    // The output-gradient block (4 channels) one pass sweeps is sized to stay in the L2 cache
    // while it is swept once per input channel and kernel row: small late-stage maps are swept
    // several images at a time (long passes instead of many short ones), large early-stage
    // maps in bands of rows (so that the band is not fetched from memory 3·C times).
    let group = (GROUP_FLOATS / (BLOCK * area).max(1)).clamp(1, batch.max(1));
    let band = if group > 1 {
        height
    } else {
        (GROUP_FLOATS / (BLOCK * width).max(1)).clamp(1, height.max(1))
    };

    let parts: Vec<(usize, usize, Vec<f64>)> = (0..blocks * chunks)
        .into_par_iter()
        .map(|task| {
            let (block, chunk) = (task / chunks, task % chunks);
            let cs = chunk * per_chunk..((chunk + 1) * per_chunk).min(in_channels);
            // [lane][c - cs.start][tap]
            let mut sums = vec![0.0f64; BLOCK * cs.len() * 9];
            let mut images: Vec<WeightRows> = Vec::with_capacity(group);
            for first in (0..batch).step_by(group) {
                let last = (first + group).min(batch);
                for top in (0..height).step_by(band) {
                    let rows = band.min(height - top);
                    for c in cs.clone() {
                        for ky in 0..3 {
                            images.clear();
                            for b in first..last {
                                let mut dys = [&dy[..0]; BLOCK];
                                for (lane, slot) in dys.iter_mut().enumerate() {
                                    // A lane past the last channel repeats the last one; its
                                    // sums are dropped.
                                    let o = (block * BLOCK + lane).min(out_channels - 1);
                                    let start = (b * out_channels + o) * area + top * width;
                                    *slot = &dy[start..start + rows * width];
                                }
                                let start = (b * in_channels + c) * x.plane + (top + ky) * x.row;
                                let plane_end = (b * in_channels + c + 1) * x.plane;
                                images.push(WeightRows {
                                    dys,
                                    rows: &x.data[start..plane_end],
                                });
                            }
                            let row_sums = weight_rows(isa, &images, rows, width, x.row);
                            for (lane, taps) in row_sums.iter().enumerate() {
                                for (kx, &s) in taps.iter().enumerate() {
                                    sums[(lane * cs.len() + c - cs.start) * 9 + ky * 3 + kx] +=
                                        s as f64;
                                }
                            }
                        }
                    }
                }
            }
            (block, cs.start, sums)
        })
        .collect();

    let mut dw = vec![0.0f32; out_channels * in_channels * 9];
    for (block, c0, sums) in parts {
        let count = sums.len() / (BLOCK * 9);
        for lane in 0..BLOCK {
            let o = block * BLOCK + lane;
            if o >= out_channels {
                continue;
            }
            for dc in 0..count {
                for tap in 0..9 {
                    dw[(o * in_channels + c0 + dc) * 9 + tap] =
                        sums[(lane * count + dc) * 9 + tap] as f32;
                }
            }
        }
    }
    dw
}

/// Floats of output gradient one weight-gradient pass keeps in cache (256 KiB).
const GROUP_FLOATS: usize = 1 << 16;

/// One image's operands of a weight-gradient pass: the output gradient planes of the 4 lanes,
/// and one padded input plane from kernel row `ky` on.
struct WeightRows<'a> {
    dys: [&'a [f32]; BLOCK],
    rows: &'a [f32],
}

/// [`weight_rows_avx2`] or its portable twin.
fn weight_rows(
    isa: Isa,
    images: &[WeightRows],
    height: usize,
    width: usize,
    row: usize,
) -> [[f32; 3]; BLOCK] {
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx2() {
        // SAFETY: AVX2 and FMA are present (checked at run time).
        return unsafe { weight_rows_avx2(images, height, width, row) };
    }
    let _ = isa;
    weight_rows_portable(images, height, width, row)
}

/// `Σ_images Σ_{i,j} dy[lane][i,j] · xp[i + ky, j + kx]` for the 4 lanes and 3 values of `kx`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_rows_avx2(
    images: &[WeightRows],
    height: usize,
    width: usize,
    row: usize,
) -> [[f32; 3]; BLOCK] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 3]; BLOCK];
    let full = width / LANES * LANES;
    let tail = simd::x86::first_lanes(width - full);
    for image in images {
        let xs = image.rows.as_ptr();
        let dys = image.dys.map(|d| d.as_ptr());
        for i in 0..height {
            // SAFETY (loads): dy rows are `width` long inside their planes; the masked load
            // stops at the row's end. Padded rows hold `width + 2` columns plus at least 8
            // more, and `rows` starts at most 2 rows above the plane's end.
            unsafe {
                let xr = xs.add(i * row);
                let dr = dys.map(|d| d.add(i * width));
                let mut j = 0;
                while j < full {
                    let x0 = _mm256_loadu_ps(xr.add(j));
                    let x1 = _mm256_loadu_ps(xr.add(j + 1));
                    let x2 = _mm256_loadu_ps(xr.add(j + 2));
                    for lane in 0..BLOCK {
                        let d = _mm256_loadu_ps(dr[lane].add(j));
                        acc[lane][0] = _mm256_fmadd_ps(d, x0, acc[lane][0]);
                        acc[lane][1] = _mm256_fmadd_ps(d, x1, acc[lane][1]);
                        acc[lane][2] = _mm256_fmadd_ps(d, x2, acc[lane][2]);
                    }
                    j += LANES;
                }
                if full < width {
                    let x0 = _mm256_loadu_ps(xr.add(j));
                    let x1 = _mm256_loadu_ps(xr.add(j + 1));
                    let x2 = _mm256_loadu_ps(xr.add(j + 2));
                    for lane in 0..BLOCK {
                        let d = _mm256_maskload_ps(dr[lane].add(j), tail);
                        acc[lane][0] = _mm256_fmadd_ps(d, x0, acc[lane][0]);
                        acc[lane][1] = _mm256_fmadd_ps(d, x1, acc[lane][1]);
                        acc[lane][2] = _mm256_fmadd_ps(d, x2, acc[lane][2]);
                    }
                }
            }
        }
    }
    let mut out = [[0.0; 3]; BLOCK];
    for lane in 0..BLOCK {
        for kx in 0..3 {
            out[lane][kx] = simd::x86::hsum(acc[lane][kx]);
        }
    }
    out
}

fn weight_rows_portable(
    images: &[WeightRows],
    height: usize,
    width: usize,
    row: usize,
) -> [[f32; 3]; BLOCK] {
    let mut sums = [[0.0f64; 3]; BLOCK];
    for image in images {
        for i in 0..height {
            let xr = &image.rows[i * row..i * row + width + 2];
            for (lane, dy) in image.dys.iter().enumerate() {
                let dr = &dy[i * width..(i + 1) * width];
                for (kx, sum) in sums[lane].iter_mut().enumerate() {
                    *sum += dr
                        .iter()
                        .zip(&xr[kx..])
                        .map(|(&d, &x)| d as f64 * x as f64)
                        .sum::<f64>();
                }
            }
        }
    }
    sums.map(|lane| lane.map(|s| s as f32))
}

/// `dbias[o] = Σ dy[b, o, :, :]` for `dy: [batch, channels, h, w]`.
pub fn bias_gradient(dy: &[f32], batch: usize, channels: usize, area: usize) -> Vec<f32> {
    assert_eq!(dy.len(), batch * channels * area, "output gradient size");
    (0..channels)
        .into_par_iter()
        .map(|o| {
            (0..batch)
                .map(|b| {
                    let start = (b * channels + o) * area;
                    super::reduce::sum(&dy[start..start + area])
                })
                .sum::<f64>() as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct evaluation of the formulas in the module comment, in f64.
    fn reference_forward(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        [b, c, h, wd]: [usize; 4],
        o: usize,
    ) -> Vec<f32> {
        let mut y = vec![0.0f32; b * o * h * wd];
        for bi in 0..b {
            for oi in 0..o {
                for i in 0..h {
                    for j in 0..wd {
                        let mut s = bias.map_or(0.0, |bias| bias[oi] as f64);
                        for ci in 0..c {
                            for u in 0..3 {
                                for v in 0..3 {
                                    let (ii, jj) = (i as isize + u - 1, j as isize + v - 1);
                                    if ii < 0 || jj < 0 || ii >= h as isize || jj >= wd as isize {
                                        continue;
                                    }
                                    let xv =
                                        x[((bi * c + ci) * h + ii as usize) * wd + jj as usize];
                                    let wv = w[(oi * c + ci) * 9 + (u * 3 + v) as usize];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((bi * o + oi) * h + i) * wd + j] = s as f32;
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}: element {k}: {x} vs {y}"
            );
        }
    }

    /// dx and dw from the formulas in the module comment, in f64.
    fn reference_gradients(
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        [b, c, h, wd]: [usize; 4],
        o: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut dx = vec![0.0f64; x.len()];
        let mut dw = vec![0.0f64; w.len()];
        for bi in 0..b {
            for oi in 0..o {
                for i in 0..h {
                    for j in 0..wd {
                        let g = dy[((bi * o + oi) * h + i) * wd + j] as f64;
                        for ci in 0..c {
                            for u in 0..3 {
                                for v in 0..3 {
                                    let (ii, jj) = (i as isize + u - 1, j as isize + v - 1);
                                    if ii < 0 || jj < 0 || ii >= h as isize || jj >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((bi * c + ci) * h + ii as usize) * wd + jj as usize;
                                    let wi = (oi * c + ci) * 9 + (u * 3 + v) as usize;
                                    dx[xi] += g * w[wi] as f64;
                                    dw[wi] += g * x[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
        (f(dx), f(dw))
    }

    const SHAPES: [(usize, usize, usize, usize, usize); 7] = [
        (1, 1, 1, 1, 1),
        (2, 3, 5, 7, 5),
        (1, 4, 9, 17, 8),
        (3, 2, 4, 8, 3),
        (1, 9, 3, 25, 6),
        (2, 16, 6, 10, 13),
        // Wide enough that the weight gradient sweeps it in bands of rows.
        (1, 2, 20, 1025, 3),
    ];

    #[test]
    fn gradients_match_the_formulas_on_odd_shapes() {
        for isa in simd::available() {
            for &(b, c, h, w, o) in &SHAPES {
                let x = values(b * c * h * w, 4);
                let wt = values(o * c * 9, 5);
                let dy = values(b * o * h * w, 6);
                let (dx_ref, dw_ref) = reference_gradients(&x, &wt, &dy, [b, c, h, w], o);
                let what = format!("{isa:?} {b}x{c}x{h}x{w} -> {o}");

                let padded_dy = Padded::new(&[&dy], &[o], b, h, w);
                let mut dx = vec![f32::NAN; x.len()];
                forward_with(
                    isa,
                    &padded_dy,
                    &Weights::input_gradient(&wt, o, c),
                    None,
                    false,
                    Outputs::single(writable(&mut dx), c),
                );
                assert_close(&dx, &dx_ref, 1e-5, &format!("dx {what}"));

                let padded_x = Padded::new(&[&x], &[c], b, h, w);
                // Each dw element sums b·h·w products in f32 lanes: rounding grows with the
                // square root of that count. Both ways, whatever the width.
                let tolerance = (5e-7 * ((b * h * w) as f32).sqrt()).max(1e-5);
                let dw = weight_gradient_with(isa, &padded_x, &dy, o);
                assert_close(&dw, &dw_ref, tolerance, &format!("dw {what}"));
                let dw = weight_gradient_rows(isa, &padded_x, &dy, o);
                assert_close(&dw, &dw_ref, tolerance, &format!("dw (rows) {what}"));
                let dw = weight_gradient_unfolded(&padded_x, &dy, o);
                assert_close(&dw, &dw_ref, tolerance, &format!("dw (unfolded) {what}"));
                // One image per product, summed.
                let dw = unfolded_in_groups(&padded_x, &dy, o, c * 9 * h * w);
                assert_close(&dw, &dw_ref, tolerance, &format!("dw (grouped) {what}"));

                let db = bias_gradient(&dy, b, o, h * w);
                for (oi, &g) in db.iter().enumerate() {
                    let expected: f64 = (0..b)
                        .flat_map(|bi| {
                            let start = (bi * o + oi) * h * w;
                            dy[start..start + h * w].iter().map(|&v| v as f64)
                        })
                        .sum();
                    assert!((g as f64 - expected).abs() < 1e-4, "db {what}");
                }
            }
        }
    }

    /// A convolution of a channel concatenation equals the convolution of the concatenated
    /// tensor, and an output split across buffers equals the split output.
    #[test]
    fn concatenated_inputs_and_split_outputs() {
        let (b, h, w, o) = (2, 5, 11, 6);
        let (c1, c2) = (3, 5);
        let x1 = values(b * c1 * h * w, 7);
        let x2 = values(b * c2 * h * w, 8);
        let mut cat = Vec::new();
        for bi in 0..b {
            cat.extend_from_slice(&x1[bi * c1 * h * w..(bi + 1) * c1 * h * w]);
            cat.extend_from_slice(&x2[bi * c2 * h * w..(bi + 1) * c2 * h * w]);
        }
        let wt = values(o * (c1 + c2) * 9, 9);
        let weights = Weights::forward(&wt, o, c1 + c2);
        let mut whole = vec![0.0; b * o * h * w];
        forward(
            &Padded::new(&[&cat], &[c1 + c2], b, h, w),
            &weights,
            None,
            false,
            Outputs::single(writable(&mut whole), o),
        );
        let (o1, o2) = (2, 4);
        let mut y1 = vec![0.0; b * o1 * h * w];
        let mut y2 = vec![0.0; b * o2 * h * w];
        forward(
            &Padded::new(&[&x1, &x2], &[c1, c2], b, h, w),
            &weights,
            None,
            false,
            Outputs::new(vec![writable(&mut y1), writable(&mut y2)], vec![o1, o2]),
        );
        for bi in 0..b {
            let at = |k: usize| bi * o * h * w + k * h * w;
            assert_eq!(
                &y1[bi * o1 * h * w..(bi + 1) * o1 * h * w],
                &whole[at(0)..at(o1)]
            );
            assert_eq!(
                &y2[bi * o2 * h * w..(bi + 1) * o2 * h * w],
                &whole[at(o1)..at(o)]
            );
        }
    }

    #[test]
    fn forward_matches_the_formula_on_odd_shapes() {
        for &(b, c, h, w, o, with_bias, relu) in &[
            (1, 1, 1, 1, 1, false, false),
            (2, 3, 5, 7, 5, true, true),
            (1, 4, 9, 17, 8, false, false),
            (3, 2, 4, 8, 3, true, false),
            (1, 9, 3, 25, 6, true, true),
        ] {
            let x = values(b * c * h * w, 1);
            let wt = values(o * c * 9, 2);
            let bias = values(o, 3);
            let bias = with_bias.then_some(&bias[..]);
            let padded = Padded::new(&[&x], &[c], b, h, w);
            let mut expected = reference_forward(&x, &wt, bias, [b, c, h, w], o);
            if relu {
                expected.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            for isa in simd::available() {
                let mut y = vec![f32::NAN; b * o * h * w];
                forward_with(
                    isa,
                    &padded,
                    &Weights::forward(&wt, o, c),
                    bias,
                    relu,
                    Outputs::single(writable(&mut y), o),
                );
                assert_close(
                    &y,
                    &expected,
                    1e-5,
                    &format!("{isa:?} {b}x{c}x{h}x{w} -> {o}"),
                );
            }
        }
    }
}
