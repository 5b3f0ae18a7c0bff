/* The throughput benchmark's load generator, compiled (issue 17): the per-packet work of
 * benchmarks/load_peers.py's Sender and LoadPeer in C, so that one generator core offers more than
 * one server core forwards.
 *
 * Python keeps signalling, ICE and DTLS-SRTP; once a peer is connected it hands the generator the
 * peer's socket, its pylibsrtp sessions (the srtp_t pointers, shared with Python as the emulator's
 * fastpath does) and its streams. One call per tick (Generator.tick):
 *
 * - every stream whose frame is due gets each packet of the frame built (RTP header, the optional
 *   audio-level or abs-send-time extension, the pre-encoded payload, the 17-byte padding trailer
 *   "!dII" + 17: send time on CLOCK_MONOTONIC = Python's perf_counter, stream id, packet index),
 *   protected with srtp_protect and sent with sendmmsg; a frame sent more than one interval after
 *   its due time counts as late (the generator fell behind), exactly as the Python Sender;
 * - every socket epoll says is readable is drained with recvmmsg: SRTP is unprotected, and a
 *   packet whose trailer send time lies in the measurement window counts as received with its
 *   one-way latency (now - send time), as LoadPeer._datagram; per socket the trailer indices give
 *   the loss (sequence gaps). RTCP is counted only; STUN and DTLS are handed back to Python.
 *
 * Every read of a received datagram is bounds-checked; buffers are fixed-size.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECEIVE_SIZE 4096
#define BUFFER_SIZE (RECEIVE_SIZE + 256) /* room for the SRTP auth tag and MKI */
#define BATCH 64
#define MAX_FRAME_PACKETS 64
#define MAX_SOCKETS 65536
#define TRAILER_SIZE 17
#define MAX_PAYLOAD 1300
/* RTP header, one-element extension, payload and trailer fit a send buffer with room left for
 * srtp_protect's auth tag. */
_Static_assert(12 + 8 + MAX_PAYLOAD + TRAILER_SIZE + 64 <= BUFFER_SIZE, "send buffer too small");

typedef int (*srtp_fn)(void *ctx, void *header, int *len);
static srtp_fn srtp_protect_fn = NULL;
static srtp_fn srtp_unprotect_fn = NULL;

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    int count;
    uint8_t **data;
    uint16_t *length;
} Frame;

typedef struct {
    int nframes;
    Frame *frames;
} Clip;

typedef struct {
    int fd;
    struct sockaddr_storage dest;
    socklen_t dest_len;
    void *srtp;
    Clip *clip;
    int audio;
    uint32_t ssrc;
    uint8_t payload_type;
    uint8_t extension_id;
    uint16_t sequence;
    uint32_t timestamp;
    uint32_t clock_step;
    double interval;
    double due;
    uint32_t stream_id;
    uint32_t index;
    uint64_t frame;
    int receivers;
} Stream;

/* One sender's packets on a socket (BUNDLE: audio and video are two senders on one socket). */
typedef struct {
    uint64_t received;  /* trailer packets, any time */
    uint32_t stream_id;
    uint32_t first_index;
    uint32_t max_index;
} Track;

#define MAX_TRACKS 8

typedef struct {
    int active;
    void *srtp;
    int ntracks;
    Track tracks[MAX_TRACKS];
} Socket;

typedef struct {
    PyObject_HEAD
    int epfd;
    /* Each clip allocated on its own: streams point at them, and the array of pointers may move
     * when it grows (a Clip array did, and the first stream read a freed clip: issue 17 video). */
    Clip **clips;
    int nclips;
    Stream *streams;
    Py_ssize_t nstreams, cap_streams;
    Socket *sockets; /* by descriptor */
    /* window and counters (as load_peers.Counters) */
    double start, end;
    uint64_t sent, received, arrivals, late, srtp_errors, send_errors;
    double *latencies;
    Py_ssize_t nlat, cap_lat;
    /* totals since creation */
    uint64_t total_sent, total_received, rtcp;
    uint8_t out[MAX_FRAME_PACKETS][BUFFER_SIZE];
    struct mmsghdr out_msgs[MAX_FRAME_PACKETS];
    struct iovec out_iov[MAX_FRAME_PACKETS];
    uint8_t in[BATCH][BUFFER_SIZE];
    struct mmsghdr in_msgs[BATCH];
    struct iovec in_iov[BATCH];
    struct sockaddr_storage in_addr[BATCH];
} Generator;

