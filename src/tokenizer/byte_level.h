/* byte_level.h - GPT-2's reversible map from bytes to printable characters.
 *
 * Byte-level BPE vocabularies spell every byte as a visible character: the
 * printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) as themselves, the other
 * 68 as U+0100 onward, in byte order. */
#ifndef FL_BYTE_LEVEL_H
#define FL_BYTE_LEVEL_H

#include <stdint.h>

/* The code point that stands for byte b. */
uint32_t fl_byte_level_char(uint8_t b);

/* The byte that code point cp stands for, or -1 if cp is not in the map. */
int fl_byte_level_byte(uint32_t cp);

#endif
