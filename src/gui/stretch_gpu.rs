//! The contrast stretch on the GPU (`shaders/stretch.wgsl`): a layer's three channels go to
//! the GPU once (an `Rgba32Float` texture, validity in alpha); a stretch or gamma change is then
//! a new uniform, not a new image. [`StretchRenderer::render_to_rgba`] draws into an offscreen
//! texture and reads it back, which is how the tests hold the shader to the CPU reference
//! ([`crate::layers::stretch_value`]).
//!
//! The map uses it through an egui_wgpu paint callback ([`LayerCallback`]) when the window runs
//! on the wgpu renderer; with OpenGL (and in the headless tests of the app) layers are coloured
//! on the CPU ([`crate::layers::Channels::rgba`]).

use eframe::egui_wgpu::wgpu;
use wgpu::util::DeviceExt;

use crate::layers::{Channels, Stretch};

/// The shader's source.
pub const SHADER: &str = include_str!("../../shaders/stretch.wgsl");

/// A layer's channels on the GPU.
pub struct GpuLayer {
    pub width: u32,
    pub height: u32,
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
}

/// The pipeline of the stretch shader for one output format.
pub struct StretchRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
}

/// Vertex: clip-space position and texture coordinate.
const VERTEX_BYTES: u64 = 16;

/// A plain 2D texture (one mip level, one sample).
fn texture_2d(device: &wgpu::Device, label: &str, size: wgpu::Extent3d, format: wgpu::TextureFormat, usage: wgpu::TextureUsages) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor { label: Some(label), size, mip_level_count: 1, sample_count: 1, dimension: wgpu::TextureDimension::D2, format, usage, view_formats: &[] })
}

