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
#include <cstdlib>
#include <cstring>
#include <vector>

#include "upfirdn2d/upfirdn2d.h"

namespace sc {
namespace SYNTHCORE_ISA {
namespace {

// Inputs at most this wide, without horizontal upsampling, use the lane-blocked path: measured faster than
// the row path only there (8x8 planes; see benchmarks/RESULTS.md).
constexpr int kLanePathMaxInWidth = 8;

inline int floor_div(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

struct TapLists {  // compressed rows: the taps of output coordinate o are [start[o], start[o+1])
  std::vector<int> start, tap, idx;
};

TapLists build_tap_lists(int out_n, int in_n, int up, int down, int pad0, int taps) {
  TapLists t;
  t.start.reserve(out_n + 1);
  for (int o = 0; o < out_n; ++o) {
    t.start.push_back(int(t.tap.size()));
    for (int b = 0; b < taps; ++b) {
      const int X = o * down + b - pad0;
      if (((X % up) + up) % up != 0) continue;
      const int i = floor_div(X, up);
      if (i < 0 || i >= in_n) continue;
      t.tap.push_back(b);
      t.idx.push_back(i);
    }
  }
  t.start.push_back(int(t.tap.size()));
  return t;
}

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
      // Input samples i whose position X = i * u + pad0 falls inside [0, span).
      const int u = expand_ ? up : 1;
      valid_i0_ = pad0 >= 0 ? 0 : (-pad0 + u - 1) / u;
      valid_i1_ = std::max(valid_i0_, std::min(in_w, (span_ - pad0 + u - 1) / u));
      valid_x0_ = valid_i0_ * u + pad0;
      if (valid_i1_ <= valid_i0_ || valid_x0_ > span_) {  // nothing of the input lands inside
        valid_i1_ = valid_i0_;
        valid_x0_ = span_;
      }
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

  // scratch must hold span_ elements (used when down > 1 or when expanding).
  void prepare(const T* in, T* prepared, T* scratch) const {
    if (up_ > 1) {
      std::memset(prepared, 0, sizeof(T) * margin_left_);
      std::memcpy(prepared + margin_left_, in, sizeof(T) * in_w_);
      std::memset(prepared + margin_left_ + in_w_, 0, sizeof(T) * (prepared_len_ - margin_left_ - in_w_));
      return;
    }
    if (!expand_ && down_ > 1) {
      // Split P straight from the input into phases: prepared[q][k] = P[k * down + q] = in[k * down + q - pad0].
      for (int q = 0; q < down_; ++q) {
        T* dst = prepared + q * phase_len_;
        // k range whose sample index i = k * down + q - pad0 lies in [0, in_w)
        const int k0 = std::min(phase_len_, std::max(0, (pad0_ - q + down_ - 1) / down_));
        int k1 = pad0_ - q + in_w_ > 0 ? (pad0_ - q + in_w_ + down_ - 1) / down_ : 0;
        k1 = std::max(k0, std::min(phase_len_, k1));
        for (int k = 0; k < k0; ++k) dst[k] = T(0);
        const T* src = in + (k0 * down_ + q - pad0_);
        if (down_ == 2) {
          for (int k = 0; k < k1 - k0; ++k) dst[k0 + k] = src[2 * k];
        } else {
          for (int k = 0; k < k1 - k0; ++k) dst[k0 + k] = src[k * down_];
        }
        for (int k = k1; k < phase_len_; ++k) dst[k] = T(0);
      }
      return;
    }
    // Build P[0 .. span): zeros, then the input samples that land inside (zero-inserted if expanding).
    T* row = (down_ == 1) ? prepared : scratch;
    if (!expand_) {
      std::memset(row, 0, sizeof(T) * valid_x0_);
      std::memcpy(row + valid_x0_, in + valid_i0_, sizeof(T) * (valid_i1_ - valid_i0_));
      const int tail = valid_x0_ + (valid_i1_ - valid_i0_);
      std::memset(row + tail, 0, sizeof(T) * (span_ - tail));
    } else {
      std::memset(row, 0, sizeof(T) * span_);
      for (int i = valid_i0_, X = valid_x0_; i < valid_i1_; ++i, X += up_orig_) row[X] = in[i];
    }
    if (down_ == 1) return;
    // Split into phases: prepared[q][k] = P[k * down + q].
    for (int q = 0; q < down_; ++q) {
      T* dst = prepared + q * phase_len_;
      const int n = (span_ - q + down_ - 1) / down_;
      for (int k = 0; k < n; ++k) dst[k] = row[k * down_ + q];
      for (int k = n; k < phase_len_; ++k) dst[k] = T(0);
    }
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
  int valid_i0_ = 0, valid_i1_ = 0, valid_x0_ = 0;
  std::vector<std::vector<TapRef>> phases_;
};

template <typename T>
void run(const T* x, const T* taps_y, const T* taps_x, T* y, const Upfirdn2dGeom& g, int threads) {
  const HorizontalPlan<T> plan(g.in_w, g.out_w, g.up_x, g.down_x, g.pad_x0, g.taps_w);
  const TapLists V = build_tap_lists(g.out_h, g.in_h, g.up_y, g.down_y, g.pad_y0, g.taps_h);

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
  const int row_len = g.separable ? g.out_w : plen;
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> prepared_rows;  // per needed input row: prepared row (2-D) or intermediate row (separable)
    std::vector<T> scratch(std::max(plan.span(), 1));
    std::vector<T> acc(alen);
    std::vector<T> prep1(g.separable ? plen : 0);
    std::vector<const T*> src;
    std::vector<T> w;

#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t p = item / blocks_per_plane;
      const int oy0 = int(item % blocks_per_plane) * rows_per_block;
      const int oy1 = std::min(g.out_h, oy0 + rows_per_block);
      const T* xp = x + p * int64_t(g.in_h) * g.in_w;
      T* yp = y + p * int64_t(g.out_h) * g.out_w;

      if (g.separable && g.up_y == 1 && g.down_y > 1) {
        // Vertical pass first when it decimates: it reads input rows in place, and the horizontal pass then
        // runs on down_y times fewer rows.
        if (prepared_rows.size() < size_t(g.in_w)) prepared_rows.resize(g.in_w);
        T* vrow = prepared_rows.data();
        for (int oy = oy0; oy < oy1; ++oy) {
          const int j0 = V.start[oy], n = V.start[oy + 1] - j0;
          src.resize(n);
          w.resize(n);
          for (int j = 0; j < n; ++j) {
            src[j] = xp + int64_t(V.idx[j0 + j]) * g.in_w;
            w[j] = taps_y[V.tap[j0 + j]];
          }
          std::fill(vrow, vrow + g.in_w, T(0));
          fused_axpy(vrow, g.in_w, src.data(), w.data(), n);
          T* out = yp + int64_t(oy) * g.out_w;
          plan.prepare(vrow, prep1.data(), scratch.data());
          T* a = plan.direct() ? out : acc.data();
          std::fill(a, a + (plan.direct() ? g.out_w : alen), T(0));
          plan.accumulate(prep1.data(), taps_x, a);
          plan.finalize(a, out);
        }
        continue;
      }

      // Range of input rows this block reads.
      int iy_lo = g.in_h, iy_hi = -1;
      for (int j = V.start[oy0]; j < V.start[oy1]; ++j) {
        iy_lo = std::min(iy_lo, V.idx[j]);
        iy_hi = std::max(iy_hi, V.idx[j]);
      }
      const int rows = std::max(0, iy_hi - iy_lo + 1);
      if (prepared_rows.size() < size_t(rows) * row_len) prepared_rows.resize(size_t(rows) * row_len);
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
        const int j0 = V.start[oy], n = V.start[oy + 1] - j0;
        if (g.separable) {
          src.resize(n);
          w.resize(n);
          for (int j = 0; j < n; ++j) {
            src[j] = prepared_rows.data() + size_t(V.idx[j0 + j] - iy_lo) * row_len;
            w[j] = taps_y[V.tap[j0 + j]];
          }
          std::fill(out, out + g.out_w, T(0));
          fused_axpy(out, g.out_w, src.data(), w.data(), n);
        } else {
          T* a = plan.direct() ? out : acc.data();
          std::fill(a, a + (plan.direct() ? g.out_w : alen), T(0));
          for (int j = j0; j < j0 + n; ++j) {
            plan.accumulate(prepared_rows.data() + size_t(V.idx[j] - iy_lo) * row_len,
                            taps_x + int64_t(V.tap[j]) * g.taps_w, a);
          }
          plan.finalize(a, out);
        }
      }
    }
  }
}

// --- lane-blocked path ---------------------------------------------------------------------------------------
// L planes are processed together, interleaved so each (row, column) position holds an L-wide vector. The
// tap lists of every output row and column are built once per call; each output position is then one short
// chain of L-wide multiply-adds, whatever the plane width. This wins where rows are short (the low-resolution
// StyleGAN2 layers), where per-row overheads dominate the row path.

template <typename T, int L>
inline void lane_fma_chain(T* __restrict out, const T* __restrict src, const T* __restrict taps, const int* tap,
                           const int* idx, int n, int64_t idx_offset, int64_t idx_stride) {
  T acc[L] = {};
  for (int j = 0; j < n; ++j) {
    const T w = taps[tap[j]];
    const T* __restrict s = src + (idx_offset + int64_t(idx[j]) * idx_stride) * L;
#pragma omp simd
    for (int l = 0; l < L; ++l) acc[l] += w * s[l];
  }
#pragma omp simd
  for (int l = 0; l < L; ++l) out[l] = acc[l];
}

template <typename T>
void run_blocked(const T* x, const T* taps_y, const T* taps_x, T* y, const Upfirdn2dGeom& g, int threads) {
  constexpr int L = 8;
  const TapLists H = build_tap_lists(g.out_w, g.in_w, g.up_x, g.down_x, g.pad_x0, g.taps_w);
  const TapLists V = build_tap_lists(g.out_h, g.in_h, g.up_y, g.down_y, g.pad_y0, g.taps_h);
  const int64_t in_plane = int64_t(g.in_h) * g.in_w, out_plane = int64_t(g.out_h) * g.out_w;

  // Output rows per strip: keep a strip's scratch within ~256 KiB, and make enough items for every thread.
  const int64_t nblocks = (g.planes + L - 1) / L;
  int strip = g.out_h;
  auto scratch_bytes = [&](int rows) {
    const int64_t rows_in = int64_t(rows) * g.down_y / g.up_y + g.taps_h + 2;
    return (rows_in * (g.in_w + g.out_w) + int64_t(rows) * g.out_w) * L * int64_t(sizeof(T));
  };
  while (strip > 1 && scratch_bytes(strip) > (256 << 10)) strip = (strip + 1) / 2;
  const int64_t want = int64_t(std::max(1, threads)) * 4;
  if (nblocks < want) strip = std::min<int64_t>(strip, std::max<int64_t>(1, g.out_h * nblocks / want));
  const int nstrips = (g.out_h + strip - 1) / strip;
  const int64_t items = nblocks * nstrips;

#pragma omp parallel num_threads(threads)
  {
    std::vector<T> S, M, O;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t p0 = (item / nstrips) * L;
      const int nl = int(std::min<int64_t>(L, g.planes - p0));
      const int oy0 = int(item % nstrips) * strip, oy1 = std::min(g.out_h, oy0 + strip);
      int iy_lo = g.in_h, iy_hi = -1;
      for (int j = V.start[oy0]; j < V.start[oy1]; ++j) {
        iy_lo = std::min(iy_lo, V.idx[j]);
        iy_hi = std::max(iy_hi, V.idx[j]);
      }
      const int rows = std::max(0, iy_hi - iy_lo + 1);
      const size_t o_len = size_t(oy1 - oy0) * g.out_w * L;
      if (O.size() < o_len) O.resize(o_len);
      if (rows > 0) {
        // Gather the strip's input rows of the L planes into lane-interleaved order (missing planes as zeros).
        const size_t s_len = size_t(rows) * g.in_w * L;
        if (S.size() < s_len) S.resize(s_len);
        for (int l = 0; l < L; ++l) {
          T* dst = S.data() + l;
          if (l >= nl) {
            for (size_t k = 0; k < size_t(rows) * g.in_w; ++k) dst[k * L] = T(0);
            continue;
          }
          const T* src = x + (p0 + l) * in_plane + int64_t(iy_lo) * g.in_w;
          for (size_t k = 0; k < size_t(rows) * g.in_w; ++k) dst[k * L] = src[k];
        }
        if (g.separable) {
          // Horizontal pass over every needed input row, then the vertical pass.
          const size_t m_len = size_t(rows) * g.out_w * L;
          if (M.size() < m_len) M.resize(m_len);
          for (int r = 0; r < rows; ++r)
            for (int ox = 0; ox < g.out_w; ++ox) {
              const int j0 = H.start[ox];
              lane_fma_chain<T, L>(M.data() + (size_t(r) * g.out_w + ox) * L, S.data(), taps_x, &H.tap[j0], &H.idx[j0],
                                   H.start[ox + 1] - j0, int64_t(r) * g.in_w, 1);
            }
          for (int oy = oy0; oy < oy1; ++oy) {
            const int j0 = V.start[oy], n = V.start[oy + 1] - j0;
            std::vector<int> rel(V.idx.begin() + j0, V.idx.begin() + j0 + n);
            for (int& v : rel) v -= iy_lo;
            for (int ox = 0; ox < g.out_w; ++ox)
              lane_fma_chain<T, L>(O.data() + (size_t(oy - oy0) * g.out_w + ox) * L, M.data(), taps_y, &V.tap[j0],
                                   rel.data(), n, ox, g.out_w);
          }
        } else {
          for (int oy = oy0; oy < oy1; ++oy)
            for (int ox = 0; ox < g.out_w; ++ox) {
              T acc[L] = {};
              for (int jv = V.start[oy]; jv < V.start[oy + 1]; ++jv) {
                const T* trow = taps_x + int64_t(V.tap[jv]) * g.taps_w;
                const T* srow = S.data() + size_t(V.idx[jv] - iy_lo) * g.in_w * L;
                for (int jh = H.start[ox]; jh < H.start[ox + 1]; ++jh) {
                  const T w = trow[H.tap[jh]];
                  const T* s = srow + size_t(H.idx[jh]) * L;
#pragma omp simd
                  for (int l = 0; l < L; ++l) acc[l] += w * s[l];
                }
              }
              T* o = O.data() + (size_t(oy - oy0) * g.out_w + ox) * L;
#pragma omp simd
              for (int l = 0; l < L; ++l) o[l] = acc[l];
            }
        }
      } else {
        std::fill(O.begin(), O.begin() + o_len, T(0));
      }
      // Scatter the strip back to the planes.
      for (int l = 0; l < nl; ++l) {
        T* dst = y + (p0 + l) * out_plane + int64_t(oy0) * g.out_w;
        const T* src = O.data() + l;
        for (size_t k = 0; k < size_t(oy1 - oy0) * g.out_w; ++k) dst[k] = src[k * L];
      }
    }
  }
}

