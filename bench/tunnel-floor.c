/*
 * tunnel-floor: the floor of gsa-emu's tunneled topology, written in C. A measuring stick,
 * not a product: it answers "how many sequential SOCKS connections per second can this
 * topology carry on this machine, with this load generator, when the processes on the path
 * cost next to nothing?" (bench/proxy.ts runs it as a peer).
 *
 *   load generator --SOCKS5--> client process ==one ws tunnel==> edge process --TCP--> destination
 *
 * Two processes, as gsa-emu's tunneled rows: per proxied connection, two new loopback TCP
 * connections (generator -> client, edge -> destination) and a stream on the persistent
 * tunnel connection, with the same serial hops: greeting, method reply, CONNECT, OPEN, the
 * edge's connect, OPEN_OK, SOCKS reply, request, DATA, request to the destination, answer,
 * DATA, answer.
 * With `early`, the client sends the SOCKS reply as soon as it has sent OPEN (as v2ray
 * does), so OPEN, connect and OPEN_OK overlap the application's request instead of
 * preceding it.
 *
 *   cc -O2 -o /tmp/tunnel-floor bench/tunnel-floor.c
 *   /tmp/tunnel-floor edge 9001                     (tunnel listener on 127.0.0.1:9001)
 *   /tmp/tunnel-floor client 1080 9001 [early]      (SOCKS5 on 127.0.0.1:1080)
 *
 * Both are single-threaded epoll loops over nonblocking sockets, TCP_NODELAY on all of them.
 * The client connects to the edge once, at startup (retrying for 5 s), and exits if that
 * tunnel is lost; the edge accepts any number of tunnels.
 *
 * Wire format, mirroring gsa-emu's (src/tunnel/frame.ts, same type numbers): frames of a
 * 10-byte header, type u8 | flags u8 (0) | stream id u32 BE | length u32 BE, then payload:
 *   OPEN     client -> edge: address type 1 (IPv4, 4 bytes) or 3 (length byte + name), port u16
 *   OPEN_OK  edge -> client: the edge has connected; empty
 *   DATA     stream bytes
 *   FIN      half close: no more DATA from the sender; empty
 *   RST      abort the stream: 1 byte reason (REFUSED, UNREACHABLE, ...)
 * The client allocates odd stream ids. Every write to the tunnel socket is one WebSocket
 * binary message (RFC 6455 framing: 2, 4 or 10-byte header; client -> edge masked with a
 * fresh 4-byte key and the payload XORed, edge -> client unmasked), carrying every frame
 * the process produced for that tunnel in one event-loop iteration. There is no HTTP
 * upgrade handshake (gsa-emu does one per tunnel, not per connection) and no TLS, auth,
 * policy, keepalive or IPv6.
 *
 * No flow control (gsa-emu has per-stream credit windows, WINDOW frames). Memory is bounded
 * by two coarse rules instead:
 *   - when a stream socket's output buffer holds more than HIGH_WATER bytes, the process
 *     stops reading its tunnel until that buffer is below LOW_WATER: every stream of the
 *     tunnel waits (head-of-line blocking, what flow control exists to avoid; the bench's
 *     readers always read, so it only paces them);
 *   - when the tunnel's output buffer holds more than HIGH_WATER bytes, the process stops
 *     reading its stream sockets until it is below LOW_WATER.
 * A stream buffer therefore stays under HIGH_WATER + TUN_READ (one tunnel read) and the
 * tunnel buffer under HIGH_WATER + APP_READ per readable stream (plus, for a stream whose
 * application hung up, what its socket still holds: it is read out regardless). A stall
 * needs an endpoint that stops reading. Output buffers are kept at their peak size until
 * their socket closes.
 *
 * Shortcuts a benchmark can take: the edge resolves domain names with a blocking
 * getaddrinfo (the bench only sends IPv4 addresses); out of memory exits; the ws mask key
 * comes from xorshift, not a CSPRNG. Malformed input closes the connection it came on (for
 * a tunnel on the edge, with all its streams); no input crashes the loop.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Frame types (gsa-emu's numbers; WINDOW, DGRAM, PING... are not used here). */
enum { F_DATA = 0x00, F_OPEN = 0x01, F_OPEN_OK = 0x02, F_FIN = 0x04, F_RST = 0x05 };
/* RST reasons. */
enum { R_GENERAL = 0, R_REFUSED = 1, R_UNREACHABLE = 2, R_ABORTED = 3 };

