// Outlier-aware key balancing (MiKV, Yang et al. 2024 §4.2). Keys have a few channels with huge
// magnitudes that dominate their quantization groups; queries tolerate a rescale. Per kv head and
// channel b = sqrt(max|q| / max|k|); the cache stores k·b and attention uses q/b, so every score
// q·k is unchanged in exact arithmetic while the key channels' ranges are evened out (max|k·b| =
// max|q/b| = sqrt(max|q|·max|k|)). Cache-agnostic: the forward pass applies it around store/attend,
// so it works with the fp32, uniform low-bit and MiKV/H2O caches alike.
#ifndef IT_KV_KV_BALANCE_H
#define IT_KV_KV_BALANCE_H

// b (n_kv_heads·head_dim) from nq query rows q (nq, n_heads·head_dim) and the key rows k (nk,
// n_kv_heads·head_dim) plus k2 (nk2 rows, may be NULL/0: keys already cached, e.g. the IntactKV
// prefix); the max over q runs over the rep = n_heads/n_kv_heads query heads that share a kv head.
// Channels where either max is 0 (or the ratio not finite) get b = 1. -1 on bad args.
int kv_balance_channels(const float *q, int nq, const float *k, int nk, const float *k2, int nk2,
                        int n_heads, int n_kv_heads, int head_dim, float *b);

// In place: k rows (n, n_kv_heads·head_dim) *= b; q rows (n, n_heads·head_dim) /= b of their kv head.
void kv_balance_scale_keys(float *k, int n, int kv_dim, const float *b);
void kv_balance_scale_queries(float *q, int n, int n_heads, int n_kv_heads, int head_dim, const float *b);

#endif
