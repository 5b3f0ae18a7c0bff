/* The compiled forwarding loop of the media data plane (issue 17).
 *
 * One call from Python per batch of ready sockets (Forwarder.forward): every datagram waiting on
 * those sockets is read with recvmmsg; an SRTP/RTP packet whose (socket, SSRC) has a route pushed
 * from Python, from the socket's ICE-validated source, with the route's payload type and a header
 * this module can rewrite exactly as the Python path does, is unprotected, accounted, rewritten for
 * each sink (SSRC, payload type, sequence number, timestamp, header-extension ids), protected and
 * sent with sendmmsg. Everything else is handed back to Python untouched (STUN, DTLS, RTCP, unknown
 * SSRCs, a new source address, an SRTP authentication failure, two-byte header extensions,
 * packets larger than a sink's MTU, ...): the Python path (emulator/media/session/rtp.py) stays
 * the reference, and tests/media/test_fastpath.py holds both byte for byte equal. Besides the
 * streams' figures, each route counts what Python adds to the transports and latency meters at
 * every sync (datagram bytes in and out, per sink the time from the receive to the send), and
 * remove_route hands each sink's retransmission history back to the Python streams.
 *
 * SRTP: the srtp_t sessions are the ones pylibsrtp created (the DTLS or SDES key exchange in
 * Python keys them), so Python and C share one SRTP state (replay window, rollover counter). The
 * library's srtp_protect/srtp_unprotect are called through the addresses pylibsrtp's cffi module
 * exports (set_srtp_functions): nothing to link against, and the same libsrtp build as Python's.
 *
 * Safety: every header field read is bounds-checked against the datagram length; buffers are
 * fixed-size and every write into them checked; `make sanitize` builds this file with ASan and
 * UBSan and runs the data-path tests.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define RECEIVE_SIZE 4096   /* as emulator/media/net/poller.py */
#define TRAILER_ROOM 256    /* SRTP_MAX_TRAILER_LEN (16 + 128) and more */
#define BUFFER_SIZE (RECEIVE_SIZE + TRAILER_ROOM)
#define BATCH 64            /* datagrams per recvmmsg */
#define MAX_SINKS 32        /* sinks of one route (a bigger fan-out stays in Python) */
#define OUT_BATCH 256       /* datagrams per flush of sendmmsg */
#define HISTORY 512         /* RETRANSMIT_BUFFER of emulator/media/rtp/streams.py */
#define FIXED_HEADER 12

typedef int (*srtp_fn)(void *ctx, void *header, int *len);
static srtp_fn srtp_protect_fn = NULL;
static srtp_fn srtp_unprotect_fn = NULL;

/* -- routes ------------------------------------------------------------------------------------ */

typedef struct {
    uint8_t *data;
    uint16_t sequence;
    uint16_t length;
} HistorySlot;

typedef struct {
    int fd;
    struct sockaddr_storage dest;
    socklen_t dest_len;
    void *srtp; /* srtp_t of the sink's transport, NULL for plain RTP */
    uint32_t ssrc;
    uint8_t payload_type;
    uint16_t seq_offset;
    uint32_t ts_offset;
    uint8_t ext_map[16]; /* source one-byte id -> sink id, 0: dropped */
    int ext_identity;    /* every mapped id maps to itself */
    int max_payload;
    /* OutboundStream's figures, continued from Python's when the route was pushed */
    uint16_t sequence;
    uint32_t last_timestamp;
    double last_sent_at;
    uint64_t packets;
    uint64_t octets;
    uint64_t send_errors;
    /* since the push (Python adds them to the transport's counters and the latency meter) */
    uint64_t wire_octets;   /* protected bytes handed to sendmmsg */
    double latency_sum;     /* seconds from the receive to the packet's protection, summed */
    uint64_t latency_count;
    HistorySlot *history; /* video sinks: the last HISTORY packets sent, by sequence number */
} Sink;

typedef struct Route {
    int fd;
    uint32_t ssrc;
    uint8_t payload_type;
    /* InboundStream's figures (RFC 3550 A.3, A.8), continued from Python's */
    uint32_t clock_rate;
    uint64_t packets;
    uint64_t octets;
    int64_t base_seq;
    uint16_t max_seq;
    uint64_t cycles;
    double jitter;
    double transit;
    int has_transit;
    double last_arrival;
    uint64_t wire_octets; /* datagram bytes received (protected) since the push */
    int nsinks;
    Sink sinks[MAX_SINKS];
    struct Route *next;
} Route;

typedef struct {
    int fd;
    void *srtp; /* srtp_t that unprotects what arrives, NULL for plain RTP */
    struct sockaddr_storage source;
    socklen_t source_len; /* 0: any source (no route is used then) */
} Socket;