#define FRAME_HDR 10
#define WS_HDR_MAX 14          /* 2 + 8-byte length + 4-byte mask key */
#define MAX_CTL 259            /* largest non-DATA payload: OPEN with a 255-byte name */
#define TUN_READ (256 * 1024)  /* one read of a tunnel socket */
#define APP_READ (256 * 1024)  /* one read of a stream socket (one DATA frame) */
#define HIGH_WATER (4u << 20)
#define LOW_WATER (1u << 20)
#define BUCKETS 4096           /* stream id hash table (chained) */

/* ------------------------------------------------------------------------------------- */
/* Byte buffers: p[off, len) is pending; the free room is p[len, cap). */

struct buf {
  uint8_t *p;
  size_t off, len, cap;
};

static size_t buf_pending(const struct buf *b) { return b->len - b->off; }

/* Makes room for n more bytes at the end (moving pending bytes to the front first). */
static void buf_reserve(struct buf *b, size_t n) {
  if (b->cap - b->len >= n) return;
  if (b->off) {
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->cap - b->len >= n) return;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < n) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) {
    perror("tunnel-floor: realloc");
    exit(1);
  }
  b->p = p;
  b->cap = cap;
}

static void buf_append(struct buf *b, const void *d, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, d, n);
  b->len += n;
}

/* ------------------------------------------------------------------------------------- */
/* Sockets: every fd in the epoll set is one of these (epoll_event.data.ptr). */

enum kind { K_LISTEN, K_TUNNEL, K_STREAM };

struct sock {
  enum kind kind;
  int fd;
  uint32_t ev;       /* epoll events registered */
  bool added;        /* in the epoll set */
  bool dead;         /* closed: freed at the end of the loop iteration */
  struct sock *grave;
  struct buf out;    /* bytes the socket has not taken yet */
};

/* Stream states. Client: GREETING -> REQUEST -> OPENING -> OPEN (early: REQUEST -> OPEN).
 * Edge: CONNECTING -> OPEN. */
enum state { S_GREETING, S_REQUEST, S_OPENING, S_CONNECTING, S_OPEN };

struct tunnel;

/* One proxied connection: the application's socket (client) or the destination's (edge). */
struct stream {
  struct sock s;
  struct tunnel *t;
  uint32_t id;                /* 0 until the client sends OPEN */
  enum state state;
  bool rd_eof;                /* the socket gave EOF: our FIN is sent */
  bool peer_fin;              /* the tunnel peer sent FIN */
  bool wr_shut;               /* shutdown(SHUT_WR) done (after peer_fin and a drained out) */
  bool over;                  /* out above HIGH_WATER: counted in t->blocked */
  struct stream *hnext;       /* hash chain */
  struct stream *prev, *next; /* all streams of the tunnel */
  uint16_t hlen;              /* SOCKS handshake bytes received, not yet parsed (client) */
  uint8_t hs[512];
};

struct tunnel {
  struct sock s;
  /* Frames produced in this loop iteration, sent as one ws message by tunnel_flush. The
   * first WS_HDR_MAX bytes are kept free for the ws header (len is 0 or >= WS_HDR_MAX). */
  struct buf pend;
  bool dirty;                 /* in dirty_list */
  struct tunnel *dirty_next;
  unsigned blocked;           /* streams with out above HIGH_WATER: no tunnel reads */
  bool congested;             /* out above HIGH_WATER: no stream reads */
  /* WebSocket parser: header bytes, then wleft payload bytes. */
  bool wpayload;
  uint8_t wh[WS_HDR_MAX];
  unsigned whave, wneed, mpos;
  uint64_t wleft;
  uint8_t mask[4];
  /* Frame parser, fed with unmasked ws payload: header bytes, then mleft payload bytes. */
  bool mpayload;
  uint8_t mh[FRAME_HDR];
  unsigned mhave;
  uint8_t mtype;
  uint32_t mid, mleft;
  struct stream *mdst;        /* DATA: the stream it goes to (NULL: dropped) */
  uint8_t ctl[MAX_CTL];       /* payload of the other frame types */
  unsigned clen;
  struct stream *buckets[BUCKETS];
  struct stream *streams;
  uint32_t next_id;           /* client: next odd stream id */
};

static int ep;
static bool is_client, early;
static struct sock *graveyard;
static struct tunnel *dirty_list;
static uint8_t rbuf[TUN_READ];
static uint64_t rng;

static void stream_update(struct stream *st);
static void tunnel_update(struct tunnel *t);

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Registers the epoll events `ev` for s (adding it to the set the first time). */
static int sock_want(struct sock *s, uint32_t ev) {
  if (s->dead || (s->added && ev == s->ev)) return 0;
  struct epoll_event e = {.events = ev, .data.ptr = s};
  if (epoll_ctl(ep, s->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &e) < 0) return -1;
  s->added = true;
  s->ev = ev;
  return 0;
}

