/*
 * 3x3 stride-1 'same' (pad 1) NHWC convolution by Winograd transforms, for the tfjs wasm
 * backend (see conv-kernels.ts). Freestanding C: no libc, no static data, no stack use, so
 * the module can import tfjs's own WebAssembly.Memory and work on tensors in place.
 *
 * Forward (and input gradient): F(4x4, 3x3). Per block of `tb` 4x4 output tiles:
 *   1. input transform  V[p][t][ci] = (B^T d B)[p]   for the 6x6 input patch d of tile t,
 *   2. 36 GEMMs         M[p][t][co] = sum_ci V[p][t][ci] * U[p][ci][co],
 *   3. output transform y = A^T M A (+ bias, relu), written straight into the NHWC output.
 * U = G g G^T is made once per call by wino_filter. A block's V and M stay in L2.
 * F(4x4) does 2.25 multiplies per output and tap pair against 4 for F(2x2) and 9 direct; its
 * float32 error is ~5e-6 of the output scale (F(2x2): ~3e-7), well inside the 1e-4 budget.
 *
 * Filter gradient: F(2x2, 3x3) run backwards (see wino_filter_grad): its sums over every tile
 * of the batch would amplify F(4x4)'s larger transform constants.
 *
 * Every other dense conv (strided, other filter sizes, other padding; dilation 1): a direct
 * GEMM over im2col blocks (direct_conv, direct_input_grad, direct_filter_grad), sharing the
 * register-blocked micro-kernels.
 *
 * MADD(a, b, c) = a * b + c. The relaxed build (-DEMO_RELAXED) emits clang-14's prototype
 * `f32x4.fma` (0xfd 0xaf 0x01, a + b * c), which build-wasm-kernels.sh rewrites to the final
 * `f32x4.relaxed_madd` (0xfd 0x85 0x02, a * b + c): same operands, same length.
 */
#include <wasm_simd128.h>

#ifdef EMO_RELAXED
#define MADD(a, b, c) __builtin_wasm_fma_f32x4((a), (b), (c))
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul((a), (b)), (c))
#endif

/* Full unrolling keeps small arrays of vectors in wasm locals (else they go to the shadow stack). */
#define UNROLL _Pragma("clang loop unroll(full)")

#define EXPORT(name) __attribute__((export_name(name)))

/* Rows of the GEMM micro-tile (tiles) and its columns (output channels, two vectors). */
#define MR 4
#define NR 8

static inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* Loads channels [0, n) of a group of 4 (n < 4 only for the last group), zeros elsewhere. */
static inline v128_t load_ch(const float *p, int n) {
  if (n >= 4) return wasm_v128_load(p);
  v128_t v = wasm_f32x4_splat(0.0f);
  v = wasm_f32x4_replace_lane(v, 0, p[0]);
  if (n > 1) v = wasm_f32x4_replace_lane(v, 1, p[1]);
  if (n > 2) v = wasm_f32x4_replace_lane(v, 2, p[2]);
  return v;
}

static inline void store_ch(float *p, v128_t v, int n) {
  if (n >= 4) {
    wasm_v128_store(p, v);
    return;
  }
  p[0] = wasm_f32x4_extract_lane(v, 0);
  if (n > 1) p[1] = wasm_f32x4_extract_lane(v, 1);
  if (n > 2) p[2] = wasm_f32x4_extract_lane(v, 2);
}

/* ---- F(2x2, 3x3) input transform (used by the filter gradient) ---- */

/* B^T x for four vectors (one row or one column of the 4x4 patch). */
#define BT(x0, x1, x2, x3, y0, y1, y2, y3) \
  do {                                     \
    y0 = wasm_f32x4_sub(x0, x2);           \
    y1 = wasm_f32x4_add(x1, x2);           \
    y2 = wasm_f32x4_sub(x2, x1);           \
    y3 = wasm_f32x4_sub(x1, x3);           \
  } while (0)

/*
 * Input transform of one 4-channel group of one tile. `rows`/`cols` are 4-bit masks of the
 * patch rows/columns inside the image (outside = zero padding); `n` channels are real.
 */
static inline void input_group(const float *x, int row_stride, int cin, unsigned rows, unsigned cols, int n, float *v,
                               int vstride) {
  v128_t d[4][4];
  const v128_t zero = wasm_f32x4_splat(0.0f);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      d[i][j] = ((rows >> i) & (cols >> j) & 1u) ? load_ch(x + i * row_stride + j * cin, n) : zero;
  v128_t t[4][4];
  for (int j = 0; j < 4; j++) BT(d[0][j], d[1][j], d[2][j], d[3][j], t[0][j], t[1][j], t[2][j], t[3][j]);
  for (int i = 0; i < 4; i++) {
    v128_t r0, r1, r2, r3;
    BT(t[i][0], t[i][1], t[i][2], t[i][3], r0, r1, r2, r3);
    wasm_v128_store(v + (i * 4 + 0) * vstride, r0);
    wasm_v128_store(v + (i * 4 + 1) * vstride, r1);
    wasm_v128_store(v + (i * 4 + 2) * vstride, r2);
    wasm_v128_store(v + (i * 4 + 3) * vstride, r3);
  }
}

