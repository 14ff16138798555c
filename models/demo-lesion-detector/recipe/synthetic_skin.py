"""Synthetic "clinical photographs" of skin with pigmented lesions, for the demo lesion detector and
the demo lesion classifier. Nothing here comes from a patient; everything is drawn from fixed seeds.

Like the tissue generator of the demo tissue classifier, it works in two steps so that one scene can be
drawn at any pixel size:

1. ``sample_scene`` draws a resolution-free description of a photograph: skin tone, lighting, skin
   texture grids, hairs, and the lesions and small spots (positions as fractions of the width and
   height, sizes as fractions of the shorter side).
2. ``render_scene`` turns it into 8-bit RGB pixels at a chosen width and height and returns the
   bounding box of every lesion and spot in those pixels.

Colour follows a simple absorption model: the skin's albedo is multiplied by exp(-OD), where the
optical density OD of epidermal melanin absorbs blue most and red least (brown), and deeper dermal
pigment absorbs red most (blue-grey). Lighting multiplies the result, specular highlights add to it.

Two kinds of object are drawn:

- ``lesion``: a pigmented lesion, 8-25 % of the shorter side across. One number, ``irregularity`` in
  [0, 1], moves every shape and colour property the lesion classifier is meant to learn (border
  irregularity, asymmetry, uneven border sharpness, variegated colour with dark patches and a
  blue-grey veil). The classifier labels irregularity below 0.5 ``regular-lesion`` and from 0.5
  ``irregular-lesion``; size and darkness vary independently of it.
- ``spot``: a small light-brown macule, 2-4 % of the shorter side across; "widespread" photographs
  have many of them scattered over the skin.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

OBJECT_CLASSES = ("lesion", "spot")
LESION_CLASSES = ("regular-lesion", "irregular-lesion")

# Absorbance of the pigment per unit optical density, per RGB channel. Epidermal melanin is brown:
# strongest in blue, weakest in red. Dermal pigment seen through the skin looks blue-grey.
MELANIN_OD = np.array([0.45, 0.75, 1.0])
DERMAL_OD = np.array([0.95, 0.75, 0.55])
HAIR_OD = np.array([1.6, 1.8, 1.9])
HAIR_MAX_DENSITY = 1.2
# Skin albedo from very light to very dark (sRGB, 0-255), interpolated by the tone parameter.
SKIN_TONES = np.array([
    [244, 212, 190],
    [230, 184, 154],
    [208, 152, 118],
    [176, 122, 88],
    [134, 90, 62],
    [100, 66, 46],
], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Blob:
    """One lesion or spot. Position in fractions of width/height, lengths in units of the shorter side."""

    kind: str  # "lesion" or "spot"
    cx: float
    cy: float
    radius: float
    ratio: float  # minor / major axis
    angle: float
    # Border: radius multiplied by 1 + sum(amp * cos(k * theta + phase)).
    harmonics: tuple[tuple[int, float, float], ...]
    density: float  # melanin optical density in the body of the lesion
    edge: float  # width of the soft border, in units of the radius
    edge_variation: float  # 0: the same sharpness all round; up to 1: abrupt on one side, feathered on the other
    edge_phase: float
    shift: tuple[float, float]  # where the pigment is darkest, in units of the radius (asymmetry)
    patches: tuple[tuple[float, float, float, float], ...]  # (dx, dy, r in radii, extra density)
    veil: float  # blue-grey dermal pigment in the darkest part
    mottle: float  # amplitude of the pigment texture
    irregularity: float  # the classifier's class signal (0 for spots)


@dataclasses.dataclass(frozen=True)
class Hair:
    points: tuple[tuple[float, float], ...]  # a quadratic Bezier curve, fractions of width/height
    width: float  # units of the shorter side
    density: float


@dataclasses.dataclass(frozen=True)
class Scene:
    aspect: float  # width / height
    tone: float
    albedo: np.ndarray  # RGB 0-255
    blotch: np.ndarray  # low-frequency texture grids, upsampled at render time
    redness: np.ndarray
    pores: np.ndarray
    blotch_amplitude: float
    redness_amplitude: float
    pore_amplitude: float
    light_gain: float
    light_angle: float
    light_gradient: float
    vignette: float
    white_balance: np.ndarray
    highlights: tuple[tuple[float, float, float, float], ...]  # (cx, cy, sigma in short sides, amount 0-255)
    hairs: tuple[Hair, ...]
    blobs: tuple[Blob, ...]
    widespread: bool
    blur: float  # Gaussian sigma in units of the shorter side
    noise_sigma: float  # grey levels, added at the rendered resolution


def _lerp(lo: float, hi: float, t: float) -> float:
    return lo + (hi - lo) * t


def sample_lesion(rng: np.random.Generator, cx: float, cy: float, radius: float, irregularity: float) -> Blob:
    a = float(np.clip(irregularity, 0.0, 1.0))
    # Border: two gentle harmonics for every lesion, notches and lobes (higher harmonics) with irregularity.
    harmonics = [(k, float(rng.uniform(0.0, 0.035)), float(rng.uniform(0, 2 * math.pi))) for k in (2, 3)]
    lobes = _lerp(0.0, 0.13, a)
    harmonics += [(k, float(rng.uniform(0.35, 1.0) * lobes), float(rng.uniform(0, 2 * math.pi))) for k in (1, 3, 4, 5, 7)]
    patch_count = int(rng.integers(0, 2)) if a < 0.5 else int(rng.integers(1, 5))
    patches = tuple(
        (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.15, 0.4)),
         float(rng.uniform(0.15, 0.35) if a < 0.5 else rng.uniform(0.4, 1.3) * _lerp(0.6, 1.0, a)))
        for _ in range(patch_count)
    )
    shift_amount = _lerp(0.0, 0.55, a) * rng.uniform(0.5, 1.0)
    shift_angle = rng.uniform(0, 2 * math.pi)
    return Blob(
        kind="lesion", cx=cx, cy=cy, radius=radius,
        ratio=float(1.0 - rng.uniform(0.0, _lerp(0.25, 0.45, a))),
        angle=float(rng.uniform(0, math.pi)),
        harmonics=tuple(harmonics),
        density=float(rng.uniform(0.7, 1.9)),
        edge=float(rng.uniform(0.08, 0.18)),
        edge_variation=float(_lerp(0.0, 0.9, a) * rng.uniform(0.5, 1.0)),
        edge_phase=float(rng.uniform(0, 2 * math.pi)),
        shift=(float(shift_amount * math.cos(shift_angle)), float(shift_amount * math.sin(shift_angle))),
        patches=patches,
        veil=float(rng.uniform(0.0, 0.7) * max(0.0, a - 0.45) * 1.8 if rng.random() < 0.6 else 0.0),
        mottle=float(_lerp(0.04, 0.25, a)),
        irregularity=a,
    )


def sample_spot(rng: np.random.Generator, cx: float, cy: float) -> Blob:
    return Blob(
        kind="spot", cx=cx, cy=cy, radius=float(rng.uniform(0.011, 0.02)),
        ratio=float(rng.uniform(0.7, 1.0)), angle=float(rng.uniform(0, math.pi)),
        harmonics=tuple((k, float(rng.uniform(0.0, 0.08)), float(rng.uniform(0, 2 * math.pi))) for k in (2, 3)),
        density=float(rng.uniform(0.45, 1.0)), edge=float(rng.uniform(0.2, 0.4)), edge_variation=0.0,
        edge_phase=0.0, shift=(0.0, 0.0), patches=(), veil=0.0, mottle=0.03, irregularity=0.0,
    )


def _place(rng: np.random.Generator, aspect: float, radius: float, margin: float, taken: list[tuple[float, float, float]],
           gap: float) -> tuple[float, float] | None:
    """A centre (fractions of width/height) for a blob of ``radius`` (short sides) that keeps ``gap`` to
    every blob already placed and lies at least ``margin`` inside the frame; None after 200 tries."""
    sx, sy = (aspect, 1.0) if aspect >= 1 else (1.0, 1.0 / aspect)  # frame size in short sides
    for _ in range(200):
        x = rng.uniform(radius + margin, sx - radius - margin)
        y = rng.uniform(radius + margin, sy - radius - margin)
        if all(math.hypot(x - tx, y - ty) >= radius + tr + gap for tx, ty, tr in taken):
            taken.append((x, y, radius))
            return x / sx, y / sy
    return None


def sample_scene(rng: np.random.Generator, *, aspect: float | None = None, widespread: bool | None = None,
                 lesions: int | None = None, irregularity: tuple[float, ...] | None = None,
                 lesion_radius: tuple[float, float] = (0.04, 0.125)) -> Scene:
    """One photograph. Unset arguments are drawn: the aspect ratio, whether small spots are widespread
    (a quarter of photographs), the number of lesions (0-3; 0-1 in widespread photographs) and each
    lesion's irregularity (uniform in [0, 1])."""
    if aspect is None:
        aspect = float(rng.choice([1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3], p=[0.3, 0.3, 0.15, 0.15, 0.1]))
    if widespread is None:
        widespread = bool(rng.random() < 0.25)
    if lesions is None:
        lesions = int(rng.choice(2, p=[0.4, 0.6])) if widespread else int(rng.choice(4, p=[0.12, 0.5, 0.26, 0.12]))
    taken: list[tuple[float, float, float]] = []
    blobs: list[Blob] = []
    for i in range(lesions):
        radius = float(rng.uniform(*lesion_radius))
        centre = _place(rng, aspect, radius * 1.3, 0.02, taken, 0.04)
        if centre is None:
            continue
        a = irregularity[i] if irregularity is not None and i < len(irregularity) else float(rng.uniform(0.0, 1.0))
        blobs.append(sample_lesion(rng, centre[0], centre[1], radius, a))
    spots = int(rng.integers(10, 31)) if widespread else int(rng.choice(3, p=[0.75, 0.17, 0.08]))
    for _ in range(spots):
        spot_radius = 0.02
        centre = _place(rng, aspect, spot_radius, 0.015, taken, 0.035)
        if centre is not None:
            blobs.append(sample_spot(rng, *centre))

    tone = float(rng.beta(1.6, 1.9))
    position = tone * (len(SKIN_TONES) - 1)
    low = min(int(position), len(SKIN_TONES) - 2)
    albedo = SKIN_TONES[low] + (SKIN_TONES[low + 1] - SKIN_TONES[low]) * (position - low)
    albedo = albedo * (1.0 + rng.normal(0.0, 0.025, size=3))  # individual hue

    hairs = []
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 9))):
            p0 = rng.uniform(-0.1, 1.1, size=2)
            direction = rng.normal(0.0, 1.0, size=2)
            direction /= np.linalg.norm(direction)
            length = rng.uniform(0.1, 0.35)
            p2 = p0 + direction * length
            p1 = (p0 + p2) / 2 + rng.normal(0.0, 0.05, size=2)
            hairs.append(Hair(tuple((float(x), float(y)) for x, y in (p0, p1, p2)), float(rng.uniform(0.002, 0.005)),
                              float(rng.uniform(0.5, HAIR_MAX_DENSITY))))
    highlights = tuple(
        (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), float(rng.uniform(0.08, 0.3)), float(rng.uniform(8, 40)))
        for _ in range(int(rng.random() < 0.4) * int(rng.integers(1, 3)))
    )
    return Scene(
        aspect=aspect, tone=tone, albedo=albedo,
        blotch=rng.standard_normal((5, 5)), redness=rng.standard_normal((9, 9)), pores=rng.standard_normal((60, 60)),
        blotch_amplitude=float(rng.uniform(0.02, 0.06)), redness_amplitude=float(rng.uniform(0.0, 0.06)),
        pore_amplitude=float(rng.uniform(0.01, 0.035)),
        light_gain=float(rng.uniform(0.8, 1.1)), light_angle=float(rng.uniform(0, 2 * math.pi)),
        light_gradient=float(rng.uniform(0.0, 0.45)), vignette=float(rng.uniform(0.0, 0.4)),
        white_balance=1.0 + rng.normal(0.0, 0.03, size=3),
        highlights=highlights, hairs=tuple(hairs), blobs=tuple(blobs), widespread=widespread,
        blur=float(rng.uniform(0.0, 0.004)), noise_sigma=float(rng.uniform(0.0, 4.0)),
    )