// What both channels-last paths share: the tap lists of every output row and column, and the work split.
struct NhwcPlan {
  TapLists V, H;
  int64_t C, rows, in_image;
  int team;
  NhwcPlan(const Upfirdn2dGeom& g, int threads)
      : V(build_tap_lists(g.out_h, g.in_h, g.up_y, g.down_y, g.pad_y0, g.taps_h)),
        H(build_tap_lists(g.out_w, g.in_w, g.up_x, g.down_x, g.pad_x0, g.taps_w)),
        C(g.channels),
        rows(g.batch * g.out_h),
        in_image(int64_t(g.in_h) * g.in_w * g.channels),
        team(rows * g.out_w * C < (int64_t(1) << 15) ? 1 : threads) {}
};

// Channels-last: each output pixel is a weighted sum of whole input pixels (C contiguous values), so the
// channel loop vectorises with no repacking, and the tap lists skip zero-inserted and padded samples exactly
// as in the planar paths. Parallel over output rows. Used for 2-D filters; separable ones take
// run_nhwc_separable.
template <typename T>
void run_nhwc(const T* x, const T* taps_x, T* y, const Upfirdn2dGeom& g, int threads) {
  const NhwcPlan p(g, threads);
  const TapLists &V = p.V, &H = p.H;
  const int64_t C = p.C, rows = p.rows, in_image = p.in_image;
#pragma omp parallel num_threads(p.team)
  {
    std::vector<const T*> src;
    std::vector<T> w;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = r / g.out_h;
      const int oy = int(r % g.out_h);
      const T* xn = x + n * in_image;
      T* yrow = y + r * g.out_w * C;
      for (int ox = 0; ox < g.out_w; ++ox) {
        src.clear();
        w.clear();
        for (int jv = V.start[oy]; jv < V.start[oy + 1]; ++jv) {
          const T* xrow = xn + int64_t(V.idx[jv]) * g.in_w * C;
          for (int jh = H.start[ox]; jh < H.start[ox + 1]; ++jh) {
            src.push_back(xrow + int64_t(H.idx[jh]) * C);
            w.push_back(taps_x[int64_t(V.tap[jv]) * g.taps_w + H.tap[jh]]);
          }
        }
        T* o = yrow + int64_t(ox) * C;
        std::fill(o, o + C, T(0));
        fused_axpy(o, int(C), src.data(), w.data(), int(src.size()));
      }
    }
  }
}

