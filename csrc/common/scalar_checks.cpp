#include "common/scalar_checks.h"

#include <pybind11/pybind11.h>

#include <cmath>
#include <sstream>
#include <string>

namespace sc {

namespace py = pybind11;

namespace {

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

int require_threads(int64_t threads) {
  if (threads < 1 || threads > kMaxThreads) {
    throw py::value_error("threads must be between 1 and " + std::to_string(kMaxThreads) + ", got " +
                          std::to_string(threads));
  }
  return static_cast<int>(threads);
}

void require_range(const char* name, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    throw py::value_error(std::string(name) + " must be between " + std::to_string(lo) + " and " +
                          std::to_string(hi) + ", got " + std::to_string(v));
  }
}

void require_finite(const char* name, double v) {
  if (!std::isfinite(v)) throw py::value_error(std::string(name) + " must be finite, got " + num(v));
}

void require_finite_at_least(const char* name, double v, double lo, bool strict) {
  if (!std::isfinite(v) || v < lo || (strict && v == lo)) {
    throw py::value_error(std::string(name) + " must be finite and " + (strict ? "> " : ">= ") + num(lo) +
                          ", got " + num(v));
  }
}

void require_not_nan(const char* name, double v) {
  if (std::isnan(v)) throw py::value_error(std::string(name) + " must not be NaN");
}

int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) {
    throw py::value_error(std::string(what) + ": size overflows 64-bit arithmetic (" + std::to_string(a) + " + " +
                          std::to_string(b) + ")");
  }
  return r;
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) {
    throw py::value_error(std::string(what) + ": size overflows 64-bit arithmetic (" + std::to_string(a) + " * " +
                          std::to_string(b) + ")");
  }
  return r;
}

}  // namespace sc
