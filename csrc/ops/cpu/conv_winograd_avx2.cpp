// The Winograd tile transforms compiled with -mavx2 -mfma (see conv_winograd_tiles.h).
#define CNNOPS_ISA avx2
#include "ops/cpu/conv_winograd_tiles.h"