/* Writes what s->out holds: 0 when done or the socket is full, -1 on an error. */
static int sock_write_out(struct sock *s) {
  while (buf_pending(&s->out)) {
    ssize_t n = send(s->fd, s->out.p + s->out.off, buf_pending(&s->out), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -1;
    }
    s->out.off += (size_t)n;
  }
  s->out.off = s->out.len = 0;
  return 0;
}

/* Closes s now; its memory is freed at the end of the loop iteration, as epoll events
 * already collected may still point at it. */
static void sock_bury(struct sock *s) {
  close(s->fd);
  s->fd = -1;
  s->dead = true;
  s->grave = graveyard;
  graveyard = s;
}

/* ------------------------------------------------------------------------------------- */
/* WebSocket framing */

static uint32_t rand32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

static size_t ws_header_size(uint64_t n, bool masked) {
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/* Writes the header of one final binary message of n payload bytes at h. */
static void ws_header(uint8_t *h, uint64_t n, bool masked) {
  size_t k;
  h[0] = 0x82; /* FIN, opcode 2 (binary) */
  if (n < 126) {
    h[1] = (uint8_t)n;
    k = 2;
  } else if (n < 65536) {
    h[1] = 126;
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    k = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    k = 10;
  }
  if (masked) {
    uint32_t m = rand32();
    h[1] |= 0x80;
    memcpy(h + k, &m, 4);
  }
}

/* XORs p with the mask key, starting at byte `phase` of the key; 8 bytes at a time. */
static void ws_mask(uint8_t *p, size_t n, const uint8_t key[4], unsigned phase) {
  uint8_t r[8];
  uint64_t w;
  size_t i = 0;
  for (int k = 0; k < 8; k++) r[k] = key[(phase + k) & 3];
  memcpy(&w, r, 8);
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    memcpy(&x, p + i, 8);
    x ^= w;
    memcpy(p + i, &x, 8);
  }
  for (; i < n; i++) p[i] ^= r[i & 7];
}

/* ------------------------------------------------------------------------------------- */
/* Streams */

static struct stream **bucket(struct tunnel *t, uint32_t id) {
  return &t->buckets[(id >> 1) & (BUCKETS - 1)];
}

static struct stream *stream_find(struct tunnel *t, uint32_t id) {
  struct stream *st = *bucket(t, id);
  while (st && st->id != id) st = st->hnext;
  return st;
}

static void stream_set_id(struct stream *st, uint32_t id) {
  struct stream **b = bucket(st->t, id);
  st->id = id;
  st->hnext = *b;
  *b = st;
}

/* A zeroed allocation; out of memory ends the process (a benchmark has nothing to save). */
static void *xcalloc(size_t size) {
  void *p = calloc(1, size);
  if (!p) {
    perror("tunnel-floor: calloc");
    exit(1);
  }
  return p;
}

static struct stream *stream_new(struct tunnel *t, int fd, enum state state) {
  struct stream *st = xcalloc(sizeof *st);
  st->s.kind = K_STREAM;
  st->s.fd = fd;
  st->t = t;
  st->state = state;
  st->next = t->streams;
  if (t->streams) t->streams->prev = st;
  t->streams = st;
  return st;
}

/* Closes the stream's socket and forgets the stream; sends nothing. */
static void stream_close(struct stream *st) {
  struct tunnel *t = st->t;
  if (st->s.dead) return;
  if (st->id) {
    struct stream **p = bucket(t, st->id);
    while (*p != st) p = &(*p)->hnext;
    *p = st->hnext;
  }
  if (st->prev) st->prev->next = st->next;
  else t->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  if (st->over && --t->blocked == 0) tunnel_update(t);
  if (t->mdst == st) t->mdst = NULL; /* the rest of a DATA frame in flight is dropped */
  sock_bury(&st->s);
}

/* ------------------------------------------------------------------------------------- */
/* Sending frames: they gather in t->pend; tunnel_flush sends them as one ws message. */

static void frame_header(uint8_t *h, uint8_t type, uint32_t id, uint32_t len) {
  h[0] = type;
  h[1] = 0;
  for (int i = 0; i < 4; i++) {
    h[2 + i] = (uint8_t)(id >> (24 - 8 * i));
    h[6 + i] = (uint8_t)(len >> (24 - 8 * i));
  }
}

/* Room for n more bytes at the end of t->pend. */
static uint8_t *pend_room(struct tunnel *t, size_t n) {
  if (t->pend.len == 0) {
    buf_reserve(&t->pend, WS_HDR_MAX + n);
    t->pend.len = WS_HDR_MAX;
  } else {
    buf_reserve(&t->pend, n);
  }
  return t->pend.p + t->pend.len;
}

