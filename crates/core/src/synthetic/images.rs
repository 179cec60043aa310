//! The paper's synthetic image modalities (Sec. 6.1, App. D.3): two objects at the positions
//! `z`, drawn as circles in modality 1 and as squares at a fixed transformation of `z` in
//! modality 2, each over a background distorted by that modality's own noise `U⁽ᵉ⁾`.
//!
//! The paper renders with PyGame and gives no more detail; this follows the authors' generator
//! (see [`interventions`](super::interventions) for the latents and groups), rasterised here
//! directly so that tens of thousands of images take a second:
//!
//! * **Modality 1**: filled circles of radius `r` centred at `(x₁, y₁)` and `(x₂, y₂)`, coloured
//!   RGB (2, 156, 154) and (222, 100, 100), as theirs.
//! * **Modality 2**: squares of side `2r` centred at `g(x₁, y₁)` and `g(x₂, y₂)`, coloured
//!   viridis(0.1) and viridis(0.6), as theirs, with their fixed transformation
//!   `g(p) = σ(2 ((p − ½) R + 0.2))` ([`transform2`]): `p` a row vector, `R` the rotation matrix
//!   of θ = 0.3π, σ the logistic function. (They anchor a square at its corner; we centre it,
//!   which only shifts every square by the same amount.)
//! * **Background noise `U⁽ᵉ⁾`**: on white, [`ImageConfig::blobs`] discs of radius 0.3 (in units
//!   of the image side) at uniform random centres, each coloured by a uniform draw from a colour
//!   map — matplotlib's "summer" in modality 1, "Wistia" in modality 2, as theirs — and blended
//!   with opacity [`ImageConfig::noise`] (1: their opaque discs; 0: a blank background). The
//!   objects are drawn on top, opaque. Every unit and modality has its own draw of `U`.
//!
//! Coordinates are in the unit square with `y` up (row 0 is the top of the image). The object
//! radius `r` defaults to 0.08 of the side, 2.56 pixels at the default 32×32: the size of the
//! authors' objects in pixels (0.02 of their 128-pixel screen), so objects stay visible at 32×32.
//! Edges are anti-aliased: a pixel is blended by the fraction of its area the shape covers —
//! exact for squares, a one-pixel linear ramp across a circle's edge.

use std::ops::Range;

use ndarray::{Array4, ArrayView1, CowArray, Ix2, Order};
use rand::Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::interventions::{
    DO_VALUES, Paired, Stream, Units, interventions, observe_both, stream_rng,
};

/// Colour channels of every image (RGB).
pub const CHANNELS: usize = 3;

/// Radius of a background disc, in units of the image side (the authors' 0.3).
const BLOB_RADIUS: f64 = 0.3;

/// The objects' colours in modality 1 (circles) and modality 2 (squares), by object.
const CIRCLE_COLOURS: [[f32; 3]; 2] = [rgb(2, 156, 154), rgb(222, 100, 100)];
const SQUARE_COLOURS: [[f32; 3]; 2] = [rgb(72, 40, 120), rgb(34, 168, 132)];

/// Matplotlib's "Wistia" colour map: five colours at 0, ¼, ½, ¾, 1, linearly interpolated.
const WISTIA: [[f32; 3]; 5] = [
    rgb(0xe4, 0xff, 0x7a),
    rgb(0xff, 0xe8, 0x1a),
    rgb(0xff, 0xbd, 0x00),
    rgb(0xff, 0xa0, 0x00),
    rgb(0xfc, 0x7f, 0x00),
];

const fn rgb(r: u8, g: u8, b: u8) -> [f32; 3] {
    [r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0]
}

/// Size and noise of the synthetic image data set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageConfig {
    /// Units per group; every unit is observed once in each modality.
    pub n_per_group: usize,
    /// Image height and width in pixels.
    pub size: usize,
    /// The do-values, each applied to each of the 4 coordinates: `4 × len` groups.
    pub do_values: Vec<f64>,
    /// Opacity of the background discs, in [0, 1] (values outside are clamped).
    pub noise: f64,
    /// Background discs per image.
    pub blobs: usize,
    /// Object radius (half the side of a square), in units of the image side.
    pub object_radius: f64,
    pub seed: u64,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            n_per_group: 200,
            size: 32,
            do_values: DO_VALUES.to_vec(),
            noise: 1.0,
            blobs: 25,
            object_radius: 0.08,
            seed: 0,
        }
    }
}

/// Both image modalities: `x` is `n × 3 × size × size`, values in [0, 1].
pub type PairedImages = Paired<Array4<f32>>;

