#ifndef RS_NOTIFY_H
#define RS_NOTIFY_H

/*
 * Telling the service manager how the daemon is doing: systemd's notify protocol (sd_notify(3))
 * for a unit of Type=notify with WatchdogSec=.
 *
 * Outside systemd (no $NOTIFY_SOCKET) every call does nothing, so the programs run the same
 * by hand, under another supervisor, or in a container.
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t watchdog_ns;   /* WatchdogSec as granted ($WATCHDOG_USEC), 0 when off */
    int64_t last_ping_ns;  /* CLOCK_MONOTONIC of the last WATCHDOG=1 */
    char last_status[256]; /* the STATUS= last sent, to send only changes */
} rs_notify_t;

/* Reads the watchdog setting from the environment. Main thread, before threads start
 * (sd_watchdog_enabled() reads the environment). */
void rs_notify_init(rs_notify_t *n);

/* READY=1 with a STATUS= line: startup, or a reload, is complete. */
void rs_notify_ready(rs_notify_t *n, const char *status);

/* RELOADING=1 (with MONOTONIC_USEC=, as systemd 253's Type=notify-reload wants): a reload
 * begins; READY=1 must follow. */
void rs_notify_reloading(rs_notify_t *n);

/* STOPPING=1 with a STATUS= line: the graceful shutdown begins. */
void rs_notify_stopping(rs_notify_t *n, const char *status);

/* STATUS=<status>, when it differs from the last one sent. */
void rs_notify_status(rs_notify_t *n, const char *status);

/* True when the watchdog is on and half its interval has passed since the last ping at
 * `now_ns` (CLOCK_MONOTONIC): time for the caller to check itself and ping. */
bool rs_notify_watchdog_due(const rs_notify_t *n, int64_t now_ns);

/* WATCHDOG=1: the caller checked that its threads are alive at `now_ns`. */
void rs_notify_watchdog(rs_notify_t *n, int64_t now_ns);

/* How long the main loop may sleep so as not to miss a watchdog ping: half the interval
 * (at most `max_ns`). */
int64_t rs_notify_max_sleep_ns(const rs_notify_t *n, int64_t max_ns);

#endif
