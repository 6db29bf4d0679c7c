// Fused CPU kernels for the fixed-grid mask module (inference path).
//
// The reference implementation is the pure-PyTorch code of
// GridTokenMerger in mmltm/ops/mask_module.py, equations (G2)-(G4) of its
// docstring, and the unmerge of mmltm/ops/merge_mask.py; these
// kernels compute the same numbers in one pass over the tokens instead of
// about eight eager passes (gathers, index_add, norms, a segment softmax),
// and are used only where no gradient is needed (fused.can_fuse).
//
// Layout: z is (B, N, C) float32, contiguous. The grid assignment a(n) is
// given in CSR form: the tokens of cell k are
// cell_tokens[cell_ptr[k] .. cell_ptr[k + 1]), so a thread that owns a cell
// reads its (at most a few) member rows while they are in cache.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

// The per-channel loops are what the kernels spend their time on: build them
// for AVX-512 and AVX2+FMA too and let the loader pick per machine (GCC's
// function multi-versioning), so that one build runs anywhere x86-64 does.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define MMLTM_SIMD_CLONES \
  __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define MMLTM_SIMD_CLONES
#endif

namespace {

inline __attribute__((always_inline)) float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

void check_inputs(const at::Tensor& z, const at::Tensor& cell_ptr,
                  const at::Tensor& cell_tokens) {
  TORCH_CHECK(z.device().is_cpu() && z.scalar_type() == at::kFloat && z.dim() == 3 &&
                  z.is_contiguous(),
              "ltm fused ops: z must be a contiguous (B, N, C) float32 CPU tensor");
  TORCH_CHECK(cell_ptr.scalar_type() == at::kLong && cell_tokens.scalar_type() == at::kLong &&
                  cell_ptr.is_contiguous() && cell_tokens.is_contiguous(),
              "ltm fused ops: the cell plan must be contiguous int64 tensors");
  TORCH_CHECK(cell_tokens.numel() == z.size(1),
              "ltm fused ops: the plan lists ", cell_tokens.numel(), " tokens, z has ",
              z.size(1));
  // the kernels index z with these: check them once here, not in the loops
  const int64_t N = z.size(1), K = cell_ptr.numel() - 1;
  TORCH_CHECK(K >= 1, "ltm fused ops: cell_ptr must hold at least 2 entries");
  const int64_t* ptr = cell_ptr.data_ptr<int64_t>();
  TORCH_CHECK(ptr[0] == 0 && ptr[K] == N, "ltm fused ops: cell_ptr must run from 0 to N = ",
              N, ", got ", ptr[0], " .. ", ptr[K]);
  for (int64_t k = 0; k < K; ++k) {
    TORCH_CHECK(ptr[k] < ptr[k + 1], "ltm fused ops: cell_ptr must increase strictly (cell ",
                k, " is empty or reversed: ", ptr[k], " .. ", ptr[k + 1], ")");
  }
  const int64_t* tok = cell_tokens.data_ptr<int64_t>();
  for (int64_t n = 0; n < N; ++n) {
    TORCH_CHECK(tok[n] >= 0 && tok[n] < N, "ltm fused ops: cell_tokens[", n, "] = ", tok[n],
                " is out of range [0, ", N, ")");
  }
}

struct CellMergeArgs {
  const float* z;      // (B, N, C)
  const float* prior;  // (B, N) or nullptr (uniform prior)
  const int64_t* ptr;  // (K + 1)
  const int64_t* tok;  // (N)
  float* weight;       // (B, N) out
  float* merged;       // (B, K, C) out
  int64_t N, C, K;
  float step;
};

// (G2)-(G4) for the cells begin..end of the flattened (B, K)
MMLTM_SIMD_CLONES
void merge_cells(const CellMergeArgs& a, int64_t begin, int64_t end) {
  const int64_t N = a.N, C = a.C, K = a.K;
  const bool uniform = a.prior == nullptr;
  const float *zp = a.z, *pp = a.prior;
  const int64_t *ptr = a.ptr, *tok = a.tok;
  float *wp = a.weight, *mp = a.merged;
  const float step = a.step;
  std::vector<float> centroid(C);
  std::vector<float> expo(16);
  for (int64_t bk = begin; bk < end; ++bk) {
    const int64_t b = bk / K, k = bk % K;
    const int64_t first = ptr[k], size = ptr[k + 1] - first;
    const float* zb = zp + b * N * C;
    float* out = mp + bk * C;
    if (size == 1) {  // a cell of one token: its softmax weight is exactly 1
      const int64_t n = tok[first];
      wp[b * N + n] = 1.f;
      std::copy(zb + n * C, zb + (n + 1) * C, out);
      continue;
    }
    // (G3) c_k = sum_n w0[n] z_n
    std::fill(centroid.begin(), centroid.end(), 0.f);
    for (int64_t i = 0; i < size; ++i) {
      const int64_t n = tok[first + i];
      const float w0 = uniform ? 1.f : pp[b * N + n];
      const float* zn = zb + n * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) centroid[c] += w0 * zn[c];
    }
    const float cnorm = std::sqrt(dot(centroid.data(), centroid.data(), C));
    // (G4) w[n] = w0[n] exp(eta (s_n - 1)) / sum over the cell
    if (static_cast<int64_t>(expo.size()) < size) expo.resize(size);
    float denom = 0.f;
    for (int64_t i = 0; i < size; ++i) {
      const int64_t n = tok[first + i];
      const float* zn = zb + n * C;
      const float norms = std::max(std::sqrt(dot(zn, zn, C)) * cnorm, 1e-12f);
      const float s = dot(centroid.data(), zn, C) / norms;
      float e = std::exp(step * (s - 1.f));
      if (!uniform) e *= pp[b * N + n];
      expo[i] = e;
      denom += e;
    }
    // merge: X~_k = sum_n w[n] z_n
    std::fill(out, out + C, 0.f);
    for (int64_t i = 0; i < size; ++i) {
      const int64_t n = tok[first + i];
      const float w = expo[i] / denom;
      wp[b * N + n] = w;
      const float* zn = zb + n * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] += w * zn[c];
    }
  }
}

