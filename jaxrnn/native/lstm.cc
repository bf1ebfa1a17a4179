// jaxrnn's native CPU time loop for the LSTM, registered with XLA through its FFI.
//
// One direction of one layer, on the projected input xp = W_ih x (the GEMM handler below,
// called before the loop):
//
//   a(t) = xp(t) + b + h(t-1) W_hh^T          (N, 4H), gates in torch's order i, f, g, o
//   i, f, o = sigmoid(a_i, a_f, a_o); g = tanh(a_g)
//   c(t) = f c(t-1) + i g;  h(t) = o tanh(c(t))
//
// With lengths, torch's packed semantics: row n is updated only at steps t < len[n] (a reverse
// walk runs t = T-1 .. 0, so it starts at len[n]-1 from h0); elsewhere its state is kept and
// its output is zero. The backward pass walks the same steps the other way:
//
//   dh = dh(t) + dy(t);  tau = tanh(c(t));  dc = dc(t) + dh o (1 - tau^2)
//   da_i = dc g i (1-i);  da_f = dc c(t-1) f (1-f);  da_g = dc i (1-g^2);  da_o = dh tau o (1-o)
//   dc(t-1) = dc f;  dh(t-1) = da W_hh
//
// and returns da (the gradient of xp; b's is its sum) with dh0, dc0 and
// dW_hh = sum_t da(t)^T h(t-1), one GEMM over all steps after the loop.
//
// Threads: a team of P threads (the process's one pool) splits the batch; thread k owns rows
// [n0, n1), and the rows of a batch never meet in the recurrence, so each thread walks all
// steps of its rows with no other thread's data and no barrier (a split of the hidden units
// instead needs a barrier a step, and its threads' writes to the neighbouring units of one row
// cost more than the work: benchmarks/NOTES.md, idea 16). Each step is one GEMM of the
// thread's rows by W_hh^T (packed once per call, shared, our own micro-kernel: lstm_simd.inc)
// and the fused elementwise loop. The projection and dW_hh are OpenBLAS GEMMs, one
// single-threaded call per thread, dW_hh after one barrier at the end.
//
// A third handler is that projection's GEMM, op(a) op(b), for x W_ih^T and its gradients.

#include <immintrin.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cblas.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// ------------------------------------------------------------------ vector code, per ISA

namespace simd8 {
#define JAXRNN_LANES 8
#include "lstm_simd.inc"
#undef JAXRNN_LANES
}  // namespace simd8

#pragma GCC push_options
#pragma GCC target("avx512f,fma")
namespace simd16 {
#define JAXRNN_LANES 16
#include "lstm_simd.inc"
#undef JAXRNN_LANES
}  // namespace simd16
#pragma GCC pop_options

// Asks for [p, p + n) in the cache ahead of its use: the next step's rows of a batch-first
// sequence lie a whole sequence apart, which the hardware prefetchers do not foresee.
inline void prefetch(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
}

// AVX-512 where the CPU has it (and JAXRNN_NATIVE_ISA is not "avx2": the tests run both).
const bool kAvx512 = [] {
  const char* isa = std::getenv("JAXRNN_NATIVE_ISA");
  return __builtin_cpu_supports("avx512f") && !(isa && std::string(isa) == "avx2");
}();

// The step's GEMM C = A B, with B (W_hh or W_hh^T, shared by the team) the same at every step: packed once
// per call into tiles of kTile columns, [tile][k][kTile], zero past B's last column, so that a
// step reads each tile straight from the cache with no per-call packing (OpenBLAS's).
const int64_t kTile = kAvx512 ? 64 : 32;