/* Transforms tiles [first, first + count) into V[16][tb][cinp]. */
static void input_block2(const float *x, int h, int w, int cin, int cinp, int tiles_h, int tiles_w, int first, int count,
                        int tb, float *v) {
  const int row_stride = w * cin;
  const int per_image = tiles_h * tiles_w;
  for (int t = 0; t < count; t++) {
    const int tile = first + t;
    const int b = tile / per_image;
    const int ty = (tile % per_image) / tiles_w;
    const int tx = tile % tiles_w;
    const int y0 = 2 * ty - 1;
    const int x0 = 2 * tx - 1;
    unsigned rows = 0, cols = 0;
    for (int k = 0; k < 4; k++) {
      rows |= (unsigned)(y0 + k >= 0 && y0 + k < h) << k;
      cols |= (unsigned)(x0 + k >= 0 && x0 + k < w) << k;
    }
    /* Only in-image taps are dereferenced, so the origin may point outside the tensor. */
    const float *origin = x + ((long)b * h + y0) * row_stride + (long)x0 * cin;
    for (int c = 0; c < cin; c += 4) {
      const int n = cin - c < 4 ? cin - c : 4;
      input_group(origin + c, row_stride, cin, rows, cols, n, v + t * cinp + c, tb * cinp);
    }
  }
}

/* C[MR][NR] = A[MR][k] * B[k][NR] over k in [0, kc); lda/ldb/ldc in floats. */
static inline void micro_tile(const float *a, int lda, const float *b, int ldb, float *c, int ldc, int kc) {
  v128_t c00 = wasm_f32x4_splat(0.0f), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int k = 0; k < kc; k++) {
    const v128_t b0 = wasm_v128_load(b + k * ldb);
    const v128_t b1 = wasm_v128_load(b + k * ldb + 4);
    v128_t a0 = wasm_v128_load32_splat(a + k);
    c00 = MADD(a0, b0, c00);
    c01 = MADD(a0, b1, c01);
    v128_t a1 = wasm_v128_load32_splat(a + lda + k);
    c10 = MADD(a1, b0, c10);
    c11 = MADD(a1, b1, c11);
    v128_t a2 = wasm_v128_load32_splat(a + 2 * lda + k);
    c20 = MADD(a2, b0, c20);
    c21 = MADD(a2, b1, c21);
    v128_t a3 = wasm_v128_load32_splat(a + 3 * lda + k);
    c30 = MADD(a3, b0, c30);
    c31 = MADD(a3, b1, c31);
  }
  wasm_v128_store(c, c00);
  wasm_v128_store(c + 4, c01);
  wasm_v128_store(c + ldc, c10);
  wasm_v128_store(c + ldc + 4, c11);
  wasm_v128_store(c + 2 * ldc, c20);
  wasm_v128_store(c + 2 * ldc + 4, c21);
  wasm_v128_store(c + 3 * ldc, c30);
  wasm_v128_store(c + 3 * ldc + 4, c31);
}

/* M[p] = V[p] * U[p] for each transform position; rows padded to MR (extra rows unused). */
static void gemm_block(const float *v, const float *u, float *m, int cin, int cinp, int coutp, int rows, int tb,
                       int positions) {
  const int rows_p = round_up(rows, MR);
  for (int p = 0; p < positions; p++) {
    const float *vp = v + p * tb * cinp;
    const float *up = u + p * cin * coutp;
    float *mp = m + p * tb * coutp;
    for (int j = 0; j < coutp; j += NR)
      for (int r = 0; r < rows_p; r += MR) micro_tile(vp + r * cinp, cinp, up + j, coutp, mp + r * coutp + j, coutp, cin);
  }
}

/* ---- F(4x4, 3x3) forward ---- */

