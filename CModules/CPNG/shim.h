#ifndef QIE_CPNG_SHIM_H
#define QIE_CPNG_SHIM_H
#include <png.h>
#endif
