/* test-conns.c - the connection rules of server/conns.c on loopback TCP connections: who
 * gives way to a newcomer beyond the limits (the longest idle one of anyone
 * for the global limit, whatever its address; its own address's for the
 * per-address limit; never a connection at work), the 503 when none may,
 * and the deadlines, for a request and for a client that does not read
 * (bytes left unread in the kernel, whatever the connection's state). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../server/server.h"
#include "../harness.h"

#define N_MAX 8

struct peer {
	int mine, theirs; /* the server's end (in the slot) and the client's */
	int at;
	struct conn_slot *slot;
};

static struct sockaddr_in addr_of(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static int listener = -1, listen_port;

/* A TCP connection from ip to a loopback listener, admitted at time t; false
 * when it was refused (then its sockets are closed). */
static bool connect_peer(struct conns *cs, struct peer *p, const char *ip, double t)
{
	if (listener < 0) {
		struct sockaddr_in a = addr_of("127.0.0.1", 0);
		socklen_t len = sizeof a;
		listener = socket(AF_INET, SOCK_STREAM, 0);
		if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 16) ||
		    getsockname(listener, (struct sockaddr *)&a, &len))
			return false;
		listen_port = ntohs(a.sin_port);
	}
	struct sockaddr_in from = addr_of(ip, 0), to = addr_of("127.0.0.1", listen_port);
	p->theirs = socket(AF_INET, SOCK_STREAM, 0);
	if (p->theirs < 0 || bind(p->theirs, (struct sockaddr *)&from, sizeof from) ||
	    connect(p->theirs, (struct sockaddr *)&to, sizeof to) || (p->mine = accept(listener, NULL, NULL)) < 0)
		return false;
	p->at = conns_admit(cs, p->mine, (struct sockaddr *)&from, t);
	p->slot = p->at >= 0 ? conns_started(cs, p->mine) : NULL;
	if (p->at < 0) {
		close(p->mine);
		close(p->theirs);
	}
	return p->at >= 0;
}

/* Sends p's client bytes until the kernel holds no more: a backlog it does not read. */
static void fill(struct peer *p)
{
	static char junk[65536];
	while (send(p->mine, junk, sizeof junk, MSG_DONTWAIT) > 0)
		;
}

/* Was p's connection ended by the server (its end shut down)? */
static bool was_closed(const struct peer *p)
{
	char buf[512];
	ssize_t n;
	while ((n = recv(p->theirs, buf, sizeof buf, MSG_DONTWAIT)) > 0)
		;
	return n == 0;
}

static void drop_peer(struct conns *cs, struct peer *p)
{
	if (p->slot)
		conns_closed(cs, p->slot);
	close(p->mine);
	close(p->theirs);
	p->slot = NULL;
}

void test_conns(void)
{
	struct conns cs;
	struct peer p[N_MAX + 4];
	T_EQ_I64(conns_init(&cs, 4, 3, 10.0, false), 0);

	/* the global limit: the longest idle connection gives way, whatever its address,
	 * and the address order in the table plays no part */
	T_TRUE(connect_peer(&cs, &p[0], "127.0.0.7", 1.0));  /* oldest */
	T_TRUE(connect_peer(&cs, &p[1], "127.0.0.2", 2.0));
	T_TRUE(connect_peer(&cs, &p[2], "127.0.0.2", 3.0));
	T_TRUE(connect_peer(&cs, &p[3], "127.0.0.3", 4.0));
	T_TRUE(conns_busy(&cs, p[1].slot));                    /* at work: never gives way */
	T_TRUE(connect_peer(&cs, &p[4], "127.0.0.4", 5.0));
	T_TRUE(was_closed(&p[0]));
	T_TRUE(!was_closed(&p[1]) && !was_closed(&p[2]) && !was_closed(&p[3]));
	drop_peer(&cs, &p[0]);
	/* a request's body arriving gives way only after every idle connection */
	T_TRUE(conns_receiving(&cs, p[2].slot));
	T_TRUE(connect_peer(&cs, &p[5], "127.0.0.5", 6.0));
	T_TRUE(was_closed(&p[3]) && !was_closed(&p[2]));
	drop_peer(&cs, &p[3]);

	/* the per-address limit (3): the newcomer's own address gives way */
	drop_peer(&cs, &p[4]);
	drop_peer(&cs, &p[5]);
	T_TRUE(connect_peer(&cs, &p[6], "127.0.0.2", 7.0));   /* .2: one busy, one receiving, one idle */
	T_TRUE(connect_peer(&cs, &p[8], "127.0.0.9", 7.5));   /* idle, older than the next: stays */
	T_TRUE(connect_peer(&cs, &p[7], "127.0.0.2", 8.0));
	T_TRUE(was_closed(&p[6]));
	T_TRUE(!was_closed(&p[1]) && !was_closed(&p[2]) && !was_closed(&p[8]));
	drop_peer(&cs, &p[6]);

	/* every connection of an address at work: the newcomer is refused */
	struct conns one;
	struct peer q[3];
	T_EQ_I64(conns_init(&one, 4, 2, 10.0, false), 0);
	T_TRUE(connect_peer(&one, &q[0], "127.0.1.1", 1.0));
	T_TRUE(connect_peer(&one, &q[1], "127.0.1.1", 1.0));
	T_TRUE(conns_busy(&one, q[0].slot) && conns_busy(&one, q[1].slot));
	T_TRUE(!connect_peer(&one, &q[2], "127.0.1.1", 2.0));
	/* a client that leaves its reply unread for STALL_GRACE_S (2 s) gives way,
	 * whatever the state, and one that leaves it for the deadline is cut */
	conns_sending(&one, q[0].slot);
	fill(&q[0]);
	T_EQ_I64(conns_reap(&one, 2.0), 0); /* the backlog is seen */
	T_TRUE(!connect_peer(&one, &q[2], "127.0.1.1", 3.0)); /* 1 s: still its grace */
	T_TRUE(connect_peer(&one, &q[2], "127.0.1.1", 4.5));
	T_TRUE(was_closed(&q[0]));
	fill(&q[1]); /* busy (a stream whose client stopped reading) */
	T_EQ_I64(conns_reap(&one, 6.0), 0);
	T_EQ_I64(conns_reap(&one, 14.0), 0);
	T_EQ_I64(conns_reap(&one, 16.5), 2); /* q[1] left it unread 10.5 s; q[2] waited 12 s for a request */
	T_TRUE(was_closed(&q[1]) && was_closed(&q[2]));
	/* the state changes of a connection being closed say so */
	T_TRUE(!conns_busy(&one, q[1].slot));
	struct conns_stats st;
	conns_counts(&one, &st);
	T_EQ_I64(st.n_evicted, 1);
	T_EQ_I64(st.n_refused, 2);
	T_EQ_I64(st.n_timed_out, 2);
	for (int i = 0; i < 3; i++)
		drop_peer(&one, &q[i]);
	conns_counts(&one, &st);
	T_EQ_I64(st.n_open + st.n_closing, 0);
	conns_free(&one);

	drop_peer(&cs, &p[1]);
	drop_peer(&cs, &p[2]);
	drop_peer(&cs, &p[7]);
	drop_peer(&cs, &p[8]);
	conns_counts(&cs, &st);
	T_EQ_I64(st.n_open + st.n_closing, 0);
	conns_free(&cs);
	close(listener);
	listener = -1;
}
