/*
 * systemd's notify protocol, through libsystemd's sd_notify(3).
 *
 * DESIGN: only the main thread calls these, so the state here (the watchdog interval, the last
 * ping, the last status) needs no lock. The datagram protocol is simple, but libsystemd is
 * on every Debian system, handles the abstract-namespace and credential details, and is what
 * systemd documents; it is not worth writing again.
 */

#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "clock.h"

void rs_notify_init(rs_notify_t *n)
{
    memset(n, 0, sizeof(*n));
    uint64_t usec = 0;
    /* 0 when unset, or when $WATCHDOG_PID names another process. The exec handler builds
     * its children's environment from scratch, so nothing here leaks to them. */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        n->watchdog_ns = usec > (uint64_t)INT64_MAX / 1000 ? INT64_MAX : (int64_t)usec * 1000;
}

void rs_notify_ready(rs_notify_t *n, const char *status)
{
    snprintf(n->last_status, sizeof(n->last_status), "%s", status);
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void rs_notify_reloading(rs_notify_t *n)
{
    (void)n;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=reloading the configuration",
               (long long)(rs_clock_monotonic_ns() / 1000));
}

void rs_notify_stopping(rs_notify_t *n, const char *status)
{
    snprintf(n->last_status, sizeof(n->last_status), "%s", status);
    sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}

void rs_notify_status(rs_notify_t *n, const char *status)
{
    if (strncmp(n->last_status, status, sizeof(n->last_status) - 1) == 0)
        return;
    snprintf(n->last_status, sizeof(n->last_status), "%s", status);
    sd_notifyf(0, "STATUS=%s", status);
}

bool rs_notify_watchdog_due(const rs_notify_t *n, int64_t now_ns)
{
    return n->watchdog_ns > 0 && now_ns - n->last_ping_ns >= n->watchdog_ns / 2;
}

void rs_notify_watchdog(rs_notify_t *n, int64_t now_ns)
{
    n->last_ping_ns = now_ns;
    sd_notify(0, "WATCHDOG=1");
}

int64_t rs_notify_max_sleep_ns(const rs_notify_t *n, int64_t max_ns)
{
    if (n->watchdog_ns > 0 && n->watchdog_ns / 4 < max_ns)
        return n->watchdog_ns / 4 > 0 ? n->watchdog_ns / 4 : 1;
    return max_ns;
}