def _upsample(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    field = np.asarray(Image.fromarray(grid.astype(np.float32), mode="F").resize((width, height), Image.BICUBIC))
    return field / max(float(field.std()), 1e-6)


def _blob_layers(blob: Blob, width: int, height: int, pores: np.ndarray) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Coverage (0..1) and melanin density of ``blob`` over its bounding box of pixels."""
    short = min(width, height)
    r = blob.radius * short
    semi_major, semi_minor = r / math.sqrt(blob.ratio), r * math.sqrt(blob.ratio)
    reach = semi_major * (1.0 + sum(amp for _, amp, _ in blob.harmonics) + blob.edge) + 2.0
    cx, cy = blob.cx * width, blob.cy * height
    x0, x1 = max(int(cx - reach), 0), min(math.ceil(cx + reach), width)
    y0, y1 = max(int(cy - reach), 0), min(math.ceil(cy + reach), height)
    if x0 >= x1 or y0 >= y1:
        return None
    dx, dy = np.meshgrid(np.arange(x0, x1) + 0.5 - cx, np.arange(y0, y1) + 0.5 - cy)
    c, s = math.cos(blob.angle), math.sin(blob.angle)
    u = (c * dx + s * dy) / semi_major
    v = (-s * dx + c * dy) / semi_minor
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    boundary = np.ones_like(rho)
    for k, amp, phase in blob.harmonics:
        boundary += amp * np.cos(k * theta + phase)
    rho = rho / np.maximum(boundary, 0.3)
    # Border width varies around the lesion with edge_variation: abrupt on one side, feathered on the other.
    edge = blob.edge * (1.0 + blob.edge_variation * 1.5 * np.cos(theta + blob.edge_phase))
    edge = np.maximum(edge, 0.5 / max(r, 1.0))  # never sharper than half a pixel
    coverage = np.clip((1.0 - rho) / edge + 0.5, 0.0, 1.0)
    coverage = coverage * coverage * (3 - 2 * coverage)  # smoothstep

    # Pigment: darkest around the shifted centre, fading to 70 % at the border, plus dark patches and mottling.
    sx, sy = blob.shift
    px, py = dx / r - sx, dy / r - sy
    body = 1.0 - 0.3 * np.clip(np.hypot(px, py), 0.0, 1.5) / 1.5
    density = blob.density * body
    for pdx, pdy, pr, extra in blob.patches:
        d2 = (dx / r - pdx) ** 2 + (dy / r - pdy) ** 2
        density = density + extra * np.exp(-d2 / (2 * pr * pr))
    texture = pores[y0:y1, x0:x1]
    density = density * np.clip(1.0 + blob.mottle * texture, 0.4, None)
    return slice(y0, y1), slice(x0, x1), coverage, density


def render_scene(scene: Scene, width: int, height: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Render ``scene`` as (height, width, 3) uint8 RGB. Returns the pixels and one record per drawn
    lesion or spot: ``kind``, ``box`` [x0, y0, x1, y1] (pixels; the extent of coverage >= 0.5) and
    ``irregularity``. ``rng`` draws only the sensor noise."""
    yy, xx = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width, indexing="ij")
    blotch = _upsample(scene.blotch, width, height)
    # Mottled redness (erythema) only adds red; less-than-average redness would turn the skin green.
    redness = np.clip(_upsample(scene.redness, width, height), -0.4, None)
    pores = _upsample(scene.pores, width, height)
    albedo = np.broadcast_to(scene.albedo, (height, width, 3)).copy()
    albedo *= (1.0 + scene.blotch_amplitude * blotch + scene.pore_amplitude * pores)[..., None]
    albedo *= (1.0 + scene.redness_amplitude * redness[..., None] * np.array([0.6, -0.5, -0.4]))

    od = np.zeros((height, width, 3))
    objects = []
    for blob in scene.blobs:
        layers = _blob_layers(blob, width, height, pores)
        if layers is None:
            continue
        rows, cols, coverage, density = layers
        darkest = density.max()
        veil = blob.veil * np.clip((density - 0.6 * darkest) / max(0.4 * darkest, 1e-6), 0.0, 1.0)
        od[rows, cols] += coverage[..., None] * (density[..., None] * MELANIN_OD + veil[..., None] * DERMAL_OD)
        inside = coverage >= 0.5
        if not inside.any():
            continue
        ys, xs = np.nonzero(inside)
        box = [int(cols.start + xs.min()), int(rows.start + ys.min()), int(cols.start + xs.max() + 1), int(rows.start + ys.max() + 1)]
        objects.append({"kind": blob.kind, "box": box, "irregularity": blob.irregularity})

    short = min(width, height)
    if scene.hairs:
        # All hairs on one mask, supersampled by 4 so that a hair thinner than a pixel still darkens it in
        # proportion; the mask value is the hair's density (where hairs cross, the later one wins).
        mask = Image.new("L", (width * 4, height * 4), 0)
        draw = ImageDraw.Draw(mask)
        t = np.linspace(0.0, 1.0, 24)[:, None]
        for hair in scene.hairs:
            p0, p1, p2 = (np.array(p) * (width * 4, height * 4) for p in hair.points)
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2
            draw.line([tuple(p) for p in curve], fill=round(hair.density / HAIR_MAX_DENSITY * 255),
                      width=max(1, round(hair.width * short * 4)))
        cover = np.asarray(mask.resize((width, height), Image.BOX), dtype=np.float64) / 255.0 * HAIR_MAX_DENSITY
        od += cover[..., None] * HAIR_OD

    light = scene.light_gain * (1.0 + scene.light_gradient * ((xx - 0.5) * math.cos(scene.light_angle) + (yy - 0.5) * math.sin(scene.light_angle)))
    light *= 1.0 - scene.vignette * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    rgb = albedo * np.exp(-od) * light[..., None] * scene.white_balance
    for hx, hy, sigma, amount in scene.highlights:
        d2 = ((xx - hx) * width) ** 2 + ((yy - hy) * height) ** 2
        rgb += amount * np.exp(-d2 / (2 * (sigma * short) ** 2))[..., None]
    if scene.blur > 0:
        sigma = scene.blur * short
        rgb = ndimage.gaussian_filter(rgb, sigma=(sigma, sigma, 0.0), mode="reflect")
    if scene.noise_sigma > 0:
        rgb = rgb + rng.normal(0.0, scene.noise_sigma, size=rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), objects


def frame_size(aspect: float, long_side: int) -> tuple[int, int]:
    """(width, height) of a frame with ``aspect`` whose longer side is ``long_side`` pixels."""
    if aspect >= 1:
        return long_side, max(1, math.floor(long_side / aspect + 0.5))
    return max(1, math.floor(long_side * aspect + 0.5)), long_side