// out_n = base_n + delta_{a(n)} for the rows begin..end of the flattened (B, N)
MMLTM_SIMD_CLONES
void add_gathered_rows(const float* bp, const float* dp, const int64_t* ap, float* op,
                       int64_t N, int64_t C, int64_t K, int64_t a_stride, int64_t begin,
                       int64_t end) {
  for (int64_t bn = begin; bn < end; ++bn) {
    const int64_t b = bn / N, n = bn % N;
    const float* x = bp + bn * C;
    const float* d = dp + (b * K + ap[b * a_stride + n]) * C;
    float* o = op + bn * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = x[c] + d[c];
  }
}

// ---------------------------------------------------------------------------
// The learned LTM mask module (TokenMerger, (M1)-(M5) of mask_module.py), at
// inference: the projected features P'z (B, N, d) come from PyTorch (one
// small matmul); this kernel normalises them, forms the representatives
// (M2) from the anchors or the prior mask, assigns every movable token to the
// most similar of its candidate cells (M3), computes the soft weights (M4)
// and the merged tokens (M5).

struct LTMArgs {
  const float* z;         // (B, N, C)
  float* f;               // (B, N, d) scratch: the unit-norm features
  float* q;               // (B, K, d) scratch: the unit-norm representatives
  const int64_t* prior_assign;  // (N) or (B, N), or nullptr (no prior)
  const float* prior_weight;    // (B, N) or nullptr
  int64_t prior_stride;         // 0 for a shared prior assignment, else N
  const int64_t* anchor;  // (K)
  const int64_t* movable; // (M)
  const int64_t* cand;    // (M, J)
  const bool* valid;      // (M, J)
  int64_t* assign;        // (B, N) out
  float* weight;          // (B, N) out (first exp(eta (s - 1)), then normalised)
  float* denom;           // (B, K) scratch
  float* merged;          // (B, K, C) out
  int64_t N, C, K, M, J, d;
  float step;
};

inline void normalise_rows(float* x, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * d;
    const float inv = 1.f / std::max(std::sqrt(dot(v, v, d)), 1e-12f);
    for (int64_t i = 0; i < d; ++i) v[i] *= inv;
  }
}