struct Packed {
  std::vector<float> data;
  int64_t k = 0, cols = 0;
  Packed(const float* b, int64_t ldb, int64_t k, int64_t cols) : k(k), cols(cols) {
    const int64_t tiles = (cols + kTile - 1) / kTile;
    data.assign(tiles * k * kTile, 0.f);
    for (int64_t t = 0; t < tiles; ++t)
      for (int64_t q = 0; q < k; ++q) {
        const int64_t c0 = t * kTile, n = std::min(kTile, cols - c0);
        std::memcpy(data.data() + (t * k + q) * kTile, b + q * ldb + c0, n * sizeof(float));
      }
  }
};

// C (m, b.cols) = A (m, b.k) B, row strides lda and ldc.
void gemm_packed(const float* a, int64_t lda, int64_t m, const Packed& b, float* c, int64_t ldc) {
  (kAvx512 ? simd16::gemm_packed : simd8::gemm_packed)(a, lda, m, b.data.data(), b.k, b.cols, c, ldc);
}

// ------------------------------------------------------------------ threads

// Threads a call may use: JAXRNN_NUM_THREADS, else OMP_NUM_THREADS, else the cores in the
// process's affinity mask (as taskset sets it).
int thread_limit() {
  static const int limit = [] {
    for (const char* name : {"JAXRNN_NUM_THREADS", "OMP_NUM_THREADS"}) {
      const char* env = std::getenv(name);
      int n = env ? std::atoi(env) : 0;
      if (n > 0) return n;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return limit;
}

// OpenBLAS on one thread for every GEMM of a team (its threads are the team's own), set once.
void blas_single_threaded() {
  static const bool once = [] {
    scipy_openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

// Waits by spinning for about `spin_us`, then by `then()` (a yield, or a sleep).
template <class Done, class Then>
void wait_until(Done done, double spin_us, Then then) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; !done(); ++i) {
    _mm_pause();
    if (i % 64 == 63 && std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() >
                            spin_us) {
      while (!done()) then();
      return;
    }
  }
}

// One pool of thread_limit() - 1 workers for every call, whichever XLA thread makes it (an
// OpenMP team per calling thread would leave more threads than cores, and libgomp's barriers
// then sleep: measured 2x slower steps). Between calls a worker spins ~100 us, then sleeps;
// inside a call the team's barrier spins ~50 us, then yields.
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool(thread_limit() - 1);  // never destroyed: its workers outlive main
    return *pool;
  }
  bool try_acquire() { return !busy_.exchange(true, std::memory_order_acquire); }
  void release() { busy_.store(false, std::memory_order_release); }
  int workers() const { return static_cast<int>(threads_.size()); }

  // body(k) for k = 0 .. p-1 (k = 0 on the caller), p <= workers() + 1; every worker takes part
  // in every job (those beyond p at once), so none can lag a job behind.
  void run(int p, const std::function<void(int)>& body) {
    job_ = &body;
    job_threads_ = p;
    remaining_.store(workers(), std::memory_order_relaxed);
    barrier_arrived_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    body(0);
    wait_until([&] { return remaining_.load(std::memory_order_acquire) == 0; }, 1e9, [] {});
  }

  // The team of the job that runs: all p threads arrive before any leaves.
  void barrier() {
    const int p = job_threads_;
    if (p == 1) return;
    const int phase = barrier_phase_.load(std::memory_order_acquire);
    if (barrier_arrived_.fetch_add(1, std::memory_order_acq_rel) == p - 1) {
      barrier_arrived_.store(0, std::memory_order_relaxed);
      barrier_phase_.store(phase + 1, std::memory_order_release);
    } else {
      wait_until([&] { return barrier_phase_.load(std::memory_order_acquire) != phase; }, 50,
                 [] { std::this_thread::yield(); });
    }
  }

 private:
  explicit Pool(int n) {
    for (int k = 1; k <= n; ++k) threads_.emplace_back([this, k] { work(k); });
    for (auto& t : threads_) t.detach();
  }

  void work(int k) {
    uint64_t seen = 0;
    for (;;) {
      auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      wait_until(fresh, 100, [&] {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, fresh);
      });
      seen = generation_.load(std::memory_order_acquire);
      if (k < job_threads_) (*job_)(k);
      remaining_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::vector<std::thread> threads_;
  std::atomic<bool> busy_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> remaining_{0}, barrier_arrived_{0}, barrier_phase_{0};
  const std::function<void(int)>* job_ = nullptr;
  int job_threads_ = 1;
  std::mutex mutex_;
  std::condition_variable wake_;
};

// The threads of one call: the pool when it is free (another call may hold it: several XLA
// devices at once), else the calling thread alone, so the process never runs more than
// thread_limit() + (concurrent calls - 1) threads.
class Threads {
 public:
  explicit Threads(int wanted) {
    Pool& pool = Pool::get();
    wanted = std::min(wanted, pool.workers() + 1);
    if (wanted > 1 && pool.try_acquire()) {
      held_ = true;
      count = wanted;
    }
  }
  ~Threads() {
    if (held_) Pool::get().release();
  }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
  // body(k) on thread k = 0 .. count-1, the caller being thread 0
  void run(const std::function<void(int)>& body) const {
    if (count == 1)
      body(0);
    else
      Pool::get().run(count, body);
  }
  void barrier() const {
    if (count > 1) Pool::get().barrier();
  }
  int count = 1;

 private:
  bool held_ = false;
};

// Threads worth using: each takes a block of at least 4 batch rows, and a step small enough
// that starting the team costs more than it saves runs on one thread.
int wanted_threads(int64_t n, int64_t h) {
  const int64_t flops = 8 * n * h * h;
  if (flops < (1 << 17)) return 1;
  return static_cast<int>(std::min<int64_t>(thread_limit(), std::max<int64_t>(1, n / 4)));
}

struct Rows {  // thread k's batch rows [n0(k), n1(k))
  int64_t n, chunk;
  Rows(int64_t n, int p) : n(n), chunk((n + p - 1) / p) {}
  int64_t n0(int k) const { return std::min(n, k * chunk); }
  int64_t n1(int k) const { return std::min(n, (k + 1) * chunk); }
};

// ------------------------------------------------------------------ checks

struct Dims {
  int64_t t, n, h;
};

ffi::Error shape_error(const char* what, const std::string& expected, ffi::Span<const int64_t> got) {
  std::string s = "jaxrnn native LSTM: ";
  s += what;
  s += " must be " + expected + ", got (";
  for (size_t i = 0; i < got.size(); ++i) s += (i ? ", " : "") + std::to_string(got[i]);
  s += ")";
  return ffi::Error::InvalidArgument(s);
}

std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s = "(";
  size_t i = 0;
  for (int64_t d : dims) s += (i++ ? ", " : "") + std::to_string(d);
  return s + ")";
}

