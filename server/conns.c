/*
 * conns.c - who is connected: one slot per accepted connection, so that no
 * client can starve the others of connections.
 *
 * A connection is in one of four states:
 *
 *   IDLE       waiting for its next request (or for the rest of its headers)
 *   RECEIVING  its headers are in, its body is arriving
 *   BUSY       its request is in and the server works on it (the model runs)
 *   SENDING    its reply (or the stream's next part) is handed over
 *
 * and besides, it may have a backlog: bytes the kernel holds for it that the
 * client has not read (SIOCOUTQ), seen by the reaper a few times a second.
 * A backlog that lasts means a client that reads slowly or not at all,
 * whatever the state, pipelining or not. Rules:
 *
 *  1. A client address holds at most max_per_addr connections and the server
 *     at most max_total (IPv6 addresses count per /64, the block one host
 *     usually has).
 *  2. A new connection beyond a limit takes the place of another (of its own
 *     address for the per-address limit, of anyone's for the global one): the
 *     longest IDLE one, else the longest RECEIVING one, else the one with the
 *     oldest backlog older than STALL_GRACE_S. Work being done and replies
 *     being read never give way. When no connection qualifies, the newcomer is
 *     refused: the accept loop answers it 503 with Retry-After.
 *  3. A connection has deadline_s from when it began waiting (IDLE) to deliver
 *     its whole request, however it trickles (then 408), and a backlog may not
 *     last deadline_s (then the connection is cut): a client that reads
 *     slowly cannot hold a connection forever either.
 *
 * Closing a connection here means a short reply (plain HTTP, and only before
 * a reply has begun) and shutdown(): libmicrohttpd, which owns the socket,
 * sees the end and cleans up; the slot is freed when it reports the
 * connection closed, which it does before it closes the descriptor, so a
 * descriptor in a slot is never reused under us. Slots being closed do not
 * count against the limits, but at most max_total of them may be pending.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "server.h"

#define STALL_GRACE_S 2.0 /* a backlog older than this may give way (rule 2) */

int conns_init(struct conns *cs, int max_total, int max_per_addr, double deadline_s, bool tls)
{
	memset(cs, 0, sizeof *cs);
	cs->cap = 2 * max_total;
	cs->max_total = max_total;
	cs->max_per_addr = max_per_addr;
	cs->deadline_s = deadline_s;
	cs->tls = tls;
	for (cs->addr_cap = 16; cs->addr_cap < 2 * (size_t)cs->cap; cs->addr_cap *= 2)
		;
	cs->slot = calloc((size_t)cs->cap, sizeof *cs->slot);
	cs->addrs = calloc(cs->addr_cap, sizeof *cs->addrs);
	if (!cs->slot || !cs->addrs || pthread_mutex_init(&cs->lock, NULL)) {
		free(cs->slot);
		free(cs->addrs);
		cs->slot = NULL;
		cs->addrs = NULL;
		return -1;
	}
	return 0;
}

void conns_free(struct conns *cs)
{
	if (!cs->slot)
		return;
	pthread_mutex_destroy(&cs->lock);
	free(cs->slot);
	free(cs->addrs);
	cs->slot = NULL;
	cs->addrs = NULL;
}

/* The limit key of a socket address: IPv4 as an IPv4-mapped IPv6 address,
 * IPv6 cut to its /64. */
void conns_addr_key(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		const unsigned char *b = a->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		memcpy(key, b, memcmp(b, mapped, 12) == 0 ? 16 : 8);
	}
}

