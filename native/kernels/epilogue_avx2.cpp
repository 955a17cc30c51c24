// Epilogue loops compiled for AVX2 (see epilogue_impl.hpp).
#include "kernels/epilogue_impl.hpp"

namespace aiov {
namespace epilogue_detail {
#if defined(__AVX2__)
RowFn avx2_row() { return &epilogue_row; }
#else
RowFn avx2_row() { return nullptr; }
#endif
}  // namespace epilogue_detail
}  // namespace aiov
