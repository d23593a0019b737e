/* tag_scan.h - finding a tag (<think>, <tool_call>, ...) in generated text
 * that arrives in pieces.
 *
 * The reply parsers read a choice's text as the engine produces it, a few
 * bytes an event; a tag may be split across events. The bytes at the end of
 * a piece that may begin the tag are held back until later bytes tell, so
 * the text around a tag is the same however the text was cut. The held
 * bytes are always a prefix of the tag, so nothing is copied to hold them.
 * A tag's first byte must not recur in it (true of every tag here), which
 * makes a mismatch release all held bytes at once. */
#ifndef FL_TAG_SCAN_H
#define FL_TAG_SCAN_H

#include <stddef.h>

#include "base/strbuf.h"

typedef struct fl_tag_scan {
    const char *tag;
    size_t len;
    size_t matched;   /* tag[0..matched) is held back */
} fl_tag_scan;

void fl_tag_scan_init(fl_tag_scan *s, const char *tag);

/* Reads one byte: 1 when it completes the tag (nothing is held then), else
 * 0 with the bytes it shows are not the tag appended to out. */
int fl_tag_scan_byte(fl_tag_scan *s, char c, fl_strbuf *out);

/* The text ended (or the reader moves on): appends the held bytes to out. */
void fl_tag_scan_flush(fl_tag_scan *s, fl_strbuf *out);

#endif