static void free_clip(Clip *clip) {
    if (clip == NULL)
        return;
    for (int f = 0; f < clip->nframes; f++) {
        for (int p = 0; p < clip->frames[f].count; p++)
            PyMem_Free(clip->frames[f].data[p]);
        PyMem_Free(clip->frames[f].data);
        PyMem_Free(clip->frames[f].length);
    }
    PyMem_Free(clip->frames);
    PyMem_Free(clip);
}

static void free_clips(Generator *self) {
    for (int c = 0; c < self->nclips; c++)
        free_clip(self->clips[c]);
    PyMem_Free(self->clips);
    self->clips = NULL;
    self->nclips = 0;
}

static void Generator_dealloc(Generator *self) {
    if (self->epfd >= 0)
        close(self->epfd);
    free_clips(self);
    PyMem_Free(self->streams);
    PyMem_Free(self->sockets);
    PyMem_Free(self->latencies);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Generator_init(Generator *self, PyObject *args, PyObject *kwds) {
    if (!PyArg_ParseTuple(args, ""))
        return -1;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->sockets = PyMem_Calloc(MAX_SOCKETS, sizeof(Socket));
    if (self->sockets == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Fill clip from frames (list[list[bytes]]); -1 with an exception set. */
static int fill_clip(Clip *clip, PyObject *frames) {
    Py_ssize_t nframes = PyList_GET_SIZE(frames);
    clip->frames = PyMem_Calloc(nframes, sizeof(Frame));
    if (clip->frames == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t f = 0; f < nframes; f++) {
        PyObject *packets = PyList_GET_ITEM(frames, f);
        if (!PyList_Check(packets) || PyList_GET_SIZE(packets) < 1 ||
            PyList_GET_SIZE(packets) > MAX_FRAME_PACKETS) {
            PyErr_SetString(PyExc_ValueError, "each frame: a list of 1 to 64 payloads");
            return -1;
        }
        Frame *frame = &clip->frames[f];
        Py_ssize_t count = PyList_GET_SIZE(packets);
        frame->data = PyMem_Calloc(count, sizeof(uint8_t *));
        frame->length = PyMem_Calloc(count, sizeof(uint16_t));
        clip->nframes++;
        if (frame->data == NULL || frame->length == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t p = 0; p < count; p++) {
            PyObject *payload = PyList_GET_ITEM(packets, p);
            char *bytes;
            Py_ssize_t length;
            if (PyBytes_AsStringAndSize(payload, &bytes, &length) < 0)
                return -1;
            if (length > MAX_PAYLOAD) {
                PyErr_SetString(PyExc_ValueError, "payloads of at most 1300 bytes");
                return -1;
            }
            frame->data[p] = PyMem_Malloc(length ? length : 1);
            if (frame->data[p] == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            memcpy(frame->data[p], bytes, length);
            frame->length[p] = (uint16_t)length;
            frame->count++;
        }
    }
    return 0;
}

/* add_clip(frames: list[list[bytes]]) -> clip id */
static PyObject *Generator_add_clip(Generator *self, PyObject *args) {
    PyObject *frames;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &frames))
        return NULL;
    if (PyList_GET_SIZE(frames) < 1) {
        PyErr_SetString(PyExc_ValueError, "a clip needs frames");
        return NULL;
    }
    Clip *clip = PyMem_Calloc(1, sizeof(Clip));
    if (clip == NULL)
        return PyErr_NoMemory();
    if (fill_clip(clip, frames) < 0) {
        free_clip(clip);
        return NULL;
    }
    Clip **clips = PyMem_Realloc(self->clips, sizeof(Clip *) * (self->nclips + 1));
    if (clips == NULL) {
        free_clip(clip);
        return PyErr_NoMemory();
    }
    self->clips = clips;
    clips[self->nclips] = clip;
    return PyLong_FromLong(self->nclips++);
}

static int parse_dest(PyObject *address, struct sockaddr_storage *out, socklen_t *len) {
    const char *host;
    int port;
    if (!PyArg_ParseTuple(address, "si", &host, &port))
        return -1;
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) != 1) {
        PyErr_Format(PyExc_ValueError, "not an IPv4 address: %s", host);
        return -1;
    }
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof(struct sockaddr_in);
    return 0;
}

