// Epilogue loops compiled for AVX512 (see epilogue_impl.hpp).
#include "kernels/epilogue_impl.hpp"

namespace aiov {
namespace epilogue_detail {
#if defined(__AVX512F__)
RowFn avx512_row() { return &epilogue_row; }
#else
RowFn avx512_row() { return nullptr; }
#endif
}  // namespace epilogue_detail
}  // namespace aiov
