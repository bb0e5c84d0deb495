#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/cuda_info.h"

namespace sc {

CudaInfo cuda_info() {
  CudaInfo info;
  info.compiled = true;
#ifdef SYNTHCORE_CUDA_ARCHS
  info.archs = SYNTHCORE_CUDA_ARCHS;
#endif
  cudaRuntimeGetVersion(&info.runtime_version);
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  cudaError_t err = cudaGetDeviceCount(&info.device_count);
  if (err != cudaSuccess) {
    info.device_count = 0;
    info.error = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
  }
  return info;
}

void cuda_check(int err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(static_cast<cudaError_t>(err)));
  }
}

CudaDeviceScope::CudaDeviceScope(int device) {
  cuda_check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ != device) cuda_check(cudaSetDevice(device), "cudaSetDevice");
}

CudaDeviceScope::~CudaDeviceScope() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_ && previous_ >= 0) cudaSetDevice(previous_);
}

}  // namespace sc