#define ROUTE_BUCKETS 1024
#define MAX_SOCKETS 65536

typedef struct {
    PyObject_HEAD
    Route *buckets[ROUTE_BUCKETS];
    Socket *sockets[MAX_SOCKETS]; /* by descriptor number */
    unsigned long long read; /* datagrams read */
    uint64_t forwarded;   /* packets received and forwarded here */
    uint64_t handed_back; /* datagrams handed back to Python */
    uint64_t sent;        /* datagrams sent */
    uint64_t srtp_failures;
    /* batch buffers, reused */
    uint8_t in[BATCH][BUFFER_SIZE];
    struct mmsghdr in_msgs[BATCH];
    struct iovec in_iov[BATCH];
    struct sockaddr_storage in_addr[BATCH];
    uint8_t work[BUFFER_SIZE];
    uint8_t out[OUT_BATCH][BUFFER_SIZE];
    struct mmsghdr out_msgs[OUT_BATCH];
    struct iovec out_iov[OUT_BATCH];
    int out_fd[OUT_BATCH];
    int nout;
} Forwarder;

static unsigned bucket_of(int fd, uint32_t ssrc) {
    return (unsigned)((ssrc * 2654435761u) ^ (uint32_t)fd) % ROUTE_BUCKETS;
}

static Route *find_route(Forwarder *self, int fd, uint32_t ssrc) {
    for (Route *r = self->buckets[bucket_of(fd, ssrc)]; r != NULL; r = r->next)
        if (r->fd == fd && r->ssrc == ssrc)
            return r;
    return NULL;
}

/* Free what the sinks hold; the route then has none (its packets go back to Python). */
static void empty_route(Route *route) {
    for (int i = 0; i < route->nsinks; i++) {
        HistorySlot *history = route->sinks[i].history;
        if (history != NULL) {
            for (int h = 0; h < HISTORY; h++)
                PyMem_Free(history[h].data);
            PyMem_Free(history);
            route->sinks[i].history = NULL;
        }
    }
    route->nsinks = 0;
}

static void free_route(Route *route) {
    empty_route(route);
    PyMem_Free(route);
}

static int unlink_route(Forwarder *self, int fd, uint32_t ssrc) {
    Route **link = &self->buckets[bucket_of(fd, ssrc)];
    while (*link != NULL) {
        Route *r = *link;
        if (r->fd == fd && r->ssrc == ssrc) {
            *link = r->next;
            free_route(r);
            return 1;
        }
        link = &r->next;
    }
    return 0;
}

