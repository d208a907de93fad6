/*
 * Header-only probes for JPEG, PNG and WebP.
 *
 * Each probe reads the container and codec headers from a memory buffer (which
 * may be only the first part of a file) and never decodes pixels. libjpeg and
 * libpng report errors with longjmp; every longjmp lands inside these C
 * functions, so no error ever unwinds through Swift frames.
 */
#ifndef QIE_CODEC_H
#define QIE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Probe results. */
typedef enum {
    QIE_PROBE_OK = 0,
    /* The buffer ended before the header did: give the probe more of the file. */
    QIE_PROBE_NEED_MORE_DATA = 1,
    /* The header is malformed; `error` says why. */
    QIE_PROBE_INVALID = 2,
} qie_probe_status;

/* Colour models, as stored in the file. */
typedef enum {
    QIE_COLOUR_UNKNOWN = 0,
    QIE_COLOUR_GREY = 1,
    QIE_COLOUR_GREY_ALPHA = 2,
    QIE_COLOUR_RGB = 3,
    QIE_COLOUR_RGBA = 4,
    QIE_COLOUR_PALETTE = 5,
    QIE_COLOUR_CMYK = 6,
    QIE_COLOUR_YCCK = 7,
    QIE_COLOUR_YCBCR = 8,
} qie_colour_model;

typedef struct {
    uint32_t width;
    uint32_t height;
    /* Samples per pixel once decoded (palette counts as RGB, or RGBA with tRNS). */
    int channels;
    /* Bits per sample as stored (PNG 1-16, JPEG 8 or 12, WebP 8). */
    int bit_depth;
    int has_alpha;
    int is_animated;
    /* Frames of an animation when the header states it, else 0. */
    uint32_t frame_count;
    /* EXIF orientation 1-8; 1 when absent or invalid. */
    int orientation;
    int colour_model;
    int is_progressive;
    int has_icc_profile;
    /* A human-readable reason when the status is QIE_PROBE_INVALID. */
    char error[200];
} qie_image_header;

qie_probe_status qie_probe_jpeg(const uint8_t *data, size_t length, qie_image_header *out);
qie_probe_status qie_probe_png(const uint8_t *data, size_t length, qie_image_header *out);
qie_probe_status qie_probe_webp(const uint8_t *data, size_t length, qie_image_header *out);

/*
 * Reads the orientation tag (0x0112) from a TIFF-structured EXIF block (the
 * bytes after "Exif\0\0" in a JPEG APP1 segment, or a PNG eXIf / WebP EXIF
 * chunk, with or without that prefix). Returns 1-8, or 1 when the tag is
 * missing or the block is malformed. Every offset is bounds-checked.
 */
int qie_exif_orientation(const uint8_t *exif, size_t length);

/*
 * Rewrites a WebP file without its EXIF and XMP chunks (and ICC profile unless
 * keep_icc), through libwebpmux. Some libvips releases write a rebuilt EXIF
 * chunk even when told to strip metadata. On success *out is malloc'd (free it
 * with free()) and 0 is returned; -1 means the file could not be parsed.
 */
int qie_webp_strip_metadata(const uint8_t *data, size_t length, int keep_icc, uint8_t **out, size_t *out_length);

#ifdef __cplusplus
}
#endif

#endif