/* Takes the n bytes written at pend_room() into the message. */
static void pend_commit(struct tunnel *t, size_t n) {
  t->pend.len += n;
  if (!t->dirty) {
    t->dirty = true;
    t->dirty_next = dirty_list;
    dirty_list = t;
  }
}

static void send_frame(struct tunnel *t, uint8_t type, uint32_t id, const void *p, uint32_t n) {
  if (t->s.dead) return;
  uint8_t *h = pend_room(t, FRAME_HDR + n);
  frame_header(h, type, id, n);
  if (n) memcpy(h + FRAME_HDR, p, n);
  pend_commit(t, FRAME_HDR + n);
}

/* Sends RST (when the peer knows the stream) and closes the stream. */
static void stream_abort(struct stream *st, uint8_t reason) {
  if (st->s.dead) return;
  if (st->id) send_frame(st->t, F_RST, st->id, &reason, 1);
  stream_close(st);
}

/* ------------------------------------------------------------------------------------- */
/* Relaying */

static void stream_update(struct stream *st) {
  uint32_t ev = 0;
  switch (st->state) {
  case S_GREETING:
  case S_REQUEST: ev = EPOLLIN; break;
  case S_OPENING: break;
  case S_CONNECTING: ev = EPOLLOUT; break; /* connect() done; out waits for it */
  case S_OPEN: ev = !st->rd_eof && !st->t->congested ? EPOLLIN : 0; break;
  }
  if (st->state != S_CONNECTING && buf_pending(&st->s.out)) ev |= EPOLLOUT;
  if (sock_want(&st->s, ev) < 0) stream_abort(st, R_GENERAL);
}

/* Half closes toward the socket once the peer's FIN and all its DATA went through; frees
 * the stream when both directions are done. */
static void stream_maybe_finish(struct stream *st) {
  if (st->s.dead || st->state != S_OPEN) return;
  if (st->peer_fin && !st->wr_shut && !buf_pending(&st->s.out)) {
    shutdown(st->s.fd, SHUT_WR);
    st->wr_shut = true;
  }
  if (st->rd_eof && st->wr_shut) stream_close(st);
}

/* Writes st->out; false when the stream is gone. */
static bool stream_write_out(struct stream *st) {
  struct tunnel *t = st->t;
  if (sock_write_out(&st->s) < 0) {
    stream_abort(st, R_ABORTED);
    return false;
  }
  if (st->over && buf_pending(&st->s.out) < LOW_WATER) {
    st->over = false;
    if (--t->blocked == 0) tunnel_update(t);
  }
  stream_maybe_finish(st);
  if (st->s.dead) return false;
  stream_update(st);
  return !st->s.dead;
}

/* DATA from the tunnel: written straight to the socket when nothing is queued before it. */
static void stream_data(struct stream *st, const uint8_t *p, size_t n) {
  struct tunnel *t = st->t;
  if (st->peer_fin || st->state == S_OPENING) { /* DATA after FIN, or before OPEN_OK */
    stream_abort(st, R_GENERAL);
    return;
  }
  if (st->state == S_OPEN && !buf_pending(&st->s.out)) {
    ssize_t w = send(st->s.fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        stream_abort(st, R_ABORTED);
        return;
      }
      w = 0;
    }
    p += w;
    n -= (size_t)w;
  }
  if (!n) return;
  buf_append(&st->s.out, p, n);
  if (!st->over && buf_pending(&st->s.out) > HIGH_WATER) {
    st->over = true;
    if (t->blocked++ == 0) tunnel_update(t);
  }
  stream_update(st);
}

/* The socket is readable: one read, straight into the tunnel's message as a DATA frame. */
static void stream_read(struct stream *st, uint32_t ev) {
  struct tunnel *t = st->t;
  if (t->congested && !(ev & (EPOLLERR | EPOLLHUP))) {
    stream_update(st); /* drops EPOLLIN until the tunnel drains */
    return;
  } /* (an error or a hangup is read even then, else it would be reported again and again) */
  uint8_t *h = pend_room(t, FRAME_HDR + APP_READ);
  ssize_t n = recv(st->s.fd, h + FRAME_HDR, APP_READ, 0);
  if (n > 0) {
    frame_header(h, F_DATA, st->id, (uint32_t)n);
    pend_commit(t, FRAME_HDR + (size_t)n);
  } else if (n == 0) {
    st->rd_eof = true;
    send_frame(t, F_FIN, st->id, NULL, 0);
    stream_maybe_finish(st);
    if (!st->s.dead) stream_update(st);
  } else if (errno != EAGAIN && errno != EINTR) {
    stream_abort(st, R_ABORTED);
  }
}