// (M1)-(M4) for sample b: features, representatives, assignment, weights
MMLTM_SIMD_CLONES
void ltm_assign_sample(const LTMArgs& a, int64_t b) {
  const int64_t N = a.N, K = a.K, M = a.M, J = a.J, d = a.d;
  float* fb = a.f + b * N * d;
  float* qb = a.q + b * K * d;
  int64_t* ab = a.assign + b * N;
  float* wb = a.weight + b * N;
  float* db = a.denom + b * K;
  normalise_rows(fb, N, d);
  if (a.prior_assign == nullptr) {  // (M2) the anchors' features
    for (int64_t k = 0; k < K; ++k)
      std::copy(fb + a.anchor[k] * d, fb + (a.anchor[k] + 1) * d, qb + k * d);
  } else {  // (M2) merged features under the prior G(l-1)
    std::fill(qb, qb + K * d, 0.f);
    const int64_t* pa = a.prior_assign + b * a.prior_stride;
    const float* pw = a.prior_weight + b * N;
    for (int64_t n = 0; n < N; ++n) {
      float* qk = qb + pa[n] * d;
      const float w = pw[n];
      for (int64_t i = 0; i < d; ++i) qk[i] += w * fb[n * d + i];
    }
    normalise_rows(qb, K, d);
  }
  for (int64_t k = 0; k < K; ++k) {
    const int64_t n = a.anchor[k];
    ab[n] = k;
    const float e = std::exp(a.step * (dot(fb + n * d, qb + k * d, d) - 1.f));
    wb[n] = e;
    db[k] = e;
  }
  for (int64_t m = 0; m < M; ++m) {
    const int64_t n = a.movable[m];
    const float* fn = fb + n * d;
    const int64_t* cm = a.cand + m * J;
    const bool* vm = a.valid + m * J;
    int64_t best = cm[0];
    float best_s = dot(fn, qb + best * d, d);
    for (int64_t j = 1; j < J; ++j) {
      if (!vm[j]) continue;
      const float s = dot(fn, qb + cm[j] * d, d);
      if (s > best_s) { best_s = s; best = cm[j]; }  // ties keep the own cell
    }
    ab[n] = best;
    const float e = std::exp(a.step * (best_s - 1.f));
    wb[n] = e;
    db[best] += e;
  }
  for (int64_t n = 0; n < N; ++n) wb[n] /= db[ab[n]];
}

// (M5) merged[b, :, c0:c1] for the (sample, channel chunk) pairs begin..end
MMLTM_SIMD_CLONES
void ltm_merge_chunks(const LTMArgs& a, int64_t chunk, int64_t n_chunks, int64_t begin,
                      int64_t end) {
  const int64_t N = a.N, C = a.C, K = a.K;
  for (int64_t bc = begin; bc < end; ++bc) {
    const int64_t b = bc / n_chunks, c0 = (bc % n_chunks) * chunk;
    const int64_t len = std::min(chunk, C - c0);
    const float* zb = a.z + b * N * C + c0;
    const int64_t* ab = a.assign + b * N;
    const float* wb = a.weight + b * N;
    float* mb = a.merged + b * K * C + c0;
    for (int64_t k = 0; k < K; ++k) {  // anchors first: no zero-fill pass
      const int64_t n = a.anchor[k];
      const float w = wb[n];
      const float* zn = zb + n * C;
      float* out = mb + k * C;
#pragma omp simd
      for (int64_t c = 0; c < len; ++c) out[c] = w * zn[c];
    }
    for (int64_t m = 0; m < a.M; ++m) {
      const int64_t n = a.movable[m];
      const float w = wb[n];
      const float* zn = zb + n * C;
      float* out = mb + ab[n] * C;
#pragma omp simd
      for (int64_t c = 0; c < len; ++c) out[c] += w * zn[c];
    }
  }
}

