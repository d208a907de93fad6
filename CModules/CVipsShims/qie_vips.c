#include "qie_vips.h"

#include <dlfcn.h>

#include <math.h>
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
 * warnings on stderr. A failing image is reported through its failure record;
 * warnings about images that decode would only clutter a batch's output. */
static void drop_warning(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data) {
    (void)domain;
    (void)level;
    (void)message;
    (void)data;
}

/* This thread's last failure. Swift reads it on the same thread right after
 * the failing call, so a job never sees another job's failure in it. */
static _Thread_local qie_vips_error last_error;

/* libvips' error buffer is one for the whole process, and a lazy decode writes
 * to it from a worker thread in the middle of a save, so two failures at the
 * same moment can end up in one copy. Every wrapper holds `calls` as a reader
 * from its libvips call until its failure is moved out; qie_vips_decodes()
 * holds it as the writer, so while it decodes, the buffer can only receive its
 * own input's text. GRWLock lets new readers overtake a waiting writer, which
 * starves it while jobs keep overlapping; the writer therefore holds
 * `turnstile` while it waits, and every wrapper passes through it first.
 * (Static GLib locks need no initialisation.) */
static GRWLock calls;
static GMutex turnstile;

static void remember(qie_stage stage, const char *operation, const char *message) {
    last_error.stage = stage;
    g_strlcpy(last_error.operation, operation, sizeof(last_error.operation));
    g_strlcpy(last_error.message, message, sizeof(last_error.message));
}

/* Moves libvips' error text into this thread's record. */
static void capture(qie_stage stage, const char *operation) {
    /* Copies and clears in one step, under libvips' own lock. */
    char *text = vips_error_buffer_copy();
    gchar **lines = g_strsplit(text != NULL ? text : "", "\n", -1);
    GString *kept = g_string_new(NULL);
    for (int i = 0; lines[i] != NULL; i++) {
        const char *line = g_strstrip(lines[i]);
        gboolean repeated = FALSE;
        for (int j = 0; j < i && !repeated; j++) repeated = strcmp(lines[j], line) == 0;
        /* A saver whose input failed adds "unable to write to ..." after the
         * input's own reason, which says more. */
        if (*line == '\0' || repeated || strstr(line, "unable to write to") != NULL) continue;
        if (kept->len > 0) g_string_append(kept, "; ");
        g_string_append(kept, line);
    }
    remember(stage, operation, kept->str);
    g_string_free(kept, TRUE);
    g_strfreev(lines);
    g_free(text);
}

static void enter(void) {
    g_mutex_lock(&turnstile);
    g_mutex_unlock(&turnstile);
    g_rw_lock_reader_lock(&calls);
}

/* Ends a wrapper begun with enter(): records a failure, then lets a waiting
 * decoder check run. Returns `status`. */
static int leave(int status, qie_stage stage, const char *operation) {
    if (status != 0) capture(stage, operation);
    g_rw_lock_reader_unlock(&calls);
    return status;
}

int qie_vips_last_error(qie_vips_error *out) {
    *out = last_error;
    memset(&last_error, 0, sizeof(last_error));
    return out->stage == QIE_STAGE_NONE ? -1 : 0;
}

int qie_vips_decodes(const void *data, size_t length, int fail_on) {
    g_mutex_lock(&turnstile);
    g_rw_lock_writer_lock(&calls);
    /* Each wrapper has moved its own failure out before letting go of `calls`:
     * anything still here came from outside them and is not this input's. */
    vips_error_clear();
    VipsImage *image = vips_image_new_from_buffer(data, length, "",
                                                  "access", VIPS_ACCESS_SEQUENTIAL,
                                                  "fail_on", (VipsFailOn)fail_on, NULL);
    const char *operation = image != NULL ? "avg" : "new_from_buffer";
    double average = 0;
    int status = image != NULL && vips_avg(image, &average, NULL) == 0 ? 0 : -1;
    if (image != NULL) g_object_unref(image);
    if (status != 0) capture(QIE_STAGE_LOAD, operation);
    g_rw_lock_writer_unlock(&calls);
    g_mutex_unlock(&turnstile);
    return status;
}

static GOnce start_once = G_ONCE_INIT;
static int start_result = -1;
/* Why start-up failed, for every caller: only the first one ran it. */
static char start_failure[sizeof(last_error.message)];

typedef struct {
    const char *program_name;
    int worker_threads;
} start_arguments;

/* libvips 8.14 compiles a liborc program each time it builds a Lanczos
 * reduce (and a convolution or morphology), and frees it when the operation
 * is finalized. liborc 0.4.33 allocates code memory holding its global mutex
 * but frees it without: a reduce finalized on one thread while another is
 * built on a second corrupts liborc's list of code chunks, and the process
 * segfaults in orc_code_allocate_codemem (seen once in 640 concurrent
 * gateway edits). The finalizers of those operations are wrapped here to
 * hold liborc's own mutex while they free, so frees and allocations take
 * turns. liborc's free path does not take that mutex itself, so this cannot
 * deadlock. Without liborc (libvips 8.15 and later use highway) nothing is
 * wrapped. */
typedef void (*orc_mutex_call)(void);
static orc_mutex_call orc_lock, orc_unlock;
static int orc_frees_locked;

#define QIE_ORC_LOCKED_FINALIZE(n)                                        \
    static GObjectFinalizeFunc orc_finalize_##n;                          \
    static void orc_locked_finalize_##n(GObject *object) {                \
        orc_lock();                                                       \
        orc_finalize_##n(object);                                         \
        orc_unlock();                                                     \
    }
QIE_ORC_LOCKED_FINALIZE(0)
QIE_ORC_LOCKED_FINALIZE(1)
QIE_ORC_LOCKED_FINALIZE(2)

