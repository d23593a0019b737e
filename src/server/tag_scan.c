/* tag_scan.c - a tag in text arriving in pieces (see tag_scan.h). */
#include "server/tag_scan.h"

#include <string.h>

#include "base/error.h"

void fl_tag_scan_init(fl_tag_scan *s, const char *tag)
{
    s->tag = tag;
    s->len = strlen(tag);
    s->matched = 0;
    FL_ASSERT(s->len > 1 && !strchr(tag + 1, tag[0]));
}

int fl_tag_scan_byte(fl_tag_scan *s, char c, fl_strbuf *out)
{
    if (c == s->tag[s->matched]) {
        if (++s->matched < s->len)
            return 0;
        s->matched = 0;
        return 1;
    }
    /* no later byte of the held prefix is the tag's first: all of it goes */
    fl_tag_scan_flush(s, out);
    if (c == s->tag[0])
        s->matched = 1;
    else
        fl_strbuf_append_char(out, c);
    return 0;
}

void fl_tag_scan_flush(fl_tag_scan *s, fl_strbuf *out)
{
    fl_strbuf_append(out, s->tag, s->matched);
    s->matched = 0;
}
