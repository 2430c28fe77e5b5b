/*
 * One-way loopback TCP hop between two processes, each blocking in epoll as an event loop
 * does: the floor under every serial hop of a proxied connection on this machine.
 *
 *   cc -O2 -o /tmp/hop-latency bench/hop-latency.c && /tmp/hop-latency 50000
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* n round trips of one byte; `first` sends the first byte and does not answer the last. */
static int pingpong(int fd, int n, int first) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  char c = 1;
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) return -1;
  if (first && write(fd, &c, 1) != 1) return -1;
  for (int i = 0; i < n; i++) {
    struct epoll_event e;
    if (epoll_wait(ep, &e, 1, 5000) != 1 || read(fd, &c, 1) != 1) return -1;
    if (!(first && i == n - 1) && write(fd, &c, 1) != 1) return -1;
  }
  close(ep);
  return 0;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 50000;
  int one = 1;
  if (n < 1 || n > 10000000) n = 50000;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t sl = sizeof a;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &sl)) {
    perror("listen");
    return 1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (void *)&a, sizeof a)) return 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return pingpong(s, n, 0) ? 1 : 0;
  }
  int s = accept(l, 0, 0);
  if (s < 0) return 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double t0 = now();
  int r = pingpong(s, n, 1);
  double t = now() - t0;
  close(s);
  waitpid(pid, 0, 0);
  if (r) {
    fprintf(stderr, "ping-pong failed\n");
    return 1;
  }
  printf("%d round trips: %.1f us per round trip, %.1f us per one-way hop\n", n, t / n * 1e6,
         t / n / 2 * 1e6);
  return 0;
}