/* add_socket(fd, rx_srtp): read fd from now on (epoll), unprotecting with rx_srtp. */
static PyObject *Generator_add_socket(Generator *self, PyObject *args) {
    int fd;
    unsigned long long srtp;
    if (!PyArg_ParseTuple(args, "iK", &fd, &srtp))
        return NULL;
    if (fd < 0 || fd >= MAX_SOCKETS) {
        PyErr_SetString(PyExc_ValueError, "descriptor out of range");
        return NULL;
    }
    if (srtp_unprotect_fn == NULL || srtp == 0) {
        PyErr_SetString(PyExc_RuntimeError, "set_srtp_functions first, and an SRTP session");
        return NULL;
    }
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &event) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Socket *sock = &self->sockets[fd];
    memset(sock, 0, sizeof(*sock));
    sock->active = 1;
    sock->srtp = (void *)(uintptr_t)srtp;
    Py_RETURN_NONE;
}

/* add_stream(fd, dest, tx_srtp, clip, audio, ssrc, pt, ext_id, seq, ts, clock_step, interval,
 *            due, stream_id, receivers) */
static PyObject *Generator_add_stream(Generator *self, PyObject *args) {
    Stream s;
    memset(&s, 0, sizeof(s));
    PyObject *dest;
    unsigned long long srtp;
    int clip, pt, ext, seq;
    unsigned long ssrc, ts, step, stream_id;
    if (!PyArg_ParseTuple(args, "iOKipkiiikkddki", &s.fd, &dest, &srtp, &clip, &s.audio, &ssrc,
                          &pt, &ext, &seq, &ts, &step, &s.interval, &s.due, &stream_id,
                          &s.receivers))
        return NULL;
    if (srtp_protect_fn == NULL || srtp == 0 || clip < 0 || clip >= self->nclips || ext < 0 ||
        ext > 14 || pt < 0 || pt > 127 || s.interval <= 0) {
        PyErr_SetString(PyExc_ValueError, "bad stream (SRTP session, clip, payload type, id)");
        return NULL;
    }
    if (parse_dest(dest, &s.dest, &s.dest_len) < 0)
        return NULL;
    s.srtp = (void *)(uintptr_t)srtp;
    s.clip = self->clips[clip];
    s.ssrc = (uint32_t)ssrc;
    s.payload_type = (uint8_t)pt;
    s.extension_id = (uint8_t)ext;
    s.sequence = (uint16_t)seq;
    s.timestamp = (uint32_t)ts;
    s.clock_step = (uint32_t)step;
    s.stream_id = (uint32_t)stream_id;
    if (self->nstreams == self->cap_streams) {
        Py_ssize_t cap = self->cap_streams ? self->cap_streams * 2 : 64;
        Stream *grown = PyMem_Realloc(self->streams, sizeof(Stream) * cap);
        if (grown == NULL)
            return PyErr_NoMemory();
        self->streams = grown;
        self->cap_streams = cap;
    }
    self->streams[self->nstreams++] = s;
    Py_RETURN_NONE;
}

/* clear(): stop every stream and forget every socket. */
/* stop_streams(): send nothing more; the sockets are still read. */
static PyObject *Generator_stop_streams(Generator *self, PyObject *unused) {
    self->nstreams = 0;
    Py_RETURN_NONE;
}

static PyObject *Generator_clear(Generator *self, PyObject *unused) {
    self->nstreams = 0;
    for (int fd = 0; fd < MAX_SOCKETS; fd++) {
        if (self->sockets[fd].active) {
            epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL);
            self->sockets[fd].active = 0;
        }
    }
    Py_RETURN_NONE;
}

/* -- sending ----------------------------------------------------------------------------------- */