ffi::Error expect(const char* what, ffi::Span<const int64_t> got, const std::vector<int64_t>& want) {
  if (got.size() != want.size() || !std::equal(want.begin(), want.end(), got.begin()))
    return shape_error(what, shape_str(want), got);
  return ffi::Error::Success();
}

// The sequence dims from xp: (T, N, 4H), or (N, T, 4H) when batch first.
ffi::Error sequence_dims(ffi::Span<const int64_t> xp, bool batch_first, Dims* d) {
  if (xp.size() != 3 || xp[2] % 4 != 0 || xp[2] == 0)
    return shape_error("xp", batch_first ? "(batch, time, 4 * hidden)" : "(time, batch, 4 * hidden)", xp);
  *d = batch_first ? Dims{xp[1], xp[0], xp[2] / 4} : Dims{xp[0], xp[1], xp[2] / 4};
  return ffi::Error::Success();
}

#define JAXRNN_CHECK(expr)              \
  do {                                  \
    ffi::Error error_ = (expr);         \
    if (error_.failure()) return error_; \
  } while (0)

ffi::Error check_lengths(const int32_t* lengths, const Dims& d) {
  for (int64_t n = 0; n < d.n; ++n)
    if (lengths[n] < 0 || lengths[n] > d.t)
      return ffi::Error::InvalidArgument("jaxrnn native LSTM: lengths must lie in [0, " + std::to_string(d.t) +
                                         "], got " + std::to_string(lengths[n]) + " at batch row " +
                                         std::to_string(n));
  return ffi::Error::Success();
}