/* G g G^T of a 3x3 filter g (vectors of 4 output channels) into the 36 rows of U, `ps` floats apart. */
static inline void filter_tile4(v128_t g[3][3], float *u, int ps) {
  /* G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1] */
  const v128_t q = wasm_f32x4_splat(0.25f), s6 = wasm_f32x4_splat(1.0f / 6.0f);
  const v128_t s24 = wasm_f32x4_splat(1.0f / 24.0f), s12 = wasm_f32x4_splat(1.0f / 12.0f);
  v128_t t[6][3];
  UNROLL
  for (int k = 0; k < 3; k++) {
    const v128_t a = g[0][k], b = g[1][k], c = g[2][k];
    const v128_t ac6 = wasm_f32x4_mul(s6, wasm_f32x4_add(a, c));
    const v128_t b6 = wasm_f32x4_mul(s6, b);
    const v128_t even = MADD(s24, a, wasm_f32x4_mul(s6, c));
    const v128_t b12 = wasm_f32x4_mul(s12, b);
    t[0][k] = wasm_f32x4_mul(q, a);
    t[1][k] = wasm_f32x4_neg(wasm_f32x4_add(ac6, b6));
    t[2][k] = wasm_f32x4_sub(b6, ac6);
    t[3][k] = wasm_f32x4_add(even, b12);
    t[4][k] = wasm_f32x4_sub(even, b12);
    t[5][k] = c;
  }
  UNROLL
  for (int r = 0; r < 6; r++) {
    const v128_t a = t[r][0], b = t[r][1], c = t[r][2];
    const v128_t ac6 = wasm_f32x4_mul(s6, wasm_f32x4_add(a, c));
    const v128_t b6 = wasm_f32x4_mul(s6, b);
    const v128_t even = MADD(s24, a, wasm_f32x4_mul(s6, c));
    const v128_t b12 = wasm_f32x4_mul(s12, b);
    float *row = u + r * 6 * ps;
    wasm_v128_store(row, wasm_f32x4_mul(q, a));
    wasm_v128_store(row + ps, wasm_f32x4_neg(wasm_f32x4_add(ac6, b6)));
    wasm_v128_store(row + 2 * ps, wasm_f32x4_sub(b6, ac6));
    wasm_v128_store(row + 3 * ps, wasm_f32x4_add(even, b12));
    wasm_v128_store(row + 4 * ps, wasm_f32x4_sub(even, b12));
    wasm_v128_store(row + 5 * ps, c);
  }
}

/*
 * U[p][i][o] (36 positions, o padded to `coutp` with zeros) = G g G^T for the 3x3 filter g of
 * input channel i and output channel o. `w` is HWIO [3][3][cin][cout]; with `flip` it is the
 * forward filter of which this conv is the input gradient: [3][3][cout][cin], rotated by 180
 * degrees.
 */
static void wino_filter(const float *w, float *u, int cin, int cout, int coutp, int flip) {
  const int ps = cin * coutp;
  for (int i = 0; i < cin; i++) {
    for (int o = 0; o < coutp; o += 4) {
      const int n = cout - o < 0 ? 0 : cout - o < 4 ? cout - o : 4;
      v128_t g[3][3];
      for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++) {
          if (!flip) {
            g[kh][kw] = n > 0 ? load_ch(w + (kh * 3 + kw) * cin * cout + i * cout + o, n) : wasm_f32x4_splat(0.0f);
          } else {
            /* Output channels are cin apart here: gather them. */
            const float *src = w + ((2 - kh) * 3 + (2 - kw)) * cin * cout + o * cin + i;
            g[kh][kw] = wasm_f32x4_make(n > 0 ? src[0] : 0.0f, n > 1 ? src[cin] : 0.0f, n > 2 ? src[2 * cin] : 0.0f,
                                        n > 3 ? src[3 * cin] : 0.0f);
          }
        }
      filter_tile4(g, u + i * coutp + o, ps);
    }
  }
}

/*
 * B^T x for six vectors, B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 * 0 2 -1 -2 1 0; 0 4 0 -5 0 1], factored to 12 operations.
 */
#define BT6(x, y)                                                       \
  do {                                                                  \
    const v128_t four = wasm_f32x4_splat(4.0f), two = wasm_f32x4_splat(2.0f); \
    const v128_t c_ = wasm_f32x4_sub(x[4], x[2]);                       \
    const v128_t a_ = MADD(wasm_f32x4_neg(four), x[2], x[4]);           \
    const v128_t b_ = MADD(wasm_f32x4_neg(four), x[1], x[3]);           \
    const v128_t e_ = wasm_f32x4_mul(two, wasm_f32x4_sub(x[3], x[1]));  \
    y[0] = MADD(four, wasm_f32x4_sub(x[0], x[2]), c_);                  \
    y[1] = wasm_f32x4_add(a_, b_);                                      \
    y[2] = wasm_f32x4_sub(a_, b_);                                      \
    y[3] = wasm_f32x4_add(c_, e_);                                      \
    y[4] = wasm_f32x4_sub(c_, e_);                                      \
    y[5] = MADD(four, wasm_f32x4_sub(x[1], x[3]), wasm_f32x4_sub(x[5], x[3])); \
  } while (0)

/*
 * Input transform of one 4-channel group of one tile. `rows`/`cols` are 6-bit masks of the
 * patch rows/columns inside the image (outside = zero padding); `n` channels are real.
 */
static inline void input_group4(const float *x, int row_stride, int cin, unsigned rows, unsigned cols, int n, float *v,
                                int vstride) {
  const v128_t zero = wasm_f32x4_splat(0.0f);
  v128_t t[6][6];
  UNROLL
  for (int j = 0; j < 6; j++) {
    v128_t d[6], r[6];
    UNROLL
    for (int i = 0; i < 6; i++) d[i] = ((rows >> i) & (cols >> j) & 1u) ? load_ch(x + i * row_stride + j * cin, n) : zero;
    BT6(d, r);
    UNROLL
    for (int i = 0; i < 6; i++) t[i][j] = r[i];
  }
  UNROLL
  for (int i = 0; i < 6; i++) {
    v128_t r[6];
    BT6(t[i], r);
    UNROLL
    for (int j = 0; j < 6; j++) wasm_v128_store(v + (i * 6 + j) * vstride, r[j]);
  }
}

