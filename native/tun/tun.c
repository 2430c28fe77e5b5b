/*
 * gsa-emu TUN addon: the thin native part of TUN capture (Linux only).
 *
 * Contract (everything else is JavaScript):
 *   open(name, mtu, netnsPath|null) -> { fd, name }
 *       Opens /dev/net/tun with IFF_TUN|IFF_NO_PI, O_NONBLOCK|O_CLOEXEC. When netnsPath is
 *       given the calling thread enters that network namespace for the open() and the
 *       TUNSETIFF only, so the device is created inside it; the thread returns to its own
 *       namespace before the call returns. mtu > 0 sets the MTU and brings the link up
 *       (SIOCSIFMTU / SIOCSIFFLAGS, in that same namespace).
 *   start(fd, onPackets(buf, offs, count), maxBatch) -> handle
 *       uv_poll on the fd (no timers, no polling loop). On readable: read() until EAGAIN
 *       or maxBatch packets, copied into one Buffer; offs is a Uint32Array
 *       [off0, len0, off1, len1, ...]; one JS call per batch.
 *   write(handle, buffers[]) -> number accepted
 *       One write() per packet; on EAGAIN the rest are copied into a bounded queue and
 *       flushed when the fd polls writable. Packets beyond the queue bound are dropped and
 *       counted (stats). Returns the number of packets written or queued.
 *   stats(handle) -> { rxPackets, rxBytes, txPackets, txBytes, txQueued, txDropped, readErrors, writeErrors }
 *   close(handle)             stops the poll and closes the fd.
 *   listenTcp4(netnsPath|null, ipv4, port, backlog) -> fd of a bound, listening socket
 *       created inside netnsPath (for net.Server.listen({ fd })).
 *   setMark(fd, mark)         SO_MARK on a socket (policy routing of the emulator's own sockets).
 *   sockInode(family, localIp, localPort, remoteIp, remotePort) -> inode (number) | 0
 *       The inode of the TCP socket with that local and remote address (0: no such
 *       socket), by one NETLINK_SOCK_DIAG exact lookup (the kernel's hash lookup, as
 *       `ss` does it) instead of reading all of /proc/net/tcp. family is 4 or 6.
 *
 * Errors from open/listenTcp4 throw a JS Error whose `code` is the errno name (EPERM,
 * ENOENT, ...) so the JS side can say exactly what is missing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <stdio.h>

#include <node_api.h>
#include <uv.h>

#define ARENA_SIZE (1024 * 1024)
#define MAX_BATCH 256
#define TXQ_LIMIT (8 * 1024 * 1024)

typedef struct txpkt {
  struct txpkt *next;
  size_t len;
  unsigned char data[];
} txpkt;

typedef struct {
  napi_env env;
  int fd;
  int closed;
  int refs; /* the uv handle and the JS external each hold one */
  int events;
  uv_poll_t poll;
  napi_ref cb;
  napi_async_context actx;
  size_t mtu;
  int max_batch;
  unsigned char *arena;
  uint32_t offs[MAX_BATCH * 2];
  txpkt *qhead, *qtail;
  size_t qbytes;
  double rx_packets, rx_bytes, tx_packets, tx_bytes, tx_queued, tx_dropped, read_errors,
      write_errors;
} tun_t;