// ------------------------------------------------------------------ the loops

struct Layout {  // where step t of batch row n starts in a (T, N, F) or (N, T, F) array
  Dims d;
  bool batch_first;
  int64_t row(int64_t t, int64_t n) const { return batch_first ? n * d.t + t : t * d.n + n; }
};

struct Forward {
  const float *xp, *w_hh, *bias, *h0, *c0;
  const int32_t* lengths;
  float *ys, *h_n, *c_n, *gates, *cs;  // gates and cs null without saving
  Layout at;
  bool reverse;
};

void lstm_forward(const Forward& a) {  // no OpenBLAS here: the step GEMM is our own
  const Dims d = a.at.d;
  const int64_t h = d.h, g4 = 4 * h;
  Threads team(wanted_threads(d.n, h));
  const Rows rows(d.n, team.count);
  std::vector<float> wt(h * g4);  // W_hh^T (H, 4H), the step GEMM's B
  for (int64_t i = 0; i < g4; ++i)
    for (int64_t q = 0; q < h; ++q) wt[q * g4 + i] = a.w_hh[i * h + q];
  const Packed wk(wt.data(), g4, h, g4);
  std::vector<float> pre(d.n * g4);
  float *hs = a.h_n, *c = a.c_n;  // the state, h_n and c_n at the end
  std::memcpy(hs, a.h0, d.n * h * sizeof(float));
  std::memcpy(c, a.c0, d.n * h * sizeof(float));

  team.run([&](int k) {  // this thread's rows, every step: no other thread's data, no barrier
    const int64_t n0 = rows.n0(k), n1 = rows.n1(k);
    if (n1 == n0) return;
    for (int64_t s = 0; s < d.t; ++s) {
      const int64_t t = a.reverse ? d.t - 1 - s : s;
      gemm_packed(hs + n0 * h, h, n1 - n0, wk, pre.data() + n0 * g4, g4);  // before h is overwritten
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t r = a.at.row(t, n);
        float* y = a.ys + r * h;
        if (t >= a.lengths[n]) {  // a padded step: the state stays, the output is zero
          std::memset(y, 0, h * sizeof(float));
          if (a.cs) std::memset(a.cs + r * h, 0, h * sizeof(float));
          if (a.gates) std::memset(a.gates + r * g4, 0, g4 * sizeof(float));
          continue;
        }
        if (s + 1 < d.t) prefetch(a.xp + a.at.row(a.reverse ? t - 1 : t + 1, n) * g4, g4);
        (kAvx512 ? simd16::forward_row : simd8::forward_row)(a.xp + r * g4, a.bias, pre.data() + n * g4, c + n * h,
                                                              hs + n * h, y, a.gates ? a.gates + r * g4 : nullptr,
                                                              a.cs ? a.cs + r * h : nullptr, h);
      }
    }
  });
}

struct Backward {
  const float *w_hh, *h0, *c0, *ys, *gates, *cs, *dys, *dh_n, *dc_n;
  const int32_t* lengths;
  float *da, *dw_hh, *dh0, *dc0;
  Layout at;
  bool reverse;
};

