/* libnuma: node topology (numa.h) and the raw policy calls mbind/set_mempolicy (numaif.h).
 * Only Sources/HMSTCore/System/NUMA.swift calls into this module. */
#include <numa.h>
#include <numaif.h>