/* Transforms tiles [first, first + count) into V[36][tb][cinp]. */
static void input_block4(const float *x, int h, int w, int cin, int cinp, int tiles_h, int tiles_w, int first, int count,
                         int tb, float *v) {
  const int row_stride = w * cin;
  const int per_image = tiles_h * tiles_w;
  for (int t = 0; t < count; t++) {
    const int tile = first + t;
    const int b = tile / per_image;
    const int ty = (tile % per_image) / tiles_w;
    const int tx = tile % tiles_w;
    const int y0 = 4 * ty - 1;
    const int x0 = 4 * tx - 1;
    unsigned rows = 0, cols = 0;
    UNROLL
    for (int k = 0; k < 6; k++) {
      rows |= (unsigned)(y0 + k >= 0 && y0 + k < h) << k;
      cols |= (unsigned)(x0 + k >= 0 && x0 + k < w) << k;
    }
    /* Only in-image taps are dereferenced, so the origin may point outside the tensor. */
    const float *origin = x + ((long)b * h + y0) * row_stride + (long)x0 * cin;
    for (int c = 0; c < cin; c += 4) {
      const int n = cin - c < 4 ? cin - c : 4;
      input_group4(origin + c, row_stride, cin, rows, cols, n, v + t * cinp + c, tb * cinp);
    }
  }
}

/*
 * A^T x for six vectors into four, A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
 * 0 1 -1 8 -8 1].
 */
#define AT6(x, y)                                                           \
  do {                                                                      \
    const v128_t sp_ = wasm_f32x4_add(x[1], x[2]), sm_ = wasm_f32x4_sub(x[1], x[2]); \
    const v128_t tp_ = wasm_f32x4_add(x[3], x[4]), tm_ = wasm_f32x4_sub(x[3], x[4]); \
    y[0] = wasm_f32x4_add(wasm_f32x4_add(x[0], sp_), tp_);                  \
    y[1] = MADD(wasm_f32x4_splat(2.0f), tm_, sm_);                          \
    y[2] = MADD(wasm_f32x4_splat(4.0f), tp_, sp_);                          \
    y[3] = MADD(wasm_f32x4_splat(8.0f), tm_, wasm_f32x4_add(sm_, x[5]));    \
  } while (0)

/*
 * Output transform A^T m A of one 4-channel group of one tile, + bias, optional relu; only the
 * `rows` x `cols` outputs inside the image are stored.
 */
static inline void output_group4(const float *m, int mstride, v128_t bias, int relu, float *y, int row_stride, int cout,
                                 int rows, int cols, int n) {
  v128_t s[4][6];
  UNROLL
  for (int j = 0; j < 6; j++) {
    v128_t c[6], r[4];
    UNROLL
    for (int i = 0; i < 6; i++) c[i] = wasm_v128_load(m + (i * 6 + j) * mstride);
    AT6(c, r);
    UNROLL
    for (int i = 0; i < 4; i++) s[i][j] = r[i];
  }
  const v128_t zero = wasm_f32x4_splat(0.0f);
  /* Constant trip counts (unrolled, no arrays in memory); the edge checks guard the stores only. */
  UNROLL
  for (int i = 0; i < 4; i++) {
    v128_t o[4];
    AT6(s[i], o);
    UNROLL
    for (int j = 0; j < 4; j++) {
      v128_t out = wasm_f32x4_add(o[j], bias);
      if (relu) out = wasm_f32x4_pmax(zero, out);
      if (i < rows && j < cols) store_ch(y + i * row_stride + j * cout, out, n);
    }
  }
}

static void output_block4(const float *m, const float *bias, int relu, float *y, int h, int w, int cout, int coutp,
                          int tiles_h, int tiles_w, int first, int count, int tb) {
  const int row_stride = w * cout;
  const int per_image = tiles_h * tiles_w;
  for (int t = 0; t < count; t++) {
    const int tile = first + t;
    const int b = tile / per_image;
    const int ty = (tile % per_image) / tiles_w;
    const int tx = tile % tiles_w;
    const int rows = h - 4 * ty < 4 ? h - 4 * ty : 4;
    const int cols = w - 4 * tx < 4 ? w - 4 * tx : 4;
    float *out = y + ((long)b * h + 4 * ty) * row_stride + (long)(4 * tx) * cout;
    for (int c = 0; c < cout; c += 4) {
      const int n = cout - c < 4 ? cout - c : 4;
      const v128_t bv = bias ? load_ch(bias + c, n) : wasm_f32x4_splat(0.0f);
      output_group4(m + t * coutp + c, tb * coutp, bv, relu, out + c, row_stride, cout, rows, cols, n);
    }
  }
}

/*
 * Tiles per block for a transform with `positions` (36: F(4x4), 16: F(2x2)): the block's
 * transformed input and output (positions * tb * (cinp + coutp) floats) sized to stay in L2
 * next to U, a multiple of MR, and no more than the tiles there are.
 */
