/* http.h - the HTTP side of the server (http.c): an event loop over every
 * connection and the worker threads that run its handlers. */
#ifndef FL_HTTP_H
#define FL_HTTP_H

#include "base/error.h"
#include "server/server.h"

/* Starts listening on cfg.host:cfg.port (an IPv4 or IPv6 address or a
 * host name) and starts the loop and the workers. */
int fl_http_start(fl_server *srv, fl_error *err);
/* Stops accepting new connections; running ones go on. */
void fl_http_quiesce(fl_server *srv);
/* Stops: what is being written gets up to 5 s to reach its client, then
 * every connection closes and the threads are joined. */
void fl_http_stop(fl_server *srv);

#endif