void lstm_backward(const Backward& a) {
  const Dims d = a.at.d;
  const int64_t h = d.h, g4 = 4 * h;
  blas_single_threaded();
  Threads team(wanted_threads(d.n, h));
  const int p = team.count;
  const Rows rows(d.n, p);
  const Packed wk(a.w_hh, h, g4, h);  // W_hh (4H, H), the step GEMM's B
  std::vector<float> dtmp(d.n * h), hprev(d.t * d.n * h);
  const int64_t stride = a.at.row(0, 1) - a.at.row(0, 0);  // from one batch row of da to the next
  float* dh = a.dh0;
  float* dc = a.dc0;
  std::memcpy(dh, a.dh_n, d.n * h * sizeof(float));
  std::memcpy(dc, a.dc_n, d.n * h * sizeof(float));

  team.run([&](int k) {
    const int64_t n0 = rows.n0(k), n1 = rows.n1(k);
    for (int64_t s = 0; s < d.t && n1 > n0; ++s) {  // this thread's rows: no barrier
      const int64_t t = a.reverse ? s : d.t - 1 - s;  // the forward walk, backwards
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t r = a.at.row(t, n);
        float* out = a.da + r * g4;
        if (t >= a.lengths[n]) {  // a padded step: the carry's gradient passes through
          std::memset(out, 0, g4 * sizeof(float));
          std::memset(hprev.data() + r * h, 0, h * sizeof(float));
          continue;
        }
        const bool first = a.reverse ? t + 1 >= a.lengths[n] : t == 0;  // the walk's first step
        const int64_t before = first ? -1 : a.at.row(a.reverse ? t + 1 : t - 1, n);
        const float* cprev = first ? a.c0 + n * h : a.cs + before * h;
        std::memcpy(hprev.data() + r * h, first ? a.h0 + n * h : a.ys + before * h, h * sizeof(float));
        if (!first) {  // the next step of this walk backwards is the one before
          prefetch(a.gates + before * g4, g4);
          prefetch(a.cs + before * h, h);
          prefetch(a.dys + before * h, h);
        }
        (kAvx512 ? simd16::backward_row : simd8::backward_row)(a.gates + r * g4, a.cs + r * h, cprev, a.dys + r * h,
                                                                dh + n * h, dc + n * h, out, h);
      }
      // dh(t-1) = da W_hh for this thread's rows, kept where the step was padded
      gemm_packed(a.da + a.at.row(t, n0) * g4, stride * g4, n1 - n0, wk, dtmp.data() + n0 * h, h);
      for (int64_t n = n0; n < n1; ++n)
        if (t < a.lengths[n]) std::memcpy(dh + n * h, dtmp.data() + n * h, h * sizeof(float));
    }
    // dW_hh = sum over steps and rows of da^T h(t-1): one GEMM, its 4H rows split between threads
    team.barrier();
    const int64_t part = (g4 + p - 1) / p, r0 = std::min(g4, k * part), r1 = std::min(g4, r0 + part);
    if (r1 > r0)
      scipy_cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1 - r0, h, d.t * d.n, 1.0f, a.da + r0, g4,
                        hprev.data(), h, 0.0f, a.dw_hh + r0 * h, h);
  });
}

// C = op(A) op(B) for row-major 2-D arrays (op: transpose or not): the input projection
// x W_ih^T and its gradients dxp W_ih and dxp^T x. The team splits C's rows, each thread one
// single-threaded GEMM on its block (op(A)'s rows; of A^T, a block of A's columns).
void gemm(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  blas_single_threaded();
  const double macs = static_cast<double>(m) * n * k;
  Threads team(macs < (1 << 20) || m < 32 ? 1 : static_cast<int>(std::min<int64_t>(thread_limit(), m / 16)));
  const int p = team.count;
  const int64_t rows = ((m + p - 1) / p + 15) / 16 * 16;
  const int64_t lda = ta ? m : k, ldb = tb ? k : n;
  team.run([&](int thread) {
    const int64_t r0 = std::min(m, thread * rows), r1 = std::min(m, r0 + rows);
    if (r1 > r0)
      scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, r1 - r0, n,
                        k, 1.0f, a + (ta ? r0 : r0 * lda), lda, b, ldb, 0.0f, c + r0 * n, n);
  });
}

