// CPU upfirdn2d. Compiled once per ISA (namespace SYNTHCORE_ISA); the inner loops are written as plain
// contiguous multiply-adds so the compiler vectorises them for the target.
//
// Strategy, per image plane and block of output rows:
// - Horizontal: each input row is "prepared" once into a scratch row in which every tap reads a contiguous
//   run: padded and split into `down_x` phases (up_x == 1), kept with zero margins for polyphase reads
//   (up_x > 1, down_x == 1), or explicitly zero-inserted for the rare up_x > 1 and down_x > 1 case.
// - Separable filters: the horizontal pass writes one intermediate row per needed input row; each output
//   row is then a weighted sum of a few intermediate rows (only the taps that hit real, non-inserted rows).
// - 2-D filters: each output row sums, over the tap rows that hit real input rows, a horizontal pass of
//   that prepared input row with that tap row.
// Zero-inserted samples are never multiplied in the common cases, which is where the reference loses.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "upfirdn2d/upfirdn2d.h"

namespace sc {
namespace SYNTHCORE_ISA {
namespace {

inline int floor_div(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

struct TapRef {
  int tap;     // index into the tap vector
  int offset;  // offset of the read in the prepared row (or input row index, vertically)
};

// acc[k] += sum_j taps[j] * src_j[k]; taps fused four at a time to keep acc in registers.
template <typename T>
inline void fused_axpy(T* __restrict acc, int n, const T* const* src, const T* w, int count) {
  int j = 0;
  for (; j + 4 <= count; j += 4) {
    const T* __restrict s0 = src[j];
    const T* __restrict s1 = src[j + 1];
    const T* __restrict s2 = src[j + 2];
    const T* __restrict s3 = src[j + 3];
    const T w0 = w[j], w1 = w[j + 1], w2 = w[j + 2], w3 = w[j + 3];
#pragma omp simd
    for (int k = 0; k < n; ++k) acc[k] += w0 * s0[k] + w1 * s1[k] + w2 * s2[k] + w3 * s3[k];
  }
  for (; j + 2 <= count; j += 2) {
    const T* __restrict s0 = src[j];
    const T* __restrict s1 = src[j + 1];
    const T w0 = w[j], w1 = w[j + 1];
#pragma omp simd
    for (int k = 0; k < n; ++k) acc[k] += w0 * s0[k] + w1 * s1[k];
  }
  for (; j < count; ++j) {
    const T* __restrict s0 = src[j];
    const T w0 = w[j];
#pragma omp simd
    for (int k = 0; k < n; ++k) acc[k] += w0 * s0[k];
  }
}

// The horizontal half of the operator for one geometry: how to prepare a row and which taps read where.
template <typename T>
class HorizontalPlan {
 public:
  HorizontalPlan(int in_w, int out_w, int up, int down, int pad0, int taps) : in_w_(in_w), out_w_(out_w) {
    expand_ = up > 1 && down > 1;
    up_ = expand_ ? 1 : up;
    down_ = down;
    pad0_ = pad0;
    taps_ = taps;
    if (up_ == 1) {
      // Prepared row = P[0 .. span) split into `down` phases of length phase_len_.
      span_ = (out_w - 1) * down + taps;
      phase_len_ = (span_ + down - 1) / down;
      phases_.resize(1);
      for (int b = 0; b < taps; ++b) phases_[0].push_back({b, (b % down) * phase_len_ + b / down});
      prepared_len_ = phase_len_ * down;
      acc_len_ = out_w;
      outputs_per_phase_ = out_w;
    } else {
      // Polyphase: output o = up*k + phi reads input k + (phi + b - pad0)/up for taps b of matching residue.
      outputs_per_phase_ = (out_w + up_ - 1) / up_;
      phases_.resize(up_);
      int min_off = 0, max_off = 0;
      bool first = true;
      for (int phi = 0; phi < up_; ++phi) {
        for (int b = 0; b < taps; ++b) {
          int num = phi + b - pad0;
          if (((num % up_) + up_) % up_ != 0) continue;
          int off = floor_div(num, up_);
          phases_[phi].push_back({b, off});
          min_off = first ? off : std::min(min_off, off);
          max_off = first ? off : std::max(max_off, off);
          first = false;
        }
      }
      margin_left_ = std::max(0, -min_off);
      int margin_right = std::max(0, outputs_per_phase_ + max_off - in_w);
      prepared_len_ = margin_left_ + in_w + margin_right;
      for (auto& ph : phases_)
        for (auto& t : ph) t.offset += margin_left_;
      acc_len_ = outputs_per_phase_ * up_;
    }
    up_orig_ = up;
  }

  int prepared_len() const { return prepared_len_; }
  int acc_len() const { return acc_len_; }
  bool direct() const { return up_ == 1; }  // accumulator layout == output row layout

  // scratch must hold span_ elements when expanding (only used in the up>1 && down>1 case).
  void prepare(const T* in, T* prepared, T* scratch) const {
    if (up_ > 1) {
      std::memset(prepared, 0, sizeof(T) * prepared_len_);
      std::memcpy(prepared + margin_left_, in, sizeof(T) * in_w_);
      return;
    }
    // Build P[0 .. span) (zero-inserted if expanding), then split it into phases.
    T* row = (down_ == 1) ? prepared : scratch;
    std::memset(row, 0, sizeof(T) * span_);
    const int u = expand_ ? up_orig_ : 1;
    for (int i = 0; i < in_w_; ++i) {
      int X = i * u + pad0_;
      if (X >= 0 && X < span_) row[X] = in[i];
    }
    if (down_ == 1) return;
    std::memset(prepared, 0, sizeof(T) * prepared_len_);
    for (int X = 0; X < span_; ++X) prepared[(X % down_) * phase_len_ + X / down_] = row[X];
  }

  // acc (acc_len) += horizontal pass of a prepared row with the given taps.
  void accumulate(const T* prepared, const T* taps, T* acc) const {
    const T* src[64];
    T w[64];
    for (size_t phi = 0; phi < phases_.size(); ++phi) {
      const auto& refs = phases_[phi];
      T* out = acc + phi * outputs_per_phase_;
      for (size_t j0 = 0; j0 < refs.size(); j0 += 64) {
        int cnt = static_cast<int>(std::min<size_t>(64, refs.size() - j0));
        for (int j = 0; j < cnt; ++j) {
          src[j] = prepared + refs[j0 + j].offset;
          w[j] = taps[refs[j0 + j].tap];
        }
        fused_axpy(out, outputs_per_phase_, src, w, cnt);
      }
    }
  }

  // Interleave polyphase accumulators into the output row.
  void finalize(const T* acc, T* out) const {
    if (up_ == 1) {
      if (acc != out) std::memcpy(out, acc, sizeof(T) * out_w_);
      return;
    }
    for (int phi = 0; phi < up_; ++phi) {
      const T* a = acc + phi * outputs_per_phase_;
      for (int k = 0, o = phi; o < out_w_; ++k, o += up_) out[o] = a[k];
    }
  }

  int span() const { return span_; }

 private:
  int in_w_, out_w_, up_, up_orig_ = 1, down_, pad0_, taps_;
  bool expand_ = false;
  int span_ = 0, phase_len_ = 0, prepared_len_ = 0, acc_len_ = 0, outputs_per_phase_ = 0, margin_left_ = 0;
  std::vector<std::vector<TapRef>> phases_;
};

// Input rows (and tap rows) that contribute to output row oy.
inline void vertical_refs(int oy, int taps_h, int up, int down, int pad0, int in_h, std::vector<TapRef>& refs) {
  refs.clear();
  for (int a = 0; a < taps_h; ++a) {
    int Y = oy * down + a - pad0;
    if (((Y % up) + up) % up != 0) continue;
    int iy = floor_div(Y, up);
    if (iy >= 0 && iy < in_h) refs.push_back({a, iy});
  }
}

template <typename T>
void run(const T* x, const T* taps_y, const T* taps_x, T* y, const Upfirdn2dGeom& g, int threads) {
  if (g.planes == 0 || g.out_h == 0 || g.out_w == 0) return;
  const HorizontalPlan<T> plan(g.in_w, g.out_w, g.up_x, g.down_x, g.pad_x0, g.taps_w);

  // Split planes into row blocks only when there are too few planes to keep every thread busy.
  threads = std::max(1, threads);
  int64_t want_items = int64_t(threads) * 8;
  int blocks_per_plane = 1;
  if (g.planes < want_items) blocks_per_plane = int(std::min<int64_t>(g.out_h, (want_items + g.planes - 1) / g.planes));
  const int rows_per_block = (g.out_h + blocks_per_plane - 1) / blocks_per_plane;
  blocks_per_plane = (g.out_h + rows_per_block - 1) / rows_per_block;
  const int64_t items = g.planes * blocks_per_plane;
  const int64_t work = g.planes * int64_t(g.out_h) * g.out_w * g.taps_w * (g.separable ? 2 : g.taps_h);
  if (work < (1 << 16)) threads = 1;  // not worth waking a team

  const int plen = plan.prepared_len();
  const int alen = plan.acc_len();
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> prepared_rows;  // per needed input row: prepared row (2-D) or intermediate row (separable)
    std::vector<T> scratch(std::max(plan.span(), 1));
    std::vector<T> acc(alen);
    std::vector<TapRef> refs;
    std::vector<const T*> src;
    std::vector<T> w;

#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t p = item / blocks_per_plane;
      const int oy0 = int(item % blocks_per_plane) * rows_per_block;
      const int oy1 = std::min(g.out_h, oy0 + rows_per_block);
      const T* xp = x + p * int64_t(g.in_h) * g.in_w;
      T* yp = y + p * int64_t(g.out_h) * g.out_w;

      // Range of input rows this block reads.
      int iy_lo = g.in_h, iy_hi = -1;
      for (int oy = oy0; oy < oy1; ++oy) {
        vertical_refs(oy, g.taps_h, g.up_y, g.down_y, g.pad_y0, g.in_h, refs);
        for (auto& r : refs) {
          iy_lo = std::min(iy_lo, r.offset);
          iy_hi = std::max(iy_hi, r.offset);
        }
      }
      const int rows = std::max(0, iy_hi - iy_lo + 1);
      const int row_len = g.separable ? g.out_w : plen;
      if (prepared_rows.size() < size_t(rows) * row_len) prepared_rows.resize(size_t(rows) * row_len);
      std::vector<T> prep1;
      if (g.separable) prep1.resize(plen);
      for (int iy = iy_lo; iy <= iy_hi; ++iy) {
        T* dst = prepared_rows.data() + size_t(iy - iy_lo) * row_len;
        if (g.separable) {
          plan.prepare(xp + int64_t(iy) * g.in_w, prep1.data(), scratch.data());
          T* a = plan.direct() ? dst : acc.data();
          std::fill(a, a + (plan.direct() ? g.out_w : alen), T(0));
          plan.accumulate(prep1.data(), taps_x, a);
          plan.finalize(a, dst);
        } else {
          plan.prepare(xp + int64_t(iy) * g.in_w, dst, scratch.data());
        }
      }

      for (int oy = oy0; oy < oy1; ++oy) {
        T* out = yp + int64_t(oy) * g.out_w;
        vertical_refs(oy, g.taps_h, g.up_y, g.down_y, g.pad_y0, g.in_h, refs);
        if (g.separable) {
          src.resize(refs.size());
          w.resize(refs.size());
          for (size_t j = 0; j < refs.size(); ++j) {
            src[j] = prepared_rows.data() + size_t(refs[j].offset - iy_lo) * row_len;
            w[j] = taps_y[refs[j].tap];
          }
          std::fill(out, out + g.out_w, T(0));
          fused_axpy(out, g.out_w, src.data(), w.data(), int(refs.size()));
        } else {
          T* a = plan.direct() ? out : acc.data();
          std::fill(a, a + (plan.direct() ? g.out_w : alen), T(0));
          for (auto& r : refs) {
            plan.accumulate(prepared_rows.data() + size_t(r.offset - iy_lo) * row_len,
                            taps_x + int64_t(r.tap) * g.taps_w, a);
          }
          plan.finalize(a, out);
        }
      }
    }
  }
}

}  // namespace

void upfirdn2d_cpu(const float* x, const float* taps_y, const float* taps_x, float* y, const Upfirdn2dGeom& g,
                   int threads) {
  run<float>(x, taps_y, taps_x, y, g, threads);
}

void upfirdn2d_cpu(const double* x, const double* taps_y, const double* taps_x, double* y, const Upfirdn2dGeom& g,
                   int threads) {
  run<double>(x, taps_y, taps_x, y, g, threads);
}

}  // namespace SYNTHCORE_ISA
}  // namespace sc
