//! The double-f32 helpers of `shaders/common.wgsl` on the adapter: their error terms must
//! survive the driver's compiler (Mesa's NIR folds `(a + b) − a` to `b` and `fma(a, b, −a·b)`
//! to 0, lavapipe does not fuse `fma`, and LLVM fused a rounded product into the sum after
//! it when the barrier was a multiplication by a run-time 1.0), against exact f64 arithmetic.

mod common;

use wgpu::util::DeviceExt;

/// Runs `body` (WGSL; `one` = 1.0 and `x` = this pair's input vec4 are in scope, `slot` is
/// where its output vec4 goes) once per input, after `common.wgsl`; returns the outputs.
fn run(ctx: &psa_gpu::GpuContext, body: &str, inputs: &[[f32; 4]]) -> Vec<[f32; 4]> {
    let own = format!(
        "
        @group(0) @binding(6) var<storage, read_write> io: array<vec4<f32>>;
        @compute @workgroup_size(1)
        fn main(@builtin(workgroup_id) w: vec3<u32>) {{
            let one = io[0].x;
            let slot = w.x + 1u;
            let x = io[slot];
            {body}
        }}"
    );
    let source = psa_gpu::kernels::source(&own);
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("common.wgsl probe"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let pipeline = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let mut data = vec![[1.0f32, 0.0, 0.0, 0.0]];
    data.extend_from_slice(inputs);
    let io = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(&data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 6,
            resource: io.as_entire_binding(),
        }],
    });
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(inputs.len() as u32, 1, 1);
    }
    let bytes = (data.len() * 16) as u64;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_buffer_to_buffer(&io, 0, &staging, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    ctx.wait().expect("device");
    let view = staging.slice(..).get_mapped_range().expect("mapped");
    bytemuck::cast_slice::<u8, [f32; 4]>(&view)[1..].to_vec()
}

/// `v` as a double-f32 (hi, lo).
fn split(v: f64) -> [f32; 2] {
    let hi = v as f32;
    [hi, (v - f64::from(hi)) as f32]
}

fn dd(hi: f32, lo: f32) -> f64 {
    f64::from(hi) + f64::from(lo)
}

#[test]
fn error_free_transformations_survive_the_driver() {
    let Some(ctx) = common::gpu() else { return };
    let pairs = [
        [1.0f32, 1e-8],
        [1.000_000_1, 1.000_000_1],
        [std::f32::consts::PI, -std::f32::consts::E],
        [1234.567, 0.001_234_5],
        [-7.0e-3, 6.5e2],
    ];
    let inputs: Vec<[f32; 4]> = pairs.iter().map(|&[a, b]| [a, b, 0.0, 0.0]).collect();
    let body = "io[slot] = vec4<f32>(two_sum(x.x, x.y, one), two_prod(x.x, x.y, one));";
    for (&[a, b], &[s, e, p, f]) in pairs.iter().zip(&run(&ctx, body, &inputs)) {
        let (a, b) = (f64::from(a), f64::from(b));
        assert_eq!(f64::from(s) + f64::from(e), a + b, "two_sum({a}, {b})");
        assert_eq!(f64::from(p) + f64::from(f), a * b, "two_prod({a}, {b})");
    }
}

/// The squared distance of `exact_cost` accumulated over three coordinates in double-f32: each
/// `two_sum` there adds a rounded product (`two_prod`'s hi part). With a multiplication by a
/// run-time 1.0 as the only barrier, lavapipe's LLVM fused that product into the sum and the
/// error term came out 0 (relative error 5e-8, f32's, where 1e-14 is due).
#[test]
fn double_f32_sums_of_products_stay_exact() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = common::Rng::new(5);
    let mut inputs = Vec::new();
    let mut exact = Vec::new();
    for _ in 0..200 {
        let mut d2 = 0.0;
        for _ in 0..3 {
            let (a, b) = (split(rng.normal()), split(rng.normal()));
            inputs.push([a[0], a[1], b[0], b[1]]);
            let d = dd(a[0], a[1]) - dd(b[0], b[1]);
            d2 += d * d;
        }
        exact.push(d2);
        inputs.push([0.0; 4]);
    }
    let body = "
        if (slot % 4u != 1u) { return; }
        var d2 = vec2<f32>(0.0);
        for (var k = 0u; k < 3u; k++) {
            let c = io[slot + k];
            let d = two_sum(c.x, -c.z, one);
            let lo = d.y + (c.y - c.w);
            let sq = two_prod(d.x, d.x, one);
            d2 = dd_add(d2, vec2<f32>(sq.x, sq.y + 2.0 * d.x * lo), one);
        }
        io[slot + 3u] = vec4<f32>(d2, dd_sqrt(d2, one));";
    let out = run(&ctx, body, &inputs);
    for (n, &d2) in exact.iter().enumerate() {
        let [hi, lo, root_hi, root_lo] = out[4 * n + 3];
        let (got, root) = (dd(hi, lo), dd(root_hi, root_lo));
        assert!((got - d2).abs() <= 1e-12 * d2, "sum {n}: {got} vs {d2}");
        let want = d2.sqrt();
        assert!(
            (root - want).abs() <= 1e-12 * want,
            "sqrt {n}: {root} vs {want}"
        );
    }
}

/// `exp2_dd` (the final marginal check's exponential) to 1e-9 relative: the built-in `exp2`
/// errs by several ulp (lavapipe's by +6e-8 on average), too much for a check meant to
/// resolve marginal errors below f32's 6e-8.
#[test]
fn exp2_dd_is_accurate_far_below_f32() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = common::Rng::new(7);
    let inputs: Vec<[f32; 4]> = (0..500)
        .map(|_| {
            let t = split(rng.normal() * 20.0);
            [t[0], t[1], 0.0, 0.0]
        })
        .collect();
    let out = run(
        &ctx,
        "io[slot] = vec4<f32>(exp2_dd(x.xy, one), 0.0, 0.0);",
        &inputs,
    );
    for (x, y) in inputs.iter().zip(&out) {
        let want = dd(x[0], x[1]).exp2();
        let got = dd(y[0], y[1]);
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "2^{}: {got} vs {want}",
            x[0]
        );
    }
}