/* Sends a short JSON error reply without blocking (never on TLS sockets). */
static void say(const struct conns *cs, int fd, int status, const char *reason, const char *code, const char *msg)
{
	char body[384], head[512];
	if (cs->tls)
		return;
	int nb = snprintf(body, sizeof body,
			  "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}", msg,
			  status == 408 ? "timeout_error" : "service_unavailable", code);
	int nh = snprintf(head, sizeof head,
			  "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
			  "Connection: close\r\n\r\n",
			  status, reason, nb, status == 503 ? "Retry-After: 1\r\n" : "");
	if (nb < 0 || nh < 0 || (size_t)nb >= sizeof body || (size_t)nh >= sizeof head)
		return;
	if (send(fd, head, (size_t)nh, MSG_DONTWAIT | MSG_NOSIGNAL) == nh)
		(void)send(fd, body, (size_t)nb, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void conns_say_busy(const struct conns *cs, int fd)
{
	say(cs, fd, 503, "Service Unavailable", "too_many_connections",
	    "The server has no connection free for your address now. Retry shortly.");
}

/* ---- open connections per address: open addressing, backward-shift deletion ---- */

static size_t addr_home(const struct conns *cs, const unsigned char *key)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a: the keys are not secret, only spread */
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return (size_t)(h & (cs->addr_cap - 1));
}

/* The entry of key, or the empty one where it would go. */
static struct addr_count *addr_find(struct conns *cs, const unsigned char *key)
{
	size_t i = addr_home(cs, key);
	while (cs->addrs[i].n && memcmp(cs->addrs[i].key, key, 16))
		i = (i + 1) & (cs->addr_cap - 1);
	return &cs->addrs[i];
}

static int addr_open(struct conns *cs, const unsigned char *key)
{
	return addr_find(cs, key)->n;
}

static void addr_add(struct conns *cs, const unsigned char *key)
{
	struct addr_count *a = addr_find(cs, key);
	memcpy(a->key, key, 16);
	a->n++;
}

static void addr_sub(struct conns *cs, const unsigned char *key)
{
	struct addr_count *a = addr_find(cs, key);
	const size_t mask = cs->addr_cap - 1;
	if (!a->n || --a->n)
		return;
	/* emptied: pull later members of its probe run back over the hole */
	size_t hole = (size_t)(a - cs->addrs);
	for (size_t j = (hole + 1) & mask; cs->addrs[j].n; j = (j + 1) & mask) {
		size_t home = addr_home(cs, cs->addrs[j].key);
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			cs->addrs[hole] = cs->addrs[j];
			cs->addrs[j].n = 0;
			hole = j;
		}
	}
}

/* ---- slots ---- */

/* Marks a slot closing and ends its connection. Call with the lock held. */
static void close_slot(struct conns *cs, struct conn_slot *s)
{
	s->closing = true;
	cs->n_open--;
	cs->n_closing++;
	addr_sub(cs, s->addr);
	shutdown(s->fd, SHUT_RDWR);
}

/* How readily s gives way to a newcomer (rule 2): 0 IDLE, 1 RECEIVING, 2 a
 * stalled reader, -1 never; *since: since when it has been so. */
static int yield_class(const struct conn_slot *s, double now, double *since)
{
	*since = s->t_wait;
	if (s->state == CONN_IDLE)
		return 0;
	if (s->state == CONN_RECEIVING)
		return 1;
	*since = s->t_backlog;
	return s->t_backlog > 0 && now - s->t_backlog > STALL_GRACE_S ? 2 : -1;
}

/* The slot that gives way first by rule 2, of addr when given; NULL when none may. */
static struct conn_slot *victim(struct conns *cs, const unsigned char *addr, double now)
{
	struct conn_slot *best = NULL;
	int best_class = 3;
	double best_since = 0;
	for (int i = 0; i < cs->cap; i++) {
		struct conn_slot *s = &cs->slot[i];
		double since;
		if (!s->used || s->closing || (addr && memcmp(s->addr, addr, 16)))
			continue;
		int c = yield_class(s, now, &since);
		if (c >= 0 && (c < best_class || (c == best_class && since < best_since))) {
			best = s;
			best_class = c;
			best_since = since;
		}
	}
	return best;
}

/* Ends a victim: a 503 first when it has not been answered yet. */
static void evict(struct conns *cs, struct conn_slot *v)
{
	if (v->state == CONN_IDLE || v->state == CONN_RECEIVING)
		conns_say_busy(cs, v->fd);
	close_slot(cs, v);
	cs->n_evicted++;
}

/* Frees room for one more connection from addr by rule 2; false when none can be freed. */
static bool make_room(struct conns *cs, const unsigned char *addr, double now)
{
	if (cs->n_closing >= cs->max_total)
		return false; /* libmicrohttpd has not caught up with the ones already closing */
	if (addr_open(cs, addr) >= cs->max_per_addr) {
		struct conn_slot *v = victim(cs, addr, now);
		if (!v)
			return false;
		evict(cs, v);
	}
	if (cs->n_open >= cs->max_total) {
		struct conn_slot *v = victim(cs, NULL, now);
		if (!v)
			return false;
		evict(cs, v);
	}
	return true;
}

