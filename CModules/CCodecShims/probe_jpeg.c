#include "qie_codec.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>

/* libjpeg's error manager extended with our jump target. Errors longjmp back
 * into qie_probe_jpeg; warnings and messages are kept, never printed. */
typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_probe_error;

/* A memory source that, unlike jpeg_mem_src, tells us when the buffer ran out,
 * so the caller can retry with more of the file. */
typedef struct {
    struct jpeg_source_mgr base;
    int ran_out;
} jpeg_probe_source;

static const JOCTET fake_eoi[2] = {0xFF, JPEG_EOI};

static void probe_jpeg_error_exit(j_common_ptr cinfo) {
    jpeg_probe_error *error = (jpeg_probe_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, error->message);
    longjmp(error->jump, 1);
}

static void probe_jpeg_output_message(j_common_ptr cinfo) {
    (void)cinfo;
}

static void probe_source_init(j_decompress_ptr cinfo) {
    (void)cinfo;
}

static boolean probe_source_fill(j_decompress_ptr cinfo) {
    jpeg_probe_source *source = (jpeg_probe_source *)cinfo->src;
    source->ran_out = 1;
    source->base.next_input_byte = fake_eoi;
    source->base.bytes_in_buffer = 2;
    return TRUE;
}

static void probe_source_skip(j_decompress_ptr cinfo, long count) {
    struct jpeg_source_mgr *source = cinfo->src;
    if (count <= 0) return;
    if ((size_t)count > source->bytes_in_buffer) {
        ((jpeg_probe_source *)source)->ran_out = 1;
        source->next_input_byte = fake_eoi;
        source->bytes_in_buffer = 2;
        return;
    }
    source->next_input_byte += count;
    source->bytes_in_buffer -= (size_t)count;
}

static void probe_source_term(j_decompress_ptr cinfo) {
    (void)cinfo;
}

qie_probe_status qie_probe_jpeg(const uint8_t *data, size_t length, qie_image_header *out) {
    memset(out, 0, sizeof(*out));
    out->orientation = 1;
    if (length < 4) return QIE_PROBE_NEED_MORE_DATA;

    struct jpeg_decompress_struct cinfo;
    jpeg_probe_error error;
    jpeg_probe_source source;
    memset(&cinfo, 0, sizeof(cinfo));
    memset(&source, 0, sizeof(source));

    cinfo.err = jpeg_std_error(&error.base);
    error.base.error_exit = probe_jpeg_error_exit;
    error.base.output_message = probe_jpeg_output_message;
    error.message[0] = '\0';

    if (setjmp(error.jump)) {
        int ran_out = source.ran_out;
        jpeg_destroy_decompress(&cinfo);
        if (ran_out) return QIE_PROBE_NEED_MORE_DATA;
        snprintf(out->error, sizeof(out->error), "invalid JPEG header: %s", error.message);
        return QIE_PROBE_INVALID;
    }

    jpeg_create_decompress(&cinfo);
    source.base.init_source = probe_source_init;
    source.base.fill_input_buffer = probe_source_fill;
    source.base.skip_input_data = probe_source_skip;
    source.base.resync_to_restart = jpeg_resync_to_restart;
    source.base.term_source = probe_source_term;
    source.base.next_input_byte = data;
    source.base.bytes_in_buffer = length;
    cinfo.src = &source.base;

    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 2, 0xFFFF);

    int header = jpeg_read_header(&cinfo, TRUE);
    if (source.ran_out || header != JPEG_HEADER_OK) {
        jpeg_destroy_decompress(&cinfo);
        if (source.ran_out) return QIE_PROBE_NEED_MORE_DATA;
        snprintf(out->error, sizeof(out->error), "invalid JPEG header: no image in the stream");
        return QIE_PROBE_INVALID;
    }

    out->width = cinfo.image_width;
    out->height = cinfo.image_height;
    out->channels = cinfo.num_components;
    out->bit_depth = cinfo.data_precision;
    out->is_progressive = cinfo.progressive_mode ? 1 : 0;
    out->frame_count = 1;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: out->colour_model = QIE_COLOUR_GREY; break;
    case JCS_CMYK: out->colour_model = QIE_COLOUR_CMYK; break;
    case JCS_YCCK: out->colour_model = QIE_COLOUR_YCCK; break;
    case JCS_RGB: out->colour_model = QIE_COLOUR_RGB; break;
    case JCS_YCbCr: out->colour_model = QIE_COLOUR_YCBCR; break;
    default: out->colour_model = QIE_COLOUR_UNKNOWN; break;
    }
    for (jpeg_saved_marker_ptr marker = cinfo.marker_list; marker != NULL; marker = marker->next) {
        if (marker->marker == JPEG_APP0 + 1 && marker->data_length >= 6 && memcmp(marker->data, "Exif\0\0", 6) == 0) {
            out->orientation = qie_exif_orientation(marker->data, marker->data_length);
        } else if (marker->marker == JPEG_APP0 + 2 && marker->data_length >= 12 &&
                   memcmp(marker->data, "ICC_PROFILE\0", 12) == 0) {
            out->has_icc_profile = 1;
        }
    }
    jpeg_destroy_decompress(&cinfo);
    return QIE_PROBE_OK;
}