// ------------------------------------------------------------------ FFI handlers

using F32 = ffi::Buffer<ffi::F32>;
using S32 = ffi::Buffer<ffi::S32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

ffi::Error forward_impl(F32 xp, F32 w_hh, F32 bias, F32 h0, F32 c0, S32 lengths, F32Out ys, F32Out h_n, F32Out c_n,
                        F32Out gates, F32Out cs, int64_t batch_first, int64_t reverse, int64_t save) {
  Dims d;
  JAXRNN_CHECK(sequence_dims(xp.dimensions(), batch_first, &d));
  const int64_t g4 = 4 * d.h;
  auto seq = [&](int64_t f) { return batch_first ? std::vector<int64_t>{d.n, d.t, f} : std::vector<int64_t>{d.t, d.n, f}; };
  JAXRNN_CHECK(expect("weight_hh", w_hh.dimensions(), {g4, d.h}));
  JAXRNN_CHECK(expect("bias", bias.dimensions(), {g4}));
  JAXRNN_CHECK(expect("h0", h0.dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(expect("c0", c0.dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(expect("lengths", lengths.dimensions(), {d.n}));
  JAXRNN_CHECK(expect("ys", ys->dimensions(), seq(d.h)));
  JAXRNN_CHECK(expect("h_n", h_n->dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(expect("c_n", c_n->dimensions(), {d.n, d.h}));
  if (save) {
    JAXRNN_CHECK(expect("gates", gates->dimensions(), seq(g4)));
    JAXRNN_CHECK(expect("cs", cs->dimensions(), seq(d.h)));
  }
  JAXRNN_CHECK(check_lengths(lengths.typed_data(), d));
  Forward a{xp.typed_data(), w_hh.typed_data(), bias.typed_data(), h0.typed_data(), c0.typed_data(),
            lengths.typed_data(), ys->typed_data(), h_n->typed_data(), c_n->typed_data(),
            save ? gates->typed_data() : nullptr, save ? cs->typed_data() : nullptr, Layout{d, batch_first != 0},
            reverse != 0};
  lstm_forward(a);
  return ffi::Error::Success();
}

ffi::Error backward_impl(F32 w_hh, F32 h0, F32 c0, S32 lengths, F32 ys, F32 gates, F32 cs, F32 dys, F32 dh_n,
                         F32 dc_n, F32Out da, F32Out dw_hh, F32Out dh0, F32Out dc0, int64_t batch_first,
                         int64_t reverse) {
  Dims d;
  JAXRNN_CHECK(sequence_dims(gates.dimensions(), batch_first, &d));
  const int64_t g4 = 4 * d.h;
  auto seq = [&](int64_t f) { return batch_first ? std::vector<int64_t>{d.n, d.t, f} : std::vector<int64_t>{d.t, d.n, f}; };
  JAXRNN_CHECK(expect("weight_hh", w_hh.dimensions(), {g4, d.h}));
  JAXRNN_CHECK(expect("h0", h0.dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(expect("c0", c0.dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(expect("lengths", lengths.dimensions(), {d.n}));
  JAXRNN_CHECK(expect("ys", ys.dimensions(), seq(d.h)));
  JAXRNN_CHECK(expect("cs", cs.dimensions(), seq(d.h)));
  JAXRNN_CHECK(expect("dys", dys.dimensions(), seq(d.h)));
  JAXRNN_CHECK(expect("dh_n", dh_n.dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(expect("dc_n", dc_n.dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(expect("da", da->dimensions(), seq(g4)));
  JAXRNN_CHECK(expect("dw_hh", dw_hh->dimensions(), {g4, d.h}));
  JAXRNN_CHECK(expect("dh0", dh0->dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(expect("dc0", dc0->dimensions(), {d.n, d.h}));
  JAXRNN_CHECK(check_lengths(lengths.typed_data(), d));
  Backward a{w_hh.typed_data(), h0.typed_data(), c0.typed_data(), ys.typed_data(), gates.typed_data(),
             cs.typed_data(), dys.typed_data(), dh_n.typed_data(), dc_n.typed_data(), lengths.typed_data(),
             da->typed_data(), dw_hh->typed_data(), dh0->typed_data(), dc0->typed_data(),
             Layout{d, batch_first != 0}, reverse != 0};
  lstm_backward(a);
  return ffi::Error::Success();
}

ffi::Error gemm_impl(F32 a, F32 b, F32Out c, int64_t trans_a, int64_t trans_b) {
  auto da = a.dimensions(), db = b.dimensions();
  if (da.size() != 2) return shape_error("a", "a matrix", da);
  if (db.size() != 2) return shape_error("b", "a matrix", db);
  const int64_t m = trans_a ? da[1] : da[0], k = trans_a ? da[0] : da[1];
  const int64_t kb = trans_b ? db[1] : db[0], n = trans_b ? db[0] : db[1];
  if (kb != k)
    return shape_error("b", std::string(trans_b ? "(n, " : "(") + std::to_string(k) + (trans_b ? ")" : ", n)") +
                                " (a's contracted dimension)", db);
  JAXRNN_CHECK(expect("c", c->dimensions(), {m, n}));
  if (m * n == 0) return ffi::Error::Success();
  if (k == 0) {
    std::memset(c->typed_data(), 0, m * n * sizeof(float));
    return ffi::Error::Success();
  }
  gemm(a.typed_data(), b.typed_data(), c->typed_data(), m, n, k, trans_a != 0, trans_b != 0);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnLstmForward, forward_impl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()  // xp
                                  .Arg<F32>()  // weight_hh
                                  .Arg<F32>()  // bias
                                  .Arg<F32>()  // h0
                                  .Arg<F32>()  // c0
                                  .Arg<S32>()  // lengths
                                  .Ret<F32>()  // ys
                                  .Ret<F32>()  // h_n
                                  .Ret<F32>()  // c_n
                                  .Ret<F32>()  // gates (activations), or (0,) without save
                                  .Ret<F32>()  // cs, or (0,) without save
                                  .Attr<int64_t>("batch_first")
                                  .Attr<int64_t>("reverse")
                                  .Attr<int64_t>("save"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnLstmBackward, backward_impl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()  // weight_hh
                                  .Arg<F32>()  // h0
                                  .Arg<F32>()  // c0
                                  .Arg<S32>()  // lengths
                                  .Arg<F32>()  // ys
                                  .Arg<F32>()  // gates
                                  .Arg<F32>()  // cs
                                  .Arg<F32>()  // dys
                                  .Arg<F32>()  // dh_n
                                  .Arg<F32>()  // dc_n
                                  .Ret<F32>()  // da
                                  .Ret<F32>()  // dw_hh
                                  .Ret<F32>()  // dh0
                                  .Ret<F32>()  // dc0
                                  .Attr<int64_t>("batch_first")
                                  .Attr<int64_t>("reverse"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnGemm, gemm_impl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()  // a
                                  .Arg<F32>()  // b
                                  .Ret<F32>()  // c = op(a) op(b)
                                  .Attr<int64_t>("trans_a")
                                  .Attr<int64_t>("trans_b"));

// The threads a call may use, and the step GEMM's instruction set, for jaxrnn.native.status().
extern "C" int jaxrnn_native_threads() { return thread_limit(); }
extern "C" const char* jaxrnn_native_isa() { return kAvx512 ? "avx512" : "avx2"; }

// One row-major float32 GEMM C = A B through the library the kernel uses, on `threads` threads,
// for the benchmark's same-run GEMM rate (not while a kernel runs: OpenBLAS's count is global).
extern "C" void jaxrnn_native_sgemm(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                                    int threads) {
  scipy_openblas_set_num_threads(threads);
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
  scipy_openblas_set_num_threads(1);
}
