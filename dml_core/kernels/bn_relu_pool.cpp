// Training-mode batch norm, ReLU and 2x2 max-pooling of a channels-last [N, H, W, C] tensor,
// fused: two passes over the input forward (statistics, then the pooled output), two
// backward (the gradient's two sums over the pooled grid, then dx). torch runs the same
// three layers as five to six full passes each way, each its own kernel.
//
//   y = relu(a x + b),  a = gamma / sqrt(var + eps),  b = beta - mean a      (Ioffe, Szegedy 2015, Alg. 1)
//   out[n, i, j, c] = max over the 2x2 window of y
//   dx = a (dy - sum(dy) / M) - a (x - mean) sum(dy (x - mean)) / (M (var + eps))   (ibid., Sec. 3)
// with dy the output's gradient routed to each window's argmax where y > 0, M = N H W.
//
// The argmax follows torch's max_pool2d: row-major window order, the first of equal values,
// a NaN wins. One byte per output element holds it, or 4 where ReLU stops the gradient.
// Statistics are accumulated per block of rows in the accumulation type, then combined in
// double (Chan, Golub, LeVeque 1979), so a bf16 batch keeps float32-level statistics.
//
// Channels are processed a SIMD vector at a time (GCC/Clang vector extensions: 16 floats or 8
// doubles, whatever the target has), the channels left over one at a time by the same code.
// Single-threaded: the caller uses it where a trial runs on one thread.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using BF16 = uint16_t;  // the bits of a bfloat16

typedef float VF __attribute__((vector_size(64)));
typedef uint32_t VU __attribute__((vector_size(64)));
typedef uint16_t VH __attribute__((vector_size(32)));
typedef uint8_t VB16 __attribute__((vector_size(16)));
typedef double VD __attribute__((vector_size(64)));
typedef uint8_t VB8 __attribute__((vector_size(8)));

