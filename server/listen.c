/*
 * listen.c - the listening socket and the accept loop.
 *
 * hearth opens its own listening socket so that it alone decides who gets
 * in: it binds without SO_REUSEPORT (a second server on a busy port is an
 * error at start-up, never a silent split of the traffic), and one thread
 * accepts every connection, asks conns.c for a slot, and hands the socket to
 * libmicrohttpd (MHD_add_connection), or answers it 503 with Retry-After
 * itself. The same thread enforces the request deadlines (conns_reap) a few
 * times a second.
 *
 * A refused socket is kept a moment, reading what the client sends, before it
 * is closed: closing with unread input would reset the connection and the
 * client could lose the 503. Out of descriptors, the loop closes a reserve
 * one to accept and refuse the waiting client instead of spinning on EMFILE.
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define ACCEPT_BURST 64      /* connections accepted per wake-up before other work */
#define LINGER_S 1.0         /* how long a refused socket is drained before it is closed */

/* Parses host (an IP address or "localhost") into sa; false when it is neither. */
static bool host_addr(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)sa;
	memset(sa, 0, sizeof *sa);
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof *a4;
		return true;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof *a6;
		return true;
	}
	return false;
}

bool host_is_loopback(const char *host)
{
	struct sockaddr_storage sa;
	socklen_t len;
	if (!host_addr(host, 0, &sa, &len))
		return false;
	if (sa.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24) == 127;
	const struct in6_addr *a = &((struct sockaddr_in6 *)&sa)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

int fd_limit_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1 << 20) ? (1 << 20) : rl.rlim_max;
		if (want > rl.rlim_cur) {
			rl.rlim_cur = want;
			if (setrlimit(RLIMIT_NOFILE, &rl))
				getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT32_MAX ? INT32_MAX : (int)rl.rlim_cur;
}

int listener_open(struct listener *l, const char *host, int port, char *why, size_t why_size)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int one = 1;

	memset(l, 0, sizeof *l);
	l->fd = l->wake[0] = l->wake[1] = l->reserve = -1;
	if (!host_addr(host, port, &sa, &len)) {
		snprintf(why, why_size, "--host %s is not an IP address (or localhost)", host);
		return -1;
	}
	l->family = sa.ss_family;
	l->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		snprintf(why, why_size, "cannot open a socket for %s: %s", host, strerror(errno));
		return -1;
	}
	/* SO_REUSEADDR lets a restart bind while old connections linger in TIME_WAIT;
	 * it never lets two listeners share the port on Linux (SO_REUSEPORT would) */
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(l->fd, (struct sockaddr *)&sa, len) || listen(l->fd, 1024)) {
		int e = errno;
		snprintf(why, why_size, "cannot listen on %s port %d: %s%s", host, port, strerror(e),
			 e == EADDRINUSE ? " (another program is listening on it; choose another --port)" : "");
		close(l->fd);
		l->fd = -1;
		return -1;
	}
	len = sizeof sa;
	if (getsockname(l->fd, (struct sockaddr *)&sa, &len) == 0)
		l->port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
							: ((struct sockaddr_in6 *)&sa)->sin6_port);
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) || fcntl(l->fd, F_SETFL, O_NONBLOCK)) {
		snprintf(why, why_size, "cannot set up the accept loop: %s", strerror(errno));
		listener_close(l);
		return -1;
	}
	l->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return 0;
}

/* Keeps a refused socket to drain it for LINGER_S, or closes it at once when the list is full. */
static void linger_add(struct listener *l, int fd, double now)
{
	shutdown(fd, SHUT_WR);
	if (l->n_linger == LISTEN_MAX_LINGER) {
		close(fd);
		return;
	}
	l->linger[l->n_linger].fd = fd;
	l->linger[l->n_linger].t_close = now + LINGER_S;
	l->n_linger++;
}

/* Reads and drops what lingering sockets received; closes those at their end or
 * time. pf holds the poll results of the first n_polled. */
static void linger_run(struct listener *l, const struct pollfd *pf, int n_polled, double now)
{
	char sink[4096];
	int kept = 0;
	for (int i = 0; i < l->n_linger; i++) {
		bool done = now >= l->linger[i].t_close;
		if (!done && i < n_polled && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = recv(l->linger[i].fd, sink, sizeof sink, MSG_DONTWAIT);
			done = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
		}
		if (done)
			close(l->linger[i].fd);
		else
			l->linger[kept++] = l->linger[i];
	}
	l->n_linger = kept;
}

/* Accepts one waiting client; false when there is none (or on an error to retry later). */
static bool accept_one(struct listener *l, struct server *srv, double now)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;
	int fd = accept4(l->fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE) && l->reserve >= 0) {
		/* out of descriptors: free the reserve to take the client off the queue and refuse it */
		close(l->reserve);
		fd = accept4(l->fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			conns_say_busy(&srv->conns, fd);
			close(fd);
		}
		l->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return fd >= 0;
	}
	if (fd < 0)
		return false;
	int at = conns_admit(&srv->conns, fd, (struct sockaddr *)&sa, now);
	if (at < 0) {
		conns_say_busy(&srv->conns, fd);
		linger_add(l, fd, now);
		return true;
	}
	/* libmicrohttpd owns (and closes) the socket from here, whatever it answers */
	if (MHD_add_connection(srv->mhd, fd, (struct sockaddr *)&sa, len) != MHD_YES)
		conns_forget(&srv->conns, at, fd);
	return true;
}

static void *accept_loop(void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	struct pollfd pf[LISTEN_MAX_LINGER + 2];

	for (;;) {
		const int n_polled = l->n_linger;
		for (int i = 0; i < n_polled; i++)
			pf[i] = (struct pollfd){ .fd = l->linger[i].fd, .events = POLLIN };
		pf[n_polled] = (struct pollfd){ .fd = l->wake[0], .events = POLLIN };
		pf[n_polled + 1] = (struct pollfd){ .fd = l->fd, .events = POLLIN };
		int n = poll(pf, (nfds_t)n_polled + 2, 200);
		double now = hearth_now();
		if (n > 0 && (pf[n_polled].revents & POLLIN))
			break;
		if (n > 0 && (pf[n_polled + 1].revents & POLLIN))
			for (int k = 0; k < ACCEPT_BURST && accept_one(l, srv, now); k++)
				;
		linger_run(l, pf, n_polled, now);
		conns_reap(&srv->conns, now);
	}
	return NULL;
}

int listener_start(struct listener *l, struct server *srv)
{
	l->srv = srv;
	if (pthread_create(&l->thread, NULL, accept_loop, l))
		return -1;
	l->running = true;
	return 0;
}

void listener_close(struct listener *l)
{
	if (l->running) {
		char c = 1;
		if (write(l->wake[1], &c, 1) != 1)
			fprintf(stderr, "hearth serve: cannot wake the accept loop\n");
		pthread_join(l->thread, NULL);
		l->running = false;
	}
	for (int i = 0; i < l->n_linger; i++)
		close(l->linger[i].fd);
	l->n_linger = 0;
	int *fds[] = { &l->fd, &l->wake[0], &l->wake[1], &l->reserve };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}
