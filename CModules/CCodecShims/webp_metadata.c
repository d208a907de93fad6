#include "qie_codec.h"

#include <stdlib.h>
#include <string.h>
#include <webp/mux.h>

int qie_webp_strip_metadata(const uint8_t *data, size_t length, int keep_icc, uint8_t **out, size_t *out_length) {
    *out = NULL;
    *out_length = 0;
    WebPData input = {data, length};
    WebPMux *mux = WebPMuxCreate(&input, 0);
    if (mux == NULL) return -1;
    WebPMuxDeleteChunk(mux, "EXIF");
    WebPMuxDeleteChunk(mux, "XMP ");
    if (!keep_icc) WebPMuxDeleteChunk(mux, "ICCP");
    WebPData assembled;
    WebPDataInit(&assembled);
    WebPMuxError status = WebPMuxAssemble(mux, &assembled);
    WebPMuxDelete(mux);
    if (status != WEBP_MUX_OK) {
        WebPDataClear(&assembled);
        return -1;
    }
    /* Hand back a malloc'd copy so the caller frees it with free(). */
    uint8_t *copy = malloc(assembled.size);
    if (copy == NULL) {
        WebPDataClear(&assembled);
        return -1;
    }
    memcpy(copy, assembled.bytes, assembled.size);
    *out = copy;
    *out_length = assembled.size;
    WebPDataClear(&assembled);
    return 0;
}