static void lock_orc_frees(void) {
    void *self = dlopen(NULL, RTLD_LAZY);
    if (self == NULL) return;
    orc_lock = (orc_mutex_call) dlsym(self, "orc_global_mutex_lock");
    orc_unlock = (orc_mutex_call) dlsym(self, "orc_global_mutex_unlock");
    if (orc_lock == NULL || orc_unlock == NULL) return;
    const char *const classes[] = {"VipsReducev", "VipsConvi", "VipsMorph"};
    GObjectFinalizeFunc *const kept[] = {&orc_finalize_0, &orc_finalize_1, &orc_finalize_2};
    const GObjectFinalizeFunc wrappers[] = {orc_locked_finalize_0, orc_locked_finalize_1, orc_locked_finalize_2};
    for (int i = 0; i < 3; i++) {
        GType type = g_type_from_name(classes[i]);
        if (type == 0) continue;
        /* Held for the life of the process, so the class and its finalizer stay. */
        GObjectClass *class = g_type_class_ref(type);
        *kept[i] = class->finalize;
        class->finalize = wrappers[i];
        orc_frees_locked++;
    }
}

int qie_vips_orc_frees_locked(void) { return orc_frees_locked; }

static gpointer start_vips(gpointer data) {
    start_arguments *arguments = (start_arguments *)data;
    if (VIPS_INIT(arguments->program_name ? arguments->program_name : "qie") != 0) {
        capture(QIE_STAGE_START, "init");
        g_strlcpy(start_failure, last_error.message, sizeof(start_failure));
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
    lock_orc_frees();
    start_result = 0;
    return NULL;
}

int qie_vips_start(const char *program_name, int worker_threads) {
    start_arguments arguments = {program_name, worker_threads};
    g_once(&start_once, start_vips, &arguments);
    if (start_result != 0) remember(QIE_STAGE_START, "init", start_failure);
    return start_result;
}

int qie_vips_open_buffer(const void *data, size_t length, int fail_on, int sequential, VipsImage **out) {
    enter();
    *out = vips_image_new_from_buffer(data, length, "",
                                      "access", sequential ? VIPS_ACCESS_SEQUENTIAL : VIPS_ACCESS_RANDOM,
                                      "fail_on", (VipsFailOn)fail_on, NULL);
    return leave(*out ? 0 : -1, QIE_STAGE_LOAD, "new_from_buffer");
}

int qie_vips_thumbnail_buffer(const void *data, size_t length, int width, int height, int fail_on,
                              VipsImage **out) {
    /* thumbnail_buffer does not hand its own fail_on to the loader in every
     * libvips release: say it in the loader's option string as well. */
    const char *nick = vips_enum_nick(VIPS_TYPE_FAIL_ON, fail_on);
    char options[64];
    g_snprintf(options, sizeof(options), "[fail_on=%s]", nick ? nick : "none");
    enter();
    int status = vips_thumbnail_buffer((void *)data, length, out, width,
                                       "height", height,
                                       "size", VIPS_SIZE_FORCE,
                                       "no_rotate", TRUE,
                                       "fail_on", (VipsFailOn)fail_on,
                                       "option_string", options,
                                       NULL);
    return leave(status, QIE_STAGE_LOAD, "thumbnail_buffer");
}

int qie_vips_jpegload_shrunk(const void *data, size_t length, int shrink, int fail_on, VipsImage **out) {
    enter();
    int status = vips_jpegload_buffer((void *)data, length, out,
                                      "shrink", shrink,
                                      "fail_on", (VipsFailOn)fail_on,
                                      "access", VIPS_ACCESS_SEQUENTIAL,
                                      NULL);
    return leave(status, QIE_STAGE_LOAD, "jpegload_buffer");
}

int qie_vips_webpload_scaled(const void *data, size_t length, double scale, int fail_on, VipsImage **out) {
    enter();
    int status = vips_webpload_buffer((void *)data, length, out,
                                      "scale", scale,
                                      "fail_on", (VipsFailOn)fail_on,
                                      "access", VIPS_ACCESS_SEQUENTIAL,
                                      NULL);
    return leave(status, QIE_STAGE_LOAD, "webpload_buffer");
}

int qie_vips_is_cmyk(VipsImage *in) {
    return vips_image_get_interpretation(in) == VIPS_INTERPRETATION_CMYK;
}

int qie_vips_import_to_srgb(VipsImage *in, VipsImage **out, const char *fallback_profile) {
    enter();
    int status = fallback_profile != NULL
                     ? vips_icc_transform(in, out, "srgb", "embedded", TRUE, "input_profile", fallback_profile,
                                          "intent", VIPS_INTENT_RELATIVE, NULL)
                     : vips_icc_transform(in, out, "srgb", "embedded", TRUE, "intent", VIPS_INTENT_RELATIVE, NULL);
    return leave(status, QIE_STAGE_TRANSFORM, "icc_transform");
}

int qie_vips_copy_memory(VipsImage *in, VipsImage **out) {
    enter();
    *out = vips_image_copy_memory(in);
    return leave(*out ? 0 : -1, QIE_STAGE_TRANSFORM, "copy_memory");
}

int qie_vips_to_srgb(VipsImage *in, VipsImage **out) {
    enter();
    return leave(vips_colourspace(in, out, VIPS_INTERPRETATION_sRGB, NULL), QIE_STAGE_TRANSFORM, "colourspace");
}

int qie_vips_cast_uchar(VipsImage *in, VipsImage **out) {
    enter();
    return leave(vips_cast(in, out, VIPS_FORMAT_UCHAR, NULL), QIE_STAGE_TRANSFORM, "cast");
}

int qie_vips_resize(VipsImage *in, VipsImage **out, double hscale, double vscale) {
    enter();
    return leave(vips_resize(in, out, hscale, "vscale", vscale, NULL), QIE_STAGE_TRANSFORM, "resize");
}

/* Fixed-point weights of the resampling passes (qie_vips_resample). */
enum { TAP_BITS = 14, TAP_ONE = 1 << TAP_BITS };

static inline VipsPel clamp_pel(int sum) {
    int v = (sum + TAP_ONE / 2) >> TAP_BITS;
    return (VipsPel) (v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Where the compiler and the machine allow it, an AVX2 build of a loop
 * beside the baseline one, chosen when the library loads. */
#if defined(__x86_64__) && defined(__clang__) && defined(__linux__)
#define QIE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QIE_CLONES
#endif

static void free_pixels(VipsImage *image, gpointer pixels) { g_free(pixels); }

static void *copy_metadata(VipsImage *in, const char *name, GValue *value, void *out) {
    /* The header's own fields are the new image's; only attached metadata moves. */
    static const char *const fields[] = {"width", "height", "bands", "format", "coding", "interpretation", "xoffset",
                                         "yoffset", "xres", "yres", "filename", "mode", "scale", "offset", NULL};
    for (int i = 0; fields[i]; i++)
        if (strcmp(name, fields[i]) == 0) return NULL;
    vips_image_set(out, name, value);
    return NULL;
}

/* `pixels` (g_malloc'd, `length` bytes, `width` x `height` of `like`'s bands
 * and format) as an image that frees them when it closes, described as
 * `like` is: its interpretation, its resolution scaled to the new size, its
 * attached metadata. NULL (the pixels freed) when it cannot be made. */
static VipsImage *image_owning(void *pixels, size_t length, int width, int height, VipsImage *like) {
    VipsImage *image = vips_image_new_from_memory(pixels, length, width, height, like->Bands, like->BandFmt);
    if (image == NULL) {
        g_free(pixels);
        return NULL;
    }
    g_signal_connect(image, "postclose", G_CALLBACK(free_pixels), pixels);
    image->Type = like->Type;
    image->Xres = like->Xres * width / like->Xsize;
    image->Yres = like->Yres * height / like->Ysize;
    vips_image_map(like, copy_metadata, image);
    return image;
}

int qie_vips_premultiply(VipsImage *in, VipsImage **out) {
    enter();
    return leave(vips_premultiply(in, out, NULL), QIE_STAGE_TRANSFORM, "premultiply");
}

int qie_vips_unpremultiply(VipsImage *in, VipsImage **out) {
    enter();
    VipsImage *unpremultiplied = NULL;
    int status = vips_unpremultiply(in, &unpremultiplied, NULL);
    if (status == 0) {
        /* unpremultiply gives floats; back to 8 bits. */
        status = vips_cast(unpremultiplied, out, VIPS_FORMAT_UCHAR, NULL);
        g_object_unref(unpremultiplied);
    }
    return leave(status, QIE_STAGE_TRANSFORM, "unpremultiply");
}

int qie_vips_rot(VipsImage *in, VipsImage **out, int angle) {
    enter();
    return leave(vips_rot(in, out, (VipsAngle)angle, NULL), QIE_STAGE_TRANSFORM, "rot");
}

int qie_vips_flip(VipsImage *in, VipsImage **out, int direction) {
    enter();
    return leave(vips_flip(in, out, (VipsDirection)direction, NULL), QIE_STAGE_TRANSFORM, "flip");
}

int qie_vips_extract_area(VipsImage *in, VipsImage **out, int left, int top, int width, int height) {
    enter();
    return leave(vips_extract_area(in, out, left, top, width, height, NULL), QIE_STAGE_TRANSFORM, "extract_area");
}

int qie_vips_smartcrop(VipsImage *in, VipsImage **out, int width, int height, int interesting, int *left,
                       int *top) {
    enter();
    int status = vips_smartcrop(in, out, width, height, "interesting", (VipsInteresting)interesting, NULL);
    if (status == 0) {
        /* The crop is an extract_area: its origin is recorded as a negative offset. */
        *left = -vips_image_get_xoffset(*out);
        *top = -vips_image_get_yoffset(*out);
    }
    return leave(status, QIE_STAGE_TRANSFORM, "smartcrop");
}

int qie_vips_embed(VipsImage *in, VipsImage **out, int x, int y, int width, int height, int extend,
                   const double *background, int n) {
    enter();
    int status;
    if (extend == VIPS_EXTEND_BACKGROUND && background != NULL && n > 0) {
        VipsArrayDouble *array = vips_array_double_new(background, n);
        status = vips_embed(in, out, x, y, width, height,
                            "extend", VIPS_EXTEND_BACKGROUND, "background", array, NULL);
        vips_area_unref(VIPS_AREA(array));
    } else {
        status = vips_embed(in, out, x, y, width, height, "extend", (VipsExtend)extend, NULL);
    }
    return leave(status, QIE_STAGE_TRANSFORM, "embed");
}

int qie_vips_flatten(VipsImage *in, VipsImage **out, const double *background, int n) {
    enter();
    VipsArrayDouble *array = vips_array_double_new(background, n);
    int status = vips_flatten(in, out, "background", array, NULL);
    vips_area_unref(VIPS_AREA(array));
    return leave(status, QIE_STAGE_TRANSFORM, "flatten");
}

int qie_vips_add_alpha(VipsImage *in, VipsImage **out) {
    enter();
    return leave(vips_bandjoin_const1(in, out, 255.0, NULL), QIE_STAGE_TRANSFORM, "bandjoin_const");
}

int qie_vips_gaussblur(VipsImage *in, VipsImage **out, double sigma) {
    enter();
    return leave(vips_gaussblur(in, out, sigma, NULL), QIE_STAGE_TRANSFORM, "gaussblur");
}

int qie_vips_composite_over(VipsImage *base, VipsImage *overlay, VipsImage **out, int x, int y) {
    enter();
    return leave(vips_composite2(base, overlay, out, VIPS_BLEND_MODE_OVER, "x", x, "y", y, NULL), QIE_STAGE_TRANSFORM, "composite2");
}

int qie_vips_insert(VipsImage *main, VipsImage *sub, VipsImage **out, int x, int y) {
    enter();
    return leave(vips_insert(main, sub, out, x, y, NULL), QIE_STAGE_TRANSFORM, "insert");
}

int qie_vips_extract_band(VipsImage *in, VipsImage **out, int band) {
    enter();
    return leave(vips_extract_band(in, out, band, NULL), QIE_STAGE_TRANSFORM, "extract_band");
}

int qie_vips_negate(VipsImage *in, VipsImage **out, int keep_last_band) {
    enter();
    double a[4], b[4];
    int bands = in->Bands > 4 ? 4 : in->Bands;
    for (int i = 0; i < bands; i++) {
        int keep = keep_last_band && i == bands - 1;
        a[i] = keep ? 1.0 : -1.0;
        b[i] = keep ? 0.0 : 255.0;
    }
    return leave(vips_linear(in, out, a, b, bands, "uchar", TRUE, NULL), QIE_STAGE_TRANSFORM, "linear");
}

int qie_vips_blend(VipsImage *weight, VipsImage *in1, VipsImage *in2, VipsImage **out) {
    enter();
    return leave(vips_ifthenelse(weight, in1, in2, out, "blend", TRUE, NULL), QIE_STAGE_TRANSFORM, "ifthenelse");
}

int qie_vips_from_pixels(const uint8_t *pixels, size_t length, int width, int height, int bands,
                         VipsImage **out) {
    if (width <= 0 || height <= 0 || bands < 1 || bands > 4 ||
        (size_t)width * (size_t)height * (size_t)bands != length) {
        char message[128];
        g_snprintf(message, sizeof(message), "pixel buffer of %zu bytes does not hold %dx%d pixels of %d bands",
                   length, width, height, bands);
        remember(QIE_STAGE_TRANSFORM, "new_from_memory", message);
        return -1;
    }
    enter();
    *out = vips_image_new_from_memory_copy(pixels, length, width, height, bands, VIPS_FORMAT_UCHAR);
    if (*out != NULL) (*out)->Type = bands >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
    return leave(*out != NULL ? 0 : -1, QIE_STAGE_TRANSFORM, "new_from_memory");
}

int qie_vips_to_pixels(VipsImage *in, void **buffer, size_t *length) {
    enter();
    *buffer = vips_image_write_to_memory(in, length);
    return leave(*buffer != NULL ? 0 : -1, QIE_STAGE_TRANSFORM, "write_to_memory");
}

int qie_vips_getpoint(VipsImage *in, int x, int y, double *values, int capacity, int *count) {
    enter();
    double *vector = NULL;
    int n = 0;
    int status = vips_getpoint(in, &vector, &n, x, y, NULL);
    if (status == 0) {
        int copied = n < capacity ? n : capacity;
        memcpy(values, vector, (size_t)copied * sizeof(double));
        *count = copied;
        g_free(vector);
    }
    return leave(status, QIE_STAGE_TRANSFORM, "getpoint");
}

int qie_vips_strip_metadata(VipsImage *in, VipsImage **out, int keep_icc) {
    enter();
    if (vips_copy(in, out, NULL) != 0) return leave(-1, QIE_STAGE_TRANSFORM, "copy");
    gchar **fields = vips_image_get_fields(*out);
    for (int i = 0; fields[i] != NULL; i++) {
        const char *name = fields[i];
        if (keep_icc && strcmp(name, VIPS_META_ICC_NAME) == 0) continue;
        /* Built-in header fields are not in the metadata table; removing them
         * is a no-op, so only real metadata goes. */
        vips_image_remove(*out, name);
    }
    g_strfreev(fields);
    return leave(0, QIE_STAGE_TRANSFORM, "copy");
}

/* `profile` (NULL for none) names an ICC profile to embed, such as libvips'
 * built-in "srgb". libvips 8.14 ignores `profile` when stripping, so with a
 * profile the image is saved unstripped: the caller has already removed all
 * other metadata, and removes the EXIF block the saver rebuilds. */
int qie_vips_jpegsave(VipsImage *in, void **buffer, size_t *length, int quality, int progressive,
                      int subsample, int optimize_coding, const char *profile) {
    enter();
    int status = vips_jpegsave_buffer(in, buffer, length,
                                      "Q", quality,
                                      "subsample_mode", subsample ? VIPS_FOREIGN_SUBSAMPLE_ON : VIPS_FOREIGN_SUBSAMPLE_OFF,
                                      "interlace", progressive ? TRUE : FALSE,
                                      "optimize_coding", optimize_coding ? TRUE : FALSE,
                                      "strip", profile ? FALSE : TRUE,
                                      "profile", profile,
                                      NULL);
    return leave(status, QIE_STAGE_SAVE, "jpegsave_buffer");
}

int qie_vips_pngsave(VipsImage *in, void **buffer, size_t *length, int compression, int progressive,
                     const char *profile) {
    enter();
    int status = vips_pngsave_buffer(in, buffer, length,
                                     "compression", compression,
                                     "interlace", progressive ? TRUE : FALSE,
                                     "strip", profile ? FALSE : TRUE,
                                     "profile", profile,
                                     NULL);
    return leave(status, QIE_STAGE_SAVE, "pngsave_buffer");
}

int qie_vips_webpsave(VipsImage *in, void **buffer, size_t *length, int quality, int lossless, int effort,
                      const char *profile) {
    enter();
    int status = vips_webpsave_buffer(in, buffer, length,
                                      "Q", quality,
                                      "lossless", lossless ? TRUE : FALSE,
                                      "effort", effort,
                                      "strip", profile ? FALSE : TRUE,
                                      "profile", profile,
                                      NULL);
    return leave(status, QIE_STAGE_SAVE, "webpsave_buffer");
}

/* AVIF declares its colour space in an nclx box (sRGB here), so it is always
 * saved stripped: libheif would otherwise add a rebuilt EXIF item. */
int qie_vips_avifsave(VipsImage *in, void **buffer, size_t *length, int quality, int lossless, int effort) {
    enter();
    int status = vips_heifsave_buffer(in, buffer, length,
                                      "Q", quality,
                                      "lossless", lossless ? TRUE : FALSE,
                                      "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
                                      "effort", effort,
                                      "strip", TRUE,
                                      NULL);
    return leave(status, QIE_STAGE_SAVE, "heifsave_buffer");
}

int qie_vips_gifsave(VipsImage *in, void **buffer, size_t *length, int effort, int progressive) {
    enter();
    int status = vips_gifsave_buffer(in, buffer, length,
                                     "effort", effort,
                                     "interlace", progressive ? TRUE : FALSE,
                                     "strip", TRUE,
                                     NULL);
    return leave(status, QIE_STAGE_SAVE, "gifsave_buffer");
}

int qie_vips_page_count(VipsImage *in) {
    int pages = 1;
    /* The type is checked first: a failing getter would add text to the
     * process-wide error buffer, where another job's failure could pick it up. */
    if (vips_image_get_typeof(in, VIPS_META_N_PAGES) != G_TYPE_INT ||
        vips_image_get_int(in, VIPS_META_N_PAGES, &pages) != 0) {
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

/* The pass-through of qie_vips_tee: each region asked of it is asked of the
 * input, handed on unchanged, and copied into the memory image `b`. */
static int tee_generate(VipsRegion *out_region, void *seq, void *a, void *b, gboolean *stop) {
    VipsRegion *in_region = seq;
    VipsImage *memory = b;
    const VipsRect *area = &out_region->valid;
    if (vips_region_prepare(in_region, area)) return -1;
    const size_t line = (size_t) VIPS_IMAGE_SIZEOF_PEL(memory) * area->width;
    for (int y = area->top; y < VIPS_RECT_BOTTOM(area); y++)
        memcpy(VIPS_IMAGE_ADDR(memory, area->left, y), VIPS_REGION_ADDR(in_region, area->left, y), line);
    return vips_region_region(out_region, in_region, area, area->left, area->top);
}

int qie_vips_tee(VipsImage *in, VipsImage **out, VipsImage **memory) {
    *out = NULL;
    *memory = NULL;
    if (in->Coding != VIPS_CODING_NONE) {
        remember(QIE_STAGE_TRANSFORM, "tee", "only uncoded pixels can be kept while they are computed");
        return -1;
    }
    enter();
    const size_t length = VIPS_IMAGE_SIZEOF_IMAGE(in);
    void *pixels = g_try_malloc(length);
    if (pixels == NULL) {
        vips_error("tee", "out of memory for a %d x %d copy", in->Xsize, in->Ysize);
        return leave(-1, QIE_STAGE_TRANSFORM, "tee");
    }
    VipsImage *kept = image_owning(pixels, length, in->Xsize, in->Ysize, in);
    if (kept == NULL) return leave(-1, QIE_STAGE_TRANSFORM, "tee");

    VipsImage *passed = vips_image_new();
    /* The pass-through holds its own references to its input and to the
     * copy it writes into, as a libvips operation's output holds its inputs. */
    g_object_ref(kept);
    vips_object_local(passed, kept);
    g_object_ref(in);
    vips_object_local(passed, in);
    if (vips_image_pipelinev(passed, VIPS_DEMAND_STYLE_ANY, in, NULL) ||
        vips_image_generate(passed, vips_start_one, tee_generate, vips_stop_one, in, kept)) {
        g_object_unref(passed);
        g_object_unref(kept);
        return leave(-1, QIE_STAGE_TRANSFORM, "tee");
    }
    *out = passed;
    *memory = kept;
    return leave(0, QIE_STAGE_TRANSFORM, "tee");
}

QIE_CLONES static void add_row(uint32_t *sums, const VipsPel *row, size_t length) {
    for (size_t i = 0; i < length; i++) sums[i] += row[i];
}

int qie_vips_box_shrink(VipsImage *in, VipsImage **out, int out_width, int out_height) {
    *out = NULL;
    if (in->BandFmt != VIPS_FORMAT_UCHAR || in->Coding != VIPS_CODING_NONE || in->Bands < 1 || in->Bands > 4 ||
        out_width < 1 || out_height < 1 || out_width > in->Xsize || out_height > in->Ysize ||
        in->Xsize / out_width > 64 || in->Ysize / out_height > 64) {
        remember(QIE_STAGE_TRANSFORM, "box_shrink", "box shrinking takes an 8-bit image to a size at most its own, at most 64 times smaller");
        return -1;
    }
    enter();
    if (vips_image_wio_input(in)) return leave(-1, QIE_STAGE_TRANSFORM, "box_shrink");
    const int bands = in->Bands, width = in->Xsize, height = in->Ysize;
    const size_t row_length = (size_t) width * bands;
    uint32_t *sums = g_malloc(row_length * sizeof(uint32_t));
    const size_t length = (size_t) out_width * out_height * bands;
    VipsPel *pixels = g_malloc(length);
    for (int oy = 0; oy < out_height; oy++) {
        const int top = (int) ((long) oy * height / out_height), bottom = (int) ((long) (oy + 1) * height / out_height);
        memset(sums, 0, row_length * sizeof(uint32_t));
        for (int y = top; y < bottom; y++) add_row(sums, VIPS_IMAGE_ADDR(in, 0, y), row_length);
        VipsPel *target = pixels + (size_t) oy * out_width * bands;
        for (int ox = 0; ox < out_width; ox++) {
            const int left = (int) ((long) ox * width / out_width), right = (int) ((long) (ox + 1) * width / out_width);
            const uint32_t count = (uint32_t) ((bottom - top) * (right - left));
            for (int b = 0; b < bands; b++) {
                uint32_t sum = 0;
                for (int x = left; x < right; x++) sum += sums[(size_t) x * bands + b];
                target[(size_t) ox * bands + b] = (VipsPel) ((sum + count / 2) / count);
            }
        }
    }
    g_free(sums);
    *out = image_owning(pixels, length, out_width, out_height, in);
    return leave(*out ? 0 : -1, QIE_STAGE_TRANSFORM, "box_shrink");
}

int qie_vips_bounds_below(VipsImage *in, int below, int *left, int *top, int *width, int *height) {
    *left = *top = *width = *height = 0;
    if (in->BandFmt != VIPS_FORMAT_UCHAR || in->Coding != VIPS_CODING_NONE || in->Bands != 1) {
        remember(QIE_STAGE_TRANSFORM, "bounds_below", "bounds are found in an 8-bit image of one band");
        return -1;
    }
    enter();
    if (vips_image_wio_input(in)) return leave(-1, QIE_STAGE_TRANSFORM, "bounds_below");
    int x0 = in->Xsize, x1 = -1, y0 = in->Ysize, y1 = -1;
    for (int y = 0; y < in->Ysize; y++) {
        const VipsPel *row = VIPS_IMAGE_ADDR(in, 0, y);
        int first = -1, last = -1;
        for (int x = 0; x < in->Xsize; x++)
            if (row[x] < below) {
                first = x;
                break;
            }
        if (first < 0) continue;
        for (int x = in->Xsize - 1; x >= first; x--)
            if (row[x] < below) {
                last = x;
                break;
            }
        if (y0 > y) y0 = y;
        y1 = y;
        if (x0 > first) x0 = first;
        if (x1 < last) x1 = last;
    }
    if (y1 >= 0) {
        *left = x0;
        *top = y0;
        *width = x1 - x0 + 1;
        *height = y1 - y0 + 1;
    }
    return leave(0, QIE_STAGE_TRANSFORM, "bounds_below");
}

/* Separable resampling computed region by region, as libvips' own
 * operations are: lazily, on its worker threads, streaming from the input.
 * libvips 8.14's horizontal reduce is scalar C (about 20 ms of CPU to take
 * a 1280x960 result back to 1024x768 with Lanczos 3) and its enlargement
 * goes through the affine transform; here each output row is computed
 * down first (the taps' rows summed across the whole row, which compilers
 * vectorise), then across, where each pixel's taps are summed two at a time
 * with SSSE3 (pmaddwd on 16-bit pairs), or in plain C elsewhere. Weights
 * are TAP_BITS fixed point; the row between the passes is rounded to 8 bits. */

typedef struct {
    int n;       /* taps per output sample, a multiple of 4 */
    int *start;  /* the first input index of each output sample, before clamping */
    int *weight; /* n per output sample, summing to TAP_ONE */
    int32_t *pairs; /* weight[2k] in the low half, weight[2k+1] in the high: n / 2 per sample */
} qie_axis;

static double resample_kernel(int kernel, double x) {
    x = fabs(x);
    if (kernel == QIE_KERNEL_CUBIC) /* Catmull-Rom, as libvips' bicubic */
        return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? ((-0.5 * x + 2.5) * x - 4) * x + 2 : 0;
    if (x == 0) return 1;
    if (x >= 3) return 0;
    const double px = M_PI * x;
    return 3 * sin(px) * sin(px / 3) / (px * px);
}

static void axis_free(qie_axis *axis) {
    if (axis == NULL) return;
    g_free(axis->start);
    g_free(axis->weight);
    g_free(axis->pairs);
    g_free(axis);
}

/* At most 8 times smaller: Lanczos 3 then takes 48 taps a sample. */
enum { QIE_RESAMPLE_MAX_TAPS = 64 };

/* The taps taking `in_size` samples to `out_size`, centres aligned
 * (x_in = (x_out + 0.5) * in / out - 0.5); a shrink widens the kernel by
 * its factor, so every input sample counts. */
static qie_axis *axis_taps(int kernel, int in_size, int out_size) {
    const double scale = (double) in_size / out_size, stretch = scale > 1 ? scale : 1;
    const double support = (kernel == QIE_KERNEL_CUBIC ? 2 : 3) * stretch;
    /* Whole groups of four taps (the AVX2 pass sums four at a time); the extra ones weigh 0. */
    int n = (int) ceil(2 * support);
    n = (n + 3) & ~3;
    qie_axis *axis = g_new0(qie_axis, 1);
    axis->n = n;
    axis->start = g_new(int, out_size);
    axis->weight = g_new0(int, (size_t) out_size * n);
    axis->pairs = g_new0(int32_t, (size_t) out_size * n / 2);
    double *w = g_new(double, n);
    for (int o = 0; o < out_size; o++) {
        const double centre = (o + 0.5) * scale - 0.5;
        const int first = (int) floor(centre - support) + 1;
        double sum = 0;
        for (int k = 0; k < n; k++) sum += w[k] = resample_kernel(kernel, (first + k - centre) / stretch);
        int *weight = axis->weight + (size_t) o * n, total = 0, largest = 0;
        for (int k = 0; k < n; k++) {
            weight[k] = (int) lround(w[k] / sum * TAP_ONE);
            total += weight[k];
            if (weight[k] > weight[largest]) largest = k;
        }
        weight[largest] += TAP_ONE - total;
        axis->start[o] = first;
        for (int k = 0; k < n; k += 2)
            axis->pairs[((size_t) o * n + k) / 2] =
                (int32_t) ((uint32_t) (uint16_t) weight[k] | (uint32_t) (uint16_t) weight[k + 1] << 16);
    }
    g_free(w);
    return axis;
}

typedef struct {
    VipsImage *in;
    qie_axis *across, *down;
} resample_state;

typedef struct {
    VipsRegion *region;
    size_t capacity; /* input columns the buffers hold */
    int32_t *sums;   /* one row down, before rounding */
    VipsPel *line;   /* one row down, rounded, `bands` per pixel */
    VipsPel *wide;   /* that row, 4 bytes per pixel, its edges extended */
} resample_sequence;

static void resample_state_free(VipsImage *image, resample_state *state) {
    axis_free(state->across);
    axis_free(state->down);
    g_free(state);
}

static void *resample_start(VipsImage *out, void *a, void *b) {
    resample_sequence *sequence = g_new0(resample_sequence, 1);
    sequence->region = vips_region_new((VipsImage *) a);
    return sequence;
}

static int resample_stop(void *vsequence, void *a, void *b) {
    resample_sequence *sequence = vsequence;
    VIPS_UNREF(sequence->region);
    g_free(sequence->sums);
    g_free(sequence->line);
    g_free(sequence->wide);
    g_free(sequence);
    return 0;
}

static inline int clamp_index(int i, int size) { return i < 0 ? 0 : i >= size ? size - 1 : i; }

/* sums[i] = the taps' rows of the input summed, weighted; line: rounded. */
QIE_CLONES static void resample_down(const VipsPel *const *rows, const int *weight, int n, int32_t *sums,
                                     VipsPel *line, size_t length) {
    for (size_t i = 0; i < length; i++) sums[i] = 0;
    for (int k = 0; k < n; k++) {
        const VipsPel *row = rows[k];
        const int w = weight[k];
        if (w == 0) continue;
        for (size_t i = 0; i < length; i++) sums[i] += w * row[i];
    }
    for (size_t i = 0; i < length; i++) line[i] = clamp_pel(sums[i]);
}

static void resample_across_plain(const VipsPel *wide, VipsPel *target, const int *start, const int32_t *pairs,
                                  int half, int width, int bands) {
    for (int x = 0; x < width; x++, target += bands) {
        const VipsPel *p = wide + (size_t) start[x] * 4;
        const int32_t *w = pairs + (size_t) x * half;
        int sums[4] = {0, 0, 0, 0};
        for (int k = 0; k < half; k++, p += 8) {
            const int w0 = (int16_t) (w[k] & 0xFFFF), w1 = (int16_t) ((uint32_t) w[k] >> 16);
            for (int b = 0; b < 4; b++) sums[b] += w0 * p[b] + w1 * p[4 + b];
        }
        for (int b = 0; b < bands; b++) target[b] = clamp_pel(sums[b]);
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
/* One output pixel's bands from the low bytes of `pixel`. Three bands are
 * stored as four bytes where another pixel follows (it overwrites the
 * fourth): one store instead of three. */
static inline void store_pixel(VipsPel *target, uint32_t pixel, int bands, int followed) {
    if (bands == 4 || (bands == 3 && followed)) {
        memcpy(target, &pixel, 4);
        return;
    }
    for (int b = 0; b < bands; b++) target[b] = (VipsPel) (pixel >> (8 * b));
}
/* Two taps of one pixel at a time: its two input pixels' 8 bytes shuffled
 * into 16-bit (first, second) pairs per band, multiplied by the taps'
 * weights and summed in pairs (pmaddwd), four bands at once. */
__attribute__((target("ssse3"))) static void resample_across_ssse3(const VipsPel *wide, VipsPel *target,
                                                                     const int *start, const int32_t *pairs,
                                                                     int half, int width, int bands) {
    const __m128i order = _mm_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7, -1);
    const __m128i half_one = _mm_set1_epi32(TAP_ONE / 2);
    for (int x = 0; x < width; x++, target += bands) {
        const VipsPel *p = wide + (size_t) start[x] * 4;
        const int32_t *w = pairs + (size_t) x * half;
        __m128i sums = half_one;
        for (int k = 0; k < half; k++, p += 8) {
            const __m128i two = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *) p), order);
            sums = _mm_add_epi32(sums, _mm_madd_epi16(two, _mm_set1_epi32(w[k])));
        }
        sums = _mm_srai_epi32(sums, TAP_BITS);
        const __m128i narrow = _mm_packs_epi32(sums, sums);
        const uint32_t pixel = (uint32_t) _mm_cvtsi128_si32(_mm_packus_epi16(narrow, narrow));
        store_pixel(target, pixel, bands, x + 1 < width);
    }
}
/* Four taps of one pixel at a time: its four input pixels' 16 bytes
 * shuffled into (first, second) pairs in the low lane and (third, fourth)
 * in the high one, multiplied by the taps' weights and summed in pairs,
 * the lanes added at the end. */
__attribute__((target("avx2"), always_inline)) static inline void across_avx2(const VipsPel *wide, VipsPel *target,
                                                                               const int *start, const int32_t *pairs,
                                                                               const int half, int width,
                                                                               const int bands) {
    const __m256i order = _mm256_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7, -1, 8, -1, 12, -1, 9,
                                           -1, 13, -1, 10, -1, 14, -1, 11, -1, 15, -1);
    const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    const __m128i half_one = _mm_set1_epi32(TAP_ONE / 2);
    for (int x = 0; x < width; x++, target += bands) {
        const VipsPel *p = wide + (size_t) start[x] * 4;
        const int32_t *w = pairs + (size_t) x * half;
        __m256i sums = _mm256_setzero_si256();
        for (int k = 0; k < half; k += 2, p += 16) {
            const __m256i four = _mm256_shuffle_epi8(
                _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) p)), order);
            const __m256i weights =
                _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *) (w + k))), spread);
            sums = _mm256_add_epi32(sums, _mm256_madd_epi16(four, weights));
        }
        __m128i total = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        total = _mm_srai_epi32(_mm_add_epi32(total, half_one), TAP_BITS);
        const __m128i narrow = _mm_packs_epi32(total, total);
        const uint32_t pixel = (uint32_t) _mm_cvtsi128_si32(_mm_packus_epi16(narrow, narrow));
        store_pixel(target, pixel, bands, x + 1 < width);
    }
}
/* The commonest shapes with their counts known to the compiler (no loop
 * over the taps, one store per pixel): colour, 4 taps (the cubic enlarging,
 * Lanczos 3 up to a third smaller) or 8 (Lanczos 3 up to two thirds). */
