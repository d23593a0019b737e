/* http.h - the HTTP side of the server (http.c). */
#ifndef FL_HTTP_H
#define FL_HTTP_H

#include "base/error.h"
#include "server/server.h"

/* Starts listening on cfg.port (all interfaces unless cfg.host says). */
int fl_http_start(fl_server *srv, fl_error *err);
/* Stops accepting new connections; running ones go on. */
void fl_http_quiesce(fl_server *srv);
/* Stops the daemon; waits for the connection threads. */
void fl_http_stop(fl_server *srv);

#endif
