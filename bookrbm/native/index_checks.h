// Checks of the entries' indices that the kernels (cd1_step.cc, bench/own_kernels.cc and
// bench/fused_step.cc) make before they read anything through them.
#ifndef BOOKRBM_NATIVE_INDEX_CHECKS_H_
#define BOOKRBM_NATIVE_INDEX_CHECKS_H_

#include <cstdint>

#include "tensorflow/core/framework/tensor_types.h"

namespace index_checks {

// every index in [0, bound): an index outside would read or write outside an array
inline bool all_below(const tensorflow::TTypes<tensorflow::int32>::ConstFlat& indices, int64_t bound) {
  for (int64_t j = 0; j < indices.size(); ++j)
    if (indices(j) < 0 || indices(j) >= bound) return false;
  return true;
}

// no index below the one before: a kernel that reads each book's (or reader's) entries as
// one run would otherwise sum other books' entries without a word
inline bool ascending(const tensorflow::TTypes<tensorflow::int32>::ConstFlat& indices) {
  for (int64_t j = 1; j < indices.size(); ++j)
    if (indices(j) < indices(j - 1)) return false;
  return true;
}

}  // namespace index_checks

#endif  // BOOKRBM_NATIVE_INDEX_CHECKS_H_
