/*
 * Fixed-argument wrappers over the libvips operations qie uses.
 *
 * libvips operations take NULL-terminated variadic option lists, which Swift
 * cannot call. Each wrapper here passes exactly the options qie sets and
 * nothing else. All return 0 on success and -1 on failure. On failure the
 * wrapper moves libvips' error text into this thread's failure record, tagged
 * with the wrapper's stage and operation: read it with qie_vips_last_error() on
 * the same thread, right after the call. libvips' own error buffer is shared by
 * every thread, so nothing else should read it.
 */
#ifndef QIE_VIPS_H
#define QIE_VIPS_H

#include <stddef.h>
#include <stdint.h>
#include <vips/vips.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where a failure happened. Each wrapper states its own: loaders LOAD, savers
 * SAVE, everything in between TRANSFORM. A save can still fail because of the
 * input: libvips decodes lazily, while later operations pull pixels (see
 * qie_vips_decodes()). */
typedef enum {
    QIE_STAGE_NONE = 0,      /* no failure recorded on this thread */
    QIE_STAGE_START = 1,     /* libvips itself did not start */
    QIE_STAGE_LOAD = 2,      /* a loader: the input did not decode */
    QIE_STAGE_TRANSFORM = 3, /* an operation between loading and saving */
    QIE_STAGE_SAVE = 4,      /* a saver */
} qie_stage;

/* One failure of a qie_vips_* call. `message` is libvips' text with the
 * saver's echo of an earlier failure ("unable to write to ...") and repeated
 * lines dropped, the rest joined with "; "; empty when libvips gave none.
 * The stage is exact. The text is moved out at the failing call, but libvips
 * writes it to its one process-wide buffer first, so a failure on another
 * thread in the same instant can still mix into it or take it; only
 * qie_vips_decodes() records a message that is certainly its input's own. */
typedef struct {
    qie_stage stage;
    char operation[32];
    char message[1024];
} qie_vips_error;

/* Moves this thread's last failure into `out`, leaving no failure recorded.
 * Returns 0 when there was one, -1 when none was recorded (out->stage is then
 * QIE_STAGE_NONE). */
int qie_vips_last_error(qie_vips_error *out);

/* Whether `data` decodes on its own: opens a fresh loader on the bytes with
 * `fail_on` (a VipsFailOn) and sequential access, and reads every pixel of the
 * first page through a streaming average, so memory stays small. Returns 0
 * when it decodes; -1 when it does not, with the decoder's message recorded at
 * QIE_STAGE_LOAD. Meant for the failure path only: it waits until no other
 * qie_vips_* call is running and holds them off while it decodes, so the
 * message recorded is this input's alone. */
int qie_vips_decodes(const void *data, size_t length, int fail_on);

/* Starts libvips once per process: blocks every loader except the formats qie
 * accepts, disables the operation cache (each job is independent) and sets
 * per-image worker threads. Safe to call more than once. */
int qie_vips_start(const char *program_name, int worker_threads);

/* How many libvips operation classes have their finalizer wrapped to free
 * liborc code under liborc's mutex (see qie_vips.c); 0 without liborc. */
int qie_vips_orc_frees_locked(void);

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
/* `in` (8-bit, 1-4 bands without alpha, pixels in memory or computed
 * first) shrunk to `width` x `height` (each at most `in`'s, at most 64 times
 * smaller) by averaging: each pixel out is the mean of the block of pixels in
 * that it covers (blocks of whole pixels, their edges rounded down), in one
 * pass over memory. For previews: libvips' shrink and reduce run the same
 * through their pipeline several times slower on an image already in
 * memory. Attached metadata is kept. */
int qie_vips_box_shrink(VipsImage *in, VipsImage **out, int width, int height);

/* Kernels of qie_vips_resample. */
enum { QIE_KERNEL_CUBIC = 0, QIE_KERNEL_LANCZOS3 = 1 };
/* `in` (8-bit, 1-4 bands, any pixels) resampled to exactly width x height
 * with `kernel` (the Catmull-Rom cubic of libvips' bicubic, or Lanczos 3,
 * widened by the factor on a side that shrinks), centres aligned and edges
 * extended, as vips_resize does. Lazy like a libvips operation: computed
 * region by region on libvips' worker threads, streaming from `in`, and
 * two to three times faster than libvips 8.14's reduce, and far faster than its affine enlargement.
 * Each side at most 8 times smaller; attached metadata is kept. */