/// Draws the data set described by `config` (deterministic in `config.seed`, whatever the
/// number of threads).
pub fn generate_images(config: &ImageConfig) -> PairedImages {
    let groups = interventions(&config.do_values);
    let units = Units::draw(config.n_per_group, &groups, config.seed);
    observe_both(&units, groups, config.seed, |modality, order| {
        render_all(config, modality, &units, order)
    })
}

/// The images as an `n × (3·size·size)` matrix, each row in channel, row, column order (as
/// NumPy's `x.reshape(n, -1)`); borrowed when `x` is in standard layout, as generated.
pub fn flatten(x: &Array4<f32>) -> CowArray<'_, f32, Ix2> {
    let (n, c, h, w) = x.dim();
    x.to_shape(((n, c * h * w), Order::RowMajor))
        .expect("n × (c·h·w) has as many elements as n × c × h × w")
}

/// Modality 2's fixed transformation of an object's position: `σ(2 ((p − ½) R + 0.2))`, `R`
/// the rotation matrix of θ = 0.3π acting on the row vector `p`.
pub fn transform2(p: [f64; 2]) -> [f64; 2] {
    let (sin, cos) = (0.3 * std::f64::consts::PI).sin_cos();
    let (x, y) = (p[0] - 0.5, p[1] - 0.5);
    let rotated = [x * cos + y * sin, -x * sin + y * cos];
    rotated.map(|v| logistic(2.0 * (v + 0.2)))
}

fn logistic(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// Renders row `k` of modality `modality` as unit `order[k]`, one image per task.
fn render_all(
    config: &ImageConfig,
    modality: usize,
    units: &Units,
    order: &[usize],
) -> Array4<f32> {
    let size = config.size;
    let image_len = CHANNELS * size * size;
    let mut data = vec![0.0f32; order.len() * image_len];
    // `max(1)`: with size 0 there are no chunks to fill, but `par_chunks_mut(0)` would panic.
    data.par_chunks_mut(image_len.max(1))
        .zip(order.par_iter())
        .for_each(|(pixels, &unit)| {
            let mut rng = stream_rng(config.seed, Stream::Noise { modality, unit });
            let shapes = scene(config, modality, units.z.row(unit), &mut rng);
            Canvas::new(pixels, size).draw(&shapes);
        });
    Array4::from_shape_vec((order.len(), CHANNELS, size, size), data)
        .expect("one image of 3 × size × size per row")
}

/// What one image shows: the background noise `U`, then the two objects, in painting order.
fn scene(
    config: &ImageConfig,
    modality: usize,
    z: ArrayView1<f64>,
    rng: &mut impl Rng,
) -> Vec<Shape> {
    let colour_map = if modality == 1 { summer } else { wistia };
    let opacity = config.noise.clamp(0.0, 1.0) as f32;
    let mut shapes: Vec<Shape> = (0..config.blobs)
        .map(|_| Shape {
            kind: Kind::Circle,
            centre: [rng.random(), rng.random()],
            radius: BLOB_RADIUS,
            colour: colour_map(rng.random()),
            opacity,
        })
        .collect();
    for object in 0..2 {
        let position = [z[2 * object], z[2 * object + 1]];
        let (kind, centre, colour) = if modality == 1 {
            (Kind::Circle, position, CIRCLE_COLOURS[object])
        } else {
            (Kind::Square, transform2(position), SQUARE_COLOURS[object])
        };
        shapes.push(Shape {
            kind,
            centre,
            radius: config.object_radius,
            colour,
            opacity: 1.0,
        });
    }
    shapes
}

/// Matplotlib's "summer" colour map: from (0, 0.5, 0.4) to (1, 1, 0.4).
fn summer(t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    [t, 0.5 + 0.5 * t, 0.4]
}

fn wistia(t: f32) -> [f32; 3] {
    let steps = (WISTIA.len() - 1) as f32;
    let s = t.clamp(0.0, 1.0) * steps;
    let i = (s.floor() as usize).min(WISTIA.len() - 2);
    let f = s - i as f32;
    std::array::from_fn(|c| WISTIA[i][c] + (WISTIA[i + 1][c] - WISTIA[i][c]) * f)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Circle,
    /// Axis-aligned, of side twice the radius.
    Square,
}

impl Kind {
    /// The fraction of the pixel centred at offset `(dx, dy)` from the shape's centre that a
    /// shape of radius `r` covers (all in pixels).
    fn coverage(self, dx: f64, dy: f64, r: f64) -> f64 {
        match self {
            Kind::Circle => {
                let d2 = dx * dx + dy * dy;
                let inner = r - 0.5;
                if inner > 0.0 && d2 <= inner * inner {
                    1.0
                } else if d2 >= (r + 0.5) * (r + 0.5) {
                    0.0
                } else {
                    (r + 0.5 - d2.sqrt()).clamp(0.0, 1.0)
                }
            }
            Kind::Square => overlap(dx, r) * overlap(dy, r),
        }
    }
}

/// The length of `[d − ½, d + ½] ∩ [−h, h]`: how much of a pixel a slab of half-width `h` covers.
fn overlap(d: f64, h: f64) -> f64 {
    ((d + 0.5).min(h) - (d - 0.5).max(-h)).max(0.0)
}

/// A shape in unit-square coordinates (`y` up).
#[derive(Clone, Copy, Debug)]
struct Shape {
    kind: Kind,
    centre: [f64; 2],
    radius: f64,
    colour: [f32; 3],
    opacity: f32,
}

/// One image being painted: planar RGB (`3 × size × size`), row 0 at the top.
struct Canvas<'a> {
    pixels: &'a mut [f32],
    size: usize,
}