__attribute__((target("avx2"))) static void resample_across_avx2(const VipsPel *wide, VipsPel *target,
                                                                   const int *start, const int32_t *pairs,
                                                                   int half, int width, int bands) {
    if (bands == 3 && half == 2) across_avx2(wide, target, start, pairs, 2, width, 3);
    else if (bands == 3 && half == 4) across_avx2(wide, target, start, pairs, 4, width, 3);
    else across_avx2(wide, target, start, pairs, half, width, bands);
}
static int has_avx2(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("avx2") ? 1 : 0;
    return known;
}
static int has_ssse3(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("ssse3") ? 1 : 0;
    return known;
}
/* Four 3-byte pixels at a time into 4-byte ones; the last few in plain C,
 * so no load reads past the line. */
__attribute__((target("ssse3"))) static void widen_three_ssse3(const VipsPel *line, VipsPel *wide, int count) {
    const __m128i spread = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    int i = 0;
    for (; i + 6 <= count; i += 4, line += 12, wide += 16)
        _mm_storeu_si128((__m128i *) wide, _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *) line), spread));
    for (; i < count; i++, line += 3, wide += 4) {
        wide[0] = line[0];
        wide[1] = line[1];
        wide[2] = line[2];
        wide[3] = 0;
    }
}
#endif