static void send_frame(Generator *self, Stream *s, double now) {
    Frame *frame = &s->clip->frames[s->frame % (uint64_t)s->clip->nframes];
    s->frame++;
    s->timestamp += s->clock_step;
    int in_window = self->start <= now && now <= self->end;
    int n = 0;
    uint64_t now_bits;
    memcpy(&now_bits, &now, sizeof(now_bits));
    now_bits = htobe64(now_bits);
    for (int p = 0; p < frame->count; p++) {
        uint8_t *b = self->out[n];
        int len = 0;
        s->sequence++;
        b[0] = s->extension_id ? (0x80 | 0x20 | 0x10) : (0x80 | 0x20);
        b[1] = (uint8_t)((p == frame->count - 1 ? 0x80 : 0) | s->payload_type);
        b[2] = s->sequence >> 8;
        b[3] = s->sequence & 0xFF;
        uint32_t v = htonl(s->timestamp);
        memcpy(b + 4, &v, 4);
        v = htonl(s->ssrc);
        memcpy(b + 8, &v, 4);
        len = 12;
        if (s->extension_id) {
            static const uint8_t profile[4] = {0xBE, 0xDE, 0x00, 0x01};
            memcpy(b + len, profile, 4);
            if (s->audio) {
                b[len + 4] = (uint8_t)(s->extension_id << 4);
                b[len + 5] = 0x20;
                b[len + 6] = b[len + 7] = 0;
            } else {
                uint32_t abs_time = (uint32_t)((int64_t)(now * (1 << 18)) & 0xFFFFFF);
                b[len + 4] = (uint8_t)((s->extension_id << 4) | 2);
                b[len + 5] = (abs_time >> 16) & 0xFF;
                b[len + 6] = (abs_time >> 8) & 0xFF;
                b[len + 7] = abs_time & 0xFF;
            }
            len += 8;
        }
        memcpy(b + len, frame->data[p], frame->length[p]);
        len += frame->length[p];
        memcpy(b + len, &now_bits, 8);
        v = htonl(s->stream_id);
        memcpy(b + len + 8, &v, 4);
        v = htonl(s->index);
        memcpy(b + len + 12, &v, 4);
        b[len + 16] = TRAILER_SIZE;
        len += TRAILER_SIZE;
        s->index++;
        if (srtp_protect_fn(s->srtp, b, &len) != 0) {
            self->send_errors++;
            continue;
        }
        self->out_iov[n].iov_base = b;
        self->out_iov[n].iov_len = (size_t)len;
        struct msghdr *h = &self->out_msgs[n].msg_hdr;
        memset(h, 0, sizeof(*h));
        h->msg_name = &s->dest;
        h->msg_namelen = s->dest_len;
        h->msg_iov = &self->out_iov[n];
        h->msg_iovlen = 1;
        n++;
    }
    int done = 0;
    while (done < n) {
        int r = sendmmsg(s->fd, self->out_msgs + done, (unsigned)(n - done), 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            self->send_errors += (uint64_t)(n - done);
            break;
        }
        done += r;
    }
    self->total_sent += (uint64_t)done;
    if (in_window)
        self->sent += (uint64_t)n * (uint64_t)s->receivers;
}

/* Send every due frame; the earliest next due time. */
static double send_due(Generator *self, double now) {
    double next = now + 1.0;
    for (Py_ssize_t i = 0; i < self->nstreams; i++) {
        Stream *s = &self->streams[i];
        while (s->due <= now + 0.0005) {
            if (now - s->due > s->interval)
                self->late++;
            send_frame(self, s, now);
            s->due += s->interval;
            /* as the Python Sender: one frame per visit, the schedule keeps its phase */
            break;
        }
        if (s->due < next)
            next = s->due;
    }
    return next;
}

/* -- receiving --------------------------------------------------------------------------------- */

static int note_latency(Generator *self, double value) {
    if (self->nlat == self->cap_lat) {
        Py_ssize_t cap = self->cap_lat ? self->cap_lat * 2 : 4096;
        double *grown = PyMem_Realloc(self->latencies, sizeof(double) * cap);
        if (grown == NULL)
            return -1;
        self->latencies = grown;
        self->cap_lat = cap;
    }
    self->latencies[self->nlat++] = value;
    return 0;
}

static Track *track_of(Socket *sock, uint32_t stream_id, uint32_t index) {
    for (int t = 0; t < sock->ntracks; t++)
        if (sock->tracks[t].stream_id == stream_id)
            return &sock->tracks[t];
    if (sock->ntracks == MAX_TRACKS)
        sock->ntracks = 0; /* more senders than these benchmarks make: start afresh */
    Track *track = &sock->tracks[sock->ntracks++];
    track->received = 0;
    track->stream_id = stream_id;
    track->first_index = track->max_index = index;
    return track;
}