impl<'a> Canvas<'a> {
    fn new(pixels: &'a mut [f32], size: usize) -> Self {
        debug_assert_eq!(pixels.len(), CHANNELS * size * size);
        Canvas { pixels, size }
    }

    /// Paints `shapes` in order over a white background.
    fn draw(&mut self, shapes: &[Shape]) {
        self.pixels.fill(1.0);
        for shape in shapes.iter().filter(|s| s.opacity > 0.0) {
            self.paint(shape);
        }
    }

    /// Paints one shape row by row. In a row of a circle only the pixels whose centres lie
    /// within `r + ½` of its centre can be touched, and those within `r − ½` are fully covered:
    /// that run is blended in one pass, and only the one or two edge pixels at each end need
    /// their coverage computed.
    fn paint(&mut self, shape: &Shape) {
        let side = self.size as f64;
        let (cx, cy) = (shape.centre[0] * side, (1.0 - shape.centre[1]) * side);
        let r = shape.radius * side;
        for row in self.span(cy, r) {
            let dy = row as f64 + 0.5 - cy;
            let (touched, inside) = match shape.kind {
                Kind::Circle => {
                    let Some(touched) = self.within(cx, (r + 0.5) * (r + 0.5) - dy * dy) else {
                        continue;
                    };
                    let inside = (r > 0.5)
                        .then(|| self.within(cx, (r - 0.5) * (r - 0.5) - dy * dy))
                        .flatten();
                    (touched, inside)
                }
                Kind::Square => (self.span(cx, r), None),
            };
            let inside = inside
                .filter(|run| run.start < run.end)
                .unwrap_or(touched.end..touched.end);
            for col in (touched.start..inside.start).chain(inside.end..touched.end) {
                let coverage = shape.kind.coverage(col as f64 + 0.5 - cx, dy, r);
                if coverage > 0.0 {
                    let alpha = shape.opacity * coverage as f32;
                    self.blend(row, col..col + 1, shape.colour, alpha);
                }
            }
            self.blend(row, inside, shape.colour, shape.opacity);
        }
    }

    /// Blends `colour` with opacity `alpha` into the pixels `cols` of `row`.
    fn blend(&mut self, row: usize, cols: Range<usize>, colour: [f32; 3], alpha: f32) {
        let plane = self.size * self.size;
        let start = row * self.size;
        for (channel, colour) in colour.into_iter().enumerate() {
            let at = channel * plane + start;
            for pixel in &mut self.pixels[at + cols.start..at + cols.end] {
                // This form is exact at alpha = 1: the pixel becomes the colour.
                *pixel = *pixel * (1.0 - alpha) + colour * alpha;
            }
        }
    }

    /// The pixels of a row whose centres lie within `sqrt(half_width2)` of `centre`; `None` when
    /// `half_width2 < 0` (the row misses).
    fn within(&self, centre: f64, half_width2: f64) -> Option<Range<usize>> {
        if half_width2 < 0.0 {
            return None;
        }
        let side = self.size as f64;
        let w = half_width2.sqrt();
        let lo = (centre - w - 0.5).ceil().clamp(0.0, side) as usize;
        let hi = ((centre + w - 0.5).floor() + 1.0).clamp(0.0, side) as usize;
        Some(lo..hi)
    }

