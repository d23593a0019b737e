/* byte_level.c - the bytes <-> characters map (see byte_level.h). */
#include "tokenizer/byte_level.h"

static int is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

uint32_t fl_byte_level_char(uint8_t b)
{
    if (is_printable(b))
        return b;
    /* the n-th non-printable byte (in byte order) maps to 256 + n */
    uint32_t n = 0;
    for (unsigned i = 0; i < b; i++)
        n += !is_printable(i);
    return 256 + n;
}

int fl_byte_level_byte(uint32_t cp)
{
    if (cp < 256)
        return is_printable(cp) ? (int)cp : -1;
    uint32_t n = 256;
    for (unsigned b = 0; b < 256; b++)
        if (!is_printable(b) && n++ == cp)
            return (int)b;
    return -1;
}