/* ------------------------------------------------------------------------------------- */
/* Client: SOCKS5 */

/* Sends a failure reply (best effort: a fresh socket takes 10 bytes) and closes. */
static void socks_fail(struct stream *st, const uint8_t *reply, size_t n) {
  buf_append(&st->s.out, reply, n);
  sock_write_out(&st->s);
  stream_close(st); /* the edge knows nothing of it, or sent the RST */
}

static void socks_reply(struct stream *st, uint8_t code) {
  const uint8_t r[10] = {5, code, 0, 1, 0, 0, 0, 0, 0, 0};
  if (code) {
    socks_fail(st, r, sizeof r);
    return;
  }
  buf_append(&st->s.out, r, sizeof r);
  stream_write_out(st);
}

static void socks_consume(struct stream *st, size_t n) {
  memmove(st->hs, st->hs + n, st->hlen - n);
  st->hlen = (uint16_t)(st->hlen - n);
}

/* Parses what st->hs holds: the greeting, then the CONNECT request. */
static void socks_parse(struct stream *st) {
  struct tunnel *t = st->t;
  const uint8_t *h = st->hs;
  size_t need;
  if (st->state == S_GREETING) {
    static const uint8_t ok[2] = {5, 0}, none[2] = {5, 0xff};
    if (st->hlen < 2) return;
    if (h[0] != 5) {
      stream_close(st);
      return;
    }
    need = 2 + (size_t)h[1];
    if (st->hlen < need) return;
    if (!memchr(h + 2, 0, h[1])) { /* no "no authentication" method */
      socks_fail(st, none, sizeof none);
      return;
    }
    socks_consume(st, need);
    st->state = S_REQUEST;
    buf_append(&st->s.out, ok, sizeof ok);
    if (!stream_write_out(st)) return;
  }
  /* The request: 5, command, 0, address type, address, port. */
  if (st->hlen < 5) return;
  if (h[0] != 5 || h[2] != 0) {
    stream_close(st);
    return;
  }
  if (h[1] != 1) { /* only CONNECT */
    socks_reply(st, 7);
    return;
  }
  if (h[3] == 1) need = 10;
  else if (h[3] == 3 && h[4] > 0) need = 7 + (size_t)h[4];
  else { /* IPv6 or an unknown type */
    socks_reply(st, 8);
    return;
  }
  if (st->hlen < need) return;
  uint32_t id;
  do { /* odd ids; after 2^31 streams they wrap, skipping the ones still open */
    id = t->next_id;
    t->next_id += 2;
  } while (stream_find(t, id));
  stream_set_id(st, id);
  /* OPEN's payload is the request's address type, address and port, as they are. */
  send_frame(t, F_OPEN, id, h + 3, (uint32_t)(need - 3));
  if (st->hlen > need) /* bytes the application sent ahead of the reply */
    send_frame(t, F_DATA, id, h + need, (uint32_t)(st->hlen - need));
  st->hlen = 0;
  if (early) {
    st->state = S_OPEN;
    socks_reply(st, 0);
  } else {
    st->state = S_OPENING; /* the reply waits for OPEN_OK or RST */
    stream_update(st);
  }
}

static void socks_read(struct stream *st) {
  ssize_t n = recv(st->s.fd, st->hs + st->hlen, sizeof st->hs - st->hlen, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) { /* closed, reset, or more than a handshake can hold */
    stream_close(st);
    return;
  }
  st->hlen = (uint16_t)(st->hlen + n);
  socks_parse(st);
}

/* ------------------------------------------------------------------------------------- */
/* Edge: OPEN */

static uint8_t errno_reason(int e) {
  if (e == ECONNREFUSED) return R_REFUSED;
  if (e == ENETUNREACH || e == EHOSTUNREACH || e == ETIMEDOUT) return R_UNREACHABLE;
  return R_GENERAL;
}