static void widen_three_plain(const VipsPel *line, VipsPel *wide, int count) {
    for (int i = 0; i < count; i++, line += 3, wide += 4) {
        wide[0] = line[0];
        wide[1] = line[1];
        wide[2] = line[2];
        wide[3] = 0;
    }
}

static void widen_three(const VipsPel *line, VipsPel *wide, int count) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (has_ssse3()) {
        widen_three_ssse3(line, wide, count);
        return;
    }
#endif
    widen_three_plain(line, wide, count);
}

/* The across pass chosen for tests (qie_vips_resample_use); 0: the fastest. */
static int chosen_pass;

int qie_vips_resample_use(int pass) {
    int available = pass == 0 || pass == 1;
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (pass == 2) available = has_ssse3();
    if (pass == 3) available = has_avx2();
#endif
    if (!available) return -1;
    __atomic_store_n(&chosen_pass, pass, __ATOMIC_RELAXED);
    return 0;
}

static void resample_across(const VipsPel *wide, VipsPel *target, const int *start, const int32_t *pairs, int half,
                            int width, int bands) {
    const int pass = __atomic_load_n(&chosen_pass, __ATOMIC_RELAXED);
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (pass == 3 || (pass == 0 && has_avx2())) {
        resample_across_avx2(wide, target, start, pairs, half, width, bands);
        return;
    }
    if (pass == 2 || (pass == 0 && has_ssse3())) {
        resample_across_ssse3(wide, target, start, pairs, half, width, bands);
        return;
    }
#endif
    (void) pass;
    resample_across_plain(wide, target, start, pairs, half, width, bands);
}