static void count_trailer(Socket *sock, const uint8_t *plain, int len) {
    uint32_t stream_id, index;
    memcpy(&stream_id, plain + len - TRAILER_SIZE + 8, 4);
    memcpy(&index, plain + len - TRAILER_SIZE + 12, 4);
    stream_id = ntohl(stream_id);
    index = ntohl(index);
    Track *track = track_of(sock, stream_id, index);
    track->received++;
    if ((int32_t)(index - track->max_index) > 0)
        track->max_index = index;
}

/* One datagram: 0 counted here, 1 to hand back to Python, -1 out of memory. */
static int received_one(Generator *self, Socket *sock, uint8_t *data, int len, double now) {
    if (len < 12 || data[0] < 128 || data[0] > 191)
        return 1;
    if (data[1] >= 192 && data[1] <= 223) {
        /* RTCP (the server's reports): counted, not handed to aiortc, which has no receiver or
         * sender to give it to. In Python, a burst of them (one per stream each second) held the
         * send schedule back by tens of milliseconds at a few hundred calls. */
        self->rtcp++;
        return 0;
    }
    if (srtp_unprotect_fn(sock->srtp, data, &len) != 0) {
        self->srtp_errors++;
        return 0;
    }
    self->total_received++;
    if (self->start <= now && now <= self->end)
        self->arrivals++;
    if ((data[0] & 0x20) && len >= 12 + TRAILER_SIZE && data[len - 1] == TRAILER_SIZE) {
        uint64_t bits;
        double sent;
        memcpy(&bits, data + len - TRAILER_SIZE, 8);
        bits = be64toh(bits);
        memcpy(&sent, &bits, 8);
        count_trailer(sock, data, len);
        if (self->start <= sent && sent <= self->end) {
            self->received++;
            if (note_latency(self, now - sent) < 0)
                return -1;
        }
    }
    return 0;
}

static PyObject *address_of(struct sockaddr_storage *address) {
    char host[INET6_ADDRSTRLEN] = "";
    if (address->ss_family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)address;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        return Py_BuildValue("(si)", host, ntohs(v4->sin_port));
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
    return Py_BuildValue("(siii)", host, ntohs(v6->sin6_port), 0, 0);
}

static int drain(Generator *self, int fd, PyObject *handed) {
    Socket *sock = &self->sockets[fd];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < BATCH; i++) {
            self->in_iov[i].iov_base = self->in[i];
            self->in_iov[i].iov_len = RECEIVE_SIZE;
            struct msghdr *h = &self->in_msgs[i].msg_hdr;
            memset(h, 0, sizeof(*h));
            h->msg_name = &self->in_addr[i];
            h->msg_namelen = sizeof(self->in_addr[i]);
            h->msg_iov = &self->in_iov[i];
            h->msg_iovlen = 1;
        }
        int n = recvmmsg(fd, self->in_msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return 0;
        double now = monotonic();
        for (int i = 0; i < n; i++) {
            int len = (int)self->in_msgs[i].msg_len;
            int verdict = received_one(self, sock, self->in[i], len, now);
            if (verdict < 0) {
                PyErr_NoMemory();
                return -1;
            }
            if (verdict == 1) {
                PyObject *item = Py_BuildValue("(iy#N)", fd, (const char *)self->in[i],
                                               (Py_ssize_t)len, address_of(&self->in_addr[i]));
                if (item == NULL || PyList_Append(handed, item) < 0) {
                    Py_XDECREF(item);
                    return -1;
                }
                Py_DECREF(item);
            }
        }
        if (n < BATCH)
            return 0;
    }
    return 0;
}

/* tick() -> (handed_back: list[(fd, datagram, address)], next_due) */
static PyObject *Generator_tick(Generator *self, PyObject *unused) {
    double next = send_due(self, monotonic());
    PyObject *handed = PyList_New(0);
    if (handed == NULL)
        return NULL;
    struct epoll_event events[256];
    int n = epoll_wait(self->epfd, events, 256, 0);
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        if (fd >= 0 && fd < MAX_SOCKETS && self->sockets[fd].active && drain(self, fd, handed) < 0) {
            Py_DECREF(handed);
            return NULL;
        }
    }
    return Py_BuildValue("(Nd)", handed, next);
}

/* measure(start, end): count from start to end (perf_counter), counters reset. */
static PyObject *Generator_measure(Generator *self, PyObject *args) {
    if (!PyArg_ParseTuple(args, "dd", &self->start, &self->end))
        return NULL;
    self->sent = self->received = self->arrivals = self->late = 0;
    self->srtp_errors = self->send_errors = 0;
    self->nlat = 0;
    Py_RETURN_NONE;
}

