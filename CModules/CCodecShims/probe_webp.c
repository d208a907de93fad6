#include "qie_codec.h"

#include <stdio.h>
#include <string.h>
#include <webp/decode.h>

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

qie_probe_status qie_probe_webp(const uint8_t *data, size_t length, qie_image_header *out) {
    memset(out, 0, sizeof(*out));
    out->orientation = 1;
    WebPBitstreamFeatures features;
    VP8StatusCode status = WebPGetFeatures(data, length, &features);
    if (status == VP8_STATUS_NOT_ENOUGH_DATA) return QIE_PROBE_NEED_MORE_DATA;
    if (status != VP8_STATUS_OK) {
        snprintf(out->error, sizeof(out->error), "invalid WebP header (libwebp status %d)", (int)status);
        return QIE_PROBE_INVALID;
    }
    out->width = (uint32_t)features.width;
    out->height = (uint32_t)features.height;
    out->has_alpha = features.has_alpha;
    out->is_animated = features.has_animation;
    out->channels = features.has_alpha ? 4 : 3;
    out->bit_depth = 8;
    out->colour_model = features.has_alpha ? QIE_COLOUR_RGBA : QIE_COLOUR_RGB;

    /* Extended files (VP8X) may carry ICCP, ANIM/ANMF and EXIF chunks: walk them
     * within what we were given. Chunks past the buffer are simply not seen. */
    if (length >= 30 && memcmp(data + 12, "VP8X", 4) == 0) {
        uint8_t flags = data[20];
        out->has_icc_profile = (flags & 0x20) != 0;
        size_t riff_end = (size_t)le32(data + 4) + 8;
        if (riff_end > length) riff_end = length;
        size_t pos = 12;
        uint32_t frames = 0;
        while (pos + 8 <= riff_end) {
            uint32_t size = le32(data + pos + 4);
            const uint8_t *payload = data + pos + 8;
            size_t available = riff_end - (pos + 8);
            if (memcmp(data + pos, "ANMF", 4) == 0) frames++;
            if (memcmp(data + pos, "EXIF", 4) == 0 && size <= available) {
                out->orientation = qie_exif_orientation(payload, size);
            }
            size_t next = pos + 8 + (size_t)size + (size & 1);
            if (next <= pos) break;
            pos = next;
        }
        if (out->is_animated && pos >= (size_t)le32(data + 4) + 8) out->frame_count = frames;
    }
    if (!out->is_animated) out->frame_count = 1;
    return QIE_PROBE_OK;
}
