/* csv.c - RFC 4180 parsing (see csv.h). */
#include "base/csv.h"

#include <string.h>

#include "base/alloc.h"
#include "base/strbuf.h"

typedef struct parser {
    const char *p;
    size_t size, pos;
    int line;
    fl_strbuf bytes;
    size_t *start, *len;
    size_t num_fields, cap_fields;
    int *line_of;
    size_t num_records, cap_records;
} parser;

static void push_field(parser *s, size_t start)
{
    if (s->num_fields == s->cap_fields) {
        s->cap_fields = s->cap_fields ? 2 * s->cap_fields : 64;
        s->start = fl_realloc(s->start, s->cap_fields * sizeof(size_t));
        s->len = fl_realloc(s->len, s->cap_fields * sizeof(size_t));
    }
    s->start[s->num_fields] = start;
    s->len[s->num_fields] = s->bytes.len - start;
    s->num_fields++;
    fl_strbuf_append_char(&s->bytes, '\0');
}

/* One field at s->pos; leaves pos on what follows it (a comma, a line
 * break or the end). */
static int parse_field(parser *s, size_t col, fl_error *err)
{
    const size_t start = s->bytes.len;
    if (s->pos < s->size && s->p[s->pos] == '"') {
        const int first_line = s->line;
        s->pos++;
        for (;;) {
            if (s->pos == s->size)
                return fl_fail(err, "line %d: the quoted field %zu that starts here never ends", first_line,
                               col + 1);
            const char c = s->p[s->pos];
            if (c == '"') {
                if (s->pos + 1 < s->size && s->p[s->pos + 1] == '"') {
                    fl_strbuf_append_char(&s->bytes, '"');
                    s->pos += 2;
                    continue;
                }
                s->pos++;
                break;
            }
            if (c == '\n')
                s->line++;
            fl_strbuf_append_char(&s->bytes, c);
            s->pos++;
        }
        if (s->pos < s->size && s->p[s->pos] != ',' && s->p[s->pos] != '\n' && s->p[s->pos] != '\r')
            return fl_fail(err, "line %d: text after the closing quote of field %zu", s->line, col + 1);
    } else {
        size_t end = s->pos;
        while (end < s->size && s->p[end] != ',' && s->p[end] != '\n' && s->p[end] != '\r') {
            if (s->p[end] == '"')
                return fl_fail(err, "line %d: a quote inside the unquoted field %zu (a field with quotes "
                               "must be quoted, its quotes doubled)", s->line, col + 1);
            end++;
        }
        fl_strbuf_append(&s->bytes, s->p + s->pos, end - s->pos);
        s->pos = end;
    }
    push_field(s, start);
    return 0;
}

/* Consumes a line break at pos (CRLF or LF); 0 if there is none, -1 for a
 * lone CR. */
static int line_break(parser *s, fl_error *err)
{
    if (s->pos < s->size && s->p[s->pos] == '\n') {
        s->pos++;
    } else if (s->pos < s->size && s->p[s->pos] == '\r') {
        if (s->pos + 1 == s->size || s->p[s->pos + 1] != '\n')
            return fl_fail(err, "line %d: a CR that is not part of a CRLF line break", s->line);
        s->pos += 2;
    } else {
        return 0;
    }
    s->line++;
    return 1;
}

static int parse(parser *s, fl_csv *csv, fl_error *err)
{
    if (s->size >= 3 && memcmp(s->p, "\xef\xbb\xbf", 3) == 0)
        s->pos = 3;
    while (s->pos < s->size) {
        const int blank = line_break(s, err);
        if (blank < 0)
            return -1;
        if (blank)
            continue;
        const size_t first = s->num_fields;
        if (s->num_records == s->cap_records) {
            s->cap_records = s->cap_records ? 2 * s->cap_records : 64;
            s->line_of = fl_realloc(s->line_of, s->cap_records * sizeof(int));
        }
        s->line_of[s->num_records] = s->line;
        for (;;) {
            if (parse_field(s, s->num_fields - first, err) != 0)
                return -1;
            if (s->pos < s->size && s->p[s->pos] == ',') {
                s->pos++;
                continue;
            }
            if (line_break(s, err) < 0)
                return -1;
            break;
        }
        const size_t n = s->num_fields - first;
        if (s->num_records == 0)
            csv->num_cols = n;
        else if (n != csv->num_cols)
            return fl_fail(err, "line %d: %zu fields, but the header has %zu", s->line_of[s->num_records], n,
                           csv->num_cols);
        s->num_records++;
    }
    if (s->num_records == 0)
        return fl_fail(err, "line 1: no header (the file is empty)");
    return 0;
}

int fl_csv_parse(fl_csv *csv, const char *data, size_t size, fl_error *err)
{
    memset(csv, 0, sizeof *csv);
    parser s = { .p = data, .size = size, .line = 1 };
    if (parse(&s, csv, err) != 0) {
        fl_strbuf_free(&s.bytes);
        free(s.start);
        free(s.len);
        free(s.line_of);
        memset(csv, 0, sizeof *csv);
        return -1;
    }
    csv->num_rows = s.num_records - 1;
    csv->bytes = s.bytes.data;
    csv->start = s.start;
    csv->len = s.len;
    csv->line = s.line_of;
    return 0;
}

const char *fl_csv_field(const fl_csv *csv, size_t r, size_t c, size_t *len)
{
    FL_ASSERT(r <= csv->num_rows && c < csv->num_cols);
    const size_t i = r * csv->num_cols + c;
    if (len)
        *len = csv->len[i];
    return csv->bytes + csv->start[i];
}

long fl_csv_column(const fl_csv *csv, const char *name)
{
    const size_t want = strlen(name);
    for (size_t c = 0; c < csv->num_cols; c++) {
        size_t len;
        const char *h = fl_csv_field(csv, 0, c, &len);
        if (len == want && memcmp(h, name, len) == 0)
            return (long)c;
    }
    return -1;
}

void fl_csv_free(fl_csv *csv)
{
    free(csv->bytes);
    free(csv->start);
    free(csv->len);
    free(csv->line);
    memset(csv, 0, sizeof *csv);
}