// Channels-last with a separable filter (every StyleGAN2 filter): per output row, the vertical taps combine
// whole input rows into one row of the span the horizontal taps read (one long contiguous multiply-add), then
// each output pixel combines that row's pixels. A 4x4 filter costs 4 + 4 multiply-adds per output value instead
// of 16; the intermediate row stays in the thread's cache.
template <typename T>
void run_nhwc_separable(const T* x, const T* taps_y, const T* taps_x, T* y, const Upfirdn2dGeom& g, int threads) {
  const NhwcPlan p(g, threads);
  const TapLists &V = p.V, &H = p.H;
  const int64_t C = p.C, rows = p.rows, in_image = p.in_image;
  if (H.idx.empty()) {  // no output column reads the input: all zeros
    std::fill(y, y + rows * g.out_w * C, T(0));
    return;
  }
  const int lo = *std::min_element(H.idx.begin(), H.idx.end());
  const int hi = *std::max_element(H.idx.begin(), H.idx.end()) + 1;
  const int64_t span = int64_t(hi - lo) * C;
#pragma omp parallel num_threads(p.team)
  {
    std::vector<T> mid(static_cast<size_t>(span));
    std::vector<const T*> src;
    std::vector<T> w;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = r / g.out_h;
      const int oy = int(r % g.out_h);
      src.clear();
      w.clear();
      for (int jv = V.start[oy]; jv < V.start[oy + 1]; ++jv) {
        src.push_back(x + n * in_image + (int64_t(V.idx[jv]) * g.in_w + lo) * C);
        w.push_back(taps_y[V.tap[jv]]);
      }
      std::fill(mid.begin(), mid.end(), T(0));
      fused_axpy(mid.data(), int(span), src.data(), w.data(), int(src.size()));
      T* yrow = y + r * g.out_w * C;
      for (int ox = 0; ox < g.out_w; ++ox) {
        src.clear();
        w.clear();
        for (int jh = H.start[ox]; jh < H.start[ox + 1]; ++jh) {
          src.push_back(mid.data() + int64_t(H.idx[jh] - lo) * C);
          w.push_back(taps_x[H.tap[jh]]);
        }
        T* o = yrow + int64_t(ox) * C;
        std::fill(o, o + C, T(0));
        fused_axpy(o, int(C), src.data(), w.data(), int(src.size()));
      }
    }
  }
}