#define BLOCK_BYTES (192 * 1024)
static int block_tiles(int cin, int cout, int tiles, int positions) {
  int tb = BLOCK_BYTES / (positions * 4 * (round_up(cin, 4) + round_up(cout, NR)));
  tb = tb / MR * MR;
  if (tb < MR) tb = MR;
  if (tb > round_up(tiles, MR)) tb = round_up(tiles, MR);
  return tb;
}

static int tiles_of(int n, int h, int w, int m) { return n * ((h + m - 1) / m) * ((w + m - 1) / m); }

/* Floats of scratch wino_conv needs: U (36 * cin * coutp), then V and M of one block. */
EXPORT("wino_conv_scratch_floats")
int wino_conv_scratch_floats(int n, int h, int w, int cin, int cout) {
  const int tb = block_tiles(cin, cout, tiles_of(n, h, w, 4), 36);
  return 36 * cin * round_up(cout, NR) + 36 * tb * (round_up(cin, 4) + round_up(cout, NR));
}

/*
 * y[n][h][w][cout] = conv3x3(x[n][h][w][cin], filter) (+ bias[cout], relu if `relu`), with the
 * filter transformed here from `w` (see wino_filter for `flip`). `bias` may be 0. `scratch`
 * has wino_conv_scratch_floats floats.
 */
EXPORT("wino_conv")
void wino_conv(const float *x, const float *filter, int flip, const float *bias, float *y, float *scratch, int n, int h,
               int w, int cin, int cout, int relu) {
  const int cinp = round_up(cin, 4);
  const int coutp = round_up(cout, NR);
  const int tiles_h = (h + 3) / 4;
  const int tiles_w = (w + 3) / 4;
  const int tiles = n * tiles_h * tiles_w;
  const int tb = block_tiles(cin, cout, tiles, 36);
  float *u = scratch;
  float *v = u + 36 * cin * coutp;
  float *m = v + 36 * tb * cinp;
  wino_filter(filter, u, cin, cout, coutp, flip);
  for (int first = 0; first < tiles; first += tb) {
    const int count = tiles - first < tb ? tiles - first : tb;
    input_block4(x, h, w, cin, cinp, tiles_h, tiles_w, first, count, tb, v);
    gemm_block(v, u, m, cin, cinp, coutp, count, tb, 36);
    output_block4(m, bias, relu, y, h, w, cout, coutp, tiles_h, tiles_w, first, count, tb);
  }
}

/* ---- F(2x2, 3x3) filter gradient ---- */

/*
 * Filter gradient of the same convolution, through the Winograd transforms: with Z = A dY A^T
 * for the 2x2 dy tile of each output tile and V = B^T d B as in the forward pass,
 *   dU[p][ci][co] = sum over tiles of V[p][t][ci] * Z[p][t][co],   dW = G^T dU G.
 * (The gradient of y = A^T (U . V) A with respect to U is (A dY A^T) . V, and U = G g G^T.)
 */

/* Z = A dY A^T of one 4-channel group of one tile; rows/cols of dy beyond the image are zero. */
static inline void grad_group(const float *dy, int row_stride, int cout, int rows, int cols, int n, float *z, int zstride) {
  const v128_t zero = wasm_f32x4_splat(0.0f);
  const v128_t d00 = load_ch(dy, n);
  const v128_t d01 = cols > 1 ? load_ch(dy + cout, n) : zero;
  const v128_t d10 = rows > 1 ? load_ch(dy + row_stride, n) : zero;
  const v128_t d11 = rows > 1 && cols > 1 ? load_ch(dy + row_stride + cout, n) : zero;
  /* A = [1 0; 1 1; 1 -1; 0 -1]: rows of A dY, then the columns of each. */
  const v128_t r[4][2] = {{d00, d01},
                          {wasm_f32x4_add(d00, d10), wasm_f32x4_add(d01, d11)},
                          {wasm_f32x4_sub(d00, d10), wasm_f32x4_sub(d01, d11)},
                          {wasm_f32x4_neg(d10), wasm_f32x4_neg(d11)}};
  for (int i = 0; i < 4; i++) {
    wasm_v128_store(z + (i * 4 + 0) * zstride, r[i][0]);
    wasm_v128_store(z + (i * 4 + 1) * zstride, wasm_f32x4_add(r[i][0], r[i][1]));
    wasm_v128_store(z + (i * 4 + 2) * zstride, wasm_f32x4_sub(r[i][0], r[i][1]));
    wasm_v128_store(z + (i * 4 + 3) * zstride, wasm_f32x4_neg(r[i][1]));
  }
}