static double monotonic(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static int16_t sequence_delta(uint16_t newer, uint16_t older) { return (int16_t)(uint16_t)(newer - older); }

/* -- the header ---------------------------------------------------------------------------------- */

typedef struct {
    int header_end; /* payload offset */
    int ext_start;  /* -1: no extension */
    int n_ext;
    uint8_t ext_id[64];
    int ext_offset[64]; /* of the element's value */
    uint8_t ext_len[64];
} Header;

/* RFC 3550 5.1 and RFC 8285 4.2 (one-byte elements only), every read bounds-checked. Returns 0
 * for a header this module rewrites as the Python path does, -1 for anything else. */
static int parse_header(const uint8_t *data, int len, Header *h) {
    if (len < FIXED_HEADER || (data[0] >> 6) != 2)
        return -1;
    int end = FIXED_HEADER + 4 * (data[0] & 0x0F);
    h->ext_start = -1;
    h->n_ext = 0;
    if (data[0] & 0x10) {
        if (end + 4 > len)
            return -1;
        h->ext_start = end;
        if (be16(data + end) != 0xBEDE)
            return -1; /* two-byte elements: Python */
        int words = be16(data + end + 2);
        int pos = end + 4;
        end = pos + 4 * words;
        if (end > len)
            return -1;
        while (pos < end) {
            uint8_t byte = data[pos];
            if (byte == 0) {
                pos++;
                continue;
            }
            int id = byte >> 4, size = (byte & 0x0F) + 1;
            if (id == 15 || pos + 1 + size > end || h->n_ext == 64)
                return -1; /* reserved id, truncated element: Python */
            h->ext_id[h->n_ext] = (uint8_t)id;
            h->ext_offset[h->n_ext] = pos + 1;
            h->ext_len[h->n_ext] = (uint8_t)size;
            h->n_ext++;
            pos += 1 + size;
        }
    }
    if (end > len)
        return -1;
    h->header_end = end;
    return 0;
}

/* The extension block for a sink: the source's bytes as they are when every element is mapped to
 * its own id (rewrite_rtp's shortcut), else aiortc's pack_header_extensions of the kept, renamed
 * elements (one-byte form, zero padding to 32 bits). Returns the bytes written at `out` (the
 * whole block, profile and length included; 0 when no element is kept), or -1 when it does not
 * fit in `room`. */
static int write_extensions(const uint8_t *data, const Header *h, const Sink *sink, uint8_t *out,
                            int room, int *copied_as_is) {
    int all_mapped = 1;
    for (int i = 0; i < h->n_ext; i++)
        if (sink->ext_map[h->ext_id[i]] == 0)
            all_mapped = 0;
    *copied_as_is = 0;
    if (sink->ext_identity && all_mapped) {
        int size = h->header_end - h->ext_start;
        if (size > room)
            return -1;
        memcpy(out, data + h->ext_start, (size_t)size);
        *copied_as_is = 1;
        return size;
    }
    int body = 0;
    for (int i = 0; i < h->n_ext; i++)
        if (sink->ext_map[h->ext_id[i]] != 0)
            body += 1 + h->ext_len[i];
    if (body == 0)
        return 0;
    int padded = (body + 3) / 4 * 4;
    if (4 + padded > room)
        return -1;
    put16(out, 0xBEDE);
    put16(out + 2, (uint16_t)(padded / 4));
    int pos = 4;
    for (int i = 0; i < h->n_ext; i++) {
        uint8_t id = sink->ext_map[h->ext_id[i]];
        if (id == 0)
            continue;
        out[pos++] = (uint8_t)((id << 4) | (h->ext_len[i] - 1));
        memcpy(out + pos, data + h->ext_offset[i], h->ext_len[i]);
        pos += h->ext_len[i];
    }
    memset(out + pos, 0, (size_t)(4 + padded - pos));
    return 4 + padded;
}

/* -- sending ------------------------------------------------------------------------------------- */

static void flush(Forwarder *self) {
    int start = 0;
    while (start < self->nout) {
        int fd = self->out_fd[start], count = 1;
        while (start + count < self->nout && self->out_fd[start + count] == fd)
            count++;
        int done = 0;
        while (done < count) {
            int n = sendmmsg(fd, &self->out_msgs[start + done], (unsigned)(count - done), 0);
            if (n <= 0)
                break; /* a full socket buffer or ICMP error: the rest is lost, as with sendto */
            done += n;
        }
        self->sent += (uint64_t)done;
        start += count;
    }
    self->nout = 0;
}

static void keep_history(Sink *sink, uint16_t sequence, const uint8_t *clear, int len) {
    HistorySlot *slot = &sink->history[sequence % HISTORY];
    if (slot->data == NULL || slot->length < len) {
        PyMem_Free(slot->data);
        slot->data = PyMem_Malloc((size_t)len);
        if (slot->data == NULL) {
            slot->length = 0;
            return;
        }
    }
    memcpy(slot->data, clear, (size_t)len);
    slot->length = (uint16_t)len;
    slot->sequence = sequence;
}

/* Rewrite, protect and queue one packet for one sink (OutboundStream.next_numbers and sent). */
static void send_to_sink(Forwarder *self, const uint8_t *data, int len, const Header *h, Sink *sink,
                         double now) {
    if (self->nout == OUT_BATCH)
        flush(self);
    uint8_t *out = self->out[self->nout];
    uint16_t in_seq = be16(data + 2);
    uint32_t in_ts = be32(data + 4);
    uint16_t sequence = (uint16_t)(in_seq + sink->seq_offset);
    uint32_t timestamp = in_ts + sink->ts_offset;
    if (sequence_delta(sequence, sink->sequence) > 0 || sink->packets == 0) {
        sink->sequence = sequence;
        sink->last_timestamp = timestamp;
    }
    int csrc_end = FIXED_HEADER + 4 * (data[0] & 0x0F);
    int room = RECEIVE_SIZE - csrc_end;
    int copied = 0, ext = 0;
    uint8_t first = data[0];
    if (h->ext_start >= 0) {
        ext = write_extensions(data, h, sink, out + csrc_end, room, &copied);
        if (ext < 0)
            return;
        if (!copied)
            first = ext > 0 ? (uint8_t)(first | 0x10) : (uint8_t)(first & 0xEF);
    }
    int payload = len - h->header_end;
    int total = csrc_end + ext + payload;
    if (total > RECEIVE_SIZE)
        return;
    out[0] = first;
    out[1] = (uint8_t)((data[1] & 0x80) | sink->payload_type);
    put16(out + 2, sequence);
    put32(out + 4, timestamp);
    put32(out + 8, sink->ssrc);
    memcpy(out + FIXED_HEADER, data + FIXED_HEADER, (size_t)(csrc_end - FIXED_HEADER));
    memcpy(out + csrc_end + ext, data + h->header_end, (size_t)payload);
    if (sink->history != NULL)
        keep_history(sink, sequence, out, total);
    int protected_len = total;
    if (sink->srtp != NULL && srtp_protect_fn(sink->srtp, out, &protected_len) != 0) {
        sink->send_errors++;
        return;
    }
    sink->packets++;
    sink->octets += (uint64_t)payload;
    sink->last_sent_at = now;
    sink->wire_octets += (uint64_t)protected_len;
    /* the Python path's latency (rtp.py _send): from the receive to this packet's send */
    sink->latency_sum += monotonic() - now;
    sink->latency_count++;
    self->out_iov[self->nout].iov_base = out;
    self->out_iov[self->nout].iov_len = (size_t)protected_len;
    struct msghdr *m = &self->out_msgs[self->nout].msg_hdr;
    memset(m, 0, sizeof *m);
    m->msg_iov = &self->out_iov[self->nout];
    m->msg_iovlen = 1;
    m->msg_name = &sink->dest;
    m->msg_namelen = sink->dest_len;
    self->out_fd[self->nout] = sink->fd;
    self->nout++;
}

/* -- receiving ----------------------------------------------------------------------------------- */

static int same_address(const struct sockaddr_storage *a, socklen_t alen,
                        const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    (void)alen;
    return 0;
}

/* InboundStream.received */
static void account_inbound(Route *r, uint16_t sequence, uint32_t timestamp, int payload, double now) {
    r->packets++;
    r->octets += (uint64_t)payload;
    r->last_arrival = now;
    if (r->base_seq < 0) {
        r->base_seq = sequence;
        r->max_seq = sequence;
    } else {
        int delta = sequence_delta(sequence, r->max_seq);
        if (delta > 0) {
            if (sequence < r->max_seq)
                r->cycles += 1u << 16;
            r->max_seq = sequence;
        }
    }
    double transit = now * (double)r->clock_rate - (double)timestamp;
    if (r->has_transit) {
        double d = transit - r->transit;
        if (d < 0)
            d = -d;
        r->jitter += (d - r->jitter) / 16;
    }
    r->transit = transit;
    r->has_transit = 1;
}

/* 1: forwarded here; 0: hand back to Python as it arrived. */
static int forward_one(Forwarder *self, Socket *sock, const uint8_t *data, int len,
                       const struct sockaddr_storage *from, socklen_t fromlen, double now) {
    if (len < FIXED_HEADER || data[0] < 128 || data[0] > 191)
        return 0; /* RFC 7983: STUN, DTLS, TURN channels, ZRTP... */
    if (data[1] >= 192 && data[1] <= 223)
        return 0; /* RTCP (RFC 5761) */
    if (sock->source_len == 0 || !same_address(&sock->source, sock->source_len, from))
        return 0; /* not the ICE-validated (or the plain leg's learnt) source */
    (void)fromlen;
    Route *route = find_route(self, sock->fd, be32(data + 8));
    if (route == NULL || route->nsinks == 0 || (data[1] & 0x7F) != route->payload_type)
        return 0;
    Header h;
    if (parse_header(data, len, &h) != 0)
        return 0;
    for (int i = 0; i < route->nsinks; i++)
        if (len - h.header_end > route->sinks[i].max_payload)
            return 0; /* split for that sink's MTU: Python */
    int clear_len = len;
    uint8_t *clear = (uint8_t *)data;
    if (sock->srtp != NULL) {
        memcpy(self->work, data, (size_t)len);
        if (srtp_unprotect_fn(sock->srtp, self->work, &clear_len) != 0) {
            self->srtp_failures++;
            return 0; /* Python counts the failure (and logs it) as before */
        }
        clear = self->work;
        if (clear_len < h.header_end)
            return 1; /* a tag longer than the payload: nothing Python would use either */
    }
    int payload = clear_len - h.header_end;
    route->wire_octets += (uint64_t)len;
    account_inbound(route, be16(clear + 2), be32(clear + 4), payload, now);
    for (int i = 0; i < route->nsinks; i++)
        send_to_sink(self, clear, clear_len, &h, &route->sinks[i], now);
    self->forwarded++;
    return 1;
}

static PyObject *address_tuple(const struct sockaddr_storage *addr) {
    char host[INET6_ADDRSTRLEN];
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return Py_BuildValue("(siII)", host, ntohs(a->sin6_port), ntohl(a->sin6_flowinfo),
                             a->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

static int read_socket(Forwarder *self, Socket *sock, PyObject *back, int limit) {
    int total = 0;
    while (total < limit) {
        int want = limit - total < BATCH ? limit - total : BATCH;
        for (int i = 0; i < want; i++) {
            self->in_iov[i].iov_base = self->in[i];
            self->in_iov[i].iov_len = RECEIVE_SIZE;
            struct msghdr *m = &self->in_msgs[i].msg_hdr;
            memset(m, 0, sizeof *m);
            m->msg_iov = &self->in_iov[i];
            m->msg_iovlen = 1;
            m->msg_name = &self->in_addr[i];
            m->msg_namelen = sizeof self->in_addr[i];
        }
        int n = recvmmsg(sock->fd, self->in_msgs, (unsigned)want, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            /* an ICMP error and the like: handed back as (fd, None, errno) to be reported */
            PyObject *item = Py_BuildValue("(iOi)", sock->fd, Py_None, errno);
            if (item == NULL || PyList_Append(back, item) < 0) {
                Py_XDECREF(item);
                return -1;
            }
            Py_DECREF(item);
            break;
        }
        double now = monotonic();
        self->read += (unsigned long long)n;
        for (int i = 0; i < n; i++) {
            int len = (int)self->in_msgs[i].msg_len;
            socklen_t fromlen = self->in_msgs[i].msg_hdr.msg_namelen;
            if (forward_one(self, sock, self->in[i], len, &self->in_addr[i], fromlen, now))
                continue;
            self->handed_back++;
            PyObject *addr = address_tuple(&self->in_addr[i]);
            if (addr == NULL)
                return -1;
            PyObject *item = Py_BuildValue("(iy#N)", sock->fd, (const char *)self->in[i],
                                           (Py_ssize_t)len, addr);
            if (item == NULL || PyList_Append(back, item) < 0) {
                Py_XDECREF(item);
                return -1;
            }
            Py_DECREF(item);
        }
        total += n;
        if (n < want)
            break;
    }
    return total;
}

/* -- the Python type ----------------------------------------------------------------------------- */

static int parse_address(PyObject *tuple, struct sockaddr_storage *out, socklen_t *len) {
    const char *host;
    int port;
    memset(out, 0, sizeof *out);
    if (!PyArg_ParseTuple(tuple, "si", &host, &port))
        return -1;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    struct sockaddr_in *v4 = (void *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
        return 0;
    }
    struct sockaddr_in6 *v6 = (void *)out;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
    return -1;
}

static int check_fd(int fd) {
    if (fd < 0 || fd >= MAX_SOCKETS) {
        PyErr_SetString(PyExc_ValueError, "descriptor out of range");
        return -1;
    }
    return 0;
}

static void drop_routes_of(Forwarder *self, int fd);
static void drop_sinks_on(Forwarder *self, int fd);

static PyObject *Forwarder_add_socket(Forwarder *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd) || check_fd(fd) < 0)
        return NULL;
    /* a descriptor number can be reused: nothing of its former socket survives */
    drop_routes_of(self, fd);
    drop_sinks_on(self, fd);
    Socket *sock = self->sockets[fd];
    if (sock == NULL) {
        sock = PyMem_Calloc(1, sizeof *sock);
        if (sock == NULL)
            return PyErr_NoMemory();
        self->sockets[fd] = sock;
    }
    memset(sock, 0, sizeof *sock);
    sock->fd = fd;
    Py_RETURN_NONE;
}

static PyObject *Forwarder_set_source(Forwarder *self, PyObject *args) {
    int fd;
    unsigned long long srtp;
    PyObject *source;
    if (!PyArg_ParseTuple(args, "iKO", &fd, &srtp, &source) || check_fd(fd) < 0)
        return NULL;
    Socket *sock = self->sockets[fd];
    if (sock == NULL) {
        PyErr_SetString(PyExc_KeyError, "add_socket first");
        return NULL;
    }
    if (srtp != 0 && srtp_unprotect_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_srtp_functions first");
        return NULL;
    }
    struct sockaddr_storage address;
    socklen_t length = 0;
    if (source != Py_None && parse_address(source, &address, &length) < 0)
        return NULL;
    sock->srtp = (void *)(uintptr_t)srtp;
    sock->source = address;
    sock->source_len = length;
    Py_RETURN_NONE;
}

static void drop_routes_of(Forwarder *self, int fd) {
    for (int b = 0; b < ROUTE_BUCKETS; b++) {
        Route **link = &self->buckets[b];
        while (*link != NULL) {
            Route *r = *link;
            if (r->fd == fd) {
                *link = r->next;
                free_route(r);
            } else {
                link = &r->next;
            }
        }
    }
}

static void drop_sinks_on(Forwarder *self, int fd) {
    for (int b = 0; b < ROUTE_BUCKETS; b++)
        for (Route *r = self->buckets[b]; r != NULL; r = r->next)
            for (int i = 0; i < r->nsinks; i++)
                if (r->sinks[i].fd == fd) {
                    empty_route(r); /* the whole route goes back to Python */
                    break;
                }
}

static PyObject *Forwarder_remove_socket(Forwarder *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd) || check_fd(fd) < 0)
        return NULL;
    drop_routes_of(self, fd);
    drop_sinks_on(self, fd);
    PyMem_Free(self->sockets[fd]);
    self->sockets[fd] = NULL;
    Py_RETURN_NONE;
}