/* OPEN: starts a nonblocking connect. -1 when the payload is malformed. */
static int edge_open(struct tunnel *t, uint32_t id, const uint8_t *a, size_t n) {
  struct sockaddr_storage ss = {0};
  socklen_t sl;
  if (n == 7 && a[0] == 1) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, a + 1, 4);
    memcpy(&sin->sin_port, a + 5, 2);
    sl = sizeof *sin;
  } else if (n >= 2 && a[0] == 3 && a[1] > 0 && n == 4 + (size_t)a[1]) {
    /* A name: resolved with a blocking getaddrinfo, good enough for a benchmark. */
    char name[256];
    uint16_t port;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    memcpy(name, a + 2, a[1]);
    name[a[1]] = 0;
    memcpy(&port, a + 2 + a[1], 2);
    if (memchr(name, 0, a[1]) || getaddrinfo(name, NULL, &hints, &res) != 0) {
      uint8_t r = R_UNREACHABLE;
      send_frame(t, F_RST, id, &r, 1);
      return 0;
    }
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    sl = res->ai_addrlen;
    if (ss.ss_family == AF_INET6) ((struct sockaddr_in6 *)&ss)->sin6_port = port;
    else ((struct sockaddr_in *)&ss)->sin_port = port;
    freeaddrinfo(res);
  } else {
    return -1;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    uint8_t r = R_GENERAL;
    send_frame(t, F_RST, id, &r, 1);
    return 0;
  }
  nodelay(fd);
  int c = connect(fd, (struct sockaddr *)&ss, sl);
  if (c < 0 && errno != EINPROGRESS) {
    uint8_t r = errno_reason(errno);
    close(fd);
    send_frame(t, F_RST, id, &r, 1);
    return 0;
  }
  struct stream *st = stream_new(t, fd, c == 0 ? S_OPEN : S_CONNECTING);
  stream_set_id(st, id);
  if (c == 0) send_frame(t, F_OPEN_OK, id, NULL, 0);
  stream_update(st);
  return 0;
}

