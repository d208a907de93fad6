#include "qie_codec.h"

#include <string.h>

static uint32_t read_u16(const uint8_t *p, int little) {
    return little ? (uint32_t)(p[0] | (p[1] << 8)) : (uint32_t)((p[0] << 8) | p[1]);
}

static uint32_t read_u32(const uint8_t *p, int little) {
    return little ? ((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24))
                  : (((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3]);
}

int qie_exif_orientation(const uint8_t *exif, size_t length) {
    if (exif == NULL) return 1;
    if (length >= 6 && memcmp(exif, "Exif\0\0", 6) == 0) {
        exif += 6;
        length -= 6;
    }
    if (length < 8) return 1;
    int little;
    if (exif[0] == 'I' && exif[1] == 'I') little = 1;
    else if (exif[0] == 'M' && exif[1] == 'M') little = 0;
    else return 1;
    if (read_u16(exif + 2, little) != 42) return 1;
    uint32_t ifd = read_u32(exif + 4, little);
    if (ifd > length - 2 || ifd < 8) return 1;
    uint32_t count = read_u16(exif + ifd, little);
    size_t entries = (size_t)ifd + 2;
    for (uint32_t i = 0; i < count; i++) {
        size_t entry = entries + (size_t)i * 12;
        if (entry + 12 > length) return 1;
        uint32_t tag = read_u16(exif + entry, little);
        if (tag != 0x0112) continue;
        uint32_t type = read_u16(exif + entry + 2, little);
        uint32_t n = read_u32(exif + entry + 4, little);
        uint32_t value;
        if (type == 3 && n >= 1) value = read_u16(exif + entry + 8, little);      /* SHORT */
        else if (type == 4 && n >= 1) value = read_u32(exif + entry + 8, little); /* LONG */
        else return 1;
        return (value >= 1 && value <= 8) ? (int)value : 1;
    }
    return 1;
}
