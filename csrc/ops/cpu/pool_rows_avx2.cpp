// The sum-pooling row kernels of pool_rows.h compiled with -mavx2 -mfma.
#define CNNOPS_ISA avx2
#include "ops/cpu/pool_rows.h"
