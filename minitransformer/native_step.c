/* A GPT's one-token step, and one matrix-vector product, written out in C.

   native_step.py compiles this file with the system's C compiler (-O3 -march=native -fopenmp) and
   calls it through ctypes. It is compiled_block.py's arithmetic for batch 1, without masks or
   rotary positions: bfloat16 weights and cache, float32 sums and activations inside a block, the
   block's output rounded to bfloat16 as the eager step's tensor would be. Why it exists: at batch 1 a
   step's time is the time to read the weights, and here every block, the final LayerNorm and the
   output layer run in one OpenMP region, so nothing but barriers stands between one product and the next.

   Layouts (row-major, as torch stores them): a weight (out, in); the cache (H, max_len, D) per block,
   of which positions 0 .. past-1 are filled. bf16 is a float32's top 16 bits. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint16_t bf16;

static inline float widen(bf16 v) {
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline bf16 narrow(float f) {  /* round to nearest even, as torch's .to(torch.bfloat16) */
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (isnan(f)) return 0x7fc0;
    bits += 0x7fff + ((bits >> 16) & 1);
    return (bf16)(bits >> 16);
}

static inline float at(const bf16 *p, int i, float missing) { return p ? widen(p[i]) : missing; }

/* y[r] = sum_i w[r, i] x[i] + bias[r], rows shared among the threads of the enclosing region. */
static void product(const bf16 *w, const bf16 *bias, const float *x, float *y, int rows, int cols) {
    #pragma omp for schedule(static)
    for (int r = 0; r < rows; r++) {
        const bf16 *row = w + (int64_t)r * cols;
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int i = 0; i < cols; i++) sum += widen(row[i]) * x[i];
        y[r] = sum + at(bias, r, 0.0f);
    }
}

/* out = LayerNorm(x), by one thread (C values: too few to share); out may be x. */
static void layer_norm(const float *x, const bf16 *weight, const bf16 *bias, float eps, float *out, int C) {
    #pragma omp single
    {
        float mean = 0.0f, var = 0.0f;
        #pragma omp simd reduction(+ : mean)
        for (int i = 0; i < C; i++) mean += x[i];
        mean /= C;
        #pragma omp simd reduction(+ : var)
        for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
        float scale = 1.0f / sqrtf(var / C + eps);
        for (int i = 0; i < C; i++) out[i] = (x[i] - mean) * scale * at(weight, i, 1.0f) + at(bias, i, 0.0f);
    }
}

static void add(float *x, const float *y, int n) {  /* one thread; the others wait at its end */
    #pragma omp single
    for (int i = 0; i < n; i++) x[i] += y[i];
}

enum { RELU = 0, GELU = 1, GELU_TANH = 2 };

static void activate(float *h, int n, int activation) {
    #pragma omp for schedule(static)
    for (int i = 0; i < n; i++) {
        float u = h[i];
        if (activation == RELU) h[i] = u > 0.0f ? u : 0.0f;
        else if (activation == GELU) h[i] = 0.5f * u * (1.0f + erff(u * 0.70710678f));
        else h[i] = 0.5f * u * (1.0f + tanhf(0.79788456f * (u + 0.044715f * u * u * u)));
    }
}

typedef struct {  /* what one block's step reads; a NULL bias is no bias */
    const bf16 *norm1_w, *norm1_b, *qkv_w, *qkv_b, *out_w, *out_b;
    const bf16 *norm2_w, *norm2_b, *ff1_w, *ff1_b, *ff2_w, *ff2_b;
    bf16 *past_k, *past_v;        /* (H, max_len, D): 0 .. past-1 filled; the step writes position past */
    int64_t cache_stride;         /* max_len * D: elements from one head's cache to the next */
    int past, C, H, F, norm_first, activation;
    float eps;
} Block;

/* One head of attention for the new position: softmax(q k^T / sqrt(D)) v over the past and itself.
   scores: past + 1 floats of scratch. */
static void attend_head(const Block *b, const float *q, const float *k, const float *v, float *scores,
                        float *out) {
    int D = b->C / b->H;
    float scale = 1.0f / sqrtf((float)D), top = -INFINITY, total = 0.0f;
    for (int t = 0; t <= b->past; t++) {  /* t == past: the new position, its key k not in the cache yet */
        float s = 0.0f;
        if (t < b->past) {
            const bf16 *cached = b->past_k + (int64_t)t * D;
            #pragma omp simd reduction(+ : s)
            for (int d = 0; d < D; d++) s += q[d] * widen(cached[d]);
        } else {
            for (int d = 0; d < D; d++) s += q[d] * k[d];
        }
        scores[t] = s * scale;
        top = scores[t] > top ? scores[t] : top;
    }
    for (int t = 0; t <= b->past; t++) total += scores[t] = expf(scores[t] - top);
    for (int d = 0; d < D; d++) out[d] = 0.0f;
    for (int t = 0; t <= b->past; t++) {
        float p = scores[t] / total;
        if (t < b->past) {
            const bf16 *cached = b->past_v + (int64_t)t * D;
            for (int d = 0; d < D; d++) out[d] += p * widen(cached[d]);
        } else {
            for (int d = 0; d < D; d++) out[d] += p * v[d];
        }
    }
}