int qie_vips_resample(VipsImage *in, VipsImage **out, int width, int height, int kernel);
/* Which of qie_vips_resample's across passes runs: 0 the fastest the CPU
 * has (the default), 1 plain C, 2 SSSE3, 3 AVX2; -1 (nothing changed) when
 * the CPU lacks it. For tests: every pass computes the same integers, so
 * the pixels are the same whichever runs. */
int qie_vips_resample_use(int pass);
/* `in` passed on unchanged as `out`, and `memory`: an image of `in`'s size and
 * format in memory, into which every region of `out` is copied as it is
 * computed. Once `out` has been computed in full (saved), `memory` holds every
 * pixel: a second output of the same pipeline without computing it again.
 * Read `memory` only after that. */
int qie_vips_tee(VipsImage *in, VipsImage **out, VipsImage **memory);
/* The smallest rectangle holding every pixel of `in` (8-bit, one band,
 * pixels in memory or computed first) whose value is below `below`, in
 * `left`, `top`, `width`, `height`; a width and height of 0 when there is
 * none. For a mask's weights: where none is below 255, a composite keeps
 * the original as it is. */
int qie_vips_bounds_below(VipsImage *in, int below, int *left, int *top, int *width, int *height);
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
/* Band `band` of `in`, as a one-band image (for example an alpha channel). */
int qie_vips_extract_band(VipsImage *in, VipsImage **out, int band);
/* 255 - v in every band of an 8-bit image, the last (alpha) kept when keep_last_band. */
int qie_vips_negate(VipsImage *in, VipsImage **out, int keep_last_band);
/* Blends `in1` and `in2` by `weight` (vips_ifthenelse with blend): per band,
 * weight/255 * in1 + (1 - weight/255) * in2. `weight` is one uchar band (or as
 * many bands as the inputs); the inputs share their size and band count. */
int qie_vips_blend(VipsImage *weight, VipsImage *in1, VipsImage *in2, VipsImage **out);
/* Image from interleaved 8-bit pixels (bands 1-4), copied. */
int qie_vips_from_pixels(const uint8_t *pixels, size_t length, int width, int height, int bands,
                         VipsImage **out);
int qie_vips_getpoint(VipsImage *in, int x, int y, double *values, int capacity, int *count);
/* Every pixel of `in`, computed and interleaved into a new buffer (rows top to
 * bottom) that the caller frees with g_free(): the inverse of
 * qie_vips_from_pixels for an 8-bit image. */
int qie_vips_to_pixels(VipsImage *in, void **buffer, size_t *length);

/* Removes every metadata item except the ICC profile (when keep_icc is set), so
 * savers write no EXIF, XMP, IPTC or comments. */
int qie_vips_strip_metadata(VipsImage *in, VipsImage **out, int keep_icc);

/* Encoders. Metadata is always stripped; `profile` (NULL for none) names an
 * ICC profile to embed, such as libvips' built-in "srgb". The returned buffer
 * is owned by the caller and freed with g_free(). */
/* `subsample`: 4:2:0 chroma when set, 4:4:4 otherwise; `optimize_coding`:
 * Huffman tables made for the image (a second pass over its coefficients). */
int qie_vips_jpegsave(VipsImage *in, void **buffer, size_t *length, int quality, int progressive,
                      int subsample, int optimize_coding, const char *profile);
int qie_vips_pngsave(VipsImage *in, void **buffer, size_t *length, int compression, int progressive,
                     const char *profile);
int qie_vips_webpsave(VipsImage *in, void **buffer, size_t *length, int quality, int lossless, int effort,
                      const char *profile);
/* Always stripped: AVIF states sRGB in its nclx colour box instead of a profile. */
int qie_vips_avifsave(VipsImage *in, void **buffer, size_t *length, int quality, int lossless, int effort);
int qie_vips_gifsave(VipsImage *in, void **buffer, size_t *length, int effort, int progressive);

/* Caps glibc's malloc arenas (M_ARENA_MAX). Returns -1 where unsupported. */
int qie_limit_malloc_arenas(int arenas);

/* Metadata readers that never fail (and never touch the error buffer). */
int qie_vips_page_count(VipsImage *in);
int qie_vips_has_icc(VipsImage *in);

#ifdef __cplusplus
}
#endif

#endif
