// Checks of the scalar arguments of the native entry points, the counterpart of the tensor require_* checks in
// tensor_view.h. Every entry point validates every scalar it receives here, before any kernel runs, and each
// failure raises ValueError naming the argument: a nonsense value must never reach a kernel (a zero or negative
// thread count handed to `omp parallel num_threads` makes libgomp end the whole process).
#pragma once
#include <cstdint>

namespace sc {

// More threads than this is a mistake, not a machine: libgomp would try to start them all (and exit on failure).
constexpr int64_t kMaxThreads = 1024;

// threads in [1, kMaxThreads].
int require_threads(int64_t threads);
// lo <= v <= hi.
void require_range(const char* name, int64_t v, int64_t lo, int64_t hi);
// A finite number (no NaN or infinity).
void require_finite(const char* name, double v);
// A finite number >= lo (or > lo when strict).
void require_finite_at_least(const char* name, double v, double lo, bool strict = false);
// Not NaN (infinity allowed: a clamp of +inf means none).
void require_not_nan(const char* name, double v);

// 64-bit size arithmetic that refuses to overflow: ValueError naming `what` instead of a wrapped size.
int64_t checked_add(int64_t a, int64_t b, const char* what);
int64_t checked_mul(int64_t a, int64_t b, const char* what);

}  // namespace sc
