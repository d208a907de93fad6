#include "qie_vips.h"

#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* The formats qie accepts. Every other loader (SVG, PDF, Matlab, FITS,
 * ImageMagick, raw, CSV, ...) stays blocked for the life of the process. */
static const char *const allowed_loaders[] = {
    "VipsForeignLoadJpeg", "VipsForeignLoadPng", "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif", "VipsForeignLoadHeif", "VipsForeignLoadTiff",
};

/* libvips reports recoverable oddities (odd EXIF units, extra bytes) as GLib
 * warnings on stderr. A failing image is reported through the error buffer;
 * warnings about images that decode would only clutter a batch's output. */
static void drop_warning(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data) {
    (void)domain;
    (void)level;
    (void)message;
    (void)data;
}

static GOnce start_once = G_ONCE_INIT;
static int start_result = -1;

typedef struct {
    const char *program_name;
    int worker_threads;
} start_arguments;

static gpointer start_vips(gpointer data) {
    start_arguments *arguments = (start_arguments *)data;
    if (VIPS_INIT(arguments->program_name ? arguments->program_name : "qie") != 0) {
        start_result = -1;
        return NULL;
    }
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO, drop_warning, NULL);
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoad", TRUE);
    for (size_t i = 0; i < sizeof(allowed_loaders) / sizeof(allowed_loaders[0]); i++) {
        vips_operation_block_set(allowed_loaders[i], FALSE);
    }
    /* Jobs never repeat an operation, so the cache would only hold memory. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    if (arguments->worker_threads > 0) vips_concurrency_set(arguments->worker_threads);
    start_result = 0;
    return NULL;
}

int qie_vips_start(const char *program_name, int worker_threads) {
    start_arguments arguments = {program_name, worker_threads};
    g_once(&start_once, start_vips, &arguments);
    return start_result;
}

int qie_vips_open_buffer(const void *data, size_t length, int fail_on, int sequential, VipsImage **out) {
    *out = vips_image_new_from_buffer(data, length, "",
                                      "access", sequential ? VIPS_ACCESS_SEQUENTIAL : VIPS_ACCESS_RANDOM,
                                      "fail_on", (VipsFailOn)fail_on, NULL);
    return *out ? 0 : -1;
}

int qie_vips_thumbnail_buffer(const void *data, size_t length, int width, int height, int fail_on,
                              VipsImage **out) {
    /* thumbnail_buffer does not hand its own fail_on to the loader in every
     * libvips release: say it in the loader's option string as well. */
    const char *nick = vips_enum_nick(VIPS_TYPE_FAIL_ON, fail_on);
    char options[64];
    g_snprintf(options, sizeof(options), "[fail_on=%s]", nick ? nick : "none");
    return vips_thumbnail_buffer((void *)data, length, out, width,
                                 "height", height,
                                 "size", VIPS_SIZE_FORCE,
                                 "no_rotate", TRUE,
                                 "fail_on", (VipsFailOn)fail_on,
                                 "option_string", options,
                                 NULL);
}

int qie_vips_jpegload_shrunk(const void *data, size_t length, int shrink, int fail_on, VipsImage **out) {
    return vips_jpegload_buffer((void *)data, length, out,
                                "shrink", shrink,
                                "fail_on", (VipsFailOn)fail_on,
                                "access", VIPS_ACCESS_SEQUENTIAL,
                                NULL);
}

int qie_vips_webpload_scaled(const void *data, size_t length, double scale, int fail_on, VipsImage **out) {
    return vips_webpload_buffer((void *)data, length, out,
                                "scale", scale,
                                "fail_on", (VipsFailOn)fail_on,
                                "access", VIPS_ACCESS_SEQUENTIAL,
                                NULL);
}

int qie_vips_is_cmyk(VipsImage *in) {
    return vips_image_get_interpretation(in) == VIPS_INTERPRETATION_CMYK;
}

int qie_vips_import_to_srgb(VipsImage *in, VipsImage **out, const char *fallback_profile) {
    if (fallback_profile != NULL) {
        return vips_icc_transform(in, out, "srgb", "embedded", TRUE, "input_profile", fallback_profile,
                                  "intent", VIPS_INTENT_RELATIVE, NULL);
    }
    return vips_icc_transform(in, out, "srgb", "embedded", TRUE, "intent", VIPS_INTENT_RELATIVE, NULL);
}