static void grad_block(const float *dy, int h, int w, int cout, int coutp, int tiles_h, int tiles_w, int first, int count,
                       int tb, float *z) {
  const int row_stride = w * cout;
  const int per_image = tiles_h * tiles_w;
  for (int t = 0; t < count; t++) {
    const int tile = first + t;
    const int b = tile / per_image;
    const int ty = (tile % per_image) / tiles_w;
    const int tx = tile % tiles_w;
    const int rows = h - 2 * ty < 2 ? h - 2 * ty : 2;
    const int cols = w - 2 * tx < 2 ? w - 2 * tx : 2;
    const float *src = dy + ((long)b * h + 2 * ty) * row_stride + (long)(2 * tx) * cout;
    for (int c = 0; c < cout; c += 4) {
      const int n = cout - c < 4 ? cout - c : 4;
      grad_group(src + c, row_stride, cout, rows, cols, n, z + t * coutp + c, tb * coutp);
    }
  }
}

/* C[MR][NR] += A^T B over k in [0, kc): A[k][MR] (lda), B[k][NR] (ldb), C rows ldc apart. */
static inline void micro_tile_tn(const float *a, int lda, const float *b, int ldb, float *c, int ldc, int kc) {
  v128_t c00 = wasm_f32x4_splat(0.0f), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int k = 0; k < kc; k++) {
    const v128_t b0 = wasm_v128_load(b + k * ldb);
    const v128_t b1 = wasm_v128_load(b + k * ldb + 4);
    v128_t a0 = wasm_v128_load32_splat(a + k * lda);
    c00 = MADD(a0, b0, c00);
    c01 = MADD(a0, b1, c01);
    v128_t a1 = wasm_v128_load32_splat(a + k * lda + 1);
    c10 = MADD(a1, b0, c10);
    c11 = MADD(a1, b1, c11);
    v128_t a2 = wasm_v128_load32_splat(a + k * lda + 2);
    c20 = MADD(a2, b0, c20);
    c21 = MADD(a2, b1, c21);
    v128_t a3 = wasm_v128_load32_splat(a + k * lda + 3);
    c30 = MADD(a3, b0, c30);
    c31 = MADD(a3, b1, c31);
  }
#define ACC(row, col, v) wasm_v128_store(c + (row) * ldc + (col), wasm_f32x4_add(wasm_v128_load(c + (row) * ldc + (col)), v))
  ACC(0, 0, c00);
  ACC(0, 4, c01);
  ACC(1, 0, c10);
  ACC(1, 4, c11);
  ACC(2, 0, c20);
  ACC(2, 4, c21);
  ACC(3, 0, c30);
  ACC(3, 4, c31);
#undef ACC
}

/* dU[p] += V[p]^T Z[p] over the `count` tiles of a block. */
static void gemm_tn_block(const float *v, const float *z, float *du, int cinp, int coutp, int count, int tb) {
  for (int p = 0; p < 16; p++) {
    const float *vp = v + p * tb * cinp;
    const float *zp = z + p * tb * coutp;
    float *dup = du + p * cinp * coutp;
    for (int i = 0; i < cinp; i += MR)
      for (int j = 0; j < coutp; j += NR) micro_tile_tn(vp + i, cinp, zp + j, coutp, dup + i * coutp + j, coutp, count);
  }
}

/* dW[kh][kw][ci][co] = (G^T dU G)[kh][kw], G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]. */
static void filter_grad_out(const float *du, float *dw, int cin, int cout, int cinp, int coutp) {
  const int ps = cinp * coutp;
  const v128_t half = wasm_f32x4_splat(0.5f);
  for (int i = 0; i < cin; i++)
    for (int o = 0; o < cout; o += 4) {
      const int n = cout - o < 4 ? cout - o : 4;
      const float *u = du + i * coutp + o;
      v128_t t[3][4];
      for (int j = 0; j < 4; j++) {
        const v128_t u0 = wasm_v128_load(u + (0 * 4 + j) * ps), u1 = wasm_v128_load(u + (1 * 4 + j) * ps);
        const v128_t u2 = wasm_v128_load(u + (2 * 4 + j) * ps), u3 = wasm_v128_load(u + (3 * 4 + j) * ps);
        const v128_t sum = wasm_f32x4_mul(half, wasm_f32x4_add(u1, u2));
        t[0][j] = wasm_f32x4_add(u0, sum);
        t[1][j] = wasm_f32x4_mul(half, wasm_f32x4_sub(u1, u2));
        t[2][j] = wasm_f32x4_add(sum, u3);
      }
      for (int r = 0; r < 3; r++) {
        const v128_t sum = wasm_f32x4_mul(half, wasm_f32x4_add(t[r][1], t[r][2]));
        float *out = dw + (r * 3) * cin * cout + i * cout + o;
        store_ch(out, wasm_f32x4_add(t[r][0], sum), n);
        store_ch(out + cin * cout, wasm_f32x4_mul(half, wasm_f32x4_sub(t[r][1], t[r][2])), n);
        store_ch(out + 2 * cin * cout, wasm_f32x4_add(sum, t[r][3]), n);
      }
    }
}

/* Floats of scratch wino_filter_grad needs: dU, then V and Z of one block. */
EXPORT("wino_filter_grad_scratch_floats")
int wino_filter_grad_scratch_floats(int n, int h, int w, int cin, int cout) {
  const int tb = block_tiles(cin, cout, tiles_of(n, h, w, 2), 16);
  return 16 * round_up(cin, 4) * round_up(cout, NR) + 16 * tb * (round_up(cin, 4) + round_up(cout, NR));
}