std::vector<at::Tensor> ltm_mask_and_merge(const at::Tensor& z, const at::Tensor& proj_z,
                                           const at::Tensor& prior_assign,
                                           const at::Tensor& prior_weight,
                                           const at::Tensor& anchor,
                                           const at::Tensor& movable,
                                           const at::Tensor& candidates,
                                           const at::Tensor& valid, double eta) {
  TORCH_CHECK(z.device().is_cpu() && z.scalar_type() == at::kFloat && z.dim() == 3 &&
                  z.is_contiguous(),
              "ltm fused ops: z must be a contiguous (B, N, C) float32 CPU tensor");
  const int64_t B = z.size(0), N = z.size(1), C = z.size(2);
  const int64_t K = anchor.numel(), M = movable.numel();
  TORCH_CHECK(proj_z.scalar_type() == at::kFloat && proj_z.dim() == 3 &&
                  proj_z.size(0) == B && proj_z.size(1) == N,
              "ltm fused ops: the projected features must be a (B, N, d) float32 tensor");
  const int64_t d = proj_z.size(2);
  const bool has_prior = prior_assign.numel() > 0;
  TORCH_CHECK(!has_prior ||
                  (prior_assign.scalar_type() == at::kLong && prior_assign.is_contiguous() &&
                   prior_assign.size(-1) == N &&
                   (prior_assign.dim() == 1 ||
                    (prior_assign.dim() == 2 && prior_assign.size(0) == B)) &&
                   prior_weight.scalar_type() == at::kFloat && prior_weight.is_contiguous() &&
                   prior_weight.dim() == 2 && prior_weight.size(0) == B &&
                   prior_weight.size(1) == N),
              "ltm fused ops: the prior must be an int64 assignment (N,) or (B, N) and "
              "float32 weights (B, N)");
  TORCH_CHECK(anchor.scalar_type() == at::kLong && movable.scalar_type() == at::kLong &&
                  candidates.scalar_type() == at::kLong && valid.scalar_type() == at::kBool &&
                  anchor.is_contiguous() && movable.is_contiguous() &&
                  candidates.is_contiguous() && valid.is_contiguous() &&
                  candidates.dim() == 2 && candidates.size(0) == M &&
                  valid.sizes() == candidates.sizes() && K + M == N && K >= 1,
              "ltm fused ops: the grid plan (anchor, movable, candidates, valid) does not "
              "describe ", N, " tokens");
  const int64_t J = candidates.size(1);
  const int64_t* ap = anchor.data_ptr<int64_t>();
  const int64_t* mp = movable.data_ptr<int64_t>();
  const int64_t* cp = candidates.data_ptr<int64_t>();
  for (int64_t k = 0; k < K; ++k)
    TORCH_CHECK(ap[k] >= 0 && ap[k] < N, "ltm fused ops: anchor[", k, "] = ", ap[k],
                " is out of range [0, ", N, ")");
  for (int64_t m = 0; m < M; ++m)
    TORCH_CHECK(mp[m] >= 0 && mp[m] < N, "ltm fused ops: movable[", m, "] = ", mp[m],
                " is out of range [0, ", N, ")");
  for (int64_t i = 0; i < M * J; ++i)
    TORCH_CHECK(cp[i] >= 0 && cp[i] < K, "ltm fused ops: candidates[", i / J, ", ", i % J,
                "] = ", cp[i], " is not a merged token (there are ", K, ")");
  if (has_prior) {
    const int64_t* pa = prior_assign.data_ptr<int64_t>();
    for (int64_t i = 0; i < prior_assign.numel(); ++i)
      TORCH_CHECK(pa[i] >= 0 && pa[i] < K, "ltm fused ops: prior assign entry ", i, " = ",
                  pa[i], " is not a merged token (there are ", K, ")");
  }
  auto f = proj_z.contiguous().clone();
  auto q = at::empty({B, K, d}, z.options());
  auto assign = at::empty({B, N}, z.options().dtype(at::kLong));
  auto weight = at::empty({B, N}, z.options());
  auto denom = at::empty({B, K}, z.options());
  auto merged = at::empty({B, K, C}, z.options());
  const LTMArgs args{z.data_ptr<float>(), f.data_ptr<float>(), q.data_ptr<float>(),
                     has_prior ? prior_assign.data_ptr<int64_t>() : nullptr,
                     has_prior ? prior_weight.data_ptr<float>() : nullptr,
                     has_prior && prior_assign.dim() == 2 ? N : 0, ap, mp,
                     cp, valid.data_ptr<bool>(), assign.data_ptr<int64_t>(),
                     weight.data_ptr<float>(), denom.data_ptr<float>(),
                     merged.data_ptr<float>(), N, C, K, M, J, d,
                     static_cast<float>(eta)};
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) ltm_assign_sample(args, b);
  });
  // split the channels too, so that one image still uses every thread
  const int64_t threads = at::get_num_threads();
  const int64_t want = std::max<int64_t>(1, (4 * threads + B - 1) / B);
  const int64_t chunk = std::max<int64_t>(16, ((C + want - 1) / want + 15) / 16 * 16);
  const int64_t n_chunks = (C + chunk - 1) / chunk;
  at::parallel_for(0, B * n_chunks, 1, [&](int64_t begin, int64_t end) {
    ltm_merge_chunks(args, chunk, n_chunks, begin, end);
  });
  return {assign, weight, merged};
}

}  // namespace

