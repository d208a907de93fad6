#ifndef QIE_CVIPS_SHIM_H
#define QIE_CVIPS_SHIM_H
#include <vips/vips.h>
#endif
