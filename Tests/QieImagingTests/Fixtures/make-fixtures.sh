#!/usr/bin/env bash
# Regenerates the small test fixtures in this folder (committed; tests do not
# run this). Needs Python with Pillow, and libvips-tools for the 16-bit, ICC
# and TIFF cases. Every image is drawn here; none comes from elsewhere.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
from PIL import Image, ImageDraw

# The upright picture: 48x32, four coloured quadrants.
W, H = 48, 32
upright = Image.new("RGB", (W, H))
d = ImageDraw.Draw(upright)
d.rectangle([0, 0, 23, 15], fill=(255, 0, 0))      # top left: red
d.rectangle([24, 0, 47, 15], fill=(0, 255, 0))     # top right: green
d.rectangle([0, 16, 23, 31], fill=(0, 0, 255))     # bottom left: blue
d.rectangle([24, 16, 47, 31], fill=(255, 255, 0))  # bottom right: yellow

T = Image.Transpose
# Stored pixels for each EXIF orientation: the inverse of what a viewer applies.
stored = {
    1: upright,
    2: upright.transpose(T.FLIP_LEFT_RIGHT),
    3: upright.transpose(T.ROTATE_180),
    4: upright.transpose(T.FLIP_TOP_BOTTOM),
    5: upright.transpose(T.TRANSPOSE),
    6: upright.transpose(T.ROTATE_90),   # viewer rotates 90 clockwise
    7: upright.transpose(T.TRANSVERSE),
    8: upright.transpose(T.ROTATE_270),  # viewer rotates 90 anticlockwise
}
for n, img in stored.items():
    exif = Image.Exif()
    exif[0x0112] = n
    img.save(f"orientation-{n}.jpg", quality=95, exif=exif.tobytes())

# EXIF with GPS and a camera model, orientation 6: must never reach an output.
exif = Image.Exif()
exif[0x0112] = 6
exif[0x0110] = "SecretCam 3000"
exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
stored[6].save("gps-orientation-6.jpg", quality=95, exif=exif.tobytes())

# CMYK JPEG: left half red (C0 M255 Y255 K0), right half white.
cmyk = Image.new("CMYK", (32, 32), (0, 0, 0, 0))
ImageDraw.Draw(cmyk).rectangle([0, 0, 15, 31], fill=(0, 255, 255, 0))
cmyk.save("cmyk.jpg", quality=95)

# Grey + alpha: grey 100, left half transparent.
la = Image.new("LA", (32, 32), (100, 255))
ImageDraw.Draw(la).rectangle([0, 0, 15, 31], fill=(100, 0))
la.save("grey-alpha.png")

# Palette with transparency: index 0 transparent, index 1 red.
p = Image.new("P", (32, 32), 0)
p.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
ImageDraw.Draw(p).rectangle([16, 0, 31, 31], fill=1)
p.info["transparency"] = 0
p.save("palette-transparent.png", transparency=0)

# Animated GIF: red, green, blue frames.
frames = [Image.new("RGB", (32, 24), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
frames[0].save("animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)

# Plain sources for the libvips-made fixtures below.
Image.new("RGB", (32, 32), (0, 255, 0)).save("_green.png")
rgb = Image.new("RGB", (32, 16), (255, 0, 0))
ImageDraw.Draw(rgb).rectangle([16, 0, 31, 15], fill=(128, 128, 128))
rgb.save("_red-grey.png")
PY
# 16-bit RGB PNG: red and mid-grey, scaled to 16 bits.
vips linear _red-grey.png _red-grey16.v 257 0
vips cast _red-grey16.v _red-grey16u.v ushort
vips copy _red-grey16u.v "rgb16.png[bitdepth=16]" --interpretation rgb16
# Display P3 green with its profile: normalising must bring it back to sRGB green.
vips icc_transform _green.png p3-green.png p3 --embedded=false --input-profile=srgb
# TIFF.
vips copy _red-grey.png red-grey.tif
rm -f _green.png _red-grey.png _red-grey16.v _red-grey16u.v
echo "fixtures written"