/* dw[3][3][cin][cout] = filter gradient of y = conv3x3(x) for dy[n][h][w][cout], x[n][h][w][cin]. */
EXPORT("wino_filter_grad")
void wino_filter_grad(const float *x, const float *dy, float *dw, float *scratch, int n, int h, int w, int cin,
                      int cout) {
  const int cinp = round_up(cin, 4);
  const int coutp = round_up(cout, NR);
  const int tiles_h = (h + 1) / 2;
  const int tiles_w = (w + 1) / 2;
  const int tiles = n * tiles_h * tiles_w;
  const int tb = block_tiles(cin, cout, tiles, 16);
  float *du = scratch;
  float *v = du + 16 * cinp * coutp;
  float *z = v + 16 * tb * cinp;
  for (int i = 0; i < 16 * cinp * coutp; i += 4) wasm_v128_store(du + i, wasm_f32x4_splat(0.0f));
  for (int first = 0; first < tiles; first += tb) {
    const int count = tiles - first < tb ? tiles - first : tb;
    input_block2(x, h, w, cin, cinp, tiles_h, tiles_w, first, count, tb, v);
    grad_block(dy, h, w, cout, coutp, tiles_h, tiles_w, first, count, tb, z);
    gemm_tn_block(v, z, du, cinp, coutp, count, tb);
  }
  filter_grad_out(du, dw, cin, cout, cinp, coutp);
}

/* ---- Direct convolution (any kernel size, stride, padding): for the strided convs ---- */

static int direct_block(int k) {
  int tb = (96 * 1024) / (4 * round_up(k, 4));
  tb = tb / MR * MR;
  return tb < MR ? MR : tb > 256 ? 256 : tb;
}

/*
 * im2col rows for output pixels [first, first + count): row t is the kh x kw x cin input
 * patch of that pixel (zeros outside the image), `lda` = K rounded up to 4 floats (zero tail).
 */
#define GEOMETRY int h, int wd, int cin, int oh, int ow, int kh, int kw, int sh, int sw, int pt, int pl
static void im2col(const float *x, GEOMETRY, int first, int count, float *a, int lda) {
  const int k = kh * kw * cin;
  for (int t = 0; t < count; t++) {
    const int pixel = first + t;
    const int b = pixel / (oh * ow);
    const int oy = (pixel / ow) % oh;
    const int ox = pixel % ow;
    float *row = a + t * lda;
    for (int i = 0; i < kh; i++) {
      const int iy = oy * sh + i - pt;
      for (int j = 0; j < kw; j++) {
        const int ix = ox * sw + j - pl;
        float *dst = row + (i * kw + j) * cin;
        if (iy < 0 || iy >= h || ix < 0 || ix >= wd) {
          for (int c = 0; c < cin; c++) dst[c] = 0.0f;
          continue;
        }
        const float *src = x + (((long)b * h + iy) * wd + ix) * cin;
        for (int c = 0; c < cin; c += 4) {
          const int n = cin - c < 4 ? cin - c : 4;
          store_ch(dst + c, load_ch(src + c, n), n);
        }
      }
    }
    for (int c = k; c < lda; c++) row[c] = 0.0f;
  }
}

/* Copies rows x cols of `src` (row stride `ss`) into `dst` (row stride `ds`), zero-padding columns to `ds`. */
static void copy_padded(const float *src, int rows, int cols, int ss, float *dst, int ds) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < ds; c++) dst[r * ds + c] = c < cols ? src[r * ss + c] : 0.0f;
}

EXPORT("direct_scratch_floats")
int direct_scratch_floats(int kh, int kw, int cin, int cout) {
  const int k = kh * kw * cin;
  const int tb = direct_block(k);
  const int kp = round_up(k, NR), coutp = round_up(cout, NR);
  /* Forward: packed filter K x coutp, A tb x K4, C tb x coutp. Input gradient: W^T cout x kp,
   * A tb x cout (padded rows), C tb x kp. Filter gradient: A tb x K4, B tb x coutp, dW K4 x coutp. */
  const int fwd = k * coutp + tb * round_up(k, 4) + tb * coutp;
  const int bwd_in = cout * kp + tb * cout + tb * kp;
  const int bwd_w = tb * round_up(k, 4) + tb * coutp + round_up(k, 4) * coutp;
  int most = fwd > bwd_in ? fwd : bwd_in;
  return most > bwd_w ? most : bwd_w;
}

