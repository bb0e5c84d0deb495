#pragma once
#include <cstdint>
#include <string>

namespace sc {

struct CudaInfo {
  bool compiled = false;
  std::string archs;
  int runtime_version = 0;
  int driver_version = 0;
  int device_count = 0;
  std::string error;  // why no device is usable, if none is
};

CudaInfo cuda_info();

#ifdef SYNTHCORE_WITH_CUDA
// Throws std::runtime_error with the CUDA error string if `err` is not success.
void cuda_check(int err, const char* what);
// Makes `device` current for the scope, restoring the previous device afterwards.
class CudaDeviceScope {
 public:
  explicit CudaDeviceScope(int device);
  ~CudaDeviceScope();

 private:
  int previous_ = -1;
};
#endif

}  // namespace sc