#define CHECK(call)                                                                        \
  do {                                                                                     \
    if ((call) != napi_ok) {                                                               \
      napi_throw_error(env, NULL, "napi call failed: " #call);                             \
      return NULL;                                                                         \
    }                                                                                      \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error;
  const char *name = "EIO";
  switch (err) {
  case EPERM: name = "EPERM"; break;
  case EACCES: name = "EACCES"; break;
  case ENOENT: name = "ENOENT"; break;
  case ENODEV: name = "ENODEV"; break;
  case EBUSY: name = "EBUSY"; break;
  case EINVAL: name = "EINVAL"; break;
  case EADDRINUSE: name = "EADDRINUSE"; break;
  case EADDRNOTAVAIL: name = "EADDRNOTAVAIL"; break;
  case ENXIO: name = "ENXIO"; break;
  default: break;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_throw(env, error);
  return NULL;
}

/* Enter netns `path` for the calling thread; *saved receives the fd to return with. */
static int enter_netns(const char *path, int *saved) {
  *saved = -1;
  if (!path || !*path) return 0;
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return errno;
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(self);
    return e;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(self);
    return e;
  }
  close(target);
  *saved = self;
  return 0;
}

static void leave_netns(int saved) {
  if (saved < 0) return;
  if (setns(saved, CLONE_NEWNET) < 0) abort(); /* never leave the thread in the wrong ns */
  close(saved);
}

static int get_string(napi_env env, napi_value v, char *out, size_t cap) {
  napi_valuetype t;
  out[0] = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) return 0;
  size_t len;
  if (napi_get_value_string_utf8(env, v, out, cap, &len) != napi_ok) return -1;
  return (int)len;
}

/* open(name, mtu, netnsPath) */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  char nspath[512] = {0};
  int32_t mtu = 0;
  if (argc > 0 && get_string(env, argv[0], name, sizeof name) < 0) {
    napi_throw_type_error(env, NULL, "name must be a string or null");
    return NULL;
  }
  if (argc > 1) napi_get_value_int32(env, argv[1], &mtu);
  if (argc > 2 && get_string(env, argv[2], nspath, sizeof nspath) < 0) {
    napi_throw_type_error(env, NULL, "netns must be a path or null");
    return NULL;
  }
  int saved;
  int e = enter_netns(nspath, &saved);
  if (e) return throw_errno(env, e, "setns");
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    e = errno;
    leave_netns(saved);
    return throw_errno(env, e, "open /dev/net/tun");
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (name[0]) snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    e = errno;
    close(fd);
    leave_netns(saved);
    return throw_errno(env, e, "ioctl TUNSETIFF");
  }
  if (mtu > 0) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq r;
    memset(&r, 0, sizeof r);
    memcpy(r.ifr_name, ifr.ifr_name, IFNAMSIZ);
    r.ifr_mtu = mtu;
    int bad = s < 0 || ioctl(s, SIOCSIFMTU, &r) < 0;
    if (!bad && ioctl(s, SIOCGIFFLAGS, &r) == 0) {
      r.ifr_flags |= IFF_UP;
      bad = ioctl(s, SIOCSIFFLAGS, &r) < 0;
    } else {
      bad = 1;
    }
    e = errno;
    if (s >= 0) close(s);
    if (bad) {
      close(fd);
      leave_netns(saved);
      return throw_errno(env, e, "set MTU / link up");
    }
  }
  leave_netns(saved);
  napi_value obj, vfd, vname;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_int32(env, fd, &vfd));
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname));
  CHECK(napi_set_named_property(env, obj, "fd", vfd));
  CHECK(napi_set_named_property(env, obj, "name", vname));
  return obj;
}

static void update_poll(tun_t *t);