/* y = conv(x, w) (+ bias, relu) for filter w [kh][kw][cin][cout]. */
EXPORT("direct_conv")
void direct_conv(const float *x, const float *w, const float *bias, float *y, float *scratch, int n, int h, int wd,
                 int cin, int oh, int ow, int cout, int kh, int kw, int sh, int sw, int pt, int pl, int relu) {
  const int k = kh * kw * cin, lda = round_up(k, 4), coutp = round_up(cout, NR);
  const int tb = direct_block(k);
  float *b = scratch, *a = b + k * coutp, *c = a + tb * lda;
  copy_padded(w, k, cout, cout, b, coutp);
  const int pixels = n * oh * ow;
  const v128_t zero = wasm_f32x4_splat(0.0f);
  for (int first = 0; first < pixels; first += tb) {
    const int count = pixels - first < tb ? pixels - first : tb;
    im2col(x, h, wd, cin, oh, ow, kh, kw, sh, sw, pt, pl, first, count, a, lda);
    for (int j = 0; j < coutp; j += NR)
      for (int r = 0; r < count; r += MR) micro_tile(a + r * lda, lda, b + j, coutp, c + r * coutp + j, coutp, k);
    for (int t = 0; t < count; t++)
      for (int o = 0; o < cout; o += 4) {
        const int m = cout - o < 4 ? cout - o : 4;
        v128_t v = wasm_v128_load(c + t * coutp + o);
        if (bias) v = wasm_f32x4_add(v, load_ch(bias + o, m));
        if (relu) v = wasm_f32x4_pmax(zero, v);
        store_ch(y + (long)(first + t) * cout + o, v, m);
      }
  }
}

/* dx = input gradient of y = conv(x, w): per block, C = dy W^T, then each C row is added onto its input patch. */
EXPORT("direct_input_grad")
void direct_input_grad(const float *dy, const float *w, float *dx, float *scratch, int n, int h, int wd, int cin,
                       int oh, int ow, int cout, int kh, int kw, int sh, int sw, int pt, int pl) {
  const int k = kh * kw * cin, kp = round_up(k, NR);
  const int tb = direct_block(k);
  float *bt = scratch, *a = bt + cout * kp, *c = a + tb * cout;
  for (int o = 0; o < cout; o++)
    for (int q = 0; q < kp; q++) bt[o * kp + q] = q < k ? w[q * cout + o] : 0.0f;
  const long total = (long)n * h * wd * cin;
  for (long i = 0; i < total; i++) dx[i] = 0.0f;
  const int pixels = n * oh * ow;
  for (int first = 0; first < pixels; first += tb) {
    const int count = pixels - first < tb ? pixels - first : tb;
    /* The last rows of a partial block would read past dy: copy that block. */
    const float *rows = dy + (long)first * cout;
    if (count % MR != 0) {
      copy_padded(rows, count, cout, cout, a, cout);
      for (int i = count * cout; i < round_up(count, MR) * cout; i++) a[i] = 0.0f;
      rows = a;
    }
    for (int j = 0; j < kp; j += NR)
      for (int r = 0; r < count; r += MR) micro_tile(rows + r * cout, cout, bt + j, kp, c + r * kp + j, kp, cout);
    for (int t = 0; t < count; t++) {
      const int pixel = first + t;
      const int b = pixel / (oh * ow), oy = (pixel / ow) % oh, ox = pixel % ow;
      for (int i = 0; i < kh; i++) {
        const int iy = oy * sh + i - pt;
        if (iy < 0 || iy >= h) continue;
        for (int j = 0; j < kw; j++) {
          const int ix = ox * sw + j - pl;
          if (ix < 0 || ix >= wd) continue;
          float *dst = dx + (((long)b * h + iy) * wd + ix) * cin;
          const float *src = c + t * kp + (i * kw + j) * cin;
          for (int q = 0; q < cin; q += 4) {
            const int m = cin - q < 4 ? cin - q : 4;
            store_ch(dst + q, wasm_f32x4_add(load_ch(dst + q, m), load_ch(src + q, m)), m);
          }
        }
      }
    }
  }
}

/* dw[kh][kw][cin][cout] = filter gradient of y = conv(x, w): sum over pixels of im2col(x)^T dy. */
EXPORT("direct_filter_grad")
void direct_filter_grad(const float *x, const float *dy, float *dw, float *scratch, int n, int h, int wd, int cin,
                        int oh, int ow, int cout, int kh, int kw, int sh, int sw, int pt, int pl) {
  const int k = kh * kw * cin, lda = round_up(k, 4), coutp = round_up(cout, NR);
  const int tb = direct_block(k);
  float *a = scratch, *b = a + tb * lda, *acc = b + tb * coutp;
  for (int i = 0; i < lda * coutp; i++) acc[i] = 0.0f;
  const int pixels = n * oh * ow;
  for (int first = 0; first < pixels; first += tb) {
    const int count = pixels - first < tb ? pixels - first : tb;
    im2col(x, h, wd, cin, oh, ow, kh, kw, sh, sw, pt, pl, first, count, a, lda);
    const float *rows = dy + (long)first * cout;
    if (cout != coutp) {
      copy_padded(rows, count, cout, cout, b, coutp);
      rows = b;
    }
    for (int i = 0; i < lda; i += MR)
      for (int j = 0; j < coutp; j += NR) micro_tile_tn(a + i, lda, rows + j, coutp, acc + i * coutp + j, coutp, count);
  }
  for (int q = 0; q < k; q++)
    for (int o = 0; o < cout; o++) dw[q * cout + o] = acc[q * coutp + o];
}
