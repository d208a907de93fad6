/* libFuzzer target for the header probes and the WebP metadata remover: every
 * input must return, never crash or read out of bounds. Built and run by
 * scripts/fuzz-probes.sh (not part of `swift test`). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "qie_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qie_image_header header;
    qie_probe_jpeg(data, size, &header);
    qie_probe_png(data, size, &header);
    qie_probe_webp(data, size, &header);
    qie_exif_orientation(data, size);
    uint8_t *out = NULL;
    size_t length = 0;
    if (qie_webp_strip_metadata(data, size, 0, &out, &length) == 0) free(out);
    return 0;
}