static void attention(const Block *b, const float *qkv, float *scratch, float *out) {
    int C = b->C, D = C / b->H;
    #pragma omp for schedule(static)
    for (int h = 0; h < b->H; h++) {
        Block head = *b;  /* the same block, with the cache pointers moved to head h */
        head.past_k = b->past_k + h * b->cache_stride;
        head.past_v = b->past_v + h * b->cache_stride;
        attend_head(&head, qkv + h * D, qkv + C + h * D, qkv + 2 * C + h * D,
                    scratch + (int64_t)h * (b->past + 1), out + h * D);
    }
}

/* The scratch one block step needs: h (C), qkv (3C), a (C), f (F), scores (H * (past + 1)). */
static int64_t work_floats(const Block *b) { return 5 * (int64_t)b->C + b->F + (int64_t)b->H * (b->past + 1); }

/* One block for the new position, run by every thread of the enclosing region: x (C) in place; its key and
   value go into the cache at position `past`. x leaves rounded to bfloat16, as a bfloat16 tensor between
   blocks would be. */
static void block_body(const Block *b, float *x, float *work) {
    int C = b->C, F = b->F, D = C / b->H;
    float *h = work, *qkv = h + C, *a = qkv + 3 * C, *f = a + C, *scratch = f + F;
    if (b->norm_first) layer_norm(x, b->norm1_w, b->norm1_b, b->eps, h, C);
    product(b->qkv_w, b->qkv_b, b->norm_first ? h : x, qkv, 3 * C, C);
    attention(b, qkv, scratch, a);
    product(b->out_w, b->out_b, a, h, C, C);
    add(x, h, C);
    if (!b->norm_first) layer_norm(x, b->norm1_w, b->norm1_b, b->eps, x, C);
    if (b->norm_first) layer_norm(x, b->norm2_w, b->norm2_b, b->eps, h, C);
    product(b->ff1_w, b->ff1_b, b->norm_first ? h : x, f, F, C);
    activate(f, F, b->activation);
    product(b->ff2_w, b->ff2_b, f, h, C, F);
    add(x, h, C);
    if (!b->norm_first) layer_norm(x, b->norm2_w, b->norm2_b, b->eps, x, C);
    #pragma omp for schedule(static)
    for (int i = 0; i < C; i++) {  /* head i / D, dimension i % D */
        int64_t slot = (i / D) * b->cache_stride + (int64_t)b->past * D + i % D;
        b->past_k[slot] = narrow(qkv[C + i]);
        b->past_v[slot] = narrow(qkv[2 * C + i]);
        x[i] = widen(narrow(x[i]));
    }
}

typedef struct {  /* a GPT's one-token step: the blocks, the final LayerNorm (if has_norm), the output layer */
    Block *blocks;
    int n_blocks, vocab, has_norm;
    const bf16 *norm_w, *norm_b, *head_w, *head_b;
    float norm_eps;
} Model;

/* x_in (C): the new token's embedding -> logits (vocab), all in one OpenMP region. */
void model_step(const Model *m, const bf16 *x_in, bf16 *logits) {
    int C = m->blocks[0].C;
    int64_t work = 0;
    for (int l = 0; l < m->n_blocks; l++) work = work_floats(&m->blocks[l]) > work ? work_floats(&m->blocks[l]) : work;
    float *x = malloc(sizeof(float) * (C + work + m->vocab)), *scratch = x + C, *y = scratch + work;
    for (int i = 0; i < C; i++) x[i] = widen(x_in[i]);
    #pragma omp parallel
    {
        for (int l = 0; l < m->n_blocks; l++) block_body(&m->blocks[l], x, scratch);
        float *h = x;
        if (m->has_norm) {
            h = scratch;
            layer_norm(x, m->norm_w, m->norm_b, m->norm_eps, h, C);
            #pragma omp for schedule(static)
            for (int i = 0; i < C; i++) h[i] = widen(narrow(h[i]));  /* a bfloat16 tensor in the eager step */
        }
        product(m->head_w, m->head_b, h, y, m->vocab, C);
        #pragma omp for schedule(static)
        for (int r = 0; r < m->vocab; r++) logits[r] = narrow(y[r]);
    }
    free(x);
}

/* y (rows) = w (rows, cols) x (cols) + bias, rounded once to bfloat16. */
void linear(const bf16 *w, const bf16 *bias, const bf16 *x_in, bf16 *y_out, int rows, int cols) {
    float *x = malloc(sizeof(float) * ((int64_t)cols + rows));
    float *y = x + cols;
    for (int i = 0; i < cols; i++) x[i] = widen(x_in[i]);
    #pragma omp parallel
    {
        product(w, bias, x, y, rows, cols);
        #pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) y_out[r] = narrow(y[r]);  /* 50,257 of them for GPT-2's logits */
    }
    free(x);
}
