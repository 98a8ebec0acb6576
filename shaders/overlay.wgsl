// overlay.wgsl: the studio's canvas in one pass: the photo with the ground truth, the
// prediction, their difference or the model's confidence over it.
//
// Drawn by `src/studio/compare/gpu.rs` inside egui's render pass, one quad per tile of the
// image (tiles exist only for images larger than the GPU's texture limit).
//
// Bindings (group 0, one bind group per tile):
//   0  u           uniform `Overlay` (below)
//   1  image       texture_2d<f32>  Rgba8Unorm: the tile's pixels, gamma-encoded sRGB
//   2  image_smp   sampler: nearest when magnified (crisp pixels), linear when minified
//   3  truth       texture_2d<u32>  R8Uint ground-truth class ids, 255 = unlabelled
//   4  prediction  texture_2d<u32>  R8Uint predicted class ids
//   5  confidence  texture_2d<f32>  R8Unorm winning softmax probability
//   6  lut         texture_2d<f32>  256x1 Rgba8Unorm class colours; alpha 0 = transparent
// truth, prediction and confidence cover the tile plus a 1-pixel apron (clipped to the
// image), so outlines see their neighbours across tile edges.
//
// Blending happens in gamma space on floats, `mix(image, layer, alpha)`, and the result is
// opaque. `fs_main_gamma` writes it to a gamma framebuffer (Rgba8Unorm, Bgra8Unorm: what egui
// prefers); `fs_main_linear` converts it for sRGB framebuffers. The CPU reference of the same
// maths is `src/studio/compare/blend.rs`; the tests compare the two pixel by pixel.

struct Overlay {
    // The tile's rectangle in clip space: left, top, right, bottom.
    quad: vec4<f32>,
    // The tile in image pixels: x, y, width, height.
    tile: vec4<f32>,
    // The mask textures' extent in image pixels (the tile plus its apron): x, y, width, height.
    apron: vec4<f32>,
    // 0..1, the overlay's strength.
    opacity: f32,
    // Split view: image x (pixels) where the prediction starts.
    divider: f32,
    // 0 image, 1 ground truth, 2 prediction, 3 difference, 4 confidence, 5 split.
    mode: u32,
    // Difference view: the class whose false positives and negatives are shown; 255 = any.
    class_id: u32,
    // 1: ground truth and prediction show class boundaries only.
    outline: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
};

@group(0) @binding(0) var<uniform> u: Overlay;
@group(0) @binding(1) var image: texture_2d<f32>;
@group(0) @binding(2) var image_smp: sampler;
@group(0) @binding(3) var truth: texture_2d<u32>;
@group(0) @binding(4) var prediction: texture_2d<u32>;
@group(0) @binding(5) var confidence: texture_2d<f32>;
@group(0) @binding(6) var lut: texture_2d<f32>;

const IGNORE: u32 = 255u;
const ANY_CLASS: u32 = 255u;
const FALSE_POSITIVE: vec3<f32> = vec3<f32>(255.0, 64.0, 32.0) / 255.0;
const FALSE_NEGATIVE: vec3<f32> = vec3<f32>(32.0, 160.0, 255.0) / 255.0;
// Errors are this much stronger than the opacity (capped at opaque), so they stand out.
const ERROR_GAIN: f32 = 1.5;
const CORRECT_DIM: f32 = 0.6;
const NEUTRAL: vec3<f32> = vec3<f32>(128.0, 128.0, 128.0) / 255.0;
const NEUTRAL_ALPHA: f32 = 0.6;
const HEAT0: vec3<f32> = vec3<f32>(0.0, 0.0, 4.0) / 255.0;
const HEAT1: vec3<f32> = vec3<f32>(187.0, 55.0, 84.0) / 255.0;
const HEAT2: vec3<f32> = vec3<f32>(249.0, 142.0, 9.0) / 255.0;
const HEAT3: vec3<f32> = vec3<f32>(252.0, 255.0, 164.0) / 255.0;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    // Continuous image coordinates (pixel centres at +0.5).
    @location(0) image_px: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    // Two triangles over the unit square.
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let c = corners[index];
    var out: VertexOut;
    out.position = vec4<f32>(mix(u.quad.xy, u.quad.zw, c), 0.0, 1.0);
    out.image_px = u.tile.xy + c * u.tile.zw;
    return out;
}