static int parse_sink(PyObject *spec, Sink *sink) {
    PyObject *dest, *ext_map;
    unsigned long long srtp;
    unsigned int ssrc, ts_offset, sequence, last_timestamp;
    int fd, payload_type, seq_offset, history, max_payload;
    unsigned long long packets, octets;
    double last_sent_at;
    memset(sink, 0, sizeof *sink);
    if (!PyArg_ParseTuple(spec, "iOKIiiIOiiIIdKK", &fd, &dest, &srtp, &ssrc, &payload_type,
                          &seq_offset, &ts_offset, &ext_map, &max_payload, &history, &sequence,
                          &last_timestamp, &last_sent_at, &packets, &octets))
        return -1;
    if (check_fd(fd) < 0 || parse_address(dest, &sink->dest, &sink->dest_len) < 0)
        return -1;
    if (srtp != 0 && srtp_protect_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_srtp_functions first");
        return -1;
    }
    if (payload_type < 0 || payload_type > 127 || seq_offset < 0 || seq_offset > 0xFFFF ||
        sequence > 0xFFFF || max_payload < 0) {
        PyErr_SetString(PyExc_ValueError, "payload type, sequence or MTU out of range");
        return -1;
    }
    sink->fd = fd;
    sink->srtp = (void *)(uintptr_t)srtp;
    sink->ssrc = ssrc;
    sink->payload_type = (uint8_t)payload_type;
    sink->seq_offset = (uint16_t)seq_offset;
    sink->ts_offset = ts_offset;
    sink->max_payload = max_payload;
    sink->sequence = (uint16_t)sequence;
    sink->last_timestamp = last_timestamp;
    sink->last_sent_at = last_sent_at;
    sink->packets = packets;
    sink->octets = octets;
    if (!PyDict_Check(ext_map)) {
        PyErr_SetString(PyExc_TypeError, "extension map: a dict of source id -> sink id");
        return -1;
    }
    sink->ext_identity = 1;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(ext_map, &pos, &key, &value)) {
        long from = PyLong_AsLong(key), to = PyLong_AsLong(value);
        if (PyErr_Occurred())
            return -1;
        if (from < 1 || from > 14 || to < 1 || to > 14) {
            PyErr_SetString(PyExc_ValueError, "extension ids 1..14 only (one-byte form)");
            return -1;
        }
        sink->ext_map[from] = (uint8_t)to;
        if (from != to)
            sink->ext_identity = 0;
    }
    if (history) {
        sink->history = PyMem_Calloc(HISTORY, sizeof(HistorySlot));
        if (sink->history == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static PyObject *Forwarder_set_route(Forwarder *self, PyObject *args) {
    int fd, payload_type;
    unsigned int ssrc, clock_rate;
    PyObject *inbound, *sinks;
    if (!PyArg_ParseTuple(args, "iIiIOO!", &fd, &ssrc, &payload_type, &clock_rate, &inbound,
                          &PyList_Type, &sinks) ||
        check_fd(fd) < 0)
        return NULL;
    if (self->sockets[fd] == NULL) {
        PyErr_SetString(PyExc_KeyError, "add_socket first");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(sinks);
    if (count > MAX_SINKS || payload_type < 0 || payload_type > 127 || clock_rate == 0) {
        PyErr_SetString(PyExc_ValueError, "too many sinks, or payload type/clock rate out of range");
        return NULL;
    }
    Route *route = PyMem_Calloc(1, sizeof *route);
    if (route == NULL)
        return PyErr_NoMemory();
    route->fd = fd;
    route->ssrc = ssrc;
    route->payload_type = (uint8_t)payload_type;
    route->clock_rate = clock_rate;
    unsigned long long packets, octets, cycles;
    long long base_seq;
    int max_seq, has_transit;
    if (!PyArg_ParseTuple(inbound, "KKLiKddpd", &packets, &octets, &base_seq, &max_seq, &cycles,
                          &route->jitter, &route->transit, &has_transit, &route->last_arrival)) {
        PyMem_Free(route);
        return NULL;
    }
    route->packets = packets;
    route->octets = octets;
    route->base_seq = base_seq;
    route->max_seq = (uint16_t)max_seq;
    route->cycles = cycles;
    route->has_transit = has_transit;
    for (Py_ssize_t i = 0; i < count; i++) {
        route->nsinks = (int)i; /* what free_route must free if this one fails */
        if (parse_sink(PyList_GET_ITEM(sinks, i), &route->sinks[i]) < 0) {
            free_route(route);
            return NULL;
        }
    }
    route->nsinks = (int)count;
    unlink_route(self, fd, ssrc);
    unsigned b = bucket_of(fd, ssrc);
    route->next = self->buckets[b];
    self->buckets[b] = route;
    Py_RETURN_NONE;
}

/* The clear packets a sink's history holds, oldest first (the HISTORY numbers up to the last
 * one sent): what a NACK may still ask for once the route is gone. */
static PyObject *history_list(const Sink *s) {
    PyObject *list = PyList_New(0);
    if (list == NULL || s->history == NULL || s->packets == 0)
        return list;
    for (int back = HISTORY - 1; back >= 0; back--) {
        uint16_t sequence = (uint16_t)(s->sequence - back);
        const HistorySlot *slot = &s->history[sequence % HISTORY];
        if (slot->data == NULL || slot->sequence != sequence)
            continue;
        PyObject *packet = PyBytes_FromStringAndSize((const char *)slot->data, slot->length);
        if (packet == NULL || PyList_Append(list, packet) < 0) {
            Py_XDECREF(packet);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(packet);
    }
    return list;
}

static PyObject *sink_state(const Sink *s, int with_history) {
    PyObject *item = Py_BuildValue(
        "{s:I,s:I,s:d,s:K,s:K,s:K,s:K,s:d,s:K}", "sequence", s->sequence, "last_timestamp",
        s->last_timestamp, "last_sent_at", s->last_sent_at, "packets", s->packets, "octets",
        s->octets, "send_errors", s->send_errors, "wire_octets", s->wire_octets, "latency_sum",
        s->latency_sum, "latency_count", s->latency_count);
    if (item == NULL || !with_history)
        return item;
    PyObject *history = history_list(s);
    if (history == NULL || PyDict_SetItemString(item, "history", history) < 0) {
        Py_XDECREF(history);
        Py_DECREF(item);
        return NULL;
    }
    Py_DECREF(history);
    return item;
}

static PyObject *route_state(Route *r, int with_history) {
    PyObject *sinks = PyList_New(r->nsinks);
    if (sinks == NULL)
        return NULL;
    for (int i = 0; i < r->nsinks; i++) {
        PyObject *item = sink_state(&r->sinks[i], with_history);
        if (item == NULL) {
            Py_DECREF(sinks);
            return NULL;
        }
        PyList_SET_ITEM(sinks, i, item);
    }
    return Py_BuildValue("{s:K,s:K,s:L,s:i,s:K,s:d,s:d,s:O,s:d,s:K,s:N}", "packets", r->packets,
                         "octets", r->octets, "base_seq", (long long)r->base_seq, "max_seq",
                         (int)r->max_seq, "cycles", r->cycles, "jitter", r->jitter, "transit",
                         r->transit, "has_transit", r->has_transit ? Py_True : Py_False,
                         "last_arrival", r->last_arrival, "wire_octets", r->wire_octets, "sinks",
                         sinks);
}

static PyObject *Forwarder_route_state(Forwarder *self, PyObject *args) {
    int fd;
    unsigned int ssrc;
    if (!PyArg_ParseTuple(args, "iI", &fd, &ssrc))
        return NULL;
    Route *route = find_route(self, fd, ssrc);
    if (route == NULL)
        Py_RETURN_NONE;
    return route_state(route, 0);
}

static PyObject *Forwarder_remove_route(Forwarder *self, PyObject *args) {
    int fd;
    unsigned int ssrc;
    if (!PyArg_ParseTuple(args, "iI", &fd, &ssrc))
        return NULL;
    Route *route = find_route(self, fd, ssrc);
    if (route == NULL)
        Py_RETURN_NONE;
    PyObject *state = route_state(route, 1);
    unlink_route(self, fd, ssrc);
    return state;
}

static PyObject *Forwarder_history(Forwarder *self, PyObject *args) {
    int fd, sink;
    unsigned int ssrc, sequence;
    if (!PyArg_ParseTuple(args, "iIiI", &fd, &ssrc, &sink, &sequence))
        return NULL;
    Route *route = find_route(self, fd, ssrc);
    if (route == NULL || sink < 0 || sink >= route->nsinks || route->sinks[sink].history == NULL)
        Py_RETURN_NONE;
    HistorySlot *slot = &route->sinks[sink].history[(sequence & 0xFFFF) % HISTORY];
    if (slot->data == NULL || slot->sequence != (uint16_t)sequence)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)slot->data, slot->length);
}

static PyObject *Forwarder_forward(Forwarder *self, PyObject *args) {
    PyObject *fds;
    int limit = 128;
    if (!PyArg_ParseTuple(args, "O|i", &fds, &limit))
        return NULL;
    PyObject *seq = PySequence_Fast(fds, "forward() takes a sequence of descriptors");
    if (seq == NULL)
        return NULL;
    PyObject *back = PyList_New(0);
    if (back == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        long fd = PyLong_AsLong(PyTuple_Check(item) ? PyTuple_GET_ITEM(item, 0) : item);
        if (fd == -1 && PyErr_Occurred())
            goto failed;
        if (fd < 0 || fd >= MAX_SOCKETS || self->sockets[fd] == NULL)
            continue; /* removed meanwhile */
        if (read_socket(self, self->sockets[fd], back, limit) < 0)
            goto failed;
    }
    flush(self);
    Py_DECREF(seq);
    return back;
failed:
    flush(self);
    Py_DECREF(seq);
    Py_DECREF(back);
    return NULL;
}

static PyObject *Forwarder_counters(Forwarder *self, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("{s:K,s:K,s:K,s:K}", "forwarded", self->forwarded, "handed_back",
                         self->handed_back, "sent", self->sent, "srtp_failures",
                         self->srtp_failures);
}

static void Forwarder_dealloc(Forwarder *self) {
    for (int b = 0; b < ROUTE_BUCKETS; b++) {
        Route *r = self->buckets[b];
        while (r != NULL) {
            Route *next = r->next;
            free_route(r);
            r = next;
        }
    }
    for (int fd = 0; fd < MAX_SOCKETS; fd++)
        PyMem_Free(self->sockets[fd]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Forwarder_methods[] = {
    {"add_socket", (PyCFunction)Forwarder_add_socket, METH_VARARGS,
     "add_socket(fd): read fd from now on, everything handed back (a reused number forgets all)"},
    {"set_source", (PyCFunction)Forwarder_set_source, METH_VARARGS,
     "set_source(fd, srtp, source): unprotect with srtp (0: plain RTP); source (host, port) is "
     "the only address forwarded from (None: none, everything is handed back)"},
    {"remove_socket", (PyCFunction)Forwarder_remove_socket, METH_VARARGS,
     "remove_socket(fd): forget fd, its routes, and every route that sends on it"},
    {"set_route", (PyCFunction)Forwarder_set_route, METH_VARARGS,
     "set_route(fd, ssrc, payload_type, clock_rate, inbound, sinks): forward that stream"},
    {"remove_route", (PyCFunction)Forwarder_remove_route, METH_VARARGS,
     "remove_route(fd, ssrc) -> the route's last state, each sink's history included (None "
     "without one)"},
    {"route_state", (PyCFunction)Forwarder_route_state, METH_VARARGS,
     "route_state(fd, ssrc) -> counters of the stream and of each sink (None without route)"},
    {"history", (PyCFunction)Forwarder_history, METH_VARARGS,
     "history(fd, ssrc, sink, sequence) -> the clear packet sent with that number, or None"},
    {"forward", (PyCFunction)Forwarder_forward, METH_VARARGS,
     "forward(fds, limit=128) -> [(fd, datagram, address)] handed back to Python"},
    {"counters", (PyCFunction)Forwarder_counters, METH_NOARGS, "counters() -> totals"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Forwarder_members[] = {
    {"read", T_ULONGLONG, offsetof(Forwarder, read), READONLY, "datagrams read so far"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ForwarderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "emulator.media.fastpath._forward.Forwarder",
    .tp_basicsize = sizeof(Forwarder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The compiled forwarding loop of one event loop's media sockets",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Forwarder_dealloc,
    .tp_methods = Forwarder_methods,
    .tp_members = Forwarder_members,
};

static PyObject *set_srtp_functions(PyObject *module, PyObject *args) {
    unsigned long long protect, unprotect;
    if (!PyArg_ParseTuple(args, "KK", &protect, &unprotect))
        return NULL;
    if (protect == 0 || unprotect == 0) {
        PyErr_SetString(PyExc_ValueError, "null function address");
        return NULL;
    }
    srtp_protect_fn = (srtp_fn)(uintptr_t)protect;
    srtp_unprotect_fn = (srtp_fn)(uintptr_t)unprotect;
    (void)module;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"set_srtp_functions", set_srtp_functions, METH_VARARGS,
     "set_srtp_functions(protect, unprotect): libsrtp's srtp_protect/srtp_unprotect addresses"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_forward", "The compiled forwarding loop (issue 17)", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__forward(void) {
    if (PyType_Ready(&ForwarderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ForwarderType);
    if (PyModule_AddObject(m, "Forwarder", (PyObject *)&ForwarderType) < 0) {
        Py_DECREF(&ForwarderType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "RECEIVE_SIZE", RECEIVE_SIZE);
    PyModule_AddIntConstant(m, "MAX_SINKS", MAX_SINKS);
    return m;
}