// --- one channel ---
inline float load(const BF16* p) {
  uint32_t b = static_cast<uint32_t>(*p) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline float load(const float* p) { return *p; }
inline double load(const double* p) { return *p; }

// Round to nearest even, as torch's float -> bfloat16 conversion; NaN stays a quiet NaN.
inline void store(BF16* p, float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
  *p = static_cast<uint16_t>(((b & 0x7FFFFFFFu) > 0x7F800000u) ? ((b >> 16) | 0x40u) : rounded);
}
inline void store(float* p, float f) { *p = f; }
inline void store(double* p, double f) { *p = f; }

// --- a vector of channels: Lanes<T>::L channels of T as a vector of the accumulation type ---
template <typename T>
struct Lanes;
// float and double load and store as they are
template <typename S, typename Vector, typename Bytes>
struct PlainLanes {
  static constexpr int L = sizeof(Vector) / sizeof(S);
  using V = Vector;
  using B = Bytes;
  static V load(const S* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
  static void store(S* p, V v) { std::memcpy(p, &v, sizeof v); }
};
template <>
struct Lanes<float> : PlainLanes<float, VF, VB16> {};
template <>
struct Lanes<double> : PlainLanes<double, VD, VB8> {};
template <>
struct Lanes<BF16> {
  static constexpr int L = 16;
  using V = VF;
  using B = VB16;
  static V load(const BF16* p) {
    VH h;
    std::memcpy(&h, p, sizeof h);
    return reinterpret_cast<V>(__builtin_convertvector(h, VU) << 16);
  }
  static void store(BF16* p, V f) {
    const VU b = reinterpret_cast<VU>(f);
    const VU rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
    const VU bits = ((b & 0x7FFFFFFFu) > 0x7F800000u) ? ((b >> 16) | 0x40u) : rounded;
    const VH h = __builtin_convertvector(bits, VH);
    std::memcpy(p, &h, sizeof h);
  }
};
// The bodies below are written once for a tag: Vec (Lanes<T>::L channels) or One (a channel).
struct Vec {};
struct One {};
template <typename T> inline auto ld(Vec, const T* p) { return Lanes<T>::load(p); }
template <typename T> inline auto ld(One, const T* p) { return load(p); }
template <typename T, typename U> inline void st(Vec, T* p, U v) { Lanes<T>::store(p, v); }
template <typename T, typename U> inline void st(One, T* p, U v) { store(p, v); }
// the argmax byte, for a value vector of the accumulation type A
template <typename A, typename U> inline void st_arg(Vec, uint8_t* p, U k) {
  const auto b = __builtin_convertvector(k, typename Lanes<A>::B);
  std::memcpy(p, &b, sizeof b);
}
template <typename A, typename U> inline void st_arg(One, uint8_t* p, U k) { *p = static_cast<uint8_t>(k); }
template <typename A> inline auto ld_arg(Vec, const uint8_t* p) {
  typename Lanes<A>::B b;
  std::memcpy(&b, p, sizeof b);
  return __builtin_convertvector(b, typename Lanes<A>::V);
}
template <typename A> inline A ld_arg(One, const uint8_t* p) { return static_cast<A>(*p); }

// body(tag, c) over channels [0, C): whole vectors first, then one at a time.
template <typename T, typename F>
inline void channels(int64_t C, F&& body) {
  int64_t c = 0;
  for (; c + Lanes<T>::L <= C; c += Lanes<T>::L) body(Vec{}, c);
  for (; c < C; ++c) body(One{}, c);
}

constexpr int64_t kBlock = 256;  // rows a block: 256 x C of bf16 stay in L1 for the second look

// Per-channel mean and M2 (sum of squared deviations) of rows [M, C]: blocks of kBlock rows in A,
// combined in double.
template <typename T, typename A>
void moments(const T* x, int64_t M, int64_t C, double* mean, double* m2) {
  std::vector<A> s(C), q(C);
  int64_t count = 0;
  for (int64_t c = 0; c < C; ++c) mean[c] = m2[c] = 0.0;
  for (int64_t r0 = 0; r0 < M; r0 += kBlock) {
    const int64_t nb = (M - r0 < kBlock) ? M - r0 : kBlock;
    const T* xb = x + r0 * C;
    channels<T>(C, [&](auto tag, int64_t c) {
      auto acc = ld(tag, xb + c);
      for (int64_t r = 1; r < nb; ++r) acc += ld(tag, xb + r * C + c);
      const auto mu = acc / A(nb);
      auto sq = (ld(tag, xb + c) - mu) * (ld(tag, xb + c) - mu);
      for (int64_t r = 1; r < nb; ++r) {
        const auto d = ld(tag, xb + r * C + c) - mu;
        sq += d * d;
      }
      st(tag, s.data() + c, mu);
      st(tag, q.data() + c, sq);
    });
    const double total = static_cast<double>(count + nb);
    for (int64_t c = 0; c < C; ++c) {
      const double delta = static_cast<double>(s[c]) - mean[c];
      mean[c] += delta * nb / total;
      m2[c] += static_cast<double>(q[c]) + delta * delta * count * nb / total;
    }
    count += nb;
  }
}

template <typename T, typename A>
void forward(const T* x, const A* gamma, const A* beta, int64_t N, int64_t H, int64_t W, int64_t C,
             double eps, T* out, uint8_t* arg, A* stats) {
  const int64_t M = N * H * W, Ho = H / 2, Wo = W / 2;
  std::vector<double> mean(C), m2(C);
  moments<T, A>(x, M, C, mean.data(), m2.data());
  A* a = stats + 2 * C;  // stats rows: mean, biased variance, a, b
  A* b = stats + 3 * C;
  for (int64_t c = 0; c < C; ++c) {
    const double var = m2[c] / M;
    const double invstd = 1.0 / std::sqrt(var + eps);
    stats[c] = static_cast<A>(mean[c]);
    stats[C + c] = static_cast<A>(var);
    a[c] = static_cast<A>(gamma[c] * invstd);
    b[c] = static_cast<A>(beta[c] - mean[c] * gamma[c] * invstd);
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        const T* p0 = x + ((n * H + 2 * i) * W + 2 * j) * C;
        const T* p2 = p0 + W * C;
        const int64_t o = ((n * Ho + i) * Wo + j) * C;
        channels<T>(C, [&](auto tag, int64_t c) {
          const auto ac = ld(tag, a + c), bc = ld(tag, b + c);
          const auto y1 = ac * ld(tag, p0 + C + c) + bc;
          const auto y2 = ac * ld(tag, p2 + c) + bc;
          const auto y3 = ac * ld(tag, p2 + C + c) + bc;
          auto m = ac * ld(tag, p0 + c) + bc;
          decltype(m) zero{}, k{};
          const auto t1 = (y1 > m) | (y1 != y1);
          m = t1 ? y1 : m;
          k = t1 ? zero + A(1) : k;
          const auto t2 = (y2 > m) | (y2 != y2);
          m = t2 ? y2 : m;
          k = t2 ? zero + A(2) : k;
          const auto t3 = (y3 > m) | (y3 != y3);
          m = t3 ? y3 : m;
          k = t3 ? zero + A(3) : k;
          const auto live = m > zero;
          st(tag, out + o + c, (live | (m != m)) ? m : zero);
          st_arg<A>(tag, arg + o + c, live ? k : zero + A(4));
        });
      }
}

template <typename T, typename A>
void backward(const T* grad, const T* x, const uint8_t* arg, const A* stats, int64_t N, int64_t H,
              int64_t W, int64_t C, double eps, T* dx, A* dgamma, A* dbeta) {
  const int64_t M = N * H * W, Ho = H / 2, Wo = W / 2, windows = N * Ho * Wo;
  const A* mean = stats;
  const A* var = stats + C;
  const A* a = stats + 2 * C;
  std::vector<double> sdy(C, 0.0), sdyx(C, 0.0);
  std::vector<A> bdy(C), bdyx(C);
  // Pass 1: sum(dy) and sum(dy (x - mean)) over the routed gradients only, a block of windows
  // at a time in A.
  for (int64_t w0 = 0; w0 < windows; w0 += kBlock) {
    const int64_t w1 = (windows - w0 < kBlock) ? windows : w0 + kBlock;
    for (int64_t c = 0; c < C; ++c) bdy[c] = bdyx[c] = A(0);
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t n = w / (Ho * Wo), i = (w / Wo) % Ho, j = w % Wo;
      const T* p0 = x + ((n * H + 2 * i) * W + 2 * j) * C;
      const T* p2 = p0 + W * C;
      channels<T>(C, [&](auto tag, int64_t c) {
        const auto k = ld_arg<A>(tag, arg + w * C + c);
        decltype(k) zero{};
        auto xv = ld(tag, p0 + c);
        xv = (k == zero + A(1)) ? ld(tag, p0 + C + c) : xv;
        xv = (k == zero + A(2)) ? ld(tag, p2 + c) : xv;
        xv = (k == zero + A(3)) ? ld(tag, p2 + C + c) : xv;
        const auto g = (k < zero + A(4)) ? ld(tag, grad + w * C + c) : zero;
        st(tag, bdy.data() + c, ld(tag, bdy.data() + c) + g);
        st(tag, bdyx.data() + c, ld(tag, bdyx.data() + c) + g * (xv - ld(tag, mean + c)));
      });
    }
    for (int64_t c = 0; c < C; ++c) {
      sdy[c] += bdy[c];
      sdyx[c] += bdyx[c];
    }
  }
  // dx = a dy + u x + v, with u, v folding the two mean terms.
  std::vector<A> u(C), v(C);
  for (int64_t c = 0; c < C; ++c) {
    const double invvar = 1.0 / (static_cast<double>(var[c]) + eps);
    const double k1 = sdy[c] / M, k2 = sdyx[c] * invvar / M;
    u[c] = static_cast<A>(-a[c] * k2);
    v[c] = static_cast<A>(a[c] * (k2 * mean[c] - k1));
    dbeta[c] = static_cast<A>(sdy[c]);
    dgamma[c] = static_cast<A>(sdyx[c] / std::sqrt(static_cast<double>(var[c]) + eps));
  }
  // Pass 2: dx over each window's four positions, then the row and column outside the pooled
  // grid (odd H or W), which get no dy.
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        const int64_t o = ((n * Ho + i) * Wo + j) * C, p0 = ((n * H + 2 * i) * W + 2 * j) * C;
        const int64_t pos[4] = {p0, p0 + C, p0 + W * C, p0 + W * C + C};
        channels<T>(C, [&](auto tag, int64_t c) {
          const auto k = ld_arg<A>(tag, arg + o + c);
          const auto g = ld(tag, a + c) * ld(tag, grad + o + c);
          const auto uc = ld(tag, u.data() + c), vc = ld(tag, v.data() + c);
          decltype(k) zero{};
          for (int q = 0; q < 4; ++q) {
            const auto r = uc * ld(tag, x + pos[q] + c) + vc;
            st(tag, dx + pos[q] + c, (k == zero + A(q)) ? r + g : r);
          }
        });
      }
  auto outside = [&](int64_t n, int64_t h, int64_t w) {
    const int64_t p = ((n * H + h) * W + w) * C;
    channels<T>(C, [&](auto tag, int64_t c) {
      st(tag, dx + p + c, ld(tag, u.data() + c) * ld(tag, x + p + c) + ld(tag, v.data() + c));
    });
  };
  for (int64_t n = 0; n < N; ++n) {
    if (H % 2)
      for (int64_t w = 0; w < W; ++w) outside(n, H - 1, w);
    if (W % 2)
      for (int64_t h = 0; h < 2 * Ho; ++h) outside(n, h, W - 1);
  }
}

}  // namespace