/* `line` (input columns x0..x1, `bands` bytes a pixel) as 4 bytes a pixel
 * over columns low..high, the columns outside x0..x1 copies of its edges. */
static void widen(const VipsPel *line, VipsPel *wide, int low, int high, int x0, int x1, int bands) {
    VipsPel edge[4] = {0, 0, 0, 0};
    memcpy(edge, line, bands);
    for (int c = low; c < x0; c++, wide += 4) memcpy(wide, edge, 4);
    const int count = x1 - x0 + 1;
    if (bands == 4) {
        memcpy(wide, line, (size_t) count * 4);
    } else if (bands == 3) {
        widen_three(line, wide, count);
    } else {
        for (int i = 0; i < count; i++)
            for (int b = 0; b < 4; b++) wide[i * 4 + b] = b < bands ? line[i * bands + b] : 0;
    }
    wide += (size_t) count * 4;
    memset(edge, 0, sizeof(edge));
    memcpy(edge, line + (size_t) (count - 1) * bands, bands);
    for (int c = x1 + 1; c <= high; c++, wide += 4) memcpy(wide, edge, 4);
}

static int resample_generate(VipsRegion *out_region, void *vsequence, void *a, void *b, gboolean *stop) {
    resample_sequence *sequence = vsequence;
    const resample_state *state = b;
    const VipsImage *in = state->in;
    const qie_axis *across = state->across, *down = state->down;
    const VipsRect *area = &out_region->valid;
    const int bands = in->Bands, right = VIPS_RECT_RIGHT(area) - 1, bottom = VIPS_RECT_BOTTOM(area) - 1;
    /* The input columns the area's taps reach, before and after clamping. */
    const int low = across->start[area->left], high = across->start[right] + across->n - 1;
    const int x0 = clamp_index(low, in->Xsize), x1 = clamp_index(high, in->Xsize);
    const int y0 = clamp_index(down->start[area->top], in->Ysize);
    const int y1 = clamp_index(down->start[bottom] + down->n - 1, in->Ysize);
    VipsRect need = {x0, y0, x1 - x0 + 1, y1 - y0 + 1};
    if (vips_region_prepare(sequence->region, &need)) return -1;

    const size_t columns = (size_t) (x1 - x0 + 1), span = (size_t) (high - low + 1);
    if (sequence->capacity < columns || sequence->capacity < span) {
        const size_t capacity = MAX(columns, span);
        g_free(sequence->sums);
        g_free(sequence->line);
        g_free(sequence->wide);
        sequence->sums = g_new(int32_t, capacity * bands);
        sequence->line = g_new(VipsPel, capacity * bands);
        /* 8 bytes of slack: the last pair's load reads whole pixels only, but keep loads inside. */
        sequence->wide = g_new0(VipsPel, capacity * 4 + 8);
        sequence->capacity = capacity;
    }
    const VipsPel *rows[QIE_RESAMPLE_MAX_TAPS];
    const int half = across->n / 2;
    for (int y = area->top; y <= bottom; y++) {
        const int *weight = down->weight + (size_t) y * down->n;
        for (int k = 0; k < down->n; k++)
            rows[k] = VIPS_REGION_ADDR(sequence->region, x0, clamp_index(down->start[y] + k, in->Ysize));
        resample_down(rows, weight, down->n, sequence->sums, sequence->line, columns * bands);
        /* The row across every column the taps reach, 4 bytes a pixel, edges extended. */
        widen(sequence->line, sequence->wide, low, high, x0, x1, bands);
        /* Each output pixel's first tap, relative to the row's first column. */
        VipsPel *target = VIPS_REGION_ADDR(out_region, area->left, y);
        int offsets[64];
        for (int x = area->left; x <= right; x += 64) {
            const int count = MIN(64, right - x + 1);
            for (int i = 0; i < count; i++) offsets[i] = across->start[x + i] - low;
            resample_across(sequence->wide, target + (size_t) (x - area->left) * bands, offsets,
                            across->pairs + (size_t) x * half, half, count, bands);
        }
    }
    return 0;
}