/* The destination socket of a CONNECTING stream is writable or failed. */
static void edge_connected(struct stream *st) {
  int err = 0;
  socklen_t l = sizeof err;
  if (getsockopt(st->s.fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
  if (err) {
    stream_abort(st, errno_reason(err));
    return;
  }
  st->state = S_OPEN;
  send_frame(st->t, F_OPEN_OK, st->id, NULL, 0);
  stream_write_out(st); /* DATA (and FIN) that came while connecting */
}

/* ------------------------------------------------------------------------------------- */
/* Tunnel: receiving */

/* A complete frame other than DATA (payload in t->ctl). -1 on a protocol violation. */
static int tunnel_frame(struct tunnel *t) {
  struct stream *st = stream_find(t, t->mid);
  switch (t->mtype) {
  case F_OPEN:
    if (is_client || !(t->mid & 1) || st) return -1;
    return edge_open(t, t->mid, t->ctl, t->clen);
  case F_OPEN_OK:
    if (!is_client || t->clen) return -1;
    if (st && st->state == S_OPENING) {
      st->state = S_OPEN;
      socks_reply(st, 0);
    } /* early mode: the stream is already open */
    return 0;
  case F_FIN:
    if (t->clen) return -1;
    if (!st) return 0;
    if (st->peer_fin || st->state == S_OPENING) stream_abort(st, R_GENERAL);
    else {
      st->peer_fin = true;
      stream_maybe_finish(st);
    }
    return 0;
  case F_RST:
    if (!st) return 0; /* crossed our own close */
    if (st->state == S_OPENING) {
      uint8_t why = t->clen ? t->ctl[0] : R_GENERAL;
      socks_reply(st, why == R_REFUSED ? 5 : why == R_UNREACHABLE ? 4 : 1);
    }
    stream_close(st);
    return 0;
  }
  return -1;
}

/* Frames, from unmasked ws payload; a frame may span messages and reads. */
static int tunnel_frames(struct tunnel *t, const uint8_t *p, size_t n) {
  while (n) {
    if (!t->mpayload) {
      size_t k = FRAME_HDR - t->mhave < n ? FRAME_HDR - t->mhave : n;
      memcpy(t->mh + t->mhave, p, k);
      t->mhave += (unsigned)k;
      p += k;
      n -= k;
      if (t->mhave < FRAME_HDR) break;
      t->mhave = 0;
      t->mtype = t->mh[0];
      t->mid = be32(t->mh + 2);
      t->mleft = be32(t->mh + 6);
      t->clen = 0;
      if (t->mid == 0) return -1;
      if (t->mtype == F_DATA) t->mdst = stream_find(t, t->mid); /* NULL: closed here */
      else if ((t->mtype != F_OPEN && t->mtype != F_OPEN_OK && t->mtype != F_FIN &&
                t->mtype != F_RST) ||
               t->mleft > MAX_CTL)
        return -1;
      if (t->mleft) t->mpayload = true;
      else if (t->mtype != F_DATA && tunnel_frame(t) < 0) return -1;
    } else {
      size_t k = t->mleft < n ? t->mleft : n;
      if (t->mtype != F_DATA) {
        memcpy(t->ctl + t->clen, p, k);
        t->clen += (unsigned)k;
      } else if (t->mdst) {
        stream_data(t->mdst, p, k);
      }
      p += k;
      n -= k;
      t->mleft -= (uint32_t)k;
      if (t->mleft) continue;
      t->mpayload = false;
      if (t->mtype != F_DATA && tunnel_frame(t) < 0) return -1;
    }
  }
  return 0;
}

/* WebSocket messages, from the tunnel socket; unmasks in place. */
static int tunnel_ws(struct tunnel *t, uint8_t *p, size_t n) {
  while (n) {
    if (!t->wpayload) {
      t->wh[t->whave++] = *p++;
      n--;
      if (t->whave == 2) {
        /* Final binary messages only: a close frame, a fragment or a ping ends the tunnel. */
        bool masked = t->wh[1] & 0x80;
        unsigned l7 = t->wh[1] & 0x7f;
        if (t->wh[0] != 0x82 || masked != !is_client) return -1; /* RFC 6455 5.1 */
        t->wneed = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (masked ? 4 : 0);
      }
      if (t->whave < 2 || t->whave < t->wneed) continue;
      unsigned l7 = t->wh[1] & 0x7f, k = 2;
      uint64_t len = l7;
      if (l7 == 126) {
        len = (uint64_t)t->wh[2] << 8 | t->wh[3];
        k = 4;
      } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | t->wh[2 + i];
        k = 10;
        if (len >> 63) return -1;
      }
      if (!is_client) memcpy(t->mask, t->wh + k, 4);
      t->whave = 0;
      t->mpos = 0;
      t->wleft = len;
      t->wpayload = len > 0;
    } else {
      size_t k = t->wleft < n ? (size_t)t->wleft : n;
      if (!is_client) {
        ws_mask(p, k, t->mask, t->mpos);
        t->mpos = (unsigned)((t->mpos + k) & 3);
      }
      if (tunnel_frames(t, p, k) < 0) return -1;
      p += k;
      n -= k;
      t->wleft -= k;
      t->wpayload = t->wleft > 0;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------- */
/* Tunnel: the connection */

static void tunnel_update(struct tunnel *t) {
  uint32_t ev = (t->blocked ? 0 : EPOLLIN) | (buf_pending(&t->s.out) ? EPOLLOUT : 0);
  if (sock_want(&t->s, ev) < 0) {
    perror("tunnel-floor: epoll_ctl");
    exit(1);
  }
}

static struct tunnel *tunnel_new(int fd) {
  struct tunnel *t = xcalloc(sizeof *t);
  t->s.kind = K_TUNNEL;
  t->s.fd = fd;
  t->next_id = 1;
  nodelay(fd);
  tunnel_update(t);
  return t;
}

/* The client has one tunnel and exits without it; the edge drops the tunnel's streams. */
static void tunnel_close(struct tunnel *t, const char *why) {
  if (is_client) {
    fprintf(stderr, "tunnel-floor client: tunnel lost (%s)\n", why);
    exit(1);
  }
  while (t->streams) stream_close(t->streams);
  sock_bury(&t->s);
}

/* Sends the frames of this loop iteration as one ws message: straight from t->pend when
 * nothing is queued before it, else after what is. */
static void tunnel_flush(struct tunnel *t) {
  t->dirty = false;
  if (t->s.dead || t->pend.len <= WS_HDR_MAX) {
    t->pend.len = 0;
    return;
  }
  uint8_t *payload = t->pend.p + WS_HDR_MAX;
  size_t n = t->pend.len - WS_HDR_MAX, hl = ws_header_size(n, is_client);
  uint8_t *msg = payload - hl;
  size_t len = hl + n, done = 0;
  ws_header(msg, n, is_client);
  if (is_client) ws_mask(payload, n, msg + hl - 4, 0);
  t->pend.len = 0;
  if (!buf_pending(&t->s.out)) {
    ssize_t w = send(t->s.fd, msg, len, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      tunnel_close(t, strerror(errno));
      return;
    }
    if (w > 0) done = (size_t)w;
  }
  if (done < len) buf_append(&t->s.out, msg + done, len - done);
  if (buf_pending(&t->s.out) > HIGH_WATER) t->congested = true;
  tunnel_update(t);
}

static void tunnel_event(struct tunnel *t, uint32_t ev) {
  if (ev & EPOLLOUT) {
    if (sock_write_out(&t->s) < 0) {
      tunnel_close(t, strerror(errno));
      return;
    }
    if (t->congested && buf_pending(&t->s.out) < LOW_WATER) {
      t->congested = false;
      for (struct stream *st = t->streams; st; st = st->next) stream_update(st);
    }
    tunnel_update(t);
  }
  if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
  if (t->blocked) { /* no EPOLLIN asked for: an error or a hangup, the peer is gone */
    if (ev & (EPOLLERR | EPOLLHUP)) tunnel_close(t, "hangup");
    return;
  }
  ssize_t n = recv(t->s.fd, rbuf, sizeof rbuf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n < 0) tunnel_close(t, strerror(errno));
  else if (n == 0) tunnel_close(t, "closed by the peer");
  else if (tunnel_ws(t, rbuf, (size_t)n) < 0) tunnel_close(t, "malformed input");
}

/* ------------------------------------------------------------------------------------- */
/* Event loop */

static struct tunnel *client_tunnel;

static void stream_event(struct stream *st, uint32_t ev) {
  if (st->state == S_CONNECTING) { /* only EPOLLOUT, EPOLLERR and EPOLLHUP are asked for */
    edge_connected(st);
    return;
  }
  if ((ev & EPOLLOUT) && !stream_write_out(st)) return;
  if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
  if (st->state == S_GREETING || st->state == S_REQUEST) socks_read(st);
  else if (st->state == S_OPEN && !st->rd_eof) stream_read(st, ev);
  else stream_abort(st, R_ABORTED); /* OPENING, or after EOF: an error or a hangup */
}

static void listen_event(struct sock *l) {
  for (int i = 0; i < 64; i++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      /* EMFILE and the like: the listener stays readable and is retried next iteration. */
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) perror("accept");
      return;
    }
    if (is_client) {
      nodelay(fd);
      stream_update(stream_new(client_tunnel, fd, S_GREETING));
    } else {
      tunnel_new(fd);
    }
  }
}

static int listen_on(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, SOMAXCONN) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* The client's tunnel: a blocking connect, retried for 5 s (the edge may still be starting). */
static int connect_edge(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < 250; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
      if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        close(fd);
        return -1;
      }
      return fd;
    }
    close(fd);
    struct timespec d = {.tv_nsec = 20 * 1000 * 1000};
    nanosleep(&d, NULL);
  }
  return -1;
}