    /// The pixel indices along one axis that a shape at `centre` of radius `r` can touch.
    fn span(&self, centre: f64, r: f64) -> Range<usize> {
        let side = self.size as f64;
        // A NaN position casts to 0 and gives an empty range.
        let lo = (centre - r - 1.0).floor().clamp(0.0, side) as usize;
        let hi = (centre + r + 1.0).ceil().clamp(0.0, side) as usize;
        lo..hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::interventions::checks;
    use std::f64::consts::PI;

    fn small() -> ImageConfig {
        ImageConfig {
            n_per_group: 4,
            size: 16,
            ..ImageConfig::default()
        }
    }

    /// How much of the image is covered by a black shape: `Σ (1 − pixel)` over one channel.
    fn ink(size: usize, shape: Shape) -> f64 {
        let mut pixels = vec![0.0; CHANNELS * size * size];
        Canvas::new(&mut pixels, size).draw(&[shape]);
        pixels[..size * size].iter().map(|&p| 1.0 - p as f64).sum()
    }

    fn black(kind: Kind, centre: [f64; 2], radius: f64) -> Shape {
        Shape {
            kind,
            centre,
            radius,
            colour: [0.0; 3],
            opacity: 1.0,
        }
    }

    /// The definition: every pixel blended by its own coverage.
    fn paint_per_pixel(pixels: &mut [f32], size: usize, shape: &Shape) {
        let side = size as f64;
        let (cx, cy) = (shape.centre[0] * side, (1.0 - shape.centre[1]) * side);
        let r = shape.radius * side;
        for row in 0..size {
            for col in 0..size {
                let dx = col as f64 + 0.5 - cx;
                let coverage = shape.kind.coverage(dx, row as f64 + 0.5 - cy, r);
                let alpha = shape.opacity * coverage as f32;
                for c in 0..CHANNELS {
                    let pixel = &mut pixels[c * size * size + row * size + col];
                    *pixel = *pixel * (1.0 - alpha) + shape.colour[c] * alpha;
                }
            }
        }
    }

    #[test]
    fn painting_by_runs_equals_painting_pixel_by_pixel() {
        let size = 24;
        let mut rng = stream_rng(11, Stream::Latents);
        for radius in [0.0, 0.01, 0.02, 0.05, 0.1, 0.3, 0.7] {
            for kind in [Kind::Circle, Kind::Square] {
                let shapes: Vec<Shape> = (0..20)
                    .map(|_| Shape {
                        kind,
                        centre: [rng.random_range(-0.3..1.3), rng.random_range(-0.3..1.3)],
                        radius,
                        colour: [rng.random(), rng.random(), rng.random()],
                        opacity: rng.random(),
                    })
                    .collect();
                let mut fast = vec![0.0; CHANNELS * size * size];
                Canvas::new(&mut fast, size).draw(&shapes);
                let mut slow = vec![1.0; CHANNELS * size * size];
                shapes
                    .iter()
                    .for_each(|s| paint_per_pixel(&mut slow, size, s));
                let worst = fast
                    .iter()
                    .zip(&slow)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(worst < 1e-5, "{kind:?} of radius {radius}: {worst}");
            }
        }
    }

    #[test]
    fn the_design_holds_for_images() {
        let config = small();
        let data = generate_images(&config);
        checks::design_holds(&data, config.n_per_group, |x| x.dim().0);
        assert_eq!(data.modality1.x.dim(), (48, 3, 16, 16));
        assert_eq!(data.modality2.x.dim(), (48, 3, 16, 16));
    }

    #[test]
    fn pixels_are_in_the_unit_interval() {
        let data = generate_images(&small());
        for x in [&data.modality1.x, &data.modality2.x] {
            assert!(x.iter().all(|p| (0.0..=1.0).contains(p)));
        }
    }

    #[test]
    fn same_seed_same_images_other_seed_other_images() {
        let config = small();
        let a = generate_images(&config);
        let b = generate_images(&config);
        assert_eq!(a.modality1.x, b.modality1.x);
        assert_eq!(a.modality2.x, b.modality2.x);
        assert_eq!(a.modality2.ids, b.modality2.ids);
        let c = generate_images(&ImageConfig { seed: 1, ..config });
        assert_ne!(a.modality1.x, c.modality1.x);
        assert_ne!(a.modality1.latents, c.modality1.latents);
    }

    #[test]
    fn a_circle_covers_pi_r_squared_and_a_square_4_r_squared() {
        let size = 64;
        let r = 0.1; // 6.4 pixels
        let pixels = r * size as f64;
        let circle = ink(size, black(Kind::Circle, [0.43, 0.61], r));
        // The linear edge ramp adds π/12 to π r².
        assert!((circle - PI * pixels * pixels).abs() < 0.5, "{circle}");
        let square = ink(size, black(Kind::Square, [0.43, 0.61], r));
        assert!((square - 4.0 * pixels * pixels).abs() < 1e-3, "{square}");
        let clipped = ink(size, black(Kind::Square, [0.0, 0.5], r));
        assert!((clipped - 2.0 * pixels * pixels).abs() < 1e-3, "{clipped}");
        assert_eq!(ink(size, black(Kind::Circle, [2.0, 0.5], r)), 0.0);
    }

    #[test]
    fn circles_at_z_and_squares_at_the_transformed_z() {
        let config = ImageConfig {
            noise: 0.0,
            size: 32,
            ..small()
        };
        let data = generate_images(&config);
        let colour_at = |x: &Array4<f32>, row: usize, p: [f64; 2]| -> [f32; 3] {
            let px = |v: f64| ((v * 32.0) as usize).min(31);
            let (col, line) = (px(p[0]), px(1.0 - p[1]));
            std::array::from_fn(|c| x[[row, c, line, col]])
        };
        let at_z: fn([f64; 2]) -> [f64; 2] = |p| p;
        let at_g: fn([f64; 2]) -> [f64; 2] = transform2;
        for (m, colours, place) in [
            (&data.modality1, CIRCLE_COLOURS, at_z),
            (&data.modality2, SQUARE_COLOURS, at_g),
        ] {
            for (row, z) in m.latents.rows().into_iter().enumerate() {
                // Object 2 is painted last, so its centre pixel always shows its colour.
                let colour = colour_at(&m.x, row, place([z[2], z[3]]));
                assert_eq!(colour, colours[1], "row {row}, z = {z}");
            }
            let white = m.x.iter().filter(|&&p| p == 1.0).count();
            assert!(white > m.x.len() / 2, "a blank background without noise");
        }
    }

    #[test]
    fn each_modality_and_unit_has_its_own_background() {
        let config = ImageConfig {
            object_radius: 0.0,
            ..small()
        };
        let data = generate_images(&config);
        let (m1, m2) = (&data.modality1, &data.modality2);
        let j = m2.ids.iter().position(|id| *id == m1.ids[0]).unwrap();
        let image = |x: &Array4<f32>, row: usize| x.index_axis(ndarray::Axis(0), row).to_owned();
        assert_ne!(image(&m1.x, 0), image(&m2.x, j));
        assert_ne!(image(&m1.x, 0), image(&m1.x, 1));
        // Summer backgrounds have blue 0.4 wherever a disc is opaque; Wistia at most 0.48.
        let mean = |x: &Array4<f32>, c: usize| x.index_axis(ndarray::Axis(1), c).mean().unwrap();
        assert!(mean(&m1.x, 2) > mean(&m2.x, 2));
    }

    #[test]
    fn transform2_is_the_rotated_squashed_position() {
        assert_eq!(transform2([0.5, 0.5]), [logistic(0.4), logistic(0.4)]);
        let [x, y] = transform2([0.9, 0.5]);
        let (sin, cos) = (0.3 * PI).sin_cos();
        assert!((x - logistic(2.0 * (0.4 * cos + 0.2))).abs() < 1e-12);
        assert!((y - logistic(2.0 * (-0.4 * sin + 0.2))).abs() < 1e-12);
    }

    #[test]
    fn flatten_keeps_numpy_order() {
        let data = generate_images(&small());
        let flat = flatten(&data.modality1.x);
        assert_eq!(flat.dim(), (48, 3 * 16 * 16));
        assert_eq!(
            flat[[5, 16 * 16 + 3 * 16 + 7]],
            data.modality1.x[[5, 1, 3, 7]]
        );
    }

    #[test]
    fn colour_maps_match_matplotlib_at_their_ends() {
        assert_eq!(summer(0.0), [0.0, 0.5, 0.4]);
        assert_eq!(summer(1.0), [1.0, 1.0, 0.4]);
        assert_eq!(wistia(0.0), WISTIA[0]);
        assert_eq!(wistia(1.0), WISTIA[4]);
        let mid = wistia(0.125);
        assert!((mid[2] - (WISTIA[0][2] + WISTIA[1][2]) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn empty_configurations_give_empty_arrays() {
        let data = generate_images(&ImageConfig {
            n_per_group: 0,
            ..small()
        });
        assert_eq!(data.modality1.x.dim(), (0, 3, 16, 16));
        let data = generate_images(&ImageConfig { size: 0, ..small() });
        assert_eq!(data.modality2.x.dim(), (48, 3, 0, 0));
    }
}
