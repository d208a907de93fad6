#ifndef QIE_CJPEG_SHIM_H
#define QIE_CJPEG_SHIM_H
#include <stdio.h>
#include <jpeglib.h>
#endif
