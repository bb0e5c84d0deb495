#include "common/tensor_view.h"

#include <sstream>

namespace sc {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i64: return "int64";
    default: return "unsupported";
  }
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f16:
    case DType::bf16: return 2;
    case DType::f32: return 4;
    case DType::f64:
    case DType::i64: return 8;
    default: return 1;
  }
}

int64_t View::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool View::is_contiguous() const {
  if (numel() == 0) return true;  // strides of an empty tensor are arbitrary and never read
  int64_t expected = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

bool View::is_channels_last() const {
  if (ndim != 4) return false;
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (int i : {1, 3, 2, 0}) {  // C fastest, then W, H, N
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

std::string View::shape_str() const {
  std::ostringstream s;
  s << "[";
  for (int i = 0; i < ndim; ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

std::string View::device_str() const {
  switch (device) {
    case Dev::cpu: return "cpu";
    case Dev::cuda: return "cuda:" + std::to_string(device_id);
    default: return "unsupported device";
  }
}

static DType parse_dtype(const dl::DataType& t) {
  if (t.lanes != 1) return DType::other;
  if (t.code == dl::kFloat && t.bits == 16) return DType::f16;
  if (t.code == dl::kFloat && t.bits == 32) return DType::f32;
  if (t.code == dl::kFloat && t.bits == 64) return DType::f64;
  if (t.code == dl::kBfloat && t.bits == 16) return DType::bf16;
  if (t.code == dl::kInt && t.bits == 64) return DType::i64;
  return DType::other;
}

Borrowed::Borrowed(const py::object& obj, const char* name) {
  view_.name = name;
  py::object capsule = obj;
  if (!PyCapsule_CheckExact(obj.ptr())) {
    if (!py::hasattr(obj, "__dlpack__")) {
      throw py::type_error(std::string(name) + ": expected an array exporting __dlpack__ (a torch tensor or numpy "
                           "array) or a DLPack capsule, got " + std::string(py::str(py::type::of(obj))));
    }
    capsule = obj.attr("__dlpack__")();
  }
  if (!PyCapsule_IsValid(capsule.ptr(), "dltensor")) {
    throw py::value_error(std::string(name) + ": not an unused DLPack capsule (was it already consumed?)");
  }
  managed_ = static_cast<dl::ManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  // Taking ownership: renaming tells the capsule's destructor not to free the tensor; we call the deleter.
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");
  PyCapsule_SetDestructor(capsule.ptr(), nullptr);

  const dl::Tensor& t = managed_->dl_tensor;
  if (t.ndim < 0 || t.ndim > kMaxDims) {
    throw py::value_error(std::string(name) + ": rank " + std::to_string(t.ndim) + " is not supported");
  }
  view_.ndim = t.ndim;
  view_.data = static_cast<char*>(t.data) + t.byte_offset;
  view_.dtype = parse_dtype(t.dtype);
  view_.device_id = t.device.device_id;
  switch (t.device.device_type) {
    case dl::kCPU:
    case dl::kCUDAHost: view_.device = Dev::cpu; break;
    case dl::kCUDA:
    case dl::kCUDAManaged: view_.device = Dev::cuda; break;
    default: view_.device = Dev::other;
  }
  int64_t stride = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    view_.shape[i] = t.shape[i];
    view_.strides[i] = t.strides ? t.strides[i] : stride;
    stride *= t.shape[i];
  }
}

Borrowed::~Borrowed() {
  if (managed_ && managed_->deleter) managed_->deleter(managed_);
}

void require_ndim(const View& v, int ndim) {
  if (v.ndim != ndim) {
    throw py::value_error(v.name + ": expected a " + std::to_string(ndim) + "-D tensor, got shape " + v.shape_str());
  }
}

void require_ndim_in(const View& v, int lo, int hi) {
  if (v.ndim < lo || v.ndim > hi) {
    throw py::value_error(v.name + ": expected a tensor with " + std::to_string(lo) + " to " + std::to_string(hi) +
                          " dimensions, got shape " + v.shape_str());
  }
}

void require_float_dtype(const View& v, bool allow_half) {
  bool ok = v.dtype == DType::f32 || v.dtype == DType::f64 ||
            (allow_half && (v.dtype == DType::f16 || v.dtype == DType::bf16));
  if (!ok) {
    throw py::type_error(v.name + ": dtype " + dtype_name(v.dtype) + " is not supported on " + v.device_str() +
                         (allow_half ? " (float16, bfloat16, float32, float64 are)" : " (float32, float64 are)"));
  }
}

void require_same_dtype(const View& a, const View& b) {
  if (a.dtype != b.dtype) {
    throw py::type_error(b.name + ": dtype " + dtype_name(b.dtype) + " does not match " + a.name + " (" +
                         dtype_name(a.dtype) + ")");
  }
}

void require_same_device(const View& a, const View& b) {
  if (a.device != b.device || (a.device == Dev::cuda && a.device_id != b.device_id)) {
    throw py::value_error(b.name + " is on " + b.device_str() + " but " + a.name + " is on " + a.device_str());
  }
}

void require_contiguous(const View& v) {
  if (!v.is_contiguous()) throw py::value_error(v.name + ": must be contiguous (row-major)");
}

const char* layout_name(Layout l) { return l == Layout::nchw ? "contiguous (NCHW)" : "channels_last (NHWC)"; }

Layout activation_layout(const View& v) {
  require_ndim(v, 4);
  if (v.is_contiguous()) return Layout::nchw;
  if (!v.is_channels_last()) throw py::value_error(v.name + ": must be contiguous (NCHW) or channels_last (NHWC)");
  if (v.device != Dev::cpu) {
    throw py::value_error(v.name + ": channels_last tensors are supported on CPU only; pass a contiguous (NCHW) "
                                   "tensor on " + v.device_str());
  }
  return Layout::nhwc;
}

void require_layout(const View& v, Layout want) {
  require_ndim(v, 4);
  const bool ok = want == Layout::nchw ? v.is_contiguous() : v.is_channels_last();
  if (!ok) throw py::value_error(v.name + ": must be " + layout_name(want) + " like the other activations");
}

void require_no_overlap(const View& out, const View& in) {
  if (out.numel() == 0 || in.numel() == 0 || out.device != in.device) return;
  auto a0 = static_cast<const char*>(out.data), a1 = a0 + out.nbytes();
  auto b0 = static_cast<const char*>(in.data), b1 = b0 + in.nbytes();
  if (a0 < b1 && b0 < a1) throw py::value_error(out.name + ": output memory overlaps input " + in.name);
}

void require_dim(const View& v, int dim, int64_t size, const char* what) {
  if (v.shape[dim] != size) {
    throw py::value_error(v.name + ": dimension " + std::to_string(dim) + " is " + std::to_string(v.shape[dim]) +
                          ", expected " + std::to_string(size) + " (" + what + ")");
  }
}

}  // namespace sc