// (G2)-(G4): the soft weights w (B, N) and the merged tokens X~ (B, N', C).
// prior: (B, N) float32, the previous block's weights, or an empty tensor for
// the uniform prior (G2), under which w0 is constant within a cell and
// cancels from both the centroid's direction and the softmax.
std::vector<at::Tensor> mask_and_merge(const at::Tensor& z, const at::Tensor& prior,
                                       const at::Tensor& cell_ptr,
                                       const at::Tensor& cell_tokens, double eta) {
  check_inputs(z, cell_ptr, cell_tokens);
  const bool uniform = prior.numel() == 0;
  TORCH_CHECK(uniform || (prior.scalar_type() == at::kFloat && prior.is_contiguous() &&
                          prior.dim() == 2 && prior.size(0) == z.size(0) &&
                          prior.size(1) == z.size(1)),
              "ltm fused ops: prior must be a contiguous (B, N) float32 tensor");
  const int64_t B = z.size(0), N = z.size(1), C = z.size(2);
  const int64_t K = cell_ptr.numel() - 1;
  auto weight = at::empty({B, N}, z.options());
  auto merged = at::empty({B, K, C}, z.options());
  const float* zp = z.data_ptr<float>();
  const float* pp = uniform ? nullptr : prior.data_ptr<float>();
  const int64_t* ptr = cell_ptr.data_ptr<int64_t>();
  const int64_t* tok = cell_tokens.data_ptr<int64_t>();
  float* wp = weight.data_ptr<float>();
  float* mp = merged.data_ptr<float>();
  const float step = static_cast<float>(eta);
  // a cell costs a few passes over C floats: give each task enough of them
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(C, 1));

  const CellMergeArgs args{zp, pp, ptr, tok, wp, mp, N, C, K, step};
  at::parallel_for(0, B * K, grain, [&](int64_t begin, int64_t end) {
    merge_cells(args, begin, end);
  });
  return {weight, merged};
}

// base + the unmerge: out_n = base_n + delta_{a(n)}, (B, N, C), in one pass.
at::Tensor unmerge_add(const at::Tensor& base, const at::Tensor& delta,
                       const at::Tensor& assign) {
  TORCH_CHECK(base.device().is_cpu() && base.scalar_type() == at::kFloat &&
                  delta.scalar_type() == at::kFloat && base.dim() == 3 && delta.dim() == 3 &&
                  base.is_contiguous() && delta.is_contiguous(),
              "ltm fused ops: base and delta must be contiguous 3-d float32 CPU tensors");
  const bool per_sample = assign.dim() == 2;
  TORCH_CHECK(assign.scalar_type() == at::kLong && assign.is_contiguous() &&
                  assign.size(-1) == base.size(1) &&
                  (!per_sample || assign.size(0) == base.size(0)),
              "ltm fused ops: assign must be int64, (N,) or (B, N), one entry per token");
  TORCH_CHECK(delta.size(0) == base.size(0) && delta.size(2) == base.size(2),
              "ltm fused ops: base ", base.sizes(), " and delta ", delta.sizes(),
              " do not match");
  const int64_t B = base.size(0), N = base.size(1), C = base.size(2), K = delta.size(1);
  auto out = at::empty_like(base);
  const float* bp = base.data_ptr<float>();
  const float* dp = delta.data_ptr<float>();
  const int64_t* ap = assign.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  for (int64_t n = 0; n < assign.numel(); ++n)
    TORCH_CHECK(ap[n] >= 0 && ap[n] < K, "ltm fused ops: assign[", n, "] = ", ap[n],
                " is not a merged token (there are ", K, ")");
  const int64_t a_stride = per_sample ? N : 0;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(C, 1));
  at::parallel_for(0, B * N, grain, [&](int64_t begin, int64_t end) {
    add_gathered_rows(bp, dp, ap, op, N, C, K, a_stride, begin, end);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmltm fused CPU kernels for the LTM mask module (inference path)";
  m.def("mask_and_merge", &mask_and_merge,
        "(G2)-(G4): soft weights (B, N) and merged tokens (B, N', C)");
  m.def("unmerge_add", &unmerge_add, "base + unmerge(delta): (B, N, C)");
  m.def("ltm_mask_and_merge", &ltm_mask_and_merge,
        "(M1)-(M5): assignment (B, N), soft weights (B, N), merged tokens (B, N', C)");
}
