// Encoders for ggml's block formats: the exact inverses of the decoders in ggml_ref.c (layouts at
// the structs in formats.h). They only place given codes and stored scales into bytes; choosing
// the scales and codes is the producers' business (quant/qgrid.h).
//
// Codes are unsigned: q4_0 0..15 (decoded as q - 8), q5_0 0..31 (q - 16), q8_0 0..255 (stored as
// the int8 q - 128), q4_1 0..15, q4_K 0..15, q6_K 0..63 (decoded as q - 32). fp16 values are given
// as their bits.
#ifndef IT_FORMATS_GGML_PACK_H
#define IT_FORMATS_GGML_PACK_H

#include <stdint.h>

void fmt_pack_q4_0(uint16_t d, const uint8_t q[32], void *blk);
void fmt_pack_q4_1(uint16_t d, uint16_t m, const uint8_t q[32], void *blk);
void fmt_pack_q5_0(uint16_t d, const uint8_t q[32], void *blk);
void fmt_pack_q8_0(uint16_t d, const uint8_t q[32], void *blk);
// sc, mn: the 8 six-bit sub-block scales and mins (0..63) of the 8 sub-blocks of 32.
void fmt_pack_q4_K(uint16_t d, uint16_t dmin, const uint8_t sc[8], const uint8_t mn[8], const uint8_t q[256],
                   void *blk);
// sc: the 16 int8 scales of the 16 sub-blocks of 16.
void fmt_pack_q6_K(uint16_t d, const int8_t sc[16], const uint8_t q[256], void *blk);

#endif