// The confidence heat map: piecewise linear through four stops.
fn heat(t: f32) -> vec3<f32> {
    let x = clamp(t, 0.0, 1.0) * 3.0;
    let i = min(floor(x), 2.0);
    let f = x - i;
    if i < 1.0 {
        return HEAT0 * (1.0 - f) + HEAT1 * f;
    }
    if i < 2.0 {
        return HEAT1 * (1.0 - f) + HEAT2 * f;
    }
    return HEAT2 * (1.0 - f) + HEAT3 * f;
}

// A class id of `layer` at mask texel `m`; outside the texture counts as unlabelled.
fn id_at(layer: texture_2d<u32>, m: vec2<i32>) -> u32 {
    return textureLoad(layer, m, 0).r;
}

// Whether a 4-neighbour inside the image holds another id (the apron holds the neighbours
// across tile edges; beyond it is outside the image).
fn on_boundary(layer: texture_2d<u32>, m: vec2<i32>, id: u32) -> bool {
    let size = vec2<i32>(u.apron.zw);
    var offsets = array<vec2<i32>, 4>(vec2<i32>(-1, 0), vec2<i32>(1, 0), vec2<i32>(0, -1), vec2<i32>(0, 1));
    for (var k = 0; k < 4; k++) {
        let n = m + offsets[k];
        if all(n >= vec2<i32>(0)) && all(n < size) && id_at(layer, n) != id {
            return true;
        }
    }
    return false;
}

// A class layer's colour and alpha.
fn class_layer(layer: texture_2d<u32>, m: vec2<i32>) -> vec4<f32> {
    let id = id_at(layer, m);
    let c = textureLoad(lut, vec2<i32>(i32(id), 0), 0);
    var alpha = c.a * u.opacity;
    if u.outline == 1u && !on_boundary(layer, m, id) {
        alpha = 0.0;
    }
    return vec4<f32>(c.rgb, alpha);
}

// What lies over the image at mask texel `m` (image pixel x centre `x`).
fn overlay_at(m: vec2<i32>, x: f32) -> vec4<f32> {
    switch u.mode {
        case 1u: {
            return class_layer(truth, m);
        }
        case 2u: {
            return class_layer(prediction, m);
        }
        case 5u: {
            if x < u.divider {
                return class_layer(truth, m);
            }
            return class_layer(prediction, m);
        }
        case 3u: {
            let t = id_at(truth, m);
            let p = id_at(prediction, m);
            let error_alpha = min(ERROR_GAIN * u.opacity, 1.0);
            if t == IGNORE {
                return vec4<f32>(NEUTRAL, NEUTRAL_ALPHA * u.opacity);
            }
            if u.class_id == ANY_CLASS {
                if t != p {
                    return vec4<f32>(FALSE_POSITIVE, error_alpha);
                }
            } else if p == u.class_id && t != u.class_id {
                return vec4<f32>(FALSE_POSITIVE, error_alpha);
            } else if t == u.class_id && p != u.class_id {
                return vec4<f32>(FALSE_NEGATIVE, error_alpha);
            }
            return vec4<f32>(0.0, 0.0, 0.0, CORRECT_DIM * u.opacity);
        }
        case 4u: {
            return vec4<f32>(heat(textureLoad(confidence, m, 0).r), u.opacity);
        }
        default: {
            return vec4<f32>(0.0);
        }
    }
}

fn shade(in: VertexOut) -> vec3<f32> {
    // Sampled first, in uniform control flow, as sampling requires.
    let photo = textureSample(image, image_smp, (in.image_px - u.tile.xy) / u.tile.zw).rgb;
    let pixel = clamp(floor(in.image_px), u.tile.xy, u.tile.xy + u.tile.zw - 1.0);
    let m = vec2<i32>(pixel - u.apron.xy);
    let over = overlay_at(m, pixel.x + 0.5);
    return photo * (1.0 - over.a) + over.rgb * over.a;
}

@fragment
fn fs_main_gamma(in: VertexOut) -> @location(0) vec4<f32> {
    return vec4<f32>(shade(in), 1.0);
}

// 0-1 linear from 0-1 sRGB gamma (as egui's shader).
fn linear_from_gamma(srgb: vec3<f32>) -> vec3<f32> {
    let cutoff = srgb < vec3<f32>(0.04045);
    let lower = srgb / vec3<f32>(12.92);
    let higher = pow((srgb + vec3<f32>(0.055)) / vec3<f32>(1.055), vec3<f32>(2.4));
    return select(higher, lower, cutoff);
}

@fragment
fn fs_main_linear(in: VertexOut) -> @location(0) vec4<f32> {
    return vec4<f32>(linear_from_gamma(shade(in)), 1.0);
}