static int usage(void) {
  fprintf(stderr, "usage: tunnel-floor edge <tunnel-port>\n"
                  "       tunnel-floor client <socks-port> <tunnel-port> [early]\n");
  return 2;
}

static int port_arg(const char *s) {
  char *end;
  long p = strtol(s, &end, 10);
  return *end || p < 1 || p > 65535 ? -1 : (int)p;
}

int main(int argc, char **argv) {
  static struct sock listener = {.kind = K_LISTEN};
  struct epoll_event evs[256];
  if (argc == 3 && !strcmp(argv[1], "edge")) {
    is_client = false;
  } else if ((argc == 4 || (argc == 5 && !strcmp(argv[4], "early"))) &&
             !strcmp(argv[1], "client")) {
    is_client = true;
    early = argc == 5;
  } else {
    return usage();
  }
  int lport = port_arg(argv[2]), tport = is_client ? port_arg(argv[3]) : lport;
  if (lport < 0 || tport < 0) return usage();
  signal(SIGPIPE, SIG_IGN);
  rng = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    perror("tunnel-floor: epoll_create1");
    return 1;
  }
  if (is_client) {
    int fd = connect_edge(tport);
    if (fd < 0) {
      fprintf(stderr, "tunnel-floor client: cannot connect to the edge on port %d\n", tport);
      return 1;
    }
    client_tunnel = tunnel_new(fd);
  }
  /* The client listens only once its tunnel is up: an open SOCKS port means ready. */
  listener.fd = listen_on(lport);
  if (listener.fd < 0 || sock_want(&listener, EPOLLIN) < 0) {
    perror("tunnel-floor: listen");
    return 1;
  }
  for (;;) {
    int n = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("tunnel-floor: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      struct sock *s = evs[i].data.ptr;
      if (s->dead) continue;
      if (s->kind == K_LISTEN) listen_event(s);
      else if (s->kind == K_TUNNEL) tunnel_event((struct tunnel *)s, evs[i].events);
      else stream_event((struct stream *)s, evs[i].events);
    }
    /* One ws message per tunnel for everything this iteration produced. */
    while (dirty_list) {
      struct tunnel *t = dirty_list;
      dirty_list = t->dirty_next;
      tunnel_flush(t);
    }
    while (graveyard) {
      struct sock *s = graveyard;
      graveyard = s->grave;
      free(s->out.p);
      if (s->kind == K_TUNNEL) free(((struct tunnel *)s)->pend.p);
      free(s);
    }
  }
}