template <typename T>
void dispatch(const T* x, const T* taps_y, const T* taps_x, T* y, const Upfirdn2dGeom& g, int threads) {
  if (g.planes == 0 || g.out_h == 0 || g.out_w == 0) return;
  if (g.channels_last) {
    if (g.separable) return run_nhwc_separable(x, taps_y, taps_x, y, g, threads);
    return run_nhwc(x, taps_x, y, g, threads);
  }
  const char* force = std::getenv("SYNTHCORE_UPFIRDN2D_PATH");  // "rows" or "lanes": for benchmarking both
  bool lanes = g.in_w <= kLanePathMaxInWidth && g.up_x == 1 && g.planes >= 8;
  if (force) lanes = std::strcmp(force, "lanes") == 0;
  if (lanes)
    run_blocked(x, taps_y, taps_x, y, g, threads);
  else
    run(x, taps_y, taps_x, y, g, threads);
}

}  // namespace

void upfirdn2d_cpu(const float* x, const float* taps_y, const float* taps_x, float* y, const Upfirdn2dGeom& g,
                   int threads) {
  dispatch<float>(x, taps_y, taps_x, y, g, threads);
}

void upfirdn2d_cpu(const double* x, const double* taps_y, const double* taps_x, double* y, const Upfirdn2dGeom& g,
                   int threads) {
  dispatch<double>(x, taps_y, taps_x, y, g, threads);
}

}  // namespace SYNTHCORE_ISA
}  // namespace sc
