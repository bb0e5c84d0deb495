// A borrowed, validated view of an array handed over through DLPack.
// Kernels never see Python objects: the bindings turn each argument into a View, check it, and pass raw
// pointers and sizes on.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/dlpack_abi.h"

namespace sc {

namespace py = pybind11;

enum class DType { f16, bf16, f32, f64, i64, other };
enum class Dev { cpu, cuda, other };

const char* dtype_name(DType t);
size_t dtype_size(DType t);

constexpr int kMaxDims = 8;

struct View {
  std::string name;  // argument name, for error messages
  void* data = nullptr;
  DType dtype = DType::other;
  Dev device = Dev::other;
  int device_id = 0;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // elements

  int64_t numel() const;
  bool is_contiguous() const;
  bool is_channels_last() const;  // 4-D [N, C, H, W] stored as a dense [N, H, W, C] array
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  std::string shape_str() const;
  std::string device_str() const;
};

// Owns a consumed DLPack capsule for the duration of a call; releases the producer's memory hold on exit.
class Borrowed {
 public:
  Borrowed(const py::object& obj, const char* name);
  ~Borrowed();
  Borrowed(const Borrowed&) = delete;
  Borrowed& operator=(const Borrowed&) = delete;
  const View& view() const { return view_; }

 private:
  dl::ManagedTensor* managed_ = nullptr;
  View view_;
};

// Argument checks. Each raises ValueError/TypeError naming the argument.
void require_ndim(const View& v, int ndim);
void require_ndim_in(const View& v, int lo, int hi);
void require_float_dtype(const View& v, bool allow_half);
void require_same_dtype(const View& a, const View& b);
void require_same_device(const View& a, const View& b);
void require_contiguous(const View& v);

// The two dense layouts a 4-D [N, C, H, W] activation may have. A tensor that is both (C == 1 or H * W == 1)
// counts as NCHW.
enum class Layout { nchw, nhwc };
// NCHW-contiguous, or channels_last on CPU (the only device with channels-last kernels), else ValueError.
Layout activation_layout(const View& v);
void require_layout(const View& v, Layout want);  // v is 4-D and dense in layout `want`
const char* layout_name(Layout l);
void require_no_overlap(const View& out, const View& in);
void require_dim(const View& v, int dim, int64_t size, const char* what);

}  // namespace sc