int qie_vips_copy_memory(VipsImage *in, VipsImage **out) {
    *out = vips_image_copy_memory(in);
    return *out ? 0 : -1;
}

int qie_vips_to_srgb(VipsImage *in, VipsImage **out) {
    return vips_colourspace(in, out, VIPS_INTERPRETATION_sRGB, NULL);
}

int qie_vips_cast_uchar(VipsImage *in, VipsImage **out) {
    return vips_cast(in, out, VIPS_FORMAT_UCHAR, NULL);
}

int qie_vips_resize(VipsImage *in, VipsImage **out, double hscale, double vscale) {
    return vips_resize(in, out, hscale, "vscale", vscale, NULL);
}

int qie_vips_premultiply(VipsImage *in, VipsImage **out) {
    return vips_premultiply(in, out, NULL);
}

int qie_vips_unpremultiply(VipsImage *in, VipsImage **out) {
    VipsImage *unpremultiplied = NULL;
    if (vips_unpremultiply(in, &unpremultiplied, NULL) != 0) return -1;
    /* unpremultiply gives floats; back to 8 bits. */
    int result = vips_cast(unpremultiplied, out, VIPS_FORMAT_UCHAR, NULL);
    g_object_unref(unpremultiplied);
    return result;
}

int qie_vips_rot(VipsImage *in, VipsImage **out, int angle) {
    return vips_rot(in, out, (VipsAngle)angle, NULL);
}

int qie_vips_flip(VipsImage *in, VipsImage **out, int direction) {
    return vips_flip(in, out, (VipsDirection)direction, NULL);
}

int qie_vips_extract_area(VipsImage *in, VipsImage **out, int left, int top, int width, int height) {
    return vips_extract_area(in, out, left, top, width, height, NULL);
}

int qie_vips_smartcrop(VipsImage *in, VipsImage **out, int width, int height, int interesting, int *left,
                       int *top) {
    if (vips_smartcrop(in, out, width, height, "interesting", (VipsInteresting)interesting, NULL) != 0) {
        return -1;
    }
    /* The crop is an extract_area: its origin is recorded as a negative offset. */
    *left = -vips_image_get_xoffset(*out);
    *top = -vips_image_get_yoffset(*out);
    return 0;
}

int qie_vips_embed(VipsImage *in, VipsImage **out, int x, int y, int width, int height, int extend,
                   const double *background, int n) {
    if (extend == VIPS_EXTEND_BACKGROUND && background != NULL && n > 0) {
        VipsArrayDouble *array = vips_array_double_new(background, n);
        int result = vips_embed(in, out, x, y, width, height,
                                "extend", VIPS_EXTEND_BACKGROUND, "background", array, NULL);
        vips_area_unref(VIPS_AREA(array));
        return result;
    }
    return vips_embed(in, out, x, y, width, height, "extend", (VipsExtend)extend, NULL);
}

int qie_vips_flatten(VipsImage *in, VipsImage **out, const double *background, int n) {
    VipsArrayDouble *array = vips_array_double_new(background, n);
    int result = vips_flatten(in, out, "background", array, NULL);
    vips_area_unref(VIPS_AREA(array));
    return result;
}

int qie_vips_add_alpha(VipsImage *in, VipsImage **out) {
    return vips_bandjoin_const1(in, out, 255.0, NULL);
}

int qie_vips_gaussblur(VipsImage *in, VipsImage **out, double sigma) {
    return vips_gaussblur(in, out, sigma, NULL);
}

int qie_vips_composite_over(VipsImage *base, VipsImage *overlay, VipsImage **out, int x, int y) {
    return vips_composite2(base, overlay, out, VIPS_BLEND_MODE_OVER, "x", x, "y", y, NULL);
}

int qie_vips_insert(VipsImage *main, VipsImage *sub, VipsImage **out, int x, int y) {
    return vips_insert(main, sub, out, x, y, NULL);
}

int qie_vips_from_pixels(const uint8_t *pixels, size_t length, int width, int height, int bands,
                         VipsImage **out) {
    if (width <= 0 || height <= 0 || bands < 1 || bands > 4 ||
        (size_t)width * (size_t)height * (size_t)bands != length) {
        vips_error("qie", "pixel buffer of %zu bytes does not hold %dx%d pixels of %d bands", length, width,
                   height, bands);
        return -1;
    }
    *out = vips_image_new_from_memory_copy(pixels, length, width, height, bands, VIPS_FORMAT_UCHAR);
    if (*out == NULL) return -1;
    (*out)->Type = bands >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
    return 0;
}