static void deliver(tun_t *t, size_t used, int count) {
  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value buf, ab, offs, cb, recv, argv[3], result;
  void *data;
  if (napi_create_buffer_copy(env, used, t->arena, &data, &buf) == napi_ok &&
      napi_create_arraybuffer(env, (size_t)count * 2 * 4, &data, &ab) == napi_ok) {
    memcpy(data, t->offs, (size_t)count * 2 * 4);
    napi_create_typedarray(env, napi_uint32_array, (size_t)count * 2, ab, 0, &offs);
    napi_create_int32(env, count, &argv[2]);
    argv[0] = buf;
    argv[1] = offs;
    napi_get_reference_value(env, t->cb, &cb);
    napi_get_global(env, &recv);
    if (napi_make_callback(env, t->actx, recv, cb, 3, argv, &result) == napi_pending_exception) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void do_read(tun_t *t) {
  size_t used = 0;
  int count = 0;
  while (count < t->max_batch && !t->closed) {
    if (ARENA_SIZE - used < t->mtu) break; /* next packet might not fit: next callback */
    ssize_t n = read(t->fd, t->arena + used, ARENA_SIZE - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) t->read_errors++;
      break;
    }
    if (n == 0) break;
    t->offs[count * 2] = (uint32_t)used;
    t->offs[count * 2 + 1] = (uint32_t)n;
    count++;
    used += (size_t)n;
    t->rx_packets++;
    t->rx_bytes += (double)n;
  }
  if (count > 0) deliver(t, used, count);
}

static void flush_queue(tun_t *t) {
  while (t->qhead) {
    txpkt *p = t->qhead;
    ssize_t n = write(t->fd, p->data, p->len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      t->write_errors++;
    } else {
      t->tx_packets++;
      t->tx_bytes += (double)p->len;
    }
    t->qhead = p->next;
    if (!t->qhead) t->qtail = NULL;
    t->qbytes -= p->len;
    free(p);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  tun_t *t = (tun_t *)h->data;
  if (t->closed) return;
  if (status < 0) {
    t->read_errors++;
    return;
  }
  if (events & UV_WRITABLE) {
    flush_queue(t);
    update_poll(t);
  }
  if ((events & UV_READABLE) && !t->closed) do_read(t);
}

static void update_poll(tun_t *t) {
  if (t->closed) return;
  int want = UV_READABLE | (t->qhead ? UV_WRITABLE : 0);
  if (want != t->events) {
    t->events = want;
    uv_poll_start(&t->poll, want, on_poll);
  }
}

static void free_queue(tun_t *t) {
  while (t->qhead) {
    txpkt *p = t->qhead;
    t->qhead = p->next;
    free(p);
  }
  t->qtail = NULL;
  t->qbytes = 0;
}

static void unref_handle(tun_t *t) {
  if (--t->refs > 0) return;
  free(t->arena);
  free_queue(t);
  free(t);
}

static void on_closed(uv_handle_t *h) { unref_handle((tun_t *)h->data); }

static void stop(tun_t *t) {
  if (t->closed) return;
  t->closed = 1;
  uv_poll_stop(&t->poll);
  close(t->fd);
  free_queue(t);
  uv_close((uv_handle_t *)&t->poll, on_closed);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  tun_t *t = (tun_t *)data;
  stop(t); /* collected without close(): release the fd too */
  unref_handle(t);
}

static tun_t *get_handle(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "not a TUN handle");
    return NULL;
  }
  return (tun_t *)data;
}

/* start(fd, cb, maxBatch, mtu) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1, max_batch = 64, mtu = 65535;
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "start(fd, cb[, maxBatch, mtu])");
    return NULL;
  }
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  if (argc > 2) napi_get_value_int32(env, argv[2], &max_batch);
  if (argc > 3) napi_get_value_int32(env, argv[3], &mtu);
  if (max_batch < 1) max_batch = 1;
  if (max_batch > MAX_BATCH) max_batch = MAX_BATCH;
  if (mtu < 68 || mtu > 65535) mtu = 65535;
  tun_t *t = calloc(1, sizeof *t);
  if (!t) return throw_errno(env, ENOMEM, "start");
  t->arena = malloc(ARENA_SIZE);
  if (!t->arena) {
    free(t);
    return throw_errno(env, ENOMEM, "start");
  }
  t->env = env;
  t->fd = fd;
  t->refs = 2;
  t->max_batch = max_batch;
  t->mtu = (size_t)mtu + 64; /* read() truncates beyond this, so leave headroom */
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  CHECK(napi_create_reference(env, argv[1], 1, &t->cb));
  napi_value res_name;
  napi_create_string_utf8(env, "gsa-emu:tun", NAPI_AUTO_LENGTH, &res_name);
  CHECK(napi_async_init(env, NULL, res_name, &t->actx));
  int r = uv_poll_init(loop, &t->poll, fd);
  if (r < 0) {
    free(t->arena);
    free(t);
    return throw_errno(env, -r, "uv_poll_init");
  }
  t->poll.data = t;
  t->events = UV_READABLE;
  uv_poll_start(&t->poll, UV_READABLE, on_poll);
  napi_value ext;
  CHECK(napi_create_external(env, t, finalize_handle, NULL, &ext));
  return ext;
}