fn params_bytes(s: &Stretch, opacity: f32) -> Vec<u8> {
    let v: [f32; 12] = [s.low[0], s.low[1], s.low[2], 0.0, s.high[0], s.high[1], s.high[2], 1.0, s.gamma.max(1e-3), opacity, 0.0, 0.0];
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl StretchRenderer {
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> StretchRenderer {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some("stretch.wgsl"), source: wgpu::ShaderSource::Wgsl(SHADER.into()) });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("stretch"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture { sample_type: wgpu::TextureSampleType::Float { filterable: false }, view_dimension: wgpu::TextureViewDimension::D2, multisampled: false },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: Some("stretch"), bind_group_layouts: &[Some(&layout)], immediate_size: 0 });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("stretch"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: VERTEX_BYTES,
                    step_mode: wgpu::VertexStepMode::Vertex,
                    attributes: &wgpu::vertex_attr_array![0 => Float32x2, 1 => Float32x2],
                })],
            },
            primitive: wgpu::PrimitiveState { topology: wgpu::PrimitiveTopology::TriangleList, ..Default::default() },
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState { format, blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING), write_mask: wgpu::ColorWrites::ALL })],
            }),
            multiview_mask: None,
            cache: None,
        });
        StretchRenderer { pipeline, layout }
    }

    /// Uploads a layer's channels (values in r, g, b; 1 in a where valid).
    pub fn upload(&self, device: &wgpu::Device, queue: &wgpu::Queue, ch: &Channels) -> GpuLayer {
        let (w, h) = (ch.width as u32, ch.height as u32);
        let mut texels = Vec::with_capacity(ch.width * ch.height * 16);
        for i in 0..ch.width * ch.height {
            let ok = ch.valid[i];
            for v in [ch.values[0][i], ch.values[1][i], ch.values[2][i], if ok { 1.0 } else { 0.0 }] {
                texels.extend_from_slice(&(if ok { v } else { 0.0f32 }).to_le_bytes());
            }
        }
        let size = wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 };
        let texture = texture_2d(device, "layer channels", size, wgpu::TextureFormat::Rgba32Float, wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST);
        queue.write_texture(
            wgpu::TexelCopyTextureInfo { texture: &texture, mip_level: 0, origin: wgpu::Origin3d::ZERO, aspect: wgpu::TextureAspect::All },
            &texels,
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(16 * w), rows_per_image: Some(h) },
            size,
        );
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let params = device.create_buffer(&wgpu::BufferDescriptor { label: Some("stretch params"), size: 48, usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("stretch"),
            layout: &self.layout,
            entries: &[wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&view) }, wgpu::BindGroupEntry { binding: 1, resource: params.as_entire_binding() }],
        });
        GpuLayer { width: w, height: h, bind_group, params }
    }

    /// Sets a layer's stretch and opacity (a uniform write: no image work).
    pub fn set_stretch(&self, queue: &wgpu::Queue, layer: &GpuLayer, stretch: &Stretch, opacity: f32) {
        queue.write_buffer(&layer.params, 0, &params_bytes(stretch, opacity));
    }

    /// Records the draw of a layer's mesh: `vertices` are (x, y) in clip space and (u, v) in
    /// the layer, `indices` its triangles.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>, layer: &GpuLayer, vertices: &wgpu::Buffer, indices: &wgpu::Buffer, index_count: u32) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &layer.bind_group, &[]);
        pass.set_vertex_buffer(0, vertices.slice(..));
        pass.set_index_buffer(indices.slice(..), wgpu::IndexFormat::Uint32);
        pass.draw_indexed(0..index_count, 0, 0..1);
    }

    /// Draws a layer over a whole offscreen RGBA8 texture of its size and reads the pixels
    /// back (unpremultiplied by an opacity of 1, so they compare with the CPU's directly).
    pub fn render_to_rgba(&self, device: &wgpu::Device, queue: &wgpu::Queue, layer: &GpuLayer, stretch: &Stretch) -> crate::error::Result<Vec<u8>> {
        self.set_stretch(queue, layer, stretch, 1.0);
        let (w, h) = (layer.width, layer.height);
        let size = wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 };
        let target = texture_2d(device, "stretch target", size, wgpu::TextureFormat::Rgba8Unorm, wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC);
        let view = target.create_view(&wgpu::TextureViewDescriptor::default());
        // One quad over the whole target: clip-space corners with the layer's corners.
        let quad: [[f32; 4]; 4] = [[-1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [-1.0, -1.0, 0.0, 1.0], [1.0, -1.0, 1.0, 1.0]];
        let vertices = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("quad"), contents: &quad.iter().flatten().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(), usage: wgpu::BufferUsages::VERTEX });
        let idx: [u32; 6] = [0, 1, 2, 1, 3, 2];
        let indices = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("quad indices"), contents: &idx.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(), usage: wgpu::BufferUsages::INDEX });
        let row = (4 * w).div_ceil(256) * 256;
        let readback = device.create_buffer(&wgpu::BufferDescriptor { label: Some("readback"), size: (row * h) as u64, usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ, mapped_at_creation: false });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("stretch") });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("stretch"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment { view: &view, depth_slice: None, resolve_target: None, ops: wgpu::Operations { load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT), store: wgpu::StoreOp::Store } })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            self.draw(&mut pass, layer, &vertices, &indices, 6);
        }
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo { texture: &target, mip_level: 0, origin: wgpu::Origin3d::ZERO, aspect: wgpu::TextureAspect::All },
            wgpu::TexelCopyBufferInfo { buffer: &readback, layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row), rows_per_image: Some(h) } },
            size,
        );
        queue.submit([encoder.finish()]);
        let slice = readback.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
        let data = slice.get_mapped_range().map_err(|e| crate::error::Error::invalid("GPU readback", e.to_string()))?;
        let mut out = Vec::with_capacity((4 * w * h) as usize);
        for y in 0..h as usize {
            out.extend_from_slice(&data[y * row as usize..y * row as usize + 4 * w as usize]);
        }
        drop(data);
        readback.unmap();
        Ok(out)
    }
}

/// What the paint callbacks share, kept in egui_wgpu's callback resources: the pipeline, the
/// mesh's triangles, and each layer's texture (by key, re-uploaded when its generation
/// changes) with this frame's vertices. A texture not drawn for [`UNUSED_FOR`] is let go (a
/// layer taken out of a pane, an old composite).
pub struct GpuStore {
    renderer: StretchRenderer,
    indices: wgpu::Buffer,
    index_count: u32,
    layers: std::collections::HashMap<String, (u64, GpuLayer, Option<wgpu::Buffer>)>,
    last_drawn: std::collections::HashMap<String, std::time::Instant>,
}