#define DML_EXPORT(SUFFIX, T, A)                                                                  \
  extern "C" void bn_relu_pool_forward_##SUFFIX(const void* x, const void* gamma,                \
                                                const void* beta, int64_t N, int64_t H,           \
                                                int64_t W, int64_t C, double eps, void* out,      \
                                                void* arg, void* stats) {                         \
    forward<T, A>(static_cast<const T*>(x), static_cast<const A*>(gamma),                        \
                  static_cast<const A*>(beta), N, H, W, C, eps, static_cast<T*>(out),             \
                  static_cast<uint8_t*>(arg), static_cast<A*>(stats));                            \
  }                                                                                               \
  extern "C" void bn_relu_pool_backward_##SUFFIX(const void* grad, const void* x, const void* arg, \
                                                 const void* stats, int64_t N, int64_t H,         \
                                                 int64_t W, int64_t C, double eps, void* dx,      \
                                                 void* dgamma, void* dbeta) {                     \
    backward<T, A>(static_cast<const T*>(grad), static_cast<const T*>(x),                        \
                   static_cast<const uint8_t*>(arg), static_cast<const A*>(stats), N, H, W, C,    \
                   eps, static_cast<T*>(dx), static_cast<A*>(dgamma), static_cast<A*>(dbeta));    \
  }

DML_EXPORT(bf16, BF16, float)
DML_EXPORT(f32, float, float)
DML_EXPORT(f64, double, double)
