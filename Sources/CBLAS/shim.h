/* OpenBLAS's CBLAS interface plus its extensions (thread count, core name, config).
 * Only Sources/HMSTCore/Tensor/BLAS.swift calls into this module. */
#include <cblas.h>
