// The IoU-family inner loops (pairwise rows, loss chunks) compiled with -mavx2 -mfma (see boxes_rows.h).
#define CNNOPS_ISA avx2
#include "ops/cpu/boxes_rows.h"