/* results() -> dict of the window's counters, latencies as float64 bytes */
static PyObject *Generator_results(Generator *self, PyObject *unused) {
    return Py_BuildValue(
        "{sKsKsKsKsKsKsy#sKsKsK}", "sent", (unsigned long long)self->sent, "received",
        (unsigned long long)self->received, "arrivals", (unsigned long long)self->arrivals,
        "late_frames", (unsigned long long)self->late, "srtp_errors",
        (unsigned long long)self->srtp_errors, "send_errors", (unsigned long long)self->send_errors,
        "latencies", (const char *)self->latencies, (Py_ssize_t)(self->nlat * sizeof(double)),
        "total_sent", (unsigned long long)self->total_sent, "total_received",
        (unsigned long long)self->total_received, "rtcp_received", (unsigned long long)self->rtcp);
}

/* socket_stats(fd) -> (received, expected): trailer packets that arrived on fd, and how many
 * its senders numbered from the first to the last that arrived (expected - received: lost). */
static PyObject *Generator_socket_stats(Generator *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd))
        return NULL;
    if (fd < 0 || fd >= MAX_SOCKETS || !self->sockets[fd].active) {
        PyErr_SetString(PyExc_KeyError, "not a generator socket");
        return NULL;
    }
    Socket *sock = &self->sockets[fd];
    unsigned long long received = 0, expected = 0;
    for (int t = 0; t < sock->ntracks; t++) {
        Track *track = &sock->tracks[t];
        received += track->received;
        /* from the trailer indices: highest - first + 1 */
        expected += (uint64_t)(track->max_index - track->first_index) + 1;
    }
    return Py_BuildValue("(KK)", received, expected);
}

static PyObject *Generator_fileno(Generator *self, PyObject *unused) {
    return PyLong_FromLong(self->epfd);
}

static PyObject *set_srtp_functions(PyObject *module, PyObject *args) {
    unsigned long long protect, unprotect;
    if (!PyArg_ParseTuple(args, "KK", &protect, &unprotect))
        return NULL;
    srtp_protect_fn = (srtp_fn)(uintptr_t)protect;
    srtp_unprotect_fn = (srtp_fn)(uintptr_t)unprotect;
    Py_RETURN_NONE;
}

static PyMethodDef Generator_methods[] = {
    {"add_clip", (PyCFunction)Generator_add_clip, METH_VARARGS, "Store a clip's payloads."},
    {"add_socket", (PyCFunction)Generator_add_socket, METH_VARARGS, "Read a peer's socket."},
    {"add_stream", (PyCFunction)Generator_add_stream, METH_VARARGS, "Send a stream."},
    {"stop_streams", (PyCFunction)Generator_stop_streams, METH_NOARGS, "Send nothing more."},
    {"clear", (PyCFunction)Generator_clear, METH_NOARGS, "Stop every stream and socket."},
    {"tick", (PyCFunction)Generator_tick, METH_NOARGS, "Send what is due, read what is ready."},
    {"measure", (PyCFunction)Generator_measure, METH_VARARGS, "Set the window, reset counters."},
    {"results", (PyCFunction)Generator_results, METH_NOARGS, "The window's counters."},
    {"socket_stats", (PyCFunction)Generator_socket_stats, METH_VARARGS, "Per-socket loss."},
    {"fileno", (PyCFunction)Generator_fileno, METH_NOARGS, "The epoll descriptor."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GeneratorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "benchmarks._loadgen.Generator",
    .tp_basicsize = sizeof(Generator),
    .tp_dealloc = (destructor)Generator_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The compiled load generator of one worker process.",
    .tp_methods = Generator_methods,
    .tp_init = (initproc)Generator_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef module_methods[] = {
    {"set_srtp_functions", set_srtp_functions, METH_VARARGS,
     "The addresses of libsrtp's srtp_protect and srtp_unprotect (pylibsrtp's cffi module)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_loadgen", "The compiled load generator (issue 17)", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__loadgen(void) {
    if (PyType_Ready(&GeneratorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&GeneratorType);
    if (PyModule_AddObject(m, "Generator", (PyObject *)&GeneratorType) < 0) {
        Py_DECREF(&GeneratorType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
