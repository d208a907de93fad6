#ifndef QIE_CWEBP_SHIM_H
#define QIE_CWEBP_SHIM_H
#include <webp/decode.h>
#include <webp/mux.h>
#endif
