/* csv.h - comma-separated values as RFC 4180 defines them.
 *
 * Records end with CRLF or LF; a field is either bare (no comma, quote, CR
 * or LF) or quoted ("..." with "" for a quote inside, and any bytes,
 * commas and line breaks included, kept as they are). The first record is
 * the header and fixes the number of fields of every record. What the RFC
 * leaves open is decided as pandas.read_csv (what GPQA's own code reads
 * its CSV with) decides it: a UTF-8 byte-order mark before the header is
 * dropped, and blank lines are skipped. What it forbids is an error naming
 * the line: a quote inside a bare field, text after a closing quote, a
 * quoted field that never ends, a CR that does not start a CRLF, a record
 * with another number of fields than the header. */
#ifndef FL_CSV_H
#define FL_CSV_H

#include <stddef.h>

#include "base/error.h"

typedef struct fl_csv {
    size_t num_cols;     /* fields per record: the header's */
    size_t num_rows;     /* records after the header */
    char *bytes;         /* every field's bytes, each NUL-terminated */
    size_t *start;       /* field (record r, column c), r = 0 the header: at
                            bytes + start[r * num_cols + c] */
    size_t *len;         /* ... of len[r * num_cols + c] bytes (NULs allowed) */
    int *line;           /* the line each record starts on (1-based), for messages */
} fl_csv;

/* Parses data[0..size). On error returns -1 with a message "line N: ..."
 * and leaves csv empty (fl_csv_free is still safe). */
int fl_csv_parse(fl_csv *csv, const char *data, size_t size, fl_error *err);

/* Field c of record r (0 the header, 1.. the rows). */
const char *fl_csv_field(const fl_csv *csv, size_t r, size_t c, size_t *len);

/* The first column whose header is name; -1 if none. */
long fl_csv_column(const fl_csv *csv, const char *name);

void fl_csv_free(fl_csv *csv);

#endif