static int enqueue(tun_t *t, const void *data, size_t len) {
  if (t->qbytes + len > TXQ_LIMIT) {
    t->tx_dropped++;
    return 0;
  }
  txpkt *p = malloc(sizeof(txpkt) + len);
  if (!p) {
    t->tx_dropped++;
    return 0;
  }
  p->next = NULL;
  p->len = len;
  memcpy(p->data, data, len);
  if (t->qtail) t->qtail->next = p;
  else t->qhead = p;
  t->qtail = p;
  t->qbytes += len;
  t->tx_queued++;
  return 1;
}

static int write_one(tun_t *t, const void *data, size_t len) {
  if (t->qhead) return enqueue(t, data, len); /* keep order */
  for (;;) {
    ssize_t n = write(t->fd, data, len);
    if (n >= 0) {
      t->tx_packets++;
      t->tx_bytes += (double)len;
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return enqueue(t, data, len);
    t->write_errors++;
    return 0;
  }
}

/* write(handle, buffers[] | buffer) -> accepted */
static napi_value js_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_handle(env, argv[0]);
  if (!t) return NULL;
  int accepted = 0;
  if (!t->closed && argc > 1) {
    bool is_array = false;
    napi_is_array(env, argv[1], &is_array);
    uint32_t n = 1;
    if (is_array) napi_get_array_length(env, argv[1], &n);
    for (uint32_t i = 0; i < n; i++) {
      napi_value el = argv[1];
      if (is_array && napi_get_element(env, argv[1], i, &el) != napi_ok) continue;
      void *data;
      size_t len;
      bool is_buf = false;
      napi_is_buffer(env, el, &is_buf);
      if (is_buf) {
        if (napi_get_buffer_info(env, el, &data, &len) != napi_ok) continue;
      } else {
        napi_typedarray_type type;
        napi_value ab;
        size_t off;
        if (napi_get_typedarray_info(env, el, &type, &len, &data, &ab, &off) != napi_ok) continue;
      }
      if (len == 0) continue;
      accepted += write_one(t, data, len);
    }
    update_poll(t);
  }
  napi_value res;
  CHECK(napi_create_int32(env, accepted, &res));
  return res;
}

static void set_num(napi_env env, napi_value obj, const char *k, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, k, n);
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_handle(env, argv[0]);
  if (!t) return NULL;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  set_num(env, o, "rxPackets", t->rx_packets);
  set_num(env, o, "rxBytes", t->rx_bytes);
  set_num(env, o, "txPackets", t->tx_packets);
  set_num(env, o, "txBytes", t->tx_bytes);
  set_num(env, o, "txQueued", t->tx_queued);
  set_num(env, o, "txDropped", t->tx_dropped);
  set_num(env, o, "readErrors", t->read_errors);
  set_num(env, o, "writeErrors", t->write_errors);
  return o;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_t *t = get_handle(env, argv[0]);
  if (!t) return NULL;
  if (!t->closed) {
    napi_delete_reference(env, t->cb);
    napi_async_destroy(env, t->actx);
    stop(t);
  }
  return NULL;
}

