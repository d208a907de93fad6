/*
 * Fixed-argument wrappers over the libvips operations qie uses.
 *
 * libvips operations take NULL-terminated variadic option lists, which Swift
 * cannot call. Each wrapper here passes exactly the options qie sets and
 * nothing else. All return 0 on success and -1 on failure, with the reason in
 * libvips' error buffer (read it with vips_error_buffer_copy()).
 */
#ifndef QIE_VIPS_H
#define QIE_VIPS_H

#include <stddef.h>
#include <stdint.h>
#include <vips/vips.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Starts libvips once per process: blocks every loader except the formats qie
 * accepts, disables the operation cache (each job is independent) and sets
 * per-image worker threads. Safe to call more than once. */
int qie_vips_start(const char *program_name, int worker_threads);

/* Lazily opens an image from memory (header read now, pixels on demand).
 * `fail_on` is a VipsFailOn value; `sequential` selects VIPS_ACCESS_SEQUENTIAL. */
int qie_vips_open_buffer(const void *data, size_t length, int fail_on, int sequential, VipsImage **out);

/* Shrink-on-load resize to exactly width x height (VIPS_SIZE_FORCE), without
 * auto-rotation: the caller applies orientation itself. Embedded ICC profiles
 * and CMYK are imported to sRGB by libvips' thumbnail pipeline. */
int qie_vips_thumbnail_buffer(const void *data, size_t length, int width, int height, int fail_on,
                              VipsImage **out);

/* Shrink-on-load: JPEG decoded at 1/shrink size (1, 2, 4 or 8) through
 * libjpeg's scaled IDCT; WebP decoded through libwebp's scaler. Sequential
 * access, no auto-rotation, no colour conversion. */
int qie_vips_jpegload_shrunk(const void *data, size_t length, int shrink, int fail_on, VipsImage **out);
int qie_vips_webpload_scaled(const void *data, size_t length, double scale, int fail_on, VipsImage **out);
int qie_vips_is_cmyk(VipsImage *in);

/* Converts to sRGB through the embedded ICC profile (or `fallback_profile`,
 * a file or a built-in name such as "cmyk", when there is none). */
int qie_vips_import_to_srgb(VipsImage *in, VipsImage **out, const char *fallback_profile);

int qie_vips_copy_memory(VipsImage *in, VipsImage **out);
int qie_vips_to_srgb(VipsImage *in, VipsImage **out);
int qie_vips_cast_uchar(VipsImage *in, VipsImage **out);
int qie_vips_resize(VipsImage *in, VipsImage **out, double hscale, double vscale);
int qie_vips_premultiply(VipsImage *in, VipsImage **out);
/* Undoes qie_vips_premultiply, casting back to 8 bits. */
int qie_vips_unpremultiply(VipsImage *in, VipsImage **out);
int qie_vips_rot(VipsImage *in, VipsImage **out, int angle);
int qie_vips_flip(VipsImage *in, VipsImage **out, int direction);
int qie_vips_extract_area(VipsImage *in, VipsImage **out, int left, int top, int width, int height);
/* Crops to width x height by `interesting` (VipsInteresting); reports where. */
int qie_vips_smartcrop(VipsImage *in, VipsImage **out, int width, int height, int interesting, int *left,
                       int *top);
/* Pads to width x height placing `in` at x, y. `extend` is a VipsExtend; the
 * background (n values) is used with VIPS_EXTEND_BACKGROUND. */
int qie_vips_embed(VipsImage *in, VipsImage **out, int x, int y, int width, int height, int extend,
                   const double *background, int n);
int qie_vips_flatten(VipsImage *in, VipsImage **out, const double *background, int n);
int qie_vips_add_alpha(VipsImage *in, VipsImage **out);
int qie_vips_gaussblur(VipsImage *in, VipsImage **out, double sigma);
/* Draws `overlay` over `base` at x, y with alpha compositing (VIPS_BLEND_MODE_OVER). */
int qie_vips_composite_over(VipsImage *base, VipsImage *overlay, VipsImage **out, int x, int y);
int qie_vips_insert(VipsImage *main, VipsImage *sub, VipsImage **out, int x, int y);
/* Image from interleaved 8-bit pixels (bands 1-4), copied. */
int qie_vips_from_pixels(const uint8_t *pixels, size_t length, int width, int height, int bands,
                         VipsImage **out);
int qie_vips_getpoint(VipsImage *in, int x, int y, double *values, int capacity, int *count);

/* Removes every metadata item except the ICC profile (when keep_icc is set), so
 * savers write no EXIF, XMP, IPTC or comments. */
int qie_vips_strip_metadata(VipsImage *in, VipsImage **out, int keep_icc);

/* Encoders. Metadata is always stripped; `profile` (NULL for none) names an
 * ICC profile to embed, such as libvips' built-in "srgb". The returned buffer
 * is owned by the caller and freed with g_free(). */
/* `subsample`: 4:2:0 chroma when set, 4:4:4 otherwise. */
int qie_vips_jpegsave(VipsImage *in, void **buffer, size_t *length, int quality, int progressive,
                      int subsample, const char *profile);
int qie_vips_pngsave(VipsImage *in, void **buffer, size_t *length, int compression, int progressive,
                     const char *profile);
int qie_vips_webpsave(VipsImage *in, void **buffer, size_t *length, int quality, int lossless, int effort,
                      const char *profile);
/* Always stripped: AVIF states sRGB in its nclx colour box instead of a profile. */
int qie_vips_avifsave(VipsImage *in, void **buffer, size_t *length, int quality, int lossless, int effort);
int qie_vips_gifsave(VipsImage *in, void **buffer, size_t *length, int effort, int progressive);

/* Caps glibc's malloc arenas (M_ARENA_MAX). Returns -1 where unsupported. */
int qie_limit_malloc_arenas(int arenas);

/* Metadata readers that never fail. */
int qie_vips_page_count(VipsImage *in);
int qie_vips_has_icc(VipsImage *in);

#ifdef __cplusplus
}
#endif

#endif
