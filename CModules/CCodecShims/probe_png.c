#include "qie_codec.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

/* State shared with libpng's callbacks. libpng's own jmp_buf (png_jmpbuf) is
 * what its errors jump to; this struct only carries what the callbacks learn. */
typedef struct {
    const uint8_t *data;
    size_t length;
    size_t position;
    int ran_out;
    int animated;
    uint32_t frames;
    char message[160];
} png_probe_state;

static void probe_png_error(png_structp png, png_const_charp message) {
    png_probe_state *state = (png_probe_state *)png_get_error_ptr(png);
    snprintf(state->message, sizeof(state->message), "%s", message ? message : "unknown libpng error");
    png_longjmp(png, 1);
}

static void probe_png_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message; /* warnings never reach stderr */
}

static void probe_png_read(png_structp png, png_bytep out, size_t count) {
    png_probe_state *state = (png_probe_state *)png_get_io_ptr(png);
    if (count > state->length - state->position) {
        state->ran_out = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(out, state->data + state->position, count);
    state->position += count;
}

static int probe_png_chunk(png_structp png, png_unknown_chunkp chunk) {
    png_probe_state *state = (png_probe_state *)png_get_user_chunk_ptr(png);
    if (memcmp(chunk->name, "acTL", 4) == 0 && chunk->size >= 8) {
        const uint8_t *d = chunk->data;
        state->animated = 1;
        state->frames = ((uint32_t)d[0] << 24) | ((uint32_t)d[1] << 16) | ((uint32_t)d[2] << 8) | d[3];
    }
    return 1; /* handled: libpng keeps no copy */
}

qie_probe_status qie_probe_png(const uint8_t *data, size_t length, qie_image_header *out) {
    memset(out, 0, sizeof(*out));
    out->orientation = 1;
    if (length < 8) return QIE_PROBE_NEED_MORE_DATA;
    if (png_sig_cmp(data, 0, 8) != 0) {
        snprintf(out->error, sizeof(out->error), "not a PNG signature");
        return QIE_PROBE_INVALID;
    }

    png_probe_state state;
    memset(&state, 0, sizeof(state));
    state.data = data;
    state.length = length;

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, probe_png_error, probe_png_warning);
    if (png == NULL) {
        snprintf(out->error, sizeof(out->error), "libpng could not allocate a reader");
        return QIE_PROBE_INVALID;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(out->error, sizeof(out->error), "libpng could not allocate a reader");
        return QIE_PROBE_INVALID;
    }

    /* Volatile: read after a longjmp. */
    volatile qie_probe_status result = QIE_PROBE_OK;
    if (setjmp(png_jmpbuf(png))) {
        if (state.ran_out) {
            result = QIE_PROBE_NEED_MORE_DATA;
        } else {
            snprintf(out->error, sizeof(out->error), "invalid PNG header: %s", state.message);
            result = QIE_PROBE_INVALID;
        }
        png_destroy_read_struct(&png, &info, NULL);
        return result;
    }

    /* Dimensions are judged by the caller's limits, not by libpng's defaults,
     * so a huge header is reported with its real size. Nothing is allocated
     * for pixels: only the chunks before the first IDAT are read. */
    png_set_user_limits(png, 0x7fffffffU, 0x7fffffffU);
    png_set_read_fn(png, &state, probe_png_read);
    static const png_byte actl[5] = {'a', 'c', 'T', 'L', '\0'};
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_ALWAYS, actl, 1);
    png_set_read_user_chunk_fn(png, &state, probe_png_chunk);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, colour_type = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &colour_type, NULL, NULL, NULL);
    int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;

    out->width = width;
    out->height = height;
    out->bit_depth = bit_depth;
    switch (colour_type) {
    case PNG_COLOR_TYPE_GRAY:
        out->colour_model = QIE_COLOUR_GREY;
        out->channels = has_trns ? 2 : 1;
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        out->colour_model = QIE_COLOUR_GREY_ALPHA;
        out->channels = 2;
        break;
    case PNG_COLOR_TYPE_PALETTE:
        out->colour_model = QIE_COLOUR_PALETTE;
        out->channels = has_trns ? 4 : 3;
        break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
        out->colour_model = QIE_COLOUR_RGBA;
        out->channels = 4;
        break;
    default:
        out->colour_model = QIE_COLOUR_RGB;
        out->channels = has_trns ? 4 : 3;
        break;
    }
    out->has_alpha = (colour_type & PNG_COLOR_MASK_ALPHA) != 0 || has_trns;
    out->has_icc_profile = png_get_valid(png, info, PNG_INFO_iCCP) != 0;
    out->is_animated = state.animated && state.frames > 1;
    out->frame_count = state.animated ? state.frames : 1;
#ifdef PNG_eXIf_SUPPORTED
    png_uint_32 exif_length = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &exif_length, &exif) != 0 && exif != NULL) {
        out->orientation = qie_exif_orientation(exif, exif_length);
    }
#endif
    png_destroy_read_struct(&png, &info, NULL);
    return QIE_PROBE_OK;
}
