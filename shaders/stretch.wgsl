// Contrast stretch of a three-channel layer, drawn as a textured mesh.
// The data texture holds the channels' values in r, g, b (any units) and validity in a
// (1 valid, 0 not). Output: ((v - low) / (high - low)) clamped to 0..1, raised to 1 / gamma,
// premultiplied by the opacity; invalid pixels are transparent. The CPU reference is
// `s2cr::layers::stretch_value`.

struct Params {
    low: vec4<f32>,
    high: vec4<f32>,
    // x: gamma, y: opacity.
    gamma_opacity: vec4<f32>,
};

@group(0) @binding(0) var data: texture_2d<f32>;
@group(0) @binding(1) var<uniform> params: Params;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@location(0) pos: vec2<f32>, @location(1) uv: vec2<f32>) -> VsOut {
    var out: VsOut;
    out.pos = vec4<f32>(pos, 0.0, 1.0);
    out.uv = uv;
    return out;
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let size = textureDimensions(data);
    let xy = min(vec2<u32>(floor(in.uv * vec2<f32>(size))), size - vec2<u32>(1u, 1u));
    let v = textureLoad(data, xy, 0);
    if (v.a < 0.5) {
        return vec4<f32>(0.0, 0.0, 0.0, 0.0);
    }
    let span = max(params.high.rgb - params.low.rgb, vec3<f32>(1e-12));
    let t = clamp((v.rgb - params.low.rgb) / span, vec3<f32>(0.0), vec3<f32>(1.0));
    let c = pow(t, vec3<f32>(1.0 / params.gamma_opacity.x));
    let a = params.gamma_opacity.y;
    return vec4<f32>(c * a, a);
}
