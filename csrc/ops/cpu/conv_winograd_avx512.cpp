// The Winograd tile transforms compiled with the AVX-512 flags (see conv_winograd_tiles.h).
#define CNNOPS_ISA avx512
#include "ops/cpu/conv_winograd_tiles.h"