int qie_vips_getpoint(VipsImage *in, int x, int y, double *values, int capacity, int *count) {
    double *vector = NULL;
    int n = 0;
    if (vips_getpoint(in, &vector, &n, x, y, NULL) != 0) return -1;
    int copied = n < capacity ? n : capacity;
    memcpy(values, vector, (size_t)copied * sizeof(double));
    *count = copied;
    g_free(vector);
    return 0;
}

int qie_vips_strip_metadata(VipsImage *in, VipsImage **out, int keep_icc) {
    if (vips_copy(in, out, NULL) != 0) return -1;
    gchar **fields = vips_image_get_fields(*out);
    for (int i = 0; fields[i] != NULL; i++) {
        const char *name = fields[i];
        if (keep_icc && strcmp(name, VIPS_META_ICC_NAME) == 0) continue;
        /* Built-in header fields are not in the metadata table; removing them
         * is a no-op, so only real metadata goes. */
        vips_image_remove(*out, name);
    }
    g_strfreev(fields);
    return 0;
}

/* `profile` (NULL for none) names an ICC profile to embed, such as libvips'
 * built-in "srgb". libvips 8.14 ignores `profile` when stripping, so with a
 * profile the image is saved unstripped: the caller has already removed all
 * other metadata, and removes the EXIF block the saver rebuilds. */
int qie_vips_jpegsave(VipsImage *in, void **buffer, size_t *length, int quality, int progressive,
                      int subsample, const char *profile) {
    return vips_jpegsave_buffer(in, buffer, length,
                                "Q", quality,
                                "subsample_mode", subsample ? VIPS_FOREIGN_SUBSAMPLE_ON : VIPS_FOREIGN_SUBSAMPLE_OFF,
                                "interlace", progressive ? TRUE : FALSE,
                                "optimize_coding", TRUE,
                                "strip", profile ? FALSE : TRUE,
                                "profile", profile,
                                NULL);
}

int qie_vips_pngsave(VipsImage *in, void **buffer, size_t *length, int compression, int progressive,
                     const char *profile) {
    return vips_pngsave_buffer(in, buffer, length,
                               "compression", compression,
                               "interlace", progressive ? TRUE : FALSE,
                               "strip", profile ? FALSE : TRUE,
                               "profile", profile,
                               NULL);
}

int qie_vips_webpsave(VipsImage *in, void **buffer, size_t *length, int quality, int lossless, int effort,
                      const char *profile) {
    return vips_webpsave_buffer(in, buffer, length,
                                "Q", quality,
                                "lossless", lossless ? TRUE : FALSE,
                                "effort", effort,
                                "strip", profile ? FALSE : TRUE,
                                "profile", profile,
                                NULL);
}

/* AVIF declares its colour space in an nclx box (sRGB here), so it is always
 * saved stripped: libheif would otherwise add a rebuilt EXIF item. */
int qie_vips_avifsave(VipsImage *in, void **buffer, size_t *length, int quality, int lossless, int effort) {
    return vips_heifsave_buffer(in, buffer, length,
                                "Q", quality,
                                "lossless", lossless ? TRUE : FALSE,
                                "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
                                "effort", effort,
                                "strip", TRUE,
                                NULL);
}

int qie_vips_gifsave(VipsImage *in, void **buffer, size_t *length, int effort, int progressive) {
    return vips_gifsave_buffer(in, buffer, length,
                               "effort", effort,
                               "interlace", progressive ? TRUE : FALSE,
                               "strip", TRUE,
                               NULL);
}

int qie_vips_page_count(VipsImage *in) {
    int pages = 1;
    if (vips_image_get_typeof(in, VIPS_META_N_PAGES) && vips_image_get_int(in, VIPS_META_N_PAGES, &pages) != 0) {
        vips_error_clear();
        return 1;
    }
    return pages > 0 ? pages : 1;
}

int qie_vips_has_icc(VipsImage *in) {
    return vips_image_get_typeof(in, VIPS_META_ICC_NAME) != 0;
}

int qie_limit_malloc_arenas(int arenas) {
#if defined(__GLIBC__)
    return mallopt(M_ARENA_MAX, arenas) == 1 ? 0 : -1;
#else
    (void)arenas;
    return -1;
#endif
}