int qie_vips_resample(VipsImage *in, VipsImage **out, int width, int height, int kernel) {
    *out = NULL;
    if (in->BandFmt != VIPS_FORMAT_UCHAR || in->Coding != VIPS_CODING_NONE || in->Bands < 1 || in->Bands > 4 ||
        width < 1 || height < 1 || (kernel != QIE_KERNEL_CUBIC && kernel != QIE_KERNEL_LANCZOS3) ||
        in->Xsize > 8 * width || in->Ysize > 8 * height) {
        remember(QIE_STAGE_TRANSFORM, "resample",
                 "resampling takes an 8-bit image of 1 to 4 bands, to at least an eighth of its size");
        return -1;
    }
    enter();
    resample_state *state = g_new0(resample_state, 1);
    state->in = in;
    state->across = axis_taps(kernel, in->Xsize, width);
    state->down = axis_taps(kernel, in->Ysize, height);
    VipsImage *image = vips_image_new();
    g_signal_connect(image, "postclose", G_CALLBACK(resample_state_free), state);
    /* The image holds its input until it closes. */
    g_object_ref(in);
    vips_object_local(image, in);
    if (vips_image_pipelinev(image, VIPS_DEMAND_STYLE_FATSTRIP, in, NULL)) {
        g_object_unref(image);
        return leave(-1, QIE_STAGE_TRANSFORM, "resample");
    }
    image->Xres = in->Xres * width / in->Xsize;
    image->Yres = in->Yres * height / in->Ysize;
    image->Xsize = width;
    image->Ysize = height;
    if (vips_image_generate(image, resample_start, resample_generate, resample_stop, in, state)) {
        g_object_unref(image);
        return leave(-1, QIE_STAGE_TRANSFORM, "resample");
    }
    *out = image;
    return leave(0, QIE_STAGE_TRANSFORM, "resample");
}