/* listenTcp4(netnsPath|null, ipv4 string, port, backlog) -> fd */
static napi_value js_listen_tcp4(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char nspath[512] = {0}, ip[64] = {0};
  int32_t port = 0, backlog = 511;
  if (argc < 3 || get_string(env, argv[0], nspath, sizeof nspath) < 0 ||
      get_string(env, argv[1], ip, sizeof ip) <= 0) {
    napi_throw_type_error(env, NULL, "listenTcp4(netns|null, ip, port[, backlog])");
    return NULL;
  }
  CHECK(napi_get_value_int32(env, argv[2], &port));
  if (argc > 3) napi_get_value_int32(env, argv[3], &backlog);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
    napi_throw_type_error(env, NULL, "bad IPv4 address");
    return NULL;
  }
  int saved;
  int e = enter_netns(nspath, &saved);
  if (e) return throw_errno(env, e, "setns");
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  e = s < 0 ? errno : 0;
  leave_netns(saved);
  if (e) return throw_errno(env, e, "socket");
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, backlog) < 0) {
    e = errno;
    close(s);
    return throw_errno(env, e, "bind/listen");
  }
  napi_value res;
  CHECK(napi_create_int32(env, s, &res));
  return res;
}

/* setMark(fd, mark) */
static napi_value js_set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  uint32_t mark = 0;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_uint32(env, argv[1], &mark));
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0)
    return throw_errno(env, errno, "setsockopt SO_MARK");
  return NULL;
}

/* sockInode(family, localIp, localPort, remoteIp, remotePort) -> inode | 0 */
static napi_value js_sock_inode(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family = 0, lport = 0, rport = 0;
  char lip[64] = {0}, rip[64] = {0};
  size_t n;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_utf8(env, argv[1], lip, sizeof lip, &n));
  CHECK(napi_get_value_int32(env, argv[2], &lport));
  CHECK(napi_get_value_string_utf8(env, argv[3], rip, sizeof rip, &n));
  CHECK(napi_get_value_int32(env, argv[4], &rport));
  int af = family == 6 ? AF_INET6 : AF_INET;
  if (lport <= 0 || lport > 65535 || rport <= 0 || rport > 65535)
    return throw_errno(env, EINVAL, "sockInode: port");

  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST; /* no NLM_F_DUMP: one exact lookup */
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = (unsigned char)af;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0U;
  msg.req.id.idiag_sport = htons((uint16_t)lport);
  msg.req.id.idiag_dport = htons((uint16_t)rport);
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (inet_pton(af, lip, msg.req.id.idiag_src) != 1 || inet_pton(af, rip, msg.req.id.idiag_dst) != 1)
    return throw_errno(env, EINVAL, "sockInode: address");

  int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (s < 0) return throw_errno(env, errno, "socket NETLINK_SOCK_DIAG");
  struct sockaddr_nl nl;
  memset(&nl, 0, sizeof nl);
  nl.nl_family = AF_NETLINK;
  if (sendto(s, &msg, sizeof msg, 0, (struct sockaddr *)&nl, sizeof nl) < 0) {
    int e = errno;
    close(s);
    return throw_errno(env, e, "sendto sock_diag");
  }
  long buf[2048 / sizeof(long)];
  ssize_t len;
  do {
    len = recv(s, buf, sizeof buf, 0);
  } while (len < 0 && errno == EINTR);
  int e = errno;
  close(s);
  if (len < 0) return throw_errno(env, e, "recv sock_diag");
  double inode = 0;
  for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      struct nlmsgerr *err = (struct nlmsgerr *)NLMSG_DATA(h);
      /* ENOENT: no such socket. Anything else is a real failure. */
      if (err->error != 0 && err->error != -ENOENT) return throw_errno(env, -err->error, "sock_diag");
      break;
    }
    if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
      struct inet_diag_msg *m = (struct inet_diag_msg *)NLMSG_DATA(h);
      inode = (double)m->idiag_inode;
      break;
    }
  }
  napi_value res;
  CHECK(napi_create_double(env, inode, &res));
  return res;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"write", NULL, js_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenTcp4", NULL, js_listen_tcp4, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setMark", NULL, js_set_mark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sockInode", NULL, js_sock_inode, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
