// The depthwise row kernels compiled with -mavx2 -mfma (see conv_depthwise_rows.h).
#define CNNOPS_ISA avx2
#include "ops/cpu/conv_depthwise_rows.h"