int conns_admit(struct conns *cs, int fd, const struct sockaddr *sa, double now)
{
	unsigned char key[16];
	int at = -1;
	conns_addr_key(sa, key);
	pthread_mutex_lock(&cs->lock);
	if (!make_room(cs, key, now)) {
		cs->n_refused++;
		goto out;
	}
	for (int i = 0; i < cs->cap && at < 0; i++)
		if (!cs->slot[i].used)
			at = i;
	if (at < 0) { /* every slot open or closing: rule 2's bound keeps this from happening */
		cs->n_refused++;
		goto out;
	}
	struct conn_slot *s = &cs->slot[at];
	memset(s, 0, sizeof *s);
	s->used = true;
	s->fd = fd;
	memcpy(s->addr, key, 16);
	s->state = CONN_IDLE;
	s->t_wait = now;
	cs->n_open++;
	addr_add(cs, key);
out:
	pthread_mutex_unlock(&cs->lock);
	return at;
}

/* Frees a slot. Call with the lock held. */
static void release(struct conns *cs, struct conn_slot *s)
{
	if (s->closing) {
		cs->n_closing--;
	} else {
		cs->n_open--;
		addr_sub(cs, s->addr);
	}
	memset(s, 0, sizeof *s);
}

void conns_forget(struct conns *cs, int at, int fd)
{
	pthread_mutex_lock(&cs->lock);
	struct conn_slot *s = &cs->slot[at];
	if (s->used && !s->started && s->fd == fd)
		release(cs, s);
	pthread_mutex_unlock(&cs->lock);
}

struct conn_slot *conns_started(struct conns *cs, int fd)
{
	struct conn_slot *found = NULL;
	pthread_mutex_lock(&cs->lock);
	for (int i = 0; i < cs->cap && !found; i++)
		if (cs->slot[i].used && !cs->slot[i].started && cs->slot[i].fd == fd)
			found = &cs->slot[i];
	if (found)
		found->started = true;
	pthread_mutex_unlock(&cs->lock);
	return found;
}

void conns_closed(struct conns *cs, struct conn_slot *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&cs->lock);
	release(cs, s);
	pthread_mutex_unlock(&cs->lock);
}

/* Moves s to state (from the connection's own thread); false when it is being closed. */
static bool set_state(struct conns *cs, struct conn_slot *s, int state, double now)
{
	bool ok = true;
	if (!s)
		return true;
	pthread_mutex_lock(&cs->lock);
	if (s->closing) {
		ok = false;
	} else {
		if (state == CONN_IDLE)
			s->t_wait = now;
		s->state = state;
	}
	pthread_mutex_unlock(&cs->lock);
	return ok;
}

bool conns_receiving(struct conns *cs, struct conn_slot *s) { return set_state(cs, s, CONN_RECEIVING, 0); }
bool conns_busy(struct conns *cs, struct conn_slot *s) { return set_state(cs, s, CONN_BUSY, 0); }
void conns_sending(struct conns *cs, struct conn_slot *s) { set_state(cs, s, CONN_SENDING, 0); }
void conns_waiting(struct conns *cs, struct conn_slot *s, double now) { set_state(cs, s, CONN_IDLE, now); }

/* Bytes the kernel holds for fd that its client has not read. */
static int backlog_of(int fd)
{
	int n = 0;
	return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : 0;
}

int conns_reap(struct conns *cs, double now)
{
	int n = 0;
	char msg[128];
	snprintf(msg, sizeof msg, "The request was not received within %g seconds", cs->deadline_s);
	pthread_mutex_lock(&cs->lock);
	for (int i = 0; i < cs->cap; i++) {
		struct conn_slot *s = &cs->slot[i];
		if (!s->used || s->closing)
			continue;
		if (backlog_of(s->fd) == 0)
			s->t_backlog = 0;
		else if (s->t_backlog == 0)
			s->t_backlog = now;
		const bool waited = (s->state == CONN_IDLE || s->state == CONN_RECEIVING) && now - s->t_wait > cs->deadline_s;
		const bool stalled = s->t_backlog > 0 && now - s->t_backlog > cs->deadline_s;
		if (!waited && !stalled)
			continue;
		if (waited && !stalled) /* a reply under way cannot be followed by another */
			say(cs, s->fd, 408, "Request Timeout", "request_timeout", msg);
		close_slot(cs, s);
		cs->n_timed_out++;
		n++;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

void conns_counts(struct conns *cs, struct conns_stats *st)
{
	pthread_mutex_lock(&cs->lock);
	st->n_open = cs->n_open;
	st->n_closing = cs->n_closing;
	st->n_evicted = cs->n_evicted;
	st->n_refused = cs->n_refused;
	st->n_timed_out = cs->n_timed_out;
	pthread_mutex_unlock(&cs->lock);
}
