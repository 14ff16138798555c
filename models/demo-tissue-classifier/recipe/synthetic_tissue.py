"""Synthetic H&E-like tissue patches for the demonstration classifier.

The generator works in two steps so that one piece of tissue can be rendered at any pixel size:

1. ``sample_tissue`` draws a resolution-free description of a field of view (nuclei geometry in
   units of the field width, stain vectors, smooth texture grids, optical nuisances).
2. ``render_tissue`` turns that description into 8-bit RGB pixels at a chosen size.

Colour follows the Beer-Lambert stain model used for H&E colour deconvolution (Ruifrok & Johnston,
"Quantification of histochemical staining by color deconvolution", Anal Quant Cytol Histol 2001):
each pixel's optical density is the sum of a haematoxylin and an eosin concentration times that
stain's optical-density vector, and transmitted light is I = 255 * exp(-OD).

One number, ``atypia`` in [0, 1], moves every class-related property at once: nuclear count,
size, size variation, elongation, contour irregularity, darkness, chromatin coarseness, nucleoli
and loss of even spacing. The training recipe labels atypia below 0.5 ``benign-pattern`` and above
0.5 ``tumour-pattern``. Everything else (stain strength and hue, stroma fibres, empty spaces, blur,
brightness, sensor noise, scan resolution) is nuisance that varies independently of the label.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image
from scipy import ndimage

# Optical-density vectors of the two stains (Ruifrok & Johnston 2001, table 1; unit length).
HAEMATOXYLIN_OD = np.array([0.650, 0.704, 0.286])
EOSIN_OD = np.array([0.072, 0.990, 0.105])

CLASS_CODES = ("benign-pattern", "tumour-pattern")
# The classes meet at 0.5: near that boundary, per-field jitter makes some patches genuinely ambiguous.
ATYPIA_RANGE = {"benign-pattern": (0.0, 0.5), "tumour-pattern": (0.5, 1.0)}


@dataclasses.dataclass(frozen=True)
class Nucleus:
    """One nucleus (or nucleolus) as a star-shaped ellipse, lengths in units of the field width."""

    cx: float
    cy: float
    semi_major: float
    semi_minor: float
    angle: float
    # Contour irregularity: radius multiplied by 1 + sum(amp * cos(k * theta + phase)).
    harmonics: tuple[tuple[int, float, float], ...]
    darkness: float  # haematoxylin concentration at the nucleus centre


@dataclasses.dataclass(frozen=True)
class Streak:
    """A stroma fibre (adds eosin) or an empty space such as a lumen or fat vacuole (clears stain)."""

    cx: float
    cy: float
    semi_major: float
    semi_minor: float
    angle: float
    strength: float


@dataclasses.dataclass(frozen=True)
class TissueField:
    atypia: float
    nuclei: tuple[Nucleus, ...]
    nucleoli: tuple[Nucleus, ...]
    fibres: tuple[Streak, ...]
    spaces: tuple[Streak, ...]
    chromatin_amplitude: float
    eosin_base: float
    cytoplasm_haematoxylin: float
    # Low-resolution random grids, upsampled at render time, so texture is resolution-free.
    eosin_texture_coarse: np.ndarray
    eosin_texture_fine: np.ndarray
    chromatin_texture: np.ndarray
    haematoxylin_od: np.ndarray
    eosin_od: np.ndarray
    haematoxylin_scale: float
    eosin_scale: float
    blur: float  # Gaussian sigma, units of the field width
    brightness: float
    noise_sigma: float  # sensor noise, 8-bit grey levels, added at the rendered resolution


def _lerp(lo: float, hi: float, t: float) -> float:
    return lo + (hi - lo) * t


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _nucleus_centres(rng: np.random.Generator, count: int, atypia: float) -> np.ndarray:
    """Evenly spaced (jittered grid) for low atypia; crowded, clustered and uneven for high atypia."""
    grid = math.ceil(math.sqrt(count))
    cells = rng.choice(grid * grid, size=count, replace=False)
    cell = 1.0 / grid
    jitter = _lerp(0.3, 1.1, atypia)
    centres = np.stack([(cells % grid + 0.5) * cell, (cells // grid + 0.5) * cell], axis=1)
    centres += rng.uniform(-0.5, 0.5, size=(count, 2)) * jitter * cell
    clustered = rng.random(count) < _lerp(0.0, 0.5, atypia)
    if clustered.any():
        hubs = rng.uniform(0.15, 0.85, size=(rng.integers(2, 5), 2))
        picks = hubs[rng.integers(0, len(hubs), size=int(clustered.sum()))]
        centres[clustered] = picks + rng.normal(0.0, 0.12, size=picks.shape)
    return np.clip(centres, -0.02, 1.02)


def sample_tissue(rng: np.random.Generator, atypia: float) -> TissueField:
    """Draw one field of view. All class signal comes from ``atypia``; the rest is nuisance."""
    a = float(np.clip(atypia, 0.0, 1.0))

    count = max(8, round(_lerp(24, 85, a) * rng.uniform(0.75, 1.25)))
    mean_radius = _lerp(0.030, 0.055, a) * rng.uniform(0.85, 1.15)
    size_cv = _lerp(0.07, 0.35, a)
    elongation = _lerp(0.12, 0.45, a)
    irregularity = _lerp(0.02, 0.12, a)
    darkness = _lerp(0.85, 1.45, a) * rng.uniform(0.85, 1.15)
    darkness_cv = _lerp(0.05, 0.2, a)
    nucleolus_rate = _lerp(0.0, 0.5, a)

    nuclei: list[Nucleus] = []
    nucleoli: list[Nucleus] = []
    sigma = math.sqrt(math.log1p(size_cv**2))
    for cx, cy in _nucleus_centres(rng, count, a):
        radius = mean_radius * rng.lognormal(-0.5 * sigma**2, sigma)
        ratio = 1.0 - rng.uniform(0.0, elongation)
        # Keep the area of a circle of `radius` while elongating.
        semi_major = radius / math.sqrt(ratio)
        semi_minor = radius * math.sqrt(ratio)
        harmonics = tuple(
            (k, float(rng.uniform(0.0, irregularity)), float(rng.uniform(0.0, 2 * math.pi))) for k in (2, 3, 4)
        )
        nucleus = Nucleus(
            float(cx), float(cy), semi_major, semi_minor, float(rng.uniform(0.0, math.pi)), harmonics,
            darkness * float(np.clip(rng.normal(1.0, darkness_cv), 0.6, 1.6)),
        )
        nuclei.append(nucleus)
        if rng.random() < nucleolus_rate:
            offset = rng.uniform(-0.3, 0.3, size=2) * semi_minor
            r = radius * rng.uniform(0.15, 0.25)
            nucleoli.append(Nucleus(float(cx + offset[0]), float(cy + offset[1]), r, r, 0.0, (), nucleus.darkness + 0.6))

    fibres = tuple(
        Streak(*rng.uniform(0.0, 1.0, size=2), rng.uniform(0.1, 0.35), rng.uniform(0.005, 0.014),
               rng.uniform(0.0, math.pi), rng.uniform(0.1, 0.35))
        for _ in range(rng.integers(2, 12))
    )
    spaces = tuple(
        Streak(*rng.uniform(0.0, 1.0, size=2), rng.uniform(0.04, 0.12), rng.uniform(0.03, 0.09),
               rng.uniform(0.0, math.pi), rng.uniform(0.8, 0.97))
        for _ in range(rng.integers(0, 3))
    )

    return TissueField(
        atypia=a,
        nuclei=tuple(nuclei),
        nucleoli=tuple(nucleoli),
        fibres=fibres,
        spaces=spaces,
        chromatin_amplitude=_lerp(0.12, 0.4, a),
        eosin_base=rng.uniform(0.25, 0.55),
        # Tumour cytoplasm tends to be more basophilic (bluer) than benign epithelium.
        cytoplasm_haematoxylin=_lerp(0.02, 0.08, a),
        eosin_texture_coarse=rng.standard_normal((7, 7)),
        eosin_texture_fine=rng.standard_normal((25, 25)),
        chromatin_texture=rng.standard_normal((49, 49)),
        haematoxylin_od=_unit(HAEMATOXYLIN_OD + rng.normal(0.0, 0.04, size=3)),
        eosin_od=_unit(EOSIN_OD + rng.normal(0.0, 0.04, size=3)),
        haematoxylin_scale=rng.uniform(0.75, 1.25),
        eosin_scale=rng.uniform(0.7, 1.3),
        blur=rng.uniform(0.0, 0.012),
        brightness=rng.uniform(0.9, 1.08),
        noise_sigma=rng.uniform(0.0, 5.0),
    )


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    field = np.asarray(Image.fromarray(grid.astype(np.float32), mode="F").resize((size, size), Image.BICUBIC))
    return field / max(float(field.std()), 1e-6)


def _shape_mask(size: int, cx: float, cy: float, semi_major: float, semi_minor: float, angle: float,
                harmonics: tuple[tuple[int, float, float], ...]) -> tuple[slice, slice, np.ndarray] | None:
    """Anti-aliased coverage (0..1) of a star-shaped ellipse over its bounding box of pixels."""
    reach = semi_major * (1.0 + sum(amp for _, amp, _ in harmonics)) + 1.5 / size
    x0, x1 = max(int((cx - reach) * size), 0), min(math.ceil((cx + reach) * size), size)
    y0, y1 = max(int((cy - reach) * size), 0), min(math.ceil((cy + reach) * size), size)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = (np.arange(x0, x1) + 0.5) / size - cx
    dy = (np.arange(y0, y1) + 0.5) / size - cy
    dx, dy = np.meshgrid(dx, dy)
    c, s = math.cos(angle), math.sin(angle)
    u = (c * dx + s * dy) / semi_major
    v = (-s * dx + c * dy) / semi_minor
    rho = np.hypot(u, v)
    if harmonics:
        theta = np.arctan2(v, u)
        boundary = np.ones_like(rho)
        for k, amp, phase in harmonics:
            boundary += amp * np.cos(k * theta + phase)
        rho = rho / boundary
    # Distance inside the edge in pixels, measured along the short axis: a one-pixel soft edge.
    coverage = np.clip((1.0 - rho) * semi_minor * size + 0.5, 0.0, 1.0)
    return slice(y0, y1), slice(x0, x1), coverage


def render_tissue(field: TissueField, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render ``field`` as an (size, size, 3) uint8 RGB array. ``rng`` draws only the sensor noise."""
    eosin = field.eosin_base * (1.0 + 0.25 * _upsample(field.eosin_texture_coarse, size)
                                + 0.12 * _upsample(field.eosin_texture_fine, size))
    eosin = np.clip(eosin, 0.05, None)
    for fibre in field.fibres:
        hit = _shape_mask(size, fibre.cx, fibre.cy, fibre.semi_major, fibre.semi_minor, fibre.angle, ())
        if hit:
            rows, cols, cover = hit
            eosin[rows, cols] += fibre.strength * cover

    chromatin = _upsample(field.chromatin_texture, size)
    haematoxylin = np.full((size, size), field.cytoplasm_haematoxylin)
    for nucleus in field.nuclei + field.nucleoli:
        hit = _shape_mask(size, nucleus.cx, nucleus.cy, nucleus.semi_major, nucleus.semi_minor, nucleus.angle,
                          nucleus.harmonics)
        if hit:
            rows, cols, cover = hit
            texture = np.clip(1.0 + field.chromatin_amplitude * chromatin[rows, cols], 0.3, None)
            haematoxylin[rows, cols] = np.maximum(haematoxylin[rows, cols], nucleus.darkness * texture * cover)
            eosin[rows, cols] *= 1.0 - 0.8 * cover

    for space in field.spaces:
        hit = _shape_mask(size, space.cx, space.cy, space.semi_major, space.semi_minor, space.angle, ())
        if hit:
            rows, cols, cover = hit
            keep = 1.0 - space.strength * cover
            eosin[rows, cols] *= keep
            haematoxylin[rows, cols] *= keep

    optical_density = (field.haematoxylin_scale * haematoxylin[..., None] * field.haematoxylin_od
                       + field.eosin_scale * eosin[..., None] * field.eosin_od)
    rgb = 255.0 * np.exp(-optical_density) * field.brightness
    if field.blur > 0:
        sigma = field.blur * size
        rgb = ndimage.gaussian_filter(rgb, sigma=(sigma, sigma, 0.0), mode="reflect")
    if field.noise_sigma > 0:
        rgb = rgb + rng.normal(0.0, field.noise_sigma, size=rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def sample_atypia(rng: np.random.Generator, label: int) -> float:
    lo, hi = ATYPIA_RANGE[CLASS_CODES[label]]
    return float(rng.uniform(lo, hi))
