/* jinja_eval.h - rendering a parsed template (jinja_eval.c). */
#ifndef FL_JINJA_EVAL_H
#define FL_JINJA_EVAL_H

#include "jinja/jinja_internal.h"

int jinja_render_tree(const jnode *root, json_t *vars, fl_strbuf *out, fl_error *err);

#endif