/// How long a layer's texture is kept without being drawn.
const UNUSED_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl GpuStore {
    /// The store for a mesh of `cells` x `cells` quads, drawing into `format`.
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat, cells: u32) -> GpuStore {
        let n = cells + 1;
        let mut idx = Vec::new();
        for j in 0..cells {
            for i in 0..cells {
                let a = j * n + i;
                idx.extend_from_slice(&[a, a + 1, a + n, a + 1, a + n + 1, a + n]);
            }
        }
        let indices = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("mesh indices"), contents: &idx.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(), usage: wgpu::BufferUsages::INDEX });
        GpuStore { renderer: StretchRenderer::new(device, format), indices, index_count: idx.len() as u32, layers: Default::default(), last_drawn: Default::default() }
    }
}

/// One layer's draw in a frame: its mesh in clip space of the callback's rectangle.
pub struct LayerCallback {
    pub key: String,
    pub generation: u64,
    pub channels: std::sync::Arc<Channels>,
    pub stretch: Stretch,
    pub opacity: f32,
    /// (x, y) clip space, (u, v) in the layer, per mesh vertex.
    pub vertices: Vec<[f32; 4]>,
}

impl eframe::egui_wgpu::CallbackTrait for LayerCallback {
    fn prepare(&self, device: &wgpu::Device, queue: &wgpu::Queue, _screen: &eframe::egui_wgpu::ScreenDescriptor, _encoder: &mut wgpu::CommandEncoder, resources: &mut eframe::egui_wgpu::CallbackResources) -> Vec<wgpu::CommandBuffer> {
        let Some(store) = resources.get_mut::<GpuStore>() else { return Vec::new() };
        let now = std::time::Instant::now();
        store.last_drawn.insert(self.key.clone(), now);
        let stale: Vec<String> = store.last_drawn.iter().filter(|(_, t)| now.duration_since(**t) > UNUSED_FOR).map(|(k, _)| k.clone()).collect();
        for k in stale {
            store.last_drawn.remove(&k);
            store.layers.remove(&k);
        }
        let fresh = store.layers.get(&self.key).is_some_and(|(g, _, _)| *g == self.generation);
        if !fresh {
            let layer = store.renderer.upload(device, queue, &self.channels);
            store.layers.insert(self.key.clone(), (self.generation, layer, None));
        }
        let contents: Vec<u8> = self.vertices.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
        let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("mesh vertices"), contents: &contents, usage: wgpu::BufferUsages::VERTEX });
        if let Some((_, layer, vertices)) = store.layers.get_mut(&self.key) {
            store.renderer.set_stretch(queue, layer, &self.stretch, self.opacity);
            *vertices = Some(buffer);
        }
        Vec::new()
    }

    fn paint(&self, _info: eframe::egui::PaintCallbackInfo, pass: &mut wgpu::RenderPass<'static>, resources: &eframe::egui_wgpu::CallbackResources) {
        let Some(store) = resources.get::<GpuStore>() else { return };
        if let Some((_, layer, Some(vertices))) = store.layers.get(&self.key) {
            store.renderer.draw(pass, layer, vertices, &store.indices, store.index_count);
        }
    }
}

/// Runs a future to completion on this thread (wgpu's requests resolve without an executor).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// GPU timings of a layer for `s2cr bench --what display`: the adapter's name, the upload of
/// the channels, and a stretch change (new uniform, draw, and a read-back of the frame, which
/// the window does not need: an upper bound). `None` without a wgpu adapter.
pub fn time_stretch(ch: &Channels, stretch: &Stretch, repeat: usize) -> Option<(String, f64, f64)> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).ok()?;
    let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).ok()?;
    let renderer = StretchRenderer::new(&device, wgpu::TextureFormat::Rgba8Unorm);
    let t = std::time::Instant::now();
    let layer = renderer.upload(&device, &queue, ch);
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    let upload_ms = t.elapsed().as_secs_f64() * 1e3;
    // A first frame compiles and warms the pipeline.
    renderer.render_to_rgba(&device, &queue, &layer, stretch).ok()?;
    let t = std::time::Instant::now();
    for k in 0..repeat.max(1) {
        let s = Stretch { gamma: 0.8 + 0.1 * k as f32, ..*stretch };
        std::hint::black_box(renderer.render_to_rgba(&device, &queue, &layer, &s).ok()?);
    }
    Some((adapter.get_info().name, upload_ms, t.elapsed().as_secs_f64() * 1e3 / repeat.max(1) as f64))
}
